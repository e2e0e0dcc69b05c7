// Task expiry: tasks.enqueue's expiresAt (or ttlMs after the task falls due) is the time after
// which no run of it starts. A task still waiting to run then (pending, a retry's backoff, waiting
// for its dependencies) is never claimed, and the task-expiry job cancels it as expired, with what
// waits on it; a run under way then goes on. Times here are set by the server's clock and only
// waited past (a sleep is a lower bound, whatever the machine's speed), or written into the file.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { pastTime } from "./helpers/past-time.js";
import { rest, startTestServer, startTestServerWithout, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const HOUR = 3_600_000;
/** A server whose expiry job runs only when a test asks (runNow): what a claim does before it is the claim's own. */
const startWithoutExpiryJob = (overrides: Parameters<typeof startTestServer>[0] = {}) => startTestServerWithout("taskExpiry", overrides);


/** Makes task `id`'s expiry come now, in the file (a run under way cannot be made to outlast an hour otherwise). */
function expireNow(server: TestServer, id: string): void {
  withDatabase(server, (db) => db.prepare(`UPDATE tasks SET expiresAt = ? WHERE id = ?`).run(Date.now() - 1, id));
}

describe("tasks.enqueue's expiresAt and ttlMs", () => {
  it("answer the expiry; ttlMs counts from when the task falls due; an expiry at or before that, or both fields, is a 400 naming the field", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const now = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: HOUR });
    expect(now.expiresAt!.getTime()).toBe(now.runAt.getTime() + HOUR);
    const later = await api.tasks.enqueue.mutate({ queue: "q", delayMs: HOUR, ttlMs: 5000 });
    expect(later.expiresAt!.getTime()).toBe(later.runAt.getTime() + 5000);
    // A runAt that passed: it falls due when stored, and ttlMs counts from then.
    const overdue = await api.tasks.enqueue.mutate({ queue: "q", runAt: new Date(Date.now() - HOUR), ttlMs: 5000 });
    expect(overdue.expiresAt!.getTime()).toBe(overdue.createdAt.getTime() + 5000);
    const at = new Date(Date.now() + 2 * HOUR);
    expect((await api.tasks.enqueue.mutate({ queue: "q", expiresAt: at })).expiresAt).toEqual(at);
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).expiresAt).toBeNull();
    const enqueued = await api.events.list.query({ types: ["task.enqueued"], limit: 10 });
    expect(enqueued.map((e) => (e.payload as { expiresAt?: string }).expiresAt)).toEqual([now.expiresAt!.toISOString(), later.expiresAt!.toISOString(), overdue.expiresAt!.toISOString(), at.toISOString(), undefined]);
    // No later than the last time an answer may carry: what is answered can be sent back.
    const farthest = await rest(t.url, "POST", "/tasks", { queue: "q", runAt: "9999-12-31T23:59:59.999Z", ttlMs: 1000, idempotencyKey: "far" });
    expect([farthest.status, farthest.body.expiresAt]).toEqual([200, "9999-12-31T23:59:59.999Z"]);
    expect((await rest(t.url, "POST", "/tasks", { queue: "q", runAt: "9999-12-31T23:59:59.999Z", expiresAt: farthest.body.expiresAt, idempotencyKey: "far" })).body.id).toBe(farthest.body.id);

    const past = await rest(t.url, "POST", "/tasks", { queue: "q", expiresAt: "2020-01-01T00:00:00.000Z" });
    expect([past.status, past.body.code]).toEqual([400, "INVALID_INPUT"]);
    expect(past.body.message).toMatch(/^expiresAt: 2020-01-01T00:00:00\.000Z is not after the task falls due \(\S+Z, now\): it would never run$/);
    const runAt = new Date(Date.now() + HOUR);
    const beforeDue = await rest(t.url, "POST", "/tasks", { queue: "q", runAt: runAt.toISOString(), expiresAt: runAt.toISOString() });
    expect([beforeDue.status, beforeDue.body.message]).toEqual([400, `expiresAt: ${runAt.toISOString()} is not after the task falls due (${runAt.toISOString()}): it would never run`]);
    const both = await rest(t.url, "POST", "/tasks", { queue: "q", expiresAt: at.toISOString(), ttlMs: 5 });
    expect([both.status, both.body.message]).toEqual([400, "ttlMs: give expiresAt or ttlMs, not both"]);
    const zero = await rest(t.url, "POST", "/tasks", { queue: "q", ttl_ms: 0 });
    expect([zero.status, zero.body.details.issues[0].path]).toEqual([400, "ttlMs"]);
    // In a batch, the task is named; nothing of the batch is stored.
    const batch = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "b" }, { queue: "b", expiresAt: "2020-01-01T00:00:00Z" }] });
    expect([batch.status, batch.body.message]).toEqual([400, expect.stringMatching(/^tasks\[1\]\.expiresAt: 2020-01-01T00:00:00\.000Z is not after the task falls due/)]);
    expect((await api.tasks.stats.query({ queue: "b" })).queues).toEqual([]);
  });

  it("an expired task is never claimed; the expiry job cancels it, with what waits on it, and wakes its waiters", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q", payload: { n: 1 }, ttlMs: 50 });
    const dependent = await api.tasks.enqueue.mutate({ queue: "other", dependsOn: [task.id] });
    const fresh = await api.tasks.enqueue.mutate({ queue: "q", payload: { n: 2 }, ttlMs: HOUR });
    const waited = api.tasks.wait.query({ taskId: task.id, waitMs: 60_000 });
    await pastTime(task.expiresAt!);
    // The job has not run: the claim passes the expired task over by itself, and takes the next.
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["q"], context: false })).toMatchObject({ id: fresh.id });
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["q"], context: false })).toBeNull();
    expect(await api.tasks.claimMany.mutate({ agentId: "a", limit: 10, context: false })).toEqual([]);
    expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("pending");
    // A limited queue's claims read another index: the same there.
    await api.queues.setLimit.mutate({ queue: "q", maxLeased: 5 });
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["q"], context: false })).toBeNull();

    const { head } = await api.events.head.query();
    await t.server.services.jobs.taskExpiry.runNow();
    const reason = `expired: its expiresAt (${task.expiresAt!.toISOString()}) passed before its next run started`;
    expect(await waited).toMatchObject({ id: task.id, status: "cancelled", lastError: reason, attempts: 0 });
    expect(await api.tasks.get.query({ taskId: dependent.id })).toMatchObject({ status: "cancelled", lastError: `its dependency "${task.id}" was cancelled: ${reason}` });
    const events = await api.events.list.query({ afterSeq: head, types: ["task.cancelled"], limit: 10 });
    expect(events.map((e) => e.payload)).toEqual([
      { taskId: task.id, queue: "q", previousStatus: "pending", agentId: null, reason, expired: true },
      { taskId: dependent.id, queue: "other", previousStatus: "waiting", agentId: null, reason: `its dependency "${task.id}" was cancelled: ${reason}` },
    ]);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^coordination_task_transitions_total\{queue="q",transition="expired"\} 1$/m);
    expect(metrics).not.toMatch(/transition="expired"\} [^1]|queue="other",transition="expired"/);
    // Nothing left to expire: the next run writes nothing.
    await t.server.services.jobs.taskExpiry.runNow();
    expect((await api.events.head.query()).head).toBe(events.at(-1)!.seq);
  });

  it("a task waiting for others expires while it waits: its dependency completing later readies nothing", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const first = await api.tasks.enqueue.mutate({ queue: "q" });
    const waiting = await api.tasks.enqueue.mutate({ queue: "q", dependsOn: [first.id], ttlMs: 40 });
    await pastTime(waiting.expiresAt!);
    await t.server.services.jobs.taskExpiry.runNow();
    expect(await api.tasks.get.query({ taskId: waiting.id })).toMatchObject({ status: "cancelled", attempts: 0 });
    // Its dependency completing later makes nothing of it ready.
    const run = await api.tasks.claim.mutate({ agentId: "a", context: false });
    await api.tasks.complete.mutate({ taskId: run!.id, agentId: "a" });
    expect(await api.tasks.claim.mutate({ agentId: "a", context: false })).toBeNull();
    expect((await api.tasks.get.query({ taskId: waiting.id })).status).toBe("cancelled");
  });

  it("a run under way at its expiry goes on and completes; one that fails then, attempts left, is dead-lettered with its own error, as its retry could not start", async () => {
    t = await startWithoutExpiryJob({ busyTimeoutMs: 100 });
    await t.server.services.jobs.leaseSweeper.stop();
    const api = t.api;
    const a = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: HOUR });
    const b = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: HOUR });
    const c = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: HOUR });
    const runA = await api.tasks.claim.mutate({ agentId: "w", context: false });
    const runB = await api.tasks.claim.mutate({ agentId: "w", context: false });
    const runC = await api.tasks.claim.mutate({ agentId: "w", leaseMs: 1, context: false });
    for (const task of [a, b, c]) expireNow(t, task.id);
    await t.server.services.jobs.taskExpiry.runNow();
    expect((await api.tasks.get.query({ taskId: a.id })).status).toBe("claimed");
    await api.tasks.heartbeat.mutate({ taskId: a.id, agentId: "w", leaseToken: runA!.leaseToken });
    expect(await api.tasks.complete.mutate({ taskId: a.id, agentId: "w", leaseToken: runA!.leaseToken, result: 1 })).toMatchObject({ status: "completed", result: 1 });

    const { head } = await api.events.head.query();
    const fail = { taskId: b.id, agentId: "w", leaseToken: runB!.leaseToken, error: "provider 503", retryAfterMs: 0 };
    const failed = await api.tasks.fail.mutate(fail);
    expect(failed).toMatchObject({ status: "dead_letter", attempts: 1, lastError: "provider 503" });
    // Sent again (its answer lost): the same answer, not a conflict.
    expect(await api.tasks.fail.mutate(fail)).toEqual(failed);
    const events = await api.events.list.query({ afterSeq: head, types: ["task.failed", "task.dead_lettered", "task.retried"], limit: 10 });
    expect(events.map((e) => [e.type, (e.payload as { willRetry?: boolean }).willRetry ?? (e.payload as { expired?: boolean }).expired])).toEqual([
      ["task.failed", false],
      ["task.dead_lettered", true],
    ]);
    // Its lease run out past its expiry: the same, with the sweeper's reason.
    await pastTime(new Date(runC!.leaseExpiresAt.getTime() + 250));
    await t.server.services.tasks.expireLeases();
    expect(await api.tasks.get.query({ taskId: c.id })).toMatchObject({ status: "dead_letter", lastError: "lease expired (held by w)" });
    // A retry that starts before the expiry is a retry, as ever; one that would start after it is none.
    const d = await api.tasks.enqueue.mutate({ queue: "d", ttlMs: HOUR });
    const e = await api.tasks.enqueue.mutate({ queue: "e", ttlMs: HOUR });
    const runD = await api.tasks.claim.mutate({ agentId: "w", queues: ["d"], context: false });
    const runE = await api.tasks.claim.mutate({ agentId: "w", queues: ["e"], context: false });
    expect(await api.tasks.fail.mutate({ taskId: d.id, agentId: "w", leaseToken: runD!.leaseToken, error: "flaky", retryAfterMs: 60_000 })).toMatchObject({ status: "pending", lastError: "flaky" });
    expect(await api.tasks.fail.mutate({ taskId: e.id, agentId: "w", leaseToken: runE!.leaseToken, error: "down for a while", retryAfterMs: 2 * HOUR })).toMatchObject({ status: "dead_letter", lastError: "down for a while" });
  });

  it("a steal takes no run whose expiry came: it takes the next, and leaves that one to the sweeper", async () => {
    // The file written beside the server (expireNow) makes it allow 2 × busyTimeoutMs after a
    // lease's end for another process's heartbeat; and the sweeper waits for the test to run it.
    t = await startWithoutExpiryJob({ busyTimeoutMs: 100 });
    await t.server.services.jobs.leaseSweeper.stop();
    const api = t.api;
    const expiring = await api.tasks.enqueue.mutate({ queue: "q", priority: 0, ttlMs: HOUR });
    const plain = await api.tasks.enqueue.mutate({ queue: "q", priority: 1 });
    const first = await api.tasks.claim.mutate({ agentId: "x", leaseMs: 1, context: false });
    const second = await api.tasks.claim.mutate({ agentId: "x", leaseMs: 1, context: false });
    expect([first!.id, second!.id]).toEqual([expiring.id, plain.id]);
    expireNow(t, expiring.id);
    await pastTime(new Date(second!.leaseExpiresAt.getTime() + 250));
    const stolen = await api.tasks.steal.mutate({ agentId: "y", limit: 1 });
    expect(stolen.map((task) => task.id)).toEqual([plain.id]);
    // Not charged, nor told it was stolen: its holder's lease ran out, which the sweeper sees to.
    expect(await api.tasks.get.query({ taskId: expiring.id })).toMatchObject({ status: "claimed", leaseOwner: "x", attempts: 1, lastError: null });
    await t.server.services.tasks.expireLeases();
    expect(await api.tasks.get.query({ taskId: expiring.id })).toMatchObject({ status: "dead_letter", lastError: "lease expired (held by x)" });
  });

  it("a requeue brings an expired task back to run, its expiry dropped; one still ahead is kept", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: 30 });
    await pastTime(task.expiresAt!);
    await t.server.services.jobs.taskExpiry.runNow();
    const back = await api.tasks.requeue.mutate({ taskId: task.id });
    expect(back).toMatchObject({ status: "pending", expiresAt: null });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toMatchObject({ id: task.id });

    const later = new Date(Date.now() + HOUR);
    const dead = await api.tasks.enqueue.mutate({ queue: "q", expiresAt: later, maxAttempts: 1 });
    const run = await api.tasks.claim.mutate({ agentId: "w", context: false });
    expect(await api.tasks.fail.mutate({ taskId: dead.id, agentId: "w", leaseToken: run!.leaseToken, error: "bad" })).toMatchObject({ status: "dead_letter" });
    expect(await api.tasks.requeue.mutate({ taskId: dead.id })).toMatchObject({ status: "pending", expiresAt: later });
  });

  it("an idempotencyKey sent again compares expiresAt, never ttlMs, and finds its task after it expired", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const at = new Date(Date.now() + HOUR);
    const task = await api.tasks.enqueue.mutate({ queue: "q", expiresAt: at, idempotencyKey: "k" });
    expect((await api.tasks.enqueue.mutate({ queue: "q", expiresAt: at, idempotencyKey: "k" })).id).toBe(task.id);
    const other = await rest(t.url, "POST", "/tasks", { queue: "q", expiresAt: new Date(at.getTime() + 1).toISOString(), idempotencyKey: "k" });
    expect([other.status, other.body.code, other.body.details.differs]).toEqual([409, "IDEMPOTENCY_MISMATCH", ["expiresAt"]]);
    const ttl = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: 20, idempotencyKey: "t" });
    expect((await api.tasks.enqueue.mutate({ queue: "q", ttlMs: 99_999, idempotencyKey: "t" })).id).toBe(ttl.id);
    await pastTime(ttl.expiresAt!);
    await t.server.services.jobs.taskExpiry.runNow();
    // Its expiry passed, and it is answered as it is, not refused as an expiry in the past.
    expect(await api.tasks.enqueue.mutate({ queue: "q", expiresAt: ttl.expiresAt!, idempotencyKey: "t" })).toMatchObject({ id: ttl.id, status: "cancelled" });
    // Requeued, it lost that expiry; what it was enqueued with is still what a repeat is compared with.
    expect(await api.tasks.requeue.mutate({ taskId: ttl.id })).toMatchObject({ expiresAt: null });
    expect((await api.tasks.enqueue.mutate({ queue: "q", expiresAt: ttl.expiresAt!, idempotencyKey: "t" })).id).toBe(ttl.id);
    const otherAfterRequeue = await rest(t.url, "POST", "/tasks", { queue: "q", expiresAt: new Date(Date.now() + HOUR).toISOString(), idempotencyKey: "t" });
    expect([otherAfterRequeue.status, otherAfterRequeue.body.details?.differs]).toEqual([409, ["expiresAt"]]);
    // Enqueued without one, then claimed: asked again with an expiry, it is not that task.
    const none = await api.tasks.enqueue.mutate({ queue: "plain", idempotencyKey: "n" });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["plain"], context: false });
    const withExpiry = await rest(t.url, "POST", "/tasks", { queue: "plain", expiresAt: new Date(Date.now() + HOUR).toISOString(), idempotencyKey: "n" });
    expect([withExpiry.status, withExpiry.body.details?.taskId, withExpiry.body.details?.differs]).toEqual([409, none.id, ["expiresAt"]]);
  });

  it("tasks.update will not move a task to fall due at or after its expiry", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: HOUR });
    const byDelay = await rest(t.url, "PATCH", `/tasks/${task.id}`, { delayMs: 2 * HOUR });
    expect([byDelay.status, byDelay.body.details.issues[0].path, byDelay.body.details.expiresAt]).toEqual([400, "delayMs", task.expiresAt!.toISOString()]);
    expect(byDelay.body.message).toMatch(/^delayMs: \S+ is not before the task expires \(its expiresAt, \S+\): it would never run$/);
    const byTime = await rest(t.url, "PATCH", `/tasks/${task.id}`, { runAt: task.expiresAt!.toISOString() });
    expect([byTime.status, byTime.body.message]).toEqual([400, `runAt: ${task.expiresAt!.toISOString()} is not before the task expires (its expiresAt, ${task.expiresAt!.toISOString()}): it would never run`]);
    const earlier = new Date(task.expiresAt!.getTime() - 1000);
    expect(await api.tasks.update.mutate({ taskId: task.id, runAt: earlier, priority: 1 })).toMatchObject({ runAt: earlier, priority: 1, expiresAt: task.expiresAt });
  });
});

