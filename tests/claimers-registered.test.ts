// Every claimer is known: claiming, heartbeating a lease or settling as an agent the registry
// never heard of registers it, so health, offline release and stealing cover it. Before, a claim
// by an unregistered agent with a one-hour lease was stuck for the hour.
import { describe, expect, it, vi } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("every claimer is known", () => {
  it("a claim registers an unknown agent (with the capabilities it claimed with); going silent releases its task long before the lease", async () => {
    await using t = await startTestServer({ agentStaleMs: 200, agentOfflineMs: 400, agentHealthCheckMs: 50, agentStartupGraceMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ queue: "q", capability: "gpu" });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "ghost", capabilities: ["gpu"], leaseMs: 3_600_000 });
    expect(claimed?.id).toBe(task.id);
    expect(await t.api.agents.get.query({ agentId: "ghost" })).toMatchObject({ agentId: "ghost", capabilities: ["gpu"] });
    const [registered] = await t.api.events.list.query({ types: ["agent.registered"] });
    expect(registered?.payload).toEqual({ agentId: "ghost", capabilities: ["gpu"], health: "healthy", implicit: true });

    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("pending"), { timeout: 30_000, interval: 25 });
    expect(claimed!.leaseExpiresAt!.getTime() - Date.now()).toBeGreaterThan(3_000_000);
    const [expired] = await t.api.events.list.query({ types: ["task.lease_expired"] });
    expect(expired?.payload).toMatchObject({ taskId: task.id, agentId: "ghost", reason: "agent ghost went offline" });
  });

  it("a claim that finds nothing still registers the claimer; a settle or lease heartbeat refreshes it (once a second at most)", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    expect(await t.api.tasks.claim.mutate({ agentId: "early" })).toBeNull();
    expect((await t.api.agents.get.query({ agentId: "early" })).capabilities).toEqual([]);
    const task = await t.api.tasks.enqueue.mutate({});
    await t.api.tasks.claim.mutate({ agentId: "early" });
    const before = (await t.api.agents.get.query({ agentId: "early" })).lastHeartbeatAt.getTime();
    // Work refreshes an agent's heartbeat at most once a second (health is judged in seconds).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "early" });
    expect((await t.api.agents.get.query({ agentId: "early" })).lastHeartbeatAt.getTime()).toBeGreaterThan(before);
    // Registered once: one agent.registered event, however many claims.
    expect((await t.api.events.list.query({ types: ["agent.registered"] })).length).toBe(1);
  });

  it("stealing from an agent the registry never heard of is a 404 that says so, not an empty answer", async () => {
    await using t = await startTestServer();
    const answer = await rest(t.url, "POST", "/tasks/steal", { agentId: "thief", fromAgentId: "ghost" });
    expect(answer.status).toBe(404);
    expect(answer.body.message).toBe('agent "ghost" not found');
    // A known agent with nothing stealable: an empty answer.
    await t.api.agents.register.mutate({ agentId: "busy", capabilities: [] });
    expect(await rest(t.url, "POST", "/tasks/steal", { agentId: "thief", fromAgentId: "busy" })).toEqual({ status: 200, body: [] });
  });
});
