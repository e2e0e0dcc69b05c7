// An agent as the API shows it: its row, its capabilities, its health judged now from the age of
// its last heartbeat (the same rule everywhere: health-cutoffs.ts), and its cordon if one holds now.
import { fromJsonObjectText, toDate } from "../db/columns.js";
import type { Agent, AgentCordon } from "./agent-schemas.js";
import { cordonHolds, type CordonRow } from "./agent-cordon-store.js";
import type { AgentRow } from "./agent-store.js";
import { healthAt, type HealthCutoffs } from "./health-cutoffs.js";

/** `cordon`: the agent's agent_cordons row as JSON text (CORDON_OF_AGENT) or as read; null or undefined: none. */
export function toAgent(row: AgentRow, capabilities: string[], cutoffs: HealthCutoffs, cordon: string | CordonRow | null | undefined): Agent {
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
    cordon: toCordon(typeof cordon === "string" ? (JSON.parse(cordon) as CordonRow) : (cordon ?? undefined), Date.now()),
  };
}

/** A cordon row as answered; null when there is none or it lifted (its `until` passed). */
export function toCordon(row: CordonRow | undefined, now: number): AgentCordon | null {
  if (row === undefined || !cordonHolds(row, now)) return null;
  return {
    reason: row.reason === "" ? null : row.reason,
    cordonedBy: row.cordonedBy,
    cordonedAt: new Date(Number(row.cordonedAt)),
    until: row.until === null ? null : new Date(Number(row.until)),
    automatic: Boolean(row.automatic),
  };
}
