// Fencing in every form of the API. The seed's REST settles carry no agentId, so they act on
// whatever lease is current. What they must never do: pass a stale agent's result off as the
// rightful holder's. A second complete with a different result is a conflict; a retry with the
// same result is idempotent; and every settle answer names the lease it ended.
import { describe, expect, it } from "vitest";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

/** Claims the task for `agentId` after the previous lease expired (the sweeper runs now). */
async function takeOverAfterExpiry(t: TestServer, agentId: string): Promise<number> {
  await t.server.services.tasks.expireLeases();
  const claimed = await t.api.tasks.claim.mutate({ agentId });
  return claimed!.leaseToken;
}

describe("fencing of anonymous settles", () => {
  it("a stale agent's anonymous complete cannot pass as the new holder's: the holder's own complete is a 409, not the stale result with 200", async () => {
    await using t = await startTestServer({ leaseSweepMs: 60_000, memoryContextLimit: 0 });
    const task = await t.api.tasks.enqueue.mutate({ payload: { n: 1 } });
    const first = await t.api.tasks.claim.mutate({ agentId: "stale", leaseMs: 1 });
    expect(first?.leaseToken).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const token = await takeOverAfterExpiry(t, "holder");
    expect(token).toBe(2);

    // The stale agent, using the seed's REST form, settles whatever lease is current: the answer says whose.
    const anonymous = await rest(t.url, "POST", `/tasks/${task.id}/complete`, { result: { by: "stale" } });
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toMatchObject({ status: "completed", result: { by: "stale" }, settledLease: { agentId: "holder", leaseToken: 2 } });

    // The rightful holder finds out instead of being told its work was taken.
    const own = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "holder", leaseToken: 2, result: { by: "holder" } }).catch((e: unknown) => e);
    expect(own).toMatchObject({ data: { code: "INVALID_STATE", httpStatus: 409 } });
    expect((own as Error).message).toContain("with a different result");
    // A named complete by the stale agent is fenced out as before.
    await expect(t.api.tasks.complete.mutate({ taskId: task.id, agentId: "stale", result: { by: "stale" } })).rejects.toMatchObject({
      data: { code: "LEASE_CONFLICT" },
    });
    // The event log tells the anonymous settle apart.
    const [completed] = await t.api.events.list.query({ types: ["task.completed"] });
    expect(completed?.payload).toEqual({ taskId: task.id, queue: "default", agentId: "holder", attempt: 2, leaseToken: 2, ranMs: expect.any(Number), anonymous: true });
  });

  it("a complete sent again with the same result is idempotent, with the same answer; key order does not matter", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    const result = { summary: "done", detail: { a: 1, b: [1, 2] } };
    const once = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result });
    const again = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: { detail: { b: [1, 2], a: 1 }, summary: "done" } });
    expect(again).toEqual(once);
    expect(once.settledLease).toEqual({ agentId: "a1", leaseToken: 1 });
    const anonymousRetry = await rest(t.url, "POST", `/tasks/${task.id}/complete`, { result });
    expect(anonymousRetry.status).toBe(200);
    const differs = await rest(t.url, "POST", `/tasks/${task.id}/complete`, { result: { summary: "other" } });
    expect(differs.status).toBe(409);
    const noResult = await rest(t.url, "POST", `/tasks/${task.id}/complete`, {});
    expect(noResult.status).toBe(409);
    expect((await t.api.events.list.query({ types: ["task.completed"] })).length).toBe(1);
  });

  it("a fail sent again (its answer lost) gets the same answer while the task is as it left it; else a 409", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0, retryBaseMs: 60_000 });
    const [retried, dead, anonymous] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3].map((n) => ({ queue: `f${n}`, payload: n, maxAttempts: 2 })) });
    const claim = async (queue: string) => (await rest(t.url, "POST", "/tasks/claim", { agentId: "fa", queues: [queue] })).body as { id: string; leaseToken: number };
    const failedEvents = async () => (await t.api.events.list.query({ types: ["task.failed"], limit: 50 })).length;

    // A retried fail: pending for its backoff, answered the same again.
    await claim("f1");
    const once = await rest(t.url, "POST", `/tasks/${retried!.id}/fail`, { agentId: "fa", leaseToken: 1, error: "boom" });
    expect(once.body).toMatchObject({ status: "pending", settledLease: { agentId: "fa", leaseToken: 1 } });
    const again = await rest(t.url, "POST", `/tasks/${retried!.id}/fail`, { agentId: "fa", leaseToken: 1, error: "boom" });
    expect(again).toEqual(once);
    // Not a repeat: another error, another agent, another lease, or asking for no retry: 409, nothing changes.
    for (const body of [
      { agentId: "fa", leaseToken: 1, error: "other" },
      { agentId: "fb", leaseToken: 1, error: "boom" },
      { agentId: "fa", leaseToken: 2, error: "boom" },
      { agentId: "fa", leaseToken: 1, error: "boom", retry: false },
    ]) {
      expect(await rest(t.url, "POST", `/tasks/${retried!.id}/fail`, body)).toMatchObject({ status: 409, body: { code: "LEASE_CONFLICT" } });
    }
    // The same lease failing again otherwise says what the first fail did, not only that the lease is gone.
    expect((await rest(t.url, "POST", `/tasks/${retried!.id}/fail`, { agentId: "fa", leaseToken: 1, error: "other" })).body.message).toBe(
      `lease 1 of agent "fa" on task "${retried!.id}" has ended already (its last error: "boom") and the task is pending; this fail differs (error), and changes nothing`,
    );

    // A fail with no retry: a dead letter, answered the same again.
    await claim("f2");
    const deadOnce = await rest(t.url, "POST", `/tasks/${dead!.id}/fail`, { agentId: "fa", leaseToken: 1, error: "fatal", retry: false });
    expect(deadOnce.body).toMatchObject({ status: "dead_letter", settledLease: { agentId: "fa", leaseToken: 1 } });
    expect(await rest(t.url, "POST", `/tasks/${dead!.id}/fail`, { agentId: "fa", leaseToken: 1, error: "fatal", retry: false })).toEqual(deadOnce);
    // A retry asked for, but the task was dead-lettered with attempts left: not what that call did.
    expect((await rest(t.url, "POST", `/tasks/${dead!.id}/fail`, { agentId: "fa", leaseToken: 1, error: "fatal" })).status).toBe(409);

    // The seed's anonymous fail, sent again.
    await claim("f3");
    const anonOnce = await rest(t.url, "POST", `/tasks/${anonymous!.id}/fail`, { error: "boom" });
    expect(await rest(t.url, "POST", `/tasks/${anonymous!.id}/fail`, { error: "boom" })).toEqual(anonOnce);
    // One task.failed event a fail, however often it was sent.
    expect(await failedEvents()).toBe(3);
    expect(await t.api.tasks.get.query({ taskId: retried!.id })).toMatchObject({ status: "pending", attempts: 1, leaseToken: 1, errorHistory: [{ attempt: 1, error: "boom" }] });
  });

    it("a fail is no repeat once the task was claimed since, even released with its attempt count back", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0, retryBaseMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 3 });
    await t.api.tasks.claim.mutate({ agentId: "A" });
    expect((await rest(t.url, "POST", `/tasks/${task.id}/fail`, { agentId: "A", error: "boom" })).body).toMatchObject({ status: "pending", attempts: 1 });
    expect(await t.api.tasks.claim.mutate({ agentId: "B" })).toMatchObject({ id: task.id, leaseToken: 2, attempts: 2 });
    expect(await t.api.tasks.release.mutate({ taskId: task.id, agentId: "B" })).toMatchObject({ status: "pending", attempts: 1 });
    for (const body of [{ agentId: "A", error: "boom" }, { error: "boom" }]) {
      expect(await rest(t.url, "POST", `/tasks/${task.id}/fail`, body)).toMatchObject({ status: 409, body: { code: "LEASE_CONFLICT" } });
    }
    expect((await t.api.events.list.query({ types: ["task.failed"] })).length).toBe(1);
  });

    it("fail and release name the lease they ended, even when the task goes back to pending", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0, retryBaseMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    const failed = await rest(t.url, "POST", `/tasks/${task.id}/fail`, { error: "boom" });
    expect(failed.body).toMatchObject({ status: "pending", leaseOwner: null, settledLease: { agentId: "a1", leaseToken: 1 } });
    await t.api.tasks.claim.mutate({ agentId: "a2" });
    const released = await t.api.tasks.release.mutate({ taskId: task.id, agentId: "a2" });
    expect(released).toMatchObject({ status: "pending", settledLease: { agentId: "a2", leaseToken: 2 } });
  });
});
