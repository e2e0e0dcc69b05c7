// Agent health over real time where the monitor's timing is the subject: stale, then offline (its tasks freed at once, well
// before their leases expire), back to healthy on a heartbeat; stealing from an offline agent;
// claims that name no capabilities use the agent's registered ones.
import { describe, expect, it, vi } from "vitest";
import type { TestServer } from "./helpers/test-server.js";
import { makeTempDir, startTestServer, withDatabase } from "./helpers/test-server.js";

// Real time where the health monitor's own timing is the subject, with windows no stall of a busy
// machine closes: the monitor checks every 50 ms, so a window of 2 s between stale and offline
// always holds a check. Where only the verdict on an old heartbeat matters, TTLs of minutes and a
// heartbeat moved back in the file (backdate) leave nothing to timing at all.
const TTLS = { agentStaleMs: 250, agentOfflineMs: 2250, agentHealthCheckMs: 50 };
const LONG_TTLS = { agentStaleMs: 30_000, agentOfflineMs: 60_000, agentStartupGraceMs: 0 };

/** Makes `agentId`'s last heartbeat two minutes old: offline under LONG_TTLS, with no waiting. */
const backdate = (t: TestServer, agentId: string) =>
  withDatabase(t, (db) => db.prepare(`UPDATE agents SET lastHeartbeatAt = ? WHERE id = ?`).run(Date.now() - 120_000, agentId));

const eventsOf = async (t: TestServer, types: string[]) =>
  (await t.api.events.list.query({ afterSeq: 0, types, limit: 1000 })).map((e) => ({ type: e.type, payload: e.payload as Record<string, unknown> }));

