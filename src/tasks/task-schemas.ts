// Wire shapes of the task queue: zod schemas for every input and output (tRPC validates them,
// trpc-to-openapi turns them into the OpenAPI document) and the TypeScript types inferred from them.
import { z } from "zod";
import { intInput, jsonValue, MAX_TIME_MS } from "../json-value.js";
import { memoryMatchSchema } from "../memory/memory-schemas.js";

export const TASK_STATUSES = ["pending", "claimed", "completed", "dead_letter", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

const name = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(200, `${what} must be at most 200 characters`);
export const agentIdSchema = name("agentId");
export const taskIdSchema = name("taskId");
const isoDateTime = z.iso.datetime({ offset: true });
/**
 * A Date (tRPC/superjson), an ISO 8601 date-time with offset or Unix ms (REST), between 1970 and
 * the end of year 9999 (MAX_TIME_MS): every time stored can be read back by every client.
 */
export const dateInput = z.union([z.date(), z.string(), z.number()]).transform((v, ctx) => {
  const ms = v instanceof Date ? v.getTime() : typeof v === "number" ? v : isoDateTime.safeParse(v).success ? Date.parse(v) : Number.NaN;
  if (Number.isInteger(ms) && ms >= 0 && ms <= MAX_TIME_MS) return new Date(ms);
  ctx.addIssue({
    code: "custom",
    message: "must be a time between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: a Date, an ISO 8601 date-time with offset, or Unix ms",
  });
  return z.NEVER;
});
const ms = (max: number) => intInput(0, max);
/** Query strings carry repeated or comma-separated values; tRPC sends arrays. */
const stringList = z.preprocess(
  (v) => (typeof v === "string" ? v.split(",").filter(Boolean) : v),
  z.array(name("value")).max(100),
);

export const enqueueInput = z.object({
  queue: name("queue").default("default"),
  /** Any JSON value: what the agent needs to do the work. */
  payload: jsonValue.default({}),
  /** 0 is the highest priority. */
  priority: intInput(0, 1_000_000).default(5),
  /** Only an agent with this capability may claim the task. */
  capability: name("capability").optional(),
  /** Only this agent may claim the task. */
  agentId: agentIdSchema.optional(),
  /** Not claimable before this time. */
  runAt: dateInput.optional(),
  /** Attempts before the task is dead-lettered; defaults to the server's maxAttempts. */
  maxAttempts: intInput(1, 1000).optional(),
  /** The same key always returns the same task; never creates a duplicate. */
  idempotencyKey: z.string().min(1).max(500).optional(),
});
export type EnqueueInput = z.input<typeof enqueueInput>;
export type EnqueueRequest = z.output<typeof enqueueInput>;

export const enqueueManyInput = z.object({ tasks: z.array(enqueueInput).min(1).max(1000) });

const claimFields = {
  agentId: agentIdSchema,
  /** Claim only from these queues (default: any queue). */
  queues: stringList.optional(),
  /** Capabilities the claimer offers (default: the agent's registered capabilities). */
  capabilities: stringList.optional(),
  /** Lease length; defaults to the server's leaseMs. */
  leaseMs: ms(7 * 24 * 3_600_000).optional(),
  /** Long-poll: wait up to this long for a task to arrive. */
  waitMs: ms(3_600_000).optional(),
  /** Return recalled memories with each task (default true). */
  context: z.preprocess((v) => (v === "false" ? false : v === "true" ? true : v), z.boolean()).optional(),
};
export const claimInput = z.object(claimFields);
export type ClaimRequest = z.output<typeof claimInput> & { limit?: number };
export const claimManyInput = z.object({ ...claimFields, limit: intInput(1, 100).default(10) });

/** REST form of the seed's GET /tasks/claim/{agent_id}: singular `queue` / `capability` query parameters. */
export const restClaimInput = z.object({
  agent_id: agentIdSchema,
  queue: stringList.optional(),
  capability: stringList.optional(),
  leaseMs: claimFields.leaseMs,
  waitMs: claimFields.waitMs,
  context: claimFields.context,
});

const settleFields = {
  taskId: taskIdSchema,
  agentId: agentIdSchema,
  /** Fencing token from the claim; when given, it must match the current lease. */
  leaseToken: intInput(0).optional(),
};
export const heartbeatInput = z.object({ ...settleFields, leaseMs: ms(7 * 24 * 3_600_000).optional() });
/**
 * complete/fail may omit agentId: the seed's REST routes do not send one. Then the task must still
 * be claimed, but there is no fencing; agents should always send agentId (and leaseToken).
 */
const anyHolderSettleFields = { ...settleFields, agentId: agentIdSchema.optional() };
export const completeInput = z.object({ ...anyHolderSettleFields, result: jsonValue.optional() });
export const failInput = z.object({
  ...anyHolderSettleFields,
  error: z.string().min(1).max(10_000),
  /** false dead-letters the task at once, whatever attempts remain. */
  retry: z.boolean().default(true),
});
export const releaseInput = z.object({ ...settleFields, delayMs: ms(7 * 24 * 3_600_000).optional() });
export const taskIdInput = z.object({ taskId: taskIdSchema });
export const stealInput = z.object({
  agentId: agentIdSchema,
  fromAgentId: agentIdSchema.optional(),
  limit: intInput(1, 100).default(1),
  leaseMs: ms(7 * 24 * 3_600_000).optional(),
  capabilities: stringList.optional(),
});
export const listInput = z.object({
  queue: name("queue").optional(),
  status: z.enum(TASK_STATUSES).optional(),
  /** Tasks held (or last held) by this agent. */
  agentId: agentIdSchema.optional(),
  capability: name("capability").optional(),
  limit: intInput(1, 500).default(50),
  /** nextCursor from the previous page. */
  cursor: z
    .string()
    .regex(/^\d{1,15}$/, "cursor must be a nextCursor value")
    .optional(),
  order: z.enum(["asc", "desc"]).default("asc"),
});
export type ListRequest = z.output<typeof listInput>;

export const taskErrorSchema = z.object({
  attempt: z.number().int(),
  agentId: z.string().nullable(),
  error: z.string(),
  at: z.date(),
});

export const taskSchema = z.object({
  id: z.string(),
  queue: z.string(),
  payload: z.unknown(),
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
  result: z.unknown(),
  lastError: z.string().nullable(),
  errorHistory: z.array(taskErrorSchema),
  idempotencyKey: z.string().nullable(),
  createdAt: z.date(),
  updatedAt: z.date(),
  claimedAt: z.date().nullable(),
  finishedAt: z.date().nullable(),
});
export type Task = z.infer<typeof taskSchema>;

export const settledTaskSchema = taskSchema.extend({
  /**
   * The lease this settle ended: its holder and fencing token. An anonymous settle (no agentId)
   * acts on whatever lease is current; this says whose it was.
   */
  settledLease: z.object({ agentId: z.string(), leaseToken: z.number().int() }),
});
export type SettledTask = z.infer<typeof settledTaskSchema>;

export const claimedTaskSchema = taskSchema.extend({ context: z.array(memoryMatchSchema) });
export type ClaimedTask = z.infer<typeof claimedTaskSchema>;

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
});
export type TaskStats = z.infer<typeof taskStatsSchema>;
