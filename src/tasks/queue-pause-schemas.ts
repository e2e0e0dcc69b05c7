// Wire shapes of queue pauses (queues.pause, queues.resume, queues.paused).
import { z } from "zod";
import { storedName, text } from "../schema-parts.js";

export const pauseInput = z.strictObject({
  queue: storedName().describe("The queue to pause: its tasks stay pending, enqueues are taken, no claim or steal takes them until it is resumed"),
  reason: text(1000).optional().describe("Why, in the operator's words: shown with the pause (queues.paused, the queue.paused event)"),
});
export type PauseRequest = z.output<typeof pauseInput>;

export const resumeInput = z.strictObject({
  queue: storedName().describe("The queue to resume: claims take its tasks again, best first"),
});

export const queuePauseSchema = z
  .object({
    queue: z.string(),
    paused: z.boolean().describe("Whether claims and steals leave the queue's tasks out now"),
    reason: z.string().nullable().describe("Why it was paused (null: none given, or not paused)"),
    pausedBy: z.string().nullable().describe("The id of the credential that paused it; null on an open server, in-process, or when not paused"),
    pausedAt: z.date().nullable(),
    resumedAt: z
      .date()
      .nullable()
      .describe("Set while a resumed queue's tasks are brought back into the claim indexes, best first, a bounded chunk a write (a large backlog takes seconds); null once they all are"),
  })
  .meta({ id: "QueuePause" });
export type QueuePause = z.infer<typeof queuePauseSchema>;
