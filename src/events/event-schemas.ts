// Wire shapes of the event stream. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonOutput, jsonValue, RESERVED_JSON_KEYS } from "../json-value.js";
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

// Each field's description is its documentation (OpenAPI, MCP tools).
const PATTERNS = "exact types, prefix.* wildcards, or * for every event";
export const publishInput = z.strictObject({
  type: eventTypeSchema.describe("The event's type: dot-separated words, e.g. build.finished"),
  source: name().describe("Who publishes: an agent's id or a component's name"),
  payload: jsonValue.default({}).describe(`The event's data: any JSON (${RESERVED_JSON_KEYS})`),
  target: agentId.optional().describe("A direct message: only this agent receives it, in its mailbox"),
  idempotencyKey: text(200)
    .optional()
    .describe(
      "Makes the publish safe to send again: the same source sending the same key (its answer lost) gets the event it stored, not a second one, for as long as the event is kept. Sent again with a different type, payload or target, it is a 409 IDEMPOTENCY_MISMATCH. Keys are the source's own: another source's never match",
    ),
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
  agentId: agentId.describe("The subscribing agent"),
  types: patternList.min(1).describe(`The types to receive: ${PATTERNS}. Added to the agent's patterns; "*" takes the place of all of them`),
  fromSeq: seq
    .optional()
    .describe(
      "Start after this seq (0 replays everything retained). Left out, a new subscription starts at the head; an existing one keeps its cursor, or restarts at the head if it fell behind the retained log",
    ),
});
// Finds or drops what is stored for an agent: storedName (schema-parts.ts).
export const unsubscribeInput = z.strictObject({
  agentId: storedName().describe("The subscribed agent"),
  types: patternList.optional().describe("The patterns to drop; left out, all of them (the mailbox stays)"),
});
export const agentIdInput = z.strictObject({ agentId: storedName().describe("The agent") });
export const pollInput = z.strictObject({
  agentId: agentId.describe("The agent whose subscription and mailbox to read"),
  limit: int(1, 1000).default(100).describe("The most events to return, oldest first"),
  waitMs: int(0, 3_600_000).optional().describe("Long-poll: wait up to this many ms for an event; left out or 0, answer at once. At most the server's maxWaitMs (30 s by default): a longer wait is cut to it"),
  ack: z
    .enum(["auto", "manual"])
    .default("auto")
    .describe("auto: what is returned counts as read; manual: it is returned again until acknowledged (events.ack), at least once"),
});
export type PollRequest = z.output<typeof pollInput>;
export const ackInput = z.strictObject({
  agentId: agentId.describe("The agent acknowledging"),
  seq: seq.describe("Every event up to and including this seq counts as read"),
});
export const listEventsInput = z.strictObject({
  afterSeq: seq.default(0).describe("Events after this seq; 0, from the oldest retained"),
  types: patternList.optional().describe(`Only events of these types: ${PATTERNS}`),
  limit: int(1, 1000).default(100).describe("The most events to return, oldest first"),
});
export const onEventInput = z.strictObject({
  agentId: agentId.optional().describe(
    "Follow this agent's subscription: its types as they are when the stream opens (a later subscribe or unsubscribe applies from the stream's next connection), and the events targeted at it; an agent with no subscription (and no `types`) gets its mailbox alone, as its poll does",
  ),
  types: patternList.optional().describe(`Only events of these types (${PATTERNS}), beside the agent's subscription when both are given`),
  lastEventId: z
    .string()
    .regex(/^\d{1,15}(:\d{1,15})?$/, "must be an event seq, or a MAILBOX:SEQ id the stream gave")
    .nullish()
    .describe(
      "Resume after this id: the last one received (the typed client sets it on reconnect). An event seq (\"0\": everything retained); during a fresh agent stream's mailbox replay, ids are MAILBOX:SEQ (the mailbox read through the first, everything else through the second)",
    ),
});
