// The agent registry's writes, as the database writer thread runs them: registration, heartbeats,
// deregistration, and the health monitor's transitions, which free a dead agent's work the moment
// it is seen offline.
import { toDate } from "../db/columns.js";
import type { WriteContext } from "../db/writer.js";
import { notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { offlineShiftMs, type LockWaitGrace } from "../tasks/lock-wait-grace.js";
import type { TaskTransitions } from "../tasks/task-transitions.js";
import type { TaskStore } from "../tasks/task-store.js";
import type { Agent } from "./agent-schemas.js";
import type { AgentStore } from "./agent-store.js";
import type { AgentCordonStore } from "./agent-cordon-store.js";
import { toAgent } from "./agent-view.js";
import type { HealthCutoffs } from "./health-cutoffs.js";

export interface AgentCommandDeps {
  agents: AgentStore;
  cordons: AgentCordonStore;
  tasks: TaskStore;
  events: EventStore;
  transitions: TaskTransitions;
  healthCutoffs: (now: number) => HealthCutoffs;
  /** What a health check allows for a heartbeat waiting for another process's lock (tasks/lock-wait-grace.ts). */
  lockWaitGrace: () => LockWaitGrace;
  /** Ends every named lock an agent holds, each with its lock.released (`reason`): its deregistration. How many. */
  releaseLocks: (ctx: WriteContext, request: { agentId: string; reason: string }) => number;
  /** Ends every semaphore permit `agentId` holds, each with its semaphore.released. How many. */
  releasePermits: (ctx: WriteContext, request: { agentId: string; reason: string }) => number;
  /** Deletes every key tied to `agentId`'s life, each with its kv.deleted saying why. How many. */
  dropEphemeralKeys: (ctx: WriteContext, request: { agentId: string; reason: "owner offline" | "owner deregistered" }) => number;
  /** How many keys present at `now` are tied to `agentId`'s life. */
  ephemeralKeysOf: (agentId: string, now: number) => number;
}

/** The claims of agents gone (offline, deregistered) one write frees at most; the rest go a write at a time. */
export const RELEASE_BATCH = 500;

/**
 * The keys tied to agents' lives one health check's write deletes, about: an agent seen offline
 * has all of its keys deleted in the write that sees it so (up to maxEphemeralKeysPerAgent, which
 * may pass this for the write's first such agent); the agents after it wait for the next write.
 */
export const EPHEMERAL_KEYS_BATCH = 1000;

export function agentCommands(d: AgentCommandDeps) {
  return {
    "agents.register": (ctx: WriteContext, request: { agentId: string; capabilities: string[]; metadata: Record<string, unknown> }): Agent => {
      const before = d.agents.get(request.agentId);
      const capabilities = [...new Set(request.capabilities)].sort();
      const row = d.agents.upsert(request.agentId, capabilities, JSON.stringify(request.metadata), ctx.now);
      d.events.appendSystem(ctx, before ? "agent.updated" : "agent.registered", {
        agentId: request.agentId,
        capabilities,
        health: "healthy",
        ...(before ? { previousHealth: before.health } : {}),
      });
      return toAgent(row, capabilities, d.healthCutoffs(ctx.now), d.cordons.get(request.agentId));
    },

    /**
     * Liveness, status and load. An agent heard of for the first time is registered (with no
     * capabilities), so health and offline release cover it like any other.
     */
    "agents.heartbeat": (ctx: WriteContext, request: { agentId: string; status?: string | undefined; load?: number | undefined }): Agent => {
      if (d.agents.registerIfAbsent(request.agentId, [], ctx.now)) {
        d.events.appendSystem(ctx, "agent.registered", { agentId: request.agentId, capabilities: [], health: "healthy", implicit: true });
      }
      const before = d.agents.get(request.agentId);
      const row = d.agents.heartbeat(request.agentId, request.status ?? null, request.load ?? null, ctx.now);
      if (!before || !row) throw notFound("AGENT_NOT_FOUND", request.agentId);
      // Publish changes only: a heartbeat that changes nothing is not an event.
      if (before.health !== "healthy" || before.status !== row.status) {
        d.agents.setHealth(request.agentId, "healthy", ctx.now);
        d.events.appendSystem(ctx, "agent.updated", { agentId: request.agentId, health: "healthy", previousHealth: before.health, status: row.status });
      }
      // The cordon as read with the agent above: a heartbeat does not change it.
      return toAgent({ ...row, health: "healthy" }, d.agents.capabilitiesOf(request.agentId), d.healthCutoffs(ctx.now), before.cordon);
    },

    /**
     * Retention: removes up to `limit` agents offline with no heartbeat since `before`, no claim
     * and no named lock held, each with its agent.deregistered event, as a deregistration would, and its cordon
     * (gone that long, it is not waited for). How many went.
     */
    "agents.pruneGone": (ctx: WriteContext, args: { before: number; limit: number }): number => {
      // An agent holding a named lock whose lease runs on is alive to the lock's eyes: it stays.
      const gone = d.agents.pruneGone(args.before, args.limit, ctx.now);
      for (const agentId of gone) {
        d.cordons.remove(agentId);
        d.events.appendSystem(ctx, "agent.deregistered", { agentId, releasedTasks: 0, reason: "retention" });
        d.transitions.forgetAgent(agentId);
        ctx.afterCommit(() => d.transitions.forgetAgent(agentId));
      }
      return gone.length;
    },

    /**
     * Removes the agent; tasks it still held go back to the queue, in the same write when they are
     * RELEASE_BATCH or fewer. An agent holding more has RELEASE_BATCH of them freed and stays
     * (`removed: null`): AgentService.deregister calls again, counting them in `releasedBefore`
     * (the event's releasedTasks counts them all).
     */
    "agents.deregister": (ctx: WriteContext, args: { agentId: string; releasedBefore: number }): { removed: Agent | null; released: number } => {
      const { agentId } = args;
      const row = d.agents.get(agentId);
      if (!row) throw notFound("AGENT_NOT_FOUND", agentId);
      const reason = `agent ${agentId} deregistered`;
      // Read once: one more than a write's share says whether the agent stays for another write.
      const held = d.tasks.claimsHeldBy(agentId, RELEASE_BATCH + 1);
      const released = held.slice(0, RELEASE_BATCH);
      for (const claim of released) d.transitions.expireClaim(ctx, claim, reason);
      if (held.length > RELEASE_BATCH) return { removed: null, released: released.length };
      const capabilities = d.agents.capabilitiesOf(agentId);
      d.agents.delete(agentId);
      // Its named locks and semaphore permits go with it (at most maxLocksPerAgent): nobody is left to renew them.
      const releasedLocks = d.releaseLocks(ctx, { agentId, reason: "deregistered" });
      const releasedPermits = d.releasePermits(ctx, { agentId, reason: "deregistered" });
      // So do the keys tied to its life (at most maxEphemeralKeysPerAgent).
      const deletedKeys = d.dropEphemeralKeys(ctx, { agentId, reason: "owner deregistered" });
      d.events.appendSystem(ctx, "agent.deregistered", {
        agentId,
        releasedTasks: args.releasedBefore + released.length,
        ...(releasedLocks > 0 ? { releasedLocks } : {}),
        ...(releasedPermits > 0 ? { releasedPermits } : {}),
        ...(deletedKeys > 0 ? { deletedKeys } : {}),
      });
      // Forgotten now (a claim later in this batch must register it again; rolled back, the agent
      // is only looked up once more) and after the commit (a sign of life earlier in this batch
      // records the agent as seen when the batch commits, after this).
      d.transitions.forgetAgent(agentId);
      ctx.afterCommit(() => d.transitions.forgetAgent(agentId));
      return { removed: toAgent(row, capabilities, d.healthCutoffs(ctx.now), row.cordon), released: released.length };
    },

    /**
     * Publishes health transitions as of `asOf` (when the check was asked for, not when it got the
     * write lock: heartbeats sent before it wait ahead of it in the queue); an agent seen offline
     * loses its leases at once. On a file another process writes to, as of the lock-wait grace
     * before `asOf`: a heartbeat sent in time there may still wait for the lock. Run periodically.
     * `sharedGraceMs`: how far the monitor's look on the reader may lag asOf. At most `limit`
     * agents a write: each change appends an event and may release claims; RELEASE_BATCH claims
     * at most are freed with them (an agent's releasedTasks counts those), the rest by
     * agents.releaseOffline, a write at a time. An agent seen offline has the keys tied to its
     * life deleted in the same write; once EPHEMERAL_KEYS_BATCH of them were, the agents left are
     * the next write's (`more`).
     */
    "agents.checkHealth": (ctx: WriteContext, args: { asOf: number; limit: number }): { changed: number; more: boolean; sharedGraceMs: number } => {
      const sharedGraceMs = offlineShiftMs(d.lockWaitGrace());
      const changes = d.agents.healthChanges(d.healthCutoffs(args.asOf - sharedGraceMs), args.limit, args.asOf);
      let budget = RELEASE_BATCH;
      let keysDeleted = 0;
      let changed = 0;
      for (const agent of changes) {
        let deletedKeys = 0;
        if (agent.current === "offline") {
          const keys = d.ephemeralKeysOf(agent.id, ctx.now);
          // The write's first agent goes whatever it holds: each write makes headway.
          if (keys > 0 && keysDeleted > 0 && keysDeleted + keys > EPHEMERAL_KEYS_BATCH) return { changed, more: true, sharedGraceMs };
          if (keys > 0) deletedKeys = d.dropEphemeralKeys(ctx, { agentId: agent.id, reason: "owner offline" });
          keysDeleted += deletedKeys;
        }
        changed += 1;
        d.agents.setHealth(agent.id, agent.current, ctx.now);
        let released = 0;
        if (agent.current === "offline") {
          released = budget > 0 ? d.transitions.releaseClaimsOf(ctx, agent.id, `agent ${agent.id} went offline`, budget) : 0;
          // Its share used up, it may hold more: every claim it took until now is forfeit, and goes next.
          if (released === budget) d.agents.forfeitLeases(agent.id, ctx.now);
          budget -= released;
        }
        const type = agent.current === "healthy" ? "agent.updated" : agent.current === "stale" ? "agent.stale" : "agent.offline";
        d.events.appendSystem(ctx, type, {
          agentId: agent.id,
          health: agent.current,
          previousHealth: agent.health,
          lastHeartbeatAt: toDate(agent.lastHeartbeatAt).toISOString(),
          ...(agent.current === "offline" ? { releasedTasks: released } : {}),
          ...(deletedKeys > 0 ? { deletedKeys } : {}),
        });
      }
      return { changed, more: changed >= args.limit, sharedGraceMs };
    },

    /**
     * Frees up to `limit` forfeit claims: those agents seen offline took before it, beyond their
     * offline write's share (or left by a server that stopped between writes), whether or not the
     * agent came back since; never one it took since. Clears the marks once none is left. How many.
     */
    "agents.releaseOffline": (ctx: WriteContext, limit: number): number => {
      const released = d.transitions.releaseForfeited(ctx, limit);
      if (released < limit) d.agents.clearForfeits();
      return released;
    },
  };
}
