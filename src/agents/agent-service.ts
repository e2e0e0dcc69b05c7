// The agent registry's rules: registration, heartbeats, health derived from heartbeat age,
// and freeing a dead agent's work the moment it is seen offline.
import type { Config } from "../config.js";
import { fromJsonObjectText, toDate } from "../db/columns.js";
import type { Prisma } from "../db/prisma.js";
import type { Writer } from "../db/writer.js";
import { notFound } from "../errors.js";
import { assertJsonDepth } from "../json-value.js";
import type { EventStore } from "../events/event-store.js";
import type { LeaseRecovery } from "../tasks/lease-recovery.js";
import type { Agent, AgentHealth } from "./agent-schemas.js";
import type { AgentRow, AgentStore } from "./agent-store.js";
import { healthAt, type HealthCutoffs } from "./health-cutoffs.js";

const HEALTH_RANK: Record<AgentHealth, number> = { healthy: 0, stale: 1, offline: 2 };

export interface AgentServiceDeps {
  config: Config;
  writer: Writer;
  prisma: Prisma;
  agents: AgentStore;
  events: EventStore;
  /** Frees the leases of an agent that went offline or deregistered. */
  leases: LeaseRecovery;
  /** Forgets that work showed an agent alive lately (task-transitions.ts), once it deregistered. */
  forgetAgent: (agentId: string) => void;
  /** The stale/offline cut-offs at a given time (health-cutoffs.ts). */
  healthCutoffs: (now: number) => HealthCutoffs;
}

export class AgentService {
  constructor(private readonly d: AgentServiceDeps) {}

  register(request: { agentId: string; capabilities: string[]; metadata: Record<string, unknown> }): Promise<Agent> {
    assertJsonDepth("metadata", request.metadata, this.d.config.maxJsonDepth);
    return this.d.writer.write((ctx) => {
      const before = this.d.agents.get(request.agentId);
      const capabilities = [...new Set(request.capabilities)].sort();
      const row = this.d.agents.upsert(request.agentId, capabilities, JSON.stringify(request.metadata), ctx.now);
      this.d.events.appendSystem(ctx, before ? "agent.updated" : "agent.registered", {
        agentId: request.agentId,
        capabilities,
        health: "healthy",
        ...(before ? { previousHealth: before.health } : {}),
      });
      return this.toAgent(row, capabilities, ctx.now);
    });
  }

  /**
   * Liveness, status and load. An agent heard of for the first time is registered (with no
   * capabilities), so health and offline release cover it like any other.
   */
  heartbeat(request: { agentId: string; status?: string | undefined; load?: number | undefined }): Promise<Agent> {
    return this.d.writer.write((ctx) => {
      if (this.d.agents.registerIfAbsent(request.agentId, [], ctx.now)) {
        this.d.events.appendSystem(ctx, "agent.registered", { agentId: request.agentId, capabilities: [], health: "healthy", implicit: true });
      }
      const before = this.d.agents.get(request.agentId);
      const row = this.d.agents.heartbeat(request.agentId, request.status ?? null, request.load ?? null, ctx.now);
      if (!before || !row) throw notFound("AGENT_NOT_FOUND", request.agentId);
      // Publish changes only: a heartbeat that changes nothing is not an event.
      if (before.health !== "healthy" || before.status !== row.status) {
        this.d.agents.setHealth(request.agentId, "healthy", ctx.now);
        this.d.events.appendSystem(ctx, "agent.updated", { agentId: request.agentId, health: "healthy", previousHealth: before.health, status: row.status });
      }
      return this.toAgent({ ...row, health: "healthy" }, this.d.agents.capabilitiesOf(request.agentId), ctx.now);
    });
  }

