// Keys tied to an agent's life (kv.set with ephemeral): presence, "I am working on this", an
// address others find an agent at. Such a key is deleted, with a kv.deleted naming why, in the
// write that sees its agent offline or deregisters it, so nobody reads a claim of a dead agent.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { updateKey } from "../client/index.js";
import { EPHEMERAL_KEYS_BATCH } from "../src/agents/agent-commands.js";
import { refusal } from "./helpers/refusal.js";
import { ADMIN_SECRET, http, startSecureServer } from "./helpers/secure-server.js";
import { LONG_WAIT_MS, promptly } from "./helpers/task-waits.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

/** Health judged in minutes, the monitor idle: its writes run in the tests, in order. */
const IDLE_MONITOR = { agentStaleMs: 30_000, agentOfflineMs: 60_000, agentStartupGraceMs: 0, agentHealthCheckMs: 60_000 };

/** Makes `agentIds`' last heartbeats two minutes old: offline to the next check. */
const backdate = (t: TestServer, ...agentIds: string[]) =>
  withDatabase(t, (db) => {
    for (const id of agentIds) db.prepare(`UPDATE agents SET lastHeartbeatAt = ? WHERE id = ?`).run(Date.now() - 120_000, id);
  });

/** One health check's write, as the monitor makes it. */
const checkHealth = (t: TestServer) => t.server.services.db.write("agents.checkHealth", { asOf: Date.now(), limit: 500 });

/** The events of `types` after `afterSeq`, as [type, payload], up to 5,000. */
async function eventsOf(t: TestServer, types: string[], afterSeq = 0): Promise<Array<[string, Record<string, unknown>]>> {
  const found: Array<[string, Record<string, unknown>]> = [];
  for (let after = afterSeq; ; ) {
    const page = await t.api.events.list.query({ afterSeq: after, types, limit: 1000 });
    for (const event of page) found.push([event.type, event.payload as Record<string, unknown>]);
    if (page.length < 1000 || found.length >= 5000) return found;
    after = page.at(-1)!.seq;
  }
}

const keysOf = async (t: TestServer, owner?: string) => (await t.api.kv.list.query({ limit: 1000, ...(owner === undefined ? {} : { ephemeralOwner: owner }) })).items.map((entry) => entry.key);

