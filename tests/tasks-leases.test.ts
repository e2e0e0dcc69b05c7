// Leases: expiry returns a task to the queue, a stale holder is fenced off, heartbeats extend,
// release gives a task back without charging an attempt.
import { describe, expect, it, vi } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

const conflict = { data: { code: "LEASE_CONFLICT", httpStatus: 409 } };

describe("leases and fencing", () => {
  it("expires a short lease, lets another agent claim, and answers the first holder's complete with 409", async () => {
    await using t = await startTestServer({ leaseSweepMs: 20 });
    const task = await t.api.tasks.enqueue.mutate({ payload: { job: 1 }, maxAttempts: 5 });
    const first = await t.api.tasks.claim.mutate({ agentId: "slow", leaseMs: 100 });
    expect(first?.leaseToken).toBe(1);

    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("pending"), { timeout: 30_000, interval: 20 });
    const second = await t.api.tasks.claim.mutate({ agentId: "fast" });
    expect(second).toMatchObject({ id: task.id, leaseOwner: "fast", leaseToken: 2, attempts: 2 });

    await expect(t.api.tasks.complete.mutate({ taskId: task.id, agentId: "slow", result: "late" })).rejects.toMatchObject(conflict);
    const viaRest = await rest(t.url, "POST", `/tasks/${task.id}/complete`, { agentId: "slow", result: "late" });
    expect(viaRest.status).toBe(409);
    expect(viaRest.body.message).toContain('claimed by "fast"');

    const done = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "fast", result: "ok" });
    expect(done).toMatchObject({ status: "completed", result: "ok", leaseOwner: "fast" });
    const expiry = done.errorHistory;
    expect(expiry).toHaveLength(1);
    expect(expiry[0]).toMatchObject({ attempt: 1, agentId: "slow" });
    expect(expiry[0]!.error).toContain("lease expired");
  });

  it("fences by leaseToken: the same agent's stale lease cannot settle its newer one", async () => {
    await using t = await startTestServer({ leaseSweepMs: 20 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 5 });
    const old = await t.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 80 });
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("pending"), { timeout: 30_000, interval: 20 });
    const fresh = await t.api.tasks.claim.mutate({ agentId: "a1" });
    expect(fresh!.leaseToken).toBe(old!.leaseToken + 1);
    await expect(t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", leaseToken: old!.leaseToken })).rejects.toMatchObject(conflict);
    const done = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", leaseToken: fresh!.leaseToken });
    expect(done.status).toBe("completed");
  });

  it("a retried complete from the holder gets the same answer, not a conflict", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    const first = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: { n: 1 } });
    const again = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: { n: 1 } });
    expect(again).toEqual(first);
    await expect(t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a2" })).rejects.toMatchObject(conflict);
  });

  it("heartbeat extends the lease so the sweeper leaves the task alone", async () => {
    await using t = await startTestServer({ leaseSweepMs: 20 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    // 2 s: the heartbeat comes before the sweeper could take the lease, on a slow machine too.
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 2000 });
    const extended = await t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a1", leaseMs: 60_000 });
    expect(extended.leaseExpiresAt!.getTime()).toBeGreaterThan(claimed!.leaseExpiresAt!.getTime() + 50_000);
    // Past the lease the claim gave: only the heartbeat keeps the task now.
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(claimed!.leaseExpiresAt!.getTime() + 40), { timeout: 10_000, interval: 50 });
    await t.server.services.jobs.leaseSweeper.runNow();
    expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed");
    await expect(t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "other" })).rejects.toMatchObject(conflict);
  });

  it("a heartbeat naming no leaseMs renews the lease by the length it was claimed or last renewed with", async () => {
    await using t = await startTestServer({ leaseMs: 30_000 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await t.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 600_000 }))!;
    /** The lease a heartbeat gave, in ms from when it was renewed (its updatedAt). */
    const length = (renewed: { leaseExpiresAt: Date | null; updatedAt: Date }) => renewed.leaseExpiresAt!.getTime() - renewed.updatedAt.getTime();
    expect(length(claimed)).toBe(600_000);
    expect(length(await t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a1", leaseToken: claimed.leaseToken }))).toBe(600_000);
    // Over REST too, and leaseMs 0 means "not named", as on a claim.
    const viaRest = await rest(t.url, "POST", `/tasks/${task.id}/heartbeat`, { agentId: "a1", leaseMs: 0 });
    expect(Date.parse(viaRest.body.leaseExpiresAt) - Date.parse(viaRest.body.updatedAt)).toBe(600_000);
    // A length named is the lease's from then on.
    expect(length(await t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a1", leaseMs: 120_000 }))).toBe(120_000);
    expect(length(await t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a1" }))).toBe(120_000);
    // A claim with no length takes the server's, and so do its heartbeats.
    const other = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a2" });
    expect(length(await t.api.tasks.heartbeat.mutate({ taskId: other.id, agentId: "a2" }))).toBe(30_000);
  });

  it("a lease's own length is renewed up to maxLeaseMs: after the setting was lowered, its next heartbeat is cut to it", async () => {
    const first = await startTestServer({ maxLeaseMs: 600_000 });
    await first.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await first.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 600_000 }))!;
    await first.stop();
    await using again = await startTestServer({ maxLeaseMs: 60_000 }, first.dir);
    const renewed = await again.api.tasks.heartbeat.mutate({ taskId: claimed.id, agentId: "a1", leaseToken: claimed.leaseToken });
    expect(renewed.leaseExpiresAt!.getTime() - renewed.updatedAt.getTime()).toBe(60_000);
  });

  it("dead-letters a task whose lease keeps expiring once attempts run out", async () => {
    await using t = await startTestServer({ leaseSweepMs: 20 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 2 });
    for (const agent of ["a1", "a2"]) {
      await vi.waitFor(async () => expect(await t.api.tasks.claim.mutate({ agentId: agent, leaseMs: 50 })).not.toBeNull(), { timeout: 30_000, interval: 20 });
    }
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("dead_letter"), { timeout: 30_000, interval: 20 });
    const dead = await t.api.tasks.get.query({ taskId: task.id });
    expect(dead.attempts).toBe(2);
    expect(dead.errorHistory.map((e) => e.agentId)).toEqual(["a1", "a2"]);
  });

  it("release returns the task to pending without charging the attempt; only the holder may release", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await expect(t.api.tasks.release.mutate({ taskId: task.id, agentId: "a2" })).rejects.toMatchObject(conflict);
    const released = await t.api.tasks.release.mutate({ taskId: task.id, agentId: "a1" });
    expect(released).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null, leaseExpiresAt: null });
    const again = await t.api.tasks.claim.mutate({ agentId: "a2" });
    expect(again).toMatchObject({ id: task.id, attempts: 1, leaseToken: 2 });
  });

  it("a release sent again (its answer lost) gets the same answer while the task is pending under that lease; not once it moved on, nor for another agent or an expired lease", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ queue: "rel", payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["rel"] });
    const call = { taskId: task.id, agentId: "a1", leaseToken: 1, delayMs: 60_000 };
    const first = await t.api.tasks.release.mutate(call);
    expect(first).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null, leaseToken: 1, settledLease: { agentId: "a1", leaseToken: 1 } });
    expect(await t.api.tasks.release.mutate(call)).toEqual(first);
    // Over REST, and without the token: the same.
    expect(await rest(t.url, "POST", `/tasks/${task.id}/release`, { agentId: "a1", delayMs: 60_000 })).toMatchObject({ status: 200, body: { id: task.id, status: "pending", settledLease: { agentId: "a1", leaseToken: 1 } } });
    // Sent with another delay, it is another call: a conflict saying so, the first release's delay standing.
    await expect(t.api.tasks.release.mutate({ ...call, delayMs: 0 })).rejects.toMatchObject({
      ...conflict,
      message: `lease 1 of agent "a1" on task "${task.id}" was released already, with delayMs 60000; this release differs (delayMs 0), and changes nothing`,
    });
    // Another agent, or another lease of the same agent, did not release it.
    await expect(t.api.tasks.release.mutate({ ...call, agentId: "a2" })).rejects.toMatchObject(conflict);
    await expect(t.api.tasks.release.mutate({ ...call, leaseToken: 2 })).rejects.toMatchObject(conflict);
    // One task.released event: the repeats changed nothing.
    expect((await t.api.events.list.query({ types: ["task.released"], limit: 10 })).length).toBe(1);
    // Cancelled and requeued by an admin since: pending under the same lease token, but no release of it to repeat.
    const requeued = await t.api.tasks.enqueue.mutate({ queue: "rel4", payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["rel4"] });
    await t.api.tasks.release.mutate({ taskId: requeued.id, agentId: "a1", leaseToken: 1, delayMs: 60_000 });
    await t.api.tasks.cancel.mutate({ taskId: requeued.id });
    await t.api.tasks.requeue.mutate({ taskId: requeued.id });
    for (const delayMs of [0, 60_000]) {
      await expect(t.api.tasks.release.mutate({ taskId: requeued.id, agentId: "a1", leaseToken: 1, delayMs })).rejects.toMatchObject({
        ...conflict,
        message: `agent "a1" does not hold the lease on task "${requeued.id}": it is pending`,
      });
    }

    // Claimed again since (lease 2): the old release, sent late, is a conflict.
    const next = await t.api.tasks.enqueue.mutate({ queue: "rel2", payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["rel2"] });
    await t.api.tasks.release.mutate({ taskId: next.id, agentId: "a1", leaseToken: 1 });
    expect(await t.api.tasks.claim.mutate({ agentId: "a2", queues: ["rel2"] })).toMatchObject({ id: next.id, leaseToken: 2 });
    await expect(t.api.tasks.release.mutate({ taskId: next.id, agentId: "a1", leaseToken: 1 })).rejects.toMatchObject(conflict);
    await expect(t.api.tasks.release.mutate({ taskId: next.id, agentId: "a1" })).rejects.toMatchObject(conflict);
    // A lease that ran out was released by no one: its holder's release is a conflict.
    const other = await t.api.tasks.enqueue.mutate({ queue: "rel3", payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a3", queues: ["rel3"], leaseMs: 1 });
    await vi.waitFor(async () => expect(await t.api.tasks.get.query({ taskId: other.id })).toMatchObject({ status: "pending", leaseToken: 1 }), { timeout: 15_000, interval: 25 });
    await expect(t.api.tasks.release.mutate({ taskId: other.id, agentId: "a3", leaseToken: 1 })).rejects.toMatchObject(conflict);
  });

  it("cancel stops a pending or claimed task; the holder can no longer settle it", async () => {
    await using t = await startTestServer();
    const pending = await t.api.tasks.enqueue.mutate({ payload: {} });
    expect((await t.api.tasks.cancel.mutate({ taskId: pending.id })).status).toBe("cancelled");
    const claimedTask = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    expect((await t.api.tasks.cancel.mutate({ taskId: claimedTask.id })).status).toBe("cancelled");
    await expect(t.api.tasks.complete.mutate({ taskId: claimedTask.id, agentId: "a1" })).rejects.toMatchObject(conflict);
    expect(await t.api.tasks.claim.mutate({ agentId: "a1" })).toBeNull();
  });

  it("cancel discards a dead letter, keeping its errors; a completed task cannot be cancelled", async () => {
    await using t = await startTestServer();
    const dead = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 1 });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.fail.mutate({ taskId: dead.id, agentId: "a1", error: "broken input" });
    const discarded = await t.api.tasks.cancel.mutate({ taskId: dead.id });
    expect([discarded.status, discarded.lastError, discarded.errorHistory.length]).toEqual(["cancelled", "broken input", 1]);
    expect((await t.api.tasks.list.query({ status: "dead_letter" })).items).toEqual([]);
    const events = await t.api.events.list.query({ afterSeq: 0, types: ["task.cancelled"] });
    expect(events.map((event) => event.payload)).toEqual([{ taskId: dead.id, queue: "default", previousStatus: "dead_letter", agentId: null }]);

    const done = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.complete.mutate({ taskId: done.id, agentId: "a1" });
    await expect(t.api.tasks.cancel.mutate({ taskId: done.id })).rejects.toMatchObject({ data: { code: "INVALID_STATE", httpStatus: 409 } });
  });
});
