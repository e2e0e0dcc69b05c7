// Wire shapes of the agent registry.
import { z } from "zod";
import { jsonObject, numberInput } from "../json-value.js";

export const AGENT_HEALTH = ["healthy", "stale", "offline"] as const;
export type AgentHealth = (typeof AGENT_HEALTH)[number];

const agentId = z.string().min(1).max(200);
const capabilityList = z.preprocess(
  (v) => (typeof v === "string" ? v.split(",").filter(Boolean) : v),
  z.array(z.string().min(1).max(200)).max(200),
);

export const agentSchema = z.object({
  agentId: z.string(),
  capabilities: z.array(z.string()),
  metadata: z.unknown(),
  /** What the agent last reported about itself, e.g. idle, busy, draining. */
  status: z.string(),
  /** Derived from the age of the last heartbeat against the configured TTLs. */
  health: z.enum(AGENT_HEALTH),
  load: z.number(),
  registeredAt: z.date(),
  lastHeartbeatAt: z.date(),
  updatedAt: z.date(),
});
export type Agent = z.infer<typeof agentSchema>;

export const registerInput = z.object({
  agentId,
  capabilities: capabilityList.default([]),
  metadata: jsonObject.default({}),
});
export const agentHeartbeatInput = z.object({
  agentId,
  status: z.string().min(1).max(100).optional(),
  /** The agent's own measure of how busy it is; findByCapability prefers lower. */
  load: numberInput(0, 1_000_000).optional(),
});
export const agentIdInput = z.object({ agentId });
export const listAgentsInput = z.object({
  capability: z.string().min(1).max(200).optional(),
  health: z.enum(AGENT_HEALTH).optional(),
  status: z.string().min(1).max(100).optional(),
});
export const findByCapabilityInput = z.object({ capability: z.string().min(1).max(200) });
