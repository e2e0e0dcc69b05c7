// Changing a task that waits to run: tasks.update (PATCH /tasks/{taskId}) gives a pending or
// waiting task another priority and another time to fall due, as an operator reorders a backlog
// or holds back work that should not run yet. The claim indexes follow (a task moved ahead is
// claimed first; one postponed is out of them until due; one made due in a paused queue is held),
// parked claims wake for it, and an enqueue sent again with its idempotencyKey still finds it.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { openCoordination } from "../src/index.js";
import { makeTempDir, rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const HOUR = 3_600_000;
const claimOf = (queue: string) => ({ agentId: "a", queues: [queue], context: false });

describe("tasks.update", () => {
  it("a task given a better priority is claimed first; its task.updated says what changed; the same change again writes nothing", async () => {
    t = await startTestServer();
    const api = t.api;
    const first = await api.tasks.enqueue.mutate({ queue: "backlog", payload: { n: 1 } });
    const second = await api.tasks.enqueue.mutate({ queue: "backlog", payload: { n: 2 } });
    const urgent = await api.tasks.enqueue.mutate({ queue: "backlog", payload: { n: 3 } });
    const { head } = await api.events.head.query();
    const updated = await api.tasks.update.mutate({ taskId: urgent.id, priority: 0 });
    expect(updated).toMatchObject({ id: urgent.id, status: "pending", priority: 0, runAt: urgent.runAt });
    expect(updated.updatedAt.getTime()).toBeGreaterThan(urgent.createdAt.getTime());
    const events = await api.events.list.query({ afterSeq: head, types: ["task.updated"], limit: 10 });
    expect(events.map((e) => e.payload)).toEqual([
      { taskId: urgent.id, queue: "backlog", priority: 0, previousPriority: 5, capability: null, targetAgentId: null, runAt: urgent.runAt.toISOString(), previousRunAt: urgent.runAt.toISOString(), updatedBy: null },
    ]);
    // A repeat (its answer lost) finds it so: answered as it is, no event.
    const before = (await api.events.head.query()).head;
    expect(await api.tasks.update.mutate({ taskId: urgent.id, priority: 0 })).toEqual(await api.tasks.get.query({ taskId: urgent.id }));
    expect((await api.events.head.query()).head).toBe(before);
    // The order: the urgent one, then the rest as created; one moved back goes behind them.
    await api.tasks.update.mutate({ taskId: first.id, priority: 9 });
    const order: string[] = [];
    for (let i = 0; i < 3; i++) order.push((await api.tasks.claim.mutate(claimOf("backlog")))!.id);
    expect(order).toEqual([urgent.id, second.id, first.id]);
  });

  it("postponed, a due task is out of the claims until its new time; brought forward it is due at once; stats count it scheduled", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q" });
    const later = new Date(Date.now() + HOUR);
    const postponed = await api.tasks.update.mutate({ taskId: task.id, runAt: later });
    expect(postponed).toMatchObject({ status: "pending", runAt: later, priority: 5 });
    expect(await api.tasks.claim.mutate(claimOf("q"))).toBeNull();
    expect((await api.tasks.stats.query({ queue: "q" })).queues[0]).toMatchObject({ queue: "q", scheduled: 1, nextDueAt: later });
    // Over REST, a time already passed: due now (not at the past time asked for).
    const sentAt = Date.now();
    const due = await rest(t.url, "PATCH", `/tasks/${task.id}`, { runAt: "2020-01-01T00:00:00Z" });
    expect(due.status).toBe(200);
    expect(Date.parse(due.body.runAt)).toBeGreaterThanOrEqual(sentAt - 1000);
    expect(Date.parse(due.body.runAt)).toBeLessThan(later.getTime());
    expect((await api.tasks.stats.query({ queue: "q" })).queues[0]).toMatchObject({ scheduled: 0, nextDueAt: null });
    // Due already and asked to be due by now again: as it is.
    const head = (await api.events.head.query()).head;
    expect(await api.tasks.update.mutate({ taskId: task.id, runAt: new Date(0) })).toEqual(await api.tasks.get.query({ taskId: task.id }));
    expect((await api.events.head.query()).head).toBe(head);
    expect((await api.tasks.claim.mutate(claimOf("q")))?.id).toBe(task.id);
  });

  it("a parked claim wakes for a task brought forward: at once when due, at its new time when that is soon", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "later", delayMs: HOUR });
    // Parked for less than a parked claim waits before it looks again by itself (30 s): only the event brings the task.
    const parked = api.tasks.claim.mutate({ agentId: "a", queues: ["later"], waitMs: 20_000, context: false });
    await expect.poll(() => parkedLongPolls(t!.url, "claim"), { timeout: 10_000 }).toBe(1);
    await api.tasks.update.mutate({ taskId: task.id, delayMs: 0 });
    expect((await parked)?.id).toBe(task.id);

    const soon = await api.tasks.enqueue.mutate({ queue: "soon", delayMs: HOUR });
    const waiting = api.tasks.claim.mutate({ agentId: "a", queues: ["soon"], waitMs: 20_000, context: false });
    await expect.poll(() => parkedLongPolls(t!.url, "claim"), { timeout: 10_000 }).toBe(1);
    const moved = await api.tasks.update.mutate({ taskId: soon.id, delayMs: 2000 });
    const claimed = await waiting;
    expect(claimed?.id).toBe(soon.id);
    expect(Date.now()).toBeGreaterThanOrEqual(moved.runAt.getTime());
  });

  it("a waiting task keeps its new time and priority for when its dependencies complete", async () => {
    t = await startTestServer();
    const api = t.api;
    const gate = await api.tasks.enqueue.mutate({ queue: "gate" });
    const waiting = await api.tasks.enqueue.mutate({ queue: "chain", dependsOn: [gate.id] });
    const { head } = await api.events.head.query();
    const later = new Date(Date.now() + HOUR);
    const updated = await api.tasks.update.mutate({ taskId: waiting.id, priority: 1, runAt: later });
    expect(updated).toMatchObject({ status: "waiting", priority: 1, runAt: later });
    const [event] = await api.events.list.query({ afterSeq: head, types: ["task.updated"], limit: 10 });
    expect(event!.payload).toMatchObject({ taskId: waiting.id, priority: 1, previousPriority: 5, runAt: later.toISOString(), waitingFor: 1 });
    const run = await api.tasks.claim.mutate(claimOf("gate"));
    await api.tasks.complete.mutate({ taskId: run!.id, agentId: "a" });
    expect(await api.tasks.get.query({ taskId: waiting.id })).toMatchObject({ status: "pending", priority: 1, runAt: later });
    expect(await api.tasks.claim.mutate(claimOf("chain"))).toBeNull();
    await api.tasks.update.mutate({ taskId: waiting.id, delayMs: 0 });
    expect(await api.tasks.claim.mutate(claimOf("chain"))).toMatchObject({ id: waiting.id, priority: 1 });
  });

  it("a paused queue's task made due is held until the queue resumes", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.queues.pause.mutate({ queue: "held" });
    const task = await api.tasks.enqueue.mutate({ queue: "held", delayMs: HOUR });
    await api.tasks.update.mutate({ taskId: task.id, delayMs: 0, priority: 2 });
    expect(await api.tasks.claim.mutate(claimOf("held"))).toBeNull();
    expect(await api.tasks.claim.mutate({ agentId: "a", context: false })).toBeNull();
    await api.queues.resume.mutate({ queue: "held" });
    expect(await api.tasks.claim.mutate(claimOf("held"))).toMatchObject({ id: task.id, priority: 2 });
  });

  it("refuses what it cannot change, saying why: a task that ran or runs, a schedule's run given another time, no change, both times", async () => {
    t = await startTestServer();
    const api = t.api;
    const running = await api.tasks.enqueue.mutate({ queue: "r" });
    await api.tasks.claim.mutate(claimOf("r"));
    const done = await api.tasks.enqueue.mutate({ queue: "d" });
    await api.tasks.complete.mutate({ taskId: (await api.tasks.claim.mutate(claimOf("d")))!.id, agentId: "a" });
    const cancelled = await api.tasks.enqueue.mutate({ queue: "c" });
    await api.tasks.cancel.mutate({ taskId: cancelled.id });
    for (const [taskId, message] of [
      [running.id, `task "${running.id}" is claimed: only a task that waits to run (pending or waiting) can be updated (it runs already)`],
      [done.id, `task "${done.id}" is completed: only a task that waits to run (pending or waiting) can be updated (it has completed)`],
      [cancelled.id, `task "${cancelled.id}" is cancelled: only a task that waits to run (pending or waiting) can be updated (it has settled: requeue brings it back)`],
    ]) {
      const answer = await rest(t.url, "PATCH", `/tasks/${taskId}`, { priority: 1 });
      expect([answer.status, answer.body.code, answer.body.message]).toEqual([409, "INVALID_STATE", message]);
    }
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "hourly", everyMs: HOUR, task: { queue: "s" } });
    const moved = await rest(t.url, "PATCH", `/tasks/${schedule.nextTaskId}`, { delayMs: 1000 });
    expect([moved.status, moved.body.code, moved.body.message]).toEqual([
      409,
      "INVALID_STATE",
      `task "${schedule.nextTaskId}" is the next run of schedule "hourly": it falls due when the schedule planned it (schedules.trigger runs it now; schedules.set plans other times); its priority may be changed`,
    ]);
    expect(await api.tasks.update.mutate({ taskId: schedule.nextTaskId!, priority: 0 })).toMatchObject({ priority: 0, runAt: schedule.nextRunAt });
    // The task as stored (its enqueue's answer says, beside it, that no other task answered it).
    const { deduplicated: _, replayed: __, ...task } = await api.tasks.enqueue.mutate({ queue: "x" });
    for (const [body, message] of [
      [{}, "give priority, runAt, delayMs, expiresAt, payload or checkpoint: what to change"],
      [{ runAt: Date.now(), delayMs: 10 }, "delayMs: give runAt or delayMs, not both"],
      [{ priority: -1 }, "priority: must be at least 0"],
      [{ priority: 1, colour: "red" }, 'unknown field "colour"'],
    ] as const) {
      const answer = await rest(t.url, "PATCH", `/tasks/${task.id}`, body);
      expect([answer.status, answer.body.code]).toEqual([400, "INVALID_INPUT"]);
      expect(answer.body.message).toBe(message);
    }
    const unknown = await rest(t.url, "PATCH", "/tasks/no-such-task", { priority: 1 });
    expect([unknown.status, unknown.body.code]).toEqual([404, "TASK_NOT_FOUND"]);
    // Nothing of the refused calls was written.
    expect(await api.tasks.get.query({ taskId: task.id })).toEqual(task);
  });

  it("an enqueue sent again with its idempotencyKey after an update finds its task: what it asked is compared, not what the task became", async () => {
    const dir = makeTempDir();
    const c = await openCoordination({ settings: { dbPath: join(dir, "update.db"), logLevel: "silent" } });
    try {
      const runAt = new Date(Date.now() + HOUR);
      for (let i = 0; i < 100; i++) {
        const task = await c.tasks.enqueue({ queue: "k", priority: 5, idempotencyKey: `k${i}`, runAt });
        // In the enqueue's millisecond too: the task is no longer as enqueued.
        await c.tasks.update(task.id, { priority: 1, delayMs: 0 });
        expect(await c.tasks.enqueue({ queue: "k", priority: 5, idempotencyKey: `k${i}`, runAt })).toMatchObject({ id: task.id, priority: 1 });
      }
      // Changed twice, the first priority is still the one compared; another is a mismatch.
      const task = await c.tasks.enqueue({ queue: "k", priority: 3, idempotencyKey: "twice" });
      await c.tasks.update(task.id, { priority: 1 });
      await c.tasks.update(task.id, { priority: 7 });
      expect((await c.tasks.enqueue({ queue: "k", priority: 3, idempotencyKey: "twice" })).id).toBe(task.id);
      await expect(c.tasks.enqueue({ queue: "k", priority: 7, idempotencyKey: "twice" })).rejects.toMatchObject({
        code: "IDEMPOTENCY_MISMATCH",
        message: `idempotencyKey "twice" was used for task "${task.id}" with a different priority`,
      });
    } finally {
      await c.close();
    }
  });

  it("a schedule's run retried or triggered: a retry's time may change, a due run asked to be due now is answered as it is", async () => {
    t = await startTestServer();
    const api = t.api;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "s", everyMs: HOUR, task: { queue: "s", maxAttempts: 3 } });
    const { task: run } = await api.schedules.trigger.mutate({ scheduleId: "s" });
    // Due (triggered), and asked to be due now: nothing to change, so no refusal.
    expect(await api.tasks.update.mutate({ taskId: run.id, delayMs: 0 })).toEqual(await api.tasks.get.query({ taskId: run.id }));
    const claimed = await api.tasks.claim.mutate(claimOf("s"));
    expect(claimed?.id).toBe(schedule.nextTaskId);
    await api.tasks.fail.mutate({ taskId: run.id, agentId: "a", error: "flaky", retryAfterMs: HOUR });
    // Its retry waits an hour: no time its schedule planned (its next run is another task).
    const retried = await api.tasks.update.mutate({ taskId: run.id, delayMs: 0 });
    expect(retried).toMatchObject({ status: "pending", attempts: 1 });
    expect(retried.runAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect((await api.tasks.claim.mutate(claimOf("s")))?.id).toBe(run.id);
  });

  it("a release or a fail sent again after an update (their answers lost) gets the answer the first one gave, not a conflict", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "rel" });
    const lease = (await api.tasks.claim.mutate(claimOf("rel")))!;
    await api.tasks.release.mutate({ taskId: task.id, agentId: "a", leaseToken: lease.leaseToken, delayMs: 60_000 });
    await api.tasks.update.mutate({ taskId: task.id, priority: 1 });
    expect(await api.tasks.release.mutate({ taskId: task.id, agentId: "a", leaseToken: lease.leaseToken, delayMs: 60_000 })).toMatchObject({ id: task.id, status: "pending", priority: 1 });
    await api.tasks.promote.mutate({ taskId: task.id });
    expect(await api.tasks.release.mutate({ taskId: task.id, agentId: "a", leaseToken: lease.leaseToken, delayMs: 60_000 })).toMatchObject({ id: task.id, status: "pending" });

    const failing = await api.tasks.enqueue.mutate({ queue: "fail" });
    const run = (await api.tasks.claim.mutate(claimOf("fail")))!;
    await api.tasks.fail.mutate({ taskId: failing.id, agentId: "a", leaseToken: run.leaseToken, error: "timeout", retryAfterMs: HOUR });
    await api.tasks.update.mutate({ taskId: failing.id, priority: 0 });
    expect(await api.tasks.fail.mutate({ taskId: failing.id, agentId: "a", leaseToken: run.leaseToken, error: "timeout", retryAfterMs: HOUR })).toMatchObject({ id: failing.id, status: "pending", attempts: 1, priority: 0 });
    // A run began since: a fail of the lease before is a conflict again.
    await api.tasks.update.mutate({ taskId: failing.id, delayMs: 0 });
    const second = (await api.tasks.claim.mutate(claimOf("fail")))!;
    await api.tasks.release.mutate({ taskId: failing.id, agentId: "a", leaseToken: second.leaseToken });
    const stale = await rest(t.url, "POST", `/tasks/${failing.id}/fail`, { agentId: "a", leaseToken: run.leaseToken, error: "timeout", retryAfterMs: HOUR });
    expect([stale.status, stale.body.code]).toEqual([409, "LEASE_CONFLICT"]);
  });

  it("its OpenAPI operation requires a body: an empty one is a 400", async () => {
    t = await startTestServer();
    const document = (await rest(t.url, "GET", "/openapi.json")).body;
    const operation = document.paths["/tasks/{taskId}"].patch;
    expect(operation.operationId).toBe("tasks_update");
    expect(operation.requestBody.required).toBe(true);
    expect(Object.keys(operation.requestBody.content["application/json"].schema.properties).sort()).toEqual(["checkpoint", "delayMs", "expiresAt", "payload", "priority", "runAt"]);
  });

  it("a pending task's task.updated is in its events, however far in the log from its enqueue", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "far" });
    // More events after the enqueue than a window of the task's events reads (100,000), all over
    // a second before the update (a window starts a second before its time).
    const fillersAt = Date.now();
    withDatabase(t, (db) =>
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100100)
               INSERT INTO events (type, source, payload, target, createdAt) SELECT 'filler', 'test', '{}', NULL, ${fillersAt} FROM n`),
    );
    while (Date.now() <= fillersAt + 1500) await new Promise((resolve) => setTimeout(resolve, 100));
    await api.tasks.update.mutate({ taskId: task.id, priority: 0 });
    expect((await api.tasks.events.query({ taskId: task.id })).map((e) => [e.type, (e.payload as { priority: number }).priority])).toEqual([
      ["task.enqueued", 5],
      ["task.updated", 0],
    ]);
  });

  it("a payload fixed before the task runs is what its claim is handed; the same payload again writes nothing; a resent enqueue still finds it", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "fix", payload: { url: "htp://typo" }, idempotencyKey: "crawl-1" });
    const fixed = await api.tasks.update.mutate({ taskId: task.id, payload: { url: "http://example.test" } });
    expect([fixed.payload, fixed.replacedAt === null, fixed.priority, fixed.runAt]).toEqual([{ url: "http://example.test" }, false, 5, task.runAt]);
    const [updated] = await api.events.list.query({ types: ["task.updated"], limit: 10 });
    expect(updated!.payload).toMatchObject({ taskId: task.id, payloadReplaced: true, priority: 5, previousPriority: 5 });
    // The same payload (its keys in another order) changes nothing: no event, as it was.
    expect(await api.tasks.update.mutate({ taskId: task.id, payload: { url: "http://example.test" } })).toEqual(fixed);
    expect(await api.events.list.query({ types: ["task.updated"], limit: 10 })).toHaveLength(1);
    // Its enqueue sent again (its answer lost) finds it: what it asked is not kept once replaced.
    expect((await api.tasks.enqueue.mutate({ queue: "fix", payload: { url: "htp://typo" }, idempotencyKey: "crawl-1" })).id).toBe(task.id);
    // Deeper than maxJsonDepth: a 400 naming payload, as an enqueue's.
    let deep: unknown = 1;
    for (let i = 0; i < 80; i++) deep = [deep];
    const tooDeep = await rest(t.url, "PATCH", `/tasks/${task.id}`, { payload: deep });
    expect([tooDeep.status, tooDeep.body.code, tooDeep.body.message.split(":")[0]]).toEqual([400, "INVALID_INPUT", "payload"]);
    const cli = await runOperator({ args: ["tasks", "update", task.id, "--payload", '{"url":"http://example.test/2"}', "--json"], env: { COORDINATION_URL: t.url } });
    expect([cli.code, JSON.parse(cli.stdout).payload]).toEqual([0, { url: "http://example.test/2" }]);
    expect((await api.tasks.claim.mutate(claimOf("fix")))?.payload).toEqual({ url: "http://example.test/2" });
    // A run under way keeps what it was handed.
    const refused = await rest(t.url, "PATCH", `/tasks/${task.id}`, { payload: { url: "late" } });
    expect([refused.status, refused.body.code]).toEqual([409, "INVALID_STATE"]);
  });

  it("the operator's command changes a task's priority and time", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const task = await t.api.tasks.enqueue.mutate({ queue: "ops" });
    const sentAt = Date.now();
    const updated = await runOperator({ args: ["tasks", "update", task.id, "--priority", "1", "--delay", "1h", "--json"], env });
    expect(updated.code).toBe(0);
    const answer = JSON.parse(updated.stdout);
    expect(answer).toMatchObject({ id: task.id, status: "pending", priority: 1 });
    expect(Date.parse(answer.runAt)).toBeGreaterThanOrEqual(sentAt + HOUR);
    const at = await runOperator({ args: ["tasks", "update", task.id, "--at", "2020-01-01T00:00:00Z"], env });
    expect(at.code).toBe(0);
    expect(at.stdout).toMatch(/^priority +1$/m);
    // 0 is now, in any unit, as delayMs 0 is.
    await t.api.tasks.update.mutate({ taskId: task.id, delayMs: HOUR });
    expect(await runOperator({ args: ["tasks", "update", task.id, "--delay", "0s"], env })).toMatchObject({ code: 0 });
    expect(await t.api.tasks.claim.mutate(claimOf("ops"))).toMatchObject({ id: task.id });
    expect(await runOperator({ args: ["tasks", "update", task.id], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("tasks update needs --priority, --at, --delay, --expires, --payload or --clear-checkpoint: what to change") });
    expect(await runOperator({ args: ["tasks", "update", task.id, "--payload", "{oops"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--payload must be JSON (got "{oops")') });
    expect(await runOperator({ args: ["tasks", "update", task.id, "--delay", "soon"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--delay "soon" is not a duration') });
    expect(await runOperator({ args: ["tasks", "update", task.id, "--priority", "2"], env })).toMatchObject({
      code: 1,
      stderr: `coordination: INVALID_STATE: task "${task.id}" is claimed: only a task that waits to run (pending or waiting) can be updated (it runs already)\n`,
    });
  });
});
