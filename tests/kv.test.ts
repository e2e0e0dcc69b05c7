// Shared state (kv.set / get / delete / list, PUT|GET|DELETE /kv/{key}, GET /kv): keys agents
// read and write, each a JSON value with a version drawn from one counter for every key. A write
// may be conditional on the version it read (compare-and-set), a key may expire, and a read may
// wait for the key's next change (a watch).
import { afterEach, describe, expect, it, vi } from "vitest";
import { TRPCClientError } from "@trpc/client";
import { refusal } from "./helpers/refusal.js";
import { createCoordinationClient } from "../client/index.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { LONG_WAIT_MS, promptly, WAKE_ONLY } from "./helpers/task-waits.js";
import { makeTempDir, rest, startTestServer, startTestServerWithout, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let other: TestServer | undefined;
let secure: SecureServer | undefined;
afterEach(async () => {
  await other?.stop();
  await t?.stop({ removeFiles: true });
  await secure?.stop({ removeFiles: true });
  t = other = secure = undefined;
});

/** The kv events of the log after `afterSeq`, as [type, payload]. */
async function kvEvents(server: TestServer, afterSeq = 0): Promise<Array<[string, Record<string, unknown>]>> {
  const events = await server.api.events.list.query({ afterSeq, types: ["kv.*"], limit: 1000 });
  return events.map((event) => [event.type, event.payload as Record<string, unknown>]);
}

/** Resolves once the server at `url` has `count` key watches parked. */
const watching = (url: string, count: number, token?: string) => vi.waitFor(async () => expect(await parkedLongPolls(url, "watch", token)).toBe(count), { timeout: 15_000, interval: 20 });

describe("shared state", () => {
  it("a set writes a value with a new version, a get reads it, a delete removes it; each with its event", async () => {
    t = await startTestServer();
    const { api } = t;
    expect(await api.kv.get.query({ key: "plans/repo-a" })).toEqual({ key: "plans/repo-a", entry: null });
    const before = Date.now();
    const first = await api.kv.set.mutate({ key: "plans/repo-a", value: { steps: ["read", "write"] }, agentId: "planner" });
    expect(first).toEqual({ key: "plans/repo-a", value: { steps: ["read", "write"] }, version: 1, createdAt: expect.any(Date), updatedAt: first.createdAt, updatedBy: "planner", expiresAt: null, ephemeralOwner: null });
    expect(first.createdAt.getTime()).toBeGreaterThanOrEqual(before);
    // Another key takes the next version: one counter for every key.
    const other = await api.kv.set.mutate({ key: "status", value: "green" });
    expect(other).toMatchObject({ version: 2, updatedBy: null });
    const second = await api.kv.set.mutate({ key: "plans/repo-a", value: { steps: ["read"] }, agentId: "editor" });
    expect(second).toEqual({ key: "plans/repo-a", value: { steps: ["read"] }, version: 3, createdAt: first.createdAt, updatedAt: expect.any(Date), updatedBy: "editor", expiresAt: null, ephemeralOwner: null });
    expect(await api.kv.get.query({ key: "plans/repo-a" })).toEqual({ key: "plans/repo-a", entry: second });
    // JSON of every kind is a value, null included.
    for (const value of [null, 0, "", [], false, { a: { b: [1, 2.5, "x"] } }]) {
      expect((await api.kv.set.mutate({ key: "any", value })).value).toEqual(value);
      expect((await api.kv.get.query({ key: "any" })).entry?.value).toEqual(value);
    }

    expect(await api.kv.delete.mutate({ key: "plans/repo-a", agentId: "editor" })).toEqual({ deleted: true, entry: second });
    expect(await api.kv.get.query({ key: "plans/repo-a" })).toEqual({ key: "plans/repo-a", entry: null });
    // Sent again (its answer lost): nothing more.
    expect(await api.kv.delete.mutate({ key: "plans/repo-a" })).toEqual({ deleted: false, entry: null });
    // Set again, it is a new key: a new createdAt, and a version larger than any before.
    const again = await api.kv.set.mutate({ key: "plans/repo-a", value: 1 });
    expect(again.version).toBe(10);
    expect(again.createdAt.getTime()).toBeGreaterThanOrEqual(second.updatedAt.getTime());

    const events = await kvEvents(t);
    expect(events.slice(0, 3)).toEqual([
      ["kv.set", { key: "plans/repo-a", version: 1, previousVersion: 0, updatedBy: "planner" }],
      ["kv.set", { key: "status", version: 2, previousVersion: 0, updatedBy: null }],
      ["kv.set", { key: "plans/repo-a", version: 3, previousVersion: 1, updatedBy: "editor" }],
    ]);
    expect(events.slice(9)).toEqual([
      ["kv.deleted", { key: "plans/repo-a", version: 3, deletedBy: "editor" }],
      ["kv.set", { key: "plans/repo-a", version: 10, previousVersion: 0, updatedBy: null }],
    ]);
  });

  it("compare-and-set: ifVersion 0 creates only, a version writes only at it, and a conflict names the key as it is and writes nothing", async () => {
    t = await startTestServer();
    const { api } = t;
    const created = await api.kv.set.mutate({ key: "leader", value: "agent-a", ifVersion: 0, agentId: "agent-a" });
    expect(created.version).toBe(1);
    const taken = await refusal(api.kv.set.mutate({ key: "leader", value: "agent-b", ifVersion: 0, agentId: "agent-b" }));
    expect(taken).toEqual({
      code: "VERSION_CONFLICT",
      message: 'key "leader": ifVersion 0 asks that it be absent, and its version is 1: read it again and decide anew',
      details: { key: "leader", ifVersion: 0, entry: created },
    });
    const stale = await refusal(api.kv.set.mutate({ key: "leader", value: "agent-b", ifVersion: 7 }));
    expect(stale.code).toBe("VERSION_CONFLICT");
    expect(stale.message).toBe('key "leader": ifVersion 7 does not match, and its version is 1: read it again and decide anew');
    const moved = await api.kv.set.mutate({ key: "leader", value: "agent-b", ifVersion: 1, agentId: "agent-b" });
    expect(moved).toMatchObject({ value: "agent-b", version: 2, updatedBy: "agent-b" });

    // A conditional delete: only at its version; absent is a conflict too (entry null).
    expect((await refusal(api.kv.delete.mutate({ key: "leader", ifVersion: 1 }))).details).toMatchObject({ key: "leader", ifVersion: 1, entry: { version: 2 } });
    expect(await api.kv.delete.mutate({ key: "leader", ifVersion: 2 })).toMatchObject({ deleted: true, entry: { version: 2 } });
    expect((await refusal(api.kv.delete.mutate({ key: "leader", ifVersion: 2 }))).details).toEqual({ key: "leader", ifVersion: 2, entry: null });
    // Absent again: ifVersion 0 creates it; a version is a conflict.
    expect((await refusal(api.kv.set.mutate({ key: "leader", value: "x", ifVersion: 2 }))).message).toBe('key "leader": ifVersion 2 does not match, and it is absent: read it again and decide anew');
    expect((await api.kv.set.mutate({ key: "leader", value: "agent-c", ifVersion: 0 })).version).toBe(3);

    // Refusals wrote nothing: the events are the three writes and the delete.
    expect((await kvEvents(t)).map(([type, payload]) => `${type} ${payload.version}`)).toEqual(["kv.set 1", "kv.set 2", "kv.deleted 2", "kv.set 3"]);
  });

  it("a set sent again with its idempotencyKey (its answer lost) gets the write it made while the key holds it; another value or ifVersion under it is a 409", async () => {
    t = await startTestServer();
    const { api } = t;
    const base = await api.kv.set.mutate({ key: "counter", value: 1, agentId: "a" });
    const request = { key: "counter", value: 2, ifVersion: base.version, agentId: "a", idempotencyKey: "write-1" };
    const written = await api.kv.set.mutate(request);
    expect(written.version).toBe(base.version + 1);
    // The same write again: its own, answered as it is, no second write.
    expect(await api.kv.set.mutate(request)).toEqual(written);
    // Without ifVersion too: an unconditional set sent again is not made twice.
    const plain = { key: "status", value: "green", agentId: "a", idempotencyKey: "write-2" };
    const status = await api.kv.set.mutate(plain);
    expect(await api.kv.set.mutate(plain)).toEqual(status);
    // The key under another value or ifVersion: refused, naming what differs.
    const mismatch = await refusal(api.kv.set.mutate({ ...request, value: 3, ifVersion: 0 }));
    expect(mismatch).toEqual({
      code: "IDEMPOTENCY_MISMATCH",
      message: 'key "counter": idempotencyKey "write-1" wrote version 2 with another value and ifVersion: give each write a key of its own',
      details: { key: "counter", version: 2, differs: ["value", "ifVersion"] },
    });
    // Under another expiry too: a presence renewed by a resend would believe in an hour it has not.
    const presence = await api.kv.set.mutate({ key: "presence", value: 1, ttlMs: 60_000, idempotencyKey: "write-3" });
    expect(await api.kv.set.mutate({ key: "presence", value: 1, ttlMs: 60_000, idempotencyKey: "write-3" })).toEqual(presence);
    expect((await refusal(api.kv.set.mutate({ key: "presence", value: 1, ttlMs: 3_600_000, idempotencyKey: "write-3" }))).details).toEqual({ key: "presence", version: presence.version, differs: ["ttlMs"] });
    expect((await refusal(api.kv.set.mutate({ key: "presence", value: 1, idempotencyKey: "write-3" }))).details).toEqual({ key: "presence", version: presence.version, differs: ["ttlMs"] });
    // Another writer's same key is not this write: a conflict, as any stale set.
    expect((await refusal(api.kv.set.mutate({ ...request, agentId: "b" }))).code).toBe("VERSION_CONFLICT");
    // Without its key, the same content is not taken for it: a conflict.
    const { idempotencyKey: _, ...unkeyed } = request;
    expect((await refusal(api.kv.set.mutate(unkeyed))).code).toBe("VERSION_CONFLICT");
    expect((await kvEvents(t)).length).toBe(4);
    // Once another write came after it, the resend is a stale set: a conflict.
    await api.kv.set.mutate({ key: "counter", value: 5, agentId: "c" });
    expect((await refusal(api.kv.set.mutate(request))).code).toBe("VERSION_CONFLICT");
  });

  it("workers of one agent computing one value from one version do not pass for each other: one write holds, the others conflict", async () => {
    t = await startTestServer();
    const { api } = t;
    const base = await api.kv.set.mutate({ key: "count", value: 5, agentId: "worker" });
    const answers = await Promise.allSettled(Array.from({ length: 6 }, () => api.kv.set.mutate({ key: "count", value: 6, ifVersion: base.version, agentId: "worker" })));
    expect(answers.filter((answer) => answer.status === "fulfilled").length).toBe(1);
    const refused = answers.flatMap((answer) => (answer.status === "rejected" ? [(answer.reason as { data?: { code?: string } }).data?.code] : []));
    expect(refused).toEqual(Array(5).fill("VERSION_CONFLICT"));
    expect((await kvEvents(t)).length).toBe(2);
  });

  it("agents incrementing one counter by compare-and-set through two server processes on one file lose no increment", async () => {
    const dir = makeTempDir();
    t = await startTestServer({}, dir);
    other = await startTestServer({}, dir);
    const servers = [t, other];
    const increment = async (agent: number, times: number) => {
      const api = servers[agent % 2]!.api;
      for (let done = 0; done < times; ) {
        const { entry } = await api.kv.get.query({ key: "count" });
        try {
          // Two workers of each agent: one agent's writes must not pass for each other.
          await api.kv.set.mutate({ key: "count", value: ((entry?.value as number | undefined) ?? 0) + 1, ifVersion: entry?.version ?? 0, agentId: `agent-${agent % 4}` });
          done++;
        } catch (error) {
          // Another agent wrote since this one read: read again.
          if (!(error instanceof TRPCClientError) || error.data?.code !== "VERSION_CONFLICT") throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, agent) => increment(agent, 10)));
    const { entry } = await t.api.kv.get.query({ key: "count" });
    expect(entry?.value).toBe(80);
    const sets = await kvEvents(t);
    expect(sets.length).toBe(80);
    // Each write replaced the one before it: one chain of versions, none skipped, none twice.
    for (let i = 1; i < sets.length; i++) expect(sets[i]![1].previousVersion).toBe(sets[i - 1]![1].version);
  });

  it("a key with a ttlMs reads as absent once it expired, and the expiry job deletes it with kv.expired", async () => {
    t = await startTestServerWithout("kvExpiry");
    const { api } = t;
    const short = await api.kv.set.mutate({ key: "presence/agent-a", value: { at: "here" }, ttlMs: 300 });
    expect(short.expiresAt!.getTime() - short.updatedAt.getTime()).toBe(300);
    const kept = await api.kv.set.mutate({ key: "presence/agent-b", value: 1, ttlMs: 3_600_000 });
    await vi.waitFor(async () => expect((await api.kv.get.query({ key: "presence/agent-a" })).entry).toBeNull(), { timeout: 15_000, interval: 50 });
    expect((await api.kv.list.query({ prefix: "presence/" })).items).toEqual([kept]);
    // Absent: ifVersion 0 creates it anew, and the write that met it said it expired.
    const anew = await api.kv.set.mutate({ key: "presence/agent-a", value: { at: "back" }, ifVersion: 0 });
    expect(anew.createdAt.getTime()).toBeGreaterThan(short.createdAt.getTime());
    // A set without ttlMs keeps no expiry.
    expect(anew.expiresAt).toBeNull();
    await api.kv.set.mutate({ key: "gone", value: 1, ttlMs: 1 });
    await vi.waitFor(async () => expect((await api.kv.get.query({ key: "gone" })).entry).toBeNull(), { timeout: 15_000, interval: 20 });
    expect(await t.server.services.kv.expire()).toBe(1);
    expect(await t.server.services.kv.expire()).toBe(0);
    const events = await kvEvents(t);
    expect(events.filter(([type]) => type === "kv.expired")).toEqual([
      ["kv.expired", { key: "presence/agent-a", version: short.version, expiredAt: short.expiresAt!.toISOString() }],
      ["kv.expired", { key: "gone", version: anew.version + 1, expiredAt: expect.any(String) }],
    ]);
    expect(events[0]).toEqual(["kv.set", { key: "presence/agent-a", version: short.version, previousVersion: 0, updatedBy: null, expiresAt: short.expiresAt!.toISOString() }]);
    expect(withDatabase(t, (db) => db.prepare("SELECT key FROM kv ORDER BY key").pluck().all())).toEqual(["presence/agent-a", "presence/agent-b"]);
    await api.kv.delete.mutate({ key: "presence/agent-b" });
    // This process's writes, by what they did.
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const writes = (kind: string) => Number(new RegExp(`^coordination_kv_writes_total\\{kind="${kind}"\\} (\\d+)$`, "m").exec(metrics)?.[1]);
    expect([writes("set"), writes("deleted"), writes("expired")]).toEqual([4, 1, 2]);
  });

  it("a watch (afterVersion) parks until the key's version moves, woken by a set, a delete, a creation, and an expiry", async () => {
    t = await startTestServer(WAKE_ONLY);
    const { api } = t;
    const v1 = await api.kv.set.mutate({ key: "config", value: { model: "small" } });
    // A version other than the key's answers at once.
    expect((await promptly(api.kv.get.query({ key: "config", afterVersion: 0, waitMs: LONG_WAIT_MS }))).entry).toEqual(v1);

    const changed = api.kv.get.query({ key: "config", afterVersion: v1.version, waitMs: LONG_WAIT_MS });
    await watching(t.url, 1);
    const v2 = await api.kv.set.mutate({ key: "config", value: { model: "large" } });
    expect(await promptly(changed)).toEqual({ key: "config", entry: v2 });

    const deleted = api.kv.get.query({ key: "config", afterVersion: v2.version, waitMs: LONG_WAIT_MS });
    await watching(t.url, 1);
    await api.kv.delete.mutate({ key: "config" });
    expect(await promptly(deleted)).toEqual({ key: "config", entry: null });

    // afterVersion 0 on an absent key: until it exists.
    const created = api.kv.get.query({ key: "config", afterVersion: 0, waitMs: LONG_WAIT_MS });
    await watching(t.url, 1);
    // A write of another key wakes nothing.
    await api.kv.set.mutate({ key: "config2", value: 1 });
    const v3 = await api.kv.set.mutate({ key: "config", value: { model: "medium" } });
    expect(await promptly(created)).toEqual({ key: "config", entry: v3 });

    // An expiry ends a watch without any event: at the key's expiresAt (a watch that starts after
    // it, on a loaded machine, finds the key absent and answers at once all the same).
    const v4 = await api.kv.set.mutate({ key: "config", value: { model: "medium" }, ttlMs: 1_000 });
    expect(await promptly(api.kv.get.query({ key: "config", afterVersion: v4.version, waitMs: LONG_WAIT_MS }))).toEqual({ key: "config", entry: null });
    await watching(t.url, 0);
  });

  it("the typed client sends a watch on a request of its own, and gives one that names no waitMs the server's maxWaitMs, past its callTimeoutMs", async () => {
    t = await startTestServer(WAKE_ONLY);
    const client = createCoordinationClient({ url: t.url, callTimeoutMs: 1_000 });
    try {
      const v1 = await client.api.kv.set.mutate({ key: "k", value: 1 });
      let answered = false;
      const watch = client.api.kv.get.query({ key: "k", afterVersion: v1.version }).finally(() => (answered = true));
      // Sent in the same tick: batched with the watch, it would wait for the watch.
      expect((await client.api.kv.get.query({ key: "k" })).entry).toEqual(v1);
      await watching(t.url, 1);
      // Past callTimeoutMs, the watch is still waiting on the server, not failed by the client.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(answered).toBe(false);
      const v2 = await t.api.kv.set.mutate({ key: "k", value: 2 });
      expect(await promptly(watch)).toEqual({ key: "k", entry: v2 });
    } finally {
      await client.close();
    }
  });

  it("a watch whose waitMs runs out answers the key as it is; one cut short by shutdown is a 503", async () => {
    t = await startTestServer(WAKE_ONLY);
    const { api } = t;
    const v1 = await api.kv.set.mutate({ key: "k", value: 1 });
    expect(await api.kv.get.query({ key: "k", afterVersion: v1.version, waitMs: 200 })).toEqual({ key: "k", entry: v1 });
    expect(await api.kv.get.query({ key: "absent", afterVersion: 0, waitMs: 200 })).toEqual({ key: "absent", entry: null });
    const cut = rest(t.url, "GET", `/kv/k?afterVersion=${v1.version}&waitMs=${LONG_WAIT_MS}`);
    await watching(t.url, 1);
    await t.server.stop();
    const answer = await cut;
    expect(answer.status).toBe(503);
    expect(answer.body.code).toBe("SHUTTING_DOWN");
  });

  it("over REST: PUT, GET, DELETE /kv/{key} (a / written %2F) and GET /kv; bad input is a 400 naming the field", async () => {
    t = await startTestServer();
    const put = await rest(t.url, "PUT", "/kv/plans%2Frepo-a", { value: { step: 1 }, ifVersion: 0, ttlMs: 60_000 });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ key: "plans/repo-a", value: { step: 1 }, version: 1, createdAt: expect.any(String), updatedAt: put.body.createdAt, updatedBy: null, expiresAt: expect.any(String), ephemeralOwner: null });
    expect(Date.parse(put.body.expiresAt) - Date.parse(put.body.updatedAt)).toBe(60_000);
    const conflict = await rest(t.url, "PUT", "/kv/plans%2Frepo-a", { value: { step: 2 }, ifVersion: 0 });
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ code: "VERSION_CONFLICT", details: { key: "plans/repo-a", ifVersion: 0, entry: put.body } });
    expect((await rest(t.url, "GET", "/kv/plans%2Frepo-a")).body).toEqual({ key: "plans/repo-a", entry: put.body });
    expect((await rest(t.url, "GET", "/kv/plans%2Frepo-a?afterVersion=1&waitMs=0")).body).toEqual({ key: "plans/repo-a", entry: put.body });
    expect((await rest(t.url, "GET", "/kv?prefix=plans%2F")).body).toEqual({ items: [put.body], nextCursor: null });
    // A key's / left unwritten: no such route, and the answer says how to write it.
    expect(await rest(t.url, "GET", "/kv/plans/repo-a")).toEqual({
      status: 404,
      body: { code: "ROUTE_NOT_FOUND", message: 'no route GET /kv/plans/repo-a: a name or key holding "/" is one path segment, with each / written %2F (GET /kv/plans%2Frepo-a)' },
    });
    expect((await rest(t.url, "POST", "/locks/repo/src/a.ts/acquire", { agentId: "a" })).body.message).toContain("(POST /locks/repo%2Fsrc%2Fa.ts/acquire)");
    const deleted = await rest(t.url, "DELETE", "/kv/plans%2Frepo-a?ifVersion=1");
    expect(deleted).toEqual({ status: 200, body: { deleted: true, entry: put.body } });

    const bad: Array<[string, string, unknown, string]> = [
      ["PUT", "/kv/k", { value: "x".repeat(65_535) }, "value: must take at most 65536 bytes as JSON (it takes 65537)"],
      ["PUT", "/kv/%20%20", { value: 1 }, "key: must not be blank"],
      ["PUT", "/kv/k", {}, "value: is required"],
      ["PUT", "/kv/k", { value: 1, ifVersion: -1 }, "ifVersion: must be at least 0"],
      ["PUT", "/kv/k", { value: 1, ttlMs: 0 }, "ttlMs: must be at least 1"],
      ["PUT", "/kv/k", { value: 1, colour: "red" }, 'unknown field "colour"'],
      ["PUT", "/kv/k", { value: JSON.parse("[".repeat(65) + "]".repeat(65)) }, "value:"],
      ["DELETE", "/kv/k?ifVersion=0", undefined, "ifVersion: must be at least 1"],
      ["GET", `/kv/${"k".repeat(501)}`, undefined, "key: must be at most 500 characters"],
      ["GET", "/kv?limit=1001", undefined, "limit: must be at most 1000"],
    ];
    for (const [method, path, body, message] of bad) {
      const answer = await rest(t.url, method, path, body);
      expect({ path, status: answer.status, code: answer.body.code }).toEqual({ path, status: 400, code: "INVALID_INPUT" });
      expect(answer.body.message).toContain(message);
    }
    // A value of exactly the limit is taken.
    expect((await rest(t.url, "PUT", "/kv/k", { value: "x".repeat(65_534) })).status).toBe(200);
  });

  it("over tRPC, a value sent as undefined (superjson carries it; JSON cannot) is a 400 naming value, nothing written, never a 500", async () => {
    t = await startTestServer();
    // The typed client's types ask for JSON; a caller's own code (a map lookup missed) passes undefined all the same.
    const refused = await refusal(t.api.kv.set.mutate({ key: "k", value: undefined as never }));
    expect(refused).toMatchObject({ code: "INVALID_INPUT", message: "value: is required" });
    expect((await t.api.kv.get.query({ key: "k" })).entry).toBeNull();
    // Fields that may be left out still take undefined as left out.
    expect((await t.api.kv.set.mutate({ key: "k", value: { a: 1 }, ttlMs: undefined, idempotencyKey: undefined })).value).toEqual({ a: 1 });
    const task = await t.api.tasks.enqueue.mutate({ payload: undefined });
    expect(task.payload).toEqual({});
  });

  it("a list pages by key within a prefix (byte order, no LIKE), by limit and by the answer's byte budget", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    const { api } = t;
    const keys = ["a", "a%", "a/", "a/1", "a/2", "a/3", "a/\u{10FFFF}", "a0", "a_b", "b/1"];
    for (const key of keys) await api.kv.set.mutate({ key, value: key });
    const keysOf = (page: { items: Array<{ key: string }> }) => page.items.map((item) => item.key);
    expect(keysOf(await api.kv.list.query({}))).toEqual(keys);
    expect(keysOf(await api.kv.list.query({ prefix: "a/" }))).toEqual(["a/", "a/1", "a/2", "a/3", "a/\u{10FFFF}"]);
    expect(keysOf(await api.kv.list.query({ prefix: "a%" }))).toEqual(["a%"]);
    expect(keysOf(await api.kv.list.query({ prefix: "A" }))).toEqual([]);
    const first = await api.kv.list.query({ prefix: "a/", limit: 2 });
    expect([keysOf(first), first.nextCursor]).toEqual([["a/", "a/1"], "a/1"]);
    const second = await api.kv.list.query({ prefix: "a/", limit: 2, after: first.nextCursor! });
    expect([keysOf(second), second.nextCursor]).toEqual([["a/2", "a/3"], "a/3"]);
    const last = await api.kv.list.query({ prefix: "a/", limit: 2, after: second.nextCursor! });
    expect([keysOf(last), last.nextCursor]).toEqual([["a/\u{10FFFF}"], null]);
    // An after before the prefix starts at the prefix; one past it finds nothing.
    expect(keysOf(await api.kv.list.query({ prefix: "a/", after: "a" }))).toEqual(["a/", "a/1", "a/2", "a/3", "a/\u{10FFFF}"]);
    expect(await api.kv.list.query({ prefix: "a/", after: "a0" })).toEqual({ items: [], nextCursor: null });
    // Byte order, not UTF-16's: U+FFFD sorts after U+10000 (a surrogate pair) in UTF-16, before it in UTF-8.
    await api.kv.set.mutate({ key: "u/\u{10000}", value: 1 });
    await api.kv.set.mutate({ key: "u/\uFFFD", value: 1 });
    expect(keysOf(await api.kv.list.query({ prefix: "u/" }))).toEqual(["u/\uFFFD", "u/\u{10000}"]);
    expect(keysOf(await api.kv.list.query({ prefix: "u/", after: "u/\uFFFD" }))).toEqual(["u/\u{10000}"]);
    // So an after that JavaScript sorts after the prefix may come before it: the prefix's keys still come.
    expect(keysOf(await api.kv.list.query({ prefix: "u/\u{10000}", after: "u/\uFFFD" }))).toEqual(["u/\u{10000}"]);

    // Values of 40,000 bytes: two do not fit in 64 KiB, so each page holds one, with a cursor.
    for (const key of ["big/1", "big/2", "big/3"]) await api.kv.set.mutate({ key, value: "x".repeat(40_000) });
    const pages: string[][] = [];
    let after: string | undefined;
    for (;;) {
      const page = await api.kv.list.query({ prefix: "big/", ...(after === undefined ? {} : { after }) });
      pages.push(keysOf(page));
      if (page.nextCursor === null) break;
      after = page.nextCursor;
    }
    expect(pages).toEqual([["big/1"], ["big/2"], ["big/3"]]);
  });

  it("with credentials: agents write as themselves, a read credential reads and watches but writes nothing, kv.* events are the server's", async () => {
    secure = await startSecureServer();
    const agent = secure.as(await secure.issue("agent", "agent-a"));
    const reader = secure.as(await secure.issue("read"));
    const written = await agent.kv.set.mutate({ key: "k", value: 1 });
    expect(written.updatedBy).toBe("agent-a");
    expect((await refusal(agent.kv.set.mutate({ key: "k", value: 2, agentId: "agent-b" }))).code).toBe("FORBIDDEN");
    expect((await refusal(reader.kv.set.mutate({ key: "k", value: 2 }))).code).toBe("FORBIDDEN");
    expect((await refusal(reader.kv.delete.mutate({ key: "k" }))).code).toBe("FORBIDDEN");
    expect((await reader.kv.get.query({ key: "k" })).entry).toEqual(written);
    // A watch of the read credential's: one whose wait runs out answers the key as it is.
    expect((await reader.kv.get.query({ key: "k", afterVersion: written.version, waitMs: 100 })).entry).toEqual(written);
    expect((await reader.kv.list.query({})).items).toEqual([written]);
    // An admin writes as any agent, or none.
    expect((await secure.admin.kv.set.mutate({ key: "k", value: 3, agentId: "agent-b" })).updatedBy).toBe("agent-b");
    expect((await secure.admin.kv.delete.mutate({ key: "k" })).deleted).toBe(true);
    expect((await refusal(agent.events.publish.mutate({ type: "kv.set", source: "agent-a", payload: { key: "k" } }))).code).toBe("FORBIDDEN");
    expect((await http(secure.url, "GET", "/kv/k")).status).toBe(401);
    expect((await http(secure.url, "GET", "/kv/k", { token: ADMIN_SECRET })).body).toEqual({ key: "k", entry: null });
  });
});