describe("tasks.update's expiresAt", () => {
  it("moves or clears the expiry of a task that waits to run, with its event; a repeat is compared with the expiry enqueued", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q", ttlMs: 60_000, idempotencyKey: "k" });
    const later = new Date(task.expiresAt!.getTime() + HOUR);
    const { head } = await api.events.head.query();
    const extended = await api.tasks.update.mutate({ taskId: task.id, expiresAt: later });
    expect(extended).toMatchObject({ expiresAt: later, priority: 5, runAt: task.runAt });
    // The same sent again changes nothing, and writes no event.
    expect(await api.tasks.update.mutate({ taskId: task.id, expiresAt: later })).toEqual(extended);
    const cleared = await rest(t.url, "PATCH", `/tasks/${task.id}`, { expiresAt: null });
    expect([cleared.status, cleared.body.expiresAt]).toEqual([200, null]);
    const events = await api.events.list.query({ afterSeq: head, types: ["task.updated"], limit: 10 });
    expect(events.map((e) => e.payload)).toEqual([
      { taskId: task.id, queue: "q", priority: 5, previousPriority: 5, capability: null, targetAgentId: null, runAt: task.runAt.toISOString(), previousRunAt: task.runAt.toISOString(), expiresAt: later.toISOString(), previousExpiresAt: task.expiresAt!.toISOString(), updatedBy: null },
      { taskId: task.id, queue: "q", priority: 5, previousPriority: 5, capability: null, targetAgentId: null, runAt: task.runAt.toISOString(), previousRunAt: task.runAt.toISOString(), expiresAt: null, previousExpiresAt: later.toISOString(), updatedBy: null },
    ]);
    // The enqueue sent again is compared with what it asked for, not with what the operator made of it.
    expect((await api.tasks.enqueue.mutate({ queue: "q", expiresAt: task.expiresAt!, idempotencyKey: "k" })).id).toBe(task.id);
    const other = await rest(t.url, "POST", "/tasks", { queue: "q", expiresAt: later.toISOString(), idempotencyKey: "k" });
    expect([other.status, other.body.details?.differs]).toEqual([409, ["expiresAt"]]);

    // An expiry that would come before the task falls due, or has passed, is refused, naming it.
    const delayed = await api.tasks.enqueue.mutate({ queue: "q", delayMs: HOUR });
    const early = await rest(t.url, "PATCH", `/tasks/${delayed.id}`, { expiresAt: delayed.runAt.toISOString() });
    expect([early.status, early.body.message]).toEqual([400, `expiresAt: ${delayed.runAt.toISOString()} is not after the task falls due (${delayed.runAt.toISOString()}): it would never run`]);
    const past = await rest(t.url, "PATCH", `/tasks/${task.id}`, { expiresAt: "2020-01-01T00:00:00Z" });
    expect(past.status).toBe(400);
    expect(past.body.message).toMatch(/^expiresAt: 2020-01-01T00:00:00\.000Z is not after the task falls due \(\S+, now\): it would never run$/);
    // Moved with its time in one call: the expiry is weighed against the new time.
    const both = await api.tasks.update.mutate({ taskId: delayed.id, delayMs: 2 * HOUR, expiresAt: new Date(delayed.runAt.getTime() + 3 * HOUR) });
    expect(both.expiresAt!.getTime() - both.runAt.getTime()).toBeGreaterThan(0);

    // The operator's command: a time, or never.
    const env = { COORDINATION_URL: t.url };
    expect(await runOperator({ args: ["tasks", "update", delayed.id, "--expires", "never"], env })).toMatchObject({ code: 0 });
    expect((await api.tasks.get.query({ taskId: delayed.id })).expiresAt).toBeNull();
    const at = new Date(Date.now() + 5 * HOUR);
    expect(await runOperator({ args: ["tasks", "update", delayed.id, "--expires", at.toISOString()], env })).toMatchObject({ code: 0 });
    expect((await api.tasks.get.query({ taskId: delayed.id })).expiresAt).toEqual(at);
    // A length of time: from now, by the command's clock.
    const before = Date.now();
    expect(await runOperator({ args: ["tasks", "update", delayed.id, "--expires", "6h"], env })).toMatchObject({ code: 0 });
    const expiry = (await api.tasks.get.query({ taskId: delayed.id })).expiresAt!.getTime();
    expect(expiry >= before + 6 * HOUR && expiry <= Date.now() + 6 * HOUR).toBe(true);
  });

  it("an expiry of 0 (1970) given to a task that had none is refused, as any past one is", async () => {
    t = await startWithoutExpiryJob();
    const task = await t.api.tasks.enqueue.mutate({ queue: "z" });
    const zero = await rest(t.url, "PATCH", `/tasks/${task.id}`, { expiresAt: 0 });
    expect([zero.status, zero.body.message]).toEqual([400, expect.stringMatching(/^expiresAt: 1970-01-01T00:00:00\.000Z is not after the task falls due/)]);
    expect((await t.api.tasks.get.query({ taskId: task.id })).expiresAt).toBeNull();
  });

  it("a parked claim wakes for an expired task (not cancelled yet) given a later expiry, or none", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "revive", ttlMs: 30 });
    await pastTime(task.expiresAt!);
    // Parked for less than a parked claim waits before it looks again by itself (30 s): only the wake-up brings the task.
    const parked = api.tasks.claim.mutate({ agentId: "w", queues: ["revive"], waitMs: 20_000, context: false });
    await expect.poll(() => parkedLongPolls(t!.url, "claim"), { timeout: 10_000 }).toBe(1);
    await api.tasks.update.mutate({ taskId: task.id, expiresAt: null });
    expect(await parked).toMatchObject({ id: task.id, expiresAt: null });
  });

  it("a repeat is compared with the expiry enqueued, whatever an operator set or cleared since", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const none = await api.tasks.enqueue.mutate({ queue: "q", idempotencyKey: "n" });
    const set = new Date(Date.now() + HOUR);
    await api.tasks.update.mutate({ taskId: none.id, expiresAt: set });
    const asked = await rest(t.url, "POST", "/tasks", { queue: "q", expiresAt: set.toISOString(), idempotencyKey: "n" });
    expect([asked.status, asked.body.details?.differs]).toEqual([409, ["expiresAt"]]);
    await api.tasks.update.mutate({ taskId: none.id, expiresAt: null });
    expect((await rest(t.url, "POST", "/tasks", { queue: "q", expiresAt: set.toISOString(), idempotencyKey: "n" })).status).toBe(409);
    expect((await api.tasks.enqueue.mutate({ queue: "q", idempotencyKey: "n" })).id).toBe(none.id);
  });
});