describe("keys tied to an agent's life", () => {
  it("a worker process keeps its key while it runs (runWorker heartbeats its agent); killed -9, the key goes once it is seen offline", async () => {
    // Offline after 4 s without a heartbeat, checked every 50 ms; the worker heartbeats every 200 ms:
    // a stall of the machine would have to pass 3.8 s to make the live worker look dead.
    const health = { agentStaleMs: 1000, agentOfflineMs: 4000, agentHealthCheckMs: 50, agentStartupGraceMs: 0 };
    await using t = await startTestServer(health);
    const script = fileURLToPath(new URL("./helpers/presence-worker-process.mjs", import.meta.url));
    const worker = spawn(process.execPath, [script, t.url, "w-7", "200"], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((resolve) => worker.once("exit", resolve));
    try {
      let out = "";
      worker.stdout!.on("data", (chunk) => (out += chunk));
      await vi.waitFor(() => expect(out).toBe("present\n"), { timeout: 30_000, interval: 20 });
      // Longer than agentOfflineMs: a key not kept alive by the worker's heartbeats would be gone.
      await new Promise((resolve) => setTimeout(resolve, health.agentOfflineMs * 1.5));
      expect((await t.api.kv.get.query({ key: "presence/w-7" })).entry).toMatchObject({ value: { pid: worker.pid }, ephemeralOwner: "w-7" });
      expect(await eventsOf(t, ["agent.offline", "kv.deleted"])).toEqual([]);
    } finally {
      worker.kill("SIGKILL");
      await exited;
    }
    await vi.waitFor(async () => expect((await t.api.kv.get.query({ key: "presence/w-7" })).entry).toBeNull(), { timeout: 30_000, interval: 50 });
    expect(await eventsOf(t, ["agent.offline", "kv.deleted"])).toEqual([
      ["kv.deleted", { key: "presence/w-7", version: 1, deletedBy: null, ephemeralOwner: "w-7", reason: "owner offline" }],
      ["agent.offline", expect.objectContaining({ agentId: "w-7", deletedKeys: 1 })],
    ]);
  }, 90_000);

  it("go, with their kv.deleted, in the write that sees their agent offline; other keys stay; a watch wakes", async () => {
    await using t = await startTestServer(IDLE_MONITOR);
    const { api } = t;
    await api.agents.register.mutate({ agentId: "worker-1", capabilities: [] });
    await api.agents.register.mutate({ agentId: "worker-2", capabilities: [] });
    const presence = await api.kv.set.mutate({ key: "presence/worker-1", value: { host: "10.0.0.7" }, agentId: "worker-1", ephemeral: true });
    expect(presence).toEqual({
      key: "presence/worker-1",
      value: { host: "10.0.0.7" },
      version: 1,
      createdAt: expect.any(Date),
      updatedAt: presence.createdAt,
      updatedBy: "worker-1",
      expiresAt: null,
      ephemeralOwner: "worker-1",
    });
    const working = await api.kv.set.mutate({ key: "working-on/ticket-42", value: "worker-1", agentId: "worker-1", ephemeral: true, ttlMs: 3_600_000 });
    const plain = await api.kv.set.mutate({ key: "notes/worker-1", value: "outlives it", agentId: "worker-1" });
    const others = await api.kv.set.mutate({ key: "presence/worker-2", value: {}, agentId: "worker-2", ephemeral: true });
    expect(plain.ephemeralOwner).toBeNull();
    expect(await keysOf(t, "worker-1")).toEqual(["presence/worker-1", "working-on/ticket-42"]);
    expect((await api.events.list.query({ types: ["kv.set"], afterSeq: 0 })).map((event) => event.payload)).toEqual([
      { key: "presence/worker-1", version: 1, previousVersion: 0, updatedBy: "worker-1", ephemeralOwner: "worker-1" },
      { key: "working-on/ticket-42", version: 2, previousVersion: 0, updatedBy: "worker-1", expiresAt: working.expiresAt!.toISOString(), ephemeralOwner: "worker-1" },
      { key: "notes/worker-1", version: 3, previousVersion: 0, updatedBy: "worker-1" },
      { key: "presence/worker-2", version: 4, previousVersion: 0, updatedBy: "worker-2", ephemeralOwner: "worker-2" },
    ]);

    // Someone waits for worker-1's presence to change.
    const watch = api.kv.get.query({ key: "presence/worker-1", afterVersion: 1, waitMs: LONG_WAIT_MS });
    const before = (await api.events.list.query({ afterSeq: 0, limit: 1000 })).at(-1)!.seq;
    backdate(t, "worker-1");
    expect((await checkHealth(t)).changed).toBe(1);

    expect(await promptly(watch)).toEqual({ key: "presence/worker-1", entry: null });
    expect(await keysOf(t)).toEqual(["notes/worker-1", "presence/worker-2"]);
    expect((await api.kv.get.query({ key: "working-on/ticket-42" })).entry).toBeNull();
    expect((await api.kv.get.query({ key: "presence/worker-2" })).entry).toEqual(others);
    const ended = await eventsOf(t, ["kv.*", "agent.offline"], before);
    expect(ended).toEqual([
      ["kv.deleted", { key: "presence/worker-1", version: 1, deletedBy: null, ephemeralOwner: "worker-1", reason: "owner offline" }],
      ["kv.deleted", { key: "working-on/ticket-42", version: 2, deletedBy: null, ephemeralOwner: "worker-1", reason: "owner offline" }],
      ["agent.offline", expect.objectContaining({ agentId: "worker-1", health: "offline", releasedTasks: 0, deletedKeys: 2 })],
    ]);

    // Back, the agent finds its keys gone (as a ZooKeeper session's ephemeral nodes): it sets them again.
    expect((await api.agents.heartbeat.mutate({ agentId: "worker-1" })).health).toBe("healthy");
    const again = await api.kv.set.mutate({ key: "presence/worker-1", value: { host: "10.0.0.8" }, agentId: "worker-1", ephemeral: true });
    expect(again).toMatchObject({ version: 5, ephemeralOwner: "worker-1" });
  });

  it("go with their agent's deregistration; the event counts them", async () => {
    await using t = await startTestServer(IDLE_MONITOR);
    const { api } = t;
    await api.kv.set.mutate({ key: "leader/indexer", value: "a", agentId: "a", ephemeral: true });
    await api.kv.set.mutate({ key: "kept", value: 1, agentId: "a" });
    await api.agents.deregister.mutate({ agentId: "a" });
    expect(await keysOf(t)).toEqual(["kept"]);
    const events = await eventsOf(t, ["kv.deleted", "agent.deregistered"]);
    expect(events).toEqual([
      ["kv.deleted", { key: "leader/indexer", version: 1, deletedBy: null, ephemeralOwner: "a", reason: "owner deregistered" }],
      ["agent.deregistered", { agentId: "a", releasedTasks: 0, deletedKeys: 1 }],
    ]);
  });

  it("an ephemeral set is a sign of its agent's life: an unknown agent is registered, an old heartbeat renewed", async () => {
    await using t = await startTestServer(IDLE_MONITOR);
    const { api } = t;
    await api.kv.set.mutate({ key: "presence/new", value: true, agentId: "new", ephemeral: true });
    expect((await eventsOf(t, ["agent.registered"])).map(([, payload]) => payload)).toEqual([{ agentId: "new", capabilities: [], health: "healthy", implicit: true }]);
    // A plain set is not: it names a writer, not a life.
    await api.kv.set.mutate({ key: "by-ghost", value: true, agentId: "ghost" });
    await expect(api.agents.get.query({ agentId: "ghost" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
  });

  it("an agent seen offline that sets a key is healthy again in that write: a restart before the next health check leaves no key behind", async () => {
    const first = await startTestServer(IDLE_MONITOR);
    const dir = first.dir;
    try {
      await first.api.agents.register.mutate({ agentId: "late", capabilities: [] });
      backdate(first, "late");
      await checkHealth(first);
      expect((await first.api.agents.get.query({ agentId: "late" })).health).toBe("offline");
      const seq = (await first.api.events.list.query({ afterSeq: 0, limit: 1000 })).at(-1)!.seq;
      await first.api.kv.set.mutate({ key: "presence/late", value: 1, agentId: "late", ephemeral: true });
      expect((await first.api.agents.get.query({ agentId: "late" })).health).toBe("healthy");
      expect(await eventsOf(first, ["agent.*"], seq)).toEqual([["agent.updated", { agentId: "late", health: "healthy", previousHealth: "offline" }]]);
    } finally {
      await first.stop();
    }
    // Restarted before any health check ran: the agent then never heartbeats again.
    await using t = await startTestServer(IDLE_MONITOR, dir);
    backdate(t, "late");
    await checkHealth(t);
    expect((await t.api.kv.get.query({ key: "presence/late" })).entry).toBeNull();
    expect((await eventsOf(t, ["kv.deleted"])).map(([, payload]) => payload.reason)).toEqual(["owner offline"]);
  });

  it("each set says its own: a plain set unties a key, another agent's ephemeral set ties it to that one, an increment keeps it", async () => {
    await using t = await startTestServer(IDLE_MONITOR);
    const { api } = t;
    await api.kv.set.mutate({ key: "k", value: 1, agentId: "a", ephemeral: true });
    expect((await api.kv.increment.mutate({ key: "k", by: 2, agentId: "b" })).ephemeralOwner).toBe("a");
    expect(await keysOf(t, "a")).toEqual(["k"]);
    expect((await api.kv.set.mutate({ key: "k", value: 4, agentId: "b", ephemeral: true })).ephemeralOwner).toBe("b");
    expect(await keysOf(t, "a")).toEqual([]);
    expect(await keysOf(t, "b")).toEqual(["k"]);
    expect((await api.kv.set.mutate({ key: "k", value: 5, agentId: "b" })).ephemeralOwner).toBeNull();
    expect(await keysOf(t, "b")).toEqual([]);
    // updateKey's write says its own too.
    expect((await updateKey(api, { key: "k", agentId: "a", ephemeral: true }, (current) => Number(current?.value) + 1))?.ephemeralOwner).toBe("a");
    expect((await updateKey(api, { key: "k", agentId: "a" }, (current) => Number(current?.value) + 1))?.ephemeralOwner).toBeNull();
    // An increment creates a key tied to nobody.
    expect((await api.kv.increment.mutate({ key: "count", agentId: "a" })).ephemeralOwner).toBeNull();
    backdate(t, "a", "b");
    expect((await checkHealth(t)).changed).toBe(2);
    expect(await keysOf(t)).toEqual(["count", "k"]);
    expect(await eventsOf(t, ["kv.deleted"])).toEqual([]);
  });

  it("a set sent again with its idempotencyKey compares ephemeral; the bound counts an agent's other keys", async () => {
    await using t = await startTestServer({ ...IDLE_MONITOR, maxEphemeralKeysPerAgent: 2 });
    const { api } = t;
    const first = await api.kv.set.mutate({ key: "x", value: 1, agentId: "a", ephemeral: true, idempotencyKey: "w1" });
    expect(await api.kv.set.mutate({ key: "x", value: 1, agentId: "a", ephemeral: true, idempotencyKey: "w1" })).toEqual(first);
    expect(await refusal(api.kv.set.mutate({ key: "x", value: 1, agentId: "a", idempotencyKey: "w1" }))).toMatchObject({
      code: "IDEMPOTENCY_MISMATCH",
      details: { key: "x", version: 1, differs: ["ephemeral"] },
    });
    await api.kv.set.mutate({ key: "y", value: 1, agentId: "a", ephemeral: true });
    // Its own key again replaces it; a third is refused, nothing written.
    expect((await api.kv.set.mutate({ key: "y", value: 2, agentId: "a", ephemeral: true })).version).toBe(3);
    expect(await refusal(api.kv.set.mutate({ key: "z", value: 1, agentId: "a", ephemeral: true }))).toEqual({
      code: "LIMIT_EXCEEDED",
      details: undefined,
      message: `agent "a" holds 2 keys tied to its life already (maxEphemeralKeysPerAgent 2): delete one, or set this key without ephemeral`,
    });
    expect(await keysOf(t)).toEqual(["x", "y"]);
    // A plain key, and another agent's, are not counted.
    await api.kv.set.mutate({ key: "z", value: 1, agentId: "a" });
    await api.kv.set.mutate({ key: "w", value: 1, agentId: "b", ephemeral: true });
    await api.kv.delete.mutate({ key: "x" });
    expect((await api.kv.set.mutate({ key: "v", value: 1, agentId: "a", ephemeral: true })).ephemeralOwner).toBe("a");
  });

  it("ephemeral names its agent: a 400 without one; an agent credential's is its own", async () => {
    await using secure = await startSecureServer();
    const refused = await http(secure.url, "PUT", "/kv/k", { token: ADMIN_SECRET, body: { value: 1, ephemeral: true } });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: "INVALID_INPUT", message: "ephemeral: ties the key to an agent's life: name the agent (agentId)" });
    const bot = await secure.issue("agent", "bot");
    const set = await http(secure.url, "PUT", "/kv/k", { token: bot, body: { value: 1, ephemeral: true } });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ key: "k", updatedBy: "bot", ephemeralOwner: "bot" });
    const listed = await http(secure.url, "GET", "/kv?ephemeralOwner=bot", { token: bot });
    expect((listed.body as { items: Array<{ key: string }> }).items.map((entry) => entry.key)).toEqual(["k"]);
  });

  it("an agent's keys are paged in key order from the index, from the page's cursor: no sort of all of them, values and all, per page", async () => {
    await using t = await startTestServer(IDLE_MONITOR);
    const plan = withDatabase(t, (db) =>
      db
        .prepare(`EXPLAIN QUERY PLAN SELECT * FROM kv INDEXED BY kv_ephemeralOwner_idx WHERE ephemeralOwner = ? AND (expiresAt IS NULL OR expiresAt > ?) AND key > ? ORDER BY key`)
        .all("a", Date.now(), "k")
        .map((row) => (row as { detail: string }).detail)
        .join("\n"),
    );
    expect(plan).not.toMatch(/TEMP B-TREE/);
    expect(plan).toMatch(/kv_ephemeralOwner_idx \(ephemeralOwner=\? AND key>\?\)/);
  });

  it("a health check's write deletes about EPHEMERAL_KEYS_BATCH keys: the agents after go in the next write, each whole", async () => {
    await using t = await startTestServer({ ...IDLE_MONITOR, maxEphemeralKeysPerAgent: 10_000 });
    const heavy = Math.ceil((EPHEMERAL_KEYS_BATCH * 2) / 3);
    const owners = ["h1", "h2", "h3"];
    for (const owner of owners) {
      await t.api.agents.register.mutate({ agentId: owner, capabilities: [] });
      await Promise.all(Array.from({ length: heavy }, (_, i) => t.api.kv.set.mutate({ key: `${owner}/${String(i).padStart(4, "0")}`, value: i, agentId: owner, ephemeral: true })));
    }
    await rest(t.url, "PUT", "/kv/unowned", { value: 0 });
    backdate(t, ...owners);
    // Each write takes one of them: a second would pass the batch.
    for (let left = owners.length; left > 0; left--) {
      const { changed, more } = await checkHealth(t);
      expect({ changed, more }).toEqual({ changed: 1, more: left > 1 });
      expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM kv`).pluck().get())).toBe(1 + heavy * (left - 1));
    }
    const offline = await eventsOf(t, ["agent.offline"]);
    expect(offline.map(([, payload]) => [payload.agentId, payload.deletedKeys]).sort()).toEqual(owners.map((owner) => [owner, heavy]));
    expect((await eventsOf(t, ["kv.deleted"])).length).toBe(heavy * owners.length);
  });
});
