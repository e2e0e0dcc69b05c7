// Queue limits: every slot that frees reaches a claim parked for it (a third review's cases).
// The safety re-look is at least 30 s: a parked claim answered within the 15 s wait was woken.
import { afterEach, describe, expect, it, vi } from "vitest";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const late = () => new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000));
const parkedCount = (n: number) => vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(n), { timeout: 15_000, interval: 25 });

describe("queue limits: wake-ups", () => {
  it("tasks held by the hold job after a limit was set wake the claims parked for the queue", async () => {
    t = await startTestServer();
    withDatabase(t, (db) => {
      // More than the limit's own write holds (1,000), so `mine` is held by the job afterwards.
      db.prepare(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) INSERT INTO tasks (id, queue, payload, targetAgentId, runAt, createdAt, updatedAt) SELECT 'z' || i, 'llm', '{}', 'z', 0, 0, 0 FROM n`).run();
      db.prepare(`INSERT INTO tasks (id, queue, payload, priority, targetAgentId, runAt, createdAt, updatedAt) VALUES ('mine', 'llm', '{}', 9, 'p', 0, 0, 0)`).run();
    });
    const job = t.server.services.jobs.queueHolds;
    const runNow = job.runNow.bind(job);
    job.runNow = async () => {};
    await t.api.queues.setLimit.mutate({ queue: "llm", maxLeased: 2 });
    const parked = t.api.tasks.claim.mutate({ agentId: "p", queues: ["llm"], waitMs: 60_000, context: false });
    await parkedCount(1);
    await runNow();
    expect(await Promise.race([parked, late()])).toMatchObject({ id: "mine" });
  });

  it("a complete-and-claim whose next claim dead-letters a poisoned task frees the slot it took", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    const g = await api.tasks.enqueue.mutate({ queue: "llm", payload: { g: 1 }, priority: 5 });
    expect((await api.tasks.claim.mutate({ agentId: "a", queues: ["llm"], context: false }))?.id).toBe(g.id);
    // Stored by hand: nested deeper than a payload may be, so the claim that picks it dead-letters it.
    withDatabase(t, (db) =>
      db.prepare(`INSERT INTO tasks (id, queue, payload, priority, runAt, createdAt, updatedAt, held) VALUES ('poison', 'llm', ?, 0, 0, 0, 0, 1)`).run(`${"[".repeat(3000)}1${"]".repeat(3000)}`),
    );
    const mine = await api.tasks.enqueue.mutate({ queue: "llm", payload: { p: 1 }, priority: 5, targetAgentId: "p" });
    const parked = api.tasks.claim.mutate({ agentId: "p", queues: ["llm"], waitMs: 60_000, context: false });
    await parkedCount(1);
    const next = await api.tasks.completeAndClaim.mutate({ taskId: g.id, agentId: "a", result: null, next: { queues: ["llm"], context: false } });
    expect(next.next).toBeNull();
    expect((await api.tasks.get.query({ taskId: "poison" })).status).toBe("dead_letter");
    expect(await Promise.race([parked, late()])).toMatchObject({ id: mine.id });
  });

  it("a claim woken for a freed slot that takes another queue's task passes the slot on", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    const x = await api.tasks.enqueue.mutate({ queue: "llm", payload: 0, priority: 5 });
    expect((await api.tasks.claim.mutate({ agentId: "a", context: false }))?.id).toBe(x.id);
    const waiting = await api.tasks.enqueue.mutate({ queue: "llm", payload: 1, priority: 5 });
    // q's look after its wake-up waits (a busy writer) until the gate opens.
    const db = t.server.services.db;
    const handOut = db.handOut.bind(db);
    let qAttempts = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    db.handOut = (async (op, args) => {
      if (op === "tasks.claim" && (args as unknown as { request: { agentId: string } }).request.agentId === "q" && ++qAttempts > 1) await gate;
      return handOut(op, args);
    }) as typeof db.handOut;
    const q = api.tasks.claim.mutate({ agentId: "q", waitMs: 60_000, context: false });
    await parkedCount(1);
    const r = api.tasks.claim.mutate({ agentId: "r", queues: ["llm"], waitMs: 60_000, context: false });
    await parkedCount(2);
    await api.tasks.complete.mutate({ taskId: x.id, agentId: "a" });
    await vi.waitFor(() => expect(qAttempts).toBe(2), { timeout: 15_000, interval: 10 });
    const other = await api.tasks.enqueue.mutate({ queue: "other", payload: 2, priority: 0 });
    open();
    expect((await q)?.id).toBe(other.id);
    expect(await Promise.race([r, late()])).toMatchObject({ id: waiting.id });
  });

  it("a cancel frees a slot only when it ends a lease: cancelling a pending task, or a waiting one, of a full queue wakes no claim", async () => {
    t = await startTestServer();
    const api = t.api;
    const db = t.server.services.db;
    const handOut = db.handOut.bind(db);
    let attempts = 0;
    db.handOut = ((op, args) => {
      if (op === "tasks.claim" && (args as unknown as { request: { agentId: string } }).request.agentId === "p") attempts++;
      return handOut(op, args);
    }) as typeof db.handOut;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    const [a, b, c] = await api.tasks.enqueueMany.mutate({ tasks: [{ queue: "llm" }, { queue: "llm" }, { queue: "llm" }] });
    const gate = await api.tasks.enqueue.mutate({ queue: "other" });
    const waiting = await api.tasks.enqueue.mutate({ queue: "llm", dependsOn: [gate.id] });
    expect((await api.tasks.claim.mutate({ agentId: "h", queues: ["llm"], context: false }))?.id).toBe(a!.id);
    const parked = api.tasks.claim.mutate({ agentId: "p", queues: ["llm"], waitMs: 60_000, context: false });
    await parkedCount(1);
    await api.tasks.cancel.mutate({ taskId: b!.id });
    await api.tasks.cancel.mutate({ taskId: waiting.id });
    await api.tasks.complete.mutate({ taskId: a!.id, agentId: "h", result: null });
    expect(await Promise.race([parked, late()])).toMatchObject({ id: c!.id });
    // Its first look, and the one the complete woke: the cancels woke none.
    expect(attempts).toBe(2);
  });
});
