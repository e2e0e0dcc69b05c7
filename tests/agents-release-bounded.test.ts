// An agent gone with thousands of leases (a crashed drainer that took a whole backlog) gets them
// released a bounded number a write: one write freeing 20,000 leases held every other write
// 3.5-4.9 s. Offline and deregistration alike; the operator's log says it in a few lines, not one
// a task.
import { describe, expect, it, vi } from "vitest";
import { RELEASE_BATCH } from "../src/agents/agent-commands.js";
import { logOperatorEvents } from "../src/observability/operator-log.js";
import type { CoordinationEvent } from "../src/events/event-schemas.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

const HELD = RELEASE_BATCH * 2 + 200;

/** `agentId` registered and holding HELD claims with leases an hour long. */
async function drainer(t: TestServer, agentId: string): Promise<void> {
  await t.api.agents.register.mutate({ agentId, capabilities: [] });
  withDatabase(t, (db) => {
    const insert = db.prepare(
      `INSERT INTO tasks (id, queue, payload, status, attempts, leaseOwner, leaseExpiresAt, leaseToken, claimedAt, runAt, createdAt, updatedAt) VALUES (?, 'big', '{}', 'claimed', 1, ?, ?, 1, ?, 0, 0, 0)`,
    );
    const now = Date.now();
    db.transaction(() => {
      for (let i = 0; i < HELD; i++) insert.run(`${agentId}-${i}`, agentId, now + 3_600_000, now);
    })();
  });
}

const countOf = (t: TestServer, status: string) => withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE queue = 'big' AND status = ?`).pluck().get(status) as number);

describe("releasing a gone agent's claims", () => {
  it("offline: the offline write frees RELEASE_BATCH, the rest follow a write at a time; each task once", async () => {
    await using t = await startTestServer({ agentStaleMs: 30_000, agentOfflineMs: 60_000, agentStartupGraceMs: 0, agentHealthCheckMs: 50 });
    await drainer(t, "drainer");
    withDatabase(t, (db) => db.prepare(`UPDATE agents SET lastHeartbeatAt = ? WHERE id = 'drainer'`).run(Date.now() - 120_000));
    await vi.waitFor(() => expect(countOf(t, "pending")).toBe(HELD), { timeout: 30_000, interval: 50 });
    const [offline] = await t.api.events.list.query({ types: ["agent.offline"] });
    expect(offline?.payload).toMatchObject({ agentId: "drainer", releasedTasks: RELEASE_BATCH });
    const expired = await t.api.events.list.query({ types: ["task.lease_expired"], limit: 1000, afterSeq: 0 });
    const all = [...expired];
    while (all.length < HELD) {
      const page = await t.api.events.list.query({ types: ["task.lease_expired"], limit: 1000, afterSeq: all.at(-1)!.seq });
      if (page.length === 0) break;
      all.push(...page);
    }
    expect(new Set(all.map((e) => (e.payload as { taskId: string }).taskId)).size).toBe(HELD);
    expect(all.every((e) => (e.payload as { reason: string }).reason === "agent drainer went offline")).toBe(true);
  });

  it("an agent back before the rest went loses its old claims still, and keeps the ones it takes since", async () => {
    // The monitor's job is idle (a minute apart): its writes run here, in order.
    await using t = await startTestServer({ agentStaleMs: 30_000, agentOfflineMs: 60_000, agentStartupGraceMs: 0, agentHealthCheckMs: 60_000 });
    await drainer(t, "D");
    const beat = Date.now() - 120_000;
    withDatabase(t, (db) => db.prepare(`UPDATE agents SET lastHeartbeatAt = ? WHERE id = 'D'`).run(beat));
    const { db } = t.server.services;
    await db.write("agents.checkHealth", { asOf: Date.now(), limit: 500 });
    expect(countOf(t, "claimed")).toBe(HELD - RELEASE_BATCH);
    // Back: a restarted worker under the same id heartbeats and claims a new task.
    await t.api.agents.heartbeat.mutate({ agentId: "D", status: "restarted" });
    const fresh = await t.api.tasks.enqueue.mutate({ queue: "fresh", payload: {}, maxAttempts: 1 });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "D", queues: ["fresh"], context: false });
    expect(claimed?.id).toBe(fresh.id);
    while ((await db.write("agents.releaseOffline", RELEASE_BATCH)) > 0);
    expect(countOf(t, "claimed")).toBe(0);
    expect(countOf(t, "pending")).toBe(HELD);
    expect((await t.api.tasks.get.query({ taskId: fresh.id })).status).toBe("claimed");
    expect((await t.api.tasks.complete.mutate({ taskId: fresh.id, agentId: "D", leaseToken: claimed!.leaseToken, result: "done" })).status).toBe("completed");
    // Nothing is left marked: the monitor's next look finds nothing to write.
    expect(await db.read("agents.offlineHolding", undefined)).toBe(false);
  });

  it("deregistration frees them a write at a time, then removes the agent; its event counts them all", async () => {
    await using t = await startTestServer();
    await drainer(t, "leaving");
    await t.api.agents.deregister.mutate({ agentId: "leaving" });
    expect(countOf(t, "pending")).toBe(HELD);
    expect(countOf(t, "claimed")).toBe(0);
    const [gone] = await t.api.events.list.query({ types: ["agent.deregistered"] });
    expect(gone?.payload).toEqual({ agentId: "leaving", releasedTasks: HELD });
    await expect(t.api.agents.deregister.mutate({ agentId: "leaving" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
  });

  it("the operator's log: a handful of expired leases line by line, a flood in one line per reason", () => {
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const log = { info: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }) } as never;
    const expiry = (seq: number, reason: string): CoordinationEvent =>
      ({ seq, type: "task.lease_expired", source: "coordination", target: null, createdAt: new Date(0), payload: { taskId: `t${seq}`, queue: "q", agentId: "a", attempt: 1, reason } }) as CoordinationEvent;
    logOperatorEvents(log, [expiry(1, "lease expired (held by a)"), expiry(2, "lease expired (held by a)")]);
    expect(lines.map((l) => [l.message, l.fields.taskId])).toEqual([
      ["lease expired: the task goes back to its queue", "t1"],
      ["lease expired: the task goes back to its queue", "t2"],
    ]);
    lines.length = 0;
    logOperatorEvents(log, [...Array.from({ length: 500 }, (_, i) => expiry(10 + i, "agent d went offline")), expiry(900, "lease expired (held by b)")]);
    expect(lines.map((l) => l.message)).toEqual(["leases expired: 500 tasks go back to their queues", "lease expired: the task goes back to its queue"]);
    expect(lines[0]!.fields).toMatchObject({ event: "task.lease_expired", count: 500, reason: "agent d went offline", firstSeq: 10, lastSeq: 509, taskIds: Array.from({ length: 10 }, (_, i) => `t${10 + i}`) });
  });
});
