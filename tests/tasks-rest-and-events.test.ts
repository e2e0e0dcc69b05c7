// The task queue over plain HTTP (the seed's routes and ours), its reads (list, stats), and
// the system events each state change appends in the same transaction.
import { describe, expect, it } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("task REST routes", () => {
  it("runs the seed's lifecycle: POST /tasks, GET /tasks/claim/{agent_id}, POST complete", async () => {
    await using t = await startTestServer();
    const created = await rest(t.url, "POST", "/tasks", { queue: "default", payload: { action: "research" }, priority: 5 });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ queue: "default", payload: { action: "research" }, priority: 5, status: "pending" });
    expect(typeof created.body.createdAt).toBe("string");

    const claim = await rest(t.url, "GET", "/tasks/claim/agent-1?queue=default&leaseMs=5000");
    expect(claim.status).toBe(200);
    expect(claim.body).toMatchObject({ id: created.body.id, status: "claimed", leaseOwner: "agent-1", context: [] });
    expect(Date.parse(claim.body.leaseExpiresAt) - Date.parse(claim.body.claimedAt)).toBe(5000);

    const done = await rest(t.url, "POST", `/tasks/${created.body.id}/complete`, { result: { summary: "done" } });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "completed", result: { summary: "done" } });
    expect((await rest(t.url, "GET", "/tasks/claim/agent-1")).status).toBe(204);
    expect((await rest(t.url, "GET", `/tasks/${created.body.id}`)).body.status).toBe("completed");
  });

  it("heartbeat, release, cancel and requeue over REST", async () => {
    await using t = await startTestServer();
    const { body: task } = await rest(t.url, "POST", "/tasks", { payload: {} });
    await rest(t.url, "GET", "/tasks/claim/a1");
    expect((await rest(t.url, "POST", `/tasks/${task.id}/heartbeat`, { agentId: "a1", leaseMs: 90_000 })).status).toBe(200);
    expect((await rest(t.url, "POST", `/tasks/${task.id}/release`, { agentId: "a1" })).body.status).toBe("pending");
    expect((await rest(t.url, "POST", `/tasks/${task.id}/cancel`)).body.status).toBe("cancelled");
    expect((await rest(t.url, "POST", `/tasks/${task.id}/requeue`)).body.status).toBe("pending");
  });

  it("answers bad input with 400 naming the field, unknown tasks with 404", async () => {
    await using t = await startTestServer();
    const negative = await rest(t.url, "POST", "/tasks", { payload: {}, priority: -1 });
    expect(negative.status).toBe(400);
    expect(negative.body.message).toContain("priority");
    const badRunAt = await rest(t.url, "POST", "/tasks", { payload: {}, runAt: "tomorrow" });
    expect(badRunAt.status).toBe(400);
    expect(badRunAt.body.message).toContain("runAt");
    const badWait = await rest(t.url, "GET", "/tasks/claim/a1?waitMs=soon");
    expect(badWait.status).toBe(400);
    expect(badWait.body.message).toContain("waitMs");
    const missingError = await rest(t.url, "POST", "/tasks/x/fail", { agentId: "a1" });
    expect(missingError.status).toBe(400);
    expect(missingError.body.message).toContain("error");
    const unknown = await rest(t.url, "POST", "/tasks/does-not-exist/complete", { agentId: "a1" });
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toBe('task "does-not-exist" not found');
    const nothing = await rest(t.url, "GET", "/tasks/does-not-exist");
    expect(nothing.status).toBe(404);
  });

  it("lists with filters and cursor pagination, and counts per queue and status", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 7 }, (_, i) => ({ queue: i % 2 ? "odd" : "even", payload: { i } })) });
    await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["odd"] });

    const seen: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await t.api.tasks.list.query({ queue: "even", limit: 2, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((task) => (task.payload as { i: number }).i));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([0, 2, 4, 6]);

    const held = await rest(t.url, "GET", "/tasks?agentId=a1&status=claimed");
    expect(held.body.items.map((task: { payload: { i: number } }) => task.payload.i)).toEqual([1]);
    const newest = await t.api.tasks.list.query({ order: "desc", limit: 1 });
    expect((newest.items[0]!.payload as { i: number }).i).toBe(6);

    const stats = await t.api.tasks.stats.query();
    expect(stats.totals).toEqual({ waiting: 0, pending: 6, claimed: 1, completed: 0, dead_letter: 0, cancelled: 0 });
    expect(stats.queues.map((q) => [q.queue, q.counts.pending, q.counts.claimed])).toEqual([
      ["even", 4, 0],
      ["odd", 2, 1],
    ]);
    expect(stats.queues[0]!.oldestPendingAgeMs).toBeGreaterThanOrEqual(0);
    expect(stats.queuesOmitted).toBe(0);
    expect((await rest(t.url, "GET", "/stats/tasks")).body.totals.pending).toBe(6);
  });

  // An answer's size follows the limit, not the number of queues ever used: 54,000 one-off
  // queues made a 6.9 MB answer, polled every second by the dashboard.
  it("stats lists the busiest queues up to a limit, by name, and says how many it leaves out; the totals count them all", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 30 }, (_, i) => ({ queue: `one-off-${String(i).padStart(2, "0")}` })) });
    await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "zeta" }, { queue: "zeta" }, { queue: "alpha" }, { queue: "alpha" }, { queue: "alpha" }] });
    const top = await t.api.tasks.stats.query({ limit: 3 });
    // alpha (3) and zeta (2) first, then the first by name of the rest (1 each); listed by name.
    expect(top.queues.map((q) => q.queue)).toEqual(["alpha", "one-off-00", "zeta"]);
    expect([top.queuesOmitted, top.totals.pending]).toEqual([29, 35]);
    const one = await rest(t.url, "GET", "/stats/tasks?queue=zeta");
    expect([one.body.queues.map((q: { queue: string }) => q.queue), one.body.queuesOmitted, one.body.totals.pending]).toEqual([["zeta"], 31, 35]);
    const limited = await rest(t.url, "GET", "/stats/tasks?limit=2");
    expect([limited.body.queues.length, limited.body.queuesOmitted]).toEqual([2, 30]);
    expect((await t.api.tasks.stats.query()).queues).toHaveLength(32);
    expect((await rest(t.url, "GET", "/stats/tasks?limit=0")).status).toBe(400);
  });
});

