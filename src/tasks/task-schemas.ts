// Wire shapes of the task queue: one zod schema per input and output, shared by tRPC, the REST
// adapter, the in-process API and the OpenAPI document, and the TypeScript types inferred from
// them. Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { jsonOutput, jsonValue, jsonWithin, MAX_TIME_MS, RESERVED_JSON_KEYS } from "../json-value.js";
import { memoryMatchSchema } from "../memory/memory-schemas.js";
import { capabilityList, int, ms, name, nameList, storedName, text, WEEK_MS } from "../schema-parts.js";
import { TASK_STATUSES, type TaskStatus } from "./task-status.js";
import { MAX_BAGGAGE_BYTES, MAX_TRACESTATE_CHARS, parseBaggage, parseTraceparent, parseTracestate, TRACE_ID } from "./trace-context.js";
import { copyWith } from "../copy-with.js";

export { TASK_STATUSES, type TaskStatus };

export const agentIdSchema = name();
export const taskIdSchema = name();

const isoDateTime = z.iso.datetime({ offset: true });
const TIME_RANGE = "between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z";
/** What an ISO 8601 date-time with an offset looks like, whatever its numbers. */
const DATE_TIME_SHAPE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** A time sent as given, in milliseconds, or why it is not one (the message names the problem, not only the range). */
function timeOf(v: Date | string | number): number | string {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? "must be a valid Date (got an Invalid Date)" : v.getTime();
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return `must be a number of Unix ms (got ${v})`;
    if (!Number.isInteger(v)) return `must be whole Unix milliseconds (got ${v}: round it first)`;
    return v;
  }
  // RFC 3339 (section 5.6) allows a lowercase "t" and "z".
  const text = v.replace(/^(\d{4}-\d{2}-\d{2})t/, "$1T").replace(/z$/, "Z");
  if (/T\d{2}:\d{2}:60/.test(text)) return `cannot be a leap second (got ${JSON.stringify(v)}): give :59.999 instead`;
  if (!DATE_TIME_SHAPE.test(text)) return `must be an ISO 8601 date-time with an offset (Z or ±hh:mm), such as 2026-12-02T06:50:00Z, or Unix ms (got ${JSON.stringify(v.slice(0, 64))})`;
  // The shape is right; the numbers are not a time (February 30th, hour 25).
  const ms = isoDateTime.safeParse(text).success ? Date.parse(text) : Number.NaN;
  return Number.isNaN(ms) ? `is not a date and time of the calendar (got ${JSON.stringify(v)})` : ms;
}

/**
 * A Date (tRPC/superjson), an ISO 8601 date-time with offset or Unix ms (REST), between 1970 and
 * the end of year 9999 (MAX_TIME_MS): every time stored can be read back by every client.
 */
export const dateInput = z
  .union([z.date(), z.string(), z.number()])
  .transform((v, ctx) => {
    const ms = timeOf(v);
    if (typeof ms === "number" && ms >= 0 && ms <= MAX_TIME_MS) return new Date(ms);
    ctx.addIssue({ code: "custom", message: typeof ms === "string" ? ms : `must be a time ${TIME_RANGE} (got ${v instanceof Date ? v.toISOString() : JSON.stringify(v)})` });
    return z.NEVER;
  })
  .meta({
    description: "ISO 8601 date-time with offset, or Unix ms; from 1970 to year 9999",
    // What a client may send (the union's Date is the typed client's; it travels as the string).
    override: {
      anyOf: [
        { type: "string", format: "date-time", description: "With an offset (Z or ±hh:mm)" },
        { type: "integer", minimum: 0, maximum: MAX_TIME_MS, description: "Unix ms" },
      ],
    },
  });

const leaseMs = ms(WEEK_MS);
/** The most tasks one task may depend on (tasks.enqueue's dependsOn). */
export const MAX_DEPENDENCIES = 100;

/** Most tasks of one ordering key an enqueue may let run at once (keyConcurrency): a settle makes at most that many pending. */
export const MAX_KEY_CONCURRENCY = 1_000;

/** The longest run time limit a task may be given (maxRunMs): 366 days, in ms. */
export const MAX_RUN_MS = 366 * 24 * 3_600_000;
/** The furthest a task's delayMs may put it: 100 years of 366 days. */
export const MAX_DELAY_MS = 100 * 366 * 24 * 3_600_000;

/** The longest wait a task's backoff may give before a retry: a week, as a lease or a release's delay. */
export const MAX_BACKOFF_MS = WEEK_MS;
export const BACKOFF_TYPES = ["exponential", "fixed"] as const;

/**
 * A task's own retry backoff (tasks.enqueue's `backoff`): how long a failed run waits before the
 * task may be claimed again. Left out, the server's: retryBaseMs doubling to retryMaxMs.
 */
export const backoffInput = z
  .strictObject({
    type: z
      .enum(BACKOFF_TYPES)
      .default("exponential")
      .describe("exponential (the default): delayMs after the first failure, doubling after each one up to maxDelayMs; fixed: delayMs after every failure"),
    delayMs: ms(MAX_BACKOFF_MS).describe("The wait after the first failed run, in ms (at most 7 days)"),
    maxDelayMs: ms(MAX_BACKOFF_MS).optional().describe("The longest wait, in ms, at least delayMs; left out, 7 days for an exponential backoff. A fixed one's is its delayMs (the task answers it so, and it may be sent back so)"),
    jitter: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe("0 to 1: each wait is drawn at random between wait × (1 − jitter) and the wait, so tasks that failed together (a provider's outage) do not all come back at the same moment; 0 (the default): exactly the wait"),
  })
  .superRefine((backoff, ctx) => {
    if (backoff.maxDelayMs === undefined) return;
    // A fixed backoff as a task answers it (maxDelayMs filled in as its delayMs) is the same policy sent back.
    if (backoff.type === "fixed" && backoff.maxDelayMs !== backoff.delayMs) ctx.addIssue({ code: "custom", path: ["maxDelayMs"], message: `a fixed backoff waits delayMs (${backoff.delayMs}) every time: leave maxDelayMs out, or give the same` });
    else if (backoff.maxDelayMs < backoff.delayMs) ctx.addIssue({ code: "custom", path: ["maxDelayMs"], message: `must be at least delayMs (${backoff.delayMs})` });
  });
export type BackoffInput = z.input<typeof backoffInput>;

