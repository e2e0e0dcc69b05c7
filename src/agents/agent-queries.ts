// The agent registry's reads, as the database reader thread runs them.
import { notFound } from "../errors.js";
import type { Agent, AgentHealth } from "./agent-schemas.js";
import type { AgentStore } from "./agent-store.js";
import { toAgent } from "./agent-view.js";
import type { HealthCutoffs } from "./health-cutoffs.js";

const HEALTH_RANK: Record<AgentHealth, number> = { healthy: 0, stale: 1, offline: 2 };

export function agentQueries(d: { agents: AgentStore; healthCutoffs: (now: number) => HealthCutoffs }) {
  /** Heartbeat times that make an agent `health` now. */
  const heartbeatRange = (health: AgentHealth, now: number): { heartbeatAfter?: number; heartbeatAtOrBefore?: number } => {
    const { staleBefore, offlineBefore } = d.healthCutoffs(now);
    if (health === "healthy") return { heartbeatAfter: staleBefore };
    if (health === "stale") return { heartbeatAfter: offlineBefore, heartbeatAtOrBefore: staleBefore };
    return { heartbeatAtOrBefore: offlineBefore };
  };

  const list = (filter: { capability?: string | undefined; health?: AgentHealth | undefined; status?: string | undefined }): Agent[] => {
    const now = Date.now();
    const cutoffs = d.healthCutoffs(now);
    const rows = d.agents.list({ capability: filter.capability, status: filter.status, ...(filter.health ? heartbeatRange(filter.health, now) : {}) });
    return rows.map((row) => toAgent(row, row.capabilities, cutoffs));
  };

  return {
    /** Whether any agent's health changed by `asOf`: the monitor looks before it takes the write lock. */
    "agents.anyHealthChange": (asOf: number): boolean => d.agents.healthChanges(d.healthCutoffs(asOf)).length > 0,

    "agents.get": (agentId: string): Agent => {
      const row = d.agents.get(agentId);
      if (!row) throw notFound("AGENT_NOT_FOUND", agentId);
      return toAgent(row, d.agents.capabilitiesOf(agentId), d.healthCutoffs(Date.now()));
    },
    "agents.list": list,
    "agents.healthCounts": (_: undefined): Record<AgentHealth, number> => d.agents.healthCounts(d.healthCutoffs(Date.now())),
    /** Agents offering a capability: healthy first, then stale, then offline; least loaded first within each. */
    "agents.findByCapability": (capability: string): Agent[] =>
      list({ capability }).sort((a, b) => HEALTH_RANK[a.health] - HEALTH_RANK[b.health] || a.load - b.load || a.agentId.localeCompare(b.agentId)),
  };
}
