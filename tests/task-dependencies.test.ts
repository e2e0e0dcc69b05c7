// Task dependencies (tasks.enqueue's dependsOn): a task waits until every task it names has
// completed, then is claimable; a dependency that can never complete (cancelled, or deleted by
// retention as a dead letter) cancels what waits on it. Over the typed client and REST, on a real
// server and SQLite file.
import { afterEach, describe, expect, it, vi } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The task_dependencies rows left, as [dependency seq, waiting task seq]. */
const dependencyRows = (server: TestServer): number[][] =>
  withDatabase(server, (db) => (db.prepare(`SELECT dependsOnSeq, taskSeq FROM task_dependencies ORDER BY 1, 2`).raw().all() as number[][]));

/** A task's events' types and payloads, oldest first. */
async function eventsOf(server: TestServer, taskId: string) {
  return (await server.api.tasks.events.query({ taskId })).map((e) => ({ type: e.type, payload: e.payload as Record<string, unknown> }));
}

/** Claims `taskId` for `agentId` (the only claimable task of its queue) and completes it with `result`. */
async function run(server: TestServer, queue: string, taskId: string, agentId: string, result: unknown = null) {
  const claimed = await server.api.tasks.claim.mutate({ agentId, queues: [queue], context: false });
  expect(claimed?.id).toBe(taskId);
  return server.api.tasks.complete.mutate({ taskId, agentId, leaseToken: claimed!.leaseToken, result: result as never });
}

