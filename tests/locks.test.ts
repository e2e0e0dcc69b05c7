// Named locks (locks.acquire / renew / release / forceRelease / get / list, POST /locks/{name}/…):
// agents that share something outside the queue (a repository, a branch, a deploy target, a
// rate-limited account) take turns on it. One agent holds a name at a time, for a lease it renews;
// each grant has a fencing token larger than every one before it, so what the lock guards can
// refuse a holder whose lease ran out while it was stalled.
import net from "node:net";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { rest, startTestServer, startTestServerWithout, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let secure: SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  await secure?.stop({ removeFiles: true });
  t = secure = undefined;
});

/** The lock events of the log after `afterSeq`, as [type, payload]. */
async function lockEvents(server: TestServer, afterSeq = 0): Promise<Array<[string, Record<string, unknown>]>> {
  const events = await server.api.events.list.query({ afterSeq, types: ["lock.*"], limit: 1000 });
  return events.map((event) => [event.type, event.payload as Record<string, unknown>]);
}

const FREE = { held: false, holder: null, fencingToken: null, acquiredAt: null, expiresAt: null, leaseMs: null };

describe("named locks", () => {
  it("one agent holds a name at a time; the holder acquiring again keeps its grant; a release frees it; every grant's fencing token is larger than the last", async () => {
    t = await startTestServer();
    const { api } = t;
    const before = Date.now();
    const first = await api.locks.acquire.mutate({ name: "repo/app", agentId: "a", leaseMs: 60_000 });
    expect(first).toEqual({
      acquired: true,
      lock: { name: "repo/app", held: true, holder: "a", fencingToken: 1, acquiredAt: expect.any(Date), expiresAt: expect.any(Date), leaseMs: 60_000 },
    });
    expect(first.lock.expiresAt!.getTime() - first.lock.acquiredAt!.getTime()).toBe(60_000);
    expect(first.lock.acquiredAt!.getTime()).toBeGreaterThanOrEqual(before);

    // Another agent is told who holds it, and until when.
    expect(await api.locks.acquire.mutate({ name: "repo/app", agentId: "b" })).toEqual({ acquired: false, lock: first.lock });
    // The holder acquiring again (its answer lost, say): the same grant, its lease from now.
    const again = await api.locks.acquire.mutate({ name: "repo/app", agentId: "a", leaseMs: 90_000 });
    expect(again.acquired).toBe(true);
    expect(again.lock).toMatchObject({ holder: "a", fencingToken: 1, acquiredAt: first.lock.acquiredAt, leaseMs: 90_000 });
    expect(again.lock.expiresAt!.getTime()).toBeGreaterThanOrEqual(first.lock.expiresAt!.getTime() + 30_000);
    expect(await api.locks.get.query({ name: "repo/app" })).toEqual(again.lock);

    // Another name is another lock, with the next token.
    const other = await api.locks.acquire.mutate({ name: "deploy:production", agentId: "b" });
    expect(other.lock).toMatchObject({ holder: "b", fencingToken: 2, leaseMs: t.config.leaseMs });

    // A release by another agent, or under another token, changes nothing.
    expect(await api.locks.release.mutate({ name: "repo/app", agentId: "b" })).toEqual({ released: false, lock: again.lock });
    expect(await api.locks.release.mutate({ name: "repo/app", agentId: "a", fencingToken: 7 })).toEqual({ released: false, lock: again.lock });
    expect(await api.locks.release.mutate({ name: "repo/app", agentId: "a", fencingToken: 1 })).toEqual({ released: true, lock: { name: "repo/app", ...FREE } });
    // Sent again (its answer lost): nothing more.
    expect(await api.locks.release.mutate({ name: "repo/app", agentId: "a", fencingToken: 1 })).toEqual({ released: false, lock: { name: "repo/app", ...FREE } });
    expect(await api.locks.get.query({ name: "repo/app" })).toEqual({ name: "repo/app", ...FREE });

    const next = await api.locks.acquire.mutate({ name: "repo/app", agentId: "b" });
    expect(next.lock).toMatchObject({ holder: "b", fencingToken: 3 });

    const events = await lockEvents(t);
    expect(events).toEqual([
      ["lock.acquired", { name: "repo/app", agentId: "a", fencingToken: 1, expiresAt: first.lock.expiresAt!.toISOString() }],
      ["lock.acquired", { name: "deploy:production", agentId: "b", fencingToken: 2, expiresAt: other.lock.expiresAt!.toISOString() }],
      ["lock.released", { name: "repo/app", agentId: "a", fencingToken: 1, heldMs: expect.any(Number) }],
      ["lock.acquired", { name: "repo/app", agentId: "b", fencingToken: 3, expiresAt: next.lock.expiresAt!.toISOString() }],
    ]);
  });

  it("a lock is held by one acquire: the same agent's acquire with another idempotencyKey waits as another agent's does; the same key again gets the grant", async () => {
    t = await startTestServer();
    const { api } = t;
    const first = await api.locks.acquire.mutate({ name: "shared", agentId: "w", idempotencyKey: "handler-1", leaseMs: 60_000 });
    expect(first).toMatchObject({ acquired: true, lock: { holder: "w", fencingToken: 1 } });
    // Another of the agent's workers, with a key of its own, or none: refused, the lock named.
    expect(await api.locks.acquire.mutate({ name: "shared", agentId: "w", idempotencyKey: "handler-2" })).toEqual({ acquired: false, lock: first.lock });
    expect(await api.locks.acquire.mutate({ name: "shared", agentId: "w" })).toEqual({ acquired: false, lock: first.lock });
    // Another agent with the same key is another acquire too.
    expect((await api.locks.acquire.mutate({ name: "shared", agentId: "v", idempotencyKey: "handler-1" })).acquired).toBe(false);
    // The first key again (its answer lost): the same grant, renewed.
    const again = await api.locks.acquire.mutate({ name: "shared", agentId: "w", idempotencyKey: "handler-1", leaseMs: 90_000 });
    expect(again).toMatchObject({ acquired: true, lock: { holder: "w", fencingToken: 1, leaseMs: 90_000 } });
    // The second handler waits, and has it once the first releases.
    const waiting = api.locks.acquire.mutate({ name: "shared", agentId: "w", idempotencyKey: "handler-2", waitMs: 20_000 });
    await vi.waitFor(() => expect(t!.server.services.waiters.locks.size).toBe(1), { timeout: 10_000, interval: 10 });
    await api.locks.release.mutate({ name: "shared", agentId: "w", fencingToken: 1 });
    expect(await waiting).toMatchObject({ acquired: true, lock: { holder: "w", fencingToken: 2 } });
    // A grant taken with a key is renewed and released by its token only: the agent's other
    // acquires (another key, or none: an MCP session's) know no token, and leave it alone.
    expect((await api.locks.release.mutate({ name: "shared", agentId: "w" })).released).toBe(false);
    await expect(api.locks.renew.mutate({ name: "shared", agentId: "w" })).rejects.toMatchObject({
      message: 'lock "shared" was taken by an acquire of agent "w" with an idempotencyKey: that acquire renews it with its fencingToken, and it is held still',
      data: { code: "LEASE_CONFLICT" },
    });
    expect(await api.locks.renew.mutate({ name: "shared", agentId: "w", fencingToken: 2 })).toMatchObject({ holder: "w", fencingToken: 2 });
    // Its grant ended, the key acquires anew (as a claim's key does once its leases ended).
    expect((await api.locks.release.mutate({ name: "shared", agentId: "w", fencingToken: 2 })).released).toBe(true);
    expect(await api.locks.acquire.mutate({ name: "shared", agentId: "w", idempotencyKey: "handler-2" })).toMatchObject({ acquired: true, lock: { fencingToken: 3 } });
    // Keys are text of 1 to 200 characters.
    await expect(api.locks.acquire.mutate({ name: "shared", agentId: "w", idempotencyKey: "" })).rejects.toMatchObject({ data: { code: "INVALID_INPUT" } });
  });

  it("an agent that only takes locks is registered by its first acquire, so that its deregistration finds them", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.locks.acquire.mutate({ name: "only-locks", agentId: "locker" });
    expect(await api.agents.get.query({ agentId: "locker" })).toMatchObject({ agentId: "locker", health: "healthy" });
    await api.agents.deregister.mutate({ agentId: "locker" });
    expect((await api.locks.get.query({ name: "only-locks" })).held).toBe(false);
  });

  it("retention keeps an agent offline that holds a lock whose lease runs on; one whose leases ran out goes", async () => {
    t = await startTestServer({ agentRetentionMs: 60_000, agentStartupGraceMs: 0 });
    const { lock } = await t.api.locks.acquire.mutate({ name: "repo", agentId: "w", leaseMs: 30 * 60_000 });
    await t.api.locks.acquire.mutate({ name: "brief", agentId: "v", leaseMs: 1 });
    // Both seen offline, their last sign of life 5 minutes ago (w renews every 10 minutes, and calls nothing else).
    const fiveMinutesAgo = Date.now() - 5 * 60_000;
    withDatabase(t, (db) => db.prepare(`UPDATE agents SET health = 'offline', lastHeartbeatAt = ?`).run(fiveMinutesAgo));
    await vi.waitFor(async () => expect((await t!.api.locks.get.query({ name: "brief" })).held).toBe(false), { timeout: 10_000, interval: 10 });
    await t.server.services.retention.prune();
    expect((await t.api.agents.list.query({})).map((agent) => agent.agentId)).toEqual(["w"]);
    expect(await t.api.locks.get.query({ name: "repo" })).toMatchObject({ held: true, holder: "w", fencingToken: lock.fencingToken });
  });

  it("fencing tokens keep growing across a restart and after every lock row is gone", async () => {
    t = await startTestServer();
    await t.api.locks.acquire.mutate({ name: "x", agentId: "a" });
    await t.api.locks.release.mutate({ name: "x", agentId: "a" });
    await t.api.locks.acquire.mutate({ name: "y", agentId: "a" });
    await t.api.locks.release.mutate({ name: "y", agentId: "a" });
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM locks`).pluck().get())).toBe(0);
    const dir = t.dir;
    await t.stop();
    t = await startTestServer({}, dir);
    expect((await t.api.locks.acquire.mutate({ name: "x", agentId: "b" })).lock.fencingToken).toBe(3);
  });

  it("a lock's or permit's own length is renewed up to maxLeaseMs: after the setting was lowered, its next renewal is cut to it, as a task's heartbeat is", async () => {
    t = await startTestServer({ maxLeaseMs: 600_000 });
    const lock = await t.api.locks.acquire.mutate({ name: "deploy", agentId: "a", leaseMs: 600_000 });
    const permit = (await t.api.semaphores.acquire.mutate({ name: "gpu", agentId: "a", limit: 2, leaseMs: 600_000 })).permit!;
    expect([lock.lock.leaseMs, permit.leaseMs]).toEqual([600_000, 600_000]);
    const dir = t.dir;
    await t.stop();
    t = await startTestServer({ maxLeaseMs: 60_000 }, dir);
    const renewed = await t.api.locks.renew.mutate({ name: "deploy", agentId: "a", fencingToken: lock.lock.fencingToken! });
    expect([renewed.leaseMs, renewed.expiresAt!.getTime() - Date.now() <= 60_000]).toEqual([60_000, true]);
    const renewedPermit = await t.api.semaphores.renew.mutate({ name: "gpu", agentId: "a", fencingToken: permit.fencingToken });
    expect([renewedPermit.leaseMs, renewedPermit.expiresAt.getTime() - Date.now() <= 60_000]).toEqual([60_000, true]);
    // Over REST too, with leaseMs 0 (the grant's own length).
    const rested = await rest(t.url, "POST", "/locks/deploy/renew", { agentId: "a", leaseMs: 0 });
    expect([rested.status, rested.body.leaseMs]).toEqual([200, 60_000]);
  });

  it("a renewal extends the holder's lease from now; another agent's, another grant's, or one after the lease ran out is a 409 LEASE_CONFLICT naming the lock as it is", async () => {
    t = await startTestServerWithout("lockExpiry", { maxLeaseMs: 120_000 });
    const { api } = t;
    const { lock } = await api.locks.acquire.mutate({ name: "n", agentId: "a", leaseMs: 10_000 });
    const renewed = await api.locks.renew.mutate({ name: "n", agentId: "a", fencingToken: lock.fencingToken! });
    expect(renewed).toMatchObject({ holder: "a", fencingToken: lock.fencingToken, acquiredAt: lock.acquiredAt, leaseMs: 10_000 });
    expect(renewed.expiresAt!.getTime()).toBeGreaterThanOrEqual(lock.expiresAt!.getTime());
    // A longer lease than maxLeaseMs is cut to it.
    const longer = await api.locks.renew.mutate({ name: "n", agentId: "a", leaseMs: 3_600_000 });
    expect(longer.leaseMs).toBe(120_000);

    await expect(api.locks.renew.mutate({ name: "n", agentId: "b" })).rejects.toMatchObject({
      message: `agent "b" does not hold lock "n" (released, by it or by an operator, or its lease ran out): agent "a" holds it under fencing token 1`,
      data: { code: "LEASE_CONFLICT", httpStatus: 409, details: { name: "n", agentId: "b", lock: { holder: "a", fencingToken: 1 } } },
    });
    await expect(api.locks.renew.mutate({ name: "n", agentId: "a", fencingToken: 2 })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT", details: { fencingToken: 2 } } });
    await expect(api.locks.renew.mutate({ name: "free", agentId: "a" })).rejects.toMatchObject({
      message: `agent "a" does not hold lock "free" (released, by it or by an operator, or its lease ran out): it is free`,
      data: { code: "LEASE_CONFLICT", details: { lock: { name: "free", held: false } } },
    });

    // Its lease runs out: free at once, whatever the expiry job, and the late renewal is refused
    // (a refused write changes nothing: the expiry job takes the grant away, with its lock.expired).
    await api.locks.renew.mutate({ name: "n", agentId: "a", leaseMs: 1 });
    await vi.waitFor(async () => expect((await api.locks.get.query({ name: "n" })).held).toBe(false), { timeout: 10_000, interval: 20 });
    await expect(api.locks.renew.mutate({ name: "n", agentId: "a", fencingToken: 1 })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    expect(await t.server.services.locks.expire()).toBe(1);
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM locks`).pluck().get())).toBe(0);
    expect((await lockEvents(t)).map(([type, payload]) => [type, payload.agentId, payload.fencingToken])).toEqual([
      ["lock.acquired", "a", 1],
      ["lock.expired", "a", 1],
    ]);
    // Over REST: the same 409.
    const refused = await rest(t.url, "POST", "/locks/n/renew", { agentId: "a" });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "LEASE_CONFLICT", details: { lock: { name: "n", held: false } } });
  });

  it("a lease that runs out frees the lock for the next agent with a larger token; the expiry job tells subscribers of those nobody asked for", async () => {
    t = await startTestServerWithout("lockExpiry");
    const { api } = t;
    await api.locks.acquire.mutate({ name: "taken-over", agentId: "a", leaseMs: 50 });
    await api.locks.acquire.mutate({ name: "left", agentId: "a", leaseMs: 50 });
    await vi.waitFor(async () => expect((await api.locks.list.query({})).items).toEqual([]), { timeout: 10_000, interval: 20 });
    const next = await api.locks.acquire.mutate({ name: "taken-over", agentId: "b" });
    expect(next).toMatchObject({ acquired: true, lock: { holder: "b", fencingToken: 3 } });
    // The agent that lost it cannot release the new grant.
    expect((await api.locks.release.mutate({ name: "taken-over", agentId: "a" })).released).toBe(false);
    expect(await t.server.services.locks.expire()).toBe(1);
    expect(await t.server.services.locks.expire()).toBe(0);
    expect((await lockEvents(t)).map(([type, payload]) => [type, payload.name, payload.agentId, payload.fencingToken])).toEqual([
      ["lock.acquired", "taken-over", "a", 1],
      ["lock.acquired", "left", "a", 2],
      ["lock.expired", "taken-over", "a", 1],
      ["lock.acquired", "taken-over", "b", 3],
      ["lock.expired", "left", "a", 2],
    ]);
    const expired = (await lockEvents(t)).find(([type, payload]) => type === "lock.expired" && payload.name === "left")![1];
    expect(expired).toEqual({ name: "left", agentId: "a", fencingToken: 2, expiredAt: expect.any(String), heldMs: 50 });
  });

  it("an acquire with waitMs waits for the holder's release, for its lease to run out, or for its own wait to end", async () => {
    t = await startTestServerWithout("lockExpiry");
    const { api } = t;
    await api.locks.acquire.mutate({ name: "w", agentId: "a", leaseMs: 60_000 });
    const waiting = api.locks.acquire.mutate({ name: "w", agentId: "b", waitMs: 25_000 });
    await vi.waitFor(() => expect(t!.server.services.waiters.locks.size).toBe(1), { timeout: 10_000, interval: 10 });
    await api.locks.release.mutate({ name: "w", agentId: "a" });
    expect(await waiting).toMatchObject({ acquired: true, lock: { holder: "b", fencingToken: 2 } });
    expect(t.server.services.waiters.locks.size).toBe(0);

    // No release comes: b's lease runs out (no event: the expiry job is stopped), and c takes it then.
    await api.locks.renew.mutate({ name: "w", agentId: "b", leaseMs: 1500 });
    const takeover = await api.locks.acquire.mutate({ name: "w", agentId: "c", waitMs: 25_000 });
    expect(takeover).toMatchObject({ acquired: true, lock: { holder: "c", fencingToken: 3 } });

    // Nothing frees it: the wait ends, and the answer says who holds it.
    const started = Date.now();
    const refused = await api.locks.acquire.mutate({ name: "w", agentId: "d", waitMs: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(refused).toEqual({ acquired: false, lock: expect.objectContaining({ holder: "c", fencingToken: 3 }) });
    expect(t.server.services.waiters.locks.size).toBe(0);
  });

  it("several waiters: each release grants the lock to exactly one of them, until all had it", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.locks.acquire.mutate({ name: "turns", agentId: "a" });
    const agents = ["w1", "w2", "w3", "w4"];
    const waits = agents.map((agentId) => api.locks.acquire.mutate({ name: "turns", agentId, waitMs: 25_000 }).then((answer) => ({ agentId, answer })));
    await vi.waitFor(() => expect(t!.server.services.waiters.locks.size).toBe(4), { timeout: 10_000, interval: 10 });
    const had: string[] = [];
    let holder = "a";
    for (let turn = 0; turn < agents.length; turn++) {
      await api.locks.release.mutate({ name: "turns", agentId: holder });
      const lock = await vi.waitFor(
        async () => {
          const now = await api.locks.get.query({ name: "turns" });
          if (!now.held) throw new Error("not granted yet");
          return now;
        },
        { timeout: 10_000, interval: 10 },
      );
      expect(had).not.toContain(lock.holder);
      holder = lock.holder!;
      had.push(holder);
    }
    const answers = await Promise.all(waits);
    expect(answers.every(({ answer }) => answer.acquired)).toBe(true);
    expect(had.sort()).toEqual(agents);
    const tokens = answers.map(({ answer }) => answer.lock.fencingToken!).sort((x, y) => x - y);
    expect(tokens).toEqual([2, 3, 4, 5]);
  });

  it("refuses bad names, leases and waits with a 400 naming the field; an agent holds at most maxLocksPerAgent", async () => {
    t = await startTestServer({ maxLocksPerAgent: 2 });
    const { api } = t;
    for (const [name, message] of [
      ["", "name: must be at least 1 character long"],
      ["   ", "name: must not be blank"],
      ["..", 'name: must not be "." or "..": a URL path cannot carry it (clients resolve it as a dot segment, even written %2e)'],
      ["x".repeat(501), "name: must be at most 500 characters long"],
    ] as const) {
      await expect(api.locks.acquire.mutate({ name, agentId: "a" })).rejects.toMatchObject({ message, data: { code: "INVALID_INPUT", httpStatus: 400 } });
    }
    for (const name of ["   ", "x".repeat(501)]) {
      const answer = await rest(t.url, "POST", `/locks/${encodeURIComponent(name)}/acquire`, { agentId: "a" });
      expect(answer.status).toBe(400);
      expect(answer.body.message).toMatch(/^name: /);
    }
    for (const body of [{ agentId: "a", leaseMs: -1 }, { agentId: "a", leaseMs: 1.5 }, { agentId: "a", waitMs: "soon" }, { agentId: "a", colour: "red" }]) {
      const answer = await rest(t.url, "POST", "/locks/n/acquire", body);
      expect(answer.status).toBe(400);
      expect(answer.body.code).toBe("INVALID_INPUT");
    }
    expect((await api.locks.acquire.mutate({ name: "x".repeat(500), agentId: "a" })).acquired).toBe(true);
    await api.locks.acquire.mutate({ name: "two", agentId: "a", leaseMs: 100 });
    await expect(api.locks.acquire.mutate({ name: "three", agentId: "a" })).rejects.toMatchObject({
      message: `agent "a" holds 2 locks and semaphore permits already (maxLocksPerAgent 2): release one first`,
      data: { code: "LIMIT_EXCEEDED", httpStatus: 429 },
    });
    // One whose lease ran out does not count; one it holds already is not a new one.
    await vi.waitFor(async () => expect((await api.locks.get.query({ name: "two" })).held).toBe(false), { timeout: 10_000, interval: 20 });
    expect((await api.locks.acquire.mutate({ name: "x".repeat(500), agentId: "a" })).acquired).toBe(true);
    expect((await api.locks.acquire.mutate({ name: "three", agentId: "a" })).acquired).toBe(true);
    expect((await api.locks.acquire.mutate({ name: "four", agentId: "b" })).acquired).toBe(true);
  });

  it("over REST: a name with slashes is one %2F-encoded segment; list pages by name, by holder and by prefix, and cuts a page to the answer's budget", async () => {
    t = await startTestServer({ maxResponseBytes: 64 * 1024 });
    const acquired = await rest(t.url, "POST", `/locks/${encodeURIComponent("repo/src/a.ts")}/acquire`, { agentId: "a", leaseMs: 30_000 });
    expect(acquired).toMatchObject({ status: 200, body: { acquired: true, lock: { name: "repo/src/a.ts", held: true, holder: "a", fencingToken: 1, leaseMs: 30_000 } } });
    expect(typeof acquired.body.lock.expiresAt).toBe("string");
    expect(await rest(t.url, "GET", `/locks/${encodeURIComponent("repo/src/a.ts")}`)).toMatchObject({ status: 200, body: { holder: "a", fencingToken: 1 } });
    expect((await rest(t.url, "GET", `/locks/${encodeURIComponent("repo/src/b.ts")}`)).body).toEqual({ name: "repo/src/b.ts", ...FREE });
    for (const name of ["repo/src/b.ts", "repo/docs/c.md", "repo%_x", "other"]) await t.api.locks.acquire.mutate({ name, agentId: name === "other" ? "b" : "a" });

    expect((await rest(t.url, "GET", "/locks?prefix=repo/src/")).body.items.map((lock: { name: string }) => lock.name)).toEqual(["repo/src/a.ts", "repo/src/b.ts"]);
    // A prefix is text, not a pattern: % and _ are themselves.
    expect((await rest(t.url, "GET", `/locks?prefix=${encodeURIComponent("repo%")}`)).body.items.map((lock: { name: string }) => lock.name)).toEqual(["repo%_x"]);
    expect((await t.api.locks.list.query({ holder: "b" })).items.map((lock) => lock.name)).toEqual(["other"]);
    const first = await t.api.locks.list.query({ limit: 2 });
    expect(first.items.map((lock) => lock.name)).toEqual(["other", "repo%_x"]);
    expect(first.nextCursor).toBe("repo%_x");
    const second = await t.api.locks.list.query({ limit: 10, after: first.nextCursor! });
    expect(second).toEqual({ items: expect.any(Array), nextCursor: null });
    expect(second.items.map((lock) => lock.name)).toEqual(["repo/docs/c.md", "repo/src/a.ts", "repo/src/b.ts"]);

    // Long names fill the budget: pages are cut short with a cursor, and together list every lock.
    const long = Array.from({ length: 120 }, (_, i) => `long/${String(i).padStart(3, "0")}/${"\u00e9".repeat(480)}`);
    for (const name of long) await t.api.locks.acquire.mutate({ name, agentId: `holder-${name.slice(5, 8)}` });
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 40; page++) {
      const response = await fetch(`${t.url}/locks?prefix=long/&limit=1000${after === undefined ? "" : `&after=${encodeURIComponent(after)}`}`);
      const text = await response.text();
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(64 * 1024);
      const body = JSON.parse(text) as { items: Array<{ name: string }>; nextCursor: string | null };
      seen.push(...body.items.map((lock) => lock.name));
      if (body.nextCursor === null) break;
      expect(body.items.length).toBeLessThan(120);
      after = body.nextCursor;
    }
    expect(seen).toEqual(long);
    // Over tRPC too (superjson's envelope names the dates).
    const page = await fetch(`${t.url}/trpc/locks.list?input=${encodeURIComponent(JSON.stringify({ json: { prefix: "long/", limit: 1000 } }))}`);
    const trpcText = await page.text();
    expect(page.status).toBe(200);
    expect(Buffer.byteLength(trpcText)).toBeLessThanOrEqual(64 * 1024);
  });

  it("deregistering an agent releases its locks with it", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.agents.register.mutate({ agentId: "a", capabilities: [] });
    await api.locks.acquire.mutate({ name: "l1", agentId: "a" });
    await api.locks.acquire.mutate({ name: "l2", agentId: "a" });
    await api.locks.acquire.mutate({ name: "l3", agentId: "b" });
    const head = (await api.events.head.query()).head;
    await api.agents.deregister.mutate({ agentId: "a" });
    expect((await api.locks.list.query({})).items.map((lock) => lock.name)).toEqual(["l3"]);
    const events = await api.events.list.query({ afterSeq: head, limit: 10 });
    expect(events.map((event) => [event.type, event.payload])).toEqual([
      ["lock.released", { name: "l1", agentId: "a", fencingToken: 1, heldMs: expect.any(Number), reason: "deregistered" }],
      ["lock.released", { name: "l2", agentId: "a", fencingToken: 2, heldMs: expect.any(Number), reason: "deregistered" }],
      ["agent.deregistered", { agentId: "a", releasedTasks: 0, releasedLocks: 2 }],
    ]);
  });

  it("an acquire sent again while the first one's answer is lost: the repeat's answer hands the grant out, so the lost answer does not release it", async () => {
    t = await startTestServer({ busyTimeoutMs: 20_000 });
    const port = t.server.port;
    const body = JSON.stringify({ agentId: "a", leaseMs: 60_000, idempotencyKey: "deploy-1" });
    const db = new BetterSqlite3(t.dbPath, { timeout: 5000 });
    db.prepare("BEGIN IMMEDIATE").run();
    let repeat: Promise<unknown>;
    try {
      // The first acquire waits for the write lock; its client gives up on it (a timeout)...
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write(`POST /locks/r/acquire HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      await vi.waitFor(() => expect(t!.server.services.db.inFlight.writes).toBe(1), { timeout: 10_000, interval: 10 });
      socket.destroy();
      // ...and sends it again, queued behind the first (in the writer's queue before the lock comes free).
      repeat = t.api.locks.acquire.mutate({ name: "r", agentId: "a", leaseMs: 60_000, idempotencyKey: "deploy-1" });
      await vi.waitFor(() => expect(t!.server.services.db.inFlight.writes).toBe(2), { timeout: 10_000, interval: 10 });
    } finally {
      db.prepare("ROLLBACK").run();
      db.close();
    }
    expect(await repeat).toMatchObject({ acquired: true, lock: { holder: "a", fencingToken: 1 } });
    // The first answer's loss is known (its compensation ran) once its grant counts one answer.
    await vi.waitFor(() => expect(withDatabase(t!, (file) => file.prepare(`SELECT answers FROM locks WHERE name = 'r'`).pluck().get())).toBe(1), { timeout: 20_000, interval: 20 });
    expect(await t.api.locks.get.query({ name: "r" })).toMatchObject({ held: true, holder: "a", fencingToken: 1 });
    expect((await t.api.locks.acquire.mutate({ name: "r", agentId: "b" })).acquired).toBe(false);
    expect((await lockEvents(t)).map(([type]) => type)).toEqual(["lock.acquired"]);
  });

  it("a list by a prefix holding any character, a NUL among them, finds the names it starts", async () => {
    t = await startTestServer();
    for (const name of ["a", "a\u0000b", "a\u0000c", "ab", "\u00e9t\u00e9/x", "\u00e9tat"]) await t.api.locks.acquire.mutate({ name, agentId: "w" });
    const names = async (prefix: string) => (await t!.api.locks.list.query({ prefix })).items.map((lock) => lock.name);
    expect(await names("a\u0000")).toEqual(["a\u0000b", "a\u0000c"]);
    expect(await names("a")).toEqual(["a", "a\u0000b", "a\u0000c", "ab"]);
    expect(await names("\u00e9t\u00e9")).toEqual(["\u00e9t\u00e9/x"]);
  });

  it("a grant whose answer never reached its caller is released again; one the agent held already stays", async () => {
    t = await startTestServer({ busyTimeoutMs: 20_000 });
    const port = t.server.port;
    const send = (name: string) => {
      const body = JSON.stringify({ agentId: "gone" });
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write(`POST /locks/${name}/acquire HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      return socket;
    };
    // The agent holds "kept" already: an acquire sent again whose answer is lost leaves it held.
    await t.api.locks.acquire.mutate({ name: "kept", agentId: "gone", leaseMs: 60_000 });
    // Another connection holds the write lock: the acquires wait for it, then commit after their clients left.
    const db = new BetterSqlite3(t.dbPath, { timeout: 5000 });
    db.prepare("BEGIN IMMEDIATE").run();
    try {
      const sockets = [send("new"), send("kept")];
      await vi.waitFor(() => expect(t!.server.services.db.writeWaitMs).toBeGreaterThan(0), { timeout: 10_000, interval: 10 });
      for (const socket of sockets) socket.destroy();
      // The server sees both clients gone before the write lock comes free (the verdict does not depend on it).
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      db.prepare("ROLLBACK").run();
      db.close();
    }
    await vi.waitFor(async () => expect((await lockEvents(t!)).map(([type, payload]) => [type, payload.name])).toEqual([
      ["lock.acquired", "kept"],
      ["lock.acquired", "new"],
      ["lock.released", "new"],
    ]), { timeout: 20_000, interval: 20 });
    expect((await lockEvents(t)).at(-1)![1]).toMatchObject({ agentId: "gone", fencingToken: 2, reason: "answer not delivered" });
    expect(await t.api.locks.get.query({ name: "new" })).toEqual({ name: "new", ...FREE });
    expect(await t.api.locks.get.query({ name: "kept" })).toMatchObject({ held: true, holder: "gone", fencingToken: 1 });
  });
});

