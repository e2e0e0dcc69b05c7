// Running delayed work now: tasks.promote (POST /tasks/{taskId}/promote) makes a pending task
// that is not due yet (a delay, a retry's backoff, a schedule's next run) due at once, and wakes
// the claims parked for it, in this process or another on the file; schedules.trigger (POST
// /schedules/{scheduleId}/trigger) runs a schedule now by promoting its pending run, an extra
// run: the time that run was planned for stays ahead.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { openCoordination } from "../src/index.js";
import { makeTempDir, rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let t2: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t2?.stop();
  await t?.stop({ removeFiles: true });
  t = t2 = undefined;
});

const HOUR = 3_600_000;

describe("tasks.promote", () => {
  it("a delayed task due now: a parked claim takes it at once; a repeat finds it due and changes nothing", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "later", payload: { n: 1 }, delayMs: HOUR });
    // Parked before the promote, for less than a parked claim waits before it looks again by itself (30 s): only the wake-up brings the task.
    const parked = api.tasks.claim.mutate({ agentId: "a", queues: ["later"], waitMs: 20_000, context: false });
    await expect.poll(() => parkedLongPolls(t!.url, "claim"), { timeout: 10_000 }).toBe(1);
    const { head } = await api.events.head.query();
    const promoted = await api.tasks.promote.mutate({ taskId: task.id });
    expect(promoted).toMatchObject({ id: task.id, status: "pending" });
    expect(promoted.runAt.getTime()).toBeLessThan(task.runAt.getTime());
    expect(promoted.runAt.getTime()).toBeGreaterThanOrEqual(task.createdAt.getTime());
    const claimed = await parked;
    expect(claimed).toMatchObject({ id: task.id, attempts: 1 });
    const events = await api.events.list.query({ afterSeq: head, types: ["task.promoted"], limit: 10 });
    expect(events.map((e) => e.payload)).toEqual([
      { taskId: task.id, queue: "later", priority: 5, capability: null, targetAgentId: null, runAt: promoted.runAt.toISOString(), previousRunAt: task.runAt.toISOString(), promotedBy: null },
    ]);
    // Claimed now: no longer pending.
    const refused = await rest(t.url, "POST", `/tasks/${task.id}/promote`);
    expect([refused.status, refused.body.code, refused.body.message]).toEqual([409, "INVALID_STATE", `task "${task.id}" is claimed: only a pending task can be promoted (it runs already)`]);

    // Due already: answered as it is, no event (a repeat of a promote whose answer was lost finds this).
    const due = await api.tasks.enqueue.mutate({ queue: "now" });
    const before = (await api.events.head.query()).head;
    expect(await api.tasks.promote.mutate({ taskId: due.id })).toEqual(await api.tasks.get.query({ taskId: due.id }));
    expect((await api.events.head.query()).head).toBe(before);
  });

  it("a retry's backoff cut short; a paused queue's task due but held until it resumes; other states are 409s, an unknown task a 404", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q" });
    const run = await api.tasks.claim.mutate({ agentId: "a", queues: ["q"], context: false });
    await api.tasks.fail.mutate({ taskId: run!.id, agentId: "a", error: "provider down", retryAfterMs: HOUR });
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["q"], context: false })).toBeNull();
    await api.tasks.promote.mutate({ taskId: task.id });
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["q"], context: false })).toMatchObject({ id: task.id, attempts: 2, lastError: "provider down" });

    await api.queues.pause.mutate({ queue: "held" });
    const held = await api.tasks.enqueue.mutate({ queue: "held", delayMs: HOUR });
    await api.tasks.promote.mutate({ taskId: held.id });
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["held"], context: false })).toBeNull();
    await api.queues.resume.mutate({ queue: "held" });
    expect((await api.tasks.claim.mutate({ agentId: "a", queues: ["held"], context: false }))?.id).toBe(held.id);

    const gate = await api.tasks.enqueue.mutate({ queue: "chain" });
    const waiting = await api.tasks.enqueue.mutate({ queue: "chain", dependsOn: [gate.id] });
    const done = await api.tasks.enqueue.mutate({ queue: "done" });
    const doneRun = await api.tasks.claim.mutate({ agentId: "a", queues: ["done"], context: false });
    await api.tasks.complete.mutate({ taskId: doneRun!.id, agentId: "a" });
    for (const [taskId, message] of [
      [waiting.id, `task "${waiting.id}" is waiting: only a pending task can be promoted (it waits for the tasks it depends on)`],
      [done.id, `task "${done.id}" is completed: only a pending task can be promoted (it has completed)`],
    ]) {
      const answer = await rest(t.url, "POST", `/tasks/${taskId}/promote`);
      expect([answer.status, answer.body.code, answer.body.message]).toEqual([409, "INVALID_STATE", message]);
    }
    const unknown = await rest(t.url, "POST", "/tasks/no-such-task/promote");
    expect([unknown.status, unknown.body.code]).toEqual([404, "TASK_NOT_FOUND"]);
  });

  it("a limited queue's task promoted is claimable at once (held, as one falling due is), its lease counted", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    const first = await api.tasks.enqueue.mutate({ queue: "llm", delayMs: HOUR });
    const second = await api.tasks.enqueue.mutate({ queue: "llm", delayMs: HOUR });
    await api.tasks.promote.mutate({ taskId: first.id });
    await api.tasks.promote.mutate({ taskId: second.id });
    expect((await api.tasks.claim.mutate({ agentId: "a", queues: ["llm"], context: false }))?.id).toBe(first.id);
    // The limit holds: one lease at a time.
    expect(await api.tasks.claim.mutate({ agentId: "b", queues: ["llm"], context: false })).toBeNull();
    expect(await api.queues.limit.query({ queue: "llm" })).toMatchObject({ maxLeased: 1, leased: 1 });
  });

  it("an enqueue sent again after a promote, even in the enqueue's millisecond, finds its task (the runAt it asked for is not compared once the task moved)", async () => {
    const dir = makeTempDir();
    const c = await openCoordination({ settings: { dbPath: join(dir, "promote.db"), logLevel: "silent" } });
    try {
      const runAt = new Date(Date.now() + HOUR);
      for (let i = 0; i < 300; i++) {
        const task = await c.tasks.enqueue({ queue: "k", idempotencyKey: `k${i}`, runAt });
        await c.tasks.promote(task.id);
        expect((await c.tasks.enqueue({ queue: "k", idempotencyKey: `k${i}`, runAt })).id).toBe(task.id);
      }
    } finally {
      await c.close();
    }
  });

  it("its task.promoted is in the task's events, however far in the log from its enqueue and claim", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "far", delayMs: HOUR });
    // More events after the enqueue than a window of the task's events reads (100,000), all over
    // a second before the promote (a window starts a second before its time).
    const fillersAt = Date.now();
    withDatabase(t, (db) =>
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100100)
               INSERT INTO events (type, source, payload, target, createdAt) SELECT 'filler', 'test', '{}', NULL, ${fillersAt} FROM n`),
    );
    while (Date.now() <= fillersAt + 1500) await new Promise((resolve) => setTimeout(resolve, 100));
    await api.tasks.promote.mutate({ taskId: task.id });
    // Claimed more than the second a window starts before each of the task's times.
    const promotedAt = (await api.tasks.get.query({ taskId: task.id })).runAt.getTime();
    while (Date.now() <= promotedAt + 1500) await new Promise((resolve) => setTimeout(resolve, 100));
    await api.tasks.claim.mutate({ agentId: "a", queues: ["far"], context: false });
    expect((await api.tasks.events.query({ taskId: task.id })).map((e) => e.type)).toEqual(["task.enqueued", "task.promoted", "task.claimed"]);
  });

  it("wakes a claim parked on another server on the same file", async () => {
    t = await startTestServer();
    t2 = await startTestServer({}, t.dir);
    const task = await t.api.tasks.enqueue.mutate({ queue: "x", delayMs: HOUR });
    const parked = t2.api.tasks.claim.mutate({ agentId: "b", queues: ["x"], waitMs: 20_000, context: false });
    await expect.poll(() => parkedLongPolls(t2!.url, "claim"), { timeout: 10_000 }).toBe(1);
    await t.api.tasks.promote.mutate({ taskId: task.id });
    expect((await parked)?.id).toBe(task.id);
  });
});

describe("schedules.trigger", () => {
  it("runs a schedule now: its pending run due at once, an extra run; the time it was planned for stays ahead", async () => {
    t = await startTestServer();
    const api = t.api;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "hourly", everyMs: HOUR, task: { queue: "h", payload: { kind: "report" } } });
    const planned = schedule.nextRunAt!.getTime();
    const { head } = await api.events.head.query();
    const triggered = await api.schedules.trigger.mutate({ scheduleId: "hourly" });
    expect(triggered.task).toMatchObject({ id: schedule.nextTaskId, status: "pending", scheduleId: "hourly", payload: { kind: "report" } });
    expect(triggered.schedule).toMatchObject({ state: "running", nextTaskId: schedule.nextTaskId, nextRunAt: triggered.task.runAt, runs: 0 });
    expect(triggered.task.runAt.getTime()).toBeLessThan(planned);
    const run = await api.tasks.claim.mutate({ agentId: "a", queues: ["h"], context: false });
    expect(run?.id).toBe(schedule.nextTaskId);
    const after = await api.schedules.get.query({ scheduleId: "hourly" });
    // Counted as a run; the next one at the time that was planned.
    expect(after).toMatchObject({ runs: 1, lastTaskId: run!.id, nextRunAt: new Date(planned) });
    expect(await api.tasks.get.query({ taskId: after.nextTaskId! })).toMatchObject({ status: "pending", runAt: new Date(planned) });
    const events = await api.events.list.query({ afterSeq: head, types: ["task.promoted", "schedule.*"], limit: 10 });
    expect(events.map((e) => [e.type, e.payload])).toEqual([
      ["task.promoted", expect.objectContaining({ taskId: run!.id, previousRunAt: new Date(planned).toISOString() })],
      ["schedule.triggered", { scheduleId: "hourly", queue: "h", taskId: run!.id, triggeredBy: null }],
    ]);
  });

  it("sent again before its run is claimed (an answer lost, a retry) changes nothing: the same run, no second event; a run due already is answered as it is", async () => {
    t = await startTestServer();
    const api = t.api;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "hourly", everyMs: HOUR, task: { queue: "h" } });
    const { head } = await api.events.head.query();
    const first = await api.schedules.trigger.mutate({ scheduleId: "hourly" });
    const again = await api.schedules.trigger.mutate({ scheduleId: "hourly" });
    expect(again.task).toEqual(first.task);
    expect(again.schedule).toEqual(first.schedule);
    const types = async (after: number) => (await api.events.list.query({ afterSeq: after, types: ["task.*", "schedule.*"], limit: 10 })).map((e) => e.type);
    expect(await types(head)).toEqual(["task.promoted", "schedule.triggered"]);
    // A run due by its plan and not claimed yet (no agent came) is due already: nothing to make due.
    const { schedule: late } = await api.schedules.set.mutate({ scheduleId: "late", everyMs: HOUR, startAt: new Date(0), task: { queue: "l" } });
    const { head: before } = await api.events.head.query();
    const answer = await api.schedules.trigger.mutate({ scheduleId: "late" });
    expect(answer.task).toMatchObject({ id: late.nextTaskId, runAt: late.nextRunAt });
    expect(answer.schedule).toEqual(late);
    expect(await types(before)).toEqual([]);
    expect(schedule.nextTaskId).toBe(first.task.id);
  });

  it("a keyed run waiting its turn is made due too (task.promoted on a waiting task): it runs once its turn comes, the planned time stays ahead; tasks.promote refuses it", async () => {
    t = await startTestServer();
    const api = t.api;
    const head = await api.tasks.enqueue.mutate({ queue: "k", orderingKey: "repo" });
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "keyed", everyMs: HOUR, task: { queue: "k", orderingKey: "repo" } });
    const planned = schedule.nextRunAt!.getTime();
    expect(await api.tasks.get.query({ taskId: schedule.nextTaskId! })).toMatchObject({ status: "waiting" });
    await expect(api.tasks.promote.mutate({ taskId: schedule.nextTaskId! })).rejects.toMatchObject({ data: { code: "INVALID_STATE" } });
    const { head: before } = await api.events.head.query();
    const triggered = await api.schedules.trigger.mutate({ scheduleId: "keyed" });
    expect(triggered.task).toMatchObject({ id: schedule.nextTaskId, status: "waiting" });
    expect(triggered.task.runAt.getTime()).toBeLessThan(planned);
    const events = await api.events.list.query({ afterSeq: before, types: ["task.promoted"], limit: 10 });
    expect(events.map((e) => e.payload)).toEqual([expect.objectContaining({ taskId: schedule.nextTaskId, previousRunAt: new Date(planned).toISOString() })]);
    // Its turn comes with the head's complete: then it is claimed, and the run after it is planned where it was.
    const first = await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], context: false });
    expect(first?.id).toBe(head.id);
    await api.tasks.complete.mutate({ taskId: head.id, agentId: "a", leaseToken: first!.leaseToken });
    expect((await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], context: false }))?.id).toBe(schedule.nextTaskId);
    expect(await api.schedules.get.query({ scheduleId: "keyed" })).toMatchObject({ runs: 1, nextRunAt: new Date(planned) });
  });

  it("never runs before startAt: a trigger before it leaves the first run planned where it was", async () => {
    t = await startTestServer();
    const api = t.api;
    const startAt = new Date(Date.now() + 24 * HOUR + 30 * 60_000);
    await api.schedules.set.mutate({ scheduleId: "later", everyMs: HOUR, startAt, task: { queue: "i" } });
    await api.schedules.trigger.mutate({ scheduleId: "later" });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["i"], context: false });
    expect(await api.schedules.get.query({ scheduleId: "later" })).toMatchObject({ runs: 1, nextRunAt: startAt });
    const cronStart = new Date(Date.now() + 48 * HOUR);
    await api.schedules.set.mutate({ scheduleId: "hourly", cron: "0 * * * *", startAt: cronStart, task: { queue: "c" } });
    const planned = (await api.schedules.get.query({ scheduleId: "hourly" })).nextRunAt!;
    await api.schedules.trigger.mutate({ scheduleId: "hourly" });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["c"], context: false });
    expect(await api.schedules.get.query({ scheduleId: "hourly" })).toMatchObject({ runs: 1, nextRunAt: planned });
    expect(planned.getTime()).toBeGreaterThanOrEqual(cronStart.getTime());
  });

  it("counts toward maxRuns; refused while paused, ended or waiting for its last run; a schedule that does not exist is a 404", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.schedules.set.mutate({ scheduleId: "once", everyMs: HOUR, maxRuns: 1, task: { queue: "o" } });
    await api.schedules.trigger.mutate({ scheduleId: "once" });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["o"], context: false });
    expect(await api.schedules.get.query({ scheduleId: "once" })).toMatchObject({ state: "ended", runs: 1 });

    await api.schedules.set.mutate({ scheduleId: "serial", everyMs: HOUR, startAt: new Date(0), overlap: "skip", task: { queue: "s" } });
    const last = await api.tasks.claim.mutate({ agentId: "a", queues: ["s"], context: false });
    await api.schedules.set.mutate({ scheduleId: "off", everyMs: HOUR });
    await api.schedules.pause.mutate({ scheduleId: "off" });
    for (const [id, why] of [
      ["once", "it has ended (no run ahead): set it again with room for more runs"],
      ["serial", `its last run (task "${last!.id}") still runs and its overlap is "skip": the next run is enqueued when that one settles`],
      ["off", "it is paused: resume it first"],
    ]) {
      const answer = await rest(t.url, "POST", `/schedules/${id}/trigger`);
      expect([answer.status, answer.body.code, answer.body.message]).toEqual([409, "INVALID_STATE", `schedule "${id}" cannot be triggered: ${why}`]);
    }
    const unknown = await rest(t.url, "POST", "/schedules/none/trigger");
    expect([unknown.status, unknown.body.code]).toEqual([404, "SCHEDULE_NOT_FOUND"]);
  });

  it("the operator's command triggers a schedule and promotes a task", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const { schedule } = await t.api.schedules.set.mutate({ scheduleId: "digest", everyMs: HOUR, task: { queue: "d" } });
    const triggered = await runOperator({ args: ["schedules", "trigger", "digest"], env });
    expect(triggered.code).toBe(0);
    expect(triggered.stdout.split("\n")[0]).toBe(`triggered: task ${schedule.nextTaskId} is due now`);
    expect((await t.api.tasks.claim.mutate({ agentId: "a", queues: ["d"], context: false }))?.id).toBe(schedule.nextTaskId);
    const later = await t.api.tasks.enqueue.mutate({ queue: "l", delayMs: HOUR });
    const promoted = await runOperator({ args: ["tasks", "promote", later.id, "--json"], env });
    expect(promoted.code).toBe(0);
    expect(JSON.parse(promoted.stdout)).toMatchObject({ id: later.id, status: "pending" });
    expect(await runOperator({ args: ["schedules", "trigger", "nope"], env })).toMatchObject({ code: 1, stderr: 'coordination: SCHEDULE_NOT_FOUND: schedule "nope" not found\n' });
  });
});
