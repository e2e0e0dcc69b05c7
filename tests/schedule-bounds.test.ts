// A schedule's bounds and its overlap policy (schedules.set endAt, maxRuns, overlap): no run falls
// due after endAt, none after maxRuns were claimed (a schedule.ended event says so), and with
// overlap "skip" no run is enqueued while the last one still runs: the write that settles it
// (complete, dead letter, cancel) enqueues the next, the times that fell due meanwhile skipped.
// Each test reads times the server wrote and checks them exactly against the schedule's rule.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The ids and statuses of a queue's tasks, by id. */
async function tasksOf(api: TestServer["api"], queue: string): Promise<Array<[string, string]>> {
  const items = (await api.tasks.list.query({ queue, limit: 100 })).items;
  return items.map((task) => [task.id, task.status] as [string, string]).sort(([a], [b]) => a.localeCompare(b));
}

describe("schedule overlap", () => {
  it('"skip": a claimed run plans the next run\'s time but enqueues none; a retry goes on as the same run; its complete enqueues the next, due as planned', async () => {
    t = await startTestServer();
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "digest", everyMs: HOUR, startAt, overlap: "skip", task: { queue: "d" } });
    expect(schedule).toMatchObject({ overlap: "skip", endAt: null, maxRuns: null, nextRunAt: schedule.createdAt });
    const run = await api.tasks.claim.mutate({ agentId: "a", queues: ["d"], context: false });
    expect(run?.id).toBe(schedule.nextTaskId);
    const running = await api.schedules.get.query({ scheduleId: "digest" });
    // The next time is planned (startAt's phase), no task stands for it while the run runs.
    expect(running).toMatchObject({ state: "waiting", runs: 1, lastTaskId: run!.id, nextTaskId: null, nextRunAt: new Date(startAt.getTime() + HOUR) });
    expect(await tasksOf(api, "d")).toEqual([[run!.id, "claimed"]]);
    // A failed attempt that retries is the same run going on; a release gives it back, still the same run.
    await api.tasks.fail.mutate({ taskId: run!.id, agentId: "a", error: "flaky", retryAfterMs: 0 });
    expect(await api.schedules.get.query({ scheduleId: "digest" })).toEqual(running);
    const retry = await api.tasks.claim.mutate({ agentId: "b", queues: ["d"], context: false });
    expect(retry).toMatchObject({ id: run!.id, attempts: 2 });
    await api.tasks.release.mutate({ taskId: run!.id, agentId: "b" });
    const again = await api.tasks.claim.mutate({ agentId: "c", queues: ["d"], context: false });
    expect(again?.id).toBe(run!.id);
    expect(await api.schedules.get.query({ scheduleId: "digest" })).toEqual(running);
    expect(await tasksOf(api, "d")).toEqual([[run!.id, "claimed"]]);

    const { head } = await api.events.head.query();
    await api.tasks.complete.mutate({ taskId: run!.id, agentId: "c", result: { ok: true } });
    const after = await api.schedules.get.query({ scheduleId: "digest" });
    expect(after).toMatchObject({ state: "running", runs: 1, lastTaskId: run!.id, nextRunAt: new Date(startAt.getTime() + HOUR) });
    expect(await api.tasks.get.query({ taskId: after.nextTaskId! })).toMatchObject({ status: "pending", runAt: after.nextRunAt, scheduleId: "digest", attempts: 0 });
    // In the complete's write, after its own event.
    const events = await api.events.list.query({ afterSeq: head, types: ["task.*", "schedule.*"], limit: 100 });
    expect(events.map((e) => e.type)).toEqual(["task.completed", "task.enqueued"]);
    expect(events[1]!.payload).toMatchObject({ taskId: after.nextTaskId, scheduleId: "digest" });
  });

  it('"skip": a run that overran skips the times that fell due meanwhile; a dead letter or a cancel settles a run as a complete does', async () => {
    t = await startTestServer();
    const api = t.api;
    const startAt = Date.now() - 10_250;
    await api.schedules.set.mutate({ scheduleId: "tick", everyMs: 1000, startAt: new Date(startAt), overlap: "skip", task: { queue: "t", maxAttempts: 1 } });
    const first = await api.tasks.claim.mutate({ agentId: "a", queues: ["t"], context: false });
    const planned = (await api.schedules.get.query({ scheduleId: "tick" })).nextRunAt!.getTime();
    expect((planned - startAt) % 1000).toBe(0);
    // The run outlasts the next time and the one after it: none of them is enqueued.
    while (Date.now() < planned + 1200) await sleep(100);
    expect(await tasksOf(api, "t")).toEqual([[first!.id, "claimed"]]);
    const completed = await api.tasks.complete.mutate({ taskId: first!.id, agentId: "a" });
    const after = await api.schedules.get.query({ scheduleId: "tick" });
    // The first time on the phase after the complete: the runs due while it ran are skipped.
    const next = after.nextRunAt!.getTime();
    expect((next - startAt) % 1000).toBe(0);
    expect(next).toBeGreaterThan(completed.finishedAt!.getTime());
    expect(next).toBeLessThanOrEqual(completed.finishedAt!.getTime() + 1000);
    expect(await api.tasks.get.query({ taskId: after.nextTaskId! })).toMatchObject({ status: "pending", runAt: after.nextRunAt });

    // A run dead-lettered (maxAttempts 1) settles it: the next is enqueued by the fail's write.
    const second = await api.tasks.claim.mutate({ agentId: "a", queues: ["t"], waitMs: 10_000, context: false });
    expect(second?.id).toBe(after.nextTaskId);
    expect((await api.schedules.get.query({ scheduleId: "tick" })).nextTaskId).toBeNull();
    await api.tasks.fail.mutate({ taskId: second!.id, agentId: "a", error: "bad input" });
    const afterDeadLetter = await api.schedules.get.query({ scheduleId: "tick" });
    expect(afterDeadLetter).toMatchObject({ runs: 2, lastTaskId: second!.id });
    expect(await api.tasks.get.query({ taskId: afterDeadLetter.nextTaskId! })).toMatchObject({ status: "pending", scheduleId: "tick" });

    // A run cancelled while it runs settles it too.
    const third = await api.tasks.claim.mutate({ agentId: "a", queues: ["t"], waitMs: 10_000, context: false });
    expect(third?.id).toBe(afterDeadLetter.nextTaskId);
    await api.tasks.cancel.mutate({ taskId: third!.id, reason: "stop this one" });
    const afterCancel = await api.schedules.get.query({ scheduleId: "tick" });
    expect(afterCancel).toMatchObject({ runs: 3, lastTaskId: third!.id });
    expect(await api.tasks.get.query({ taskId: afterCancel.nextTaskId! })).toMatchObject({ status: "pending", scheduleId: "tick" });
    expect((await tasksOf(api, "t")).map(([, status]) => status).sort()).toEqual(["cancelled", "completed", "dead_letter", "pending"]);
  });

  it('"allow" (the default) enqueues the next run when one is claimed, as before; set again with "skip" while a run runs, the next waits for it', async () => {
    t = await startTestServer();
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    const definition = { scheduleId: "s", everyMs: HOUR, startAt, task: { queue: "s" } };
    const { schedule } = await api.schedules.set.mutate(definition);
    expect(schedule.overlap).toBe("allow");
    const run = await api.tasks.claim.mutate({ agentId: "a", queues: ["s"], context: false });
    const allowed = await api.schedules.get.query({ scheduleId: "s" });
    expect(await api.tasks.get.query({ taskId: allowed.nextTaskId! })).toMatchObject({ status: "pending", runAt: new Date(startAt.getTime() + HOUR) });
    // "allow" written out is the same definition.
    expect((await api.schedules.set.mutate({ ...definition, overlap: "allow" })).changed).toBe(false);

    const skip = await api.schedules.set.mutate({ ...definition, overlap: "skip" });
    // Same timing: the next run's time is kept, its task cancelled until the run settles.
    expect(skip).toMatchObject({ changed: true, schedule: { overlap: "skip", nextTaskId: null, nextRunAt: new Date(startAt.getTime() + HOUR), lastTaskId: run!.id } });
    expect(await api.tasks.get.query({ taskId: allowed.nextTaskId! })).toMatchObject({ status: "cancelled" });
    // The same again changes nothing, not even its updatedAt.
    expect(await api.schedules.set.mutate({ ...definition, overlap: "skip" })).toEqual({ ...skip, changed: false });
    // Paused and resumed while the run runs: still waiting for it.
    await api.schedules.pause.mutate({ scheduleId: "s" });
    const resumed = await api.schedules.resume.mutate({ scheduleId: "s" });
    expect(resumed).toMatchObject({ paused: false, nextTaskId: null, nextRunAt: new Date(startAt.getTime() + HOUR) });
    await api.tasks.complete.mutate({ taskId: run!.id, agentId: "a" });
    const settled = await api.schedules.get.query({ scheduleId: "s" });
    expect(await api.tasks.get.query({ taskId: settled.nextTaskId! })).toMatchObject({ status: "pending", runAt: new Date(startAt.getTime() + HOUR) });
  });

  it('"skip": a last run settled by something that plans nothing (an older server on the file) is followed by the schedule-repair job', async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    await api.schedules.set.mutate({ scheduleId: "old", everyMs: HOUR, startAt, overlap: "skip", task: { queue: "old" } });
    const run = await api.tasks.claim.mutate({ agentId: "a", queues: ["old"], context: false });
    expect(await t.server.services.db.read("schedules.stranded", undefined)).toBe(false);
    // What a server before overlap writes when it completes the run: the task, nothing more.
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET status = 'completed', leaseExpiresAt = NULL, finishedAt = ?, updatedAt = ? WHERE id = ?`).run(Date.now(), Date.now(), run!.id));
    expect(await t.server.services.db.read("schedules.stranded", undefined)).toBe(true);
    await t.server.services.jobs.scheduleRepair.runNow();
    const after = await api.schedules.get.query({ scheduleId: "old" });
    expect(after).toMatchObject({ runs: 1, lastTaskId: run!.id, nextRunAt: new Date(startAt.getTime() + HOUR) });
    expect(await api.tasks.get.query({ taskId: after.nextTaskId! })).toMatchObject({ status: "pending", runAt: after.nextRunAt });
    expect(await t.server.services.db.read("schedules.stranded", undefined)).toBe(false);
  });
});

describe("schedule bounds", () => {
  it("maxRuns: the claim of the last run plans none after it and says so in schedule.ended; a cancelled run is no run; set again with more, it runs on", async () => {
    t = await startTestServer();
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    const definition = { scheduleId: "twice", everyMs: 1000, startAt, maxRuns: 2, task: { queue: "m" } };
    const { schedule } = await api.schedules.set.mutate(definition);
    expect(schedule).toMatchObject({ maxRuns: 2, runs: 0 });
    // Skipping a run (cancelling it pending) does not count toward maxRuns.
    await api.tasks.cancel.mutate({ taskId: schedule.nextTaskId! });
    const first = await api.tasks.claim.mutate({ agentId: "a", queues: ["m"], waitMs: 10_000, context: false });
    expect((await api.schedules.get.query({ scheduleId: "twice" })).runs).toBe(1);
    const { head } = await api.events.head.query();
    const second = await api.tasks.claim.mutate({ agentId: "a", queues: ["m"], waitMs: 10_000, context: false });
    expect(second!.id).not.toBe(first!.id);
    const ended = await api.schedules.get.query({ scheduleId: "twice" });
    expect(ended).toMatchObject({ state: "ended", runs: 2, lastTaskId: second!.id, nextRunAt: null, nextTaskId: null, paused: false });
    const events = await api.events.list.query({ afterSeq: head, types: ["task.enqueued", "task.claimed", "schedule.*"], limit: 100 });
    expect(events.map((e) => [e.type, e.payload])).toEqual([
      ["task.claimed", expect.objectContaining({ taskId: second!.id })],
      ["schedule.ended", { scheduleId: "twice", queue: "m", runs: 2, reason: "maxRuns" }],
    ]);
    expect((await tasksOf(api, "m")).filter(([, status]) => status === "pending")).toEqual([]);
    // The same definition again: still ended. More runs allowed: it runs on, runs counting on.
    expect(await api.schedules.set.mutate(definition)).toMatchObject({ changed: false, schedule: { nextRunAt: null } });
    const more = await api.schedules.set.mutate({ ...definition, maxRuns: 3 });
    expect(more.schedule).toMatchObject({ runs: 2, maxRuns: 3 });
    expect(await api.tasks.get.query({ taskId: more.schedule.nextTaskId! })).toMatchObject({ status: "pending" });
    // Set to fewer than it had: its pending run is cancelled, none ahead, and it says so.
    const before = (await api.events.head.query()).head;
    const fewer = await api.schedules.set.mutate({ ...definition, maxRuns: 1 });
    expect(fewer.schedule).toMatchObject({ state: "ended", nextRunAt: null, nextTaskId: null });
    expect(await api.tasks.get.query({ taskId: more.schedule.nextTaskId! })).toMatchObject({ status: "cancelled" });
    const lowered = await api.events.list.query({ afterSeq: before, types: ["schedule.*"], limit: 10 });
    expect(lowered.map((e) => [e.type, e.payload])).toEqual([
      ["schedule.set", expect.objectContaining({ scheduleId: "twice", nextRunAt: null })],
      ["schedule.ended", { scheduleId: "twice", queue: "m", runs: 2, reason: "maxRuns" }],
    ]);
  });

  it("endAt: no run falls due after it; the claim of the last one before it ends the schedule", async () => {
    t = await startTestServer();
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    const endAt = new Date(startAt.getTime() + HOUR - 1);
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "window", everyMs: HOUR, startAt, endAt, task: { queue: "w" } });
    expect(schedule).toMatchObject({ state: "running", endAt, nextRunAt: schedule.createdAt });
    const { head } = await api.events.head.query();
    await api.tasks.claim.mutate({ agentId: "a", queues: ["w"], context: false });
    // startAt + 1 h is after endAt: no run ahead.
    expect(await api.schedules.get.query({ scheduleId: "window" })).toMatchObject({ runs: 1, nextRunAt: null, nextTaskId: null });
    const events = await api.events.list.query({ afterSeq: head, types: ["schedule.*"], limit: 10 });
    expect(events.map((e) => e.payload)).toEqual([{ scheduleId: "window", queue: "w", runs: 1, reason: "endAt" }]);
    // endAt exactly on a run's time: that run falls due, none after it.
    const onTime = await api.schedules.set.mutate({ scheduleId: "window", everyMs: HOUR, startAt, endAt: new Date(startAt.getTime() + HOUR), task: { queue: "w" } });
    expect(onTime.schedule).toMatchObject({ nextRunAt: new Date(startAt.getTime() + HOUR) });
    // One that ran, given an endAt that passed: it ends now, and says so; sent again, nothing changes (a deploy that sets it again does not fail).
    const head2 = (await api.events.head.query()).head;
    const stop = { scheduleId: "window", everyMs: HOUR, startAt, endAt: new Date(Date.now() - 1), task: { queue: "w" } };
    expect((await api.schedules.set.mutate(stop)).schedule).toMatchObject({ state: "ended", nextRunAt: null, nextTaskId: null });
    expect((await api.events.list.query({ afterSeq: head2, types: ["schedule.*"], limit: 10 })).map((e) => e.type)).toEqual(["schedule.set", "schedule.ended"]);
    expect(await api.schedules.set.mutate(stop)).toMatchObject({ changed: false });
    // One that never ran, whose first run would come after its endAt, would never run: refused, paused or not.
    await expect(api.schedules.set.mutate({ scheduleId: "never", cron: "0 9 * * *", endAt: new Date(Date.now() - HOUR) })).rejects.toThrow(/^endAt: is before the schedule's first run \(\S+\): it would never run$/);
    await expect(api.schedules.set.mutate({ scheduleId: "window2", everyMs: HOUR, endAt: new Date(Date.now() + 60_000) })).rejects.toThrow(/^endAt: is before the schedule's first run/);
    expect((await api.schedules.list.query()).items.map((s) => s.id)).toEqual(["window"]);
    // Paused, its endAt passes: it ends as it resumes.
    const paused = await api.schedules.set.mutate({ scheduleId: "later", everyMs: 1000, endAt: new Date(Date.now() + 1500) });
    await api.schedules.pause.mutate({ scheduleId: "later" });
    while (Date.now() <= paused.schedule.endAt!.getTime() + 10) await sleep(100);
    const head3 = (await api.events.head.query()).head;
    expect(await api.schedules.resume.mutate({ scheduleId: "later" })).toMatchObject({ state: "ended", nextRunAt: null });
    expect((await api.events.list.query({ afterSeq: head3, types: ["schedule.*"], limit: 10 })).map((e) => [e.type, e.payload])).toEqual([
      ["schedule.resumed", expect.objectContaining({ nextRunAt: null })],
      ["schedule.ended", { scheduleId: "later", queue: "default", runs: 0, reason: "endAt" }],
    ]);
  });

  it("every write that leaves a schedule no run ahead says so: a run skipped, a run settled past endAt (overlap \"skip\"), the repair job following a run claimed elsewhere", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const endedSince = async (head: number) => (await api.events.list.query({ afterSeq: head, types: ["schedule.ended"], limit: 10 })).map((e) => e.payload);
    // Skipped: the pending run cancelled, the time after it is past endAt.
    const startAt = new Date(Date.now() + HOUR);
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "skipped", everyMs: HOUR, startAt, endAt: new Date(startAt.getTime() + 1), task: { queue: "s" } });
    let head = (await api.events.head.query()).head;
    await api.tasks.cancel.mutate({ taskId: schedule.nextTaskId! });
    expect(await api.schedules.get.query({ scheduleId: "skipped" })).toMatchObject({ state: "ended", runs: 0 });
    expect(await endedSince(head)).toEqual([{ scheduleId: "skipped", queue: "s", runs: 0, reason: "endAt" }]);

    // Settled: a "skip" run outlasts the last time before endAt.
    const tick = { scheduleId: "overran", everyMs: 1000, startAt: new Date(Date.now() - 10_250), overlap: "skip" as const, task: { queue: "o" } };
    await api.schedules.set.mutate(tick);
    const run = await api.tasks.claim.mutate({ agentId: "a", queues: ["o"], context: false });
    const planned = (await api.schedules.get.query({ scheduleId: "overran" })).nextRunAt!.getTime();
    // Its endAt on the planned time: that run may still fall due (it waits), none after it.
    expect((await api.schedules.set.mutate({ ...tick, endAt: new Date(planned) })).schedule).toMatchObject({ state: "waiting", nextRunAt: new Date(planned) });
    while (Date.now() <= planned + 10) await sleep(100);
    head = (await api.events.head.query()).head;
    await api.tasks.complete.mutate({ taskId: run!.id, agentId: "a" });
    expect(await api.schedules.get.query({ scheduleId: "overran" })).toMatchObject({ state: "ended", runs: 1, nextRunAt: null, nextTaskId: null });
    expect(await endedSince(head)).toEqual([{ scheduleId: "overran", queue: "o", runs: 1, reason: "endAt" }]);

    // The repair job: a run of a maxRuns-1 schedule claimed by a server that plans nothing.
    const once = await api.schedules.set.mutate({ scheduleId: "elsewhere", everyMs: HOUR, startAt: new Date(Date.now() - 1000), maxRuns: 1, overlap: "skip", task: { queue: "e" } });
    const claimedAt = Date.now();
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET status = 'claimed', leaseOwner = 'old-agent', leaseToken = 1, attempts = 1, claimedAt = ?, leaseExpiresAt = ?, updatedAt = ? WHERE id = ?`).run(claimedAt, claimedAt + 60_000, claimedAt, once.schedule.nextTaskId));
    head = (await api.events.head.query()).head;
    await t.server.services.jobs.scheduleRepair.runNow();
    expect(await api.schedules.get.query({ scheduleId: "elsewhere" })).toMatchObject({ state: "ended", runs: 1, lastTaskId: once.schedule.nextTaskId, nextRunAt: null, nextTaskId: null });
    expect(await endedSince(head)).toEqual([{ scheduleId: "elsewhere", queue: "e", runs: 1, reason: "maxRuns" }]);
    expect(await t.server.services.db.read("schedules.stranded", undefined)).toBe(false);

    // The repair job again: a "skip" run completed by a server that plans nothing, after the last time before endAt.
    const late = { ...tick, scheduleId: "late", task: { queue: "l" } };
    await api.schedules.set.mutate(late);
    const lateRun = await api.tasks.claim.mutate({ agentId: "a", queues: ["l"], context: false });
    const latePlanned = (await api.schedules.get.query({ scheduleId: "late" })).nextRunAt!.getTime();
    await api.schedules.set.mutate({ ...late, endAt: new Date(latePlanned) });
    while (Date.now() <= latePlanned + 10) await sleep(100);
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET status = 'completed', leaseExpiresAt = NULL, finishedAt = ?, updatedAt = ? WHERE id = ?`).run(Date.now(), Date.now(), lateRun!.id));
    head = (await api.events.head.query()).head;
    await t.server.services.jobs.scheduleRepair.runNow();
    expect(await api.schedules.get.query({ scheduleId: "late" })).toMatchObject({ state: "ended", runs: 1, nextRunAt: null });
    expect(await endedSince(head)).toEqual([{ scheduleId: "late", queue: "l", runs: 1, reason: "endAt" }]);
  });

  it("an ended schedule stays ended: set again with its bounds, paused, resumed, no run comes back and no second schedule.ended", async () => {
    t = await startTestServer();
    const api = t.api;
    const endedEvents = async () => (await api.events.list.query({ afterSeq: 0, types: ["schedule.ended"], limit: 100 })).map((e) => e.payload);
    // Ended before it ever ran: its pending run skipped, the time after it past endAt.
    const definition = { scheduleId: "brief", everyMs: 1000, endAt: new Date(Date.now() + 1500), task: { queue: "b", payload: { v: 1 } } };
    const { schedule } = await api.schedules.set.mutate(definition);
    await api.tasks.cancel.mutate({ taskId: schedule.nextTaskId! });
    expect(await api.schedules.get.query({ scheduleId: "brief" })).toMatchObject({ state: "ended", runs: 0 });
    while (Date.now() <= definition.endAt.getTime() + 10) await sleep(100);
    // A deploy sets it again with another payload: taken, and still ended (no run due before the set).
    const again = await api.schedules.set.mutate({ ...definition, task: { queue: "b", payload: { v: 2 } } });
    expect(again).toMatchObject({ changed: true, schedule: { state: "ended", nextRunAt: null, nextTaskId: null } });
    expect((await api.tasks.list.query({ queue: "b", status: "pending" })).items).toEqual([]);
    // Paused: answered as it is; resumed: as it is.
    expect(await api.schedules.pause.mutate({ scheduleId: "brief" })).toMatchObject({ state: "ended", paused: false });
    expect(await api.schedules.resume.mutate({ scheduleId: "brief" })).toMatchObject({ state: "ended" });
    expect(await endedEvents()).toEqual([{ scheduleId: "brief", queue: "b", runs: 0, reason: "endAt" }]);

    // Paused before it ever ran, given an endAt before the time a resume would plan: taken; the resume ends it, once.
    await api.schedules.set.mutate({ scheduleId: "held", everyMs: 1000, task: { queue: "h" } });
    await api.schedules.pause.mutate({ scheduleId: "held" });
    const heldEnd = new Date(Date.now() - 1);
    expect((await api.schedules.set.mutate({ scheduleId: "held", everyMs: 1000, endAt: heldEnd, task: { queue: "h" } })).schedule).toMatchObject({ state: "paused" });
    expect(await api.schedules.resume.mutate({ scheduleId: "held" })).toMatchObject({ state: "ended", nextRunAt: null });
    expect((await endedEvents()).slice(1)).toEqual([{ scheduleId: "held", queue: "h", runs: 0, reason: "endAt" }]);
  });

  it("over REST: bad bounds are 400s naming the field; good ones are answered as set", async () => {
    t = await startTestServer();
    const bad: Array<[unknown, string]> = [
      [{ everyMs: 60_000, maxRuns: 0 }, "maxRuns: must be at least 1"],
      [{ everyMs: 60_000, maxRuns: 1.5 }, "maxRuns: must be an integer"],
      [{ everyMs: 60_000, overlap: "sometimes" }, 'overlap: must be one of "allow", "skip"'],
      [{ everyMs: 60_000, startAt: "2030-01-01T00:00:00Z", endAt: "2030-01-01T00:00:00Z" }, "endAt: must be after startAt (2030-01-01T00:00:00.000Z): the schedule would never run"],
      [{ everyMs: 60_000, endAt: "soon" }, expect.stringMatching(/^endAt: /)],
      [{ everyMs: 60_000, endAt: new Date(Date.now() + 30_000).toISOString() }, expect.stringMatching(/^endAt: is before the schedule's first run \(\S+\): it would never run$/)],
    ];
    for (const [body, message] of bad) {
      const answer = await rest(t.url, "POST", "/schedules/bad", body);
      expect([answer.status, answer.body.code, answer.body.message]).toEqual([400, "INVALID_INPUT", message]);
    }
    expect((await rest(t.url, "GET", "/schedules/bad")).status).toBe(404);
    const set = await rest(t.url, "POST", "/schedules/good", { everyMs: 60_000, endAt: "2030-01-01T00:00:00Z", maxRuns: 10, overlap: "skip" });
    expect([set.status, set.body.schedule.endAt, set.body.schedule.maxRuns, set.body.schedule.overlap]).toEqual([200, "2030-01-01T00:00:00.000Z", 10, "skip"]);
    // Sent back as answered (nulls and all), it is the same definition.
    const { id, cron, timezone, everyMs, startAt, endAt, maxRuns, overlap, task } = set.body.schedule;
    const again = await rest(t.url, "POST", `/schedules/${id}`, { cron, timezone, everyMs, startAt, endAt, maxRuns, overlap, task });
    expect([again.status, again.body.changed]).toEqual([200, false]);
  });

  it("/metrics counts the schedules per state: running, waiting for a last run, paused, ended", async () => {
    t = await startTestServer();
    const api = t.api;
    const states = async () =>
      Object.fromEntries([...(await (await fetch(`${t!.url}/metrics`)).text()).matchAll(/^coordination_schedules\{state="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    expect(await states()).toEqual({ running: 0, waiting: 0, paused: 0, ended: 0 });
    const startAt = new Date(0);
    await api.schedules.set.mutate({ scheduleId: "a-running", everyMs: HOUR, task: { queue: "r" } });
    await api.schedules.set.mutate({ scheduleId: "b-running", cron: "0 9 * * *", task: { queue: "r" } });
    await api.schedules.set.mutate({ scheduleId: "c-waiting", everyMs: HOUR, startAt, overlap: "skip", task: { queue: "w" } });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["w"], context: false });
    await api.schedules.set.mutate({ scheduleId: "d-paused", everyMs: HOUR, task: { queue: "p" } });
    await api.schedules.pause.mutate({ scheduleId: "d-paused" });
    await api.schedules.set.mutate({ scheduleId: "e-ended", everyMs: HOUR, startAt, maxRuns: 1, task: { queue: "e" } });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["e"], context: false });
    expect(await states()).toEqual({ running: 2, waiting: 1, paused: 1, ended: 1 });
  });

  it("the operator's command sets bounds and overlap, and shows them; a bad one is refused naming its option", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const set = await runOperator({ args: ["schedules", "set", "nightly", "--every", "1h", "--end", "2030-01-01T00:00:00Z", "--max-runs", "10", "--overlap", "skip"], env });
    expect(set.code).toBe(0);
    const schedule = await t.api.schedules.get.query({ scheduleId: "nightly" });
    expect(schedule).toMatchObject({ everyMs: HOUR, endAt: new Date("2030-01-01T00:00:00Z"), maxRuns: 10, overlap: "skip" });
    expect(set.stdout.split("\n")[0]).toBe("created: schedule nightly: every 1h, until 2030-01-01 00:00:00 UTC, 10 runs at most, skips while a run runs");
    await runOperator({ args: ["schedules", "set", "once", "--every", "1h", "--start", "0", "--max-runs", "1"], env });
    await t.api.tasks.claim.mutate({ agentId: "a", context: false });
    const once = await runOperator({ args: ["schedules", "get", "once"], env });
    expect(once.stdout.split("\n").slice(0, 4)).toEqual([
      "schedule once: every 1h, from 1970-01-01 00:00:00 UTC, 1 run at most",
      "  task      queue default, priority 5, payload {}",
      "  next run  none: it had its maxRuns",
      expect.stringMatching(/^  runs      1, the last claimed \S+ \S+ UTC \(task \S+\)$/),
    ]);
    expect((await runOperator({ args: ["schedules", "list"], env })).stdout.split("\n")[2]).toMatch(/^once\s+every 1h\s+default\s+ended\s+1$/);
    await runOperator({ args: ["schedules", "pause", "nightly"], env });
    expect((await runOperator({ args: ["schedules", "get", "nightly"], env })).stdout.split("\n")[2]).toBe("  next run  none while paused");
    expect(await runOperator({ args: ["schedules", "set", "x", "--every", "1h", "--overlap", "never"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--overlap is allow or skip (got "never")') });
    expect(await runOperator({ args: ["schedules", "set", "x", "--every", "1h", "--max-runs", "0"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("--max-runs: must be at least 1") });
    expect(await runOperator({ args: ["schedules", "set", "x", "--every", "1h", "--start", "2030-01-02T00:00:00Z", "--end", "2030-01-01T00:00:00Z"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("--end: must be after startAt") });
  });
});
