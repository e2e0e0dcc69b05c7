// Wire shapes of queue concurrency limits (queues.setLimit, queues.removeLimit, queues.limit, queues.limits).
import { z } from "zod";
import { int, storedName } from "../schema-parts.js";

/** The largest limit taken: more leases of one queue than any server holds at once. */
export const MAX_LEASED = 1_000_000;

export const setLimitInput = z.strictObject({
  queue: storedName().describe("The queue to limit: at most maxLeased of its tasks are leased at once, whichever agents hold them"),
  maxLeased: int(1, MAX_LEASED).describe(
    "The most leases of the queue's tasks at once (1 to 1,000,000). Leases already held above it run on; no claim takes the queue's tasks until fewer are leased",
  ),
});
export type SetLimitRequest = z.output<typeof setLimitInput>;

export const limitQueueInput = z.strictObject({
  queue: storedName().describe("The queue"),
});

export const queueLimitSchema = z
  .object({
    queue: z.string(),
    maxLeased: z.number().int().nullable().describe("The most leases of the queue's tasks at once; null: the queue has no limit"),
    leased: z
      .number()
      .int()
      .nullable()
      .describe("How many of the queue's tasks are leased now; null when the queue has no limit (tasks.stats counts its claimed tasks)"),
    setBy: z.string().nullable().describe("The id of the credential that set the limit; null on an open server, in-process, or with no limit"),
    setAt: z.date().nullable().describe("When the limit was set; null with none"),
    removedAt: z
      .date()
      .nullable()
      .describe("Set while a removed limit's held tasks are brought back into the claim indexes, best first, a bounded chunk a write; null once they all are"),
  })
  .meta({ id: "QueueLimit" });
export type QueueLimit = z.infer<typeof queueLimitSchema>;
