// A task's run time limit: tasks.enqueue's maxRunMs (or the server's maxRunMs, kept with the task
// when it is enqueued) bounds how long one run may last from its claim. Every lease a run is
// given or renewed with ends no later than claimedAt + maxRunMs (the task's runDeadlineAt while
// it is claimed); a heartbeat after that is refused, and the lease sweeper ends the run as a
// lease that ran out, charged, its task.lease_expired saying timedOut. Times here are the
// server's own (read from its answers) and only waited past: a sleep is a lower bound, whatever
// the machine's speed.
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, runWorker, RunTimeLimitReached, type TaskRun } from "../client/index.js";
import { HeldLease, momentNow } from "../client/lease-calls.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { pastTime } from "./helpers/past-time.js";
import { rest, startTestServer, startTestServerWithout, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const MINUTE = 60_000;

/** A server whose lease sweeper runs only when a test asks: what happens before it is the calls' own. */
const startWithoutSweeper = (overrides: Parameters<typeof startTestServer>[0] = {}) => startTestServerWithout("leaseSweeper", overrides);

describe("tasks.enqueue's maxRunMs", () => {
  it("is answered; a run's lease, at its claim and at every renewal, ends no later than claimedAt + maxRunMs (runDeadlineAt)", async () => {
    t = await startTestServer();
    const api = t.api;
    const long = await api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 30 * MINUTE });
    expect([long.maxRunMs, long.runDeadlineAt]).toEqual([30 * MINUTE, null]);
    const run = await api.tasks.claim.mutate({ agentId: "a", leaseMs: MINUTE, context: false });
    const claimedAt = run!.claimedAt.getTime();
    expect([run!.id, run!.runDeadlineAt!.getTime(), run!.leaseExpiresAt.getTime()]).toEqual([long.id, claimedAt + 30 * MINUTE, claimedAt + MINUTE]);
    // A renewal for longer than the run has left ends at its deadline; the deadline does not move.
    const renewed = await api.tasks.heartbeat.mutate({ taskId: long.id, agentId: "a", leaseMs: 3_600_000 });
    expect([renewed.leaseExpiresAt!.getTime(), renewed.runDeadlineAt!.getTime()]).toEqual([claimedAt + 30 * MINUTE, claimedAt + 30 * MINUTE]);
    const reported = await api.tasks.heartbeat.mutate({ taskId: long.id, agentId: "a", leaseMs: 3_600_000, progress: { step: 2 } });
    expect([reported.leaseExpiresAt!.getTime(), reported.progress]).toEqual([claimedAt + 30 * MINUTE, { step: 2 }]);
    // Shorter than the lease asked for: the claim's lease is cut at once.
    const short = await api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 2000 });
    const shortRun = await api.tasks.claim.mutate({ agentId: "a", leaseMs: MINUTE, context: false });
    expect([shortRun!.id, shortRun!.leaseExpiresAt.getTime()]).toEqual([short.id, shortRun!.claimedAt.getTime() + 2000]);
    // Settled, the task keeps its limit and has no deadline.
    const done = await api.tasks.complete.mutate({ taskId: long.id, agentId: "a" });
    expect([done.maxRunMs, done.runDeadlineAt]).toEqual([30 * MINUTE, null]);
    // A task without one has none; the REST answer carries both.
    const plain = await api.tasks.enqueue.mutate({ queue: "q" });
    expect([plain.maxRunMs, plain.runDeadlineAt]).toEqual([null, null]);
    const got = await rest(t.url, "GET", `/tasks/${short.id}`);
    expect([got.body.maxRunMs, got.body.runDeadlineAt]).toEqual([2000, new Date(shortRun!.claimedAt.getTime() + 2000).toISOString()]);
    const enqueued = await api.events.list.query({ types: ["task.enqueued"], limit: 10 });
    expect(enqueued.map((e) => (e.payload as { maxRunMs?: number }).maxRunMs)).toEqual([30 * MINUTE, 2000, undefined]);
    // The claim's event says the lease it granted, and when the run must end.
    const claimed = await api.events.list.query({ types: ["task.claimed"], limit: 10 });
    expect(claimed.map((e) => [(e.payload as { leaseExpiresAt: string }).leaseExpiresAt, (e.payload as { runDeadlineAt?: string }).runDeadlineAt])).toEqual([
      [run!.leaseExpiresAt.toISOString(), run!.runDeadlineAt!.toISOString()],
      [shortRun!.leaseExpiresAt.toISOString(), shortRun!.runDeadlineAt!.toISOString()],
    ]);
  });

  it("cuts the leases of claimMany, complete-and-claim and a repeated keyed claim alike", async () => {
    t = await startTestServer();
    const api = t.api;
    const limited = await api.tasks.enqueue.mutate({ queue: "m", maxRunMs: 5000 });
    const free = await api.tasks.enqueue.mutate({ queue: "m" });
    const many = await api.tasks.claimMany.mutate({ agentId: "a", queues: ["m"], limit: 2, leaseMs: MINUTE, context: false });
    expect(many.map((task) => [task.id, task.leaseExpiresAt.getTime() - task.claimedAt.getTime(), task.runDeadlineAt && task.runDeadlineAt.getTime() - task.claimedAt.getTime()])).toEqual([
      [limited.id, 5000, 5000],
      [free.id, MINUTE, null],
    ]);
    const next = await api.tasks.enqueue.mutate({ queue: "n", maxRunMs: 7000 });
    const both = await api.tasks.completeAndClaim.mutate({ taskId: free.id, agentId: "a", next: { queues: ["n"], leaseMs: MINUTE, context: false } });
    expect([both.next!.id, both.next!.leaseExpiresAt.getTime() - both.next!.claimedAt.getTime()]).toEqual([next.id, 7000]);
    // A keyed claim sent again (its answer lost) renews the lease it took, no further than the deadline.
    const keyed = await api.tasks.enqueue.mutate({ queue: "k", maxRunMs: 9000 });
    const first = await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], leaseMs: 1000, idempotencyKey: "c1", context: false });
    const again = await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], leaseMs: MINUTE, idempotencyKey: "c1", context: false });
    expect([first!.id, again!.id, again!.leaseExpiresAt.getTime()]).toEqual([keyed.id, keyed.id, first!.claimedAt.getTime() + 9000]);
  });

  it("refuses a limit that is not a whole number of ms from 1 to 366 days, naming the field (a batch's task too); a key sent again compares it when given", async () => {
    t = await startTestServer();
    for (const bad of [0, -5, 1.5, 366 * 24 * 3_600_000 + 1, "60000"]) {
      const answer = await rest(t.url, "POST", "/tasks", { queue: "q", maxRunMs: bad });
      expect([answer.status, answer.body.code, answer.body.details.issues[0].path]).toEqual([400, "INVALID_INPUT", "maxRunMs"]);
    }
    const batch = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "b" }, { queue: "b", maxRunMs: 0 }] });
    expect([batch.status, batch.body.details.issues[0].path]).toEqual([400, "tasks[1].maxRunMs"]);
    expect((await t.api.tasks.stats.query({ queue: "b" })).queues).toEqual([]);

    const task = await t.api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 5000, idempotencyKey: "k" });
    expect((await t.api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 5000, idempotencyKey: "k" })).id).toBe(task.id);
    expect((await t.api.tasks.enqueue.mutate({ queue: "q", idempotencyKey: "k" })).id).toBe(task.id);
    const other = await rest(t.url, "POST", "/tasks", { queue: "q", maxRunMs: 6000, idempotencyKey: "k" });
    expect([other.status, other.body.code, other.body.details]).toEqual([409, "IDEMPOTENCY_MISMATCH", { taskId: task.id, differs: ["maxRunMs"] }]);
  });

  it("left out, is the server's maxRunMs when the task is enqueued (0: none)", async () => {
    t = await startTestServer({ maxRunMs: 45_000 });
    const api = t.api;
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).maxRunMs).toBe(45_000);
    expect((await api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 1000 })).maxRunMs).toBe(1000);
    const keyed = await api.tasks.enqueue.mutate({ queue: "q", idempotencyKey: "k" });
    const dir = t.dir;
    await t.stop();
    // Restarted without one: new tasks have none; the key sent again as it was finds its task.
    t = await startTestServer({}, dir);
    expect((await t.api.tasks.enqueue.mutate({ queue: "q" })).maxRunMs).toBeNull();
    expect(await t.api.tasks.enqueue.mutate({ queue: "q", idempotencyKey: "k" })).toMatchObject({ id: keyed.id, maxRunMs: 45_000 });
  });
});

