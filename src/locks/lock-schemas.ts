// Wire shapes of named locks (locks.acquire, renew, release, forceRelease, get, list). Inputs are
// strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { DOT_SEGMENT_PROBLEM, int, ms, name, text, WEEK_MS } from "../schema-parts.js";

/** The longest lock name, in UTF-16 code units: room for a repository path and what it names in it. */
export const MAX_LOCK_NAME = 500;

/**
 * A lock's name: any text (a file path "repo/src/a.ts", "deploy:production"), not blank, and not
 * "." or ".." (a REST path carries it as one segment, "/" written %2F).
 */
export const lockName = () =>
  text(MAX_LOCK_NAME)
    .refine((value) => value === "" || value.trim() !== "", "must not be blank")
    .refine((value) => value !== "." && value !== "..", DOT_SEGMENT_PROBLEM)
    .describe("The lock's name: whatever the agents agree it stands for (a file path, a branch, a deploy target). Over REST, one path segment: / written %2F");

const leaseMs = ms(WEEK_MS);

export const acquireInput = z.strictObject({
  name: lockName(),
  agentId: name().describe("The agent that is to hold it"),
  leaseMs: leaseMs
    .optional()
    .describe("The lease's length in ms; left out or 0, the server's leaseMs (30 s by default). At most the server's maxLeaseMs (1 hour by default): the answer's expiresAt is the lease granted. Renew it before it ends, or the lock is free for anyone"),
  waitMs: ms(3_600_000)
    .optional()
    .describe("Long-poll: wait up to this many ms for the lock to be free; left out or 0, answer at once. At most the server's maxWaitMs (30 s by default): a longer wait is cut to it"),
  idempotencyKey: text(200)
    .optional()
    .describe(
      "This acquire's key. The same agent sending the same key again (its answer lost) gets the grant it took, renewed, not a refusal, while that grant lasts (after it ended, the key acquires anew); any other acquire, the same agent's with another key or none among them, waits for the lock, and a grant taken with a key is renewed and released by its fencingToken only. Left out, the same agent's acquires without a key share one grant: give each of its workers that may hold the lock at once a key of its own (withLock does)",
    ),
});
export type AcquireRequest = z.output<typeof acquireInput>;

export const renewInput = z.strictObject({
  name: lockName(),
  agentId: name().describe("The agent that holds it"),
  fencingToken: int(1)
    .optional()
    .describe("The fencing token acquire answered: the renewal is refused if the lock was granted again since (its lease ran out), even to this agent. Needed for a grant taken with an idempotencyKey"),
  leaseMs: leaseMs.optional().describe("The lease's new length from now, in ms; left out or 0, the length it was acquired or last renewed with. At most the server's maxLeaseMs"),
});
export type RenewRequest = z.output<typeof renewInput>;

export const releaseInput = z.strictObject({
  name: lockName(),
  agentId: name().describe("The agent that holds it"),
  fencingToken: int(1).optional().describe("The fencing token acquire answered: only that grant is released (one granted again since stays). Needed for a grant taken with an idempotencyKey"),
});
export type ReleaseRequest = z.output<typeof releaseInput>;

export const forceReleaseInput = z.strictObject({
  name: lockName(),
  reason: text(1000).optional().describe("Why, in the operator's words: in the lock.released event and the log"),
});
export type ForceReleaseRequest = z.output<typeof forceReleaseInput>;

export const getLockInput = z.strictObject({ name: lockName() });

export const listLocksInput = z.strictObject({
  holder: name().optional().describe("Only the locks this agent holds"),
  prefix: text(MAX_LOCK_NAME).optional().describe('Only the locks whose name starts with this text (case-sensitive): "repo/src/"'),
  after: text(MAX_LOCK_NAME).optional().describe("Only the locks whose name sorts after this one (byte order): the last name of the previous page"),
  limit: int(1, 1000).default(100).describe("The most locks answered (100 by default)"),
});
export type ListLocksRequest = z.output<typeof listLocksInput>;

export const lockSchema = z
  .object({
    name: z.string(),
    held: z.boolean().describe("Whether an agent holds it now (false: free to acquire; the fields below are null)"),
    holder: z.string().nullable().describe("The agent that holds it"),
    fencingToken: z
      .number()
      .nullable()
      .describe("This grant's fencing token: larger than every token granted before it, of any lock. Pass it to what the lock guards, which refuses a smaller token than the largest it saw"),
    acquiredAt: z.date().nullable().describe("When this grant began (renewals keep it)"),
    expiresAt: z.date().nullable().describe("When the lease ends unless renewed: the lock is free for anyone from then"),
    leaseMs: z.number().nullable().describe("The lease's length in ms, as acquired or last renewed: what a renewal naming none renews by"),
  })
  .meta({ id: "Lock" });
export type Lock = z.infer<typeof lockSchema>;

export const acquiredSchema = z
  .object({
    acquired: z
      .boolean()
      .describe("Whether the caller holds the lock now (also when this acquire, or one with its agent and idempotencyKey, took it already: the same grant, renewed). False: another acquire holds it, named in `lock`, past the wait"),
    lock: lockSchema,
  })
  .meta({ id: "LockAcquired" });
export type Acquired = z.infer<typeof acquiredSchema>;

export const releasedSchema = z
  .object({
    released: z.boolean().describe("Whether this call ended the caller's grant. False: it held none (released already, its lease ran out, or another grant holds the name now), and nothing changed"),
    lock: lockSchema.describe("The lock as it is after the call"),
  })
  .meta({ id: "LockReleased" });
export type Released = z.infer<typeof releasedSchema>;

export const forceReleasedSchema = z
  .object({
    released: z.boolean().describe("Whether this call ended a grant. False: the lock was free, and nothing changed"),
    holder: z.string().nullable().describe("The agent whose grant it ended (null: none)"),
    fencingToken: z.number().nullable().describe("The fencing token of the grant it ended (null: none)"),
    lock: lockSchema.describe("The lock as it is after the call: free"),
  })
  .meta({ id: "LockForceReleased" });
export type ForceReleased = z.infer<typeof forceReleasedSchema>;

export const lockPageSchema = z
  .object({
    items: z.array(lockSchema),
    nextCursor: z.string().nullable().describe("Pass as after for the next page; null on the last"),
  })
  .meta({ id: "LockPage" });
export type LockPage = z.infer<typeof lockPageSchema>;