/** A task's backoff as the server keeps and answers it: every field filled in (fixed: maxDelayMs is delayMs). */
export const backoffSchema = z
  .object({
    type: z.enum(BACKOFF_TYPES).describe("exponential: delayMs after the first failure, doubling after each one up to maxDelayMs; fixed: delayMs after every failure"),
    delayMs: ms(MAX_BACKOFF_MS).describe("The wait after the first failed run, in ms"),
    maxDelayMs: ms(MAX_BACKOFF_MS).describe("The longest wait, in ms (a fixed backoff's is its delayMs)"),
    jitter: z.number().min(0).max(1).describe("0 to 1: each wait is drawn at random between wait × (1 − jitter) and the wait"),
  })
  .meta({ id: "Backoff" });
export type Backoff = z.infer<typeof backoffSchema>;

/** How long an enqueue's dedupe.key answers with the task that holds it: while it waits to run, or until it settles. */
export const DEDUPE_UNTIL = ["claimed", "settled"] as const;
// No meta id, as backoffInput has none: an input schema with one goes out as a $ref in MCP tools'
// schemas, which some model hosts do not resolve and whose fields the tools' checks do not read.
export const dedupeInput = z
  .strictObject({
    key: text(500)
      .describe("The work this enqueue asks for (\"reindex:repo-42\"): a task of the same queue enqueued with this key that has not started yet is the answer, and no task is added"),
    until: z
      .enum(DEDUPE_UNTIL)
      .default("claimed")
      .describe(
        "claimed (the default): a task with the key answers while it waits to run (pending, a retry's backoff, waiting for its dependencies or its turn), so work asked for after a run began runs again; settled: while it runs too, so at most one task of the key is under way at a time",
      ),
    replace: z
      .boolean()
      .default(false)
      .describe(
        "true (a debounce): the task found takes this enqueue's payload, and its runAt or delayMs when given (each enqueue pushes it back), and its expiresAt or ttlMs when given; its other fields stay its first enqueue's. Only with until claimed: a run under way cannot take a new payload",
      ),
  });

/** A zod check refusing a text `parse` (a W3C header's grammar: trace-context.ts) finds wrong, with the reason it gives. */
const refusedBy =
  (parse: (text: string) => { ok: true } | { ok: false; reason: string }) =>
  (value: string, ctx: z.RefinementCtx): void => {
    const parsed = parse(value);
    if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.reason });
  };

// Each field's description is its documentation: the OpenAPI document and the MCP tools'
// schemas carry it to plain HTTP clients and to LLM agents.
export const enqueueFields = z.strictObject({
  queue: name().default("default").describe("The queue to add the task to"),
  payload: jsonValue.default({}).describe(`What the agent needs to do the work: any JSON (${RESERVED_JSON_KEYS})`),
  priority: int(0, 1_000_000).default(5).describe("0 is the highest: a claim takes the lowest number first, then the first created (a retried or delayed task, once due, goes before tasks created after it)"),
  capability: name().optional().describe("Only an agent offering this capability may claim the task"),
  targetAgentId: agentIdSchema.optional().describe("Only this agent may claim the task"),
  agentId: agentIdSchema.optional().describe("The seed's name for targetAgentId; when both are given they must agree"),
  runAt: dateInput.optional().describe("Not claimable before this time: an ISO 8601 date-time with offset, or Unix ms"),
  delayMs: ms(MAX_DELAY_MS)
    .optional()
    .describe("Not claimable for this many ms after the server stores it (by the server's clock, not the client's): runAt's relative form, give one or the other. Not compared when an idempotencyKey is sent again: a retried enqueue is the same task whatever its delayMs"),
  expiresAt: dateInput
    .optional()
    .describe(
      "No run of it starts after this time (an ISO 8601 date-time with offset, or Unix ms): a task still waiting to run then (pending, a retry's backoff, waiting for the tasks it depends on) is cancelled, its task.cancelled event saying expired: true. A run under way then goes on. Must be after it falls due (runAt, or now). Left out, it never expires",
    ),
  ttlMs: ms(100 * 366 * 24 * 3_600_000)
    .min(1)
    .optional()
    .describe(
      "expiresAt's relative form, give one or the other: it expires this many ms after it falls due (its runAt, or when the server stores it if that is later; for a task that waits for others, from then too). Not compared when an idempotencyKey is sent again",
    ),
  maxAttempts: int(1, 1000).optional().describe("Attempts before the task is dead-lettered; left out, the server's maxAttempts"),
  maxRunMs: int(1, MAX_RUN_MS)
    .optional()
    .describe(
      "The longest one run of it may last, in ms from its claim (a run time limit): heartbeats renew its lease no further than claimedAt + maxRunMs (the claimed task's runDeadlineAt), and one sent after that is a 409 LEASE_CONFLICT; the server then ends the run as a lease that ran out (charged, retried at once, or dead-lettered at its last attempt), its task.lease_expired saying timedOut: true. Left out, the server's maxRunMs (none by default)",
    ),
  backoff: backoffInput
    .optional()
    .describe("How long each failed run waits before the task may be claimed again: { type: exponential | fixed, delayMs, maxDelayMs, jitter }. Left out, the server's backoff (retryBaseMs, doubling to retryMaxMs). A lease that expires retries at once whatever it says"),
  dependsOn: z
    .array(taskIdSchema)
    .max(MAX_DEPENDENCIES)
    .optional()
    .describe(
      `Ids of tasks (up to ${MAX_DEPENDENCIES}, each once) that must complete before this one may be claimed: until then it is waiting, and the write that completes the last one makes it pending (its task.ready event). One of them cancelled (or deleted by retention as a dead letter) cancels it too; one dead-lettered keeps it waiting, for a requeue of that task to complete, or cancels it with onDependencyFailure "cancel". Each must exist and not be cancelled (nor dead-lettered, with onDependencyFailure "cancel"). [] is none`,
    ),
  onDependencyFailure: z
    .enum(["wait", "cancel"])
    .optional()
    .describe(
      "What a dependency dead-lettered does to this task while it waits: wait (the default) keeps it waiting, for a requeue of that dependency to complete; cancel cancels it (and what waits on it), and refuses a dependency already dead-lettered",
    ),
  idempotencyKey: text(500)
    .optional()
    .describe(
      "The same key always answers the same task and never adds a second one, for as long as the task is kept. Sent again with a different queue, payload, priority, capability, targetAgentId, backoff, dependsOn, onDependencyFailure, dedupe key, orderingKey, keyConcurrency, or a maxAttempts, maxRunMs or expiresAt (or, until the task is first claimed or changed, a runAt) that differs when given, it is a 409 IDEMPOTENCY_MISMATCH. The priority compared is the one it was enqueued with (tasks.update may have changed it since); the payload, not once a dedupe.replace or tasks.update replaced it (replacedAt)",
    ),
  dedupe: dedupeInput
    .optional()
    .describe(
      "Deduplication: { key, until?, replace? }. While a task of this queue enqueued with the same key waits to run (until claimed, the default) or has not settled (until settled), this enqueue adds no task and is answered with that one (deduplicated: true; its duplicates counts such enqueues, each with a task.deduplicated event). Otherwise the task is added, holding the key. The lookup is per queue, whoever enqueued; an idempotencyKey is looked for first",
    ),
  orderingKey: text(500)
    .optional()
    .describe(
      "Ordered processing (\"account:42\"): the tasks of this queue enqueued with the same key run one at a time (or keyConcurrency at a time), in the order they were enqueued. Behind a task of the key that has not settled, this one waits (status waiting) until every one before it has completed, been dead-lettered (after its retries) or been cancelled (with a keyConcurrency above 1: until fewer than that many of the key run and every one before it started); then it is pending, with a task.ready event. Priority orders tasks of different keys only; a dead letter or cancel lets the next of its key run. A requeued task of the key waits while one (its keyConcurrency) of the key is pending or claimed, and goes before the waiting ones enqueued after it",
    ),
  keyConcurrency: z
    .number()
    .int()
    .min(1)
    .max(MAX_KEY_CONCURRENCY)
    .optional()
    .describe(
      "With orderingKey: how many tasks of the key may run (pending or claimed) at once, this one included; 1 (the default) is one at a time. They start in the order they were enqueued: this one waits (status waiting) while that many of its key run or one enqueued before it waits. Checked when it starts: give a key's tasks the same value (one of the key asking for more may start beside it later). A per-tenant share (\"tenant:acme\", 4): one tenant's backlog holds at most 4 places in the queue, and other tenants' tasks run beside it. Without an orderingKey, a 400",
    ),
  traceparent: z
    .string()
    .max(MAX_TRACESTATE_CHARS)
    .superRefine(refusedBy(parseTraceparent))
    .nullable()
    .optional()
    .describe(
      "The W3C trace context of the work that asks for this task (00-<trace id>-<parent span id>-<flags>, as an OpenTelemetry propagator writes it): kept with the task and handed to every run of it, so the run's spans join that trace. Left out, the request's traceparent HTTP header is taken (an instrumented client sends one), with its tracestate; a malformed header is ignored, a malformed field refused; null is none given, as left out (a task's own null passed on). Not compared when an idempotencyKey is sent again, and a deduplicated enqueue keeps the task's own",
    ),
  tracestate: z
    .string()
    .superRefine(refusedBy(parseTracestate))
    .nullable()
    .optional()
    .describe(`The W3C tracestate that goes with traceparent (vendor key=value pairs, at most ${MAX_TRACESTATE_CHARS} characters); only with a traceparent`),
  baggage: z
    .string()
    .superRefine(refusedBy(parseBaggage))
    .nullable()
    .optional()
    .describe(
      `W3C Baggage of the work that asks for this task ("tenant=acme,user=42": key=value list members with optional ;properties, at most 180 members and ${MAX_BAGGAGE_BYTES} characters, as an OpenTelemetry propagator writes it): kept with the task and handed to every run of it beside its trace context. With or without a traceparent. Left out, the request's baggage HTTP header is taken (its malformed members dropped); null is none given. Anyone who reads the task reads it: no secrets. Not compared when an idempotencyKey is sent again`,
    ),
});