  /** Removes the agent; tasks it still held go back to the queue at once. */
  deregister(agentId: string): Promise<Agent> {
    return this.d.writer.write((ctx) => {
      const row = this.d.agents.get(agentId);
      if (!row) throw notFound("AGENT_NOT_FOUND", agentId);
      const capabilities = this.d.agents.capabilitiesOf(agentId);
      const released = this.d.leases.releaseClaimsOf(ctx, agentId, `agent ${agentId} deregistered`);
      this.d.agents.delete(agentId);
      this.d.events.appendSystem(ctx, "agent.deregistered", { agentId, releasedTasks: released });
      ctx.afterCommit(() => this.d.forgetAgent(agentId));
      return this.toAgent(row, capabilities, ctx.now);
    });
  }

  async get(agentId: string): Promise<Agent> {
    const row = await this.d.prisma.agent.findUnique({ where: { id: agentId }, include: { capabilities: true } });
    if (!row) throw notFound("AGENT_NOT_FOUND", agentId);
    return this.toAgent(row, row.capabilities.map((c) => c.capability), Date.now());
  }

  async list(filter: { capability?: string | undefined; health?: AgentHealth | undefined; status?: string | undefined }): Promise<Agent[]> {
    const now = Date.now();
    const rows = await this.d.prisma.agent.findMany({
      where: {
        status: filter.status,
        capabilities: filter.capability ? { some: { capability: filter.capability } } : undefined,
        lastHeartbeatAt: filter.health ? this.heartbeatRange(filter.health, now) : undefined,
      },
      include: { capabilities: true },
      orderBy: { id: "asc" },
    });
    return rows.map((row) => this.toAgent(row, row.capabilities.map((c) => c.capability), now));
  }

  /** Agents offering a capability: healthy first, then stale, then offline; least loaded first within each. */
  async findByCapability(capability: string): Promise<Agent[]> {
    const agents = await this.list({ capability });
    return agents.sort((a, b) => HEALTH_RANK[a.health] - HEALTH_RANK[b.health] || a.load - b.load || a.agentId.localeCompare(b.agentId));
  }

  /** Publishes health transitions; an agent seen offline loses its leases at once. Run periodically. */
  checkHealth(): Promise<number> {
    return this.d.writer.write((ctx) => {
      const changes = this.d.agents.healthChanges(this.d.healthCutoffs(ctx.now));
      for (const agent of changes) {
        this.d.agents.setHealth(agent.id, agent.current, ctx.now);
        const released = agent.current === "offline" ? this.d.leases.releaseClaimsOf(ctx, agent.id, `agent ${agent.id} went offline`) : 0;
        const type = agent.current === "healthy" ? "agent.updated" : `agent.${agent.current}`;
        this.d.events.appendSystem(ctx, type, {
          agentId: agent.id,
          health: agent.current,
          previousHealth: agent.health,
          lastHeartbeatAt: toDate(agent.lastHeartbeatAt).toISOString(),
          ...(agent.current === "offline" ? { releasedTasks: released } : {}),
        });
      }
      return changes.length;
    });
  }

  private heartbeatRange(health: AgentHealth, now: number): { gt?: Date; lte?: Date } {
    const cutoffs = this.d.healthCutoffs(now);
    const stale = new Date(cutoffs.staleBefore);
    const offline = new Date(cutoffs.offlineBefore);
    if (health === "healthy") return { gt: stale };
    if (health === "stale") return { gt: offline, lte: stale };
    return { lte: offline };
  }

  private toAgent(row: Omit<AgentRow, "health"> & { health: string }, capabilities: string[], now: number): Agent {
    return {
      agentId: row.id,
      capabilities,
      metadata: fromJsonObjectText(row.metadata),
      status: row.status,
      health: healthAt(toDate(row.lastHeartbeatAt).getTime(), this.d.healthCutoffs(now)),
      load: row.load,
      registeredAt: toDate(row.registeredAt),
      lastHeartbeatAt: toDate(row.lastHeartbeatAt),
      updatedAt: toDate(row.updatedAt),
    };
  }

}
