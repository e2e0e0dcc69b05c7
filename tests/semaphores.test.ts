// Semaphores (semaphores.acquire / renew / release / forceRelease / get / list, POST
// /semaphores/{name}/…): agents that share something with room for a few at once (an API key's
// concurrency, a pool of GPUs or browsers, a build farm) take turns on it. Up to `limit` agents hold
// a name at once, each by a permit with a lease it renews and a fencing token.
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

/** The semaphore events of the log after `afterSeq`, as [type, payload]. */
async function semaphoreEvents(server: TestServer, afterSeq = 0): Promise<Array<[string, Record<string, unknown>]>> {
  const events = await server.api.events.list.query({ afterSeq, types: ["semaphore.*"], limit: 1000 });
  return events.map((event) => [event.type, event.payload as Record<string, unknown>]);
}

const EMPTY = { held: 0, limit: null, nextExpiresAt: null };

describe("semaphores", () => {
  it("up to `limit` agents hold a name at once, each with a permit of its own token; a release lets the next in", async () => {
    t = await startTestServer();
    const { api } = t;
    const before = Date.now();
    const first = await api.semaphores.acquire.mutate({ name: "openai-key", agentId: "a", limit: 2, leaseMs: 60_000 });
    expect(first).toEqual({
      acquired: true,
      permit: { name: "openai-key", holder: "a", fencingToken: 1, limit: 2, acquiredAt: expect.any(Date), expiresAt: expect.any(Date), leaseMs: 60_000 },
      semaphore: { name: "openai-key", held: 1, limit: 2, nextExpiresAt: first.permit!.expiresAt },
    });
    expect(first.permit!.acquiredAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(first.permit!.expiresAt.getTime() - first.permit!.acquiredAt.getTime()).toBe(60_000);
    const second = await api.semaphores.acquire.mutate({ name: "openai-key", agentId: "b", limit: 2, leaseMs: 90_000 });
    expect(second).toMatchObject({ acquired: true, permit: { holder: "b", fencingToken: 2 }, semaphore: { held: 2, limit: 2, nextExpiresAt: first.permit!.expiresAt } });
    // Full: the third is told how many hold it, and when the first lease ends.
    const full = await api.semaphores.acquire.mutate({ name: "openai-key", agentId: "c", limit: 2 });
    expect(full).toEqual({ acquired: false, permit: null, semaphore: { name: "openai-key", held: 2, limit: 2, nextExpiresAt: first.permit!.expiresAt } });
    expect(await api.semaphores.get.query({ name: "openai-key" })).toEqual({
      name: "openai-key",
      held: 2,
      limit: 2,
      nextExpiresAt: first.permit!.expiresAt,
      permits: [first.permit, second.permit],
      permitsOmitted: 0,
    });

    // A release by another agent, or under another token, changes nothing; the holder's frees a permit.
    expect((await api.semaphores.release.mutate({ name: "openai-key", agentId: "c", fencingToken: 1 })).released).toBe(false);
    expect((await api.semaphores.release.mutate({ name: "openai-key", agentId: "a", fencingToken: 2 })).released).toBe(false);
    expect(await api.semaphores.release.mutate({ name: "openai-key", agentId: "a", fencingToken: 1 })).toEqual({
      released: true,
      semaphore: { name: "openai-key", held: 1, limit: 2, nextExpiresAt: second.permit!.expiresAt },
    });
    // Sent again (its answer lost): nothing more.
    expect((await api.semaphores.release.mutate({ name: "openai-key", agentId: "a", fencingToken: 1 })).released).toBe(false);
    const third = await api.semaphores.acquire.mutate({ name: "openai-key", agentId: "c", limit: 2 });
    expect(third).toMatchObject({ acquired: true, permit: { holder: "c", fencingToken: 3, leaseMs: t.config.leaseMs }, semaphore: { held: 2 } });
    // Another name is another semaphore.
    expect(await api.semaphores.get.query({ name: "gpu" })).toEqual({ name: "gpu", ...EMPTY, permits: [], permitsOmitted: 0 });

    expect(await semaphoreEvents(t)).toEqual([
      ["semaphore.acquired", { name: "openai-key", agentId: "a", fencingToken: 1, limit: 2, held: 1, expiresAt: first.permit!.expiresAt.toISOString() }],
      ["semaphore.acquired", { name: "openai-key", agentId: "b", fencingToken: 2, limit: 2, held: 2, expiresAt: second.permit!.expiresAt.toISOString() }],
      ["semaphore.released", { name: "openai-key", agentId: "a", fencingToken: 1, heldMs: expect.any(Number) }],
      ["semaphore.acquired", { name: "openai-key", agentId: "c", fencingToken: 3, limit: 2, held: 2, expiresAt: third.permit!.expiresAt.toISOString() }],
    ]);
  });

  it("the smallest limit among the permits held binds every newcomer; an agent may hold several permits; its idempotencyKey sent again gets the same one", async () => {
    t = await startTestServer();
    const { api } = t;
    const one = await api.semaphores.acquire.mutate({ name: "pool", agentId: "a", limit: 1 });
    // Held under a limit of 1: nobody else gets in, whatever limit it asks for.
    expect(await api.semaphores.acquire.mutate({ name: "pool", agentId: "b", limit: 5 })).toMatchObject({ acquired: false, semaphore: { held: 1, limit: 1 } });
    await api.semaphores.release.mutate({ name: "pool", agentId: "a", fencingToken: one.permit!.fencingToken });
    // Two agents under a limit of 3; one that asks for 2 finds it full, one that asks for 3 gets in.
    await api.semaphores.acquire.mutate({ name: "pool", agentId: "a", limit: 3 });
    await api.semaphores.acquire.mutate({ name: "pool", agentId: "b", limit: 3 });
    expect(await api.semaphores.acquire.mutate({ name: "pool", agentId: "c", limit: 2 })).toMatchObject({ acquired: false, semaphore: { held: 2, limit: 3 } });
    // The same agent without a key: a permit of its own each time (a worker with several handlers).
    const mine = await api.semaphores.acquire.mutate({ name: "pool", agentId: "a", limit: 3, idempotencyKey: "job-7", leaseMs: 10_000 });
    expect(mine).toMatchObject({ acquired: true, permit: { holder: "a", fencingToken: 4 }, semaphore: { held: 3 } });
    // Its key again (the answer lost): the same permit, renewed, not a refusal.
    const again = await api.semaphores.acquire.mutate({ name: "pool", agentId: "a", limit: 3, idempotencyKey: "job-7", leaseMs: 20_000 });
    expect(again).toMatchObject({ acquired: true, permit: { holder: "a", fencingToken: 4, leaseMs: 20_000, acquiredAt: mine.permit!.acquiredAt }, semaphore: { held: 3 } });
    // The same key asking for another limit is another request: refused, nothing changed.
    await expect(api.semaphores.acquire.mutate({ name: "pool", agentId: "a", limit: 5, idempotencyKey: "job-7" })).rejects.toMatchObject({
      message: 'idempotencyKey "job-7" of agent "a" was used for permit 4 of semaphore "pool" with a different limit (3, not 5)',
      data: { code: "IDEMPOTENCY_MISMATCH", httpStatus: 409, details: { name: "pool", fencingToken: 4, differs: ["limit"] } },
    });
    // Another agent's same key is another acquire.
    expect((await api.semaphores.acquire.mutate({ name: "pool", agentId: "b", limit: 3, idempotencyKey: "job-7" })).acquired).toBe(false);
    expect((await api.semaphores.list.query({ holder: "a" })).items.map((permit) => permit.fencingToken)).toEqual([2, 4]);
  });

  it("renewals extend a permit's lease from now; another agent's, another token's, or one after its lease ran out is a 409 LEASE_CONFLICT", async () => {
    t = await startTestServerWithout("semaphoreExpiry", { maxLeaseMs: 120_000 });
    const { api } = t;
    const { permit } = await api.semaphores.acquire.mutate({ name: "n", agentId: "a", limit: 2, leaseMs: 10_000 });
    const renewed = await api.semaphores.renew.mutate({ name: "n", agentId: "a", fencingToken: permit!.fencingToken });
    expect(renewed).toMatchObject({ holder: "a", fencingToken: 1, acquiredAt: permit!.acquiredAt, leaseMs: 10_000 });
    expect(renewed.expiresAt.getTime()).toBeGreaterThanOrEqual(permit!.expiresAt.getTime());
    expect((await api.semaphores.renew.mutate({ name: "n", agentId: "a", fencingToken: 1, leaseMs: 3_600_000 })).leaseMs).toBe(120_000);
    await expect(api.semaphores.renew.mutate({ name: "n", agentId: "b", fencingToken: 1 })).rejects.toMatchObject({
      message: `agent "b" holds no permit of semaphore "n" under fencing token 1 (released, by it or by an operator, or its lease ran out): acquire again`,
      data: { code: "LEASE_CONFLICT", httpStatus: 409, details: { name: "n", agentId: "b", fencingToken: 1, semaphore: { name: "n", held: 1, limit: 2 } } },
    });
    await expect(api.semaphores.renew.mutate({ name: "n", agentId: "a", fencingToken: 2 })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });

    // Its lease runs out: free at once, whatever the expiry job; the late renewal is refused.
    await api.semaphores.renew.mutate({ name: "n", agentId: "a", fencingToken: 1, leaseMs: 1 });
    await vi.waitFor(async () => expect((await api.semaphores.get.query({ name: "n" })).held).toBe(0), { timeout: 10_000, interval: 20 });
    await expect(api.semaphores.renew.mutate({ name: "n", agentId: "a", fencingToken: 1 })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    expect(await t.server.services.semaphores.expire()).toBe(1);
    expect(await t.server.services.semaphores.expire()).toBe(0);
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM semaphore_permits`).pluck().get())).toBe(0);
    expect(await semaphoreEvents(t)).toEqual([
      ["semaphore.acquired", expect.objectContaining({ agentId: "a", fencingToken: 1 })],
      ["semaphore.expired", { name: "n", agentId: "a", fencingToken: 1, expiredAt: expect.any(String), heldMs: expect.any(Number) }],
    ]);
    const refused = await rest(t.url, "POST", "/semaphores/n/renew", { agentId: "a", fencingToken: 1 });
    expect(refused).toMatchObject({ status: 409, body: { code: "LEASE_CONFLICT", details: { semaphore: { name: "n", held: 0 } } } });
  });

  it("a permit whose lease ran out is taken away by the next acquire of its name, with its semaphore.expired; tokens go on from the locks' counter", async () => {
    t = await startTestServerWithout("semaphoreExpiry");
    const { api } = t;
    await api.locks.acquire.mutate({ name: "a-lock", agentId: "x" });
    await api.semaphores.acquire.mutate({ name: "s", agentId: "a", limit: 1, leaseMs: 50 });
    await vi.waitFor(async () => expect((await api.semaphores.list.query({})).items).toEqual([]), { timeout: 10_000, interval: 20 });
    expect(await api.semaphores.acquire.mutate({ name: "s", agentId: "b", limit: 1 })).toMatchObject({ acquired: true, permit: { holder: "b", fencingToken: 3 } });
    expect((await semaphoreEvents(t)).map(([type, payload]) => [type, payload.agentId, payload.fencingToken])).toEqual([
      ["semaphore.acquired", "a", 2],
      ["semaphore.expired", "a", 2],
      ["semaphore.acquired", "b", 3],
    ]);
    expect((await api.locks.acquire.mutate({ name: "another", agentId: "x" })).lock.fencingToken).toBe(4);
  });

  it("an acquire with waitMs waits for a release, for a lease to run out, or for its own wait to end; several waiters get in as permits free, each once", async () => {
    t = await startTestServerWithout("semaphoreExpiry");
    const { api } = t;
    await api.semaphores.acquire.mutate({ name: "w", agentId: "a", limit: 2, leaseMs: 60_000 });
    await api.semaphores.acquire.mutate({ name: "w", agentId: "b", limit: 2, leaseMs: 60_000 });
    const waiting = ["c", "d", "e"].map((agentId) => api.semaphores.acquire.mutate({ name: "w", agentId, limit: 2, waitMs: 25_000 }));
    await vi.waitFor(() => expect(t!.server.services.waiters.semaphores.size).toBe(3), { timeout: 10_000, interval: 10 });
    // One release lets exactly one waiter in.
    await api.semaphores.release.mutate({ name: "w", agentId: "a", fencingToken: 1 });
    await vi.waitFor(() => expect(t!.server.services.waiters.semaphores.size).toBe(2), { timeout: 10_000, interval: 10 });
    expect((await api.semaphores.get.query({ name: "w" })).permits.map((permit) => permit.fencingToken)).toEqual([2, 3]);
    // Each release after it lets the next one in.
    await api.semaphores.release.mutate({ name: "w", agentId: "b", fencingToken: 2 });
    await vi.waitFor(() => expect(t!.server.services.waiters.semaphores.size).toBe(1), { timeout: 10_000, interval: 10 });
    const third = (await api.semaphores.get.query({ name: "w" })).permits[0]!;
    expect(third.fencingToken).toBe(3);
    await api.semaphores.release.mutate({ name: "w", agentId: third.holder, fencingToken: 3 });
    const answers = await Promise.all(waiting);
    expect(answers.every((answer) => answer.acquired)).toBe(true);
    expect(answers.map((answer) => answer.permit!.fencingToken).sort()).toEqual([3, 4, 5]);
    expect(answers.map((answer) => answer.permit!.holder)).toEqual(["c", "d", "e"]);
    expect(t.server.services.waiters.semaphores.size).toBe(0);

    // No release comes: a lease runs out (no event: the expiry job is stopped), and the waiter gets in then.
    await api.semaphores.acquire.mutate({ name: "brief", agentId: "f", limit: 1, leaseMs: 1500 });
    expect(await api.semaphores.acquire.mutate({ name: "brief", agentId: "g", limit: 1, waitMs: 25_000 })).toMatchObject({ acquired: true, permit: { holder: "g", fencingToken: 7 } });

    // Nothing frees one: the wait ends, and the answer says how many hold it.
    const started = Date.now();
    const refused = await api.semaphores.acquire.mutate({ name: "w", agentId: "h", limit: 2, waitMs: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(refused).toMatchObject({ acquired: false, permit: null, semaphore: { held: 2, limit: 2 } });
    expect(t.server.services.waiters.semaphores.size).toBe(0);
  });

  it("refuses bad names, limits and cursors with a 400 naming the field; locks and permits count together against maxLocksPerAgent", async () => {
    t = await startTestServer({ maxLocksPerAgent: 3 });
    const { api } = t;
    for (const [input, message] of [
      [{ name: "s", agentId: "a", limit: 0 }, "limit: must be at least 1"],
      [{ name: "s", agentId: "a", limit: 10_001 }, "limit: must be at most 10000"],
      [{ name: "..", agentId: "a", limit: 1 }, 'name: must not be "." or "..": a URL path cannot carry it (clients resolve it as a dot segment, even written %2e)'],
    ] as const) {
      await expect(api.semaphores.acquire.mutate(input)).rejects.toMatchObject({ message, data: { code: "INVALID_INPUT", httpStatus: 400 } });
    }
    for (const [path, body] of [
      ["/semaphores/s/acquire", { agentId: "a" }],
      ["/semaphores/s/acquire", { agentId: "a", limit: 1.5 }],
      ["/semaphores/s/renew", { agentId: "a" }],
      ["/semaphores/s/release", { agentId: "a", fencingToken: 0 }],
    ] as const) {
      const answer = await rest(t.url, "POST", path, body);
      expect(answer.status).toBe(400);
      expect(answer.body.code).toBe("INVALID_INPUT");
    }
    expect(await rest(t.url, "GET", "/semaphores?cursor=abc")).toMatchObject({ status: 400, body: { message: "cursor: must be a nextCursor semaphores.list answered" } });
    await api.locks.acquire.mutate({ name: "l", agentId: "a" });
    await api.semaphores.acquire.mutate({ name: "s", agentId: "a", limit: 5 });
    await api.semaphores.acquire.mutate({ name: "s", agentId: "a", limit: 5, idempotencyKey: "k" });
    for (const attempt of [() => api.semaphores.acquire.mutate({ name: "s", agentId: "a", limit: 5 }), () => api.locks.acquire.mutate({ name: "l2", agentId: "a" })]) {
      await expect(attempt()).rejects.toMatchObject({
        message: `agent "a" holds 3 locks and semaphore permits already (maxLocksPerAgent 3): release one first`,
        data: { code: "LIMIT_EXCEEDED", httpStatus: 429 },
      });
    }
    // One it holds already is not a new one; a full semaphore refuses before counting.
    expect((await api.semaphores.acquire.mutate({ name: "s", agentId: "a", limit: 5, idempotencyKey: "k" })).acquired).toBe(true);
    expect((await api.semaphores.acquire.mutate({ name: "s", agentId: "a", limit: 2 })).acquired).toBe(false);
  });

  it("over REST: a name with slashes is one %2F-encoded segment; list pages by name and token, by holder and by prefix, within the answer's budget", async () => {
    t = await startTestServer({ maxResponseBytes: 64 * 1024 });
    const acquired = await rest(t.url, "POST", `/semaphores/${encodeURIComponent("gpu/a100")}/acquire`, { agentId: "a", limit: 4, leaseMs: 30_000 });
    expect(acquired).toMatchObject({ status: 200, body: { acquired: true, permit: { name: "gpu/a100", holder: "a", fencingToken: 1, limit: 4, leaseMs: 30_000 }, semaphore: { held: 1, limit: 4 } } });
    expect(typeof acquired.body.permit.expiresAt).toBe("string");
    expect(await rest(t.url, "GET", `/semaphores/${encodeURIComponent("gpu/a100")}`)).toMatchObject({ status: 200, body: { held: 1, permits: [{ holder: "a", fencingToken: 1 }] } });
    await t.api.semaphores.acquire.mutate({ name: "gpu/a100", agentId: "b", limit: 4 });
    await t.api.semaphores.acquire.mutate({ name: "gpu/h100", agentId: "a", limit: 1 });
    await t.api.semaphores.acquire.mutate({ name: "browsers", agentId: "b", limit: 8 });
    const names = (body: { items: Array<{ name: string; fencingToken: number }> }) => body.items.map((permit) => `${permit.name}#${permit.fencingToken}`);
    expect(names((await rest(t.url, "GET", "/semaphores?prefix=gpu/")).body)).toEqual(["gpu/a100#1", "gpu/a100#2", "gpu/h100#3"]);
    expect(names(await t.api.semaphores.list.query({ holder: "b" }))).toEqual(["browsers#4", "gpu/a100#2"]);
    const first = await t.api.semaphores.list.query({ limit: 2 });
    expect(names(first)).toEqual(["browsers#4", "gpu/a100#1"]);
    expect(first.nextCursor).toBe("1:gpu/a100");
    expect(await t.api.semaphores.list.query({ cursor: first.nextCursor! })).toMatchObject({ nextCursor: null, items: [{ fencingToken: 2 }, { fencingToken: 3 }] });

    // Long names and holders fill the budget: pages are cut short with a cursor, and together list every permit.
    const long = `long/${"\u00e9".repeat(480)}`;
    for (let i = 0; i < 120; i++) await t.api.semaphores.acquire.mutate({ name: long, agentId: `holder-${String(i).padStart(3, "0")}-${"\u00e9".repeat(150)}`, limit: 200 });
    const seen: number[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 40; page++) {
      const response = await fetch(`${t.url}/semaphores?prefix=long/&limit=1000${cursor === undefined ? "" : `&cursor=${encodeURIComponent(cursor)}`}`);
      const text = await response.text();
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(64 * 1024);
      const body = JSON.parse(text) as { items: Array<{ fencingToken: number }>; nextCursor: string | null };
      seen.push(...body.items.map((permit) => permit.fencingToken));
      if (body.nextCursor === null) break;
      expect(body.items.length).toBeLessThan(120);
      cursor = body.nextCursor;
    }
    expect(seen).toEqual(Array.from({ length: 120 }, (_, i) => i + 5));
    // get answers as many permits as fit, and says how many it left out.
    const got = await fetch(`${t.url}/semaphores/${encodeURIComponent(long)}`);
    const gotText = await got.text();
    expect(Buffer.byteLength(gotText)).toBeLessThanOrEqual(64 * 1024);
    const semaphore = JSON.parse(gotText) as { held: number; permits: unknown[]; permitsOmitted: number };
    expect(semaphore.held).toBe(120);
    expect(semaphore.permits.length).toBeGreaterThan(0);
    expect(semaphore.permits.length + semaphore.permitsOmitted).toBe(120);
    expect(semaphore.permitsOmitted).toBeGreaterThan(0);
    const trpc = await fetch(`${t.url}/trpc/semaphores.get?input=${encodeURIComponent(JSON.stringify({ json: { name: long } }))}`);
    expect(trpc.status).toBe(200);
    expect(Buffer.byteLength(await trpc.text())).toBeLessThanOrEqual(64 * 1024);
  });

  it("deregistering an agent releases its permits with it; retention keeps an agent whose permit's lease runs on", async () => {
    t = await startTestServer({ agentRetentionMs: 60_000, agentStartupGraceMs: 0 });
    const { api } = t;
    await api.semaphores.acquire.mutate({ name: "s1", agentId: "a", limit: 2 });
    await api.semaphores.acquire.mutate({ name: "s1", agentId: "a", limit: 2 });
    await api.semaphores.acquire.mutate({ name: "s2", agentId: "b", limit: 2, leaseMs: 30 * 60_000 });
    // The first acquire registered the agent, so that this finds its permits.
    expect(await api.agents.get.query({ agentId: "a" })).toMatchObject({ agentId: "a", health: "healthy" });
    const head = (await api.events.head.query()).head;
    await api.agents.deregister.mutate({ agentId: "a" });
    expect((await api.semaphores.list.query({})).items.map((permit) => permit.holder)).toEqual(["b"]);
    expect((await api.events.list.query({ afterSeq: head, limit: 10 })).map((event) => [event.type, event.payload])).toEqual([
      ["semaphore.released", { name: "s1", agentId: "a", fencingToken: 1, heldMs: expect.any(Number), reason: "deregistered" }],
      ["semaphore.released", { name: "s1", agentId: "a", fencingToken: 2, heldMs: expect.any(Number), reason: "deregistered" }],
      ["agent.deregistered", { agentId: "a", releasedTasks: 0, releasedPermits: 2 }],
    ]);
    // b is seen offline, its last sign of life 5 minutes ago: its permit keeps it.
    withDatabase(t, (db) => db.prepare(`UPDATE agents SET health = 'offline', lastHeartbeatAt = ?`).run(Date.now() - 5 * 60_000));
    await t.server.services.retention.prune();
    expect((await api.agents.list.query({})).map((agent) => agent.agentId)).toEqual(["b"]);
  });

  it("a permit whose answer never reached its caller is given back; one an acquire sent again handed out stays", async () => {
    t = await startTestServer({ busyTimeoutMs: 20_000 });
    const port = t.server.port;
    const send = (body: object) => {
      const text = JSON.stringify(body);
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write(`POST /semaphores/s/acquire HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
      return socket;
    };
    // The agent holds a permit under "kept" already: the same acquire sent again whose answer is lost leaves it held.
    await t.api.semaphores.acquire.mutate({ name: "s", agentId: "gone", limit: 5, idempotencyKey: "kept", leaseMs: 60_000 });
    const db = new BetterSqlite3(t.dbPath, { timeout: 5000 });
    db.prepare("BEGIN IMMEDIATE").run();
    try {
      const sockets = [send({ agentId: "gone", limit: 5 }), send({ agentId: "gone", limit: 5, idempotencyKey: "kept" })];
      await vi.waitFor(() => expect(t!.server.services.db.inFlight.writes).toBe(2), { timeout: 10_000, interval: 10 });
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      db.prepare("ROLLBACK").run();
      db.close();
    }
    await vi.waitFor(
      async () =>
        expect((await semaphoreEvents(t!)).map(([type, payload]) => [type, payload.fencingToken, payload.reason])).toEqual([
          ["semaphore.acquired", 1, undefined],
          ["semaphore.acquired", 2, undefined],
          ["semaphore.released", 2, "answer not delivered"],
        ]),
      { timeout: 20_000, interval: 20 },
    );
    await vi.waitFor(() => expect(withDatabase(t!, (file) => file.prepare(`SELECT answers FROM semaphore_permits WHERE fencingToken = 1`).pluck().get())).toBe(1), { timeout: 20_000, interval: 20 });
    expect((await t.api.semaphores.get.query({ name: "s" })).permits).toEqual([expect.objectContaining({ holder: "gone", fencingToken: 1 })]);
  });
});

describe("semaphores from the command line", () => {
  it("lists the permits held, shows one semaphore, and force-releases one permit or all", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const stuck = await t.api.semaphores.acquire.mutate({ name: "gpu", agentId: "stuck", limit: 2, leaseMs: 600_000 });
    await t.api.semaphores.acquire.mutate({ name: "gpu", agentId: "trainer", limit: 2 });
    await t.api.semaphores.acquire.mutate({ name: "browsers", agentId: "crawler", limit: 8 });
    const listed = await runOperator({ args: ["semaphores"], env });
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n")[0]).toMatch(/^SEMAPHORE\s+HOLDER\s+FENCING TOKEN\s+LIMIT\s+ACQUIRED\s+EXPIRES$/);
    expect(listed.stdout.split("\n").slice(1, 4).map((line) => line.split(/\s+/).slice(0, 4))).toEqual([
      ["browsers", "crawler", "3", "8"],
      ["gpu", "stuck", "1", "2"],
      ["gpu", "trainer", "2", "2"],
    ]);
    const mine = await runOperator({ args: ["semaphores", "--holder", "stuck", "--json"], env });
    expect(JSON.parse(mine.stdout)).toEqual([expect.objectContaining({ name: "gpu", holder: "stuck", fencingToken: 1, limit: 2 })]);
    const got = await runOperator({ args: ["semaphores", "get", "gpu"], env });
    expect(got.stdout.split("\n")[0]).toBe("semaphore gpu: 2 of 2 held");
    expect(got.stdout).toContain(stuck.permit!.expiresAt.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"));
    expect(await runOperator({ args: ["semaphores", "force-release", "gpu", "--fencing-token", "1", "--reason", "hung"], env })).toMatchObject({
      code: 0,
      stdout: "semaphore gpu: 1 permit released; 1 held now\n",
    });
    expect(await runOperator({ args: ["semaphores", "force-release", "gpu", "--fencing-token", "1"], env })).toMatchObject({ code: 0, stdout: "semaphore gpu: no permit held under fencing token 1: nothing changed\n" });
    expect(await runOperator({ args: ["semaphores", "force-release", "gpu"], env })).toMatchObject({ code: 0, stdout: "semaphore gpu: 1 permit released; 0 held now\n" });
    expect(await runOperator({ args: ["semaphores", "get", "gpu"], env })).toMatchObject({ code: 0, stdout: "semaphore gpu: no permit held\n" });
    expect((await semaphoreEvents(t)).filter(([type]) => type === "semaphore.released").map(([, payload]) => payload)).toEqual([
      { name: "gpu", agentId: "stuck", fencingToken: 1, heldMs: expect.any(Number), forced: true, releasedBy: null, reason: "hung" },
      { name: "gpu", agentId: "trainer", fencingToken: 2, heldMs: expect.any(Number), forced: true, releasedBy: null },
    ]);
    expect(await runOperator({ args: ["semaphores", "get"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("semaphores get needs a NAME") });
    expect(await runOperator({ args: ["semaphores", "force-release", "gpu", "--fencing-token", "x"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("--fencing-token must be a whole number") });
    // Tokens start at 1: the command's own check says so (its usage, nothing sent), not "0 or more" and then the server's 400.
    for (const token of ["0", "-1"]) {
      expect(await runOperator({ args: ["semaphores", "force-release", "gpu", "--fencing-token", token], env })).toMatchObject({ code: 2, stderr: expect.stringContaining(`--fencing-token must be 1 or more (got ${token})`) });
    }
    expect(await runOperator({ args: ["semaphores", "get", "gpu", "--holder", "x"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("does not take --holder") });
  });
});

describe("semaphores with credentials", () => {
  it("an agent acquires, renews and releases its own permits only; a read credential looks; an operator force-releases one or all", async () => {
    secure = await startSecureServer();
    const a = secure.as(await secure.issue("agent", "a"));
    const b = secure.as(await secure.issue("agent", "b"));
    const reader = secure.as(await secure.issue("read"));
    const { permit } = await a.semaphores.acquire.mutate({ name: "farm", agentId: "a", limit: 3 });
    await b.semaphores.acquire.mutate({ name: "farm", agentId: "b", limit: 3 });
    await expect(b.semaphores.acquire.mutate({ name: "farm", agentId: "a", limit: 3 })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    await expect(b.semaphores.release.mutate({ name: "farm", agentId: "a", fencingToken: permit!.fencingToken })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    await expect(reader.semaphores.acquire.mutate({ name: "farm", agentId: "r", limit: 3 })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    expect((await reader.semaphores.get.query({ name: "farm" })).permits.map((p) => p.holder)).toEqual(["a", "b"]);
    expect((await reader.semaphores.list.query({})).items).toHaveLength(2);
    await expect(a.semaphores.forceRelease.mutate({ name: "farm" })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    await expect(b.events.publish.mutate({ type: "semaphore.released", source: "b", payload: { name: "farm" } })).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    expect((await http(secure.url, "GET", "/semaphores/farm")).status).toBe(401);

    const head = (await secure.admin.events.head.query()).head;
    const one = await http(secure.url, "POST", "/semaphores/farm/force-release", { token: ADMIN_SECRET, body: { fencingToken: permit!.fencingToken, reason: "agent a is stuck" } });
    expect(one).toMatchObject({ status: 200, body: { released: 1, semaphore: { name: "farm", held: 1 } } });
    await expect(a.semaphores.renew.mutate({ name: "farm", agentId: "a", fencingToken: permit!.fencingToken })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    expect(await secure.admin.semaphores.forceRelease.mutate({ name: "farm" })).toEqual({ released: 1, semaphore: { name: "farm", held: 0, limit: null, nextExpiresAt: null } });
    expect((await secure.admin.semaphores.forceRelease.mutate({ name: "farm" })).released).toBe(0);
    const events = await secure.admin.events.list.query({ afterSeq: head, limit: 10 });
    expect(events.map((event) => [event.type, event.payload])).toEqual([
      ["semaphore.released", { name: "farm", agentId: "a", fencingToken: permit!.fencingToken, heldMs: expect.any(Number), forced: true, releasedBy: "config:adminToken", reason: "agent a is stuck" }],
      ["semaphore.released", { name: "farm", agentId: "b", fencingToken: permit!.fencingToken + 1, heldMs: expect.any(Number), forced: true, releasedBy: "config:adminToken" }],
    ]);
  });
});