/** A 400 issue for each task id of `ids` named a second time, at `path`'s index of it ("dependsOn[2]: names task … twice"). */
function refuseRepeats(ids: readonly string[], ctx: z.RefinementCtx, path: Array<string | number>): void {
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    if (seen.has(id)) ctx.addIssue({ code: "custom", path: [...path, i], message: `names task "${id}" twice` });
    seen.add(id);
  });
}

export const enqueueInput = enqueueFields
  .superRefine((input, ctx) => {
    if (input.agentId !== undefined && input.targetAgentId !== undefined && input.agentId !== input.targetAgentId) {
      ctx.addIssue({ code: "custom", path: ["agentId"], message: `must agree with targetAgentId ("${input.targetAgentId}"); agentId is its alias` });
    }
    if (input.runAt !== undefined && input.delayMs !== undefined) {
      ctx.addIssue({ code: "custom", path: ["delayMs"], message: "give runAt or delayMs, not both" });
    }
    if (input.expiresAt !== undefined && input.ttlMs !== undefined) {
      ctx.addIssue({ code: "custom", path: ["ttlMs"], message: "give expiresAt or ttlMs, not both" });
    }
    if (input.dependsOn) refuseRepeats(input.dependsOn, ctx, ["dependsOn"]);
    if (input.tracestate != null && input.traceparent == null) {
      ctx.addIssue({ code: "custom", path: ["tracestate"], message: "needs a traceparent: a tracestate goes with the trace context it belongs to" });
    }
    if (input.keyConcurrency !== undefined && input.orderingKey === undefined) {
      ctx.addIssue({ code: "custom", path: ["keyConcurrency"], message: "is how many tasks of its orderingKey may run at once: give an orderingKey with it" });
    }
    if (input.dedupe?.replace === true && input.dedupe.until === "settled") {
      ctx.addIssue({ code: "custom", path: ["dedupe", "replace"], message: 'needs until "claimed": a task under way cannot take a new payload' });
    }
  })
  .transform(({ agentId, targetAgentId, ...rest }) => copyWith(rest, { targetAgentId: targetAgentId ?? agentId }));
export type EnqueueInput = z.input<typeof enqueueInput>;
export type EnqueueRequest = z.output<typeof enqueueInput>;
/**
 * An enqueue as the writer takes it: with whose key its idempotencyKey is ('' when left out: an
 * admin, an open server, in-process), and, for an agent credential's, that agent (`replacesOwnOf`):
 * its dedupe.replace changes only a task that agent enqueued, as its cancel does.
 */
