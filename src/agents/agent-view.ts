// An agent as the API shows it: its row, its capabilities, and its health judged now from the age
// of its last heartbeat (the same rule everywhere: health-cutoffs.ts).
import { fromJsonObjectText, toDate } from "../db/columns.js";
import type { Agent } from "./agent-schemas.js";
import type { AgentRow } from "./agent-store.js";
import { healthAt, type HealthCutoffs } from "./health-cutoffs.js";

export function toAgent(row: AgentRow, capabilities: string[], cutoffs: HealthCutoffs): Agent {
  return {
    agentId: row.id,
    capabilities,
    metadata: fromJsonObjectText(row.metadata),
    status: row.status,
    health: healthAt(toDate(row.lastHeartbeatAt).getTime(), row.health, cutoffs),
    load: row.load,
    registeredAt: toDate(row.registeredAt),
    lastHeartbeatAt: toDate(row.lastHeartbeatAt),
    updatedAt: toDate(row.updatedAt),
  };
}
