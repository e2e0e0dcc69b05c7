// Queue concurrency limits (queues.setLimit / removeLimit / limit / limits, POST|DELETE|GET
// /queues/{queue}/limit, GET /queues/limits): at most N tasks of a queue leased at once, whichever
// agents hold them, e.g. a queue whose tasks call an LLM API allowed five requests at a time.
import { afterEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { join } from "node:path";
import { openCoordination } from "../src/index.js";
import { makeTempDir } from "./helpers/test-server.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";
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


/**
 * Three claims of any queue parked (agents p0..p2), and how many claim attempts the server has
 * made since: each wake-up of a parked claim is one more (a write on the writer).
 */
async function parkThree(server: TestServer) {
  const attempts = countClaimAttempts(server);
  const parked = Array.from({ length: 3 }, (_, i) => server.api.tasks.claim.mutate({ agentId: `p${i}`, waitMs: 60_000, context: false }));
  await vi.waitFor(() => expect(server.server.services.waiters.claims.size).toBe(3), { timeout: 15_000, interval: 25 });
  return { parked, attempts, attemptsParked: attempts() };
}

describe("queue concurrency limits", () => {
  it("at most maxLeased of a queue's tasks are leased at once, by any claim; a lease that ends frees its slot; other queues run past a full one", async () => {
    t = await startTestServer();
    const api = t.api;
    const llm = [];
    for (let i = 0; i < 5; i++) llm.push(await api.tasks.enqueue.mutate({ queue: "llm", payload: { i }, priority: 0 }));
    const other = await api.tasks.enqueue.mutate({ queue: "other", payload: { n: 1 }, priority: 9 });

    const limit = await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 2 });
    expect(limit).toEqual({ queue: "llm", maxLeased: 2, leased: 0, setBy: null, setAt: expect.any(Date), removedAt: null });
    // Its pending tasks leave the general claim index in the write that set the limit.
    expect(rows(t, "llm")).toEqual({ held: 5, claimable: 0, leased: 0 });

    const a = await api.tasks.claim.mutate({ agentId: "a", context: false });
    const b = await api.tasks.claim.mutate({ agentId: "b", queues: ["llm"], context: false });
    expect([a?.id, b?.id]).toEqual([llm[0]!.id, llm[1]!.id]);
    // Full: a claim of any queue takes the other queue's task, worse priority as it is; then nothing.
    expect((await api.tasks.claim.mutate({ agentId: "c", context: false }))?.id).toBe(other.id);
    expect(await api.tasks.claim.mutate({ agentId: "d", context: false })).toBeNull();
    expect(await api.tasks.claimMany.mutate({ agentId: "d", limit: 10 })).toEqual([]);
    expect((await rest(t.url, "GET", "/tasks/claim/d?queue=llm")).status).toBe(204);
    expect(await api.queues.limit.query({ queue: "llm" })).toMatchObject({ maxLeased: 2, leased: 2 });
    // What an operator alerts on: a queue at its limit.
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^coordination_queue_limit\{queue="llm"\} 2$/m);
    expect(metrics).toMatch(/^coordination_queue_leased\{queue="llm"\} 2$/m);
    expect(metrics).toMatch(/^coordination_queues_at_limit 1$/m);
    expect(metrics).not.toMatch(/^coordination_queue_(limit|leased)\{queue="other"\}/m);

    // Complete-and-claim frees its slot before it claims: the agent goes on with the next.
    const next = await api.tasks.completeAndClaim.mutate({ taskId: a!.id, agentId: "a", result: null });
    expect(next.next?.id).toBe(llm[2]!.id);
    expect(await api.tasks.claim.mutate({ agentId: "d", context: false })).toBeNull();

    // claimMany takes only the free slots: raise the limit to 4, two are free.
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 4 });
    const many = await api.tasks.claimMany.mutate({ agentId: "e", limit: 10, context: false });
    expect(many.map((task) => task.id)).toEqual([llm[3]!.id, llm[4]!.id]);
    expect(await api.queues.limits.query()).toEqual([{ queue: "llm", maxLeased: 4, leased: 4, setBy: null, setAt: expect.any(Date), removedAt: null }]);
    expect(rows(t, "llm")).toEqual({ held: 0, claimable: 0, leased: 4 });
  });

  it("every way a lease ends frees a slot (fail, release, cancel, expiry); a steal moves one and takes none", async () => {
    // The sweeper runs when the test says (runNow), not before the steal.
    t = await startTestServer({ retryBaseMs: 1, retryMaxMs: 1, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    for (let i = 0; i < 6; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    const claimOne = () => api.tasks.claim.mutate({ agentId: "w", queues: ["llm"], context: false });
    const expectFull = async () => expect(await api.tasks.claim.mutate({ agentId: "x", queues: ["llm"], context: false })).toBeNull();

    const first = (await claimOne())!;
    await expectFull();
    await api.tasks.fail.mutate({ taskId: first.id, agentId: "w", error: "rate limited", retry: true });
    const second = (await claimOne())!;
    await expectFull();
    await api.tasks.release.mutate({ taskId: second.id, agentId: "w" });
    const third = (await claimOne())!;
    await expectFull();
    await api.tasks.cancel.mutate({ taskId: third.id });
    const fourth = (await api.tasks.claim.mutate({ agentId: "w", queues: ["llm"], leaseMs: 1000, context: false }))!;
    await expectFull();
    // A thief takes over the lease (expired): still one leased, the queue stays full.
    await vi.waitFor(async () => expect(Date.now()).toBeGreaterThan(fourth.leaseExpiresAt.getTime()), { timeout: 15_000, interval: 25 });
    await api.agents.register.mutate({ agentId: "thief", capabilities: [] });
    const stolen = await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "w", limit: 1, leaseMs: 1000 });
    expect(stolen.map((task) => task.id)).toEqual([fourth.id]);
    expect(await api.queues.limit.query({ queue: "llm" })).toMatchObject({ leased: 1 });
    await expectFull();
    // The thief stops renewing: the sweeper expires the lease, the slot frees.
    await vi.waitFor(async () => expect(Date.now()).toBeGreaterThan(stolen[0]!.leaseExpiresAt.getTime()), { timeout: 15_000, interval: 25 });
    await expectFull();
    await t.server.services.jobs.leaseSweeper.runNow();
    expect((await claimOne())?.queue).toBe("llm");
    expect(await api.queues.limit.query({ queue: "llm" })).toMatchObject({ leased: 1 });
  });

  it("a claim for several, right after a limit is set on a backlog larger than one hold chunk, takes only the free slots", async () => {
    // The limit's own write holds the first 1,000 rows; the rest are still in the general index.
    t = await startTestServer();
    withDatabase(t, (db) =>
      db
        .prepare(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO tasks (id, queue, payload, runAt, createdAt, updatedAt) SELECT 'llm' || i, 'llm', '{}', 0, 0, 0 FROM n`)
        .run(),
    );
    await t.api.queues.setLimit.mutate({ queue: "llm", maxLeased: 2 });
    expect(rows(t, "llm")).toMatchObject({ held: 1000, claimable: 4000 });
    expect((await t.api.tasks.claimMany.mutate({ agentId: "w", limit: 10, context: false })).length).toBe(2);
    expect(rows(t, "llm").leased).toBe(2);
  });

  it("a complete-and-claim on a full queue frees no slot: it wakes no parked claim", async () => {
    t = await startTestServer(NO_EARLY_RELOOK);
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    for (let i = 0; i < 24; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    let held = (await api.tasks.claim.mutate({ agentId: "a", context: false }))!;
    const { parked, attempts, attemptsParked } = await parkThree(t);
    for (let i = 0; i < 20; i++) held = (await api.tasks.completeAndClaim.mutate({ taskId: held.id, agentId: "a", result: null, next: { context: false } })).next!;
    expect(attempts()).toBe(attemptsParked);
    // Its last complete frees the slot: one parked claim takes the next task.
    await api.tasks.complete.mutate({ taskId: held.id, agentId: "a" });
    const first = await Promise.race([...parked, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    expect(first).toMatchObject({ queue: "llm" });
    await api.queues.removeLimit.mutate({ queue: "llm" });
    expect((await Promise.all(parked)).filter((task) => task !== null).length).toBe(3);
  });

  it("a slot freed in the commit where another claim took the slot free before still wakes the parked claim", async () => {
    // The three calls of one tick share one group commit: y's claim takes the free slot, p's
    // attempt finds the queue full and parks, x's complete frees a slot (a review: counting every
    // claim against every lease end of a commit left p parked for its whole wait).
    t = await startTestServer();
    const { tasks } = t.server.services;
    await t.api.queues.setLimit.mutate({ queue: "llm", maxLeased: 2 });
    for (let i = 0; i < 4; i++) await t.api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    for (const agentId of ["x", "y", "p"]) await t.api.agents.register.mutate({ agentId, capabilities: [] });
    const [held] = await tasks.claim({ agentId: "x", context: false });
    const fresh = tasks.claim({ agentId: "y", context: false });
    const parked = tasks.claim({ agentId: "p", waitMs: 60_000, context: false });
    const done = tasks.complete({ taskId: held!.id, agentId: "x" });
    await Promise.all([fresh, done]);
    const woken = await Promise.race([parked, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    expect(woken).not.toBe("late");
    expect(woken).toHaveLength(1);
  });

  it("a parked claim blocked by a full queue is not woken by what frees no slot (enqueues, a steal), and once for one slot", async () => {
    t = await startTestServer({ ...NO_EARLY_RELOOK, leaseSweepMs: 60_000 });
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0 });
    const held = (await api.tasks.claim.mutate({ agentId: "a", leaseMs: 1000, context: false }))!;
    // A task waits: the parked claims find the queue full with a task they could take, and are blocked by it.
    await api.tasks.enqueue.mutate({ queue: "llm", payload: 0.5 });
    const { parked, attempts, attemptsParked } = await parkThree(t);
    for (let i = 1; i <= 20; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: i });
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(held.leaseExpiresAt.getTime()), { timeout: 15_000, interval: 25 });
    await api.agents.register.mutate({ agentId: "thief", capabilities: [] });
    expect(await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "a", limit: 1 })).toHaveLength(1);
    // Every commit's events have reached the waiters once the stats read reflects the steal.
    expect(await api.queues.limit.query({ queue: "llm" })).toMatchObject({ leased: 1 });
    expect(attempts()).toBe(attemptsParked);
    await api.tasks.release.mutate({ taskId: held.id, agentId: "thief" });
    const first = await Promise.race([...parked, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    expect(first).toMatchObject({ queue: "llm" });
    expect(attempts()).toBe(attemptsParked + 1);
    await api.queues.removeLimit.mutate({ queue: "llm" });
    expect((await Promise.all(parked)).filter((task) => task !== null).length).toBe(3);
  });

  it("at most 1,000 queues are limited at once, and claims work with that many", async () => {
    t = await startTestServer();
    withDatabase(t, (db) =>
      db.prepare(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO queue_limits (queue, maxLeased, setAt) SELECT 'customer-' || i, 2, 0 FROM n`).run(),
    );
    await expect(t.api.queues.setLimit.mutate({ queue: "one-more", maxLeased: 1 })).rejects.toMatchObject({ data: { code: "INVALID_STATE" } });
    // Changing one that is limited is no new limit.
    expect(await t.api.queues.setLimit.mutate({ queue: "customer-7", maxLeased: 3 })).toMatchObject({ maxLeased: 3 });
    await t.api.tasks.enqueue.mutate({ queue: "customer-7", payload: 1 });
    await t.api.tasks.enqueue.mutate({ queue: "free", payload: 2 });
    const [first, second] = [await t.api.tasks.claim.mutate({ agentId: "w", context: false }), await t.api.tasks.claim.mutate({ agentId: "w", context: false })];
    expect([first?.queue, second?.queue].sort()).toEqual(["customer-7", "free"]);
  });

  it("leases taken before the limit count toward it; a lower limit lets the leases above it run on", async () => {
    t = await startTestServer();
    const api = t.api;
    for (let i = 0; i < 5; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    const running = await api.tasks.claimMany.mutate({ agentId: "w", limit: 3, context: false });
    expect(await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 2 })).toMatchObject({ maxLeased: 2, leased: 3 });
    expect(await api.tasks.claim.mutate({ agentId: "x", context: false })).toBeNull();
    await api.tasks.complete.mutate({ taskId: running[0]!.id, agentId: "w" });
    expect(await api.tasks.claim.mutate({ agentId: "x", context: false })).toBeNull();
    await api.tasks.complete.mutate({ taskId: running[1]!.id, agentId: "w" });
    expect((await api.tasks.claim.mutate({ agentId: "x", context: false }))?.queue).toBe("llm");
    expect(await api.tasks.claim.mutate({ agentId: "x", context: false })).toBeNull();
  });

  it("a long-polling claim parked on a full queue is woken by the lease end that frees a slot, not by the safety re-look", async () => {
    // The safety re-look is at least 30 s: a claim answered within the 15 s wait was woken.
    t = await startTestServer();
    const api = t.api;
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    const [one, two] = [await api.tasks.enqueue.mutate({ queue: "llm", payload: 1 }), await api.tasks.enqueue.mutate({ queue: "llm", payload: 2 })];
    expect((await api.tasks.claim.mutate({ agentId: "a", context: false }))?.id).toBe(one.id);
    const parked = api.tasks.claim.mutate({ agentId: "b", waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 25 });
    await api.tasks.complete.mutate({ taskId: one.id, agentId: "a" });
    const woken = await Promise.race([parked, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    expect(woken).not.toBe("late");
    expect((woken as { id: string }).id).toBe(two.id);

    // A limit raised wakes the claims parked on the queue too.
    const three = await api.tasks.enqueue.mutate({ queue: "llm", payload: 3 });
    const parkedAgain = api.tasks.claim.mutate({ agentId: "c", waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 15_000, interval: 25 });
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 2 });
    const raised = await Promise.race([parkedAgain, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 15_000))]);
    expect((raised as { id: string }).id).toBe(three.id);
  });

  it("removing a limit lets its queue's tasks go, best first; a pause and a limit each keep the tasks held while the other ends", async () => {
    t = await startTestServer();
    const api = t.api;
    for (let i = 0; i < 3; i++) await api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    await api.queues.setLimit.mutate({ queue: "llm", maxLeased: 1 });
    await api.queues.pause.mutate({ queue: "llm" });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    // Resumed, the queue is still limited: its tasks stay held, and one at a time goes.
    await api.queues.resume.mutate({ queue: "llm" });
    expect(rows(t, "llm")).toEqual({ held: 3, claimable: 0, leased: 0 });
    expect(await api.queues.paused.query()).toEqual([]);
    const first = (await api.tasks.claim.mutate({ agentId: "w", context: false }))!;
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    // Paused again, then the limit removed: still paused, still held.
    await api.queues.pause.mutate({ queue: "llm" });
    expect(await api.queues.removeLimit.mutate({ queue: "llm" })).toEqual({ queue: "llm", maxLeased: null, leased: null, setBy: null, setAt: null, removedAt: null });
    expect(await api.queues.limits.query()).toEqual([]);
    expect(rows(t, "llm")).toEqual({ held: 2, claimable: 0, leased: 1 });
    expect(await api.tasks.claim.mutate({ agentId: "w", context: false })).toBeNull();
    // Resumed with no limit: every task goes, without a bound.
    await api.queues.resume.mutate({ queue: "llm" });
    await vi.waitFor(() => expect(rows(t!, "llm")).toEqual({ held: 0, claimable: 2, leased: 1 }), { timeout: 15_000, interval: 25 });
    expect((await api.tasks.claimMany.mutate({ agentId: "w", limit: 5, context: false })).length).toBe(2);
    await api.tasks.complete.mutate({ taskId: first.id, agentId: "w" });
    // The queue's events say what changed and who did it.
    const events = await api.events.list.query({ types: ["queue.limit_set", "queue.limit_removed"] });
    expect(events.map((e) => [e.type, e.payload])).toEqual([
      ["queue.limit_set", { queue: "llm", maxLeased: 1, previous: null, setBy: null }],
      ["queue.limit_removed", { queue: "llm", previous: 1, removedBy: null }],
    ]);
  });

  it("a limit holds across servers sharing one file: their claims count the same leases", async () => {
    t = await startTestServer();
    t2 = await startTestServer({}, t.dir);
    await t.api.queues.setLimit.mutate({ queue: "llm", maxLeased: 3 });
    for (let i = 0; i < 20; i++) await t.api.tasks.enqueue.mutate({ queue: "llm", payload: { i } });
    const claims = await Promise.all(
      Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? t! : t2!).api.tasks.claim.mutate({ agentId: `w${i}`, context: false })),
    );
    expect(claims.filter((task) => task !== null).length).toBe(3);
    expect(rows(t, "llm").leased).toBe(3);
  });

  it("a limit's input is checked and named; setting and removing are an admin's, reading it a reader's", async () => {
    secure = await startSecureServer();
    const read = await secure.issue("read");
    const agent = await secure.issue("agent", "w");
    for (const [body, problem] of [
      [{ maxLeased: 0 }, "maxLeased"],
      [{ maxLeased: 1.5 }, "maxLeased"],
      [{ maxLeased: "3" }, "maxLeased"],
      [{}, "maxLeased"],
      [{ maxLeased: 2, extra: 1 }, "extra"],
    ] as const) {
      const answer = await http(secure.url, "POST", "/queues/llm/limit", { body, token: ADMIN_SECRET });
      expect(answer.status).toBe(400);
      expect(JSON.stringify(answer.body)).toContain(problem);
    }
    expect((await http(secure.url, "POST", "/queues/llm/limit", { body: { maxLeased: 2 }, token: agent })).status).toBe(403);
    expect((await http(secure.url, "DELETE", "/queues/llm/limit", { token: agent })).status).toBe(403);
    const set = await http(secure.url, "POST", "/queues/llm/limit", { body: { maxLeased: 2 }, token: ADMIN_SECRET });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ queue: "llm", maxLeased: 2, leased: 0, setBy: "config:adminToken", removedAt: null });
    expect((await http(secure.url, "GET", "/queues/llm/limit", { token: read })).body).toMatchObject({ maxLeased: 2 });
    expect((await http(secure.url, "GET", "/queues/limits", { token: read })).body).toMatchObject([{ queue: "llm", maxLeased: 2 }]);
    expect((await http(secure.url, "DELETE", "/queues/llm/limit", { token: ADMIN_SECRET })).body).toMatchObject({ maxLeased: null });
  });

  it("the operator's command sets, lists and removes a limit; a bound that is not one is refused before any call", async () => {
    t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ queue: "llm", payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "w", context: false });
    const env = { COORDINATION_URL: t.url };
    expect(await runOperator({ args: ["queues", "limit", "llm", "5"], env })).toMatchObject({ code: 0, stdout: "queue llm: at most 5 leased at once (1 now)\n" });
    const list = await runOperator({ args: ["queues", "limits"], env });
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^QUEUE\s+LIMIT\s+LEASED\s+SINCE\s+BY$/);
    expect(list.stdout.split("\n")[1]).toMatch(/^llm\s+5\s+1\s+\S+ \S+\s+-$/);
    // stats (and the dashboard, and MCP's queue_stats: the same answer) mark the limited queue.
    expect((await t.api.tasks.stats.query({ queue: "llm" })).queues).toEqual([expect.objectContaining({ queue: "llm", paused: false, maxLeased: 5 })]);
    expect((await runOperator({ args: ["stats"], env })).stdout.split("\n")[1]).toMatch(/^llm \(limit 5\)\s+0\s/);
    for (const bound of ["0", "-1", "2.5", "five", "1e3"]) {
      expect(await runOperator({ args: ["queues", "limit", "llm", bound], env })).toMatchObject({ code: 2, stderr: expect.stringMatching(/queues limit needs a QUEUE and the most leases/) });
    }
    expect(await runOperator({ args: ["queues", "limit", "llm"], env })).toMatchObject({ code: 2 });
    // Past the server's bound: named as the operator typed it, not as the API's field (maxLeased).
    expect(await runOperator({ args: ["queues", "limit", "llm", "1000001"], env })).toMatchObject({ code: 2, stderr: expect.stringMatching(/^coordination: queues limit: N, the most leases at once, is 1 to 1,000,000: not 1000001\n/) });
    expect((await t.api.queues.limit.query({ queue: "llm" })).maxLeased).toBe(5);
    expect(await runOperator({ args: ["queues", "limit", "llm", "off"], env })).toMatchObject({ code: 0, stdout: "queue llm has no limit\n" });
    expect(await runOperator({ args: ["queues", "limits"], env })).toMatchObject({ code: 0, stdout: "no queue is limited\n" });
  });

  it("in-process, the same calls", async () => {
    const coordination = await openCoordination({ settings: { dbPath: join(makeTempDir(), "embedded.db"), logLevel: "silent" } });
    onTestFinished(() => coordination.close());
    await coordination.tasks.enqueue({ queue: "llm", payload: 1 });
    await coordination.tasks.enqueue({ queue: "llm", payload: 2 });
    expect(await coordination.queues.setLimit("llm", 1)).toMatchObject({ queue: "llm", maxLeased: 1, leased: 0 });
    expect(await coordination.tasks.claim("a", { context: false })).toMatchObject({ queue: "llm" });
    expect(await coordination.tasks.claim("b", { context: false })).toBeNull();
    expect(await coordination.queues.limit("llm")).toMatchObject({ maxLeased: 1, leased: 1 });
    expect((await coordination.queues.limits()).map((l) => l.queue)).toEqual(["llm"]);
    expect(await coordination.queues.removeLimit("llm")).toMatchObject({ maxLeased: null, leased: null });
    expect(await coordination.tasks.claim("b", { context: false })).toMatchObject({ queue: "llm" });
  });
});
