// Failure handling: exponential backoff, dead-letter at maxAttempts with the error history
// kept, requeue, and retry: false.
import { describe, expect, it, vi } from "vitest";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("retries and dead-letter", () => {
  it("fail → retry with backoff → dead_letter at maxAttempts → requeue → completes", async () => {
    await using t = await startTestServer({ retryBaseMs: 150, retryMaxMs: 250 });
    const task = await t.api.tasks.enqueue.mutate({ payload: { flaky: true }, maxAttempts: 3 });
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const claimed = await vi.waitFor(
        async () => {
          const c = await t.api.tasks.claim.mutate({ agentId: "a1" });
          expect(c).not.toBeNull();
          return c!;
        },
        { timeout: 30_000, interval: 10 },
      );
      expect(claimed.attempts).toBe(attempt);
      const failed = await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: `boom ${attempt}` });
      if (attempt < 3) {
        expect(failed.status).toBe("pending");
        delays.push(failed.runAt.getTime() - failed.updatedAt.getTime());
      } else {
        expect(failed.status).toBe("dead_letter");
      }
    }
    expect(delays).toEqual([150, 250]); // base, then doubled but capped at retryMaxMs

    const dead = await t.api.tasks.get.query({ taskId: task.id });
    expect(dead).toMatchObject({ status: "dead_letter", attempts: 3, lastError: "boom 3" });
    expect(dead.errorHistory.map((e) => [e.attempt, e.error])).toEqual([
      [1, "boom 1"],
      [2, "boom 2"],
      [3, "boom 3"],
    ]);
    expect(await t.api.tasks.claim.mutate({ agentId: "a1" })).toBeNull();

    const requeued = await t.api.tasks.requeue.mutate({ taskId: task.id });
    expect(requeued).toMatchObject({ status: "pending", attempts: 0 });
    expect(requeued.errorHistory).toHaveLength(3);
    const again = await t.api.tasks.claim.mutate({ agentId: "a2" });
    expect(again?.id).toBe(task.id);
    const done = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a2", result: "finally" });
    expect(done).toMatchObject({ status: "completed", result: "finally", attempts: 1 });
  });

  // The history goes out with every claim: a task retried without end must not carry megabytes.
  it("the error history keeps the newest 10 failed runs, across requeues too", async () => {
    await using t = await startTestServer({ retryBaseMs: 0, retryMaxMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 12 });
    const long = "x".repeat(9_990);
    for (let attempt = 1; attempt <= 12; attempt++) {
      await t.api.tasks.claim.mutate({ agentId: "a1" });
      await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: `${attempt} ${long}` });
    }
    const dead = await t.api.tasks.get.query({ taskId: task.id });
    expect(dead).toMatchObject({ status: "dead_letter", attempts: 12, lastError: `12 ${long}` });
    expect(dead.errorHistory.map((e) => [e.attempt, e.error.split(" ")[0]])).toEqual(Array.from({ length: 10 }, (_, i) => [i + 3, `${i + 3}`]));
    await t.api.tasks.requeue.mutate({ taskId: task.id });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1" });
    expect(claimed!.errorHistory).toHaveLength(10);
    const failed = await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: "after requeue" });
    expect(failed.errorHistory.map((e) => [e.attempt, e.error.split(" ")[0]])).toEqual([...Array.from({ length: 9 }, (_, i) => [i + 4, `${i + 4}`]), [1, "after"]]);
  });

  it("a task backing off is not claimable before its run-at", async () => {
    // A backoff of a minute: "not yet" holds however slow the machine is.
    await using t = await startTestServer({ retryBaseMs: 60_000 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    const failed = await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: "boom" });
    expect(failed.runAt.getTime() - failed.updatedAt.getTime()).toBe(60_000);
    expect(await t.api.tasks.claim.mutate({ agentId: "a1" })).toBeNull();
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 1 });
  });

  it("stats count a task backing off as pending and scheduled, with when it falls due; once due, as due, though nothing was written meanwhile", async () => {
    // A backoff long enough that the stats read right after the fail comes before it ends, on a busy machine too.
    await using t = await startTestServer({ retryBaseMs: 4000, retryMaxMs: 4000 });
    const task = await t.api.tasks.enqueue.mutate({ queue: "sched", payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a", queues: ["sched"] });
    const failed = await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a", error: "busy" });
    const backingOff = await t.api.tasks.stats.query({ queue: "sched" });
    expect(backingOff).toMatchObject({ scheduled: 1, nextDueAt: failed.runAt, totals: { pending: 1 } });
    expect(backingOff.queues).toEqual([expect.objectContaining({ queue: "sched", scheduled: 1, nextDueAt: failed.runAt, oldestPendingAgeMs: null })]);
    // No write since: the counts read before are reused only until the task falls due.
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(failed.runAt.getTime()), { timeout: 15_000, interval: 25 });
    const due = await t.api.tasks.stats.query({ queue: "sched" });
    expect(due).toMatchObject({ scheduled: 0, nextDueAt: null, totals: { pending: 1 } });
    expect(due.queues).toEqual([expect.objectContaining({ scheduled: 0, nextDueAt: null, oldestPendingAgeMs: expect.any(Number) })]);
    // A task enqueued with no delay just after the count's clock was read has a runAt past that
    // clock, but nothing scheduled it: as the store has it then (not delayed), it is not counted.
    const fresh = await t.api.tasks.enqueue.mutate({ queue: "sched2", payload: {} });
    withDatabase(t, (db) => db.prepare("UPDATE tasks SET runAt = ? WHERE id = ?").run(Date.now() + 60_000, fresh.id));
    await t.api.tasks.enqueue.mutate({ queue: "sched2", payload: {} }); // a write: the counts are read again
    expect(await t.api.tasks.stats.query({ queue: "sched2" })).toMatchObject({ scheduled: 0, queues: [expect.objectContaining({ scheduled: 0, nextDueAt: null })] });
  });

  it("retry: false dead-letters at once", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 5 });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    const failed = await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: "poison", retry: false });
    expect(failed).toMatchObject({ status: "dead_letter", attempts: 1, lastError: "poison" });
  });

  it("requeue refuses tasks that are not dead-lettered or cancelled (409)", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await expect(t.api.tasks.requeue.mutate({ taskId: task.id })).rejects.toMatchObject({ data: { code: "INVALID_STATE" } });
    expect((await rest(t.url, "POST", `/tasks/${task.id}/requeue`)).status).toBe(409);
    expect((await rest(t.url, "POST", `/tasks/nope/requeue`)).status).toBe(404);
  });

  it("the seed's REST fail route retries, then dead-letters", async () => {
    await using t = await startTestServer({ retryBaseMs: 0 });
    const { body: task } = await rest(t.url, "POST", "/tasks", { payload: { a: 1 }, maxAttempts: 2 });
    for (const expected of ["pending", "dead_letter"]) {
      const claim = await rest(t.url, "GET", "/tasks/claim/agent-1");
      expect(claim.status).toBe(200);
      const failed = await rest(t.url, "POST", `/tasks/${task.id}/fail`, { error: "nope" });
      expect(failed.status).toBe(200);
      expect(failed.body.status).toBe(expected);
    }
  });
});
