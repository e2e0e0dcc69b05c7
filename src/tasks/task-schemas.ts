// Wire shapes of the task queue: one zod schema per input and output, shared by tRPC, the REST
// adapter, the in-process API and the OpenAPI document, and the TypeScript types inferred from
// them. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonOutput, jsonValue, MAX_TIME_MS } from "../json-value.js";
import { memoryMatchSchema } from "../memory/memory-schemas.js";
import { int, ms, name, nameList, storedName, text, WEEK_MS } from "../schema-parts.js";
import { TASK_STATUSES, type TaskStatus } from "./task-status.js";
import { copyWith } from "../copy-with.js";

export { TASK_STATUSES, type TaskStatus };

export const agentIdSchema = name();
export const taskIdSchema = name();

const isoDateTime = z.iso.datetime({ offset: true });
/**
 * A Date (tRPC/superjson), an ISO 8601 date-time with offset or Unix ms (REST), between 1970 and
 * the end of year 9999 (MAX_TIME_MS): every time stored can be read back by every client.
 */
export const dateInput = z
  .union([z.date(), z.string(), z.number()])
  .transform((v, ctx) => {
    const ms = v instanceof Date ? v.getTime() : typeof v === "number" ? v : isoDateTime.safeParse(v).success ? Date.parse(v) : Number.NaN;
    if (Number.isInteger(ms) && ms >= 0 && ms <= MAX_TIME_MS) return new Date(ms);
    ctx.addIssue({
      code: "custom",
      message: "must be a time between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: a Date, an ISO 8601 date-time with offset, or Unix ms",
    });
    return z.NEVER;
  })
  .meta({ description: "ISO 8601 date-time with offset, or Unix ms; from 1970 to year 9999" });

const leaseMs = ms(WEEK_MS);

export const enqueueFields = z.strictObject({
  queue: name().default("default"),
  /** Any JSON value: what the agent needs to do the work. */
  payload: jsonValue.default({}),
  /** 0 is the highest priority. */
  priority: int(0, 1_000_000).default(5),
  /** Only an agent with this capability may claim the task. */
  capability: name().optional(),
  /** Only this agent may claim the task (the name the task record carries). */
  targetAgentId: agentIdSchema.optional(),
  /** The seed's name for targetAgentId; when both are given they must agree. */
  agentId: agentIdSchema.optional(),
  /** Not claimable before this time. */
  runAt: dateInput.optional(),
  /** Attempts before the task is dead-lettered; defaults to the server's maxAttempts. */
  maxAttempts: int(1, 1000).optional(),
  /** The same key always returns the same task; never creates a duplicate. */
  idempotencyKey: text(500).optional(),
});

export const enqueueInput = enqueueFields
  .superRefine((input, ctx) => {
    if (input.agentId !== undefined && input.targetAgentId !== undefined && input.agentId !== input.targetAgentId) {
      ctx.addIssue({ code: "custom", path: ["agentId"], message: `must agree with targetAgentId ("${input.targetAgentId}"); agentId is its alias` });
    }
  })
  .transform(({ agentId, targetAgentId, ...rest }) => copyWith(rest, { targetAgentId: targetAgentId ?? agentId }));
export type EnqueueInput = z.input<typeof enqueueInput>;
export type EnqueueRequest = z.output<typeof enqueueInput>;

export const enqueueManyInput = z.strictObject({ tasks: z.array(enqueueInput).min(1).max(1000) });

const claimFields = {
  agentId: agentIdSchema,
  /**
   * Claim only from these queues (default: any queue). An empty list is refused: it claimed from
   * every queue, the opposite of what a filter that came out empty means.
   */
  queues: nameList()
    .refine((queues) => queues.length > 0, "must name at least one queue; leave it out to claim from any queue")
    .optional(),
  /** Capabilities the claimer offers (default: the agent's registered capabilities). */
  capabilities: nameList().optional(),
  /** Lease length; defaults to the server's leaseMs. */
  leaseMs: leaseMs.optional(),
  /** Long-poll: wait up to this long for a task to arrive. */
  waitMs: ms(3_600_000).optional(),
  /** Return recalled memories with each task (default true). */
  context: z.boolean().optional(),
};
export const claimInput = z.strictObject(claimFields);
export type ClaimRequest = z.output<typeof claimInput> & { limit?: number };
export const claimManyInput = z.strictObject({ ...claimFields, limit: int(1, 100).default(10) });

