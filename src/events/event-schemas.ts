// Wire shapes of the event stream.
import { z } from "zod";
import { jsonValue, intInput } from "../json-value.js";

/** Event types are dotted names: task.claimed, agent.offline, build.finished. */
export const eventTypeSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/, "type must be dot-separated words of letters, digits, _, : or -");

/** An exact type, a `prefix.*` wildcard, or `*` for every event. */
export const typePatternSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(\*|[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*(\.\*)?)$/, "pattern must be an exact type, prefix.* or *");

const patternList = z.preprocess(
  (v) => (typeof v === "string" ? v.split(",").filter(Boolean) : v),
  z.array(typePatternSchema).max(100),
);
const agentId = z.string().min(1).max(200);
const seq = intInput(0);

export const eventSchema = z.object({
  seq: z.number().int(),
  type: z.string(),
  source: z.string(),
  payload: z.unknown(),
  /** Set on direct messages: only this agent receives the event. */
  target: z.string().nullable(),
  createdAt: z.date(),
});
export type CoordinationEvent = z.infer<typeof eventSchema>;

export const publishInput = z.object({
  type: eventTypeSchema,
  source: z.string().min(1).max(200),
  payload: jsonValue.default({}),
  target: agentId.optional(),
});
export type PublishRequest = z.output<typeof publishInput>;

export const subscriptionSchema = z.object({
  agentId: z.string(),
  types: z.array(z.string()),
  /** Highest acknowledged seq among untargeted events; poll returns matching ones after it. */
  cursor: z.number().int(),
  /** Highest acknowledged seq among the events targeted at this agent (its mailbox). */
  mailboxCursor: z.number().int(),
  createdAt: z.date(),
  updatedAt: z.date(),
});
export type Subscription = z.infer<typeof subscriptionSchema>;

export const subscribeInput = z.object({
  agentId,
  types: patternList.refine((t) => t.length > 0, "types must name at least one type or pattern"),
  /**
   * Start after this seq (0 replays everything retained, even after pruning). Omitted: a new
   * subscription starts at the head; an existing one keeps its cursor, or restarts at the head
   * if that cursor fell behind the retained log (the way out of EVENTS_PRUNED).
   */
  fromSeq: seq.optional(),
});
export const unsubscribeInput = z.object({
  agentId,
  /** Patterns to drop; omitted drops the whole subscription. */
  types: patternList.optional(),
});
export const pollInput = z.object({
  agentId,
  limit: intInput(1, 1000).default(100),
  waitMs: intInput(0, 3_600_000).optional(),
  /** auto: the cursor advances past what is returned. manual: it stays until ack (at-least-once). */
  ack: z.enum(["auto", "manual"]).default("auto"),
});
export type PollRequest = z.output<typeof pollInput>;
export const ackInput = z.object({ agentId, seq });
export const listEventsInput = z.object({
  afterSeq: seq.default(0),
  types: patternList.optional(),
  limit: intInput(1, 1000).default(100),
});
export const onEventInput = z.object({
  /** Follow this agent's subscription (its types, plus events targeted at it). */
  agentId: agentId.optional(),
  /** Type patterns; combined with the agent's subscription when both are given. */
  types: patternList.optional(),
  /** Resume after this seq (set by the client on reconnect). */
  lastEventId: z.string().regex(/^\d+$/, "lastEventId must be an event seq").nullish(),
});
