// A schedule stored with a time zone or cron pattern this server cannot read: another server on
// the file whose Node knows a newer IANA zone (tzdata adds zones: Europe/Kyiv, America/Ciudad_Juarez)
// set it, or a croner that took a pattern this one refuses. The write that plans its next run is a
// claim, a cancel or the expiry job's: none of them may fail for it, nor every claim behind it.
import { afterEach, describe, expect, it } from "vitest";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** What a server that knows a zone this one does not leaves in the row: a zone Node here refuses. */
const storeUnreadableZone = (server: TestServer, scheduleId: string) =>
  withDatabase(server, (db) => db.prepare(`UPDATE schedules SET timezone = 'Mars/Olympus_Mons' WHERE id = ?`).run(scheduleId));

describe("a schedule whose stored timing this server cannot read", () => {
  it("never fails the claim, cancel or expiry of its run: that run is taken, and the schedule has no run ahead until set again, which schedule.ended says", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    for (const id of ["claimed", "cancelled", "expired"]) {
      await api.schedules.set.mutate({ scheduleId: id, cron: "0 9 * * *", timezone: "Europe/Paris", task: { queue: id } });
      storeUnreadableZone(t, id);
    }

    // Claimed: its run made due now (a trigger reads no pattern), then claimed beside another queue's task.
    const { task: run } = await api.schedules.trigger.mutate({ scheduleId: "claimed" });
    const other = await api.tasks.enqueue.mutate({ queue: "other", payload: {} });
    const claimed = await api.tasks.claimMany.mutate({ agentId: "a", queues: ["claimed", "other"], limit: 10, context: false });
    expect(claimed.map((task) => task.id).sort()).toEqual([run.id, other.id].sort());
    expect(await api.schedules.get.query({ scheduleId: "claimed" })).toMatchObject({ state: "ended", runs: 1, lastTaskId: run.id, nextRunAt: null, nextTaskId: null });
    expect(await api.tasks.complete.mutate({ taskId: run.id, agentId: "a" })).toMatchObject({ status: "completed" });

    // Cancelled: that run is skipped, and no run comes after it.
    const pending = (await api.schedules.get.query({ scheduleId: "cancelled" })).nextTaskId!;
    expect(await api.tasks.cancel.mutate({ taskId: pending })).toMatchObject({ status: "cancelled" });
    expect(await api.schedules.get.query({ scheduleId: "cancelled" })).toMatchObject({ state: "ended", runs: 0, nextRunAt: null, nextTaskId: null });

    // Expired: the expiry job cancels it, and the other tasks its page holds with it.
    const expiring = (await api.schedules.get.query({ scheduleId: "expired" })).nextTaskId!;
    const plain = await api.tasks.enqueue.mutate({ queue: "plain", payload: {}, ttlMs: 3_600_000 });
    const past = Date.now() - 1000;
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET expiresAt = ? WHERE id IN (?, ?)`).run(past, expiring, plain.id));
    await t.server.services.jobs.taskExpiry.runNow();
    expect((await api.tasks.get.query({ taskId: expiring })).status).toBe("cancelled");
    expect((await api.tasks.get.query({ taskId: plain.id })).status).toBe("cancelled");
    expect(await api.schedules.get.query({ scheduleId: "expired" })).toMatchObject({ state: "ended", nextRunAt: null, nextTaskId: null });

    // Each says why in its schedule.ended, once: nothing else would tell an operator.
    const ended = await api.events.list.query({ afterSeq: 0, types: ["schedule.ended"], limit: 10 });
    expect(ended.map((e) => e.payload)).toEqual([
      { scheduleId: "claimed", queue: "claimed", runs: 1, reason: "timing" },
      { scheduleId: "cancelled", queue: "cancelled", runs: 0, reason: "timing" },
      { scheduleId: "expired", queue: "expired", runs: 0, reason: "timing" },
    ]);

    // Set again with a zone this server knows, it runs on.
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "cancelled", cron: "0 9 * * *", timezone: "Europe/Paris", task: { queue: "cancelled" } });
    expect(schedule.state).toBe("running");
    expect(await api.tasks.get.query({ taskId: schedule.nextTaskId! })).toMatchObject({ status: "pending", runAt: schedule.nextRunAt });
  });

  it("the schedule-repair job following a run claimed elsewhere says so too: schedule.ended with reason \"timing\"", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "repaired", cron: "0 9 * * *", timezone: "Europe/Paris", task: { queue: "repaired" } });
    storeUnreadableZone(t, "repaired");
    // Its run claimed by a server that plans nothing after it (an older one on the same file).
    const claimedAt = Date.now();
    withDatabase(t, (db) =>
      db.prepare(`UPDATE tasks SET status = 'claimed', leaseOwner = 'old-agent', leaseToken = 1, attempts = 1, claimedAt = ?, leaseExpiresAt = ?, updatedAt = ? WHERE id = ?`).run(claimedAt, claimedAt + 60_000, claimedAt, schedule.nextTaskId),
    );
    await t.server.services.jobs.scheduleRepair.runNow();
    expect(await api.schedules.get.query({ scheduleId: "repaired" })).toMatchObject({ state: "ended", runs: 1, nextRunAt: null, nextTaskId: null });
    const ended = await api.events.list.query({ afterSeq: 0, types: ["schedule.ended"], limit: 10 });
    expect(ended.map((e) => e.payload)).toEqual([{ scheduleId: "repaired", queue: "repaired", runs: 1, reason: "timing" }]);
  });
});
