// Wire shapes of the agent registry. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonObject, jsonObjectOutput } from "../json-value.js";
import { name, text } from "../schema-parts.js";

export const AGENT_HEALTH = ["healthy", "stale", "offline"] as const;
export type AgentHealth = (typeof AGENT_HEALTH)[number];

const agentId = name();
const capabilityList = z.array(name()).max(200);

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
  })
  .meta({ id: "Agent" });
export type Agent = z.infer<typeof agentSchema>;

export const registerInput = z.strictObject({
  agentId,
  capabilities: capabilityList.default([]),
  metadata: jsonObject.default({}),
});
export const agentHeartbeatInput = z.strictObject({
  agentId,
  status: text(100).optional(),
  /** The agent's own measure of how busy it is; findByCapability prefers lower. */
  load: z.number().min(0).max(1_000_000).optional(),
});
export const agentIdInput = z.strictObject({ agentId });
export const listAgentsInput = z.strictObject({
  capability: name().optional(),
  health: z.enum(AGENT_HEALTH).optional(),
  status: text(100).optional(),
});
export const findByCapabilityInput = z.strictObject({ capability: name() });
