// A claim sent again after its answer was lost (a client's timeout, a proxy's reset) must not lease
// a second task while the first waits out its lease and is charged an attempt. With an
// idempotencyKey, the same agent's same key answers the leases that claim took, while it holds
// them; a complete-and-claim is keyed by the task it completed (tasks-complete-and-claim.test.ts).
import Database from "better-sqlite3";
import { describe, expect, it, vi } from "vitest";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("claims with an idempotencyKey", () => {
  it("sent again, a claim hands out the same task again, the same run under a new lease token, no attempt charged", async () => {
    await using t = await startTestServer();
    const [a, b] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "ik", payload: n })) });
    const body = { agentId: "py", queues: ["ik"], idempotencyKey: "claim-0001" };
    const first = await rest(t.url, "POST", "/tasks/claim", body);
    expect(first.body).toMatchObject({ id: a!.id, leaseToken: 1, attempts: 1 });
    const again = await rest(t.url, "POST", "/tasks/claim", body);
    expect(again.body).toMatchObject({ id: a!.id, leaseToken: 2, attempts: 1, status: "claimed", leaseOwner: "py" });
    // The seed's route takes the key in its query string: the same task again.
    const seed = await rest(t.url, "GET", "/tasks/claim/py?queue=ik&idempotencyKey=claim-0001");
    expect(seed.body).toMatchObject({ id: a!.id, leaseToken: 3, attempts: 1 });
    // Each lease handed out again says which one it replaces; the old tokens are fenced.
    const claimed = (await t.api.events.list.query({ types: ["task.claimed"] })).map((e) => e.payload as { taskId: string; leaseToken: number; attempt: number; reissuedFrom?: number });
    expect(claimed.map((e) => [e.taskId, e.leaseToken, e.attempt, e.reissuedFrom])).toEqual([
      [a!.id, 1, 1, undefined],
      [a!.id, 2, 1, 1],
      [a!.id, 3, 1, 2],
    ]);
    expect((await rest(t.url, "POST", `/tasks/${a!.id}/heartbeat`, { agentId: "py", leaseToken: 1 })).status).toBe(409);
    expect(await t.api.tasks.get.query({ taskId: b!.id })).toMatchObject({ status: "pending", attempts: 0 });

    // Another key, or no key: another task. The same key from another agent is that agent's own.
    expect((await rest(t.url, "POST", "/tasks/claim", { ...body, idempotencyKey: "claim-0002" })).body).toMatchObject({ id: b!.id });
    expect(await rest(t.url, "POST", "/tasks/claim", { ...body, agentId: "other" })).toEqual({ status: 200, body: null });

    // A lease that moved on without this version's claim (a server of an older version on the
    // file leases the task again, same agent, and writes no key) is not the key's any more.
    const [e] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "ik2", payload: 5 }] });
    expect((await rest(t.url, "POST", "/tasks/claim", { ...body, queues: ["ik2"], idempotencyKey: "old" })).body).toMatchObject({ id: e!.id, leaseToken: 1 });
    withDatabase(t, (db) => db.prepare("UPDATE tasks SET leaseToken = leaseToken + 1, attempts = attempts + 1 WHERE id = ?").run(e!.id));
    expect(await rest(t.url, "POST", "/tasks/claim", { ...body, queues: ["ik2"], idempotencyKey: "old" })).toEqual({ status: 200, body: null });

    // Once the agent holds none of that claim's tasks, the key claims anew.
    await t.api.tasks.complete.mutate({ taskId: a!.id, agentId: "py", leaseToken: 3 });
    const c = await t.api.tasks.enqueue.mutate({ queue: "ik", payload: 3 });
    expect((await rest(t.url, "POST", "/tasks/claim", body)).body).toMatchObject({ id: c.id, leaseToken: 1 });
  });

  it("claimMany answers the tasks it leased that the agent still holds; a long-poll keys the lease it takes when a task arrives", async () => {
    await using t = await startTestServer();
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3, 4].map((n) => ({ queue: "many", payload: n })) });
    const first = await t.api.tasks.claimMany.mutate({ agentId: "m", queues: ["many"], limit: 3, idempotencyKey: "batch-1" });
    expect(first.map((task) => task.id)).toEqual(tasks.slice(0, 3).map((task) => task.id));
    await t.api.tasks.complete.mutate({ taskId: first[1]!.id, agentId: "m", leaseToken: 1 });
    const again = await t.api.tasks.claimMany.mutate({ agentId: "m", queues: ["many"], limit: 3, idempotencyKey: "batch-1" });
    expect(again.map((task) => [task.id, task.leaseToken, task.attempts])).toEqual([first[0]!, first[2]!].map((task) => [task.id, 2, 1]));
    expect(await t.api.tasks.get.query({ taskId: tasks[3]!.id })).toMatchObject({ status: "pending" });

    const waiting = t.api.tasks.claim.mutate({ agentId: "lp", queues: ["late"], waitMs: 20_000, idempotencyKey: "poll-1" });
    const late = await t.api.tasks.enqueue.mutate({ queue: "late", payload: "x" });
    expect(await waiting).toMatchObject({ id: late.id, leaseToken: 1 });
    expect(await t.api.tasks.claim.mutate({ agentId: "lp", queues: ["late"], idempotencyKey: "poll-1" })).toMatchObject({ id: late.id, leaseToken: 2 });
  });

  it("a repeat that reaches the writer before the first call's answer was found undelivered keeps its task: the release of the first lease misses", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const [x] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "q", payload: n })) });
    const body = { agentId: "A", queues: ["q"], idempotencyKey: "K" };
    // Another process holds the write lock: both calls wait in the writer.
    const lock = new Database(t.dbPath);
    lock.exec("BEGIN IMMEDIATE");
    const writes = () => t.server.services.db.inFlight.writes;
    const abort = new AbortController();
    const first = fetch(`${t.url}/tasks/claim`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: abort.signal }).catch(() => "aborted");
    await vi.waitFor(() => expect(writes()).toBe(1), { timeout: 15_000, interval: 25 });
    abort.abort(); // the client times out, and sends the same claim again
    const again = rest(t.url, "POST", "/tasks/claim", body);
    await vi.waitFor(() => expect(writes()).toBe(2), { timeout: 15_000, interval: 25 });
    lock.exec("COMMIT");
    lock.close();
    expect(await first).toBe("aborted");
    expect((await again).body).toMatchObject({ id: x!.id, leaseToken: 2, attempts: 1 });
    // The first call's answer never arrived: its release (of lease 1) is done, and missed.
    await vi.waitFor(() => expect([t.server.services.db.sent.get("tasks.releaseUndelivered"), writes()]).toEqual([1, 0]), { timeout: 15_000, interval: 25 });
    expect(await t.api.tasks.get.query({ taskId: x!.id })).toMatchObject({ status: "claimed", leaseOwner: "A", leaseToken: 2, attempts: 1 });
    expect((await rest(t.url, "POST", `/tasks/${x!.id}/heartbeat`, { agentId: "A", leaseToken: 2 })).status).toBe(200);
    // Another agent gets the other task, not this one.
    expect((await rest(t.url, "POST", "/tasks/claim", { agentId: "B", queues: ["q"] })).body.id).not.toBe(x!.id);
  });
});