export type ScopedEnqueue = EnqueueRequest & { idempotencyScope?: string | undefined; replacesOwnOf?: string | undefined };

export const enqueueManyInput = z.strictObject({
  tasks: z
    .array(enqueueInput)
    .min(1)
    .max(1000)
    .describe('The tasks to add, in one write: all are added or none. A task\'s dependsOn may name the batch\'s task i before it as "tasks[i]": a graph of tasks in one write'),
});

const claimFields = {
  agentId: agentIdSchema.describe("The claiming agent; registered on first use"),
  // An empty list is refused: it claimed from every queue, the opposite of what a filter that
  // came out empty means.
  queues: nameList()
    .refine((queues) => queues.length > 0, "must name at least one queue; leave it out to claim from any queue")
    // The refinement's words are clearer than a size check's; the document still says it. (Typed
    // here: a program that does not load zod-openapi, such as the dashboard's, types meta without it.)
    .meta({ override: ({ jsonSchema }: { jsonSchema: { minItems?: number } }) => void (jsonSchema.minItems = 1) })
    .optional()
    .describe("Claim only from these queues; left out, from any queue"),
  capabilities: capabilityList().optional().describe("The capabilities the claimer offers; left out, the agent's registered ones"),
  leaseMs: leaseMs
    .optional()
    .describe("The lease's length in ms; left out, the server's leaseMs. At most the server's maxLeaseMs (1 hour by default): a longer one is cut to it, and the answer's leaseExpiresAt is the lease granted. Renew it (heartbeat) or settle the task before it ends, or the task goes back to the queue; an agent that makes no call for the server's agentOfflineMs (90 s by default) is offline and loses its leases sooner, whatever their length"),
  waitMs: ms(3_600_000).optional().describe("Long-poll: wait up to this many ms for a task to arrive; left out or 0, answer at once. At most the server's maxWaitMs (30 s by default): a longer wait is cut to it"),
  context: z.boolean().optional().describe("Hand over the memories recalled for each task in its `context` (default true)"),
  idempotencyKey: text(200)
    .optional()
    .describe(
      "Makes the claim safe to send again: the same agent sending the same key (its answer lost to a timeout) gets the tasks that claim leased, under the same leases, while it still holds them, instead of more. Once it holds none of them, the key claims anew. Use a new key for each claim",
    ),
};
export const claimInput = z.strictObject(claimFields);
export type ClaimRequest = z.output<typeof claimInput> & { limit?: number };
export const claimManyInput = z.strictObject({ ...claimFields, limit: int(1, 100).default(10).describe("The most tasks to claim") });

const taskIdField = taskIdSchema.describe("The task's id");
const settleFields = {
  taskId: taskIdField,
  agentId: agentIdSchema.describe("The agent holding the task's lease"),
  leaseToken: int(0).optional().describe("The fencing token the claim answered; when given, it must match the current lease"),
};
/** The most bytes a run's progress takes as JSON text (UTF-8): it rides on every answer that holds its task. */
export const MAX_PROGRESS_BYTES = 16_384;
/** The most bytes a task's checkpoint takes as JSON text (UTF-8), as a shared key's value does: it rides on every answer that holds its task. */
export const MAX_CHECKPOINT_BYTES = 65_536;
export const heartbeatInput = z.strictObject({
  ...settleFields,
  leaseMs: leaseMs.optional().describe("The lease's new length from now, in ms; left out or 0, the length it was claimed or last renewed with. At most the server's maxLeaseMs (1 hour by default): the answer's leaseExpiresAt is the lease granted"),
  progress: jsonWithin(MAX_PROGRESS_BYTES)
    .optional()
    .describe(
      `Where the run is, any JSON (e.g. {"done": 3, "of": 5, "step": "drafting"}; at most ${MAX_PROGRESS_BYTES} bytes as JSON; ${RESERVED_JSON_KEYS}): kept as the task's progress, replacing the last report, until its next claim, and published as a task.progress event. Left out, the progress stays as it was and no event is published`,
    ),
  checkpoint: jsonWithin(MAX_CHECKPOINT_BYTES)
    .optional()
    .describe(
      `What the run has done, to resume from, any JSON (e.g. {"pages": 40, "cursor": "p41"}; at most ${MAX_CHECKPOINT_BYTES} bytes as JSON; ${RESERVED_JSON_KEYS}): kept as the task's checkpoint, replacing the last one, and handed with the task to every later claim of it (a retry, a run given back, taken over or requeued), so that run goes on from there instead of from the beginning. Stored before the answer, in the same write as the renewal; published as a task.checkpointed event (without the value). null clears it: the next run starts from the beginning. Left out, the checkpoint stays as it was`,
    ),
});
/**
 * complete/fail may omit agentId: the seed's REST routes do not send one. Then the current lease
 * is settled, whoever holds it (README, "Anonymous settles"); agents should send agentId and leaseToken.
 */
const anyHolderSettleFields = {
  ...settleFields,
  agentId: agentIdSchema.optional().describe("The agent holding the task's lease; left out, the current lease is settled whoever holds it"),
};
const resultField = jsonValue.optional().describe(`The task's result: any JSON (${RESERVED_JSON_KEYS})`);
export const completeInput = z.strictObject({ ...anyHolderSettleFields, result: resultField });
/**
 * complete-and-claim: the complete's fields (agentId required: the next task is claimed for it)
 * and what to claim next; by default any queue, the agent's registered capabilities, the
 * server's lease, with context. The next claim does not wait: a task at once, or none.
 */
export const completeAndClaimInput = z.strictObject({
  ...settleFields,
  result: resultField,
  next: z
    .strictObject({
      queues: claimFields.queues,
      capabilities: claimFields.capabilities,
      leaseMs: claimFields.leaseMs,
      context: claimFields.context,
    })
    .optional()
    .describe("How to claim this agent's next task in the same write; it does not wait. Left out (or {}), the defaults: any queue, the agent's registered capabilities, the server's lease, with context. To complete without claiming, use complete"),
});
export type CompleteAndClaimRequest = z.output<typeof completeAndClaimInput>;
/** A settle's checkpoint (tasks.fail, tasks.release): the heartbeat's, saved in the settle's write. */
const settleCheckpoint = (settle: string) =>
  jsonWithin(MAX_CHECKPOINT_BYTES)
    .optional()
    .describe(
      `What the run has done, to resume from, as a heartbeat's checkpoint (any JSON, at most ${MAX_CHECKPOINT_BYTES} bytes as JSON; ${RESERVED_JSON_KEYS}): saved in the same write as the ${settle}, so the next run goes on from it (null clears it: the next run starts from the beginning). Left out, the checkpoint stays as it was. A ${settle} sent again (its answer lost) is answered as the first was and saves nothing`,
    );