describe("agent health", () => {
  it("an agent that stops heartbeating turns stale then offline (in that order); a heartbeat makes it healthy again", async () => {
    await using t = await startTestServer(TTLS);
    const { api } = t;
    await api.agents.register.mutate({ agentId: "sleepy", capabilities: [] });
    await vi.waitFor(async () => expect((await eventsOf(t, ["agent.offline"])).length).toBe(1), { timeout: 30_000, interval: 25 });
    expect((await api.agents.get.query({ agentId: "sleepy" })).health).toBe("offline");
    expect((await api.agents.list.query({ health: "offline" })).map((a) => a.agentId)).toEqual(["sleepy"]);

    const back = await api.agents.heartbeat.mutate({ agentId: "sleepy", status: "idle" });
    expect(back.health).toBe("healthy");
    await api.agents.deregister.mutate({ agentId: "sleepy" });

    // Up to the heartbeat the story is exact; between the heartbeat and the deregistration a slow
    // machine may let it go stale once more, so only the last event is pinned after it.
    const events = await eventsOf(t, ["agent.*"]);
    const upToHeartbeat = events.slice(0, events.findIndex((e) => e.type === "agent.updated") + 1);
    expect(upToHeartbeat.map((e) => e.type)).toEqual(["agent.registered", "agent.stale", "agent.offline", "agent.updated"]);
    expect(events.at(-1)!.type).toBe("agent.deregistered");
    expect(events[1]!.payload).toMatchObject({ agentId: "sleepy", health: "stale", previousHealth: "healthy" });
    expect(events[2]!.payload).toMatchObject({ agentId: "sleepy", health: "offline", previousHealth: "stale", releasedTasks: 0 });
    expect(events[3]!.payload).toEqual({ agentId: "sleepy", health: "healthy", previousHealth: "offline", status: "idle" });
    // The transitions are published when they happen, not before: stale after agentStaleMs, offline after agentOfflineMs.
    const heartbeatAt = Date.parse(events[1]!.payload.lastHeartbeatAt as string);
    const [staleEvent, offlineEvent] = (await api.events.list.query({ afterSeq: 0, types: ["agent.stale", "agent.offline"] })).map((e) => e.createdAt.getTime());
    expect(staleEvent! - heartbeatAt).toBeGreaterThanOrEqual(TTLS.agentStaleMs);
    expect(offlineEvent! - heartbeatAt).toBeGreaterThanOrEqual(TTLS.agentOfflineMs);
  });

  it("tasks held by an agent that went offline are claimed by another agent long before their leases expire", async () => {
    await using t = await startTestServer(TTLS);
    const { api } = t;
    const tasks = await api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3].map((n) => ({ queue: "work", payload: { n } })) });
    const taskIds = tasks.map((task) => task.id).sort();
    await api.agents.register.mutate({ agentId: "dying", capabilities: [] });
    const held = await api.tasks.claimMany.mutate({ agentId: "dying", queues: ["work"], limit: 3, leaseMs: 600_000 });
    expect(held.map((task) => task.id).sort()).toEqual(taskIds);
    const leaseExpiresAt = Math.min(...held.map((task) => task.leaseExpiresAt!.getTime()));

    // "rescuer" long-polls for work, heartbeating as a live agent does (its claim registered it).
    const alive = setInterval(() => void api.agents.heartbeat.mutate({ agentId: "rescuer" }).catch(() => undefined), 50);
    const rescued = await api.tasks.claimMany
      .mutate({ agentId: "rescuer", queues: ["work"], limit: 3, leaseMs: 60_000, waitMs: 60_000 })
      .finally(() => clearInterval(alive));
    expect(Date.now()).toBeLessThan(leaseExpiresAt - 500_000);
    expect(rescued.map((task) => task.id).sort()).toEqual(taskIds);
    for (const task of rescued) expect(task).toMatchObject({ status: "claimed", leaseOwner: "rescuer", attempts: 2 });

    const expired = await eventsOf(t, ["task.lease_expired"]);
    expect(expired.map((e) => e.payload.taskId).sort()).toEqual(taskIds);
    for (const e of expired) expect(e.payload).toMatchObject({ agentId: "dying", attempt: 1, reason: "agent dying went offline" });
    const offline = await eventsOf(t, ["agent.offline"]);
    expect(offline).toEqual([{ type: "agent.offline", payload: expect.objectContaining({ agentId: "dying", releasedTasks: 3 }) }]);
  });

  // Steal judges "offline" by heartbeat age, not by the health the monitor last stored: that
  // monitor run already releases the claims, so a stored 'offline' would never find a holder.
  it("tasks.steal takes over exactly the claims of an agent that is offline, before any health check ran", async () => {
    // The health monitor effectively never runs here: only steal can free the tasks.
    await using t = await startTestServer({ ...LONG_TTLS, agentHealthCheckMs: 60_000 });
    const { api } = t;
    const [a, b, other] = await api.tasks.enqueueMany.mutate({ tasks: [{ priority: 1 }, { priority: 2 }, { priority: 3 }] });
    await api.agents.register.mutate({ agentId: "gone", capabilities: [] });
    await api.agents.register.mutate({ agentId: "alive", capabilities: [] });
    expect((await api.tasks.claimMany.mutate({ agentId: "gone", limit: 2, leaseMs: 60_000 })).map((x) => x.id)).toEqual([a!.id, b!.id]);
    expect((await api.tasks.claim.mutate({ agentId: "alive", leaseMs: 60_000 }))?.id).toBe(other!.id);
    // A live holder with valid leases is not robbed.
    expect(await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "alive", limit: 5 })).toEqual([]);

    backdate(t, "gone");
    expect((await api.agents.get.query({ agentId: "gone" })).health).toBe("offline");
    const stolen = await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "gone", limit: 5, leaseMs: 60_000 });
    expect(stolen.map((x) => x.id)).toEqual([a!.id, b!.id]);
    for (const task of stolen) expect(task).toMatchObject({ status: "claimed", leaseOwner: "thief", attempts: 2 });
    expect((await api.tasks.list.query({ agentId: "thief" })).items.map((x) => x.id)).toEqual([a!.id, b!.id]);
    expect((await api.tasks.get.query({ taskId: other!.id })).leaseOwner).toBe("alive");
    const claimed = (await eventsOf(t, ["task.claimed"])).filter((e) => e.payload.agentId === "thief");
    expect(claimed.map((e) => e.payload.stolenFrom)).toEqual(["gone", "gone"]);
    const expired = await eventsOf(t, ["task.lease_expired"]);
    expect(expired.map((e) => e.payload.reason)).toEqual(["stolen by thief from gone", "stolen by thief from gone"]);

    // At its last attempt a run is dead-lettered, not stolen; its error says so.
    const last = await api.tasks.enqueue.mutate({ maxAttempts: 1 });
    await api.agents.register.mutate({ agentId: "gone-too", capabilities: [] });
    await api.tasks.claim.mutate({ agentId: "gone-too", leaseMs: 60_000 });
    backdate(t, "gone-too");
    expect(await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "gone-too", limit: 5 })).toEqual([]);
    const dead = await api.tasks.get.query({ taskId: last.id });
    expect(dead.status).toBe("dead_letter");
    expect(dead.lastError).toBe("gone-too stopped renewing its lease at the last attempt: dead-lettered by thief's steal, not stolen");
  });

  // The limit counts what the thief can run: a better-placed task it lacks the capability for
  // neither uses up the limit nor loses its lease in the thief's name.
  it("tasks.steal takes only tasks the thief could claim, and leaves the others' leases alone", async () => {
    await using t = await startTestServer({ ...LONG_TTLS, agentHealthCheckMs: 60_000 });
    const { api } = t;
    const [gpu, plain] = await api.tasks.enqueueMany.mutate({ tasks: [{ priority: 0, capability: "gpu" }, { priority: 1 }] });
    await api.agents.register.mutate({ agentId: "gone", capabilities: ["gpu"] });
    expect((await api.tasks.claimMany.mutate({ agentId: "gone", limit: 2, leaseMs: 60_000 })).map((x) => x.id)).toEqual([gpu!.id, plain!.id]);
    backdate(t, "gone");

    const stolen = await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "gone", limit: 1, leaseMs: 60_000 });
    expect(stolen.map((x) => x.id)).toEqual([plain!.id]);
    expect(await api.tasks.get.query({ taskId: gpu!.id })).toMatchObject({ status: "claimed", leaseOwner: "gone", attempts: 1 });
    expect((await eventsOf(t, ["task.lease_expired"])).map((e) => e.payload.taskId)).toEqual([plain!.id]);
    // Offering the capability, the thief takes the other one too; from any holder as well as a named one.
    expect((await api.tasks.steal.mutate({ agentId: "thief", limit: 5, capabilities: ["gpu"] })).map((x) => x.id)).toEqual([gpu!.id]);
  });

  // The answer's byte budget, as a claim's: what does not fit stays with its holder, not expired in the thief's name.
  it("tasks.steal takes as many as its answer has room for, and leaves the rest's leases alone", async () => {
    await using t = await startTestServer({ ...LONG_TTLS, agentHealthCheckMs: 60_000, maxResponseBytes: 256 * 1024 });
    const { api } = t;
    const blob = "x".repeat(100 * 1024);
    const tasks = [];
    for (let i = 0; i < 5; i++) tasks.push(await api.tasks.enqueue.mutate({ payload: { i, blob } }));
    await api.agents.register.mutate({ agentId: "gone", capabilities: [] });
    expect(await api.tasks.claimMany.mutate({ agentId: "gone", limit: 5, leaseMs: 60_000 })).toHaveLength(2);
    expect(await api.tasks.claimMany.mutate({ agentId: "gone", limit: 5, leaseMs: 60_000 })).toHaveLength(2);
    backdate(t, "gone");
    const stolen = await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "gone", limit: 5, leaseMs: 60_000 });
    expect(stolen.map((x) => x.id)).toEqual([tasks[0]!.id, tasks[1]!.id]);
    expect((await eventsOf(t, ["task.lease_expired"])).map((e) => e.payload.taskId)).toEqual([tasks[0]!.id, tasks[1]!.id]);
    expect((await api.tasks.list.query({ agentId: "gone", status: "claimed" })).items.map((x) => [x.id, x.attempts])).toEqual([
      [tasks[2]!.id, 1],
      [tasks[3]!.id, 1],
    ]);
  });

  // Signs of life from claims and task heartbeats were recorded at most once a second: with health
  // judged in under a second, an agent renewing its lease every 250 ms went offline and lost its task.
  it("records a task heartbeat as the agent's sign of life at least four times per agentStaleMs", async () => {
    await using t = await startTestServer({ agentStaleMs: 400, agentOfflineMs: 900, agentHealthCheckMs: 60_000 });
    const { api } = t;
    const task = await api.tasks.enqueue.mutate({});
    await api.tasks.claim.mutate({ agentId: "busy", leaseMs: 60_000 });
    for (let i = 0; i < 4; i++) {
      // More than a quarter of agentStaleMs (100 ms) after the last one, however slow the machine.
      await new Promise((resolve) => setTimeout(resolve, 150));
      const before = Date.now();
      await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "busy" });
      expect((await api.agents.get.query({ agentId: "busy" })).lastHeartbeatAt.getTime()).toBeGreaterThanOrEqual(before);
    }
  });

  // The other face: an agent the monitor last saw offline that then shows a sign of life (a claim
  // touches its heartbeat) keeps health = 'offline' until the next monitor run; steal must not rob it.
  it("tasks.steal never takes claims from an agent that is alive by heartbeat age, whatever the monitor last saw", async () => {
    await using t = await startTestServer({ ...LONG_TTLS, agentHealthCheckMs: 60_000 });
    const { api } = t;
    await api.agents.register.mutate({ agentId: "flaky", capabilities: [] });
    backdate(t, "flaky");
    expect((await api.agents.get.query({ agentId: "flaky" })).health).toBe("offline");
    await t.server.services.jobs.healthMonitor.runNow();
    expect((await eventsOf(t, ["agent.offline"])).map((e) => e.payload.agentId)).toEqual(["flaky"]);

    const task = await api.tasks.enqueue.mutate({});
    expect((await api.tasks.claim.mutate({ agentId: "flaky", leaseMs: 60_000 }))?.id).toBe(task.id);
    expect((await api.agents.get.query({ agentId: "flaky" })).health).toBe("healthy");
    expect(await api.tasks.steal.mutate({ agentId: "thief", fromAgentId: "flaky", limit: 5 })).toEqual([]);
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "flaky" });
  });
});

