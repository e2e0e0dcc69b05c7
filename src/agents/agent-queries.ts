// The agent registry's reads, as the database reader thread runs them.
import { invalidField, notFound } from "../errors.js";
import type { Agent, AgentHealth, AgentListFilter, FindByCapability } from "./agent-schemas.js";
import type { AgentStore } from "./agent-store.js";
import type { AgentCordonStore } from "./agent-cordon-store.js";
import { toAgent } from "./agent-view.js";
import type { HealthCutoffs } from "./health-cutoffs.js";

export function agentQueries(d: { agents: AgentStore; cordons: AgentCordonStore; healthCutoffs: (now: number) => HealthCutoffs; maxResponseBytes: number }) {
  // The health filter is each agent's health as its view computes it (healthAt's SQL twin), the
  // published health included, so a list filtered by health agrees with the agents it shows.
  // These answers are arrays with no sign of a page cut short, and a page shorter than its limit
  // reads as the last: rather than leave agents out in silence, a list past maxResponseBytes is
  // refused, naming how many agents fit, and the caller pages with a limit.
  const list = (filter: AgentListFilter, order: "id" | "best"): Agent[] => {
    const cutoffs = d.healthCutoffs(Date.now());
    const { rows, truncated } = d.agents.list(filter, cutoffs, d.maxResponseBytes, order);
    if (truncated) throw tooLarge(rows.length, filter.limit, d.maxResponseBytes, order === "id");
    return rows.map((row) => toAgent(row, row.capabilities, cutoffs, row.cordon));
  };

  return {
    /** Whether any agent's health changed by `asOf`: the monitor looks before it takes the write lock. */
    "agents.anyHealthChange": (asOf: number): boolean => d.agents.healthChanges(d.healthCutoffs(asOf), 1, Number.MAX_SAFE_INTEGER).length > 0,
    /** Whether some agent seen offline has forfeit claims left to free (its offline write frees a bounded number). */
    "agents.offlineHolding": (_: undefined): boolean => d.agents.anyForfeit(),

    "agents.get": (agentId: string): Agent => {
      const row = d.agents.get(agentId);
      if (!row) throw notFound("AGENT_NOT_FOUND", agentId);
      return toAgent(row, d.agents.capabilitiesOf(agentId), d.healthCutoffs(Date.now()), row.cordon);
    },
    "agents.list": (filter: AgentListFilter): Agent[] => list(filter, "id"),
    "agents.healthCounts": (_: undefined): Record<AgentHealth, number> => d.agents.healthCounts(d.healthCutoffs(Date.now())),
    "agents.cordonCounts": (_: undefined): { operator: number; automatic: number } => d.agents.cordonCounts(Date.now()),
    /** Whether some cordon lapsed by `now` and is still to be lifted (a look before the monitor's write). */
    "agents.anyLapsedCordon": (now: number): boolean => d.cordons.lapsed(now, 1).length > 0,
    /**
     * Agents offering a capability that are not cordoned (no claim would hand them a task):
     * healthy first, then stale, then offline; least loaded first within each, then by agentId (byte order).
     */
    "agents.findByCapability": (request: FindByCapability): Agent[] => list({ ...request, cordoned: false }, "best"),
  };
}

/** INVALID_INPUT naming `limit`: the agents that match do not fit in one answer; `details.fits` is how many of the first did. */
function tooLarge(fits: number, limit: number | undefined, budgetBytes: number, paged: boolean) {
  const what = limit === undefined ? "pass a limit" : "pass a smaller limit";
  const how = paged ? ` and page with after` : "";
  return invalidField("limit", `the agents that match come to more than maxResponseBytes (${budgetBytes} bytes) in one answer: ${what} (the first ${fits} fit)${how}`, { fits });
}
