// Wire shapes of shared state (kv.set, get, delete, list): keys agents read and write, each a JSON
// value with a version. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonOutput, jsonWithin, RESERVED_JSON_KEYS } from "../json-value.js";
import { DOT_SEGMENT_PROBLEM, int, ms, name, text } from "../schema-parts.js";

/** The longest key, in UTF-16 code units: room for a path of names ("plans/repo-a/step-3"). */
export const MAX_KEY = 500;
/** The most bytes a value takes as JSON text (UTF-8): shared state, not a blob store (a larger document belongs in storage, its address here). */
export const MAX_VALUE_BYTES = 65_536;
/** The longest expiry a set may give, in ms: 366 days. */
export const MAX_TTL_MS = 366 * 24 * 3_600_000;

/**
 * A key: any text (a path "plans/repo-a", "build:main:status"), not blank, and not "." or ".."
 * (a REST path carries it as one segment, "/" written %2F).
 */
export const kvKey = () =>
  text(MAX_KEY)
    .refine((value) => value === "" || value.trim() !== "", "must not be blank")
    .refine((value) => value !== "." && value !== "..", DOT_SEGMENT_PROBLEM)
    .describe("The key: whatever the agents agree it names (a path such as plans/repo-a). Over REST, one path segment: / written %2F");

const writerField = name()
  .optional()
  .describe("The agent making the write, kept as the key's updatedBy (an agent credential's own agent, filled in when left out; an admin or an open server may name one or none)");

/** A version a write is conditional on: 0 the key must be absent, any other the key's version now. */
const ifVersion = int(0)
  .optional()
  .describe(
    "Compare-and-set: write only if the key's version is this one now (0: only if the key is absent, so the write creates it). Otherwise 409 VERSION_CONFLICT, details.entry the key as it is (null: absent). Left out, the write is unconditional",
  );

export const setInput = z.strictObject({
  key: kvKey(),
  value: jsonWithin(MAX_VALUE_BYTES).describe(`The value: any JSON, at most ${MAX_VALUE_BYTES} bytes as JSON text (${RESERVED_JSON_KEYS})`),
  ifVersion,
  ttlMs: int(1, MAX_TTL_MS)
    .optional()
    .describe("The key reads as absent this many ms from now (1 ms to 366 days), and is deleted with a kv.expired event. Left out, it never expires: each set says its own expiry"),
  ephemeral: z
    .boolean()
    .optional()
    .describe(
      "true: the key is tied to the writing agent's life (agentId, or the credential's agent): deleted, with a kv.deleted naming why, in the write that sees that agent offline (its heartbeats stopped) or deregisters it. Presence, a claim on a piece of work, an address others find it at. The set is a sign of life of the agent (an unknown one is registered, one seen offline is healthy again). It ties the key, it does not guard it: any agent may write or delete it (take a claim with ifVersion 0). An agent holds at most maxEphemeralKeysPerAgent (1,000) such keys (429 LIMIT_EXCEEDED). Left out or false, the key outlives its writer: each set says its own",
    ),
  agentId: writerField,
  idempotencyKey: text(200)
    .optional()
    .describe(
      "This write's own key: sent again with it (its answer lost), the write is answered as stored, not made twice, while the key holds it (once another write came after it, the resend is judged as any set: a VERSION_CONFLICT with ifVersion). Sent with another value, ifVersion, ttlMs or ephemeral, 409 IDEMPOTENCY_MISMATCH. Give each write its own; keys are the writer's own",
    ),
});
export type SetRequest = z.output<typeof setInput>;

export const incrementInput = z
  .strictObject({
    key: kvKey(),
    by: z.number().default(1).describe("What to add to the key's number (negative: subtract; 1 by default). An absent key counts as 0, so the first increment creates it; a key holding anything but a number is a 409 INVALID_STATE"),
    min: z.number().optional().describe("The least the number may become: an increment taking away (by below 0) that would leave it below is refused, 409 OUT_OF_RANGE, nothing written (a stock that must not go negative: 0); one adding goes through"),
    max: z.number().optional().describe("The most the number may become: an increment adding (by above 0) that would leave it above is refused, 409 OUT_OF_RANGE, nothing written (a budget's cap: the tokens a team may spend); one taking away goes through, so a refund lands on a budget already over"),
    ttlMs: int(1, MAX_TTL_MS)
      .optional()
      .describe("When this increment creates the key (absent or expired): it reads as absent this many ms from now (1 ms to 366 days), and is deleted with a kv.expired event, so the next increment starts a new count (a window's counter: failures this hour). A key that exists keeps its expiry. Left out, a key it creates never expires"),
    agentId: writerField,
    idempotencyKey: text(200)
      .optional()
      .describe(
        "This increment's own key: sent again with it within 24 hours (its answer lost), it is answered with the entry it wrote and not added twice, whatever was written to the key since. Sent with another key, by, min, max or ttlMs, 409 IDEMPOTENCY_MISMATCH. Give each increment its own; keys are the writer's own",
      ),
  })
  .superRefine((input, ctx) => {
    if (input.min !== undefined && input.max !== undefined && input.min > input.max) ctx.addIssue({ code: "custom", path: ["max"], message: `is below min (${input.min})` });
  });