describe("a schedule's ttlMs", () => {
  it("each run expires ttlMs after its planned time; an expired run is skipped and the next one enqueued", async () => {
    t = await startWithoutExpiryJob();
    const api = t.api;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "report", everyMs: HOUR, startAt: new Date(Date.now() - 1000), task: { queue: "reports", ttlMs: 25 } });
    expect(schedule.task.ttlMs).toBe(25);
    const first = await api.tasks.get.query({ taskId: schedule.nextTaskId! });
    expect(first.expiresAt!.getTime()).toBe(first.runAt.getTime() + 25);
    await pastTime(first.expiresAt!);
    expect(await api.tasks.claim.mutate({ agentId: "w", queues: ["reports"], context: false })).toBeNull();
    await t.server.services.jobs.taskExpiry.runNow();
    expect(await api.tasks.get.query({ taskId: first.id })).toMatchObject({ status: "cancelled", lastError: expect.stringMatching(/^expired: /) });
    const after = await api.schedules.get.query({ scheduleId: "report" });
    expect(after).toMatchObject({ state: "running", runs: 0 });
    expect(after.nextTaskId).not.toBe(first.id);
    expect(after.nextRunAt!.getTime()).toBeGreaterThan(first.runAt.getTime());
    const next = await api.tasks.get.query({ taskId: after.nextTaskId! });
    expect(next.expiresAt!.getTime()).toBe(next.runAt.getTime() + 25);
    // The same definition set again changes nothing; another ttlMs is another definition.
    expect((await api.schedules.set.mutate({ scheduleId: "report", everyMs: HOUR, startAt: schedule.startAt, task: { queue: "reports", ttlMs: 25 } })).changed).toBe(false);
    expect((await api.schedules.set.mutate({ scheduleId: "report", everyMs: HOUR, startAt: schedule.startAt, task: { queue: "reports", ttlMs: null } })).schedule.task.ttlMs).toBeNull();
    // The operator's command: --ttl, shown with the schedule's bounds.
    const env = { COORDINATION_URL: t.url };
    const set = await runOperator({ args: ["schedules", "set", "digest", "--every", "1h", "--queue", "reports", "--ttl", "5m"], env });
    expect([set.code, set.stdout.split("\n")[0]]).toEqual([0, "created: schedule digest: every 1h, a run not started 5m after its time skipped"]);
    expect((await api.schedules.get.query({ scheduleId: "digest" })).task.ttlMs).toBe(300_000);
    const refused = await runOperator({ args: ["schedules", "set", "digest", "--every", "1h", "--ttl", "soon"], env });
    expect([refused.code, refused.stderr.split("\n")[0]]).toEqual([2, 'coordination: --ttl must be a length of time such as 30s, 5m or 1h (got "soon")']);
  });
});

describe("where expiry shows", () => {
  it("MCP's enqueue_task takes ttlMs; the operator's tasks get says when a task expires, or never", async () => {
    t = await startWithoutExpiryJob();
    const mcp = await connectMcp(t.url, {});
    const enqueued = await callTool(mcp, "enqueue_task", { queue: "mcp", payload: { q: "quote" }, ttlMs: 60_000 });
    const task = await t.api.tasks.get.query({ taskId: enqueued.id });
    expect(task.expiresAt!.getTime()).toBe(task.runAt.getTime() + 60_000);
    const plain = await t.api.tasks.enqueue.mutate({ queue: "cli" });
    const env = { COORDINATION_URL: t.url };
    const when = `${task.expiresAt!.toISOString().replace("T", " ").slice(0, 19)}Z`;
    expect((await runOperator({ args: ["tasks", "get", task.id], env })).stdout).toMatch(new RegExp(`^expires at\\s+${when}$`, "m"));
    expect((await runOperator({ args: ["tasks", "get", plain.id], env })).stdout).toMatch(/^expires at\s+never$/m);
  });
});