export const failInput = z.strictObject({
  ...anyHolderSettleFields,
  error: text(10_000).describe("What went wrong, kept in the task's error history (at most 10,000 characters)"),
  retry: z.boolean().default(true).describe("true: run again after a backoff while attempts remain; false: dead-letter at once"),
  retryAfterMs: ms(MAX_BACKOFF_MS)
    .optional()
    .describe("Retry after this many ms instead of the task's backoff (what the failure said: a service down for an hour); the attempt is charged as any failure's. With no attempt left the task is dead-lettered all the same. Not with retry false"),
  checkpoint: settleCheckpoint("fail"),
}).superRefine((input, ctx) => {
  if (input.retryAfterMs !== undefined && !input.retry) ctx.addIssue({ code: "custom", path: ["retryAfterMs"], message: "retry false dead-letters the task at once: there is no retry to delay" });
});
export const releaseInput = z.strictObject({
  ...settleFields,
  delayMs: leaseMs.optional().describe("Not claimable again for this many ms; left out, at once. No attempt is charged"),
  checkpoint: settleCheckpoint("release"),
});
export const taskIdInput = z.strictObject({ taskId: taskIdField });
export const requeueInput = z.strictObject({
  taskId: taskIdField,
  checkpoint: z
    .null()
    .optional()
    .describe("null: clear its checkpoint in the same write, so its next run starts from the beginning (a checkpoint its runs failed on); left out, the next run is handed the checkpoint its last run saved"),
});
export type RequeueRequest = z.output<typeof requeueInput>;
export const updateInput = z
  .strictObject({
    taskId: taskIdField,
    priority: enqueueFields.shape.priority.unwrap().optional().describe("Its new priority: 0 is the highest. Its place among tasks of one priority stays its creation's"),
    runAt: dateInput.optional().describe("When it falls due: an ISO 8601 date-time with offset, or Unix ms; one already passed makes it due now (one due already keeps its time)"),
    delayMs: enqueueFields.shape.delayMs.unwrap().optional().describe("Due this many ms from now, by the server's clock: runAt's relative form, give one or the other"),
    expiresAt: dateInput
      .nullable()
      .optional()
      .describe("Its new expiry: no run of it starts after this time (after it falls due, and after now); null: it never expires. An enqueue sent again with its idempotencyKey is still compared with the expiry it was enqueued with"),
    payload: jsonValue
      .optional()
      .describe(`Its new payload (any JSON, ${RESERVED_JSON_KEYS}): what its next run is handed, in place of the one it was enqueued with (a bad input fixed before it runs). The task's replacedAt says when; an enqueue sent again with its idempotencyKey then compares no payload. Its checkpoint is cleared with it (it was saved for the old payload)`),
    checkpoint: z
      .null()
      .optional()
      .describe("null: clear its checkpoint, so its next run starts from the beginning (a checkpoint its runs keep failing on). Only null: a checkpoint is its runs' to save"),
  })
  .superRefine((input, ctx) => {
    if (input.runAt !== undefined && input.delayMs !== undefined) ctx.addIssue({ code: "custom", path: ["delayMs"], message: "give runAt or delayMs, not both" });
    if (input.priority === undefined && input.runAt === undefined && input.delayMs === undefined && input.expiresAt === undefined && input.payload === undefined && input.checkpoint === undefined) {
      ctx.addIssue({ code: "custom", path: [], message: "give priority, runAt, delayMs, expiresAt, payload or checkpoint: what to change" });
    }
  });
export type UpdateRequest = z.output<typeof updateInput>;
export const cancelInput = z.strictObject({
  taskId: taskIdField,
  reason: text(1000).optional().describe("Why it is stopped (at most 1,000 characters): kept as the task's lastError and in its task.cancelled event, and named in the reason of the tasks waiting on it that are cancelled with it"),
});
export type CancelRequest = z.output<typeof cancelInput>;
export const waitInput = z.strictObject({
  taskId: taskIdField,
  waitMs: ms(3_600_000)
    .optional()
    .describe("Long-poll: wait up to this many ms for the task to settle (completed, dead_letter or cancelled); 0, answer at once; left out, the server's maxWaitMs (30 s by default), which also cuts a longer wait. The answer is the task as it is then: settled or not, look at its status"),
});
export type WaitRequest = z.output<typeof waitInput>;

/** The most tasks one tasks.waitMany waits on (as many as one task may depend on). */
export const MAX_WAITED_TASKS = 100;
export const waitManyInput = z.strictObject({
  taskIds: z
    .array(taskIdSchema)
    .min(1)
    .max(MAX_WAITED_TASKS)
    .superRefine((ids, ctx) => refuseRepeats(ids, ctx, []))
    .describe(
      `The tasks to wait for (1 to ${MAX_WAITED_TASKS}, each once), e.g. the subtasks an orchestrator fanned out. Ids of no task (never, or no longer: retention deleted it after it settled) are a 404 TASK_NOT_FOUND naming them (details.missing)`,
    ),
  until: z
    .enum(["all", "any"])
    .default("all")
    .describe(
      "all: answer once every task has settled (completed, dead_letter or cancelled); any: once at least one has, so one settled already answers at once (to take results as they come, ask again for the ids not settled yet)",
    ),
  settledOnly: z
    .boolean()
    .default(false)
    .describe(
      "true: tasks holds the settled tasks alone (and omitted only settled ones); an id in neither is not settled yet, and is not sent (its payload, each round). For rounds that take results as they come",
    ),
  waitMs: ms(3_600_000)
    .optional()
    .describe("Long-poll: wait up to this many ms for `until` to hold; 0, answer at once (a read of several tasks in one call); left out, the server's maxWaitMs (30 s by default), which also cuts a longer wait. The answer says whether it holds (done)"),
});
export type WaitManyRequest = z.output<typeof waitManyInput>;

