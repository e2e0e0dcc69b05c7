// The client's worker loop against a real server: claims, runs the handler, settles.
import { describe, expect, it, vi } from "vitest";
import { runWorker } from "../client/index.js";
import { startTestServer } from "./helpers/test-server.js";

describe("runWorker", () => {
  it("processes tasks with concurrency, completes successes and fails errors, then deregisters", async () => {
    await using t = await startTestServer({ retryBaseMs: 0 });
    const seen: number[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "worker-1",
      capabilities: ["math"],
      concurrency: 3,
      waitMs: 200,
      handler: async (task) => {
        const n = (task.payload as { n: number }).n;
        seen.push(n);
        if (n === 7) throw new Error("seven is unlucky");
        return { doubled: n * 2 };
      },
    });
    await t.api.tasks.enqueueMany.mutate({
      tasks: Array.from({ length: 10 }, (_, n) => ({ payload: { n }, capability: "math", maxAttempts: n === 7 ? 1 : 3 })),
    });
    await vi.waitFor(async () => {
      const stats = await t.api.tasks.stats.query();
      expect(stats.totals).toMatchObject({ completed: 9, dead_letter: 1, pending: 0, claimed: 0 });
    }, { timeout: 10_000, interval: 50 });
    expect(worker.completed).toBe(9);
    expect(worker.failed).toBe(1);
    expect([...seen].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const done = await t.api.tasks.list.query({ status: "completed", limit: 20 });
    expect(done.items.find((task) => (task.payload as { n: number }).n === 4)?.result).toEqual({ doubled: 8 });

    await worker.stop();
    await expect(t.api.agents.get.query({ agentId: "worker-1" })).rejects.toMatchObject({ data: { code: "NOT_FOUND" } });
  });
});
