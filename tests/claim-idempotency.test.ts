// A claim sent again after its answer was lost (a client's timeout, a proxy's reset) must not lease
// a second task while the first waits out its lease and is charged an attempt. With an
// idempotencyKey, the same agent's same key answers the leases that claim took, while it holds
// them; a complete-and-claim is keyed by the task it completed (tasks-complete-and-claim.test.ts).
import Database from "better-sqlite3";
import diagnosticsChannel from "node:diagnostics_channel";
import type { ServerResponse } from "node:http";
import { describe, expect, it, vi } from "vitest";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

describe("claims with an idempotencyKey", () => {
  it("sent again, a claim answers the same task under the same lease, with no event and no attempt charged", async () => {
    await using t = await startTestServer();
    const [a, b] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "ik", payload: n })) });
    const body = { agentId: "py", queues: ["ik"], idempotencyKey: "claim-0001" };
    const first = await rest(t.url, "POST", "/tasks/claim", body);
    expect(first.body).toMatchObject({ id: a!.id, leaseToken: 1, attempts: 1 });
    const again = await rest(t.url, "POST", "/tasks/claim", body);
    // The same lease, renewed as a heartbeat renews it.
    expect(again.body).toEqual({ ...first.body, leaseExpiresAt: again.body.leaseExpiresAt, updatedAt: again.body.updatedAt });
    expect(Date.parse(again.body.leaseExpiresAt)).toBeGreaterThanOrEqual(Date.parse(first.body.leaseExpiresAt));
    // The seed's route takes the key in its query string: the same lease again.
    const seed = await rest(t.url, "GET", "/tasks/claim/py?queue=ik&idempotencyKey=claim-0001");
    expect(seed.body).toMatchObject({ id: a!.id, leaseToken: 1, attempts: 1 });
    const claimed = (await t.api.events.list.query({ types: ["task.claimed"] })).map((e) => (e.payload as { taskId: string }).taskId);
    expect(claimed).toEqual([a!.id]);
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
    await t.api.tasks.complete.mutate({ taskId: a!.id, agentId: "py", leaseToken: 1 });
    const c = await t.api.tasks.enqueue.mutate({ queue: "ik", payload: 3 });
    expect((await rest(t.url, "POST", "/tasks/claim", body)).body).toMatchObject({ id: c.id, leaseToken: 1 });
  });

  it("keys that look alike stay apart: '#' and '%' in a key are its own", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3, 4].map((n) => ({ queue: "k", payload: n })) });
    const keys = ["p", "p#1#1", "p%23", "p#1"];
    const got: string[] = [];
    for (const key of keys) got.push((await t.api.tasks.claim.mutate({ agentId: "K", queues: ["k"], idempotencyKey: key }))!.id);
    expect(got).toEqual(tasks.map((task) => task.id));
    for (const [i, key] of keys.entries()) expect((await t.api.tasks.claim.mutate({ agentId: "K", queues: ["k"], idempotencyKey: key }))!.id).toBe(got[i]);
  });

    it("claimMany answers the tasks it leased that the agent still holds; a long-poll keys the lease it takes when a task arrives", async () => {
    await using t = await startTestServer();
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3, 4].map((n) => ({ queue: "many", payload: n })) });
    const first = await t.api.tasks.claimMany.mutate({ agentId: "m", queues: ["many"], limit: 3, idempotencyKey: "batch-1" });
    expect(first.map((task) => task.id)).toEqual(tasks.slice(0, 3).map((task) => task.id));
    await t.api.tasks.complete.mutate({ taskId: first[1]!.id, agentId: "m", leaseToken: 1 });
    const again = await t.api.tasks.claimMany.mutate({ agentId: "m", queues: ["many"], limit: 3, idempotencyKey: "batch-1" });
    expect(again.map((task) => [task.id, task.leaseToken, task.attempts])).toEqual([first[0]!, first[2]!].map((task) => [task.id, 1, 1]));
    expect(await t.api.tasks.get.query({ taskId: tasks[3]!.id })).toMatchObject({ status: "pending" });

    const waiting = t.api.tasks.claim.mutate({ agentId: "lp", queues: ["late"], waitMs: 20_000, idempotencyKey: "poll-1" });
    const late = await t.api.tasks.enqueue.mutate({ queue: "late", payload: "x" });
    expect(await waiting).toMatchObject({ id: late.id, leaseToken: 1 });
    expect(await t.api.tasks.claim.mutate({ agentId: "lp", queues: ["late"], idempotencyKey: "poll-1" })).toMatchObject({ id: late.id, leaseToken: 1 });
  });

  it("a steal sent again with its key answers the leases it took while the thief holds them, not more; a new key takes others", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const [a, b, c] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3].map((n) => ({ queue: "st", payload: n })) });
    for (let i = 0; i < 3; i++) await t.api.tasks.claim.mutate({ agentId: "victim", queues: ["st"], leaseMs: 1 });
    // Every lease ran out (unswept or swept: a steal takes either kind back).
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: c!.id })).leaseExpiresAt! <= new Date()).toBe(true), { timeout: 15_000, interval: 25 });
    const call = { agentId: "thief", limit: 2, leaseMs: 60_000, idempotencyKey: "steal-1" };
    const first = await rest(t.url, "POST", "/tasks/steal", call);
    expect(first.status).toBe(200);
    const taken = (first.body as Array<{ id: string; leaseToken: number; attempts: number }>).map((x) => [x.id, x.leaseToken]);
    expect(taken).toHaveLength(2);
    const again = await rest(t.url, "POST", "/tasks/steal", call);
    expect((again.body as Array<{ id: string; leaseToken: number; leaseOwner: string }>).map((x) => [x.id, x.leaseToken, x.leaseOwner])).toEqual(taken.map(([id, token]) => [id, token, "thief"]));
    // Through the typed client too; and a new key takes what is left.
    expect((await t.api.tasks.steal.mutate(call)).map((x) => x.id)).toEqual(taken.map(([id]) => id));
    const rest3 = [a, b, c].map((x) => x!.id).filter((id) => !taken.some(([t]) => t === id));
    expect((await t.api.tasks.steal.mutate({ ...call, idempotencyKey: "steal-2" })).map((x) => x.id)).toEqual(rest3);
    const claimed = (await t.api.events.list.query({ types: ["task.claimed"], limit: 20 })).map((e) => (e.payload as { stolenFrom?: string }).stolenFrom);
    expect(claimed.filter((from) => from === "victim")).toHaveLength(3);

    // Named by fromAgentId, and that agent gone since (deregistered once it held nothing): the repeat still answers.
    const d = await t.api.tasks.enqueue.mutate({ queue: "st2", payload: 4 });
    await t.api.tasks.claim.mutate({ agentId: "victim2", queues: ["st2"], leaseMs: 1 });
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: d.id })).leaseExpiresAt! <= new Date()).toBe(true), { timeout: 15_000, interval: 25 });
    const fromVictim = { agentId: "thief", fromAgentId: "victim2", limit: 1, leaseMs: 60_000, idempotencyKey: "steal-3" };
    expect((await t.api.tasks.steal.mutate(fromVictim)).map((x) => x.id)).toEqual([d.id]);
    await t.api.agents.deregister.mutate({ agentId: "victim2" });
    expect((await t.api.tasks.steal.mutate(fromVictim)).map((x) => [x.id, x.leaseOwner])).toEqual([[d.id, "thief"]]);
  });

  it("a long-poll sent again while the call it repeats is still parked (its client gave up, the server cannot tell): both answer the task that call took", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const parked = () => t.server.services.waiters.claims.size;
    const claims = () => t.server.services.db.sent.get("tasks.claim") ?? 0;
    const call = { agentId: "lp2", queues: ["slow"], waitMs: 4_000 };
    // The first call, its answer to be lost (a proxy that keeps the connection); its repeat; and
    // another loop of the same agent parked with a key of its own.
    const first = t.api.tasks.claim.mutate({ ...call, idempotencyKey: "poll-2" });
    await vi.waitFor(() => expect(parked()).toBe(1), { timeout: 15_000, interval: 10 });
    const repeat = t.api.tasks.claim.mutate({ ...call, idempotencyKey: "poll-2" });
    const other = t.api.tasks.claim.mutate({ ...call, waitMs: 1_500, idempotencyKey: "poll-3" });
    await vi.waitFor(() => expect(parked()).toBe(3), { timeout: 15_000, interval: 10 });
    const before = claims();
    const task = await t.api.tasks.enqueue.mutate({ queue: "slow", payload: "x" });
    // The task wakes the longest parked claim alone; its lease wakes the agent's keyed claims,
    // which look for their key on the reader: the repeat claims again and answers that lease.
    expect(await first).toMatchObject({ id: task.id, leaseToken: 1, leaseOwner: "lp2" });
    expect(await repeat).toMatchObject({ id: task.id, leaseToken: 1, leaseOwner: "lp2", attempts: 1 });
    expect(await other).toBeNull();
    expect(claims() - before).toBe(2);
    expect((await t.api.events.list.query({ types: ["task.claimed"], limit: 10 })).map((e) => (e.payload as { taskId: string }).taskId)).toEqual([task.id]);
  });

  /** The server's side of each request sent by lostAnswer, by its x-lost-answer header. */
  const serverSide = new Map<string, ServerResponse>();
  diagnosticsChannel.subscribe("http.server.request.start", (message) => {
    const { request, response } = message as { request: { headers: Record<string, unknown> }; response: ServerResponse };
    const tag = request.headers["x-lost-answer"];
    if (typeof tag === "string") serverSide.set(tag, response);
  });
  let lostAnswers = 0;

  /**
   * A keyed claim on a server whose writes wait for another process's lock (so its answer comes
   * after the client gave up): the call, aborted once it waits in the writer, and returned once
   * the server saw its connection close. Not before: a server that has not read the close yet
   * hands the answer to the kernel and counts it delivered, as no server can know better (the
   * lease covers that case). Resolves when the lock is let go and the answer found no one.
   */
  const lostAnswer = async (t: TestServer, body: object, lock: Database.Database, path = "/tasks/claim") => {
    const writes = () => t.server.services.db.inFlight.writes;
    const before = writes();
    const abort = new AbortController();
    const tag = String(++lostAnswers);
    const headers = { "content-type": "application/json", "x-lost-answer": tag };
    const call = fetch(`${t.url}${path}`, { method: "POST", headers, body: JSON.stringify(body), signal: abort.signal }).catch(() => "aborted");
    await vi.waitFor(() => expect(writes()).toBe(before + 1), { timeout: 15_000, interval: 25 });
    abort.abort();
    await vi.waitFor(() => expect(serverSide.get(tag)?.destroyed).toBe(true), { timeout: 15_000, interval: 10 });
    serverSide.delete(tag);
    expect(lock.inTransaction).toBe(true);
    return call;
  };
  const settled = (t: TestServer, releases: number) =>
    vi.waitFor(() => expect([t.server.services.db.sent.get("tasks.releaseUndelivered") ?? 0, t.server.services.db.inFlight.writes]).toEqual([releases, 0]), { timeout: 15_000, interval: 25 });

  it("the first call's answer lost, its repeat's delivered (either committed first): the lease stays with its holder, nothing runs twice", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const [x, y] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "q", payload: n })) });
    const lock = new Database(t.dbPath);
    // The call waits in the writer and its client gives up; the repeat waits behind it: the call commits first.
    lock.exec("BEGIN IMMEDIATE");
    const first = await lostAnswer(t, { agentId: "A", queues: ["q"], idempotencyKey: "K1" }, lock);
    const again = rest(t.url, "POST", "/tasks/claim", { agentId: "A", queues: ["q"], idempotencyKey: "K1" });
    await vi.waitFor(() => expect(t.server.services.db.inFlight.writes).toBe(2), { timeout: 15_000, interval: 25 });
    lock.exec("COMMIT");
    expect(await first).toBe("aborted");
    expect((await again).body).toMatchObject({ id: x!.id, leaseToken: 1, attempts: 1 });
    await settled(t, 1);
    expect(await t.api.tasks.get.query({ taskId: x!.id })).toMatchObject({ status: "claimed", leaseOwner: "A", leaseToken: 1, attempts: 1 });
    expect((await rest(t.url, "POST", `/tasks/${x!.id}/heartbeat`, { agentId: "A", leaseToken: 1 })).status).toBe(200);

    // The other order (the repeat served first, say by another server, the call it repeats later): the same.
    const delivered = await rest(t.url, "POST", "/tasks/claim", { agentId: "A", queues: ["q"], idempotencyKey: "K2" });
    expect(delivered.body).toMatchObject({ id: y!.id, leaseToken: 1 });
    lock.exec("BEGIN IMMEDIATE");
    const late = await lostAnswer(t, { agentId: "A", queues: ["q"], idempotencyKey: "K2" }, lock);
    lock.exec("COMMIT");
    lock.close();
    expect(await late).toBe("aborted");
    await settled(t, 2);
    expect(await t.api.tasks.get.query({ taskId: y!.id })).toMatchObject({ status: "claimed", leaseOwner: "A", leaseToken: 1, attempts: 1 });
    // Nothing is left for another agent, and no task was claimed twice.
    expect(await rest(t.url, "POST", "/tasks/claim", { agentId: "B", queues: ["q"] })).toEqual({ status: 200, body: null });
    expect((await t.api.events.list.query({ types: ["task.claimed", "task.released"] })).map((e) => e.type)).toEqual(["task.claimed", "task.claimed"]);
  });

  it("a repeat carries only what its call may (one task for claim); the leases a lost claimMany took beyond it go back", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3].map((n) => ({ queue: "q", payload: n })) });
    const lock = new Database(t.dbPath);
    lock.exec("BEGIN IMMEDIATE");
    const many = await lostAnswer(t, { agentId: "A", queues: ["q"], limit: 3, idempotencyKey: "K" }, lock, "/tasks/claim-many");
    const one = rest(t.url, "POST", "/tasks/claim", { agentId: "A", queues: ["q"], idempotencyKey: "K" });
    await vi.waitFor(() => expect(t.server.services.db.inFlight.writes).toBe(2), { timeout: 15_000, interval: 25 });
    lock.exec("COMMIT");
    lock.close();
    expect(await many).toBe("aborted");
    expect((await one).body).toMatchObject({ id: tasks[0]!.id, leaseToken: 1 });
    await settled(t, 1);
    const states = await Promise.all(tasks.map(async (task) => (await t.api.tasks.get.query({ taskId: task.id })).status));
    expect(states).toEqual(["claimed", "pending", "pending"]);
  });

  it("a repeat renews the lease as a heartbeat does: one that ran out unswept is its holder's again, and no steal takes it", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0, leaseSweepMs: 60_000 });
    const [x] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", payload: 1 }] });
    const first = await t.api.tasks.claim.mutate({ agentId: "A", queues: ["q"], leaseMs: 200, idempotencyKey: "K" });
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(first!.leaseExpiresAt.getTime() + 50), { timeout: 15_000, interval: 25 });
    const again = await t.api.tasks.claim.mutate({ agentId: "A", queues: ["q"], leaseMs: 60_000, idempotencyKey: "K" });
    expect(again).toMatchObject({ id: x!.id, leaseToken: 1, attempts: 1 });
    expect(again!.leaseExpiresAt.getTime()).toBeGreaterThan(Date.now() + 30_000);
    expect(await t.api.tasks.steal.mutate({ agentId: "B" })).toEqual([]);
    expect((await rest(t.url, "POST", `/tasks/${x!.id}/heartbeat`, { agentId: "A", leaseToken: 1 })).status).toBe(200);
  });

    it("a call and its repeat both lost: the last of their answers to be found lost gives the lease back, uncharged", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const [x] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", payload: 1 }] });
    const lock = new Database(t.dbPath);
    lock.exec("BEGIN IMMEDIATE");
    const body = { agentId: "A", queues: ["q"], idempotencyKey: "K" };
    const first = await lostAnswer(t, body, lock);
    const second = await lostAnswer(t, body, lock);
    lock.exec("COMMIT");
    lock.close();
    expect([await first, await second]).toEqual(["aborted", "aborted"]);
    await settled(t, 2);
    expect(await t.api.tasks.get.query({ taskId: x!.id })).toMatchObject({ status: "pending", leaseOwner: null, attempts: 0 });
    expect((await t.api.events.list.query({ types: ["task.claimed", "task.released"] })).map((e) => e.type)).toEqual(["task.claimed", "task.released"]);
  });
});