describe("named locks from the command line", () => {
  it("lists the locks held, shows one, and force-releases a stuck agent's", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const held = await t.api.locks.acquire.mutate({ name: "repo/src/a.ts", agentId: "stuck", leaseMs: 600_000 });
    await t.api.locks.acquire.mutate({ name: "deploy:production", agentId: "deployer" });
    const listed = await runOperator({ args: ["locks"], env });
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n")[0]).toMatch(/^LOCK\s+HOLDER\s+FENCING TOKEN\s+ACQUIRED\s+EXPIRES$/);
    expect(listed.stdout.split("\n").slice(1, 3).map((line) => line.split(/\s+/).slice(0, 3))).toEqual([
      ["deploy:production", "deployer", "2"],
      ["repo/src/a.ts", "stuck", "1"],
    ]);
    const one = await runOperator({ args: ["locks", "--holder", "stuck", "--json"], env });
    expect(JSON.parse(one.stdout)).toEqual([expect.objectContaining({ name: "repo/src/a.ts", holder: "stuck", fencingToken: 1 })]);
    expect((await runOperator({ args: ["locks", "get", "repo/src/a.ts"], env })).stdout).toBe(
      `lock repo/src/a.ts held by stuck (fencing token 1) since ${held.lock.acquiredAt!.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")}, until ${held.lock.expiresAt!.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")}\n`,
    );
    expect(await runOperator({ args: ["locks", "force-release", "repo/src/a.ts", "--reason", "agent hung"], env })).toMatchObject({
      code: 0,
      stdout: "lock repo/src/a.ts released (it was held by stuck, fencing token 1)\n",
    });
    expect(await runOperator({ args: ["locks", "force-release", "repo/src/a.ts"], env })).toMatchObject({ code: 0, stdout: "lock repo/src/a.ts was free: nothing changed\n" });
    expect(await runOperator({ args: ["locks", "get", "repo/src/a.ts"], env })).toMatchObject({ code: 0, stdout: "lock repo/src/a.ts is free\n" });
    expect((await lockEvents(t)).at(-1)).toEqual(["lock.released", { name: "repo/src/a.ts", agentId: "stuck", fencingToken: 1, heldMs: expect.any(Number), forced: true, releasedBy: null, reason: "agent hung" }]);
    expect(await runOperator({ args: ["locks", "get"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("locks get needs a NAME") });
    expect(await runOperator({ args: ["locks", "force-release", "a", "--holder", "x"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("does not take --holder") });
  });
});

describe("named locks with credentials", () => {
  it("an agent acquires, renews and releases its own locks only; a read credential looks; an operator force-releases, and the holder's next renewal is refused", async () => {
    secure = await startSecureServer();
    const a = secure.as(await secure.issue("agent", "a"));
    const b = secure.as(await secure.issue("agent", "b"));
    const reader = secure.as(await secure.issue("read"));
    const { lock } = await a.locks.acquire.mutate({ name: "shared", agentId: "a" });
    await expect(b.locks.acquire.mutate({ name: "shared", agentId: "a" })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    await expect(b.locks.release.mutate({ name: "shared", agentId: "a" })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    await expect(reader.locks.acquire.mutate({ name: "other", agentId: "r" })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    expect(await reader.locks.get.query({ name: "shared" })).toEqual(lock);
    expect((await reader.locks.list.query({})).items).toEqual([lock]);
    await expect(a.locks.forceRelease.mutate({ name: "shared" })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    // An agent may not forge the server's lock events.
    await expect(b.events.publish.mutate({ type: "lock.released", source: "b", payload: { name: "shared" } })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    expect((await http(secure.url, "GET", "/locks/shared")).status).toBe(401);

    const head = (await secure.admin.events.head.query()).head;
    const forced = await http(secure.url, "POST", "/locks/shared/force-release", { token: ADMIN_SECRET, body: { reason: "agent a is stuck" } });
    expect(forced).toMatchObject({ status: 200, body: { released: true, holder: "a", fencingToken: lock.fencingToken, lock: { name: "shared", held: false } } });
    const [event] = await secure.admin.events.list.query({ afterSeq: head, limit: 10 });
    expect(event).toMatchObject({ type: "lock.released", payload: { name: "shared", agentId: "a", fencingToken: lock.fencingToken, forced: true, releasedBy: "config:adminToken", reason: "agent a is stuck" } });
    await expect(a.locks.renew.mutate({ name: "shared", agentId: "a", fencingToken: lock.fencingToken! })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    // Nothing held: answered as it is.
    expect((await secure.admin.locks.forceRelease.mutate({ name: "shared" })).released).toBe(false);
    expect((await b.locks.acquire.mutate({ name: "shared", agentId: "b" })).lock.fencingToken).toBe(lock.fencingToken! + 1);
  });
});