export type IncrementRequest = z.output<typeof incrementInput>;

export const deleteInput = z.strictObject({
  key: kvKey(),
  ifVersion: int(1)
    .optional()
    .describe("Delete only if the key's version is this one now; otherwise (another version, or no key) 409 VERSION_CONFLICT, details.entry the key as it is. Left out, whatever version it has"),
  agentId: writerField,
});
export type DeleteRequest = z.output<typeof deleteInput>;

export const getInput = z.strictObject({
  key: kvKey(),
  afterVersion: int(0)
    .optional()
    .describe(
      "Watch: answer once the key's version differs from this one (an absent key's version is 0), waiting up to waitMs: the version the caller last read. Left out, the key at once",
    ),
  waitMs: ms(3_600_000)
    .optional()
    .describe("With afterVersion: how long to wait for a change, in ms (left out: the server's maxWaitMs, 30 s by default, and never past it); the answer is the key as it is then, changed or not (compare its version). Without afterVersion nothing is waited for (a watch's first read may send it all the same)"),
});
export type GetRequest = z.output<typeof getInput>;

export const listInput = z.strictObject({
  prefix: text(MAX_KEY).optional().describe('Only the keys that start with this text (case-sensitive): "plans/"'),
  ephemeralOwner: name().optional().describe("Only the keys tied to this agent's life (kv.set with ephemeral): what goes when it does"),
  after: text(MAX_KEY).optional().describe("Only the keys that sort after this one (byte order): the previous page's nextCursor"),
  limit: int(1, 1000).default(100).describe("The most keys answered (100 by default; fewer when their values would pass maxResponseBytes)"),
});
export type ListRequest = z.output<typeof listInput>;

export const kvEntrySchema = z
  .object({
    key: z.string(),
    value: jsonOutput,
    version: z
      .number()
      .describe("This value's version: larger than every version written before it, of any key (a key deleted and set again never repeats one). Pass it as ifVersion to compare-and-set, as afterVersion to watch"),
    createdAt: z.date().describe("When the key was created (its value replaced since keeps it; set again after a delete or expiry, a new one)"),
    updatedAt: z.date().describe("When this value was written"),
    updatedBy: z.string().nullable().describe("The agent that wrote it (null: a write naming none)"),
    expiresAt: z.date().nullable().describe("When it reads as absent (null: never)"),
    ephemeralOwner: z
      .string()
      .nullable()
      .describe("The agent whose life the key is tied to (kv.set with ephemeral): it is deleted when that agent is seen offline or deregisters. Null: it outlives its writer"),
  })
  .meta({ id: "KvEntry" });
export type KvEntry = z.infer<typeof kvEntrySchema>;

/** An increment's answer: the entry, its value the number it now holds. */
export const kvCounterSchema = kvEntrySchema
  .extend({ value: z.number().describe("The number the key holds now") })
  .meta({ id: "KvCounter" });
export type KvCounter = z.infer<typeof kvCounterSchema>;

export const kvReadSchema = z
  .object({
    key: z.string(),
    entry: kvEntrySchema.nullable().describe("The key as it is (null: absent: never set, deleted or expired)"),
  })
  .meta({ id: "KvRead" });
export type KvRead = z.infer<typeof kvReadSchema>;

export const kvDeletedSchema = z
  .object({
    deleted: z.boolean().describe("Whether this call deleted the key. False: it was absent, and nothing changed"),
    entry: kvEntrySchema.nullable().describe("The key as it was before this call deleted it (null: absent)"),
  })
  .meta({ id: "KvDeleted" });
export type KvDeleted = z.infer<typeof kvDeletedSchema>;

export const kvPageSchema = z
  .object({
    items: z.array(kvEntrySchema),
    nextCursor: z.string().nullable().describe("Pass as after for the next page; null on the last"),
  })
  .meta({ id: "KvPage" });
export type KvPage = z.infer<typeof kvPageSchema>;
