// Cordons, as the database writer thread runs them: an operator's (agents.cordon, agents.uncordon)
// and the server's quarantine of an agent that fails run after run (FailureStreaks). A cordoned
// agent's claims and steals take nothing (task-commands.ts); the leases it holds run on and
// settle as usual, so cordoning drains an agent, as a node is drained before maintenance.
import { setNewest } from "../bounded-map.js";
import type { WriteContext } from "../db/writer.js";
import { notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import type { Agent, CordonRequest } from "./agent-schemas.js";
import { cordonHolds, type AgentCordonStore, type CordonRow } from "./agent-cordon-store.js";
import type { AgentStore } from "./agent-store.js";
import { toAgent } from "./agent-view.js";
import type { HealthCutoffs } from "./health-cutoffs.js";

export interface CordonDeps {
  agents: AgentStore;
  cordons: AgentCordonStore;
  events: EventStore;
  healthCutoffs: (now: number) => HealthCutoffs;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * Takes away `row`, a cordon whose `until` passed, with its agent.uncordoned (`lapsed`): claims
 * read it as lifted at `until` already; subscribers and the log learn it here, whichever write
 * meets it first (the health monitor's, or a cordon, an uncordon or a quarantine of its agent).
 */
function liftLapsed(ctx: WriteContext, d: { cordons: AgentCordonStore; events: EventStore }, row: CordonRow): void {
  d.cordons.remove(row.agentId);
  d.events.appendSystem(ctx, "agent.uncordoned", {
    agentId: row.agentId,
    uncordonedBy: null,
    cordonedAt: new Date(Number(row.cordonedAt)).toISOString(),
    lapsed: true,
    ...(row.automatic ? { automatic: true as const } : {}),
  });
}

/** `agentId`'s cordon in force at `ctx.now`, or undefined; one that lapsed is lifted here, with its event (liftLapsed). */
function cordonInForce(ctx: WriteContext, d: { cordons: AgentCordonStore; events: EventStore }, agentId: string): CordonRow | undefined {
  const current = d.cordons.get(agentId);
  if (current === undefined || cordonHolds(current, ctx.now)) return current;
  liftLapsed(ctx, d, current);
  return undefined;
}

export function cordonCommands(d: CordonDeps) {
  const view = (agentId: string, now: number): Agent => {
    const row = d.agents.get(agentId);
    if (!row) throw notFound("AGENT_NOT_FOUND", agentId);
    return toAgent(row, d.agents.capabilitiesOf(agentId), d.healthCutoffs(now), row.cordon);
  };

  return {
    /**
     * Cordons a registered agent: from this write on no claim or steal hands it a task. One
     * cordoned already for good (no `until`) by the same reason is answered as it is, no event;
     * any other cordon (an automatic quarantine, one that lifts by itself, another reason) is
     * replaced. AGENT_NOT_FOUND for an agent not registered.
     */
    "agents.cordon": (ctx: WriteContext, request: CordonRequest & { cordonedBy: string | null }): Agent => {
      if (!d.agents.get(request.agentId)) throw notFound("AGENT_NOT_FOUND", request.agentId);
      const reason = request.reason ?? "";
      const until = request.forMs === undefined ? null : ctx.now + request.forMs;
      const current = cordonInForce(ctx, d, request.agentId);
      const same = current !== undefined && current.until === null && until === null && !current.automatic && current.reason === reason;
      if (!same) {
        d.cordons.set({ agentId: request.agentId, reason, cordonedBy: request.cordonedBy, cordonedAt: ctx.now, until, automatic: false });
        d.events.appendSystem(ctx, "agent.cordoned", { agentId: request.agentId, reason: request.reason ?? null, cordonedBy: request.cordonedBy, until: iso(until), automatic: false });
      }
      return view(request.agentId, ctx.now);
    },

    /**
     * Lifts a registered agent's cordon (an automatic one too): its claims take tasks again, and
     * its parked claims look at once. One not cordoned is answered as it is, no event.
     * AGENT_NOT_FOUND for an agent not registered (a cordon outlives a deregistration: register
     * the agent again to lift it).
     */
    "agents.uncordon": (ctx: WriteContext, request: { agentId: string; uncordonedBy: string | null }): Agent => {
      if (!d.agents.get(request.agentId)) throw notFound("AGENT_NOT_FOUND", request.agentId);
      const current = cordonInForce(ctx, d, request.agentId);
      if (current !== undefined) {
        d.cordons.remove(request.agentId);
        d.events.appendSystem(ctx, "agent.uncordoned", { agentId: request.agentId, uncordonedBy: request.uncordonedBy, cordonedAt: new Date(Number(current.cordonedAt)).toISOString() });
      }
      return view(request.agentId, ctx.now);
    },

    /**
     * Takes away up to `limit` cordons whose `until` passed, each with its agent.uncordoned event
     * (`lapsed`): they stopped holding at `until` (claims read them so), and subscribers and the
     * log learn it here. Run by the health monitor. How many went.
     */
    "agents.liftLapsedCordons": (ctx: WriteContext, limit: number): number => {
      const lapsed = d.cordons.lapsed(ctx.now, limit);
      for (const row of lapsed) liftLapsed(ctx, d, row);
      return lapsed.length;
    },
  };
}

/** Agents whose streak is kept at most: the oldest streak goes first past it (a process's memory stays bounded). */
const MAX_STREAKS = 100_000;

/**
 * The server's quarantine (quarantineAfterFailures): by agent, the runs it failed in a row with no
 * complete between, as this process saw them (each server process on a file counts its own
 * calls; a restart starts them over). The write that fails its `after`-th run in a row cordons
 * the agent for `quarantineMs`, automatic, with its agent.cordoned event: an agent that fails
 * everything it takes (a bad deploy, a missing credential) would otherwise drain its queues into
 * dead letters, taking the tasks faster than any healthy agent.
 * A count changes with its write's commit: within a transaction the writes see one another's
 * counts (`pending`), and a batch rolled back and run again (the writer's savepoint retry) counts
 * its writes once.
 */
export class FailureStreaks {
  /** The counts as committed. */
  private readonly streaks = new Map<string, number>();
  /** The counts as the current transaction's writes left them, not committed yet. */
  private pending: { transaction: number; streaks: Map<string, number> } | undefined;

  constructor(private readonly d: { cordons: AgentCordonStore; events: EventStore; after: number; quarantineMs: number; transaction: () => number }) {}

  /** The counts the current transaction's writes left, not committed yet (a new transaction starts with none). */
  private pendingNow(): Map<string, number> {
    const transaction = this.d.transaction();
    if (this.pending?.transaction !== transaction) this.pending = { transaction, streaks: new Map() };
    return this.pending.streaks;
  }

  /** The streak of `agentId` as this transaction sees it. */
  private streakOf(agentId: string): number {
    return this.pendingNow().get(agentId) ?? this.streaks.get(agentId) ?? 0;
  }

  /** Sets the streak of `agentId` to `next` of it, for this transaction now and from its commit on. */
  private advance(ctx: WriteContext, agentId: string, next: (streak: number) => number): number {
    const streak = next(this.streakOf(agentId));
    this.pendingNow().set(agentId, streak);
    ctx.afterCommit(() => (streak === 0 ? this.streaks.delete(agentId) : setNewest(this.streaks, agentId, streak, MAX_STREAKS)));
    return streak;
  }

  /** `agentId` failed its run of `taskId` (tasks.fail, sent by the agent) in this write, with `error`. */
  failed(ctx: WriteContext, agentId: string, taskId: string, error: string): void {
    if (this.d.after <= 0) return;
    const streak = this.advance(ctx, agentId, (streak) => streak + 1);
    if (streak < this.d.after) return;
    this.advance(ctx, agentId, () => 0);
    // Cordoned already (by an operator, say, or a quarantine that runs on): left as it is.
    if (cordonInForce(ctx, this.d, agentId) !== undefined) return;
    const until = ctx.now + this.d.quarantineMs;
    const reason = `quarantined: failed ${streak} runs in a row, the last of task ${taskId}: ${shortened(error, 200)}`;
    this.d.cordons.set({ agentId, reason, cordonedBy: null, cordonedAt: ctx.now, until, automatic: true });
    this.d.events.appendSystem(ctx, "agent.cordoned", { agentId, reason, cordonedBy: null, until: iso(until), automatic: true, failures: streak });
  }

  /** `agentId`'s run completed in this write: its streak starts over. */
  completed(ctx: WriteContext, agentId: string | null): void {
    if (this.d.after <= 0 || agentId === null || this.streakOf(agentId) === 0) return;
    this.advance(ctx, agentId, () => 0);
  }
}

/** `text` cut to `max` characters (code points: no half of a surrogate pair), with an ellipsis when cut. */
function shortened(text: string, max: number): string {
  const chars = [...text];
  return chars.length > max ? `${chars.slice(0, max).join("")}…` : text;
}
