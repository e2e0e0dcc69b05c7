// Queue rate limits (queues.setRate / removeRate / rate / rates, POST|DELETE|GET
// /queues/{queue}/rate, GET /queues/rates): at most N of a queue's tasks claimed in any window of
// T ms, whichever agents claim them, e.g. a queue whose tasks each make one request to an LLM
// provider that allows 500 requests a minute.
import { afterEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { join } from "node:path";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { openCoordination } from "../src/index.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";
import { countClaimAttempts, NO_EARLY_RELOOK, queueRows as rows } from "./helpers/queue-holds.js";

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

describe("queue rate limits", () => {
  it("at most maxClaims of a queue's tasks are claimed in a window, by any claim; a completed task gives no claim back; other queues run past it", async () => {
    t = await startTestServer();
    const api = t.api;
    const llm = [];
    for (let i = 0; i < 5; i++) llm.push(await api.tasks.enqueue.mutate({ queue: "llm", payload: { i }, priority: 0 }));
    const other = await api.tasks.enqueue.mutate({ queue: "other", payload: { n: 1 }, priority: 9 });

    const rate = await api.queues.setRate.mutate({ queue: "llm", maxClaims: 2, perMs: HOUR });
    expect(rate).toEqual({ queue: "llm", maxClaims: 2, perMs: HOUR, used: 0, nextClaimAt: null, setBy: null, setAt: expect.any(Date), removedAt: null });
    // Its pending tasks leave the general claim index in the write that set the rate.
    expect(rows(t, "llm")).toEqual({ held: 5, claimable: 0, leased: 0 });

    const before = Date.now();
    const a = await api.tasks.claim.mutate({ agentId: "a", context: false });
    const b = await api.tasks.claim.mutate({ agentId: "b", queues: ["llm"], context: false });
    expect([a?.id, b?.id]).toEqual([llm[0]!.id, llm[1]!.id]);
    // The window is full: a claim of any queue takes the other queue's task, worse priority as it is.
    expect((await api.tasks.claim.mutate({ agentId: "c", context: false }))?.id).toBe(other.id);
    expect(await api.tasks.claim.mutate({ agentId: "d", context: false })).toBeNull();
    expect(await api.tasks.claimMany.mutate({ agentId: "d", limit: 10 })).toEqual([]);
    // Unlike a concurrency limit, a task done gives no claim back: the window counts claims made.
    await api.tasks.complete.mutate({ taskId: a!.id, agentId: "a" });
    await api.tasks.fail.mutate({ taskId: b!.id, agentId: "b", error: "provider said 400", retry: false });
    expect(await api.tasks.claim.mutate({ agentId: "d", context: false })).toBeNull();

    const now = await api.queues.rate.query({ queue: "llm" });
    expect(now).toMatchObject({ maxClaims: 2, perMs: HOUR, used: 2 });
    // Room again when the first claim leaves the window: an hour after it was made.
    expect(now.nextClaimAt!.getTime()).toBeGreaterThanOrEqual(before + HOUR);
    expect(now.nextClaimAt!.getTime()).toBeLessThanOrEqual(Date.now() + HOUR);
    expect(await api.queues.rates.query()).toEqual([now]);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^coordination_queue_rate_max_claims\{queue="llm"\} 2$/m);
    expect(metrics).toMatch(/^coordination_queue_rate_claims\{queue="llm"\} 2$/m);
    expect(metrics).toMatch(/^coordination_queues_at_rate 1$/m);
    expect((await api.tasks.stats.query({ queue: "llm" })).queues).toEqual([expect.objectContaining({ queue: "llm", maxLeased: null, rate: { maxClaims: 2, perMs: HOUR } })]);

    // A higher maximum has room at once; the claims already made still count.
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 3, perMs: HOUR });
    expect((await api.tasks.claim.mutate({ agentId: "d", context: false }))?.id).toBe(llm[2]!.id);
    expect(await api.tasks.claim.mutate({ agentId: "e", context: false })).toBeNull();
    // The same rate again changes nothing (no event).
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 3, perMs: HOUR });

    // Removed: the queue's tasks go, best first, without a bound.
    expect(await api.queues.removeRate.mutate({ queue: "llm" })).toEqual({ queue: "llm", maxClaims: null, perMs: null, used: null, nextClaimAt: null, setBy: null, setAt: null, removedAt: null });
    expect(rows(t, "llm")).toEqual({ held: 0, claimable: 2, leased: 1 });
    expect((await api.tasks.claimMany.mutate({ agentId: "e", limit: 5, context: false })).map((task) => task.id)).toEqual([llm[3]!.id, llm[4]!.id]);
    expect(await api.queues.rates.query()).toEqual([]);
    // The claims it counted go with it.
    expect(withDatabase(t, (db) => db.prepare("SELECT count(*) FROM queue_rate_starts").pluck().get())).toBe(0);
    const events = await api.events.list.query({ types: ["queue.rate_set", "queue.rate_removed"] });
    expect(events.map((e) => [e.type, e.payload])).toEqual([
      ["queue.rate_set", { queue: "llm", maxClaims: 2, perMs: HOUR, previous: null, setBy: null }],
      ["queue.rate_set", { queue: "llm", maxClaims: 3, perMs: HOUR, previous: { maxClaims: 2, perMs: HOUR }, setBy: null }],
      ["queue.rate_removed", { queue: "llm", previous: { maxClaims: 3, perMs: HOUR }, removedBy: null }],
    ]);
  });

  it("a claim for several takes only the window's room; complete-and-claim's next task is a claim of the window too", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 3, perMs: HOUR });
    for (let i = 0; i < 6; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    expect((await api.tasks.claimMany.mutate({ agentId: "w", limit: 10, context: false })).length).toBe(3);
    expect((await api.queues.rate.query({ queue: "llm" })).used).toBe(3);

    await api.queues.setRate.mutate({ queue: "chat", maxClaims: 2, perMs: HOUR });
    const chat = [];
    for (let i = 0; i < 3; i++) chat.push(await api.tasks.enqueue.mutate({ queue: "chat", payload: { i } }));
    const first = (await api.tasks.claim.mutate({ agentId: "c", queues: ["chat"], context: false }))!;
    const second = await api.tasks.completeAndClaim.mutate({ taskId: first.id, agentId: "c", result: 1, next: { queues: ["chat"], context: false } });
    expect(second.next?.id).toBe(chat[1]!.id);
    const third = await api.tasks.completeAndClaim.mutate({ taskId: second.next!.id, agentId: "c", result: 2, next: { queues: ["chat"], context: false } });
    expect(third).toMatchObject({ completed: { status: "completed" }, next: null });
    expect(await api.queues.rate.query({ queue: "chat" })).toMatchObject({ used: 2 });
  });

  it("claims parked on a full window are woken one at a time as it has room, not all at each", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 1, perMs: 1000 });
    const first = await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    expect((await api.tasks.claim.mutate({ agentId: "w", context: false }))?.id).toBe(first.id);
    const later = [await api.tasks.enqueue.mutate({ queue: "llm", payload: 1 }), await api.tasks.enqueue.mutate({ queue: "llm", payload: 2 })];
    const attempts = countClaimAttempts(t);
    const callers = Array.from({ length: 10 }, () => new AbortController());
    const parked = callers.map((caller, i) => api.tasks.claim.mutate({ agentId: `p${i}`, queues: ["llm"], waitMs: 60_000, context: false }, { signal: caller.signal }));
    // Two windows later, two of them hold the two tasks, each in its own window.
    const taken = new Map<string, number>();
    for (const [i, claim] of parked.entries()) void claim.then((task) => task && taken.set(task.id, i), () => undefined);
    await vi.waitFor(() => expect(taken.size).toBe(2), { timeout: 15_000, interval: 25 });
    expect([...taken.keys()].sort()).toEqual(later.map((task) => task.id).sort());
    const claimedAt = await Promise.all(later.map(async (task) => (await api.tasks.get.query({ taskId: task.id })).claimedAt!.getTime()));
    expect(Math.abs(claimedAt[1]! - claimedAt[0]!)).toBeGreaterThanOrEqual(1000);
    // Each parked claim looked once on arrival; each time the window had room, one more looked
    // (woken by the queue's one timer), and the one that took the task passed the room on: every
    // parked claim looking again at each window would be 30 and more.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(attempts()).toBeLessThanOrEqual(10 + 6);
    expect(t.server.services.waiters.claims.size).toBe(8);
    // The other eight callers leave: their claims end.
    for (const caller of callers) caller.abort();
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(0), { timeout: 15_000, interval: 25 });
  });

  it("a parked claim whose empty answer arrives after its window had room is woken at once, not by the safety re-look", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 1, perMs: 2000 });
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).not.toBeNull();
    const second = await api.tasks.enqueue.mutate({ queue: "llm", payload: 1 });
    // The empty answer reaches the event loop only once the window has room (a busy loop, a slow
    // commit): the time it names is past, and the timer armed for it already woke nobody.
    const db = t.server.services.db;
    const handOut = db.handOut.bind(db);
    db.handOut = (async (...call: Parameters<typeof handOut>) => {
      const answer = (await handOut(...call)) as { leased: unknown[]; rates?: Array<{ freesAt: number }> };
      const freesAt = Math.max(0, ...(answer.rates ?? []).map((rate) => rate.freesAt));
      if (answer.leased.length === 0) while (Date.now() <= freesAt + 5) await new Promise((resolve) => setTimeout(resolve, freesAt + 10 - Date.now()));
      return answer;
    }) as unknown as typeof db.handOut;
    const claim = api.tasks.claim.mutate({ agentId: "p", queues: ["llm"], waitMs: 60_000, context: false });
    const first = await Promise.race([claim, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    expect(first).toMatchObject({ id: second.id });
  });

  it("a lease end of a rate-limited queue gives no claim back: it wakes no claim parked on its full window", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 2, perMs: HOUR });
    for (let i = 0; i < 4; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: i });
    const a = (await api.tasks.claim.mutate({ agentId: "a", context: false }))!;
    const b = (await api.tasks.claim.mutate({ agentId: "b", context: false }))!;
    const attempts = countClaimAttempts(t);
    const caller = new AbortController();
    const parked = api.tasks.claim.mutate({ agentId: "p", queues: ["llm"], waitMs: 60_000, context: false }, { signal: caller.signal }).catch(() => "left");
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 25 });
    await api.tasks.complete.mutate({ taskId: a.id, agentId: "a" });
    await api.tasks.fail.mutate({ taskId: b.id, agentId: "b", error: "no", retry: false });
    // Every commit's events have reached the waiters once a later write answered.
    await api.tasks.enqueue.mutate({ queue: "other", payload: 0 });
    expect(attempts()).toBe(1);
    caller.abort();
    expect(await parked).toBe("left");
  });

  it("claims of other queues wake no claim parked on a queue full by its concurrency limit whose window has room", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    for (let i = 0; i < 3; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: i });
    for (let i = 0; i < 5; i++) await api.tasks.enqueue.mutate({ queue: "other", payload: i });
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 100, perMs: HOUR });
    expect((await api.tasks.claim.mutate({ agentId: "w", queues: ["llm"], context: false }))?.queue).toBe("llm");
    const attempts = countClaimAttempts(t);
    const caller = new AbortController();
    const parked = api.tasks.claim.mutate({ agentId: "p", queues: ["llm"], waitMs: 60_000, context: false }, { signal: caller.signal }).catch(() => "left");
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 25 });
    for (let i = 0; i < 5; i++) expect((await api.tasks.claim.mutate({ agentId: `g${i}`, context: false }))?.queue).toBe("other");
    expect(attempts()).toBe(6);
    caller.abort();
    expect(await parked).toBe("left");
  });

  it("a queue with a rate and a limit: a claim parked on its window waits for a lease end once the window has room and the slots are held", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 2, perMs: 2000 });
    for (let i = 0; i < 4; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: i });
    // Two claims in one write (one row of the window): both leave it at the same time.
    const two = await api.tasks.claimMany.mutate({ agentId: "a", limit: 2, context: false });
    expect(two.length).toBe(2);
    for (const task of two) await api.tasks.complete.mutate({ taskId: task.id, agentId: "a" });
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    // Both park on the full window (a slot is free).
    const w1 = api.tasks.claim.mutate({ agentId: "w1", queues: ["llm"], waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 10 });
    const w2 = api.tasks.claim.mutate({ agentId: "w2", queues: ["llm"], waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(2), { timeout: 15_000, interval: 10 });
    // The window frees two; w1 takes one, which fills the limit: w2 waits for its lease to end.
    const first = (await w1)!;
    expect(first).toMatchObject({ queue: "llm" });
    await api.tasks.complete.mutate({ taskId: first.id, agentId: "w1" });
    expect(await Promise.race([w2, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))])).toMatchObject({ queue: "llm" });
  });

  it("a queue with a full window and a full limit: a lease end wakes none of the claims parked on it; the window's room, one", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 1, perMs: HOUR });
    for (let i = 0; i < 3; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: i });
    const held = (await api.tasks.claim.mutate({ agentId: "a", context: false }))!;
    const callers = Array.from({ length: 10 }, () => new AbortController());
    const parked = callers.map((caller, i) => api.tasks.claim.mutate({ agentId: `p${i}`, queues: ["llm"], waitMs: 60_000, context: false }, { signal: caller.signal }).catch(() => "left"));
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(10), { timeout: 15_000, interval: 25 });
    const attempts = countClaimAttempts(t);
    // The slot frees, the window stays full for an hour: no parked claim can take anything.
    await api.tasks.complete.mutate({ taskId: held.id, agentId: "a" });
    await api.tasks.enqueue.mutate({ queue: "other", payload: 0 });
    expect(attempts()).toBe(0);
    for (const caller of callers) caller.abort();
    expect(new Set(await Promise.all(parked))).toEqual(new Set(["left"]));

    // Now the window has room first, the limit's slots held: its room wakes one claim, which
    // finds the slots held and sends them all to wait for a lease end.
    await api.queues.setRate.mutate({ queue: "chat", maxClaims: 2, perMs: 1500 });
    for (let i = 0; i < 4; i++) await api.tasks.enqueue.mutate({ queue: "chat", payload: i });
    expect((await api.tasks.claimMany.mutate({ agentId: "a", queues: ["chat"], limit: 2, context: false })).length).toBe(2);
    await api.queues.setLimit.mutate({ queue: "chat", maxLeased: 1 });
    const chatCallers = Array.from({ length: 10 }, () => new AbortController());
    const chatParked = chatCallers.map((caller, i) => api.tasks.claim.mutate({ agentId: `c${i}`, queues: ["chat"], waitMs: 60_000, context: false }, { signal: caller.signal }).catch(() => "left"));
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(10), { timeout: 15_000, interval: 25 });
    const chatAttempts = countClaimAttempts(t);
    await vi.waitFor(() => expect(chatAttempts()).toBe(1), { timeout: 15_000, interval: 25 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(chatAttempts()).toBe(1);
    for (const caller of chatCallers) caller.abort();
    expect(new Set(await Promise.all(chatParked))).toEqual(new Set(["left"]));
  });

  it("claims parked on a window whose last task went wait as any claim does: the queue's next task, or the next that only they may take, reaches them", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    const late = <T>(claim: Promise<T>) => Promise.race([claim, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    // Parks a claim and waits until it is parked; its answer comes in `claim`.
    const park = async (agentId: string, options: { queues?: string[]; capabilities?: string[] } = { queues: ["llm"] }) => {
      const size = t!.server.services.waiters.claims.size;
      const claim = api.tasks.claim.mutate({ agentId, waitMs: 60_000, context: false, ...options });
      await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(size + 1), { timeout: 15_000, interval: 10 });
      return { claim };
    };
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 1, perMs: 1500 });
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).not.toBeNull();
    const b = await api.tasks.enqueue.mutate({ queue: "llm", payload: 1 });
    // Two parked on the full window; the first takes the queue's last task when it has room.
    const p1 = await park("p1");
    const p2 = await park("p2", { queues: ["llm", "plain"] });
    expect((await p1.claim)?.id).toBe(b.id);
    // A task enqueued after: it reaches the claim still parked, in the window's next room.
    const c = await api.tasks.enqueue.mutate({ queue: "llm", payload: 2 });
    expect(await late(p2.claim)).toMatchObject({ id: c.id });

    // Tasks only some may take, the window full: the first room goes to the claim for "a", which
    // takes its task; the one for "b" gets its own in the next.
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    const forA = await api.tasks.enqueue.mutate({ queue: "llm", payload: "a", capability: "a" });
    const forB = await api.tasks.enqueue.mutate({ queue: "llm", payload: "b", capability: "b" });
    const pa = await park("pa", { queues: ["llm"], capabilities: ["a"] });
    const pb = await park("pb", { queues: ["llm"], capabilities: ["b"] });
    expect(await late(pa.claim)).toMatchObject({ id: forA.id });
    expect(await late(pb.claim)).toMatchObject({ id: forB.id });
  });

  it("a window's room passed on stops where nothing is left to take: one look, not one a parked claim", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 1, perMs: 1500 });
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).not.toBeNull();
    const b = await api.tasks.enqueue.mutate({ queue: "llm", payload: 1 });
    const callers = Array.from({ length: 10 }, () => new AbortController());
    const parked = callers.map((caller, i) => api.tasks.claim.mutate({ agentId: `p${i}`, queues: ["llm"], waitMs: 60_000, context: false }, { signal: caller.signal }).catch(() => "left"));
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(10), { timeout: 15_000, interval: 25 });
    const attempts = countClaimAttempts(t);
    // The task they waited for is cancelled: when the window has room, one looks, and stops there.
    await api.tasks.cancel.mutate({ taskId: b.id });
    await vi.waitFor(() => expect(attempts()).toBe(1), { timeout: 15_000, interval: 25 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(attempts()).toBe(1);
    for (const caller of callers) caller.abort();
    expect(new Set(await Promise.all(parked))).toEqual(new Set(["left"]));
  });

  it("a claim parked on a full window is woken when the rate is removed or raised", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 1, perMs: HOUR });
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    const [two, three] = [await api.tasks.enqueue.mutate({ queue: "llm", payload: 1 }), await api.tasks.enqueue.mutate({ queue: "llm", payload: 2 })];
    await api.tasks.claim.mutate({ agentId: "w", context: false });
    const raised = api.tasks.claim.mutate({ agentId: "p", waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 25 });
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 2, perMs: HOUR });
    expect((await raised)?.id).toBe(two.id);
    const removed = api.tasks.claim.mutate({ agentId: "q", waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 25 });
    await api.queues.removeRate.mutate({ queue: "llm" });
    expect((await removed)?.id).toBe(three.id);
  });

  it("claims past their window, and a removed rate's claims, are deleted a bounded chunk a write: fewer claims meanwhile, never more", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 10, perMs: HOUR });
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    // 12,000 claims counted two hours ago, one row each (a rate of a million a day, say).
    const longAgo = Date.now() - 2 * HOUR;
    withDatabase(t, (db) => {
      const insert = db.prepare("INSERT INTO queue_rate_starts (queue, at, n) VALUES ('llm', ?, 1)");
      db.transaction(() => {
        for (let i = 0; i < 12_000; i++) insert.run(longAgo + i);
        db.prepare("UPDATE queue_rates SET used = used + 12000 WHERE queue = 'llm'").run();
      })();
    });
    const starts = () => withDatabase(t!, (db) => db.prepare("SELECT count(*) FROM queue_rate_starts").pluck().get());
    expect(await api.queues.rate.query({ queue: "llm" })).toMatchObject({ used: 0, nextClaimAt: null });
    // Each claim deletes 5,000 of them: the count it reads stays high until the last chunk goes.
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    expect(starts()).toBe(7000);
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    expect(starts()).toBe(2000);
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toMatchObject({ queue: "llm" });
    expect(starts()).toBe(1);

    await api.queues.setRate.mutate({ queue: "chat", maxClaims: 1_000_000, perMs: HOUR });
    withDatabase(t, (db) => {
      // Two claims a row (claims for several): the count is of claims, the chunks of rows.
      const insert = db.prepare("INSERT INTO queue_rate_starts (queue, at, n) VALUES ('chat', ?, 2)");
      const now = Date.now();
      db.transaction(() => {
        for (let i = 0; i < 12_000; i++) insert.run(now - i);
        db.prepare("UPDATE queue_rates SET used = used + 24000 WHERE queue = 'chat'").run();
      })();
    });
    // Removed, and set again while its claims are being deleted (its write deletes 5,000 rows,
    // the holds job the rest, then its row): the count is of the claims left, whenever it came.
    await Promise.all([api.queues.removeRate.mutate({ queue: "chat" }), api.queues.setRate.mutate({ queue: "chat", maxClaims: 1_000_000, perMs: HOUR })]);
    expect(withDatabase(t, (db) => db.prepare("SELECT used - (SELECT coalesce(sum(n), 0) FROM queue_rate_starts WHERE queue = 'chat') FROM queue_rates WHERE queue = 'chat'").pluck().get())).toBe(0);
    expect(starts()).toBeGreaterThanOrEqual(1 + 7000);
    await api.queues.removeRate.mutate({ queue: "chat" });
    await t.server.services.tasks.settleHolds();
    expect(starts()).toBe(1);
    expect((await api.queues.rates.query()).map((rate) => rate.queue)).toEqual(["llm"]);
  });

  it("a window made longer on an idle queue does not count the claims that had left the old window", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 2, perMs: 1000 });
    for (let i = 0; i < 3; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    expect(await api.tasks.claimMany.mutate({ agentId: "w", limit: 5, context: false })).toHaveLength(2);
    // No claim since: the two claims leave the 1 s window (rows deleted only by the claims that come).
    await expect.poll(async () => (await api.queues.rate.query({ queue: "llm" })).used, { timeout: 15_000, interval: 100 }).toBe(0);
    // The same claims are not counted again by the longer window: the queue has room at once.
    const longer = await api.queues.setRate.mutate({ queue: "llm", maxClaims: 2, perMs: HOUR });
    expect(longer).toMatchObject({ maxClaims: 2, perMs: HOUR, used: 0, nextClaimAt: null });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toMatchObject({ queue: "llm" });
    expect(await api.queues.rate.query({ queue: "llm" })).toMatchObject({ used: 1, nextClaimAt: null });
  });

  it("a window made longer forgets every claim that had left the old one, past a write's chunk of 5,000 rows", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 20_000, perMs: 60_000 });
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    // 12,000 claims a few minutes ago, one row each (a rate of 20,000 a minute, used, then idle).
    const before = Date.now() - 5 * 60_000;
    withDatabase(t, (db) => {
      const insert = db.prepare("INSERT INTO queue_rate_starts (queue, at, n) VALUES ('llm', ?, 1)");
      db.transaction(() => {
        for (let i = 0; i < 12_000; i++) insert.run(before + i);
        db.prepare("UPDATE queue_rates SET used = used + 12000 WHERE queue = 'llm'").run();
      })();
    });
    expect(await api.queues.rate.query({ queue: "llm" })).toMatchObject({ used: 0, nextClaimAt: null });
    // Counted per hour now, at most 10: none of those claims is in the old window, so none counts.
    expect(await api.queues.setRate.mutate({ queue: "llm", maxClaims: 10, perMs: HOUR })).toMatchObject({ used: 0, nextClaimAt: null });
    expect(withDatabase(t, (db) => db.prepare("SELECT count(*) FROM queue_rate_starts").pluck().get())).toBe(0);
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toMatchObject({ queue: "llm" });
    expect(await api.queues.rate.query({ queue: "llm" })).toMatchObject({ used: 1, nextClaimAt: null });
  });

  it("a rated queue is in stats before its first task", async () => {
    t = await startTestServer();
    await t.api.queues.setRate.mutate({ queue: "api", maxClaims: 60, perMs: 60_000 });
    await t.api.queues.setLimit.mutate({ queue: "db", maxLeased: 4 });
    const stats = await t.api.tasks.stats.query();
    expect(stats.queues.map((q) => [q.queue, q.maxLeased, q.rate])).toEqual([
      ["api", null, { maxClaims: 60, perMs: 60_000 }],
      ["db", 4, null],
    ]);
    expect(stats.totals.pending).toBe(0);
  });

  it("a rate and a concurrency limit bound a queue together; removing one keeps the other, and a pause holds it whatever both say", async () => {
    t = await startTestServer();
    const api = t.api;
    for (let i = 0; i < 4; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 3, perMs: HOUR });
    const first = (await api.tasks.claim.mutate({ agentId: "w", context: false }))!;
    // The limit binds first: one leased.
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    await api.tasks.complete.mutate({ taskId: first.id, agentId: "w" });
    // Limit removed: the rate still holds the queue's tasks, two more claims in its window.
    await api.queues.removeLimit.mutate({ queue: "llm" });
    expect(rows(t, "llm")).toEqual({ held: 3, claimable: 0, leased: 0 });
    expect((await api.tasks.claimMany.mutate({ agentId: "w", limit: 5, context: false })).length).toBe(2);
    await api.queues.setRate.mutate({ queue: "llm", maxClaims: 10, perMs: HOUR });
    await api.queues.pause.mutate({ queue: "llm" });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    // Rate removed while paused: still held until the resume.
    await api.queues.removeRate.mutate({ queue: "llm" });
    expect(rows(t, "llm")).toEqual({ held: 1, claimable: 0, leased: 2 });
    await api.queues.resume.mutate({ queue: "llm" });
    await vi.waitFor(() => expect(rows(t!, "llm")).toEqual({ held: 0, claimable: 1, leased: 2 }), { timeout: 15_000, interval: 25 });
  });

  it("a rate holds across servers sharing one file: their claims count one window", async () => {
    t = await startTestServer();
    t2 = await startTestServer({}, t.dir);
    await t.api.queues.setRate.mutate({ queue: "llm", maxClaims: 3, perMs: HOUR });
    for (let i = 0; i < 20; i++) await t.api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    const claims = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? t! : t2!).api.tasks.claim.mutate({ agentId: `w${i}`, context: false })));
    expect(claims.filter((task) => task !== null).length).toBe(3);
    expect(await t2.api.queues.rate.query({ queue: "llm" })).toMatchObject({ used: 3 });
  });

  it("a rate's input is checked and named; setting and removing are an admin's, reading it a reader's", async () => {
    secure = await startSecureServer();
    const read = await secure.issue("read");
    const agent = await secure.issue("agent", "w");
    for (const [body, problem] of [
      [{ maxClaims: 0, perMs: 1000 }, "maxClaims"],
      [{ maxClaims: 1.5, perMs: 1000 }, "maxClaims"],
      [{ maxClaims: 1_000_001, perMs: 1000 }, "maxClaims"],
      [{ perMs: 1000 }, "maxClaims"],
      [{ maxClaims: 5, perMs: 99 }, "perMs"],
      [{ maxClaims: 5, perMs: 86_400_001 }, "perMs"],
      [{ maxClaims: 5 }, "perMs"],
      [{ maxClaims: 5, perMs: "1m" }, "perMs"],
      [{ maxClaims: 5, perMs: 1000, extra: 1 }, "extra"],
    ] as const) {
      const answer = await http(secure.url, "POST", "/queues/llm/rate", { body, token: ADMIN_SECRET });
      expect(answer.status).toBe(400);
      expect(JSON.stringify(answer.body)).toContain(problem);
    }
    expect((await http(secure.url, "POST", "/queues/llm/rate", { body: { maxClaims: 2, perMs: 1000 }, token: agent })).status).toBe(403);
    expect((await http(secure.url, "DELETE", "/queues/llm/rate", { token: agent })).status).toBe(403);
    const set = await http(secure.url, "POST", "/queues/llm/rate", { body: { maxClaims: 60, perMs: 60_000 }, token: ADMIN_SECRET });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ queue: "llm", maxClaims: 60, perMs: 60_000, used: 0, nextClaimAt: null, setBy: "config:adminToken", removedAt: null });
    expect((await http(secure.url, "GET", "/queues/llm/rate", { token: read })).body).toMatchObject({ maxClaims: 60 });
    expect((await http(secure.url, "GET", "/queues/rates", { token: read })).body).toMatchObject([{ queue: "llm", maxClaims: 60 }]);
    expect((await http(secure.url, "DELETE", "/queues/llm/rate", { token: ADMIN_SECRET })).body).toMatchObject({ maxClaims: null });
  });

  it("the operator's command sets, lists and removes a rate; one that is not a rate is refused before any call", async () => {
    t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ queue: "llm", payload: {} });
    await t.api.tasks.enqueue.mutate({ queue: "llm", payload: {} });
    const env = { COORDINATION_URL: t.url };
    expect(await runOperator({ args: ["queues", "rate", "llm", "1/1h"], env })).toMatchObject({ code: 0, stdout: "queue llm: at most 1 claimed in any 1h (0 in the window now)\n" });
    await t.api.tasks.claim.mutate({ agentId: "w", context: false });
    const list = await runOperator({ args: ["queues", "rates"], env });
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^QUEUE\s+RATE\s+IN WINDOW\s+ROOM AT\s+SINCE\s+BY$/);
    expect(list.stdout.split("\n")[1]).toMatch(/^llm\s+1\/1h\s+1\s+\S+ \S+\s+\S+ \S+\s+-$/);
    expect((await runOperator({ args: ["stats"], env })).stdout.split("\n")[1]).toMatch(/^llm \(rate 1\/1h\)\s+0\s/);
    for (const bound of ["60", "0/1m", "60/0s", "60/1w", "1.5/1m", "60/1.5m", "60 /1m", "OFF"]) {
      expect(await runOperator({ args: ["queues", "rate", "llm", bound], env })).toMatchObject({ code: 2, stderr: expect.stringContaining(`queues rate takes N/WINDOW (60/1m, 10/1s, 500/90s, 20/500ms; units ms, s, m, h, d), or off: not "${bound}"`) });
    }
    expect(await runOperator({ args: ["queues", "rate", "llm", "1000001/1m"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("queues rate: N, the most claims in a window, is 1 to 1,000,000: not 1000001") });
    for (const [bound, window] of [["60/50ms", "50ms"], ["60/2d", "2d"], ["60/90000s", "25h"]]) {
      expect(await runOperator({ args: ["queues", "rate", "llm", bound!], env })).toMatchObject({ code: 2, stderr: expect.stringContaining(`queues rate: the window is 100ms to 1d: not ${window}`) });
    }
    expect(await runOperator({ args: ["queues", "rate"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("queues rate needs a QUEUE") });
    // The queue alone: its rate now, and until when its full window holds.
    expect(await runOperator({ args: ["queues", "rate", "llm"], env })).toMatchObject({ code: 0, stdout: expect.stringMatching(/^queue llm: at most 1 claimed in any 1h \(1 in the window now; full until \S+ \S+\)\n$/) });
    expect((await t.api.queues.rate.query({ queue: "llm" })).perMs).toBe(3_600_000);
    expect(await runOperator({ args: ["queues", "rate", "llm", "500/1h"], env })).toMatchObject({ code: 0, stdout: "queue llm: at most 500 claimed in any 1h (1 in the window now)\n" });
    // The options every command takes may come first, as a script chaining commands writes them.
    const first = await runOperator({ args: ["--url", t.url, "--json", "queues", "rate", "llm"], env: {} });
    expect([first.code, JSON.parse(first.stdout)]).toMatchObject([0, { queue: "llm", maxClaims: 500, perMs: 3_600_000 }]);
    expect(await runOperator({ args: [`--url=${t.url}`, "queues", "rate", "llm", "off"], env: {} })).toMatchObject({ code: 0, stdout: "queue llm has no rate\n" });
    expect(await runOperator({ args: ["--url", t.url, "queues", "rate", "llm", "off"], env: {} })).toMatchObject({ code: 0, stdout: "queue llm has no rate\n" });
    expect(await runOperator({ args: ["queues", "rates"], env })).toMatchObject({ code: 0, stdout: "no queue is rate-limited\n" });
  });

  it("in-process, the same calls", async () => {
    const coordination = await openCoordination({ settings: { dbPath: join(makeTempDir(), "embedded.db"), logLevel: "silent" } });
    onTestFinished(() => coordination.close());
    await coordination.tasks.enqueue({ queue: "llm", payload: 1 });
    await coordination.tasks.enqueue({ queue: "llm", payload: 2 });
    expect(await coordination.queues.setRate("llm", 1, HOUR)).toMatchObject({ maxClaims: 1, perMs: HOUR, used: 0 });
    expect(await coordination.tasks.claim("w", { context: false })).toMatchObject({ queue: "llm" });
    expect(await coordination.tasks.claim("w", { context: false })).toBeNull();
    expect(await coordination.queues.rate("llm")).toMatchObject({ used: 1, nextClaimAt: expect.any(Date) });
    expect((await coordination.queues.rates()).map((r) => r.queue)).toEqual(["llm"]);
    expect(await coordination.queues.removeRate("llm")).toMatchObject({ maxClaims: null });
    expect(await coordination.tasks.claim("w", { context: false })).toMatchObject({ queue: "llm" });
  });
});
