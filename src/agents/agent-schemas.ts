// Wire shapes of the agent registry. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { findNonJson, jsonObject, jsonObjectOutput, RESERVED_JSON_KEYS } from "../json-value.js";
import { capabilityList, int, name, storedName, text } from "../schema-parts.js";

export const AGENT_HEALTH = ["healthy", "stale", "offline"] as const;
export type AgentHealth = (typeof AGENT_HEALTH)[number];

const agentId = name();

/** Why and until when no claim or steal hands an agent a task (agents.cordon, or an automatic quarantine). */
export const agentCordonSchema = z
  .object({
    reason: z.string().nullable().describe("Why, in the operator's words (null: none given), or the quarantine's (the failures in a row that set it)"),
    cordonedBy: z.string().nullable().describe("The id of the credential that cordoned it; null on an open server, in-process, or for an automatic quarantine"),
    cordonedAt: z.date(),
    until: z.date().nullable().describe("When it lifts by itself; null: when agents.uncordon lifts it"),
    automatic: z.boolean().describe("Set by the server: the agent failed quarantineAfterFailures runs in a row"),
  })
  .meta({ id: "AgentCordon" });
export type AgentCordon = z.infer<typeof agentCordonSchema>;

export const agentSchema = z
  .object({
    agentId: z.string(),
    capabilities: z.array(z.string()),
    metadata: jsonObjectOutput,
    /** What the agent last reported about itself, e.g. idle, busy, draining. */
    status: z.string(),
    /** Derived from the age of the last heartbeat against the configured TTLs. */
    health: z.enum(AGENT_HEALTH),
    load: z.number(),
    registeredAt: z.date(),
    lastHeartbeatAt: z.date(),
    updatedAt: z.date(),
    /** Null: claims and steals hand it tasks. */
    cordon: agentCordonSchema.nullable().describe("Set while no claim or steal hands the agent a task (agents.cordon, or a quarantine after failures in a row); its leases run on. Null: none"),
  })
  .meta({ id: "Agent" });
export type Agent = z.infer<typeof agentSchema>;

/**
 * An A2A Agent Card (the Agent2Agent protocol's self-description). What the registry reads of it:
 * its name, and its skills, whose ids become capabilities; the whole card is kept, unknown fields
 * included, and served back at GET /agents/{agentId}/card.
 */
export const agentCardSchema = z
  .looseObject({
    name: text(200),
    description: z.string().max(10_000).optional(),
    url: z.string().max(2000).optional(),
    version: z.string().max(100).optional(),
    skills: z
      .array(z.looseObject({ id: name(), name: text(200), description: z.string().max(10_000).optional(), tags: z.array(z.string().max(200)).max(100).optional() }))
      .max(200),
  })
  .superRefine((card, ctx) => {
    const problem = findNonJson(card);
    if (problem) ctx.addIssue({ code: "custom", message: `must be JSON: ${problem}` });
  })
  .meta({ id: "AgentCard", description: "An A2A Agent Card; skills[].id become capabilities" });
export type AgentCard = z.output<typeof agentCardSchema>;

// Each field's description is its documentation (OpenAPI, MCP tools).
export const registerInput = z.strictObject({
  agentId: agentId.describe("The agent's id, chosen by the agent; registering again updates it"),
  capabilities: capabilityList().default([]).describe("What the agent can do: a task that requires a capability goes only to an agent offering it"),
  metadata: jsonObject.default({}).describe(`Anything else about the agent: a JSON object (${RESERVED_JSON_KEYS}). Its a2aCard, if any, is the agent's A2A card (as read back), checked as card is`),
  card: agentCardSchema.optional().describe("An A2A Agent Card: its skills' ids join the capabilities, and the card is kept (metadata.a2aCard)"),
});
export const agentHeartbeatInput = z.strictObject({
  agentId: agentId.describe("The agent; registered on first use"),
  status: text(100).optional().describe("What the agent reports about itself, e.g. idle, busy, draining"),
  load: z.number().min(0).max(1_000_000).optional().describe("The agent's own measure of how busy it is; findByCapability prefers lower"),
});
// Finds or removes a stored agent: storedName (schema-parts.ts).
export const agentIdInput = z.strictObject({ agentId: storedName().describe("The agent's id") });
export const listAgentsInput = z.strictObject({
  capability: storedName().optional().describe("Only agents offering this capability"),
  health: z.enum(AGENT_HEALTH).optional().describe("Only agents in this health now: by the age of their last heartbeat (an agent stale or offline before a restart stays so until a sign of life)"),
  status: text(100).optional().describe("Only agents reporting this status"),
  cordoned: z.boolean().optional().describe("Only agents cordoned now (true), or only those not (false)"),
  limit: int(1, 1000).optional().describe("The most agents to return, in agentId order; left out, every agent that matches. To page, pass the last agentId of a full page as after. Agents that would pass the server's maxResponseBytes in one answer are refused (400 naming limit, details.fits: how many fit)"),
  // A bound, not a name: any stored id may end a page (one of spaces only, from an earlier version, too).
  after: z.string().max(200).optional().describe("Only agents whose agentId sorts after this one (byte order): the last agentId of the previous page"),
});
export type AgentListFilter = z.output<typeof listAgentsInput>;
export const findByCapabilityInput = z.strictObject({
  capability: storedName().describe("The capability wanted"),
  limit: int(1, 1000).optional().describe("The most agents to return, the best first; left out, every agent offering the capability"),
});
export type FindByCapability = z.output<typeof findByCapabilityInput>;

/** The longest cordon that lifts by itself: a year (longer ones are cordons until uncordoned). */
export const MAX_CORDON_MS = 366 * 24 * 60 * 60 * 1000;
export const cordonInput = z.strictObject({
  agentId: storedName().describe("The agent to cordon: no claim or steal hands it a task until it is uncordoned; the tasks it holds run on and settle as usual"),
  reason: text(1000).optional().describe("Why, in the operator's words: shown with the agent (its cordon) and in the agent.cordoned event"),
  forMs: int(1000, MAX_CORDON_MS).optional().describe("Lifts by itself after this many ms (1 s to 366 days); left out, it holds until agents.uncordon"),
});
export type CordonRequest = z.output<typeof cordonInput>;
