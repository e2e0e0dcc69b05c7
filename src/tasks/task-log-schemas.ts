// Wire shapes of a run's log: what the agent holding a task appends (tasks.appendLog), and what
// anyone who may read reads back, a page at a time or following it as it grows (tasks.log).
import { z } from "zod";
import { jsonOutput, jsonWithin, RESERVED_JSON_KEYS } from "../json-value.js";
import { int, ms, text } from "../schema-parts.js";
import { agentIdSchema, taskIdSchema, TASK_STATUSES } from "./task-schemas.js";

/** How much a line says, least to most urgent: a read's `level` keeps that one and those after it. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The longest message a line holds, in characters. */
export const MAX_LOG_MESSAGE = 16_384;
/** The most bytes a line's data takes as JSON text (UTF-8). */
export const MAX_LOG_DATA_BYTES = 16_384;
/** The most lines one append writes. */
export const MAX_LOG_ENTRIES = 100;

const taskIdField = taskIdSchema.describe("The task's id");
const levelField = z.enum(LOG_LEVELS);

export const logEntryInput = z.strictObject({
  message: text(MAX_LOG_MESSAGE).describe(`What happened, as text (1 to ${MAX_LOG_MESSAGE} characters; newlines are kept)`),
  level: levelField.default("info").describe("How urgent: debug, info (the default), warn or error"),
  data: jsonWithin(MAX_LOG_DATA_BYTES)
    .optional()
    .describe(`Anything structured beside the message (a tool call's arguments, a model's token counts): any JSON, at most ${MAX_LOG_DATA_BYTES} bytes as JSON (${RESERVED_JSON_KEYS})`),
});
export type LogEntry = z.output<typeof logEntryInput>;

export const appendLogInput = z.strictObject({
  taskId: taskIdField,
  agentId: agentIdSchema.describe("The agent holding the task's lease: only the current run writes to its log"),
  leaseToken: int(0).optional().describe("The fencing token the claim answered; when given, it must match the current lease"),
  entries: z.array(logEntryInput).min(1).max(MAX_LOG_ENTRIES).describe(`The lines to add, in order (1 to ${MAX_LOG_ENTRIES})`),
  idempotencyKey: text(200)
    .optional()
    .describe("This append's own key: sent again with it (its answer lost), the lines it wrote are answered, not written twice, while the log keeps them (with other entries: 409 IDEMPOTENCY_MISMATCH). A key is its run's: the same key sent under a later lease is a new append"),
});
export type AppendLogRequest = z.output<typeof appendLogInput>;

export const appendedLogSchema = z.object({
  taskId: z.string(),
  firstLine: z.number().int().describe("The number of the first line this append wrote (lines are numbered from 1 per task, across its runs)"),
  lastLine: z.number().int().describe("The number of its last line"),
  dropped: z.number().int().describe("How many of the task's oldest lines the log no longer keeps (maxTaskLogBytes): lines 1 to dropped are gone"),
});
export type AppendedLog = z.output<typeof appendedLogSchema>;

export const readLogInput = z
  .strictObject({
    taskId: taskIdField,
    after: int(0).default(0).describe("Lines after this number (0, the default: from the first kept); the previous page's nextAfter"),
    tail: int(1, 1000).optional().describe("The last this many lines instead (of those the filters keep, among the last 10,000 lines), oldest first: where a reader of a long log starts; not with after. nextAfter is then the log's last line"),
    limit: int(1, 1000).default(100).describe("The most lines to return (fewer when they would pass the server's maxResponseBytes); with tail, tail is the count"),
    attempt: int(1).optional().describe("Only the lines of this attempt (the task's attempt when they were written: a run given back uncharged, by a release, shares its number with the run after it, and a requeue starts attempts again at 1; leaseToken tells those runs apart)"),
    level: levelField.optional().describe("Only lines this urgent or more: warn gives warn and error"),
    waitMs: ms(3_600_000)
      .optional()
      .describe("Follow: when no line after `after` is there yet and the task has not settled, wait up to this many ms for one (left out or 0: answer at once). At most the server's maxWaitMs"),
  })
  .superRefine((input, ctx) => {
    if (input.tail !== undefined && input.after !== 0) ctx.addIssue({ code: "custom", path: ["tail"], message: "give after or tail, not both: tail reads the last lines, after those that follow a line" });
  });
export type ReadLogRequest = z.output<typeof readLogInput>;

export const logLineSchema = z.object({
  line: z.number().int(),
  at: z.date(),
  attempt: z.number().int().describe("The attempt that wrote it: the task's attempt then (a run given back uncharged shares it with the run after it, and a requeue starts attempts again at 1: leaseToken names the run)"),
  leaseToken: z.number().int().describe("The lease that run held: it tells every run apart"),
  agentId: z.string(),
  level: levelField,
  message: z.string(),
  data: jsonOutput.nullable().describe("Its structured data; null: none"),
});
export type LogLine = z.output<typeof logLineSchema>;

export const logPageSchema = z.object({
  taskId: z.string(),
  status: z.enum(TASK_STATUSES).describe("The task's status as the lines were read: once it settled (completed, dead_letter, cancelled) no run adds lines, unless it is requeued"),
  lines: z.array(logLineSchema).describe("Oldest first"),
  nextAfter: z.number().int().describe("The `after` of the next read: the last line this read looked at (with filters, those it skipped too)"),
  more: z.boolean().describe("Whether lines after nextAfter are there now (the page stopped at limit or maxResponseBytes, or a filtered read at the 10,000 lines it looks at, maybe with none of them on the page): read again at once"),
  dropped: z.number().int().describe("How many of the task's oldest lines the log no longer keeps (maxTaskLogBytes): lines 1 to dropped are gone"),
});
export type LogPage = z.output<typeof logPageSchema>;
