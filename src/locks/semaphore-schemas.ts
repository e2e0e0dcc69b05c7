// Wire shapes of semaphores (semaphores.acquire, renew, release, forceRelease, get, list): a name
// up to `limit` agents hold at once, each by a permit with a lease and a fencing token. Inputs are
// strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { int, ms, name, text, WEEK_MS } from "../schema-parts.js";
import { lockName, MAX_LOCK_NAME } from "./lock-schemas.js";

/** The largest limit a semaphore may have: its permits are rows, and get answers them. */
export const MAX_SEMAPHORE_LIMIT = 10_000;

const semaphoreName = () =>
  lockName().describe("The semaphore's name: whatever the agents agree it stands for (an API key's quota, a GPU pool, a build farm). Over REST, one path segment: / written %2F");
const leaseMs = ms(WEEK_MS);
const fencingToken = () => int(1);

export const acquirePermitInput = z.strictObject({
  name: semaphoreName(),
  agentId: name().describe("The agent that is to hold the permit"),
  limit: int(1, MAX_SEMAPHORE_LIMIT).describe(
    "How many agents may hold the semaphore at once. A permit is granted while fewer are held than the smallest limit among this one and those of the permits held: agents should agree on it; a smaller one binds everyone while its permit is held",
  ),
  leaseMs: leaseMs
    .optional()
    .describe("The lease's length in ms; left out or 0, the server's leaseMs (30 s by default). At most the server's maxLeaseMs (1 hour by default). Renew it before it ends, or the permit is free for anyone"),
  waitMs: ms(3_600_000)
    .optional()
    .describe("Long-poll: wait up to this many ms for a permit to be free; left out or 0, answer at once. At most the server's maxWaitMs (30 s by default): a longer wait is cut to it"),
  idempotencyKey: text(200)
    .optional()
    .describe("This acquire's key. The same agent sending the same key again (its answer lost) gets the permit it took, renewed, while that permit lasts (with another limit: 409 IDEMPOTENCY_MISMATCH). Left out, every acquire that is granted takes a permit of its own (an agent may hold several)"),
});
export type AcquirePermitRequest = z.output<typeof acquirePermitInput>;

export const renewPermitInput = z.strictObject({
  name: semaphoreName(),
  agentId: name().describe("The agent that holds the permit"),
  fencingToken: fencingToken().describe("The permit's fencing token, as acquire answered it"),
  leaseMs: leaseMs.optional().describe("The lease's new length from now, in ms; left out or 0, the length it was acquired or last renewed with. At most the server's maxLeaseMs"),
});
export type RenewPermitRequest = z.output<typeof renewPermitInput>;

export const releasePermitInput = z.strictObject({
  name: semaphoreName(),
  agentId: name().describe("The agent that holds the permit"),
  fencingToken: fencingToken().describe("The permit's fencing token, as acquire answered it"),
});
export type ReleasePermitRequest = z.output<typeof releasePermitInput>;

export const forceReleasePermitsInput = z.strictObject({
  name: semaphoreName(),
  fencingToken: fencingToken().optional().describe("Only the permit of this fencing token; left out, every permit held"),
  reason: text(1000).optional().describe("Why, in the operator's words: in each semaphore.released event and the log"),
});
export type ForceReleasePermitsRequest = z.output<typeof forceReleasePermitsInput>;

export const getSemaphoreInput = z.strictObject({ name: semaphoreName() });

export const listPermitsInput = z.strictObject({
  holder: name().optional().describe("Only the permits this agent holds"),
  prefix: text(MAX_LOCK_NAME).optional().describe('Only the permits of semaphores whose name starts with this text (case-sensitive): "gpu/"'),
  cursor: text(MAX_LOCK_NAME + 30)
    .refine((value) => /^[1-9][0-9]{0,15}:/.test(value), "must be a nextCursor semaphores.list answered")
    .optional()
    .describe("The previous page's nextCursor"),
  limit: int(1, 1000).default(100).describe("The most permits answered (100 by default)"),
});
export type ListPermitsRequest = z.output<typeof listPermitsInput>;

export const permitSchema = z
  .object({
    name: z.string().describe("The semaphore's name"),
    holder: z.string().describe("The agent that holds the permit"),
    fencingToken: z
      .number()
      .describe("This permit's fencing token: larger than every token granted before it, of any lock or semaphore. Renew and release the permit by it; pass it to what the semaphore guards"),
    limit: z.number().describe("The limit the acquire that took it asked for"),
    acquiredAt: z.date().describe("When this permit was granted (renewals keep it)"),
    expiresAt: z.date().describe("When the lease ends unless renewed: the permit is free for anyone from then"),
    leaseMs: z.number().describe("The lease's length in ms, as acquired or last renewed: what a renewal naming none renews by"),
  })
  .meta({ id: "SemaphorePermit" });
export type Permit = z.infer<typeof permitSchema>;

/** What a semaphore is now, in few bytes: every answer about it carries this. */
const stateShape = {
  name: z.string(),
  held: z.number().describe("How many permits are held now (those whose lease ran out not counted)"),
  limit: z.number().nullable().describe("The smallest limit among the permits held: no permit is granted while `held` is this or more (null: none is held)"),
  nextExpiresAt: z.date().nullable().describe("When the first lease of those held ends unless renewed (null: none is held)"),
};

export const semaphoreStateSchema = z.object(stateShape).meta({ id: "SemaphoreState" });
export type SemaphoreState = z.infer<typeof semaphoreStateSchema>;

export const semaphoreSchema = z
  .object({
    ...stateShape,
    permits: z.array(permitSchema).describe("The permits held, oldest token first (as many as fit in the answer: permitsOmitted says how many more)"),
    permitsOmitted: z.number().describe("Permits held left out of `permits` to stay within the server's maxResponseBytes (semaphores.list pages through them)"),
  })
  .meta({ id: "Semaphore" });
export type Semaphore = z.infer<typeof semaphoreSchema>;

export const permitAcquiredSchema = z
  .object({
    acquired: z.boolean().describe("Whether the caller holds a permit now (also when an acquire with its agent and idempotencyKey took it already: the same permit, renewed). False: the semaphore was full past the wait"),
    permit: permitSchema.nullable().describe("The caller's permit (null: not acquired)"),
    semaphore: semaphoreStateSchema.describe("The semaphore as it is after the call"),
  })
  .meta({ id: "PermitAcquired" });
export type PermitAcquired = z.infer<typeof permitAcquiredSchema>;

export const permitReleasedSchema = z
  .object({
    released: z.boolean().describe("Whether this call ended the caller's permit. False: it held none under that token (released already, or its lease ran out), and nothing changed"),
    semaphore: semaphoreStateSchema.describe("The semaphore as it is after the call"),
  })
  .meta({ id: "PermitReleased" });
export type PermitReleased = z.infer<typeof permitReleasedSchema>;

export const permitsForceReleasedSchema = z
  .object({
    released: z.number().describe("How many permits this call ended, each with its semaphore.released (0: none was held, or none under that token; nothing changed)"),
    semaphore: semaphoreStateSchema.describe("The semaphore as it is after the call"),
  })
  .meta({ id: "PermitsForceReleased" });
export type PermitsForceReleased = z.infer<typeof permitsForceReleasedSchema>;

export const permitPageSchema = z
  .object({
    items: z.array(permitSchema),
    nextCursor: z.string().nullable().describe("Pass as cursor for the next page; null on the last"),
  })
  .meta({ id: "PermitPage" });
export type PermitPage = z.infer<typeof permitPageSchema>;
