// Wire shapes of the event stream. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonOutput, jsonValue } from "../json-value.js";
import { int, name, storedName, text } from "../schema-parts.js";

/** Event types are dotted names: task.claimed, agent.offline, build.finished. */
export const eventTypeSchema = text(200).regex(/^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/, "must be dot-separated words of letters, digits, _, : or -");

/** An exact type, a `prefix.*` wildcard, or `*` for every event. */
export const typePatternSchema = text(200).regex(/^(\*|[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*(\.\*)?)$/, "must be an exact type, prefix.* or *");

/** Type patterns. Over REST: repeated or comma-separated query values. */
const patternList = z.array(typePatternSchema).max(100);
const agentId = name();
const seq = int(0);

export const eventSchema = z
  .object({
    seq: z.number().int(),
    type: z.string(),
    source: z.string(),
    payload: jsonOutput,
    /** Set on direct messages: only this agent receives the event. */
    target: z.string().nullable(),
    createdAt: z.date(),
  })
  .meta({ id: "Event" });
export type CoordinationEvent = z.infer<typeof eventSchema>;

export const publishInput = z.strictObject({
  type: eventTypeSchema,
  source: name(),
  payload: jsonValue.default({}),
  /** A direct message: only this agent receives it, in its mailbox. */
  target: agentId.optional(),
});
export type PublishRequest = z.output<typeof publishInput>;

export const subscriptionSchema = z
  .object({
    agentId: z.string(),
    types: z.array(z.string()),
    /** Highest acknowledged seq among untargeted events; poll returns matching ones after it. */
    cursor: z.number().int(),
    /** Highest acknowledged seq among the events targeted at this agent (its mailbox). */
    mailboxCursor: z.number().int(),
    createdAt: z.date(),
    updatedAt: z.date(),
  })
  .meta({ id: "Subscription" });
export type Subscription = z.infer<typeof subscriptionSchema>;

export const subscribeInput = z.strictObject({
  agentId,
  types: patternList.min(1),
  /**
   * Start after this seq (0 replays everything retained, even after pruning). Omitted: a new
   * subscription starts at the head; an existing one keeps its cursor, or restarts at the head
   * if that cursor fell behind the retained log (the way out of EVENTS_PRUNED).
   */
  fromSeq: seq.optional(),
});
// Finds or drops what is stored for an agent: storedName (schema-parts.ts).
export const unsubscribeInput = z.strictObject({
  agentId: storedName(),
  /** Patterns to drop; omitted drops them all (the mailbox stays). */
  types: patternList.optional(),
});
export const agentIdInput = z.strictObject({ agentId: storedName() });
export const pollInput = z.strictObject({
  agentId,
  limit: int(1, 1000).default(100),
  waitMs: int(0, 3_600_000).optional(),
  /** auto: the cursors advance past what is returned. manual: they stay until ack (at-least-once). */
  ack: z.enum(["auto", "manual"]).default("auto"),
});
export type PollRequest = z.output<typeof pollInput>;
export const ackInput = z.strictObject({ agentId, seq });
export const listEventsInput = z.strictObject({
  afterSeq: seq.default(0),
  types: patternList.optional(),
  limit: int(1, 1000).default(100),
});
export const onEventInput = z.strictObject({
  /** Follow this agent's subscription (its types, plus events targeted at it). */
  agentId: agentId.optional(),
  /** Type patterns; combined with the agent's subscription when both are given. */
  types: patternList.optional(),
  /** Resume after this seq (set by the client on reconnect). */
  lastEventId: z.string().regex(/^\d{1,15}$/, "must be an event seq").nullish(),
});