describe("task dependencies", () => {
  it("a task waits until every dependency completed; the last complete makes it pending in its write, and wakes a claim parked for its queue", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "research", payload: { topic: "a" } });
    const b = await api.tasks.enqueue.mutate({ queue: "research", payload: { topic: "b" } });
    const synth = await api.tasks.enqueue.mutate({ queue: "synth", payload: { merge: true }, dependsOn: [a.id, b.id] });
    expect(synth).toMatchObject({ status: "waiting", dependsOn: [a.id, b.id], runAt: expect.any(Date) });
    expect((await eventsOf(t, synth.id))[0]).toEqual({ type: "task.enqueued", payload: expect.objectContaining({ taskId: synth.id, waitingFor: 2 }) });
    expect(await api.tasks.claim.mutate({ agentId: "s", queues: ["synth"], context: false })).toBeNull();
    const stats = await api.tasks.stats.query({ queue: "synth" });
    expect(stats.queues[0]!.counts).toMatchObject({ waiting: 1, pending: 0 });
    expect((await rest(t.url, "GET", "/tasks?status=waiting")).body.items.map((x: { id: string }) => x.id)).toEqual([synth.id]);

    // A claim parked for the synth queue: nothing there is claimable yet.
    const parked = api.tasks.claim.mutate({ agentId: "s", queues: ["synth"], waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 25 });

    await run(t, "research", a.id, "r1", { found: "A" });
    expect(await api.tasks.get.query({ taskId: synth.id })).toMatchObject({ status: "waiting" });
    expect(t.server.services.waiters.claims.size).toBe(1);
    const bDone = await run(t, "research", b.id, "r2", { found: "B" });
    // Woken by task.ready: the safety re-look is at least 30 s away (wakeup.ts), so an answer within 15 s was woken.
    const claimed = await Promise.race([parked, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    if (claimed === "late") throw new Error("the parked claim was not woken by task.ready");
    expect(claimed).toMatchObject({ id: synth.id, status: "claimed", leaseOwner: "s", dependsOn: [a.id, b.id] });
    // Counted as claimable from the complete that made it so, not from its enqueue.
    expect(claimed!.runAt.getTime()).toBe(bDone.finishedAt!.getTime());
    const types = (await eventsOf(t, synth.id)).map((e) => e.type);
    expect(types).toEqual(["task.enqueued", "task.ready", "task.claimed"]);
    expect((await eventsOf(t, synth.id))[1]!.payload).toEqual({ taskId: synth.id, queue: "synth", priority: 5, capability: null, targetAgentId: null, runAt: bDone.finishedAt!.toISOString(), after: b.id });
    // The results it depends on, read by id.
    const results = await Promise.all(claimed!.dependsOn.map((id) => api.tasks.get.query({ taskId: id })));
    expect(results.map((r) => r.result)).toEqual([{ found: "A" }, { found: "B" }]);
    expect(dependencyRows(t)).toEqual([]);
  });

  it("dependencies already completed are met: the task is pending at once; a delay of its own still holds once ready", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q" });
    await run(t, "q", a.id, "w");
    const b = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [a.id] });
    expect(b.status).toBe("pending");
    expect((await eventsOf(t, b.id))[0]!.payload).not.toHaveProperty("waitingFor");
    expect((await api.tasks.claim.mutate({ agentId: "w", context: false }))?.id).toBe(b.id);

    // Waiting, with a delay that outlasts its dependency: pending once ready, claimable at its runAt.
    const c = await api.tasks.enqueue.mutate({ queue: "gate" });
    const d = await api.tasks.enqueue.mutate({ queue: "later", dependsOn: [c.id], delayMs: 3_600_000 });
    await run(t, "gate", c.id, "w");
    expect(await api.tasks.get.query({ taskId: d.id })).toMatchObject({ status: "pending", runAt: d.runAt });
    expect(await api.tasks.claim.mutate({ agentId: "w", queues: ["later"], context: false })).toBeNull();
    expect((await api.tasks.stats.query({ queue: "later" })).queues[0]).toMatchObject({ scheduled: 1, nextDueAt: d.runAt });
  });

  it("complete-and-claim of the last dependency can take the task it made ready, in the same write", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q", priority: 1 });
    const b = await api.tasks.enqueue.mutate({ queue: "q", priority: 0, dependsOn: [a.id] });
    const claimed = await api.tasks.claim.mutate({ agentId: "w", context: false });
    expect(claimed?.id).toBe(a.id);
    const both = await api.tasks.completeAndClaim.mutate({ taskId: a.id, agentId: "w", result: 1, next: { context: false } });
    expect(both.next?.id).toBe(b.id);
  });

  it("a ready task of a paused queue is held like any other of it; the resume makes it claimable", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "in" });
    const b = await api.tasks.enqueue.mutate({ queue: "out", dependsOn: [a.id] });
    await api.queues.pause.mutate({ queue: "out" });
    await run(t, "in", a.id, "w");
    expect(withDatabase(t, (db) => db.prepare(`SELECT status, held FROM tasks WHERE id = ?`).get(b.id))).toEqual({ status: "pending", held: 1 });
    expect(await api.tasks.claim.mutate({ agentId: "w", queues: ["out"], context: false })).toBeNull();
    await api.queues.resume.mutate({ queue: "out" });
    expect((await api.tasks.claim.mutate({ agentId: "w", queues: ["out"], context: false }))?.id).toBe(b.id);
  });

  it("refuses what could never run, naming the field: an unknown or cancelled task, one named twice, more than 100; a batch with one is stored not at all", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q" });
    const gone = await api.tasks.enqueue.mutate({ queue: "q" });
    await api.tasks.cancel.mutate({ taskId: gone.id });

    const unknown = await rest(t.url, "POST", "/tasks", { queue: "q", dependsOn: [a.id, "no-such-task"] });
    expect(unknown).toEqual({ status: 404, body: { code: "TASK_NOT_FOUND", message: 'dependsOn[1]: task "no-such-task" not found (never enqueued, or deleted by retention)', details: { id: "no-such-task" } } });
    const cancelled = await rest(t.url, "POST", "/tasks", { queue: "q", dependsOn: [gone.id] });
    expect(cancelled.status).toBe(409);
    expect(cancelled.body).toMatchObject({ code: "INVALID_STATE", message: `dependsOn[0]: task "${gone.id}" is cancelled, so a task depending on it would never run (requeue it first)` });
    const twice = await rest(t.url, "POST", "/tasks", { queue: "q", dependsOn: [a.id, a.id] });
    expect(twice.status).toBe(400);
    expect(twice.body.message).toBe(`dependsOn[1]: names task "${a.id}" twice`);
    const many = await rest(t.url, "POST", "/tasks", { queue: "q", dependsOn: Array.from({ length: 101 }, (_, i) => `t${i}`) });
    expect(many.status).toBe(400);
    expect(many.body.message).toMatch(/^dependsOn: /);
    // An empty list names none: a plain pending task.
    expect(await rest(t.url, "POST", "/tasks", { queue: "q", dependsOn: [] })).toMatchObject({ status: 200, body: { status: "pending", dependsOn: [] } });

    const batch = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "b" }, { queue: "b", dependsOn: [a.id] }, { queue: "b", dependsOn: ["nope"] }] });
    expect(batch.status).toBe(404);
    expect(batch.body.message).toBe('tasks[2].dependsOn[0]: task "nope" not found (never enqueued, or deleted by retention)');
    expect((await api.tasks.stats.query({ queue: "b" })).queues).toEqual([]);
    expect(dependencyRows(t)).toEqual([]);
  });

  it("a dependency cancelled cancels what waits on it, to the end of the chain; one dead-lettered keeps them waiting, and its requeue and complete make them ready", async () => {
    t = await startTestServer();
    const api = t.api;
    const root = await api.tasks.enqueue.mutate({ queue: "q", maxAttempts: 1 });
    const other = await api.tasks.enqueue.mutate({ queue: "q" });
    const mid = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [root.id, other.id] });
    const leaf = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [mid.id] });
    const bystander = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [other.id] });

    // The root fails for good: a dead letter can still be requeued, so nothing is cancelled.
    const claimed = await api.tasks.claim.mutate({ agentId: "w", context: false });
    expect(claimed?.id).toBe(root.id);
    await api.tasks.fail.mutate({ taskId: root.id, agentId: "w", error: "boom", retry: false });
    expect((await api.tasks.get.query({ taskId: mid.id })).status).toBe("waiting");
    await api.tasks.requeue.mutate({ taskId: root.id });
    await run(t, "q", root.id, "w");
    expect((await api.tasks.get.query({ taskId: mid.id })).status).toBe("waiting");

    // Cancelling `other` leaves `mid` nothing to wait for that can come: it and `leaf` go, and `bystander`.
    await api.tasks.cancel.mutate({ taskId: other.id });
    const after = await Promise.all([mid, leaf, bystander].map((x) => api.tasks.get.query({ taskId: x.id })));
    expect(after.map((x) => [x.status, x.lastError])).toEqual([
      ["cancelled", `its dependency "${other.id}" was cancelled`],
      ["cancelled", `its dependency "${mid.id}" was cancelled`],
      ["cancelled", `its dependency "${other.id}" was cancelled`],
    ]);
    expect((await eventsOf(t, leaf.id)).at(-1)).toEqual({
      type: "task.cancelled",
      payload: { taskId: leaf.id, queue: "q", previousStatus: "waiting", agentId: null, reason: `its dependency "${mid.id}" was cancelled` },
    });
    // Their rows stay, for a requeue to read what each still waits for.
    const seq = (id: string) => withDatabase(t!, (db) => db.prepare(`SELECT seq FROM tasks WHERE id = ?`).pluck().get(id) as number);
    expect(dependencyRows(t)).toEqual([
      [seq(other.id), seq(mid.id)],
      [seq(other.id), seq(bystander.id)],
      [seq(mid.id), seq(leaf.id)],
    ]);

    // Requeued while its dependency is still cancelled: refused, saying which. Once that one is back, it waits again.
    const refused = await rest(t.url, "POST", `/tasks/${mid.id}/requeue`, {});
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(`task "${mid.id}" cannot be requeued: a task it depends on is cancelled (requeue it first), so it would never run`);
    await api.tasks.requeue.mutate({ taskId: other.id });
    expect(await api.tasks.requeue.mutate({ taskId: mid.id })).toMatchObject({ status: "waiting", attempts: 0 });
    expect((await eventsOf(t, mid.id)).at(-1)!.payload).toMatchObject({ previousStatus: "cancelled", waitingFor: 1 });
    await run(t, "q", other.id, "w");
    expect((await api.tasks.get.query({ taskId: mid.id })).status).toBe("pending");
  });

  it("a waiting task cancelled stays cancelled when its dependency completes; requeued then, it is pending", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q" });
    const b = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [a.id] });
    expect(dependencyRows(t)).toHaveLength(1);
    expect(await api.tasks.cancel.mutate({ taskId: b.id })).toMatchObject({ status: "cancelled" });
    await run(t, "q", a.id, "w");
    expect((await api.tasks.get.query({ taskId: b.id })).status).toBe("cancelled");
    expect(dependencyRows(t)).toEqual([]);
    expect(await api.tasks.requeue.mutate({ taskId: b.id })).toMatchObject({ status: "pending" });
  });

  it("retention deleting a dead letter cancels what waits on it", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q", maxAttempts: 1 });
    const b = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [a.id] });
    await api.tasks.claim.mutate({ agentId: "w", context: false });
    await api.tasks.fail.mutate({ taskId: a.id, agentId: "w", error: "boom", retry: false });
    expect((await api.tasks.get.query({ taskId: b.id })).status).toBe("waiting");
    await t.server.services.retention.prune(Date.now() + 3_600_000);
    expect(await api.tasks.get.query({ taskId: b.id })).toMatchObject({ status: "cancelled", lastError: `its dependency "${a.id}" was deleted by retention as a dead letter` });
    const refused = await rest(t.url, "POST", `/tasks/${b.id}/requeue`, {});
    expect([refused.status, refused.body.message]).toEqual([409, `task "${b.id}" cannot be requeued: a task it depends on was deleted by retention, so it would never run`]);
    // Its row goes with it, when retention deletes it in turn.
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET finishedAt = finishedAt - 7200000 WHERE id = ?`).run(b.id));
    await t.server.services.retention.prune(Date.now());
    expect(dependencyRows(t)).toEqual([]);
  });

  it("an enqueue sent again with its idempotencyKey: the same dependencies in any order are the same task; others are a 409 naming dependsOn", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q" });
    const b = await api.tasks.enqueue.mutate({ queue: "q" });
    const first = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [a.id, b.id], idempotencyKey: "k" });
    expect((await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [b.id, a.id], idempotencyKey: "k" })).id).toBe(first.id);
    const differs = await rest(t.url, "POST", "/tasks", { queue: "q", dependsOn: [a.id], idempotencyKey: "k" });
    expect(differs.status).toBe(409);
    expect(differs.body).toMatchObject({ code: "IDEMPOTENCY_MISMATCH", details: { taskId: first.id, differs: ["dependsOn"] } });
    expect((await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "k" })).body.details.differs).toEqual(["dependsOn"]);
    expect(dependencyRows(t)).toHaveLength(2);
  });

  it("a requeue does not ask again for dependencies a task had met: a dead letter whose dependency retention deleted comes back", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q" });
    const b = await api.tasks.enqueue.mutate({ queue: "q2", dependsOn: [a.id], maxAttempts: 1 });
    await run(t, "q", a.id, "w");
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q2"], context: false });
    await api.tasks.fail.mutate({ taskId: b.id, agentId: "w", error: "boom", retry: false });
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET finishedAt = finishedAt - 7200000 WHERE id = ?`).run(a.id));
    expect(await t.server.services.retention.prune(Date.now())).toBe(1);
    expect(await api.tasks.requeue.mutate({ taskId: b.id })).toMatchObject({ status: "pending", dependsOn: [a.id] });

    // Cancelled while waiting on c (completed, then deleted) and d: requeued, it waits for d alone.
    const c = await api.tasks.enqueue.mutate({ queue: "q3" });
    const d = await api.tasks.enqueue.mutate({ queue: "q4" });
    const w = await api.tasks.enqueue.mutate({ queue: "q5", dependsOn: [c.id, d.id] });
    await run(t, "q3", c.id, "w");
    await api.tasks.cancel.mutate({ taskId: d.id });
    expect((await api.tasks.get.query({ taskId: w.id })).status).toBe("cancelled");
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET finishedAt = finishedAt - 7200000 WHERE id = ?`).run(c.id));
    expect(await t.server.services.retention.prune(Date.now())).toBe(1);
    await api.tasks.requeue.mutate({ taskId: d.id });
    expect(await api.tasks.requeue.mutate({ taskId: w.id })).toMatchObject({ status: "waiting" });
    await run(t, "q4", d.id, "w");
    expect((await api.tasks.get.query({ taskId: w.id })).status).toBe("pending");
    expect(dependencyRows(t)).toEqual([]);
  });

  it("a complete or cancel settles 500 dependents in its write; the job settles the rest a write at a time, and drops a cancel requeued meanwhile", async () => {
    // The job's own period is past the test: it runs when the test says.
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const count = (status: string, queue: string) => withDatabase(t!, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE status = ? AND queue = ?`).pluck().get(status, queue) as number);
    const work = () => withDatabase(t!, (db) => db.prepare(`SELECT count(*) FROM dependency_work`).pluck().get());
    const fanOut = async (root: string, queue: string, n: number) => {
      for (let i = 0; i < n; i += 1000) await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: Math.min(1000, n - i) }, () => ({ queue, dependsOn: [root] })) });
    };

    const root = await api.tasks.enqueue.mutate({ queue: "root" });
    await fanOut(root.id, "fan", 1200);
    await run(t, "root", root.id, "w");
    expect([count("pending", "fan"), count("waiting", "fan"), work()]).toEqual([500, 700, 1]);
    expect(await t.server.services.tasks.settleDependents()).toBe(2);
    expect([count("pending", "fan"), count("waiting", "fan"), work()]).toEqual([1200, 0, 0]);
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM events WHERE type = 'task.ready'`).pluck().get())).toBe(1200);

    // A cancel: 600 waiting on `doomed`, and 10 more on the first of them (cancelled in the job's write).
    const doomed = await api.tasks.enqueue.mutate({ queue: "root" });
    await fanOut(doomed.id, "gone", 600);
    const first = (await api.tasks.list.query({ queue: "gone", limit: 1 })).items[0]!;
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 10 }, () => ({ queue: "grand", dependsOn: [first.id] })) });
    await api.tasks.cancel.mutate({ taskId: doomed.id });
    expect(count("cancelled", "gone") + count("cancelled", "grand")).toBe(500);
    await t.server.services.tasks.settleDependents();
    expect([count("cancelled", "gone"), count("cancelled", "grand"), count("waiting", "gone"), work()]).toEqual([600, 10, 0, 0]);

    // Cancelled, then requeued before the job went on: the rest wait for it still, and go on when it completes.
    const back = await api.tasks.enqueue.mutate({ queue: "root" });
    await fanOut(back.id, "kept", 600);
    await api.tasks.cancel.mutate({ taskId: back.id });
    await api.tasks.requeue.mutate({ taskId: back.id });
    await t.server.services.tasks.settleDependents();
    expect([count("cancelled", "kept"), count("waiting", "kept"), work()]).toEqual([500, 100, 0]);
    await run(t, "root", back.id, "w");
    expect([count("pending", "kept"), count("waiting", "kept")]).toEqual([100, 0]);
  });

  it("a second review's cases: a requeue after a deferred complete counts nothing twice; retention keeps a task the job has yet to settle; a complete counts down a bounded number of rows", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000, settledTaskRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const api = t.api;
    const status = async (id: string) => (await api.tasks.get.query({ taskId: id })).status;
    const fanOut = (root: string, queue: string, n: number) => api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: n }, () => ({ queue, dependsOn: [root] })) });

    // W waits on A and B; B's complete readies 500 of its 600 dependents, leaving W's row to the job.
    const a = await api.tasks.enqueue.mutate({ queue: "a" });
    const b = await api.tasks.enqueue.mutate({ queue: "b" });
    await fanOut(b.id, "fan", 600);
    const w = await api.tasks.enqueue.mutate({ queue: "w", dependsOn: [a.id, b.id] });
    await run(t, "b", b.id, "x");
    await api.tasks.cancel.mutate({ taskId: a.id });
    expect(await status(w.id)).toBe("cancelled");
    await api.tasks.requeue.mutate({ taskId: a.id });
    expect(await api.tasks.requeue.mutate({ taskId: w.id })).toMatchObject({ status: "waiting" });
    await t.server.services.tasks.settleDependents();
    // B counted once: W waits for A still.
    expect(await status(w.id)).toBe("waiting");
    await run(t, "a", a.id, "x");
    expect(await status(w.id)).toBe("pending");

    // D cancelled with 600 waiting: retention leaves D to the job, which cancels the rest.
    const d = await api.tasks.enqueue.mutate({ queue: "d" });
    await fanOut(d.id, "doomed", 600);
    await api.tasks.cancel.mutate({ taskId: d.id });
    await t.server.services.retention.prune(Date.now() + 3_600_000);
    expect(await status(d.id)).toBe("cancelled");
    await t.server.services.tasks.settleDependents();
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE queue = 'doomed' AND status = 'waiting'`).pluck().get())).toBe(0);
    await t.server.services.retention.prune(Date.now() + 3_600_000);
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE id = ?`).pluck().get(d.id))).toBe(0);

    // 6,000 tasks wait on E and F: E's complete counts down ~5,000 rows in its write, the job the rest.
    const e = await api.tasks.enqueue.mutate({ queue: "e" });
    const f = await api.tasks.enqueue.mutate({ queue: "f" });
    for (let i = 0; i < 6; i++) await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 1000 }, () => ({ queue: "pair", dependsOn: [e.id, f.id] })) });
    await run(t, "e", e.id, "x");
    const left = () => withDatabase(t!, (db) => db.prepare(`SELECT count(*) FROM task_dependencies d JOIN tasks t ON t.seq = d.dependsOnSeq WHERE t.id = ?`).pluck().get(e.id) as number);
    expect(left()).toBeGreaterThan(0);
    expect(left()).toBeLessThan(6000);
    await t.server.services.tasks.settleDependents();
    expect(left()).toBe(0);
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE queue = 'pair' AND status = 'waiting' AND unmetDependencies = 1`).pluck().get())).toBe(6000);
  });

  it('onDependencyFailure "cancel": a dependency dead-lettered cancels the task and what waits on it; "wait" tasks wait on', async () => {
    t = await startTestServer();
    const api = t.api;
    const root = await api.tasks.enqueue.mutate({ queue: "r", maxAttempts: 1 });
    const strict = await api.tasks.enqueue.mutate({ queue: "s", dependsOn: [root.id], onDependencyFailure: "cancel" });
    const patient = await api.tasks.enqueue.mutate({ queue: "s", dependsOn: [root.id] });
    const after = await api.tasks.enqueue.mutate({ queue: "s", dependsOn: [strict.id] });
    expect([strict.onDependencyFailure, patient.onDependencyFailure]).toEqual(["cancel", "wait"]);
    const claimed = await api.tasks.claim.mutate({ agentId: "w", queues: ["r"], context: false });
    await api.tasks.fail.mutate({ taskId: claimed!.id, agentId: "w", error: "boom", retry: false });
    const now = await Promise.all([strict, patient, after].map((x) => api.tasks.get.query({ taskId: x.id })));
    expect(now.map((x) => [x.status, x.lastError])).toEqual([
      ["cancelled", `its dependency "${root.id}" was dead-lettered`],
      ["waiting", null],
      ["cancelled", `its dependency "${strict.id}" was cancelled`],
    ]);
    // Named while its dependency is a dead letter: refused, as a cancelled one is; requeued likewise.
    const refused = await rest(t.url, "POST", "/tasks", { queue: "s", dependsOn: [root.id], onDependencyFailure: "cancel" });
    expect([refused.status, refused.body.message]).toEqual([409, `dependsOn[0]: task "${root.id}" is dead_letter, so a task depending on it would be cancelled (onDependencyFailure "cancel") (requeue it first)`]);
    const requeue = await rest(t.url, "POST", `/tasks/${strict.id}/requeue`, {});
    expect(requeue.status).toBe(409);
    // The root requeued: the strict task can come back, and both go on when it completes.
    await api.tasks.requeue.mutate({ taskId: root.id });
    expect(await api.tasks.requeue.mutate({ taskId: strict.id })).toMatchObject({ status: "waiting" });
    await run(t, "r", root.id, "w");
    expect((await Promise.all([strict, patient].map((x) => api.tasks.get.query({ taskId: x.id })))).map((x) => x.status)).toEqual(["pending", "pending"]);
    // Its idempotencyKey compares the policy as sent (left out: wait).
    await api.tasks.enqueue.mutate({ queue: "s", onDependencyFailure: "cancel", idempotencyKey: "p" });
    expect((await rest(t.url, "POST", "/tasks", { queue: "s", idempotencyKey: "p" })).body.details.differs).toEqual(["onDependencyFailure"]);
  });

  it("one budget a write: a sweep that dead-letters two tasks with 300 dependents each cancels 500 of them in its write, the job the rest", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const roots = [await api.tasks.enqueue.mutate({ queue: "r", maxAttempts: 1 }), await api.tasks.enqueue.mutate({ queue: "r", maxAttempts: 1 })];
    for (const root of roots) await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 300 }, () => ({ queue: "s", dependsOn: [root.id], onDependencyFailure: "cancel" as const })) });
    await api.tasks.claimMany.mutate({ agentId: "w", queues: ["r"], limit: 2, context: false });
    // Both leases swept as of an hour on, in one write: both runs were the last.
    expect(await t.server.services.db.write("tasks.expireLeases", { batchSize: 500, asOf: Date.now() + 3_600_000 })).toMatchObject({ expired: 2 });
    const cancelled = () => withDatabase(t!, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE queue = 's' AND status = 'cancelled'`).pluck().get());
    expect(cancelled()).toBe(500);
    await t.server.services.tasks.settleDependents();
    expect(cancelled()).toBe(600);
  });

  it("the CLI's tasks get says what a waiting task waits for, each dependency with its state", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q" });
    const b = await api.tasks.enqueue.mutate({ queue: "q" });
    await run(t, "q", a.id, "w");
    const c = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [a.id, b.id] });
    const shown = await runOperator({ args: ["tasks", "get", c.id], env: { COORDINATION_URL: t.url } });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^status\s+waiting$/m);
    expect(shown.stdout).toMatch(new RegExp(`^depends on\\s+${a.id} \\(completed\\), ${b.id} \\(pending\\)$`, "m"));
    // A dependency retention deleted since is said to be so.
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET finishedAt = finishedAt - 7200000 WHERE id = ?`).run(a.id));
    expect(await t.server.services.retention.prune(Date.now())).toBe(1);
    const later = await runOperator({ args: ["tasks", "get", c.id], env: { COORDINATION_URL: t.url } });
    expect(later.stdout).toMatch(new RegExp(`^depends on\\s+${a.id} \\(deleted\\), ${b.id} \\(pending\\)$`, "m"));
  });

  it('enqueueMany names its own earlier tasks as "tasks[i]": a graph in one write, sent again the same; a later or outside one is a 400', async () => {
    t = await startTestServer();
    const api = t.api;
    const graph = {
      tasks: [
        { queue: "research", payload: { topic: "a" }, idempotencyKey: "plan-1:a" },
        { queue: "research", payload: { topic: "b" }, idempotencyKey: "plan-1:b" },
        { queue: "synth", dependsOn: ["tasks[0]", "tasks[1]"], idempotencyKey: "plan-1:synth" },
        { queue: "review", dependsOn: ["tasks[2]"], idempotencyKey: "plan-1:review" },
      ],
    };
    const [a, b, synth, review] = await api.tasks.enqueueMany.mutate(graph);
    expect([synth!.status, synth!.dependsOn, review!.status, review!.dependsOn]).toEqual(["waiting", [a!.id, b!.id], "waiting", [synth!.id]]);
    // The planner crashed and sends the same batch again: the same tasks, nothing added.
    expect((await api.tasks.enqueueMany.mutate(graph)).map((x) => x.id)).toEqual([a!.id, b!.id, synth!.id, review!.id]);
    await run(t, "research", a!.id, "w");
    await run(t, "research", b!.id, "w");
    await run(t, "synth", synth!.id, "w");
    expect((await api.tasks.get.query({ taskId: review!.id })).status).toBe("pending");

    const later = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "x", dependsOn: ["tasks[1]"] }, { queue: "x" }] });
    expect([later.status, later.body.message]).toEqual([400, 'tasks[0].dependsOn[0]: "tasks[1]" is not a task before this one in the batch: a task may wait only for the batch\'s tasks before it']);
    for (const typo of ["tasks[01]", "tasks[ 1]", "TASKS[0]"]) {
      const refused = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "x" }, { queue: "x" }, { queue: "x", dependsOn: [typo] }] });
      expect([refused.status, refused.body.message]).toEqual([400, `tasks[2].dependsOn[0]: "${typo}" is not a reference to a task of the batch: write "tasks[i]", i the task's index (0, 1, 2…)`]);
    }
    const outside = await rest(t.url, "POST", "/tasks", { queue: "x", dependsOn: ["tasks[0]"] });
    expect([outside.status, outside.body.message]).toEqual([400, 'dependsOn[0]: "tasks[0]" names a task of a batch, which only tasks.enqueueMany\'s tasks may do: give the task\'s id']);
    // tasks[0] is `a` again (its key): naming it both ways is naming it twice.
    const twice = await rest(t.url, "POST", "/tasks/batch", { tasks: [graph.tasks[0], { queue: "x", dependsOn: ["tasks[0]", a!.id] }] });
    expect([twice.status, twice.body.message]).toEqual([400, `tasks[1].dependsOn[1]: names task "${a!.id}" twice`]);
    expect((await api.tasks.stats.query({ queue: "x" })).queues).toEqual([]);
  });

  it("a cancel's reason is the task's lastError, in its event, and named by the tasks cancelled with it; the CLI takes --reason", async () => {
    t = await startTestServer();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q" });
    const b = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [a.id] });
    expect(await api.tasks.cancel.mutate({ taskId: a.id, reason: "the planner gave up" })).toMatchObject({ status: "cancelled", lastError: "the planner gave up" });
    expect((await eventsOf(t, a.id)).at(-1)!.payload).toMatchObject({ previousStatus: "pending", reason: "the planner gave up" });
    expect((await api.tasks.get.query({ taskId: b.id })).lastError).toBe(`its dependency "${a.id}" was cancelled: the planner gave up`);
    const c = await api.tasks.enqueue.mutate({ queue: "q" });
    const cli = await runOperator({ args: ["tasks", "cancel", c.id, "--reason", "duplicate of another"], env: { COORDINATION_URL: t.url } });
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^last error\s+duplicate of another$/m);
    // Without one, the lastError a task had stays.
    const d = await api.tasks.enqueue.mutate({ queue: "q" });
    expect((await api.tasks.cancel.mutate({ taskId: d.id })).lastError).toBeNull();
    const long = await rest(t.url, "POST", `/tasks/${d.id}/cancel`, { reason: "x".repeat(1001) });
    expect([long.status, long.body.code]).toEqual([400, "INVALID_INPUT"]);
  });
});