export const taskEventsInput = z.strictObject({ taskId: taskIdField, limit: int(1, 1000).default(200).describe("The most events to return, oldest first") });
export const stealInput = z.strictObject({
  agentId: agentIdSchema.describe("The agent taking the tasks over; it gets a fresh lease"),
  fromAgentId: agentIdSchema.optional().describe("Take only from this agent; left out, from any agent offline or past its lease"),
  limit: int(1, 100).default(1).describe("The most tasks to take"),
  leaseMs: leaseMs.optional().describe("The new lease's length in ms; left out, the server's leaseMs. At most the server's maxLeaseMs (1 hour by default)"),
  capabilities: capabilityList().optional().describe("The capabilities the thief offers; left out, its registered ones"),
  idempotencyKey: text(200)
    .optional()
    .describe(
      "Makes the steal safe to send again: the same agent sending the same key (its answer lost) gets the tasks that steal took, under the same leases, while it still holds them, instead of taking more. Use a new key for each steal",
    ),
});
/** A task page's cursor, as the previous page's nextCursor gave it (a seq). */
const taskCursor = () => z.string().regex(/^\d{1,15}$/, "must be a nextCursor value");

export const requeueManyInput = z.strictObject({
  queue: storedName().optional().describe("Only dead letters of this queue; left out, of every queue"),
  finishedAfter: dateInput.optional().describe("Only tasks dead-lettered at or after this time (ISO 8601 with offset, or Unix ms): with finishedBefore, an outage's"),
  finishedBefore: dateInput.optional().describe("Only tasks dead-lettered before this time (ISO 8601 with offset, or Unix ms)"),
  limit: int(1, 1000)
    .default(100)
    .describe("The most tasks to requeue in this call, oldest first (in the order they were enqueued); fewer when their rows pass 4 MiB (at least one)"),
  cursor: taskCursor()
    .optional()
    .describe(
      "The nextCursor of the previous call: only dead letters after the last one it looked at. A task it brought back that failed for good again since is behind the cursor, so paging brings each task back once; so is one that was running then and failed for good since (call again without a cursor for those)",
    ),
  checkpoint: requeueInput.shape.checkpoint.describe(
    "null: clear the checkpoint of each task brought back in the same write, so their next runs start from the beginning (checkpoints a bad deploy's runs saved); left out, each next run is handed its task's",
  ),
}).superRefine((input, ctx) => {
  // A window the wrong way round (the two times swapped) matches nothing: answered "requeued 0",
  // the operator would take the outage's dead letters for gone. Refused, as cancelMany's is.
  if (input.finishedAfter !== undefined && input.finishedBefore !== undefined && input.finishedAfter.getTime() >= input.finishedBefore.getTime()) {
    ctx.addIssue({ code: "custom", path: ["finishedBefore"], message: "must be later than finishedAfter: no task was dead-lettered in that window" });
  }
});
export type RequeueManyRequest = z.output<typeof requeueManyInput>;

export const requeueManySchema = z
  .object({
    requeued: z.array(z.string()).describe("The ids of the tasks brought back (pending now, attempts reset, error history kept), oldest first; each has its task.requeued event"),
    nextCursor: z
      .string()
      .nullable()
      .describe("More dead letters may match: pass it as cursor for the next ones (a page may be empty: it looks at 5,000 dead letters at most). Null when this call looked at the last"),
  })
  .meta({ id: "RequeueManyResult" });
export type RequeueManyResult = z.infer<typeof requeueManySchema>;

/** The states a bulk cancel may stop: all but the two that cannot be cancelled (completed, and cancelled already). */
export const CANCELLABLE_STATUSES = ["pending", "waiting", "claimed", "dead_letter"] as const satisfies readonly TaskStatus[];

export const cancelManyInput = z.strictObject({
  queue: storedName().describe("The queue whose tasks to cancel"),
  statuses: z
    .array(z.enum(CANCELLABLE_STATUSES))
    .min(1)
    .max(CANCELLABLE_STATUSES.length)
    .default(["pending", "waiting"])
    .describe("Only tasks in these states: pending and waiting (the default) wait to run; claimed stops runs under way (their holders' next heartbeat or settle is refused); dead_letter discards dead letters"),
  enqueuedBy: storedName()
    .optional()
    .describe("Only the tasks this agent enqueued under its credential (Task.enqueuedBy): a planner calling off its own fan-out. An agent credential cancels in bulk only its own, so it names itself here (another id, or none, is a 403 FORBIDDEN)"),
  createdAfter: dateInput.optional().describe("Only tasks enqueued at or after this time (ISO 8601 with offset, or Unix ms): with createdBefore, what a bad deploy enqueued"),
  createdBefore: dateInput.optional().describe("Only tasks enqueued before this time (ISO 8601 with offset, or Unix ms)"),
  reason: text(1000).optional().describe("Why (at most 1,000 characters): each task's lastError and in its task.cancelled event, as a single cancel's"),
  limit: int(1, 1000).default(100).describe("The most tasks to cancel in this call, oldest first (in the order they were enqueued); fewer when their rows pass 4 MiB (at least one)"),
  cursor: z
    .string()
    .regex(/^\d{1,15}-\d{1,15}$/, "must be a nextCursor value")
    .optional()
    .describe("The nextCursor of the previous call, made with the same filters: the tasks after the last one it looked at, among those there were when the first call ran (so a schedule's next run, enqueued when its pending run is cancelled, is left alone)"),
}).superRefine((input, ctx) => {
  if (input.createdAfter !== undefined && input.createdBefore !== undefined && input.createdAfter.getTime() >= input.createdBefore.getTime()) {
    ctx.addIssue({ code: "custom", path: ["createdBefore"], message: "must be later than createdAfter: no task was enqueued in that window" });
  }
});
export type CancelManyRequest = z.output<typeof cancelManyInput>;

export const cancelManySchema = z
  .object({
    cancelled: z
      .array(z.string())
      .describe("The ids of the tasks cancelled, oldest first; each has its task.cancelled event (tasks waiting on them are cancelled with them, as by a single cancel, and named in their own events, not here)"),
    nextCursor: z
      .string()
      .nullable()
      .describe("More tasks may match: pass it as cursor for the next ones (a page may be empty: one looks at 5,000 tasks of any queue at most). Null when this call looked at the last"),
  })
  .meta({ id: "CancelManyResult" });
export type CancelManyResult = z.infer<typeof cancelManySchema>;

