// Wire shapes of the pre-execution memory. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonOutput, jsonValue, RESERVED_JSON_KEYS } from "../json-value.js";
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

// Each field's description is its documentation (OpenAPI, MCP tools).
export const rememberInput = z.strictObject({
  content: text(20_000)
    .refine((value) => value.trim() !== "", "must not be blank: recall finds a memory by its words")
    .describe("The note or lesson, as text: recall finds it by its words"),
  kind: z.enum(["note", "lesson"]).default("note").describe("note: something known; lesson: what to do, or not do, next time"),
  agentId: name().optional().describe("The agent it comes from"),
  queue: name().optional().describe("The queue it is about: it is in the context of that queue's tasks whatever its words, and ranks higher there; recall can filter by it"),
  capability: name().optional().describe("The capability it is about: it is in the context of tasks that need it whatever its words; recall can filter by it"),
  taskId: name().optional().describe("The task it comes from"),
  tags: z.array(text(100)).max(50).default([]).describe("Words to find it by, beside its content"),
  data: jsonValue.optional().describe(`Structured data kept with it: any JSON (${RESERVED_JSON_KEYS})`),
  idempotencyKey: text(500)
    .optional()
    .describe(
      "This remember's own key (1 to 500 characters), its agentId's (remembers naming none share one space): sent again with it (its answer lost), the memory it stored, not a second one, while that memory is kept; sent with other content, kind, queue, capability, taskId, tags (the same in another order are the same) or data (compared as JSON), 409 IDEMPOTENCY_MISMATCH (details: memoryId, differs)",
    ),
});
export type RememberRequest = z.output<typeof rememberInput>;

/** A memory to delete, by its id: storedName, as it finds what is stored. */
export const forgetInput = z.strictObject({ memoryId: storedName().describe("The memory's id") });
export type ForgetRequest = z.output<typeof forgetInput>;

export const recallInput = z.strictObject({
  // Any text is safe: it is never passed to FTS5 as syntax.
  query: z.string().max(2000).optional().describe("Free text: memories sharing its words rank first. Left out (or blank), the newest memories; text with no word in it matches nothing"),
  taskId: storedName().optional().describe("Recall for this task: its queue, capability and payload become the query"),
  queue: storedName().optional().describe("Only memories of this queue"),
  capability: storedName().optional().describe("Only memories of this capability"),
  limit: int(1, 100).default(10).describe("The most memories to return, best first"),
});
export type RecallRequest = z.output<typeof recallInput>;