describe("task system events", () => {
  it("appends one event per state change, in order, each naming its task", async () => {
    await using t = await startTestServer({ retryBaseMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 2 });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: "e1" });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.release.mutate({ taskId: task.id, agentId: "a1" });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: "e2" });
    await t.api.tasks.requeue.mutate({ taskId: task.id });
    await t.api.tasks.claim.mutate({ agentId: "a2" });
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a2" });
    const other = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.cancel.mutate({ taskId: other.id });

    const events = await t.api.events.list.query({ types: ["task.*"], limit: 100 });
    expect(events.map((e) => e.type)).toEqual([
      "task.enqueued",
      "task.claimed",
      "task.failed",
      "task.retried",
      "task.claimed",
      "task.released",
      "task.claimed",
      "task.failed",
      "task.dead_lettered",
      "task.requeued",
      "task.claimed",
      "task.completed",
      "task.enqueued",
      "task.cancelled",
    ]);
    expect(events.slice(0, 12).every((e) => (e.payload as { taskId: string }).taskId === task.id)).toBe(true);
    expect(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq)).toBe(true);
  });

  it("a rejected change appends no event", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    const before = (await t.api.events.list.query({ limit: 100 })).length;
    await expect(t.api.tasks.complete.mutate({ taskId: task.id, agentId: "intruder" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    await expect(t.api.tasks.requeue.mutate({ taskId: task.id })).rejects.toMatchObject({ data: { code: "INVALID_STATE" } });
    expect((await t.api.events.list.query({ limit: 100 })).length).toBe(before);
  });
});
