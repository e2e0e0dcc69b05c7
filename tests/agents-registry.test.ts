// The agent registry: registration, heartbeats, deregistration, lookups and their REST routes.
import { TRPCClientError } from "@trpc/client";
import { describe, expect, it } from "vitest";
import type { TestServer } from "./helpers/test-server.js";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

const agentEvents = async (t: TestServer) =>
  (await t.api.events.list.query({ afterSeq: 0, types: ["agent.*"], limit: 1000 })).map((e) => ({ type: e.type, payload: e.payload }));

/** Moves an agent's last heartbeat into the past, in the real database, to give it a known health. */
const backdate = (t: TestServer, agentId: string, ageMs: number) =>
  withDatabase(t, (db) => db.prepare(`UPDATE agents SET lastHeartbeatAt = ? WHERE id = ?`).run(Date.now() - ageMs, agentId));

describe("agent registry", () => {
  it("registers, re-registers (capabilities and metadata replaced) and publishes agent.registered then agent.updated", async () => {
    await using t = await startTestServer();
    const { api } = t;
    const first = await api.agents.register.mutate({ agentId: "a1", capabilities: ["gpu", "cpu", "gpu"], metadata: { zone: "eu" } });
    expect(first).toMatchObject({ agentId: "a1", capabilities: ["cpu", "gpu"], metadata: { zone: "eu" }, status: "idle", health: "healthy", load: 0 });
    expect(first.registeredAt).toBeInstanceOf(Date);

    const again = await api.agents.register.mutate({ agentId: "a1", capabilities: ["tpu"], metadata: { zone: "us", gen: 2 } });
    expect(again).toMatchObject({ agentId: "a1", capabilities: ["tpu"], metadata: { zone: "us", gen: 2 }, health: "healthy" });
    expect(again.registeredAt.getTime()).toBe(first.registeredAt.getTime());
    expect(await api.agents.get.query({ agentId: "a1" })).toMatchObject({ capabilities: ["tpu"], metadata: { zone: "us", gen: 2 } });
    expect(await api.agents.list.query({ capability: "gpu" })).toEqual([]);

    expect(await agentEvents(t)).toEqual([
      { type: "agent.registered", payload: { agentId: "a1", capabilities: ["cpu", "gpu"], health: "healthy" } },
      { type: "agent.updated", payload: { agentId: "a1", capabilities: ["tpu"], health: "healthy", previousHealth: "healthy" } },
    ]);

    const missing = await api.agents.get.query({ agentId: "nobody" }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(TRPCClientError);
    expect(missing).toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
  });

  it("heartbeat records status and load, publishing agent.updated only when the status changes", async () => {
    await using t = await startTestServer();
    const { api } = t;
    const registered = await api.agents.register.mutate({ agentId: "h1", capabilities: [] });
    const busy = await api.agents.heartbeat.mutate({ agentId: "h1", status: "busy", load: 3 });
    expect(busy).toMatchObject({ status: "busy", load: 3, health: "healthy" });
    expect(busy.lastHeartbeatAt.getTime()).toBeGreaterThanOrEqual(registered.lastHeartbeatAt.getTime());
    const loadOnly = await api.agents.heartbeat.mutate({ agentId: "h1", load: 5 });
    expect(loadOnly).toMatchObject({ status: "busy", load: 5 });
    await api.agents.heartbeat.mutate({ agentId: "h1" });
    expect(await api.agents.get.query({ agentId: "h1" })).toMatchObject({ status: "busy", load: 5, health: "healthy" });

    expect((await agentEvents(t)).map((e) => e.type)).toEqual(["agent.registered", "agent.updated"]);
    expect((await agentEvents(t))[1]!.payload).toEqual({ agentId: "h1", health: "healthy", previousHealth: "healthy", status: "busy" });
    // An agent first heard of through its heartbeat is registered, with no capabilities.
    expect(await api.agents.heartbeat.mutate({ agentId: "newcomer", status: "busy" })).toMatchObject({ agentId: "newcomer", capabilities: [], status: "busy", health: "healthy" });
    expect((await agentEvents(t)).slice(2).map((e) => [e.type, e.payload])).toEqual([
      ["agent.registered", { agentId: "newcomer", capabilities: [], health: "healthy", implicit: true }],
      ["agent.updated", { agentId: "newcomer", health: "healthy", previousHealth: "healthy", status: "busy" }],
    ]);
    await expect(api.agents.heartbeat.mutate({ agentId: "h1", load: -1 })).rejects.toMatchObject({ data: { code: "INVALID_INPUT" } });
  });

  it("deregister removes the agent and returns its claimed tasks to the queue at once", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.agents.register.mutate({ agentId: "d1", capabilities: ["gpu"] });
    const task = await api.tasks.enqueue.mutate({ queue: "q", capability: "gpu" });
    const claimed = await api.tasks.claim.mutate({ agentId: "d1", leaseMs: 60_000 });
    expect(claimed?.id).toBe(task.id);

    const removed = await api.agents.deregister.mutate({ agentId: "d1" });
    expect(removed).toMatchObject({ agentId: "d1", capabilities: ["gpu"] });
    await expect(api.agents.get.query({ agentId: "d1" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", leaseOwner: null, attempts: 1 });
    const released = await api.events.list.query({ afterSeq: 0, types: ["task.lease_expired", "agent.deregistered"] });
    expect(released.map((e) => [e.type, e.payload])).toEqual([
      ["task.lease_expired", { taskId: task.id, queue: "q", agentId: "d1", attempt: 1, reason: "agent d1 deregistered" }],
      ["agent.deregistered", { agentId: "d1", releasedTasks: 1 }],
    ]);
    await expect(api.agents.deregister.mutate({ agentId: "d1" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
  });

  it("a claim in the same group commit as the agent's deregistration registers it again", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.tasks.enqueueMany.mutate({ tasks: [{ payload: 1 }, { payload: 2 }] });
    const first = (await api.tasks.claim.mutate({ agentId: "d2" }))!;
    await api.tasks.complete.mutate({ taskId: first.id, agentId: "d2" });
    // Called in one turn of the event loop: one message to the writer, one batch, in this order.
    const { agents, tasks } = t.server.services;
    const [, again] = await Promise.all([agents.deregister("d2"), tasks.claim({ agentId: "d2" })]);
    expect(again[0]?.payload).toBe(2);
    expect(await api.agents.get.query({ agentId: "d2" })).toMatchObject({ agentId: "d2", health: "healthy" });
    // The other order: an agent's first sign of life, then its deregistration, in one batch; its
    // next claim registers it again.
    await api.tasks.enqueue.mutate({ payload: 3 });
    await Promise.all([tasks.claim({ agentId: "d3" }), agents.deregister("d3")]);
    expect((await tasks.claim({ agentId: "d3" }))[0]?.payload).toBe(3);
    expect(await api.agents.get.query({ agentId: "d3" })).toMatchObject({ agentId: "d3" });
  });

  it("lists by capability, health and status; findByCapability puts healthy first, then lowest load", async () => {
    // No health job during the test: health comes from heartbeat age alone.
    // No start-up grace: the backdated heartbeats below must count as they are.
    await using t = await startTestServer({ agentStaleMs: 30_000, agentOfflineMs: 90_000, agentHealthCheckMs: 60_000, agentStartupGraceMs: 0 });
    const { api } = t;
    const register = async (agentId: string, capabilities: string[], load: number, status = "idle") => {
      await api.agents.register.mutate({ agentId, capabilities });
      await api.agents.heartbeat.mutate({ agentId, load, status });
    };
    await register("g-off", ["gpu"], 0);
    await register("g-stale", ["gpu", "cpu"], 0);
    await register("g-busy", ["gpu"], 5, "busy");
    await register("g-b", ["gpu"], 1);
    await register("g-a", ["gpu"], 1);
    await register("c-1", ["cpu"], 0, "busy");
    backdate(t, "g-stale", 60_000);
    backdate(t, "g-off", 120_000);

    const ids = (agents: Array<{ agentId: string }>) => agents.map((a) => a.agentId);
    expect(ids(await api.agents.list.query({}))).toEqual(["c-1", "g-a", "g-b", "g-busy", "g-off", "g-stale"]);
    expect(ids(await api.agents.list.query({ capability: "gpu" }))).toEqual(["g-a", "g-b", "g-busy", "g-off", "g-stale"]);
    expect(ids(await api.agents.list.query({ capability: "cpu" }))).toEqual(["c-1", "g-stale"]);
    expect(ids(await api.agents.list.query({ health: "healthy" }))).toEqual(["c-1", "g-a", "g-b", "g-busy"]);
    expect(ids(await api.agents.list.query({ health: "stale" }))).toEqual(["g-stale"]);
    expect(ids(await api.agents.list.query({ health: "offline" }))).toEqual(["g-off"]);
    expect(ids(await api.agents.list.query({ status: "busy" }))).toEqual(["c-1", "g-busy"]);
    expect(ids(await api.agents.list.query({ capability: "gpu", health: "healthy", status: "idle" }))).toEqual(["g-a", "g-b"]);
    expect((await api.agents.get.query({ agentId: "g-stale" })).health).toBe("stale");
    expect((await api.agents.get.query({ agentId: "g-off" })).health).toBe("offline");

    // Pages: limit agents in id order, the next page after the last id; every filter applies
    // before the limit, so a filtered page is full while more agents match.
    expect(ids(await api.agents.list.query({ limit: 2 }))).toEqual(["c-1", "g-a"]);
    expect(ids(await api.agents.list.query({ limit: 2, after: "g-a" }))).toEqual(["g-b", "g-busy"]);
    expect(ids(await api.agents.list.query({ limit: 2, after: "g-busy" }))).toEqual(["g-off", "g-stale"]);
    expect(await api.agents.list.query({ limit: 2, after: "g-stale" })).toEqual([]);
    expect(ids(await api.agents.list.query({ after: "g-b" }))).toEqual(["g-busy", "g-off", "g-stale"]);
    expect(ids(await api.agents.list.query({ after: "a" }))).toEqual(["c-1", "g-a", "g-b", "g-busy", "g-off", "g-stale"]);
    expect(ids(await api.agents.list.query({ health: "healthy", limit: 2, after: "c-1" }))).toEqual(["g-a", "g-b"]);
    expect(ids(await api.agents.list.query({ health: "offline", limit: 1 }))).toEqual(["g-off"]);
    expect(ids(await api.agents.list.query({ capability: "gpu", status: "idle", limit: 3, after: "g-a" }))).toEqual(["g-b", "g-off", "g-stale"]);
    // Any stored id ends a page and starts the next: one of spaces only, as an earlier version allowed.
    withDatabase(t, (db) => db.prepare(`INSERT INTO agents (id, metadata, status, health, load, registeredAt, lastHeartbeatAt, updatedAt) VALUES ('  ', '{}', 'idle', 'healthy', 0, ?, ?, ?)`).run(Date.now(), Date.now(), Date.now()));
    expect(ids(await api.agents.list.query({ limit: 1 }))).toEqual(["  "]);
    expect(ids(await api.agents.list.query({ limit: 1, after: "  " }))).toEqual(["c-1"]);

    const found = await api.agents.findByCapability.query({ capability: "gpu" });
    expect(found.map((a) => [a.agentId, a.health, a.load])).toEqual([
      ["g-a", "healthy", 1],
      ["g-b", "healthy", 1],
      ["g-busy", "healthy", 5],
      ["g-stale", "stale", 0],
      ["g-off", "offline", 0],
    ]);
    expect(await api.agents.findByCapability.query({ capability: "quantum" })).toEqual([]);
  });
});

describe("agent REST routes", () => {
  it("POST /agents, GET /agents (filters as query), GET /agents/{id}, heartbeat, capability lookup and DELETE", async () => {
    await using t = await startTestServer();
    const created = await rest(t.url, "POST", "/agents", { agentId: "r1", capabilities: ["gpu", "cpu"], metadata: { host: "box-1" } });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ agentId: "r1", capabilities: ["cpu", "gpu"], metadata: { host: "box-1" }, health: "healthy" });
    expect((await rest(t.url, "POST", "/agents", { agentId: "r2" })).body).toMatchObject({ capabilities: [], metadata: {} });

    const got = await rest(t.url, "GET", "/agents/r1");
    expect(got.status).toBe(200);
    expect(Date.parse(got.body.lastHeartbeatAt)).not.toBeNaN();

    const beat = await rest(t.url, "POST", "/agents/r1/heartbeat", { status: "busy", load: 2.5 });
    expect(beat.status).toBe(200);
    expect(beat.body).toMatchObject({ agentId: "r1", status: "busy", load: 2.5 });

    const ids = (body: Array<{ agentId: string }>) => body.map((a) => a.agentId);
    expect(ids((await rest(t.url, "GET", "/agents")).body)).toEqual(["r1", "r2"]);
    expect(ids((await rest(t.url, "GET", "/agents?capability=gpu")).body)).toEqual(["r1"]);
    expect(ids((await rest(t.url, "GET", "/agents?status=busy&health=healthy")).body)).toEqual(["r1"]);
    expect((await rest(t.url, "GET", "/agents?health=offline")).body).toEqual([]);
    expect((await rest(t.url, "GET", "/agents?health=sleepy")).status).toBe(400);
    expect(ids((await rest(t.url, "GET", "/agents?limit=1")).body)).toEqual(["r1"]);
    expect(ids((await rest(t.url, "GET", "/agents?limit=1&after=r1")).body)).toEqual(["r2"]);
    expect((await rest(t.url, "GET", "/agents?limit=1&after=r2")).body).toEqual([]);
    expect(ids((await rest(t.url, "GET", "/agents?after=")).body)).toEqual(["r1", "r2"]);
    for (const [query, field] of [["limit=0", "limit"], ["limit=1001", "limit"], ["limit=two", "limit"], [`after=${"x".repeat(201)}`, "after"]] as const) {
      const refused = await rest(t.url, "GET", `/agents?${query}`);
      expect(refused.status, query).toBe(400);
      expect(JSON.stringify(refused.body), query).toContain(field);
    }
    expect(ids((await rest(t.url, "GET", "/agents/capability/cpu")).body)).toEqual(["r1"]);

    expect((await rest(t.url, "POST", "/agents", { capabilities: ["x"] })).status).toBe(400);
    expect((await rest(t.url, "GET", "/agents/ghost")).status).toBe(404);
    expect((await rest(t.url, "POST", "/agents/ghost/heartbeat", {})).body).toMatchObject({ agentId: "ghost", capabilities: [] });
    const removed = await rest(t.url, "DELETE", "/agents/r1");
    expect(removed.status).toBe(200);
    expect(removed.body.agentId).toBe("r1");
    expect((await rest(t.url, "GET", "/agents/r1")).status).toBe(404);
    expect((await rest(t.url, "DELETE", "/agents/r1")).status).toBe(404);
  });
});