// Filters find what is stored: storedName (schema-parts.ts).
export const listInput = z.strictObject({
  queue: storedName().optional().describe("Only tasks of this queue"),
  status: z.enum(TASK_STATUSES).optional().describe("Only tasks in this state"),
  // With status "claimed" an index finds an agent's tasks; otherwise the table is read in seq
  // order until the page is full, as for queue and capability.
  agentId: storedName().optional().describe("Only tasks held (or last held) by this agent"),
  capability: storedName().optional().describe("Only tasks that require this capability"),
  dedupeKey: text(500).optional().describe("Only tasks enqueued with this dedupe key (tasks.enqueue's dedupe.key): with queue and status, the one that answers its enqueues now"),
  orderingKey: text(500).optional().describe("Only tasks enqueued with this ordering key (tasks.enqueue's orderingKey): with queue, the key's tasks in enqueue order (with status waiting: those waiting their turn, the next first)"),
  traceId: z
    .string()
    .regex(TRACE_ID, "must be a W3C trace id: 32 lowercase hex digits, not all zeros (the second field of a traceparent)")
    .optional()
    .describe("Only tasks enqueued in this trace (the 32 hex digits of their traceparent's trace id): what one request, agent run or workflow asked for"),
  enqueuedBy: storedName()
    .optional()
    .describe("Only tasks this agent enqueued, under its credential or through an MCP session acting as it (their enqueuedBy): what a planner asked for, to wait on or call off after a restart"),
  limit: int(1, 500).default(50).describe("The page's size"),
  cursor: taskCursor().optional().describe("The nextCursor of the previous page; left out, the first page"),
  order: z.enum(["asc", "desc"]).default("asc").describe("asc: oldest first; desc: newest first"),
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
    /**
     * The newest 10 failed runs, oldest first (older ones are dropped; the event log has every
     * run's task.failed or task.lease_expired while it is retained). `attempt` starts again at 1
     * after a requeue.
     */
    errorHistory: z.array(taskErrorSchema),
    idempotencyKey: z.string().nullable(),
    createdAt: z.date(),
    updatedAt: z.date(),
    claimedAt: z.date().nullable(),
    finishedAt: z.date().nullable(),
    /** The tasks it depends on, as enqueued (dependsOn): it was waiting until every one of them completed. [] when none. */
    dependsOn: z.array(z.string()),
    /** What a dependency dead-lettered does to it while it waits: wait (for a requeue), or cancel. */
    onDependencyFailure: z.enum(["wait", "cancel"]),
    /**
     * Where its current run is (or its last run got), as its holder last reported it with a
     * heartbeat's `progress`; null when that run reported none. Each claim clears it.
     */
    progress: jsonOutput,
    /** When that progress was reported; null when none was. */
    progressAt: z.date().nullable(),
    /** Its own retry backoff, as enqueued; null: the server's (retryBaseMs doubling to retryMaxMs). */
    backoff: backoffSchema.nullable(),
    /** The schedule whose run it is (schedules.set); null for a task enqueued by a call. */
    scheduleId: z.string().nullable(),
    /** No run of it starts after this time: still waiting to run then, it is cancelled as expired. Null: it never expires. */
    expiresAt: z.date().nullable(),
    /** The longest one run of it may last, in ms from its claim (tasks.enqueue's maxRunMs, or the server's then); null: no limit. */
    maxRunMs: z.number().int().nullable(),
    /** While it is claimed with a run time limit: when the run must end (claimedAt + maxRunMs), past which no heartbeat renews its lease; null otherwise. */
    runDeadlineAt: z.date().nullable(),
    /** tasks.enqueue's dedupe.key: a later enqueue of its queue naming it, while this task waits to run (with until "settled": or runs), is answered with this task; null: enqueued without one. */
    dedupeKey: z.string().nullable(),
    /** How many later enqueues naming its dedupeKey were answered with it instead of adding a task. */
    duplicates: z.number().int(),
    /** When its payload was last replaced: by an enqueue naming its dedupe key with dedupe.replace, or by tasks.update; null: never. */
    replacedAt: z.date().nullable(),
    /** tasks.enqueue's orderingKey: its queue's tasks of the key run one at a time (keyConcurrency at a time), in enqueue order (one waits, status waiting, while an older one has not settled, or as many as its keyConcurrency run, or an older one waits); null: enqueued without one. */
    orderingKey: z.string().nullable(),
    /** tasks.enqueue's keyConcurrency: how many tasks of its orderingKey may run at once (1: one at a time); null without an orderingKey. */
    keyConcurrency: z.number().int().nullable(),
    /**
     * What its runs saved to resume from, as the last one saved it with a heartbeat's
     * `checkpoint`: kept across claims (unlike progress), so a retry, a run given back, taken over
     * or requeued goes on from there. null: none saved, or cleared (a heartbeat's checkpoint
     * null, tasks.update's or tasks.requeue's checkpoint null, a payload replaced).
     */
    checkpoint: jsonOutput,
    /** When that checkpoint was saved; null when none is kept. */
    checkpointAt: z.date().nullable(),
    /**
     * The W3C trace context it was enqueued with (tasks.enqueue's traceparent, or the enqueue's
     * traceparent header), version-00 text; null: none. An OpenTelemetry propagator reads it from
     * the task as it is (`propagation.extract(ROOT_CONTEXT, task)`).
     */
    traceparent: z.string().nullable(),
    /** The tracestate that came with it (vendor key=value pairs, at most 512 characters); null: none. */
    tracestate: z.string().nullable(),
    /** The W3C Baggage it was enqueued with (tasks.enqueue's baggage, or the enqueue's baggage header), members without their optional whitespace; null: none. An OpenTelemetry propagator reads it from the task as from a request. */
    baggage: z.string().nullable(),
    /**
     * The agent whose credential enqueued it, which may cancel it (tasks.cancel) and list it
     * (tasks.list's enqueuedBy), or the agent of the MCP session that enqueued it; null: enqueued
     * by an admin, a schedule, on an open server or in-process.
     */
    enqueuedBy: z.string().nullable(),
  })
  .meta({ id: "Task" });
export type Task = z.infer<typeof taskSchema>;

