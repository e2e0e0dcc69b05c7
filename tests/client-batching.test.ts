// The client's HTTP batching stays within the server's limits however many calls run at once:
// batched queries travel in the URL (431 past Node's header limit), mutations in the body (413 past maxBodyBytes).
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/test-server.js";

describe("client batching", () => {
  it("splits 300 concurrent queries and 600 concurrent 2 KB enqueues into batches the server accepts", async () => {
    await using t = await startTestServer();
    const created = await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 300 }, (_, n) => ({ payload: { n } })) });

    const fetched = await Promise.all(created.map((task) => t.api.tasks.get.query({ taskId: task.id })));
    expect(fetched.map((task) => task.id)).toEqual(created.map((task) => task.id));

    const blob = "x".repeat(2048);
    const enqueued = await Promise.all(
      Array.from({ length: 600 }, (_, n) => t.api.tasks.enqueue.mutate({ queue: "bulk", payload: { n, blob } })),
    );
    expect(enqueued.map((task) => (task.payload as { n: number }).n)).toEqual(Array.from({ length: 600 }, (_, n) => n));
    expect(new Set(enqueued.map((task) => task.id)).size).toBe(600);
    const stats = await t.api.tasks.stats.query();
    expect(stats.queues.find((q) => q.queue === "bulk")?.counts.pending).toBe(600);
    expect(stats.totals.pending).toBe(900);
  });
});
