// Which task a claim hands out: priority, then FIFO; run-at; queue, capability and target filters.
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/test-server.js";

describe("claim order and filters", () => {
  it("hands out the lowest priority number first, FIFO within a priority", async () => {
    await using t = await startTestServer();
    const spec = [
      { name: "p5-a", priority: 5 },
      { name: "p1-a", priority: 1 },
      { name: "p5-b", priority: 5 },
      { name: "p0-a", priority: 0 },
      { name: "p1-b", priority: 1 },
      { name: "p5-c", priority: 5 },
    ];
    for (const s of spec) await t.api.tasks.enqueue.mutate({ payload: { name: s.name }, priority: s.priority });
    const order: unknown[] = [];
    for (;;) {
      const task = await t.api.tasks.claim.mutate({ agentId: "a1", context: false });
      if (!task) break;
      order.push((task.payload as { name: string }).name);
    }
    expect(order).toEqual(["p0-a", "p1-a", "p1-b", "p5-a", "p5-b", "p5-c"]);
  });

  it("does not hand out a delayed task before its run-at", async () => {
    await using t = await startTestServer();
    // Far enough ahead that the two claims below come first on any machine.
    const runAt = new Date(Date.now() + 2000);
    const delayed = await t.api.tasks.enqueue.mutate({ payload: { delayed: true }, runAt, priority: 0 });
    const now = await t.api.tasks.enqueue.mutate({ payload: { delayed: false }, priority: 9 });
    expect(delayed.runAt).toEqual(runAt);

    const first = await t.api.tasks.claim.mutate({ agentId: "a1" });
    expect(first?.id).toBe(now.id);
    expect(await t.api.tasks.claim.mutate({ agentId: "a1" })).toBeNull();

    // A long-poll wakes when the delayed task falls due, not before.
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1", waitMs: 10_000 });
    expect(claimed?.id).toBe(delayed.id);
    expect(Date.now()).toBeGreaterThanOrEqual(runAt.getTime());
  });

  it("filters by queue; no queues means any queue", async () => {
    await using t = await startTestServer();
    const email = await t.api.tasks.enqueue.mutate({ queue: "email", payload: {} });
    const build = await t.api.tasks.enqueue.mutate({ queue: "build", payload: {} });
    expect(await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["other"] })).toBeNull();
    expect((await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["build", "other"] }))?.id).toBe(build.id);
    expect((await t.api.tasks.claim.mutate({ agentId: "a1" }))?.id).toBe(email.id);
  });

  it("gives a task that needs a capability only to a claimer offering it; tasks without one suit anybody", async () => {
    await using t = await startTestServer();
    const gpu = await t.api.tasks.enqueue.mutate({ payload: {}, capability: "gpu", priority: 0 });
    const plain = await t.api.tasks.enqueue.mutate({ payload: {}, priority: 5 });
    expect((await t.api.tasks.claim.mutate({ agentId: "cpu-agent", capabilities: ["cpu"] }))?.id).toBe(plain.id);
    expect(await t.api.tasks.claim.mutate({ agentId: "cpu-agent", capabilities: ["cpu"] })).toBeNull();
    expect((await t.api.tasks.claim.mutate({ agentId: "gpu-agent", capabilities: ["gpu"] }))?.id).toBe(gpu.id);
  });

  it("gives a targeted task only to its target agent", async () => {
    await using t = await startTestServer();
    const targeted = await t.api.tasks.enqueue.mutate({ payload: {}, agentId: "a2" });
    expect(targeted.targetAgentId).toBe("a2");
    expect(await t.api.tasks.claim.mutate({ agentId: "a1" })).toBeNull();
    expect((await t.api.tasks.claim.mutate({ agentId: "a2" }))?.id).toBe(targeted.id);
  });

  it("claimMany returns up to limit tasks, best first, each leased once", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueueMany.mutate({ tasks: [3, 1, 2, 0, 4].map((priority) => ({ payload: { priority }, priority })) });
    const batch = await t.api.tasks.claimMany.mutate({ agentId: "a1", limit: 3 });
    expect(batch.map((task) => task.priority)).toEqual([0, 1, 2]);
    expect(batch.every((task) => task.status === "claimed" && task.leaseOwner === "a1" && task.attempts === 1)).toBe(true);
    const rest = await t.api.tasks.claimMany.mutate({ agentId: "a2", limit: 10 });
    expect(rest.map((task) => task.priority)).toEqual([3, 4]);
  });
});