export const waitManySchema = z
  .object({
    done: z.boolean().describe("Whether `until` holds: every task settled (all), or at least one (any). False when waitMs ran out first: ask again to wait longer"),
    tasks: z
      .array(taskSchema)
      .describe(
        "The tasks as they are now (with settledOnly, the settled ones), in the order of taskIds, packed within the answer's byte budget (maxResponseBytes): settled ones first, then each that fits; the first of those always, however large",
      ),
    omitted: z.array(z.string()).describe("The ids of the tasks left out for the byte budget, in the order of taskIds: ask for them again (or read them with tasks.get). Empty when all fit"),
  })
  .meta({ id: "WaitManyResult" });
export type WaitManyResult = z.infer<typeof waitManySchema>;

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

export const enqueuedTaskSchema = taskSchema
  .extend({
    /** True: an earlier enqueue's task with the same dedupe.key answered this one, and no task was added (its duplicates counts it). False: this enqueue's own task (added now, or found by its idempotencyKey). */
    deduplicated: z.boolean(),
    /**
     * True: found by its idempotencyKey, an earlier enqueue's task (this one sent again, its answer
     * lost): nothing was added, nothing changed. Stripe's Idempotent-Replayed. False: added now (an
     * enqueueMany's entry naming the key of an entry before it included), or deduplicated.
     */
    replayed: z.boolean(),
  })
  .meta({ id: "EnqueuedTask" });
export type EnqueuedTask = z.infer<typeof enqueuedTaskSchema>;

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
    dependsOn: task.dependsOn,
    onDependencyFailure: task.onDependencyFailure,
    progress: task.progress,
    progressAt: task.progressAt,
    backoff: task.backoff,
    scheduleId: task.scheduleId,
    expiresAt: task.expiresAt,
    maxRunMs: task.maxRunMs,
    runDeadlineAt: task.runDeadlineAt,
    dedupeKey: task.dedupeKey,
    duplicates: task.duplicates,
    replacedAt: task.replacedAt,
    orderingKey: task.orderingKey,
    keyConcurrency: task.keyConcurrency,
    checkpoint: task.checkpoint,
    checkpointAt: task.checkpointAt,
    traceparent: task.traceparent,
    tracestate: task.tracestate,
    baggage: task.baggage,
    enqueuedBy: task.enqueuedBy,
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
/** The most queues tasks.stats lists when its caller names no limit. */
export const DEFAULT_STATS_QUEUES = 1000;
export const statsFields = {
  queue: storedName().optional().describe("Only this queue's counts (the totals stay the whole server's)"),
  limit: int(1, 10_000)
    .optional()
    .describe(`The most queues listed (left out, ${DEFAULT_STATS_QUEUES}): paused queues first, then those with the most tasks pending, claimed or dead-lettered, then by name; queuesOmitted says how many more there are`),
};
export const statsInput = z.strictObject(statsFields).optional();
export type StatsRequest = z.output<typeof statsInput>;

export const taskStatsSchema = z.object({
  /** By queue name; at most the limit asked for, the busiest queues (pending, claimed, dead-lettered) kept. */
  queues: z.array(
    z.object({
      queue: z.string(),
      counts: statusCounts,
      /** Pending tasks not due yet (a delay, a retry's backoff, a release's delayMs), counted in counts.pending too. */
      scheduled: z.number().int(),
      /** When the first of them falls due; null when none is scheduled. */
      nextDueAt: z.date().nullable(),
      /** Age of the oldest pending task whose run-at has come, or null when none waits. */
      oldestPendingAgeMs: z.number().nullable(),
      /** Paused (queues.pause): no claim takes its tasks until it is resumed. */
      paused: z.boolean(),
      /** Its concurrency limit (queues.setLimit): at most this many of its tasks leased at once; null: none. */
      maxLeased: z.number().int().nullable(),
      /** Its rate (queues.setRate): at most maxClaims of its tasks claimed in any window of perMs ms; null: none. */
      rate: z.object({ maxClaims: z.number().int(), perMs: z.number().int() }).nullable(),
    }),
  ),
  /** Queues with tasks that the list leaves out (past its limit, or not the queue asked for). The totals count them. */
  queuesOmitted: z.number().int(),
  totals: statusCounts,
  /** Pending tasks not due yet, in every queue (counted in totals.pending too). */
  scheduled: z.number().int(),
  /** When the first of them falls due, in any queue; null when none is scheduled. */
  nextDueAt: z.date().nullable(),
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

export const claimOutlookInput = z.strictObject({
  agentId: agentIdSchema.describe("The agent whose claim to look at"),
  queues: claimFields.queues.describe("The queues its claim asks for; left out, any queue"),
  capabilities: claimFields.capabilities.describe("The capabilities its claim offers; left out, the agent's registered ones"),
});
export type ClaimOutlookRequest = z.output<typeof claimOutlookInput>;

/**
 * Why a claim would answer no task now, as far as the reader tells (TaskStore.claimOutlook): each
 * part is a reason a task that waits is not the claimer's. All empty (nextRunAt null): nothing waits for it.
 */
export const claimOutlookSchema = z.object({
  /** Whether a claim asking the same would be handed a task now (one due that it may run, in a queue with room): then the agent is idle because it does not claim, and the rest is about the other tasks. */
  claimable: z.boolean(),
  /** The queues asked for that are paused (none asked: the paused ones holding tasks), 20 at most. */
  paused: z.array(z.string()),
  /** The limited queues asked for that run as many tasks as their limit allows and hold a due task the claimer may run. */
  fullQueues: z.array(z.string()),
  /** The rate-limited ones whose window is full and hold such a task: when the next claim of each may be made. */
  rateLimited: z.array(z.object({ queue: z.string(), maxClaims: z.number().int(), perMs: z.number().int(), freesAt: z.date() })),
  /** Due tasks of the queues asked for that were looked at (100 at most, in no order; a paused or limited queue's are not among them). */
  looked: z.number().int(),
  /** The capabilities those need that the claimer does not offer, with how many need each, most first. */
  needCapabilities: z.array(z.object({ capability: z.string(), tasks: z.number().int() })),
  /** How many of those are for other agents (their targetAgentId). */
  forOtherAgents: z.number().int(),
  /** The capabilities the claimer offers: its claim's, or its registered ones. */
  offered: z.array(z.string()),
  /** When the next delayed task the claimer may run falls due; null: none. */
  nextRunAt: z.date().nullable(),
});
export type ClaimOutlookView = z.infer<typeof claimOutlookSchema>;
