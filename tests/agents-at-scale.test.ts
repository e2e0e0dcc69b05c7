// The agent registry over a long life: agents come and go (every claim, heartbeat and MCP
// session registers one), so the registry must stay cheap to watch, must not bring back every
// agent that was already gone when the server restarts, and must forget agents long gone.
// Agents are inserted straight into the file, as a registry that grew over months would be.
import type { Database } from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { makeTempDir, startTestServer, withDatabase } from "./helpers/test-server.js";

const DAY = 24 * 3_600_000;

/** `count` agents with a last heartbeat `ageMs` ago and that health published, ids prefix-0…. */
function insertAgents(db: Database, prefix: string, count: number, ageMs: number, health: "healthy" | "stale" | "offline"): void {
  const at = Date.now() - ageMs;
  const insert = db.prepare(`INSERT INTO agents (id, metadata, status, health, load, registeredAt, lastHeartbeatAt, updatedAt) VALUES (?, '{}', 'idle', ?, 0, ?, ?, ?)`);
  db.transaction(() => {
    for (let i = 0; i < count; i++) insert.run(`${prefix}-${i}`, health, at, at, at);
  })();
}

describe("the agent registry at scale", () => {
  it("a restart does not bring back the agents already offline; the start-up grace still spares those that were alive", async () => {
    const dir = makeTempDir();
    const first = await startTestServer({}, dir);
    withDatabase(first, (db) => {
      insertAgents(db, "gone", 2000, 3 * DAY, "offline");
      insertAgents(db, "alive", 3, 10 * 60_000, "healthy");
    });
    await first.stop();
    // Started again after ten minutes down: the live agents' heartbeats could not arrive meanwhile.
    await using again = await startTestServer({ agentStartupGraceMs: 90_000, agentHealthCheckMs: 60_000 }, dir);
    expect(await again.server.services.agents.checkHealth()).toBe(0);
    expect(await again.api.events.list.query({ afterSeq: 0, types: ["agent.*"], limit: 1000 })).toEqual([]);
    const offline = await again.api.agents.list.query({ health: "offline" });
    expect(offline).toHaveLength(2000);
    expect((await again.api.agents.get.query({ agentId: "gone-7" })).health).toBe("offline");
    expect((await again.api.agents.list.query({ health: "healthy" })).map((agent) => agent.agentId).sort()).toEqual(["alive-0", "alive-1", "alive-2"]);
  });

  it("within the start-up grace an agent already stale stays stale, in every view, until a sign of life", async () => {
    const dir = makeTempDir();
    const first = await startTestServer({}, dir);
    // Stale when the server stopped: 2 minutes without a heartbeat (stale after 30 s, offline after 5 minutes).
    withDatabase(first, (db) => insertAgents(db, "idle", 3, 2 * 60_000, "stale"));
    await first.stop();
    await using again = await startTestServer({ agentStaleMs: 30_000, agentOfflineMs: 300_000, agentStartupGraceMs: 90_000, agentHealthCheckMs: 60_000 }, dir);
    // No "recovered" agent.updated now and "stale" again after the grace: nothing changed.
    expect(await again.server.services.agents.checkHealth()).toBe(0);
    expect(await again.api.events.list.query({ afterSeq: 0, types: ["agent.*"], limit: 1000 })).toEqual([]);
    expect((await again.api.agents.get.query({ agentId: "idle-0" })).health).toBe("stale");
    expect((await again.api.agents.list.query({ health: "stale" })).map((agent) => agent.agentId)).toEqual(["idle-0", "idle-1", "idle-2"]);
    expect(await again.api.agents.list.query({ health: "healthy" })).toEqual([]);
    // A heartbeat is a sign of life: healthy at once, and the monitor publishes it.
    expect((await again.api.agents.heartbeat.mutate({ agentId: "idle-1" })).health).toBe("healthy");
    expect((await again.api.agents.list.query({ health: "stale" })).map((agent) => agent.agentId)).toEqual(["idle-0", "idle-2"]);
  });

  it("the health monitor changes agents in writes of 500: a fleet that went offline together is not one write", async () => {
    await using t = await startTestServer({ agentStartupGraceMs: 0, agentHealthCheckMs: 60_000 });
    withDatabase(t, (db) => insertAgents(db, "fleet", 1200, DAY, "healthy"));
    const sent = () => t.server.services.db.sent.get("agents.checkHealth") ?? 0;
    const before = sent();
    expect(await t.server.services.agents.checkHealth()).toBe(1200);
    expect(sent() - before).toBe(3);
    const offlineEvents = [
      ...(await t.api.events.list.query({ afterSeq: 0, types: ["agent.offline"], limit: 1000 })),
      ...(await t.api.events.list.query({ afterSeq: 1000, types: ["agent.offline"], limit: 1000 })),
    ];
    expect(new Set(offlineEvents.map((event) => (event.payload as { agentId: string }).agentId)).size).toBe(1200);
    expect(await t.api.agents.list.query({ health: "offline" })).toHaveLength(1200);
    // Nothing left to change: the next check finds it on the reader and writes nothing.
    expect(await t.server.services.agents.checkHealth()).toBe(0);
    expect(sent() - before).toBe(3);
  });

  it("agents offline with no heartbeat for agentRetentionMs are removed; a recent or a live one stays", async () => {
    await using t = await startTestServer({ agentRetentionMs: DAY, agentStartupGraceMs: 0 });
    withDatabase(t, (db) => {
      insertAgents(db, "old", 700, 2 * DAY, "offline");
      insertAgents(db, "recent", 2, DAY / 2, "offline");
    });
    await t.api.agents.register.mutate({ agentId: "live", capabilities: ["x"] });
    await t.api.events.subscribe.mutate({ agentId: "old-1", types: ["build.*"] });
    expect(await t.server.services.retention.prune()).toBe(700);
    expect((await t.api.agents.list.query({})).map((agent) => agent.agentId).sort()).toEqual(["live", "recent-0", "recent-1"]);
    await expect(t.api.agents.get.query({ agentId: "old-1" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
    // As after a deregistration, its subscription and mailbox stay.
    expect((await t.api.events.subscription.query({ agentId: "old-1" })).types).toEqual(["build.*"]);
    expect(t.server.services.retention.pruned.agents).toBe(700);
    // Each with its event, as a deregistration would: a registry followed by events forgets it too.
    const gone = await t.api.events.list.query({ afterSeq: 0, types: ["agent.deregistered"], limit: 1000 });
    expect(gone).toHaveLength(700);
    expect(gone[0]!.payload).toEqual({ agentId: expect.stringMatching(/^old-\d+$/), releasedTasks: 0, reason: "retention" });
  });

  it("a health check changes an agent once: a row another server changed since the check was asked for is left to the next", async () => {
    const dir = makeTempDir();
    // Two servers judging the same agents otherwise: one within its start-up grace, one not.
    await using strict = await startTestServer({ agentStartupGraceMs: 0, agentHealthCheckMs: 60_000 }, dir);
    await using lenient = await startTestServer({ agentStartupGraceMs: 600_000, agentHealthCheckMs: 60_000 }, dir);
    withDatabase(strict, (db) => insertAgents(db, "w", 600, 60_000, "healthy"));
    const asked = Date.now();
    // The strict server calls them stale; the lenient one, asked before that write, would call
    // them healthy again, and each check's next batch would undo the other's.
    expect(await strict.server.services.db.write("agents.checkHealth", { asOf: Date.now() + 1, limit: 1000 })).toMatchObject({ changed: 600 });
    expect(await lenient.server.services.db.write("agents.checkHealth", { asOf: asked, limit: 1000 })).toMatchObject({ changed: 0 });
    expect((await strict.api.agents.list.query({ health: "stale" })).length).toBe(600);
  });
});
