// The agent registry's reads, as the database reader thread runs them.
import { notFound } from "../errors.js";
import type { Agent, AgentHealth, AgentListFilter } from "./agent-schemas.js";
import type { AgentStore } from "./agent-store.js";
import { toAgent } from "./agent-view.js";
import type { HealthCutoffs } from "./health-cutoffs.js";

const HEALTH_RANK: Record<AgentHealth, number> = { healthy: 0, stale: 1, offline: 2 };

export function agentQueries(d: { agents: AgentStore; healthCutoffs: (now: number) => HealthCutoffs }) {
  // The health filter is each agent's health as its view computes it (healthAt's SQL twin), the
  // published health included, so a list filtered by health agrees with the agents it shows.
  const list = (filter: AgentListFilter): Agent[] => {
    const cutoffs = d.healthCutoffs(Date.now());
    return d.agents.list(filter, cutoffs).map((row) => toAgent(row, row.capabilities, cutoffs));
  };

  return {
    /** Whether any agent's health changed by `asOf`: the monitor looks before it takes the write lock. */
    "agents.anyHealthChange": (asOf: number): boolean => d.agents.healthChanges(d.healthCutoffs(asOf), 1, Number.MAX_SAFE_INTEGER).length > 0,

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
