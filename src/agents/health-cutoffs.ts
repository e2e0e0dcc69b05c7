// When a heartbeat counts as stale or offline: one rule for the health monitor, agent reads,
// list filters and work stealing.
// After a server restart, the heartbeats agents could not send while it was down must not count
// against them: for agentStartupGraceMs after start-up, heartbeat age is measured from start-up
// at the earliest. Otherwise the first check after a long outage would call every agent offline
// and take back all their tasks (charging attempts) seconds before they heartbeat again.
import type { Config } from "../config.js";
import type { AgentHealth } from "./agent-schemas.js";

export interface HealthCutoffs {
  /** A last heartbeat at or before this time (Unix ms) means stale; -1 when none can be. */
  staleBefore: number;
  /** At or before this time: offline. */
  offlineBefore: number;
  /**
   * While its last heartbeat is at or before this time, an agent's health is no better than the
   * health last published for it: start-up, within the start-up grace (else -1). The grace spares
   * agents that were alive when the server went down from going stale or offline; it must not
   * make an agent that was already stale or gone look recovered (nor say so in an event).
   */
  publishedKeptUpTo: number;
}

export type HealthSettings = Pick<Config, "agentStaleMs" | "agentOfflineMs" | "agentStartupGraceMs">;

export function healthCutoffs(now: number, config: HealthSettings, startedAt: number): HealthCutoffs {
  // 0 turns the rule off: a check judged as of a moment before start-up (a shared file's
  // lock-wait grace moves it back) must not count as within a grace of none.
  const inGrace = config.agentStartupGraceMs > 0 && now - startedAt < config.agentStartupGraceMs;
  const cutoff = (ttl: number) => {
    const before = now - ttl;
    // max(lastHeartbeatAt, startedAt) <= before is impossible while startedAt > before.
    return inGrace && startedAt > before ? -1 : before;
  };
  return { staleBefore: cutoff(config.agentStaleMs), offlineBefore: cutoff(config.agentOfflineMs), publishedKeptUpTo: inGrace ? startedAt : -1 };
}

const RANK: Record<AgentHealth, number> = { healthy: 0, stale: 1, offline: 2 };

/** An agent's health now, from its last heartbeat and the health last published for it (the SQL twin: agent-store.ts). */
export function healthAt(lastHeartbeatAt: number, published: AgentHealth, cutoffs: HealthCutoffs): AgentHealth {
  const judged = lastHeartbeatAt > cutoffs.staleBefore ? "healthy" : lastHeartbeatAt > cutoffs.offlineBefore ? "stale" : "offline";
  return lastHeartbeatAt <= cutoffs.publishedKeptUpTo && RANK[published] > RANK[judged] ? published : judged;
}