describe("claims and capabilities", () => {
  it("a claim that names no capabilities uses the agent's registered ones", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.agents.register.mutate({ agentId: "cpu-agent", capabilities: ["cpu"] });
    await api.agents.register.mutate({ agentId: "gpu-agent", capabilities: ["gpu"] });
    const gpuTask = await api.tasks.enqueue.mutate({ queue: "render", capability: "gpu", priority: 0 });

    // Neither an unregistered agent (no capabilities) nor the cpu agent may take the gpu task.
    expect(await api.tasks.claim.mutate({ agentId: "stranger" })).toBeNull();
    expect(await api.tasks.claim.mutate({ agentId: "cpu-agent" })).toBeNull();
    // With the gpu task still first in line, the cpu agent gets the next task it is able to run.
    const plainTask = await api.tasks.enqueue.mutate({ queue: "render", priority: 5 });
    expect((await api.tasks.claim.mutate({ agentId: "cpu-agent" }))?.id).toBe(plainTask.id);
    expect(await api.tasks.claim.mutate({ agentId: "cpu-agent" })).toBeNull();
    const claimed = await api.tasks.claim.mutate({ agentId: "gpu-agent" });
    expect(claimed).toMatchObject({ id: gpuTask.id, leaseOwner: "gpu-agent", capability: "gpu" });

    // Re-registering changes what a claim may take.
    const second = await api.tasks.enqueue.mutate({ queue: "render", capability: "gpu" });
    await api.agents.register.mutate({ agentId: "cpu-agent", capabilities: ["cpu", "gpu"] });
    expect((await api.tasks.claim.mutate({ agentId: "cpu-agent" }))?.id).toBe(second.id);
  });

  // An hour-old heartbeat, a server restarted on its file: the agent's silence counts from the
  // start-up, not from its last heartbeat. Two servers each, so that no verdict depends on how
  // long a start-up takes on a busy machine: TTLs far longer than any start-up for the first look,
  // short ones (with a generous wait) for the silence that goes on after it.
  const restartAfterAnHourDown = async (dir: string) => {
    const first = await startTestServer({ agentHealthCheckMs: 60_000 }, dir);
    await first.api.agents.register.mutate({ agentId: "survivor", capabilities: [] });
    const task = await first.api.tasks.enqueue.mutate({ payload: {} });
    await first.api.tasks.claim.mutate({ agentId: "survivor", leaseMs: 600_000 });
    withDatabase(first, (db) => db.prepare(`UPDATE agents SET lastHeartbeatAt = ?`).run(Date.now() - 3_600_000));
    await first.stop();
    return task;
  };

  it("after a restart, heartbeats missed while the server was down do not count against an agent", async () => {
    const dir = makeTempDir();
    const task = await restartAfterAnHourDown(dir);
    await using second = await startTestServer({ agentStaleMs: 60_000, agentOfflineMs: 120_000, agentHealthCheckMs: 20, agentStartupGraceMs: 600_000 }, dir);
    await second.server.services.jobs.healthMonitor.runNow();
    expect((await second.api.agents.get.query({ agentId: "survivor" })).health).toBe("healthy");
    expect((await second.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed");
  });

  it("after a restart, an agent that stays silent goes offline once its TTL has passed since the start-up, within the grace", async () => {
    const dir = makeTempDir();
    const task = await restartAfterAnHourDown(dir);
    const beforeStartUp = Date.now();
    await using second = await startTestServer({ agentStaleMs: 1000, agentOfflineMs: 2000, agentHealthCheckMs: 20, agentStartupGraceMs: 600_000 }, dir);
    await vi.waitFor(async () => expect((await second.api.tasks.get.query({ taskId: task.id })).status).toBe("pending"), { timeout: 30_000, interval: 50 });
    expect((await second.api.agents.get.query({ agentId: "survivor" })).health).toBe("offline");
    // Offline no sooner than agentOfflineMs after the start-up (the hour-old heartbeat would have made it offline at once).
    const [offline] = await second.api.events.list.query({ afterSeq: 0, types: ["agent.offline"] });
    expect(offline!.createdAt.getTime() - beforeStartUp).toBeGreaterThanOrEqual(2000);
  });
});
