// COORDINATION_SETTLED_TASK_RETENTION_COUNT: "Keep at most this many settled tasks, the newest".
// Tasks settled in one write share one settle time (a bulk cancel, a schedule's queue emptied):
// the count's cutoff must still fall between them, not keep every task settled in that ms.
import { afterEach, describe, expect, it } from "vitest";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("settled-task count retention", () => {
  it("keeps at most the count when the settled tasks share one settle time (a bulk cancel)", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 0, settledTaskRetentionCount: 3, retentionPruneMs: 200 });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await rest(t.url, "POST", "/tasks", { queue: "bulk", payload: { i } })).body.id);
    const cancelled = await rest(t.url, "POST", "/tasks/cancel", { queue: "bulk" });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.cancelled).toHaveLength(20);
    // The periodic pruner (every 200 ms) brings them down to the count.
    await expect.poll(async () => (await rest(t!.url, "GET", "/stats/tasks?queue=bulk")).body.totals.cancelled, { timeout: 15_000, interval: 100 }).toBe(3);
    // The newest kept: the last three enqueued (settled in the same ms, newest by seq).
    const kept = (await rest(t.url, "GET", "/tasks?queue=bulk&status=cancelled")).body.items.map((task: { id: string }) => task.id).sort();
    expect(kept).toEqual(ids.slice(-3).sort());
  });
});
