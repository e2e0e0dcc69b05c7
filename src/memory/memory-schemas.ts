// Wire shapes of the pre-execution memory. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonOutput, jsonValue } from "../json-value.js";
import { int, name, storedName, text } from "../schema-parts.js";

export const MEMORY_KINDS = ["execution", "note", "lesson"] as const;

export const memorySchema = z
  .object({
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
    data: jsonOutput,
    createdAt: z.date(),
  })
  .meta({ id: "Memory" });
export type Memory = z.infer<typeof memorySchema>;

export const memoryMatchSchema = z
  .object({
    memory: memorySchema,
    /** Relevance blended with recency and outcome, in [0, 1]; higher is better. */
    score: z.number(),
  })
  .meta({ id: "MemoryMatch" });
export type MemoryMatch = z.infer<typeof memoryMatchSchema>;

export const rememberInput = z.strictObject({
  content: text(20_000),
  kind: z.enum(["note", "lesson"]).default("note"),
  agentId: name().optional(),
  queue: name().optional(),
  capability: name().optional(),
  taskId: name().optional(),
  tags: z.array(text(100)).max(50).default([]),
  data: jsonValue.optional(),
});
export type RememberRequest = z.output<typeof rememberInput>;

/** A memory to delete, by its id: storedName, as it finds what is stored. */
export const forgetInput = z.strictObject({ memoryId: storedName() });
export type ForgetRequest = z.output<typeof forgetInput>;

export const recallInput = z.strictObject({
  /** Free text; any text is safe (it is never passed to FTS5 as syntax). */
  query: z.string().max(2000).optional(),
  /** Recall for this task: its queue, capability and payload become the query. */
  taskId: storedName().optional(),
  queue: storedName().optional(),
  capability: storedName().optional(),
  limit: int(1, 100).default(10),
});
export type RecallRequest = z.output<typeof recallInput>;