describe("a run past its time limit", () => {
  it("is renewed by no heartbeat (409 naming the limit); the sweeper ends it as timed out, retried at once or dead-lettered at its last attempt", async () => {
    t = await startWithoutSweeper();
    const api = t.api;
    const retried = await api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 300, maxAttempts: 2 });
    const last = await api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 300, maxAttempts: 1 });
    const settledLate = await api.tasks.enqueue.mutate({ queue: "q", maxRunMs: 300 });
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push((await api.tasks.claim.mutate({ agentId: "w", leaseMs: MINUTE, context: false }))!);
    expect(runs.map((run) => run.id)).toEqual([retried.id, last.id, settledLate.id]);
    await pastTime(runs[2]!.runDeadlineAt!);

    const refused = await rest(t.url, "POST", `/tasks/${retried.id}/heartbeat`, { agentId: "w", leaseToken: runs[0]!.leaseToken });
    const deadline = runs[0]!.runDeadlineAt!.toISOString();
    expect([refused.status, refused.body.code, refused.body.details]).toEqual([409, "LEASE_CONFLICT", { status: "claimed", leaseOwner: "w", leaseToken: 1, runDeadlineAt: deadline }]);
    expect(refused.body.message).toBe(`the run of task "${retried.id}" under lease 1 reached its time limit (maxRunMs 300 ms) at ${deadline}: no heartbeat renews it, and the server ends it`);
    // Nor is it given back uncharged: a looping agent would run it for ever, never charged.
    const release = await rest(t.url, "POST", `/tasks/${retried.id}/release`, { agentId: "w", leaseToken: 1 });
    expect([release.status, release.body.message, release.body.details.runDeadlineAt]).toEqual([
      409,
      `the run of task "${retried.id}" under lease 1 reached its time limit (maxRunMs 300 ms) at ${deadline}: it is not given back uncharged, and the server ends it`,
      deadline,
    ]);
    // A settle that comes before the sweeper is taken, as for any lease that ran out unswept.
    expect((await api.tasks.complete.mutate({ taskId: settledLate.id, agentId: "w", result: "late" })).status).toBe("completed");

    const { head } = await api.events.head.query();
    expect(await t.server.services.tasks.expireLeases()).toBe(2);
    const reason = "its run reached its time limit (maxRunMs 300 ms; held by w)";
    expect(await api.tasks.get.query({ taskId: retried.id })).toMatchObject({ status: "pending", attempts: 1, lastError: reason, leaseOwner: null, runDeadlineAt: null });
    expect(await api.tasks.get.query({ taskId: last.id })).toMatchObject({ status: "dead_letter", attempts: 1, lastError: reason });
    const events = await api.events.list.query({ afterSeq: head, types: ["task.lease_expired", "task.retried", "task.dead_lettered"], limit: 10 });
    expect(events.map((e) => [e.type, e.payload])).toEqual([
      ["task.lease_expired", { taskId: retried.id, queue: "q", agentId: "w", attempt: 1, reason, timedOut: true, maxRunMs: 300 }],
      ["task.retried", expect.objectContaining({ taskId: retried.id, delayMs: 0 })],
      ["task.lease_expired", { taskId: last.id, queue: "q", agentId: "w", attempt: 1, reason, timedOut: true, maxRunMs: 300 }],
      ["task.dead_lettered", { taskId: last.id, queue: "q", attempts: 1, error: reason }],
    ]);
    // Its holder's calls now say how its lease ended, and when its time was up, not only what the task is.
    const ended = await rest(t.url, "POST", `/tasks/${last.id}/complete`, { agentId: "w", leaseToken: 1 });
    expect([ended.status, ended.body.message, ended.body.details]).toEqual([
      409,
      `lease 1 of agent "w" on task "${last.id}" has ended (its last error: ${JSON.stringify(reason)}) and the task is dead_letter`,
      { status: "dead_letter", leaseOwner: "w", leaseToken: 1, runDeadlineAt: runs[1]!.runDeadlineAt!.toISOString() },
    ]);
    // A caller naming no agent and no lease held none of it: it is told what the task is.
    const anonymous = await rest(t.url, "POST", `/tasks/${last.id}/complete`, {});
    expect([anonymous.status, anonymous.body.message]).toEqual([409, `the caller does not hold the lease on task "${last.id}": it is dead_letter`]);
    // The next run has a time limit of its own, from its claim.
    const again = await api.tasks.claim.mutate({ agentId: "v", leaseMs: MINUTE, context: false });
    expect([again!.id, again!.attempts, again!.runDeadlineAt!.getTime() - again!.claimedAt.getTime()]).toEqual([retried.id, 2, 300]);
  });

  it("a keyed claim sent again after its run's limit does not hand that run out again: it claims anew", async () => {
    t = await startWithoutSweeper();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "k", maxRunMs: 300 });
    const first = await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], leaseMs: MINUTE, idempotencyKey: "c1", context: false });
    await pastTime(first!.runDeadlineAt!);
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], leaseMs: MINUTE, idempotencyKey: "c1", context: false })).toBeNull();
    const other = await api.tasks.enqueue.mutate({ queue: "k" });
    expect((await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], leaseMs: MINUTE, idempotencyKey: "c1", context: false }))!.id).toBe(other.id);
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseToken: 1 });
  });

  it("a lease that ran out before its limit is no timeout; a steal of a timed-out run says it timed out, and the thief's run has its own limit", async () => {
    // Writes to the file from here count as another process's: a lease is judged run out twice busyTimeoutMs after its end.
    t = await startWithoutSweeper({ busyTimeoutMs: 100 });
    const api = t.api;
    const lapsed = await api.tasks.enqueue.mutate({ queue: "q", maxRunMs: MINUTE });
    const run = await api.tasks.claim.mutate({ agentId: "a", leaseMs: 200, context: false });
    await pastTime(run!.leaseExpiresAt);
    const { head } = await api.events.head.query();
    expect(await t.server.services.tasks.expireLeases()).toBe(1);
    expect(await api.tasks.get.query({ taskId: lapsed.id })).toMatchObject({ status: "pending", lastError: "lease expired (held by a)" });

    const timedOut = await api.tasks.claim.mutate({ agentId: "a", leaseMs: MINUTE, context: false });
    expect(timedOut!.id).toBe(lapsed.id);
    // Cut short in the file: this run's limit passed (a minute cannot be waited out here).
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET maxRunMs = 100, leaseExpiresAt = claimedAt + 100 WHERE id = ?`).run(lapsed.id));
    await pastTime(new Date(timedOut!.claimedAt.getTime() + 100 + 2 * t.config.busyTimeoutMs));
    const stolen = await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "a", leaseMs: MINUTE });
    expect(stolen.map((task) => [task.id, task.leaseOwner, task.runDeadlineAt!.getTime() - task.claimedAt.getTime()])).toEqual([[lapsed.id, "thief", 100]]);
    const expired = await api.events.list.query({ afterSeq: head, types: ["task.lease_expired"], limit: 10 });
    expect(expired.map((e) => [(e.payload as { reason: string }).reason, (e.payload as { timedOut?: true }).timedOut])).toEqual([
      ["lease expired (held by a)", undefined],
      ["its run reached its time limit (maxRunMs 100 ms; held by a)", true],
    ]);
  });
});

describe("refusals of a lease that ended", () => {
  it("name the failed run only to its own lease's calls, though the next claim shares its millisecond (one write batch)", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "s", maxAttempts: 5 });
    const first = (await api.tasks.claim.mutate({ agentId: "a", queues: ["s"], context: false }))!;
    // The fail (retried at once) and the next claim, sent together: most often one write batch, one time.
    const [, second] = await Promise.all([
      api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, error: "boom", retryAfterMs: 0 }),
      (async () => (await sleep(0), api.tasks.claim.mutate({ agentId: "a", queues: ["s"], context: false })))(),
    ]);
    expect(second!.leaseToken).toBe(2);
    await api.tasks.release.mutate({ taskId: task.id, agentId: "a", leaseToken: 2 });
    // Lease 2 was given back, not failed: its calls are told what the task is, not lease 1's error.
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", leaseToken: 2 })).rejects.toMatchObject({
      message: `agent "a" does not hold the lease on task "${task.id}": it is pending`,
    });
    // Nor is a fail of lease 2 with lease 1's error taken for that fail sent again.
    await expect(api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: 2, error: "boom", retryAfterMs: 0 })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    expect((await api.tasks.get.query({ taskId: task.id })).errorHistory).toHaveLength(1);
  });

  it("say the time limit ended a run only when it did; a fail after the server ended the run is told so, not taken for a fail sent again", async () => {
    t = await startWithoutSweeper();
    const api = t.api;
    // A lease that ran out before the run's limit, swept after it: no timeout.
    const lapsed = await api.tasks.enqueue.mutate({ queue: "l", maxRunMs: 400 });
    const run = (await api.tasks.claim.mutate({ agentId: "a", queues: ["l"], leaseMs: 100, context: false }))!;
    await pastTime(run.runDeadlineAt!);
    expect(await t.server.services.tasks.expireLeases()).toBe(1);
    expect((await api.tasks.get.query({ taskId: lapsed.id })).lastError).toBe("lease expired (held by a)");
    const beat = await rest(t.url, "POST", `/tasks/${lapsed.id}/heartbeat`, { agentId: "a", leaseToken: 1 });
    expect([beat.status, beat.body.message, beat.body.details]).toEqual([
      409,
      `lease 1 of agent "a" on task "${lapsed.id}" has ended (its last error: "lease expired (held by a)") and the task is pending`,
      { status: "pending", leaseOwner: null, leaseToken: 1 },
    ]);
    // A run the time limit ended: its holder's fail, come late, is told how the run ended.
    const timed = await api.tasks.enqueue.mutate({ queue: "m", maxRunMs: 200 });
    const timedRun = (await api.tasks.claim.mutate({ agentId: "a", queues: ["m"], leaseMs: MINUTE, context: false }))!;
    await pastTime(timedRun.runDeadlineAt!);
    expect(await t.server.services.tasks.expireLeases()).toBe(1);
    const fail = await rest(t.url, "POST", `/tasks/${timed.id}/fail`, { agentId: "a", leaseToken: 1, error: "handler crashed" });
    expect([fail.status, fail.body.message, fail.body.details]).toEqual([
      409,
      `lease 1 of agent "a" on task "${timed.id}" has ended (its last error: "its run reached its time limit (maxRunMs 200 ms; held by a)") and the task is pending`,
      { status: "pending", leaseOwner: null, leaseToken: 1, runDeadlineAt: timedRun.runDeadlineAt!.toISOString() },
    ]);
    expect((await api.tasks.get.query({ taskId: timed.id })).errorHistory).toHaveLength(1);
  });

  it("runWorker aborts with what the server said when a renewal is refused for another reason after its run's end here (the lease given back under it), not RunTimeLimitReached", async () => {
    t = await startWithoutSweeper();
    const task = await t.api.tasks.enqueue.mutate({ queue: "c", maxRunMs: 3000, maxAttempts: 1 });
    // Heartbeats' answers take 2.5 s on their way back: the refusal arrives after the run's end.
    const reason = await abortReason(t, /tasks\.heartbeat/, 2500, "w2", "c", async (run) => {
      await sleep(1000);
      // Given back in the agent's name (an operator on an open server), not due for an hour: the
      // renewal is what finds it (a cancel would reach the worker at once, by its event).
      await t!.api.tasks.release.mutate({ taskId: task.id, agentId: "w2", delayMs: 3_600_000 });
      void run.reportProgress({ step: 2 });
    });
    expect(reason).not.toBeInstanceOf(RunTimeLimitReached);
    expect(String(reason)).toMatch(/^Error: lease lost: agent "w2" does not hold the lease on task "[^"]+": it is pending$/);
  });

  it("runWorker aborts with RunTimeLimitReached when a renewal is refused past the limit before its own clock says so (a claim's answer laid from when it arrived)", async () => {
    t = await startWithoutSweeper();
    await t.api.tasks.enqueue.mutate({ queue: "w", maxRunMs: 1000, maxAttempts: 1 });
    // The claim's answer takes 400 ms on its way back (a slow link, a busy client).
    const reason = await abortReason(t, /tasks\.claim(\?|,|$)/, 400, "w1", "w", async (run) => {
      // Past the server's deadline (its claim + 1000 ms), before this worker's (the answer's arrival + 1000 ms).
      await sleep(700);
      void run.reportProgress({ step: 2 });
    });
    expect(reason).toBeInstanceOf(RunTimeLimitReached);
  });
});

/**
 * Runs `agentId`'s worker on `queue` (30 s leases) through a client whose answers to the calls
 * `slowCalls` matches take `delayMs` more on their way back; its handler does `first`, then waits
 * for its signal. The reason that signal aborted with, once the worker stopped.
 */
async function abortReason(server: TestServer, slowCalls: RegExp, delayMs: number, agentId: string, queue: string, first: (run: TaskRun) => Promise<void>): Promise<unknown> {
  const slow = createCoordinationClient({
    url: server.url,
    fetch: (async (url: string, init: RequestInit) => {
      const response = await fetch(url, init);
      if (slowCalls.test(String(url))) await sleep(delayMs);
      return response;
    }) as never,
  });
  let reason: unknown;
  const worker = await runWorker({
    api: slow.api,
    agentId,
    queues: [queue],
    leaseMs: 30_000,
    waitMs: 200,
    onError: () => undefined,
    handler: async (_task, signal, run) => {
      await first(run);
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      reason = signal.reason;
    },
  });
  await vi.waitFor(() => expect(reason).toBeDefined(), { timeout: 30_000, interval: 20 });
  await worker.stop();
  await slow.close();
  return reason;
}

describe("the surfaces of a run time limit", () => {
  it("runWorker aborts a handler whose run reached its limit, renews no lease cut at the limit again, and leaves the run to the server", async () => {
    t = await startTestServer({ leaseSweepMs: 50 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "slow", maxRunMs: 1500, maxAttempts: 1 });
    // Each heartbeat's answer, as it came: whether its lease was cut at the run's deadline.
    const heartbeats: Array<{ status: number; cut: boolean }> = [];
    const counting = createCoordinationClient({
      url: t.url,
      fetch: (async (url: string, init: RequestInit) => {
        const response = await fetch(url, init);
        if (String(url).includes("tasks.heartbeat")) {
          const text = await response.clone().text();
          const lease = /"leaseExpiresAt":"([^"]+)"/.exec(text)?.[1];
          heartbeats.push({ status: response.status, cut: lease !== undefined && lease === /"runDeadlineAt":"([^"]+)"/.exec(text)?.[1] });
        }
        return response;
      }) as never,
    });
    let aborted: unknown;
    const worker = await runWorker({
      api: counting.api,
      agentId: "slowpoke",
      queues: ["slow"],
      leaseMs: 600,
      waitMs: 200,
      onError: () => undefined,
      handler: async (_task, signal) => {
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        aborted = signal.reason;
        return "never stored";
      },
    });
    const settled = await api.tasks.wait.query({ taskId: task.id, waitMs: 30_000 });
    await worker.stop();
    await counting.close();
    expect(settled).toMatchObject({ status: "dead_letter", lastError: "its run reached its time limit (maxRunMs 1500 ms; held by slowpoke)", result: null });
    expect(aborted).toBeInstanceOf(RunTimeLimitReached);
    expect([(aborted as RunTimeLimitReached).maxRunMs, (aborted as Error).message]).toEqual([1500, "the run reached its time limit (maxRunMs 1500 ms): the server ends it, and no heartbeat renews it"]);
    expect([worker.completed, worker.failed, worker.lost]).toEqual([0, 0, 1]);
    // Renewed as usual until an answer's lease was cut at the deadline, then not again: a renewal
    // would get no further (without the limit known, each came at a third of what was left).
    expect(heartbeats.filter((h) => h.cut).length).toBeLessThanOrEqual(1);
    expect(heartbeats.filter((h) => h.status !== 200)).toEqual([]);
  });

  it("a lease laid from an answer older than its moment (a list's) is laid again by its first renewal: given up at the run's limit, not later", async () => {
    t = await startWithoutSweeper();
    await t.api.tasks.enqueue.mutate({ queue: "o", maxRunMs: 6000 });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "w", queues: ["o"], leaseMs: 1000, context: false });
    // Two seconds on, the task as a list answers it: its updatedAt is its claim's.
    await sleep(2000);
    const receivedAt = momentNow();
    const listed = (await t.api.tasks.list.query({ agentId: "w", status: "claimed", limit: 10 })).items[0]!;
    const lease = new HeldLease(t.api, { ...listed, status: "claimed", leaseOwner: "w", leaseExpiresAt: listed.leaseExpiresAt!, claimedAt: listed.claimedAt!, context: [] }, "w", 1000, () => undefined, receivedAt);
    const lost = await new Promise<{ at: number; why: unknown }>((resolve) => lease.keepAlive((why) => resolve({ at: Date.now(), why })));
    lease.stop();
    expect(lost.why).toBeInstanceOf(RunTimeLimitReached);
    // Laid from the list's answer alone it would end two seconds after the server's deadline; a
    // second here is room for a late timer on a busy machine.
    expect(lost.at).toBeLessThan(claimed!.runDeadlineAt!.getTime() + 1000);
  });

  it("a schedule's task gives each run its maxRunMs; MCP's enqueue_task takes it; the operator's tasks get shows it", async () => {
    t = await startTestServer();
    const api = t.api;
    const set = await api.schedules.set.mutate({ scheduleId: "s", everyMs: 3_600_000, task: { queue: "sq", maxRunMs: 90_000 } });
    expect(set.schedule.task.maxRunMs).toBe(90_000);
    const scheduled = await api.tasks.get.query({ taskId: set.schedule.nextTaskId! });
    expect(scheduled.maxRunMs).toBe(90_000);
    // The same definition set again changes nothing; another limit is another definition.
    expect((await api.schedules.set.mutate({ scheduleId: "s", everyMs: 3_600_000, task: { queue: "sq", maxRunMs: 90_000 } })).changed).toBe(false);
    expect((await api.schedules.set.mutate({ scheduleId: "s", everyMs: 3_600_000, task: { queue: "sq" } })).schedule.task.maxRunMs).toBeNull();

    const mcp = await connectMcp(t.url, {});
    const enqueued = await callTool(mcp, "enqueue_task", { queue: "mq", maxRunMs: 120_000 });
    expect(enqueued.maxRunMs).toBe(120_000);
    const env = { COORDINATION_URL: t.url };

    const claimed = await api.tasks.claim.mutate({ agentId: "a", queues: ["mq"], leaseMs: MINUTE, context: false });
    const cli = await runOperator({ args: ["tasks", "get", enqueued.id], env });
    expect(cli.code).toBe(0);
    const deadline = claimed!.runDeadlineAt!.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
    expect(cli.stdout).toMatch(new RegExp(`^run limit +2m \\(this run until ${deadline}\\)$`, "m"));
    await api.tasks.complete.mutate({ taskId: enqueued.id, agentId: "a" });
    expect((await runOperator({ args: ["tasks", "get", enqueued.id], env })).stdout).toMatch(/^run limit +2m$/m);
    expect((await runOperator({ args: ["tasks", "get", scheduled.id], env })).stdout).toMatch(/^run limit +90s$/m);
    // The operator's schedules set takes --max-run, and a schedule shows it with its bounds.
    const set2 = await runOperator({ args: ["schedules", "set", "nightly", "--every", "1h", "--queue", "sq", "--max-run", "90s"], env });
    expect([set2.code, set2.stdout.split("\n")[0]]).toEqual([0, "created: schedule nightly: every 1h, each run 90s at most"]);
    expect((await api.schedules.get.query({ scheduleId: "nightly" })).task.maxRunMs).toBe(90_000);
    const refused = await runOperator({ args: ["schedules", "set", "nightly", "--every", "1h", "--max-run", "367d"], env });
    expect([refused.code, refused.stderr.split("\n")[0]]).toEqual([2, 'coordination: --max-run must be a length of time from 1ms to 366d, such as 30s, 10m or 2h (got "367d")']);
  });
});
