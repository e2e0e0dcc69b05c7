// Wire shapes of queue rate limits (queues.setRate, queues.removeRate, queues.rate, queues.rates).
import { z } from "zod";
import { int, storedName } from "../schema-parts.js";

/** The largest maximum taken: more claims of one queue in a window than any server makes. */
export const MAX_CLAIMS_PER_WINDOW = 1_000_000;
/** The shortest window, in ms: shorter is a concurrency limit's job, and timers' grain. */
export const MIN_RATE_WINDOW_MS = 100;
/** The longest window, in ms: a day. */
export const MAX_RATE_WINDOW_MS = 86_400_000;

export const setRateInput = z.strictObject({
  queue: storedName().describe("The queue to rate-limit: at most maxClaims of its tasks are claimed in any window of perMs milliseconds, whichever agents claim them"),
  maxClaims: int(1, MAX_CLAIMS_PER_WINDOW).describe("The most claims of the queue's tasks in any window of perMs (1 to 1,000,000): a provider's requests per window, one task one request"),
  perMs: int(MIN_RATE_WINDOW_MS, MAX_RATE_WINDOW_MS).describe(
    "The window's length in milliseconds (100 to 86,400,000: a day). It slides: a claim is made only while fewer than maxClaims were made in the perMs before it",
  ),
});
export type SetRateRequest = z.output<typeof setRateInput>;

export const rateQueueInput = z.strictObject({
  queue: storedName().describe("The queue"),
});

export const queueRateSchema = z
  .object({
    queue: z.string(),
    maxClaims: z.number().int().nullable().describe("The most claims of the queue's tasks in any window of perMs; null: the queue has no rate"),
    perMs: z.number().int().nullable().describe("The window's length in ms; null with no rate"),
    used: z.number().int().nullable().describe("Claims of the queue's tasks in the window that ends now; null with no rate"),
    nextClaimAt: z
      .date()
      .nullable()
      .describe("When the window has room for a claim again, if it is full now (used >= maxClaims); null while it has room, or with no rate"),
    setBy: z.string().nullable().describe("The id of the credential that set the rate; null on an open server, in-process, or with no rate"),
    setAt: z.date().nullable().describe("When the rate was set; null with none"),
    removedAt: z
      .date()
      .nullable()
      .describe("Set while a removed rate's held tasks are brought back into the claim indexes, best first, a bounded chunk a write; null once they all are"),
  })
  .meta({ id: "QueueRate" });
export type QueueRate = z.infer<typeof queueRateSchema>;
