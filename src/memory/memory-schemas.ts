// Wire shapes of the pre-execution memory.
import { z } from "zod";
import { jsonValue, intInput } from "../json-value.js";

export const MEMORY_KINDS = ["execution", "note", "lesson"] as const;

export const memorySchema = z.object({
  id: z.string(),
  kind: z.enum(MEMORY_KINDS),
  content: z.string(),
  agentId: z.string().nullable(),
  queue: z.string().nullable(),
  capability: z.string().nullable(),
  taskId: z.string().nullable(),
  /** completed | failed | dead_letter for execution records; null for notes. */
  outcome: z.string().nullable(),
  durationMs: z.number().nullable(),
  tags: z.array(z.string()),
  data: z.unknown(),
  createdAt: z.date(),
});
export type Memory = z.infer<typeof memorySchema>;

export const memoryMatchSchema = z.object({
  memory: memorySchema,
  /** Relevance blended with recency and outcome, in [0, 1]; higher is better. */
  score: z.number(),
});
export type MemoryMatch = z.infer<typeof memoryMatchSchema>;

const optionalName = z.string().min(1).max(200).optional();

export const rememberInput = z.object({
  content: z.string().min(1, "content must not be empty").max(20_000),
  kind: z.enum(["note", "lesson"]).default("note"),
  agentId: optionalName,
  queue: optionalName,
  capability: optionalName,
  taskId: optionalName,
  tags: z.array(z.string().min(1).max(100)).max(50).default([]),
  data: jsonValue.optional(),
});
export type RememberRequest = z.output<typeof rememberInput>;

export const recallInput = z.object({
  /** Free text; any text is safe (it is never passed to FTS5 as syntax). */
  query: z.string().max(2000).optional(),
  /** Recall for this task: its queue, capability and payload become the query. */
  taskId: z.string().min(1).max(200).optional(),
  queue: optionalName,
  capability: optionalName,
  limit: intInput(1, 100).default(10),
});
export type RecallRequest = z.output<typeof recallInput>;