const settleFields = {
  taskId: taskIdSchema,
  agentId: agentIdSchema,
  /** Fencing token from the claim; when given, it must match the current lease. */
  leaseToken: int(0).optional(),
};
export const heartbeatInput = z.strictObject({
  ...settleFields,
  /** The lease's new length from now; by default (or 0) the length it was claimed or last renewed with. */
  leaseMs: leaseMs.optional(),
});
/**
 * complete/fail may omit agentId: the seed's REST routes do not send one. Then the current lease
 * is settled, whoever holds it (README, "Anonymous settles"); agents should send agentId and leaseToken.
 */
const anyHolderSettleFields = { ...settleFields, agentId: agentIdSchema.optional() };
export const completeInput = z.strictObject({ ...anyHolderSettleFields, result: jsonValue.optional() });
/**
 * complete-and-claim: the complete's fields (agentId required: the next task is claimed for it)
 * and what to claim next; by default any queue, the agent's registered capabilities, the
 * server's lease, with context. The next claim does not wait: a task at once, or none.
 */
export const completeAndClaimInput = z.strictObject({
  ...settleFields,
  result: jsonValue.optional(),
  next: z
    .strictObject({
      queues: claimFields.queues,
      capabilities: claimFields.capabilities,
      leaseMs: claimFields.leaseMs,
      context: claimFields.context,
    })
    .optional(),
});
export type CompleteAndClaimRequest = z.output<typeof completeAndClaimInput>;
export const failInput = z.strictObject({
  ...anyHolderSettleFields,
  error: text(10_000),
  /** false dead-letters the task at once, whatever attempts remain. */
  retry: z.boolean().default(true),
});
export const releaseInput = z.strictObject({ ...settleFields, delayMs: leaseMs.optional() });
export const taskIdInput = z.strictObject({ taskId: taskIdSchema });
export const taskEventsInput = z.strictObject({ taskId: taskIdSchema, limit: int(1, 1000).default(200) });
export const stealInput = z.strictObject({
  agentId: agentIdSchema,
  fromAgentId: agentIdSchema.optional(),
  limit: int(1, 100).default(1),
  leaseMs: leaseMs.optional(),
  capabilities: nameList().optional(),
});
// Filters find what is stored: storedName (schema-parts.ts).
export const listInput = z.strictObject({
  queue: storedName().optional(),
  status: z.enum(TASK_STATUSES).optional(),
  /**
   * Tasks held (or last held) by this agent. With status "claimed" an index finds them; otherwise
   * the table is read in seq order until the page is full, as for queue and capability.
   */
  agentId: storedName().optional(),
  capability: storedName().optional(),
  limit: int(1, 500).default(50),
  /** nextCursor from the previous page. */
  cursor: z.string().regex(/^\d{1,15}$/, "must be a nextCursor value").optional(),
  order: z.enum(["asc", "desc"]).default("asc"),
});
export type ListRequest = z.output<typeof listInput>;

export const taskErrorSchema = z.object({
  attempt: z.number().int(),
  agentId: z.string().nullable(),
  error: z.string(),
  at: z.date(),
});

export const taskSchema = z
  .object({
    id: z.string(),
    queue: z.string(),
    payload: jsonOutput,
    priority: z.number().int(),
    capability: z.string().nullable(),
    /** The only agent allowed to claim the task, if any. */
    targetAgentId: z.string().nullable(),
    status: z.enum(TASK_STATUSES),
    attempts: z.number().int(),
    maxAttempts: z.number().int(),
    runAt: z.date(),
    /** The agent holding the lease (claimed), or that held it last (completed, dead_letter). */
    leaseOwner: z.string().nullable(),
    leaseExpiresAt: z.date().nullable(),
    leaseToken: z.number().int(),
    /** The completion result; null until completed. */
    result: jsonOutput,
    lastError: z.string().nullable(),
    errorHistory: z.array(taskErrorSchema),
    idempotencyKey: z.string().nullable(),
    createdAt: z.date(),
    updatedAt: z.date(),
    claimedAt: z.date().nullable(),
    finishedAt: z.date().nullable(),
  })
  .meta({ id: "Task" });
export type Task = z.infer<typeof taskSchema>;

