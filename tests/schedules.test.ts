// Schedules (schedules.set / get / list / remove / pause / resume, POST|GET|DELETE
// /schedules/{scheduleId}, GET /schedules): recurring tasks by a cron pattern in a time zone or by
// an interval. A schedule's next run waits in its queue as a delayed task; the write that claims
// it (or cancels it) enqueues the one after it. Each test reads times the server wrote and checks
// them exactly against the schedule's rule; none waits for more than a run that is due at once.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { openCoordination } from "../src/index.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { makeTempDir, rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let t2: TestServer | undefined;
let secure: SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t2?.stop();
  await t?.stop({ removeFiles: true });
  await secure?.stop({ removeFiles: true });
  t = t2 = secure = undefined;
});

const HOUR = 3_600_000;
/** A time as Paris reads it, hh:mm:ss. */
const parisClock = (d: Date) => new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(d);

describe("schedules", () => {
  it("a cron schedule in a time zone: its next run waits in the queue as a delayed task at the next time the pattern names", async () => {
    t = await startTestServer();
    const api = t.api;
    const { schedule, created, changed } = await api.schedules.set.mutate({
      scheduleId: "morning-digest",
      cron: "0 9 * * *",
      timezone: "Europe/Paris",
      task: { queue: "reports", payload: { kind: "digest" }, priority: 2, maxAttempts: 5, backoff: { type: "fixed", delayMs: 30_000 } },
    });
    expect([created, changed]).toEqual([true, true]);
    expect(schedule).toMatchObject({
      id: "morning-digest",
      cron: "0 9 * * *",
      timezone: "Europe/Paris",
      everyMs: null,
      startAt: null,
      task: { queue: "reports", payload: { kind: "digest" }, priority: 2, capability: null, targetAgentId: null, maxAttempts: 5, backoff: { type: "fixed", delayMs: 30_000, maxDelayMs: 30_000, jitter: 0 } },
      paused: false,
      runs: 0,
      lastRunAt: null,
      lastTaskId: null,
      setBy: null,
    });
    // 9:00:00 in Paris, the first after the set, within a day.
    const next = schedule.nextRunAt!;
    expect(parisClock(next)).toBe("09:00:00");
    expect(next.getTime()).toBeGreaterThan(schedule.createdAt.getTime());
    expect(next.getTime() - schedule.createdAt.getTime()).toBeLessThanOrEqual(24 * HOUR);
    const run = await api.tasks.get.query({ taskId: schedule.nextTaskId! });
    expect(run).toMatchObject({ queue: "reports", payload: { kind: "digest" }, priority: 2, maxAttempts: 5, status: "pending", runAt: next, scheduleId: "morning-digest" });
    expect(run.backoff).toEqual(schedule.task.backoff);
    // Not claimable before it falls due.
    expect(await api.tasks.claim.mutate({ agentId: "a", context: false })).toBeNull();
    expect(await api.schedules.get.query({ scheduleId: "morning-digest" })).toEqual(schedule);
    expect(await api.schedules.list.query()).toEqual({ items: [schedule], nextCursor: null });
  });

  it("claiming a run enqueues the one after it, in the same write: an interval keeps its phase and skips the runs missed, one task standing for them all", async () => {
    t = await startTestServer();
    const api = t.api;
    // startAt long past: the first run is due at once; everyMs a second so that the claim below comes several runs late.
    const startAt = Date.now() - 60_250;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "tick", everyMs: 1000, startAt: new Date(startAt), task: { queue: "ticks", payload: { n: 1 } } });
    const first = schedule.nextRunAt!.getTime();
    expect(first).toBe(schedule.createdAt.getTime());
    // Late by at least two runs: still one task of the schedule in its queue.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect((await api.tasks.list.query({ queue: "ticks" })).items.map((task) => [task.id, task.status])).toEqual([[schedule.nextTaskId, "pending"]]);
    const claimed = await api.tasks.claim.mutate({ agentId: "a", queues: ["ticks"], context: false });
    expect(claimed).toMatchObject({ id: schedule.nextTaskId, scheduleId: "tick", attempts: 1 });
    const after = await api.schedules.get.query({ scheduleId: "tick" });
    expect(after).toMatchObject({ runs: 1, lastTaskId: claimed!.id, lastRunAt: claimed!.claimedAt });
    // startAt + k × 1000, the first such time after the claim: the runs missed meanwhile are skipped.
    const next = after.nextRunAt!.getTime();
    expect((next - startAt) % 1000).toBe(0);
    expect(next).toBeGreaterThan(claimed!.claimedAt.getTime());
    expect(next).toBeLessThanOrEqual(claimed!.claimedAt.getTime() + 1000);
    // Claimed 2.5 s late: the next is after that, the runs due meanwhile skipped.
    expect(next - first).toBeGreaterThan(2500);
    const pending = await api.tasks.get.query({ taskId: after.nextTaskId! });
    expect(pending).toMatchObject({ status: "pending", runAt: after.nextRunAt, payload: { n: 1 }, scheduleId: "tick", attempts: 0 });
    // A long-poll claim is woken when that run falls due (within a second of now).
    const second = await api.tasks.claim.mutate({ agentId: "a", queues: ["ticks"], waitMs: 10_000, context: false });
    expect(second?.id).toBe(after.nextTaskId);
    expect(second!.claimedAt.getTime()).toBeGreaterThanOrEqual(next);
    expect(await api.schedules.get.query({ scheduleId: "tick" })).toMatchObject({ runs: 2, lastTaskId: second!.id });
  });

  it("a retry of a run, or a run given back and claimed again, enqueues nothing more: only a run's first claim does", async () => {
    t = await startTestServer();
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "hourly", everyMs: HOUR, startAt, task: { queue: "h" } });
    const run = await api.tasks.claim.mutate({ agentId: "a", queues: ["h"], context: false });
    expect(run?.id).toBe(schedule.nextTaskId);
    const after = await api.schedules.get.query({ scheduleId: "hourly" });
    // Due at the set (startAt had passed), then hourly on startAt's phase.
    expect(schedule.nextRunAt).toEqual(schedule.createdAt);
    expect(after.nextRunAt!.getTime()).toBe(startAt.getTime() + HOUR);
    await api.tasks.fail.mutate({ taskId: run!.id, agentId: "a", error: "provider down", retryAfterMs: 0 });
    const retry = await api.tasks.claim.mutate({ agentId: "b", queues: ["h"], context: false });
    expect(retry).toMatchObject({ id: run!.id, attempts: 2 });
    await api.tasks.release.mutate({ taskId: run!.id, agentId: "b" });
    expect((await api.tasks.claim.mutate({ agentId: "c", queues: ["h"], context: false }))?.id).toBe(run!.id);
    expect(await api.schedules.get.query({ scheduleId: "hourly" })).toEqual(after);
    const tasks = (await api.tasks.list.query({ queue: "h" })).items;
    expect(tasks.map((task) => [task.id, task.status]).sort()).toEqual([[run!.id, "claimed"], [after.nextTaskId, "pending"]].sort());
  });

  it("cancelling the pending run skips it: the run after it is enqueued; a run claimed already is cancelled alone", async () => {
    t = await startTestServer();
    const api = t.api;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "s", everyMs: HOUR, task: { queue: "s" } });
    expect(schedule.nextRunAt!.getTime()).toBe(schedule.createdAt.getTime() + HOUR);
    const cancelled = await api.tasks.cancel.mutate({ taskId: schedule.nextTaskId!, reason: "not today" });
    expect(cancelled).toMatchObject({ status: "cancelled", lastError: "not today", scheduleId: "s" });
    const after = await api.schedules.get.query({ scheduleId: "s" });
    expect(after).toMatchObject({ runs: 0, lastTaskId: null });
    expect(after.nextRunAt!.getTime()).toBe(schedule.createdAt.getTime() + 2 * HOUR);
    expect(after.nextTaskId).not.toBe(schedule.nextTaskId);
    expect(await api.tasks.get.query({ taskId: after.nextTaskId! })).toMatchObject({ status: "pending", runAt: after.nextRunAt, scheduleId: "s" });
    // A cancelled run is no run: cancelling it again changes nothing.
    await api.tasks.cancel.mutate({ taskId: schedule.nextTaskId! });
    expect(await api.schedules.get.query({ scheduleId: "s" })).toEqual(after);
  });

  it("set again: the same definition changes nothing; another replaces the pending run; pause cancels it, resume plans the next from now; remove cancels it and forgets the schedule", async () => {
    t = await startTestServer();
    const api = t.api;
    const input = { scheduleId: "nightly", cron: "0 2 * * *", task: { queue: "n", payload: { deep: true } } };
    const { schedule } = await api.schedules.set.mutate(input);
    // UTC when no time zone is given: 2:00 UTC.
    expect(schedule.timezone).toBe("UTC");
    expect(schedule.nextRunAt!.toISOString()).toMatch(/T02:00:00\.000Z$/);
    // The same, with the defaults spelled out: nothing moves.
    const again = await api.schedules.set.mutate({ ...input, timezone: "UTC", task: { ...input.task, priority: 5 } });
    expect(again).toEqual({ schedule, created: false, changed: false });

    const changed = await api.schedules.set.mutate({ ...input, task: { queue: "n", payload: { deep: false } } });
    expect([changed.created, changed.changed]).toEqual([false, true]);
    expect(changed.schedule).toMatchObject({ nextRunAt: schedule.nextRunAt, task: { payload: { deep: false } }, createdAt: schedule.createdAt });
    expect(changed.schedule.nextTaskId).not.toBe(schedule.nextTaskId);
    expect(await api.tasks.get.query({ taskId: schedule.nextTaskId! })).toMatchObject({ status: "cancelled", lastError: 'schedule "nightly" was set again with another definition' });

    const paused = await api.schedules.pause.mutate({ scheduleId: "nightly" });
    expect(paused).toMatchObject({ paused: true, nextRunAt: null, nextTaskId: null });
    expect(await api.tasks.get.query({ taskId: changed.schedule.nextTaskId! })).toMatchObject({ status: "cancelled", lastError: 'schedule "nightly" was paused' });
    expect(await api.schedules.pause.mutate({ scheduleId: "nightly" })).toEqual(paused);
    // Set again while paused, with another definition: it stays paused, no run is enqueued.
    const whilePaused = await api.schedules.set.mutate({ ...input, cron: "0 3 * * *" });
    expect(whilePaused.schedule).toMatchObject({ paused: true, nextRunAt: null, nextTaskId: null, cron: "0 3 * * *" });
    expect((await api.tasks.list.query({ queue: "n", status: "pending" })).items).toEqual([]);

    const resumed = await api.schedules.resume.mutate({ scheduleId: "nightly" });
    expect(resumed).toMatchObject({ paused: false });
    expect(resumed.nextRunAt!.toISOString()).toMatch(/T03:00:00\.000Z$/);
    expect(resumed.nextRunAt!.getTime() - resumed.updatedAt.getTime()).toBeLessThanOrEqual(24 * HOUR);
    expect(await api.tasks.get.query({ taskId: resumed.nextTaskId! })).toMatchObject({ status: "pending", runAt: resumed.nextRunAt, scheduleId: "nightly" });

    expect(await api.schedules.remove.mutate({ scheduleId: "nightly" })).toEqual(resumed);
    expect(await api.tasks.get.query({ taskId: resumed.nextTaskId! })).toMatchObject({ status: "cancelled", lastError: 'schedule "nightly" was removed' });
    for (const call of [() => api.schedules.get.query({ scheduleId: "nightly" }), () => api.schedules.remove.mutate({ scheduleId: "nightly" }), () => api.schedules.pause.mutate({ scheduleId: "nightly" })]) {
      await expect(call()).rejects.toMatchObject({ data: { code: "SCHEDULE_NOT_FOUND", httpStatus: 404 } });
    }
  });

  it("its events: schedule.set, and task.enqueued naming the schedule for each run", async () => {
    t = await startTestServer();
    const api = t.api;
    const { head } = await api.events.head.query();
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "e", everyMs: 60_000, task: { queue: "e" } });
    await api.schedules.pause.mutate({ scheduleId: "e" });
    await api.schedules.resume.mutate({ scheduleId: "e" });
    await api.schedules.remove.mutate({ scheduleId: "e" });
    const events = await api.events.list.query({ afterSeq: head, limit: 100 });
    const seen = events.map((e) => [e.type, e.payload] as const);
    expect(seen.map(([type]) => type)).toEqual(["task.enqueued", "schedule.set", "task.cancelled", "schedule.paused", "task.enqueued", "schedule.resumed", "task.cancelled", "schedule.removed"]);
    expect(seen[0]![1]).toMatchObject({ taskId: schedule.nextTaskId, queue: "e", scheduleId: "e", runAt: schedule.nextRunAt!.toISOString() });
    expect(seen[1]![1]).toEqual({ scheduleId: "e", queue: "e", created: true, nextRunAt: schedule.nextRunAt!.toISOString(), setBy: null });
    expect(seen[3]![1]).toEqual({ scheduleId: "e", queue: "e", pausedBy: null });
    expect(seen[7]![1]).toEqual({ scheduleId: "e", queue: "e", runs: 0, removedBy: null });
  });

  it("over REST: bad definitions are 400s naming the field, never stored; a page at a time by id, by queue", async () => {
    t = await startTestServer();
    const bad: Array<[unknown, string]> = [
      [{ cron: "61 9 * * *" }, "cron: is no cron pattern the server takes: Invalid value for minute: 61"],
      [{ cron: "0 0 30 2 *" }, "cron: is no cron pattern the server takes: names no time from now on"],
      [{ cron: "0 9 * * *", timezone: "Mars/Olympus_Mons" }, 'timezone: is no IANA time zone this server knows (got "Mars/Olympus_Mons"); e.g. "Europe/Paris", "America/New_York", "UTC"'],
      [{ everyMs: 60_000, timezone: "UTC" }, "timezone: is read with a cron pattern only: an interval needs none"],
      [{}, "cron: give cron or everyMs, one of them"],
      [{ cron: "* * * * *", everyMs: 60_000 }, "everyMs: give cron or everyMs, one of them"],
      [{ everyMs: 999 }, "everyMs: must be at least 1000"],
      [{ everyMs: 60_000, task: { queue: "q", runAt: 5 } }, 'task: unknown field "runAt"'],
    ];
    for (const [body, message] of bad) {
      const answer = await rest(t.url, "POST", "/schedules/bad", body);
      expect([answer.status, answer.body.code, answer.body.message]).toEqual([400, "INVALID_INPUT", message]);
    }
    expect((await rest(t.url, "GET", "/schedules/bad")).status).toBe(404);

    for (const id of ["c", "a", "b", "d"]) {
      const answer = await rest(t.url, "POST", `/schedules/${id}`, { everyMs: 60_000, task: { queue: id === "d" ? "other" : "main" } });
      expect([answer.status, answer.body.created]).toEqual([200, true]);
    }
    const page = await rest(t.url, "GET", "/schedules?limit=2");
    expect([page.body.items.map((s: { id: string }) => s.id), page.body.nextCursor]).toEqual([["a", "b"], "b"]);
    const rest2 = await rest(t.url, "GET", "/schedules?limit=2&cursor=b");
    expect([rest2.body.items.map((s: { id: string }) => s.id), rest2.body.nextCursor]).toEqual([["c", "d"], null]);
    const main = await rest(t.url, "GET", "/schedules?queue=main");
    expect(main.body.items.map((s: { id: string }) => s.id)).toEqual(["a", "b", "c"]);
    expect((await rest(t.url, "DELETE", "/schedules/d")).body.id).toBe("d");
    expect((await rest(t.url, "POST", "/schedules/a/pause")).body.paused).toBe(true);
    expect((await rest(t.url, "POST", "/schedules/a/resume")).body.paused).toBe(false);
  });

  it("with credentials on, setting, pausing and removing are an admin's; any credential reads", async () => {
    secure = await startSecureServer();
    const agent = await secure.issue("agent", "worker-1");
    const reader = await secure.issue("read");
    for (const [method, path, body] of [["POST", "/schedules/x", { everyMs: 60_000 }], ["POST", "/schedules/x/pause", undefined], ["DELETE", "/schedules/x", undefined]] as const) {
      expect((await http(secure.url, method, path, { token: agent, body })).status).toBe(403);
    }
    const set = await http(secure.url, "POST", "/schedules/x", { token: ADMIN_SECRET, body: { everyMs: 60_000 } });
    expect(set.status).toBe(200);
    const tokens = await secure.admin.tokens.list.query();
    // The admin token from the settings is no stored credential: it has an id of its own.
    expect([set.body.schedule.setBy, tokens.some((token) => token.id === set.body.schedule.setBy)]).toEqual(["config:adminToken", false]);
    expect((await http(secure.url, "GET", "/schedules/x", { token: reader })).body.id).toBe("x");
    expect((await http(secure.url, "GET", "/schedules", { token: agent })).body.items).toHaveLength(1);
  });

  it("two servers on one file: a run claimed through either enqueues exactly one run after it", async () => {
    t = await startTestServer();
    t2 = await startTestServer({}, t.dir);
    const startAt = new Date(Date.now() - 1000);
    const { schedule } = await t.api.schedules.set.mutate({ scheduleId: "shared", everyMs: HOUR, startAt, task: { queue: "shared" } });
    const claims = await Promise.all([t.api, t2.api, t.api, t2.api].map((api, i) => api.tasks.claim.mutate({ agentId: `a${i}`, queues: ["shared"], context: false })));
    expect(claims.filter((c) => c !== null).map((c) => c!.id)).toEqual([schedule.nextTaskId]);
    const after = await t2.api.schedules.get.query({ scheduleId: "shared" });
    expect(after).toMatchObject({ runs: 1, nextRunAt: new Date(startAt.getTime() + HOUR) });
    const tasks = (await t.api.tasks.list.query({ queue: "shared" })).items;
    expect(tasks.map((task) => task.status).sort()).toEqual(["claimed", "pending"]);
  });

  it("a run taken by something that enqueues nothing after it (an older server on the file claims it, or cancels it) is followed all the same: the schedule-repair job plans the next", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "old", everyMs: HOUR, startAt, task: { queue: "old" } });
    const claimedAt = Date.now();
    // What a server before schedules writes when it claims the run: the lease, nothing more.
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET status = 'claimed', leaseOwner = 'old-agent', leaseToken = 1, attempts = 1, claimedAt = ?, leaseExpiresAt = ?, updatedAt = ? WHERE id = ?`).run(claimedAt, claimedAt + 60_000, claimedAt, schedule.nextTaskId));
    expect(await t.server.services.db.read("schedules.stranded", undefined)).toBe(true);
    await t.server.services.jobs.scheduleRepair.runNow();
    const after = await api.schedules.get.query({ scheduleId: "old" });
    expect(after).toMatchObject({ runs: 1, lastTaskId: schedule.nextTaskId, lastRunAt: new Date(claimedAt), nextRunAt: new Date(startAt.getTime() + HOUR) });
    expect(await api.tasks.get.query({ taskId: after.nextTaskId! })).toMatchObject({ status: "pending", runAt: after.nextRunAt, scheduleId: "old" });
    // Cancelled behind its back: that run is skipped.
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET status = 'cancelled', finishedAt = ? WHERE id = ?`).run(Date.now(), after.nextTaskId));
    await t.server.services.jobs.scheduleRepair.runNow();
    const skipped = await api.schedules.get.query({ scheduleId: "old" });
    expect(skipped).toMatchObject({ runs: 1, nextRunAt: new Date(startAt.getTime() + 2 * HOUR) });
    expect(skipped.nextTaskId).not.toBe(after.nextTaskId);
    expect(await t.server.services.db.read("schedules.stranded", undefined)).toBe(false);

    // Taken behind its back, then edited, paused or removed before the job came: the call counts
    // the run first, keeps no run time that was taken already, and enqueues no run only to cancel it.
    const takeBehindItsBack = async () => {
      const before = await api.schedules.get.query({ scheduleId: "old" });
      withDatabase(t!, (db) => db.prepare(`UPDATE tasks SET status = 'claimed', leaseOwner = 'old-agent', leaseToken = 1, attempts = 1, claimedAt = ?, updatedAt = ? WHERE id = ?`).run(Date.now(), Date.now(), before.nextTaskId));
      return { before, head: (await api.events.head.query()).head };
    };
    const typesSince = async (head: number) => (await api.events.list.query({ afterSeq: head, limit: 100 })).map((e) => e.type);
    let { before, head } = await takeBehindItsBack();
    const edited = await api.schedules.set.mutate({ scheduleId: "old", everyMs: HOUR, startAt, task: { queue: "old", payload: { v: 2 } } });
    expect(edited.schedule).toMatchObject({ runs: 2, lastTaskId: before.nextTaskId, nextRunAt: new Date(startAt.getTime() + 3 * HOUR) });
    expect(await typesSince(head)).toEqual(["task.enqueued", "schedule.set"]);
    expect(await api.tasks.claim.mutate({ agentId: "b", queues: ["old"], context: false })).toBeNull();
    ({ before, head } = await takeBehindItsBack());
    // The same definition again: the run counted, the next enqueued.
    const same = await api.schedules.set.mutate({ scheduleId: "old", everyMs: HOUR, startAt, task: { queue: "old", payload: { v: 2 } } });
    expect(same).toMatchObject({ changed: false, schedule: { runs: 3, nextRunAt: new Date(startAt.getTime() + 4 * HOUR) } });
    expect(await api.tasks.get.query({ taskId: same.schedule.nextTaskId! })).toMatchObject({ status: "pending", runAt: same.schedule.nextRunAt });
    ({ before, head } = await takeBehindItsBack());
    expect(await api.schedules.pause.mutate({ scheduleId: "old" })).toMatchObject({ paused: true, runs: 4, nextTaskId: null, nextRunAt: null });
    expect(await typesSince(head)).toEqual(["schedule.paused"]);
    await api.schedules.resume.mutate({ scheduleId: "old" });
    ({ before, head } = await takeBehindItsBack());
    expect(await api.schedules.remove.mutate({ scheduleId: "old" })).toMatchObject({ runs: 5, lastTaskId: before.nextTaskId });
    expect(await typesSince(head)).toEqual(["schedule.removed"]);
    expect((await api.tasks.list.query({ queue: "old", status: "cancelled" })).items.map((task) => task.lastError)).toEqual([null]);
  });

  it("a new task with the same timing keeps the next run's time (an interval its phase); new timing plans from now; the same definition however written changes nothing", async () => {
    t = await startTestServer();
    const api = t.api;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "i", everyMs: HOUR, task: { queue: "i", payload: { v: 1 } } });
    const edited = await api.schedules.set.mutate({ scheduleId: "i", everyMs: HOUR, task: { queue: "i", payload: { v: 2 } } });
    expect(edited).toMatchObject({ changed: true, schedule: { nextRunAt: schedule.nextRunAt, task: { payload: { v: 2 } } } });
    expect(edited.schedule.nextTaskId).not.toBe(schedule.nextTaskId);
    expect(await api.tasks.get.query({ taskId: edited.schedule.nextTaskId! })).toMatchObject({ status: "pending", runAt: schedule.nextRunAt, payload: { v: 2 } });
    // Paused and resumed: still on the phase it was set with.
    await api.schedules.pause.mutate({ scheduleId: "i" });
    expect((await api.schedules.resume.mutate({ scheduleId: "i" })).nextRunAt).toEqual(schedule.nextRunAt);
    // A startAt that passed: one run at once, then on startAt's phase; a new task keeps that.
    const start = new Date(Math.floor(Date.now() / HOUR) * HOUR - 24 * HOUR + 30_000);
    const p = await api.schedules.set.mutate({ scheduleId: "p", everyMs: HOUR, startAt: start, task: { queue: "p", payload: { v: 1 } } });
    expect(p.schedule.nextRunAt).toEqual(p.schedule.createdAt);
    await api.tasks.claim.mutate({ agentId: "a", queues: ["p"], context: false });
    const after = await api.schedules.get.query({ scheduleId: "p" });
    expect((after.nextRunAt!.getTime() - start.getTime()) % HOUR).toBe(0);
    const p2 = await api.schedules.set.mutate({ scheduleId: "p", everyMs: HOUR, startAt: start, task: { queue: "p", payload: { v: 2 } } });
    expect(p2.schedule.nextRunAt).toEqual(after.nextRunAt);
    expect(await api.tasks.claim.mutate({ agentId: "a", queues: ["p"], context: false })).toBeNull();
    // Spelled otherwise, the same: the cron pattern's spacing, the zone's case, nulls for what is not set.
    const c = await api.schedules.set.mutate({ scheduleId: "c", cron: "0 9 * * *", timezone: "Europe/Paris" });
    const answered = c.schedule;
    const again = await rest(t.url, "POST", "/schedules/c", { cron: " 0  9 * * *\n", timezone: "europe/paris", everyMs: null, startAt: null, task: { ...answered.task } });
    expect([again.status, again.body.changed, again.body.schedule.nextTaskId, again.body.schedule.cron, again.body.schedule.timezone]).toEqual([200, false, answered.nextTaskId, "0 9 * * *", "Europe/Paris"]);
    // A zone Node knows by another name keeps its spelling, its letter case aside.
    await api.schedules.set.mutate({ scheduleId: "k", cron: "0 9 * * *", timezone: "Asia/Kolkata" });
    expect(await api.schedules.set.mutate({ scheduleId: "k", cron: "0 9 * * *", timezone: "asia/kolkata" })).toMatchObject({ changed: false, schedule: { timezone: "Asia/Kolkata" } });
  });

  it("a run's enqueue never fails its claim or cancel: a payload a lowered maxJsonDepth would refuse is checked when set (paused or not), not when its runs are enqueued", async () => {
    t = await startTestServer();
    const deep = (n: number): unknown => (n === 0 ? 1 : { a: deep(n - 1) });
    await t.api.schedules.set.mutate({ scheduleId: "z", everyMs: HOUR, startAt: new Date(0), task: { queue: "z", payload: deep(20) as never, priority: 0 } });
    const dir = t.dir;
    await t.stop();
    t = await startTestServer({ maxJsonDepth: 10 }, dir);
    const claim = await rest(t.url, "POST", "/tasks/claim", { agentId: "a", context: false });
    expect([claim.status, claim.body.scheduleId]).toEqual([200, "z"]);
    const s = await t.api.schedules.get.query({ scheduleId: "z" });
    expect(s.runs).toBe(1);
    const cancel = await rest(t.url, "POST", `/tasks/${s.nextTaskId}/cancel`, {});
    expect(cancel.status).toBe(200);
    expect((await t.api.schedules.get.query({ scheduleId: "z" })).nextTaskId).not.toBe(s.nextTaskId);
    // Sent back as it is answered: the same definition, no check, nothing moves.
    const answered = await t.api.schedules.get.query({ scheduleId: "z" });
    const back = await rest(t.url, "POST", "/schedules/z", { everyMs: answered.everyMs, startAt: answered.startAt, task: answered.task });
    expect([back.status, back.body.changed]).toEqual([200, false]);
    // Set anew, paused or not, the payload is checked by the setting now.
    for (const paused of [false, true]) {
      if (paused) await t.api.schedules.pause.mutate({ scheduleId: "z" });
      const set = await rest(t.url, "POST", "/schedules/z", { everyMs: HOUR, task: { queue: "z", payload: deep(20) } });
      expect([set.status, set.body.message]).toEqual([400, "task.payload: nests deeper than 10 levels (the server's maxJsonDepth); flatten it or store it as a string"]);
    }
  });

  it("a list page keeps to maxResponseBytes; a cron schedule that could never run is refused", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    for (let i = 0; i < 6; i++) await t.api.schedules.set.mutate({ scheduleId: `s${i}`, everyMs: HOUR, task: { queue: "big", payload: { blob: "x".repeat(30_000) } } });
    const first = await t.api.schedules.list.query();
    expect([first.items.map((s) => s.id), first.nextCursor]).toEqual([["s0", "s1"], "s1"]);
    const second = await t.api.schedules.list.query({ cursor: "s1" });
    expect(second.items.map((s) => s.id)).toEqual(["s2", "s3"]);
    // Long ids, patterns and zones count too, over REST and tRPC alike.
    const cron = `${Array.from({ length: 60 }, (_, i) => i).join(",")} 0,1,2,3,4,5,6,7,8,9,10 * * *`;
    for (let i = 0; i < 120; i++) await t.api.schedules.set.mutate({ scheduleId: `${String(i).padStart(3, "0")}-${"x".repeat(196)}`, cron, timezone: "America/Argentina/Buenos_Aires" });
    expect(Buffer.byteLength(await (await fetch(`${t.url}/schedules?limit=1000`)).text())).toBeLessThanOrEqual(65_536);
    expect(Buffer.byteLength(await (await fetch(`${t.url}/trpc/schedules.list?input=${encodeURIComponent(JSON.stringify({ json: { limit: 1000 } }))}`)).text())).toBeLessThanOrEqual(65_536);
    const far = await rest(t.url, "POST", "/schedules/far", { cron: "0 0 * * *", startAt: "3001-01-01T00:00:00Z" });
    expect([far.status, far.body.message]).toEqual([400, "startAt: the cron pattern names no time from 3001-01-01T00:00:00.000Z to the end of year 2999, as far as the server looks: the schedule would never run"]);
  });

  it("in-process, as over the wire", async () => {
    const coordination = await openCoordination({ settings: { dbPath: `${makeTempDir()}/local.db`, logLevel: "silent" } });
    try {
      const { schedule } = await coordination.schedules.set({ scheduleId: "local", everyMs: 5000, startAt: new Date(0), task: { queue: "local", payload: { a: 1 } } });
      const run = await coordination.tasks.claim("agent-1", { queues: ["local"], context: false });
      expect(run).toMatchObject({ id: schedule.nextTaskId, scheduleId: "local" });
      const after = await coordination.schedules.get("local");
      expect(after.runs).toBe(1);
      // On the phase of startAt (0): a multiple of 5 s.
      expect(after.nextRunAt!.getTime() % 5000).toBe(0);
      expect((await coordination.schedules.list()).items.map((s) => s.id)).toEqual(["local"]);
      await expect(coordination.schedules.get("nope")).rejects.toMatchObject({ code: "SCHEDULE_NOT_FOUND" });
    } finally {
      await coordination.close();
    }
  });

  it("the operator's command sets, lists, shows, pauses, resumes and removes schedules; a bad one is refused naming its option", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const set = await runOperator({ args: ["schedules", "set", "digest", "--cron", "0 9 * * MON-FRI", "--timezone", "Europe/Paris", "--queue", "reports", "--payload", '{"kind":"weekday"}'], env });
    expect(set.code).toBe(0);
    const schedule = await t.api.schedules.get.query({ scheduleId: "digest" });
    expect(schedule).toMatchObject({ cron: "0 9 * * MON-FRI", timezone: "Europe/Paris", task: { queue: "reports", payload: { kind: "weekday" } } });
    const at = (d: Date | null) => d!.toISOString().replace("T", " ").slice(0, 19);
    // In UTC, as every time the command prints, and in the schedule's own zone: 9:00 in Paris.
    const paris = `${at(schedule.nextRunAt).slice(0, 10)} 09:00:00 Europe/Paris`;
    expect(set.stdout).toBe(
      `created: schedule digest: 0 9 * * MON-FRI (Europe/Paris)\n  task      queue reports, priority 5, payload {"kind":"weekday"}\n  next run  ${at(schedule.nextRunAt)} UTC, ${paris} (task ${schedule.nextTaskId})\n  runs      0\n`,
    );
    expect((await runOperator({ args: ["schedules", "set", "sweep", "--every", "90s", "--priority", "1"], env })).code).toBe(0);
    expect(await t.api.schedules.get.query({ scheduleId: "sweep" })).toMatchObject({ everyMs: 90_000, task: { priority: 1 } });
    const list = await runOperator({ args: ["schedules"], env });
    expect(list.stdout.split("\n").slice(0, 3)).toEqual([
      expect.stringMatching(/^SCHEDULE\s+WHEN\s+QUEUE\s+NEXT RUN \(UTC\)\s+RUNS$/),
      expect.stringMatching(/^digest\s+0 9 \* \* MON-FRI \(Europe\/Paris\)\s+reports\s+\S+ \S+\s+0$/),
      expect.stringMatching(/^sweep\s+every 90s\s+default\s+\S+ \S+\s+0$/),
    ]);
    expect((await runOperator({ args: ["schedules", "--queue", "reports", "--json"], env })).stdout).toContain('"id": "digest"');
    expect((await runOperator({ args: ["schedules", "pause", "sweep"], env })).stdout).toMatch(/^schedule sweep: every 90s, paused\n/);
    expect((await runOperator({ args: ["schedules", "resume", "sweep"], env })).stdout).toMatch(/^schedule sweep: every 90s\n/);
    expect((await runOperator({ args: ["schedules", "remove", "sweep"], env })).stdout).toMatch(/^removed: schedule sweep/);
    expect(await runOperator({ args: ["schedules", "get", "sweep"], env })).toMatchObject({ code: 1, stderr: 'coordination: SCHEDULE_NOT_FOUND: schedule "sweep" not found\n' });
    expect(await runOperator({ args: ["schedules", "set", "x", "--cron", "61 * * * *"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("coordination: INVALID_INPUT: --cron: is no cron pattern the server takes: Invalid value for minute: 61") });
    expect(await runOperator({ args: ["schedules", "set", "x", "--every", "1w"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--every must be a length of time such as 10s, 5m, 1h or 1d (got "1w")') });
    expect(await runOperator({ args: ["schedules", "set", "x", "--every", "1m", "--payload", "{nope"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--payload must be JSON (got "{nope")') });
    expect(await runOperator({ args: ["schedules", "pause", "x", "--queue", "q"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("schedules pause does not take --queue") });
    expect(await runOperator({ args: ["schedules", "set"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("schedules set needs a NAME") });
    expect(await runOperator({ args: ["schedules", "set", "x", "--every", "500ms"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("--every is 1s to 366d: not 500ms") });
    // An unquoted pattern: its fields are words of their own.
    expect(await runOperator({ args: ["schedules", "set", "x", "--cron", "0", "9", "*", "*", "*"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("schedules set takes one NAME, not 5 words: quote the cron pattern (--cron '0 9 * * *')") });
    expect((await t.api.schedules.list.query()).items.map((s) => s.id)).toEqual(["digest"]);
  });
});