export const settledTaskSchema = taskSchema
  .extend({
    /**
     * The lease this settle ended: its holder and fencing token. An anonymous settle (no agentId)
     * acts on whatever lease is current; this says whose it was.
     */
    settledLease: z.object({ agentId: z.string(), leaseToken: z.number().int() }),
  })
  .meta({ id: "SettledTask" });
export type SettledTask = z.infer<typeof settledTaskSchema>;

/** What a claimed task always has: its holder, and a lease with an end. */
const heldFields = { status: z.literal("claimed"), leaseOwner: z.string(), leaseExpiresAt: z.date(), claimedAt: z.date() };
export type HeldTask = Task & { status: "claimed"; leaseOwner: string; leaseExpiresAt: Date; claimedAt: Date };

/** Whether `task` is held under a lease now (narrows its lease fields from nullable). */
export const isHeld = (task: Task): task is HeldTask => task.status === "claimed" && task.leaseOwner !== null && task.leaseExpiresAt !== null && task.claimedAt !== null;

/**
 * `task` with the fields of `extra` added (a claim's `context`, a settle's `settledLease`): a
 * literal naming every field of a task, as task-store.ts's taskRowWith does for a row and for
 * the same reason; a claim and a settle each make one. Here, beside the type, so the event loop
 * need not load the store. `task` must be a task and no more: a field beyond Task's is not copied.
 */
export function taskWith<T extends Task, E extends object>(task: T, extra: E): T & E {
  const copy: Task = {
    id: task.id,
    queue: task.queue,
    payload: task.payload,
    priority: task.priority,
    capability: task.capability,
    targetAgentId: task.targetAgentId,
    status: task.status,
    attempts: task.attempts,
    maxAttempts: task.maxAttempts,
    runAt: task.runAt,
    leaseOwner: task.leaseOwner,
    leaseExpiresAt: task.leaseExpiresAt,
    leaseToken: task.leaseToken,
    result: task.result,
    lastError: task.lastError,
    errorHistory: task.errorHistory,
    idempotencyKey: task.idempotencyKey,
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    claimedAt: task.claimedAt,
    finishedAt: task.finishedAt,
  };
  // Every field copied from `task`: the narrowing of a held task (status, lease fields) holds for the copy.
  return Object.assign(copy as T, extra);
}

/** A task as a claim hands it out: held by the claimer under a lease that has an end, with the memories recalled for it. */
export const claimedTaskSchema = taskSchema.extend({ ...heldFields, context: z.array(memoryMatchSchema) }).meta({ id: "ClaimedTask" });
export type ClaimedTask = z.infer<typeof claimedTaskSchema>;

/** What complete-and-claim answers: the completed task, and the next one claimed for the agent (null when none was available). */
export const completedAndClaimedSchema = z
  .object({ completed: settledTaskSchema, next: claimedTaskSchema.nullable() })
  .meta({ id: "CompletedAndClaimed" });
export type CompletedAndClaimed = z.infer<typeof completedAndClaimedSchema>;

export const taskPageSchema = z.object({ items: z.array(taskSchema), nextCursor: z.string().nullable() });

const statusCounts = z.object(Object.fromEntries(TASK_STATUSES.map((s) => [s, z.number().int()])) as Record<TaskStatus, z.ZodNumber>);
export const taskStatsSchema = z.object({
  queues: z.array(
    z.object({
      queue: z.string(),
      counts: statusCounts,
      /** Age of the oldest pending task whose run-at has come, or null when none waits. */
      oldestPendingAgeMs: z.number().nullable(),
    }),
  ),
  totals: statusCounts,
  /** What is kept (src/retention/): each class's limits (null: none), and the oldest settled task still kept. */
  retention: z.object({
    settledTasks: z.object({ maxAgeMs: z.number().nullable(), maxCount: z.number().nullable(), oldestSettledAt: z.date().nullable() }),
    executions: z.object({ maxAgeMs: z.number().nullable(), maxCount: z.number().nullable() }),
    notes: z.object({ maxAgeMs: z.number().nullable(), maxCount: z.number().nullable() }),
  }),
});
export type TaskStats = z.infer<typeof taskStatsSchema>;
/** The counts part, as the reader computes it. */
export type TaskCounts = Omit<TaskStats, "retention">;
