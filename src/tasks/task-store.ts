// All SQL of the task queue (SQLite dialect). Synchronous, run inside the Writer's transactions,
// so each method sees and changes a consistent database. A PostgreSQL store would implement the
// same methods (claims with FOR UPDATE SKIP LOCKED) without touching the service.
import { fromJsonText, toDate, toDateOrNull, toJsonText } from "../db/columns.js";
import { utf8Bytes, withinBudget } from "../db/answer-budget.js";
import { placeholders, type Statements } from "../db/statements.js";
import type { Backoff, Task, TaskStatus } from "./task-schemas.js";
import type { LeaseBounds } from "./lock-wait-grace.js";
import { currentLeaseKey, leaseKey } from "./claim-keys.js";
import { HELD_IF_SET_ASIDE, PAUSED_QUEUES } from "./queue-pause-store.js";
import { LIMITED_QUEUES, QueueLimitStore } from "./queue-limit-store.js";
import { QueueRateStore, type ActiveRate } from "./queue-rate-store.js";
import { TASK_TEXT_BYTES, taskTextBytes } from "./task-row-bytes.js";
import { traceRange } from "./trace-context.js";

/** The bounds on a queue's claims: its concurrency limit, its rate, or both (the other null). */
interface ClaimBounds {
  queue: string;
  maxLeased: number | null;
  rate: ActiveRate | null;
}

/**
 * A rate-limited queue as a claim left it. `empty`: it holds no task due now that anyone may take
 * (nothing to wait for there). Else `full`: its window holds its most claims until `freesAt` (Unix
 * ms, the writer's clock), or it has room now (`freesAt` is now) and `slotsFull` says whether its
 * concurrency limit keeps claims out all the same. `mine`: it holds a task due now that this claimer may take.
 */
export interface RateOutlook {
  queue: string;
  freesAt: number;
  empty: boolean;
  full: boolean;
  slotsFull: boolean;
  mine: boolean;
}

/** What TaskStore.claimOutlook finds (times as Unix ms). */
export interface ClaimOutlook {
  /** Whether a claim of the filter now would be handed a task (the reasons below are then the other tasks'). */
  claimable: boolean;
  paused: string[];
  fullQueues: string[];
  rateLimited: Array<{ queue: string; maxClaims: number; perMs: number; freesAt: number }>;
  /** How many due tasks were looked at (OUTLOOK_SAMPLE at most), and of them: */
  looked: number;
  /** the capabilities they need that the claimer does not offer, with how many need each, most first; */
  needCapabilities: Array<{ capability: string; tasks: number }>;
  /** how many are for other agents (targetAgentId). */
  forOtherAgents: number;
  /** The capabilities the claimer offers (the claim's, or its registered ones), sorted. */
  offered: string[];
  nextRunAt: number | null;
}
/** The due tasks a claim outlook looks at, at most. */
export const OUTLOOK_SAMPLE = 100;
/** The paused queues a claim outlook names, at most. */
const PAUSED_OUTLOOK = 20;

/** SQL: the lease ran out within a check's bounds (leaseRunOutParams); the sweeper and steal share it. */
const LEASE_RUN_OUT = `(leaseExpiresAt <= ? AND (leaseExpiresAt <= ? OR updatedAt >= ?))`;
const leaseRunOutParams = (bounds: LeaseBounds): [number, number, number] => [bounds.asOf, bounds.endedBy, bounds.exactSince];

/** A task a bulk cancel looks at: its state and when it was enqueued (TaskStore.stateAt). */
export type CancellableRow = Pick<TaskRow, "seq" | "id" | "status" | "createdAt">;
/** A task of a bulk cancel's window: the bytes its row holds when it is of the queue cancelled, else null. */
export interface QueueWindowRow {
  seq: number;
  bytes: number | null;
}

/** What a bulk requeue reads of a dead letter it may take (TaskStore.deadLetterAt). */
export type DeadLetterRow = Pick<TaskRow, "seq" | "id" | "queue" | "status" | "capability" | "targetAgentId" | "finishedAt" | "orderingKey" | "keyConcurrency">;

/** What every requeue sets: a fresh start ($1 runAt, $2 updatedAt, $3 now), due now, attempts reset. */
// releasedBy cleared: a release of the lease before, sent again, repeats nothing of a requeued task.
// An expiry still ahead is kept; one passed (the task expired, or would at once) is dropped: the
// operator who brings it back wants it run. The one it was enqueued with is enqueuedExpiresAt's.
const FRESH_START = `attempts = 0, runAt = ?, delayed = 0, leaseOwner = NULL, leaseExpiresAt = NULL, result = NULL, finishedAt = NULL, releasedBy = NULL, updatedAt = ?, expiresAt = CASE WHEN expiresAt > ? THEN expiresAt END`;
/** A requeue to pending ($1 runAt, $2 updatedAt, $3 now): held when its queue is set aside. */
const REQUEUED = `status = 'pending', unmetDependencies = 0, ${HELD_IF_SET_ASIDE}, ${FRESH_START}`;
/** A requeue back to waiting ($1 unmetDependencies, $2 runAt, $3 updatedAt, $4 now): in no claim index. */
const REQUEUED_WAITING = `status = 'waiting', unmetDependencies = ?, held = 0, ${FRESH_START}`;
/** What a cancel sets ($1 reason: the lastError, or null to keep it; $2 finishedAt, $3 updatedAt). */
const CANCELLED = `status = 'cancelled', lastError = IFNULL(?, lastError), leaseExpiresAt = NULL, finishedAt = ?, updatedAt = ?`;
/**
 * What an operator's change of a task that waits to run sets beside it ($1, $2 now): updatedAt
 * past createdAt even in the millisecond of the enqueue (the task is no longer as enqueued: an
 * enqueue sent again compares its runAt only while they are equal), and editedAt with it (no
 * transition: a holder's release sent again is answered as the task is).
 */
const EDITED = `updatedAt = MAX(?, createdAt + 1), editedAt = MAX(?, createdAt + 1)`;
/** No checkpoint kept (a replaced payload's, an operator's clear). */
const NO_CHECKPOINT = `checkpoint = NULL, checkpointAt = NULL`;

export interface TaskRow {
  seq: number;
  id: string;
  queue: string;
  payload: string;
  priority: number;
  capability: string | null;
  targetAgentId: string | null;
  /** The column holds only these. */
  status: TaskStatus;
  attempts: number;
  maxAttempts: number;
  runAt: number | Date;
  leaseOwner: string | null;
  leaseExpiresAt: number | Date | null;
  leaseToken: number;
  result: string | null;
  lastError: string | null;
  errorHistory: string;
  idempotencyKey: string | null;
  createdAt: number | Date;
  updatedAt: number | Date;
  claimedAt: number | Date | null;
  finishedAt: number | Date | null;
  leaseMs: number | null;
  /** 1 while pending with a runAt ahead: out of the claim indexes until a claim promotes it (promoteDue). */
  delayed: number;
  /** 1 while pending in a paused queue: out of the claim indexes (queue-pause-store.ts). */
  held: number;
  /** The call that took the current lease, its token and its answers (claim-keys.ts); null for a claim with none. */
  claimKey: string | null;
  /** The lease its holder gave back, "LEASETOKEN:AGENTID" (releasedLease); null when none was. */
  releasedBy: string | null;
  /** Whose idempotencyKey it is: the enqueuing agent's id, or '' (an admin, an open server, in-process). */
  idempotencyScope: string;
  /** The ids of the tasks it depends on, as enqueued (JSON array); null when it names none. */
  dependsOn: string | null;
  /** While waiting: how many of its dependencies have not completed (task_dependencies rows). */
  unmetDependencies: number;
  /** 1: a dependency dead-lettered cancels it (onDependencyFailure "cancel"); 0: it waits. */
  cancelOnDependencyFailure: number;
  /** Where its run is, as its holder last reported it (JSON text); null when this run (or the last) reported none. */
  progress: string | null;
  /** When that progress was reported; null with it. */
  progressAt: number | Date | null;
  /** Its own retry backoff (JSON text of a Backoff, retry-backoff.ts); null: the server's. */
  backoff: string | null;
  /** The schedule whose run it is (src/schedules/); null for a task enqueued by a call. */
  scheduleId: string | null;
  /** The priority it was enqueued with, once tasks.update changed it; null while its priority was never changed. */
  enqueuedPriority: number | null;
  /** When an operator last changed it (tasks.update, tasks.promote; updatedAt then too); null: never. */
  editedAt: number | Date | null;
  /** No run starts after this time: still waiting to run then, it is cancelled as expired; null: never. */
  expiresAt: number | Date | null;
  /** The expiresAt it was enqueued with (null: none), whatever a requeue or tasks.update made of it since. */
  enqueuedExpiresAt: number | Date | null;
  /** How long one run may last from its claim (ms): its lease is renewed no further than claimedAt + maxRunMs. Null: no limit. */
  maxRunMs: number | null;
  /** tasks.enqueue's dedupe.key: later enqueues of its queue naming it are answered with this task while it has not started (or settled); null: none. */
  dedupeKey: string | null;
  /** How many later enqueues naming its dedupeKey were answered with it instead of adding a task. */
  duplicates: number;
  /** When its payload was last replaced (dedupe.replace, tasks.update); null: never. */
  replacedAt: number | Date | null;
  /** tasks.enqueue's orderingKey: its queue's tasks of the key run in enqueue order, keyConcurrency at a time (orderingLine); null: none. */
  orderingKey: string | null;
  /** What a run saved to resume from (tasks.heartbeat's checkpoint, JSON text): kept across claims; null: none. */
  checkpoint: string | null;
  /** When that checkpoint was saved; null with it. */
  checkpointAt: number | Date | null;
  /** The W3C trace context it was enqueued with (trace-context.ts); null: none. */
  traceparent: string | null;
  /** Its tracestate; null: none. */
  tracestate: string | null;
  /** tasks.enqueue's keyConcurrency: how many tasks of its orderingKey may run at once (orderingLine); 1 without a key. */
  keyConcurrency: number;
  /** The W3C Baggage it was enqueued with (trace-context.ts); null: none. */
  baggage: string | null;
}

/**
 * What a heartbeat keeps beside the renewal (JSON texts): the run's `progress` report, and the
 * task's `checkpoint` (null clears it). Left out, each stays as it was.
 */
export interface RunSaves {
  progress?: string | undefined;
  checkpoint?: string | null | undefined;
}

/** The releasedBy of a lease given back by its holder: a release of it sent again finds it. */
export const releasedLease = (leaseToken: number, agentId: string): string => `${leaseToken}:${agentId}`;

/** How many failed runs a task's errorHistory keeps, the newest (each error at most 10,000 characters). */
const MAX_ERROR_HISTORY = 10;

/** One failed run in a task's errorHistory (JSON text), as recordFailure writes it. */
export interface StoredError {
  attempt: number;
  agentId: string | null;
  error: string;
  at: number;
  /** The wait its fail asked for (tasks.fail's retryAfterMs), when it asked: a repeat of that fail must ask the same. Not answered. */
  retryAfterMs?: number;
  /** Its retry would have started at or after the task's expiresAt: it was dead-lettered instead. Not answered. */
  pastExpiry?: true;
  /**
   * The lease whose run failed (entries written before it have none). Not answered: it tells the
   * calls of that lease from a later one's, whose claim may share its millisecond (one write batch).
   */
  leaseToken?: number;
  /** The server ended the run, its lease taken (ran out, its agent offline, a steal): no fail of its holder's. Not answered. */
  expired?: true;
  /** ...at the run's time limit (maxRunMs). Not answered: the holder's calls refused after it name the deadline. */
  timedOut?: true;
}

/** What an errorHistory entry says beside its error: the fail's wait, and how the run ended when it was not its holder's fail. */
export interface FailureMarks {
  retryAfterMs?: number | undefined;
  pastExpiry?: boolean;
  expired?: boolean;
  timedOut?: boolean;
}

export const toTask = (row: TaskRow): Task => ({
  id: row.id,
  queue: row.queue,
  payload: fromJsonText(row.payload),
  priority: row.priority,
  capability: row.capability,
  targetAgentId: row.targetAgentId,
  status: row.status as TaskStatus,
  attempts: row.attempts,
  maxAttempts: row.maxAttempts,
  runAt: toDate(row.runAt),
  leaseOwner: row.leaseOwner,
  leaseExpiresAt: toDateOrNull(row.leaseExpiresAt),
  leaseToken: row.leaseToken,
  result: fromJsonText(row.result),
  lastError: row.lastError,
  errorHistory: (JSON.parse(row.errorHistory) as StoredError[]).map((e) => ({ attempt: e.attempt, agentId: e.agentId, error: e.error, at: new Date(e.at) })),
  idempotencyKey: row.idempotencyKey,
  createdAt: toDate(row.createdAt),
  updatedAt: toDate(row.updatedAt),
  claimedAt: toDateOrNull(row.claimedAt),
  finishedAt: toDateOrNull(row.finishedAt),
  dependsOn: row.dependsOn === null ? [] : (JSON.parse(row.dependsOn) as string[]),
  onDependencyFailure: row.cancelOnDependencyFailure ? "cancel" : "wait",
  progress: fromJsonText(row.progress),
  progressAt: toDateOrNull(row.progressAt),
  backoff: row.backoff === null ? null : (JSON.parse(row.backoff) as Backoff),
  scheduleId: row.scheduleId,
  expiresAt: toDateOrNull(row.expiresAt),
  maxRunMs: row.maxRunMs,
  runDeadlineAt: row.status === "claimed" ? toDateOrNull(runDeadline(row)) : null,
  dedupeKey: row.dedupeKey,
  duplicates: row.duplicates,
  replacedAt: toDateOrNull(row.replacedAt),
  orderingKey: row.orderingKey,
  keyConcurrency: row.orderingKey === null ? null : row.keyConcurrency,
  checkpoint: fromJsonText(row.checkpoint),
  checkpointAt: toDateOrNull(row.checkpointAt),
  traceparent: row.traceparent,
  tracestate: row.tracestate,
  baggage: row.baggage,
  // The key scope: '' for every enqueue not made under an agent credential.
  enqueuedBy: row.idempotencyScope === "" ? null : row.idempotencyScope,
});

/** When the current run of `row` must end (Unix ms: claimedAt + maxRunMs); null without a limit or a run. */
export const runDeadline = (row: Pick<TaskRow, "maxRunMs" | "claimedAt">): number | null =>
  row.maxRunMs === null || row.claimedAt === null ? null : Number(row.claimedAt) + row.maxRunMs;

/** Whether the run of `row` reached its time limit by `now` (claimedAt + maxRunMs): no lease of it is renewed or handed out again. */
export function pastRunDeadline(row: Pick<TaskRow, "maxRunMs" | "claimedAt">, now: number): boolean {
  const deadline = runDeadline(row);
  return deadline !== null && now >= deadline;
}

/** Whether the lease of `row` ran out at its run's deadline by `now`: the run timed out (not its agent). */
export function ranOutOfTime(row: Pick<TaskRow, "maxRunMs" | "claimedAt" | "leaseExpiresAt">, now: number): boolean {
  const deadline = runDeadline(row);
  return deadline !== null && deadline <= now && row.leaseExpiresAt !== null && Number(row.leaseExpiresAt) >= deadline;
}

/**
 * SQL: a lease end `?` cut at the run's deadline. In an UPDATE it reads the row as it was, so a
 * claim passes its own time for claimedAt (`?` then `?`: the end, then the claim's time).
 */
const CUT_AT_DEADLINE = (claimedAt: string) => `CASE WHEN maxRunMs IS NULL THEN ? ELSE MIN(?, ${claimedAt} + maxRunMs) END`;

/**
 * A copy of `row` with `changes` applied. The copy is one literal naming every column in the
 * table's order, so V8 gives it the hidden class of a row read back, fields in the object, at
 * once: copyWith (Object.assign into `{}`) walks 22 property transitions and regrows the backing
 * store, 1.2-2.8 µs a copy of a task row against 0.13-0.17 (bench/RESULTS.md, 2026-11-30). A claim
 * and a complete each copy one. A column added to the table is added here and to TaskRow.
 */
export function taskRowWith(row: TaskRow, changes: Partial<TaskRow>): TaskRow {
  const copy: TaskRow = {
    seq: row.seq,
    id: row.id,
    queue: row.queue,
    payload: row.payload,
    priority: row.priority,
    capability: row.capability,
    targetAgentId: row.targetAgentId,
    status: row.status,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    runAt: row.runAt,
    leaseOwner: row.leaseOwner,
    leaseExpiresAt: row.leaseExpiresAt,
    leaseToken: row.leaseToken,
    result: row.result,
    lastError: row.lastError,
    errorHistory: row.errorHistory,
    idempotencyKey: row.idempotencyKey,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    claimedAt: row.claimedAt,
    finishedAt: row.finishedAt,
    leaseMs: row.leaseMs,
    delayed: row.delayed,
    held: row.held,
    claimKey: row.claimKey,
    releasedBy: row.releasedBy,
    idempotencyScope: row.idempotencyScope,
    dependsOn: row.dependsOn,
    unmetDependencies: row.unmetDependencies,
    cancelOnDependencyFailure: row.cancelOnDependencyFailure,
    progress: row.progress,
    progressAt: row.progressAt,
    backoff: row.backoff,
    scheduleId: row.scheduleId,
    enqueuedPriority: row.enqueuedPriority,
    editedAt: row.editedAt,
    expiresAt: row.expiresAt,
    enqueuedExpiresAt: row.enqueuedExpiresAt,
    maxRunMs: row.maxRunMs,
    dedupeKey: row.dedupeKey,
    duplicates: row.duplicates,
    replacedAt: row.replacedAt,
    orderingKey: row.orderingKey,
    checkpoint: row.checkpoint,
    checkpointAt: row.checkpointAt,
    traceparent: row.traceparent,
    tracestate: row.tracestate,
    keyConcurrency: row.keyConcurrency,
    baggage: row.baggage,
  };
  return Object.assign(copy, changes);
}

/**
 * Room a task takes in an answer beside its texts (field names, times, counters, quotes), in
 * bytes: the most it takes, so that answers stay within their budget. In a page of a list over
 * tRPC a task with every time set (expiresAt among them) takes 1,130-1,170 (superjson names each
 * Date's path again in its meta: "items.123.claimedAt"); over REST ~680. (750 before expiresAt:
 * such pages went past maxResponseBytes by up to 8%.) With maxRunMs and runDeadlineAt, measured
 * on 100 claimed tasks with progress, an expiry and the longest limit: 968 bytes a task over
 * tRPC, 722 over REST, texts included. With checkpointAt a reviewer measured ~1,187 bytes over
 * tRPC; the trace context's two names and nulls add ~35 more (their texts count as texts): 1,300;
 * enqueuedBy's name and null ~20 more (its text counts as a text): 1,320; keyConcurrency's name and
 * its most, 1000, 22 more: 1,345; baggage's name and null 16 more (its text counts as a text): 1,360.
 */
const TASK_FIXED_BYTES = 1360;
/** The same estimate in SQL (task-row-bytes.ts). */
const TASK_ANSWER_BYTES = `${TASK_TEXT_BYTES} + ${TASK_FIXED_BYTES}`;

/** About how many bytes a task takes in an answer: its texts (JSON, names, keys) plus the fixed fields. */
export const taskAnswerBytes = (row: TaskRow): number => taskTextBytes(row) + TASK_FIXED_BYTES;

/**
 * The errorHistory (JSON text) a failed run of `row` leaves: its entry added, the newest
 * MAX_ERROR_HISTORY kept (the history goes out with every claim of the task, and a task retried
 * without end, a high maxAttempts or requeued dead letters, would carry megabytes of it).
 */
export function historyAfterFailure(row: TaskRow, error: string, agentId: string | null, now: number, marks: FailureMarks = {}): string {
  const history = JSON.parse(row.errorHistory) as StoredError[];
  const entry: StoredError = { attempt: row.attempts, agentId, error, at: now, leaseToken: row.leaseToken };
  if (marks.retryAfterMs !== undefined) entry.retryAfterMs = marks.retryAfterMs;
  if (marks.pastExpiry) entry.pastExpiry = true;
  if (marks.expired) entry.expired = true;
  if (marks.timedOut) entry.timedOut = true;
  history.push(entry);
  return JSON.stringify(history.slice(-MAX_ERROR_HISTORY));
}

export interface TaskListFilter {
  queue?: string | undefined;
  status?: TaskStatus | undefined;
  /** Tasks held (or last held) by this agent. */
  agentId?: string | undefined;
  capability?: string | undefined;
  /** Tasks enqueued with this dedupe key. */
  dedupeKey?: string | undefined;
  /** Tasks enqueued with this ordering key. */
  orderingKey?: string | undefined;
  /** Tasks enqueued in this W3C trace (its 32 hex digits). */
  traceId?: string | undefined;
  /** Tasks this agent enqueued under its credential (their idempotencyScope). */
  enqueuedBy?: string | undefined;
  /** The seq of the last task of the previous page. */
  after?: number | undefined;
  order: "asc" | "desc";
}

/**
 * A dedupe key's task (findByDedupeKey): parameters queue, key, 1 to take a claimed one, now. Its
 * terms name tasks_dedupe_idx's condition as written, so SQLite reads that index (a test reads the plan).
 * One waiting to run must fall due before it expires: a release's delay may put its runAt at or
 * past its expiresAt, and such a task is cancelled unrun (the enqueues it answered would be lost).
 */
export const DEDUPE_LOOKUP = `SELECT * FROM tasks WHERE queue = ? AND dedupeKey = ? AND dedupeKey IS NOT NULL AND status IN ('pending', 'waiting', 'claimed')
  AND (status = 'claimed' AND ? = 1 OR status != 'claimed' AND (expiresAt IS NULL OR expiresAt > MAX(runAt, ?)))
  ORDER BY seq DESC LIMIT 1`;

/**
 * SQL: the line of an ordering key, the tasks of a queue (`queue`, an SQL expression) enqueued with
 * the key (`key`) that have not settled, as `line`; its terms name tasks_ordering_idx's condition
 * as written, so SQLite reads that index (a test reads the plan). Its tasks start in enqueue order,
 * a task only while fewer than its keyConcurrency of the line run (pending or claimed): every
 * write that makes a task of a key pending does so only then and when no older one waits, and
 * every settle of one lets the oldest waiting run while they fit (TaskStore.behindLine,
 * releaseLine; a dependency's complete, HEADS_ITS_LINE). So no more run than the largest
 * keyConcurrency of the key's tasks (1,000 at most), and a count of them reads that many entries.
 */
const orderingLine = (queue: string, key: string): string =>
  `FROM tasks line WHERE line.queue = ${queue} AND line.orderingKey = ${key} AND line.orderingKey IS NOT NULL AND line.status IN ('pending', 'waiting', 'claimed')`;
/** SQL: how many tasks of the line run (pending or claimed). */
const lineRunning = (queue: string, key: string): string => `(SELECT COUNT(*) ${orderingLine(queue, key)} AND line.status IN ('pending', 'claimed'))`;
/** SQL: the seq of the task of the line that waits longest (enqueued first); null when none waits. */
const lineFirstWaiting = (queue: string, key: string): string => `(SELECT line.seq ${orderingLine(queue, key)} AND line.status = 'waiting' ORDER BY line.seq LIMIT 1)`;

/**
 * TaskStore.enqueuerWindow's read (parameters queue, agent, after seq, until seq, window): the
 * terms name tasks_enqueuer_idx's condition as written, so it is a range of that index (a test
 * reads the plan).
 */
export const ENQUEUER_WINDOW = `SELECT seq, CASE WHEN queue = ? THEN ${TASK_TEXT_BYTES} END AS bytes FROM tasks WHERE idempotencyScope = ? AND idempotencyScope <> '' AND seq > ? AND seq <= ? ORDER BY seq LIMIT CAST(? AS INTEGER)`;

/** What enqueue writes; the other columns take their defaults. */
export type NewTask = Pick<TaskRow, "id" | "queue" | "payload" | "priority" | "capability" | "targetAgentId" | "maxAttempts" | "idempotencyKey" | "idempotencyScope" | "dependsOn" | "cancelOnDependencyFailure" | "backoff" | "scheduleId" | "maxRunMs" | "dedupeKey" | "orderingKey" | "traceparent" | "tracestate" | "keyConcurrency" | "baggage"> & {
  runAt: number;
  /** Unix ms; null: it never expires. */
  expiresAt: number | null;
  /** The seqs of its dependencies that have not completed: it waits for them (none: pending, unless `inLine`). */
  waitingFor: readonly number[];
  /** It waits behind an unsettled task of its orderingKey (TaskStore.behindLine). */
  inLine: boolean;
};

/** How a dependency ended, for the tasks that named it: they go on (completed) or are cancelled. */
export type DependencyOutcome = "completed" | "cancelled" | "dead_lettered" | "deleted";

/** What TaskStore.releaseLine reads of the task that waits longest in a line. */
type LineHead = Pick<TaskRow, "seq" | "unmetDependencies" | "keyConcurrency">;

/** A task a dependency's complete made pending (TaskStore.dependentsMet), or one its cancel cancelled. */
export type DependentRow = Pick<TaskRow, "seq" | "id" | "queue" | "priority" | "capability" | "targetAgentId" | "runAt" | "orderingKey" | "traceparent" | "tracestate" | "baggage">;
/** The columns of a DependentRow, as its queries read them. */
const DEPENDENT_COLUMNS = "seq, id, queue, priority, capability, targetAgentId, runAt, orderingKey, traceparent, tracestate, baggage";

export interface ClaimFilter {
  agentId: string;
  /** null = any queue. */
  queues: readonly string[] | null;
  /**
   * Tasks with a capability outside this list are skipped; tasks without one always match.
   * "registered": the agent's registered capabilities, looked up inside the claim statement.
   */
  capabilities: readonly string[] | "registered";
  /** Restrict to these tasks (work stealing). */
  onlySeqs?: readonly number[];
}

/** What a claim asks for, as its statements read it: no queues (or []) is any queue, no capabilities the agent's registered ones. */
export function claimFilterOf(request: { agentId: string; queues?: readonly string[] | undefined; capabilities?: readonly string[] | undefined }): ClaimFilter {
  return {
    agentId: request.agentId,
    queues: request.queues && request.queues.length > 0 ? request.queues : null,
    capabilities: request.capabilities ?? "registered",
  };
}

/**
 * SQL: the waiting task updated has no ordering key, or fewer than its keyConcurrency of its key
 * run and it waits longest of its key: what it must be to become pending when its last dependency
 * completes (dependentsMet). In an UPDATE of several tasks of one key, only the oldest passes when
 * it is visited last (before it was made pending it waited, older than the others); the others
 * that fit then are made pending after (TaskTransitions.nextInLine).
 */
const HEADS_ITS_LINE = `(orderingKey IS NULL OR ${lineRunning("tasks.queue", "tasks.orderingKey")} < keyConcurrency AND seq = ${lineFirstWaiting("tasks.queue", "tasks.orderingKey")})`;

/**
 * SQL: what a waiting task becomes once nothing holds it back ($1, $2, $3: now): pending, due at its
 * runAt or now if later (so a claim's waitedMs counts from now), held when its queue is set aside.
 * SET reads the row as it was: delayed compares the old runAt with now.
 */
const WAITED = `status = 'pending', runAt = MAX(runAt, ?), delayed = (runAt > ?), ${HELD_IF_SET_ASIDE}, unmetDependencies = 0, updatedAt = ?`;

/** TaskStore.behindLine's read: parameters queue, key, keyConcurrency, queue, key, seq. */
export const BEHIND_LINE = `SELECT ${lineRunning("?", "?")} >= ? OR ${lineFirstWaiting("?", "?")} < ?`;
/**
 * TaskStore.releaseLine's first read: the task of a line that waits longest, with how many of the
 * line run (parameters queue, key, queue, key). Read apart from the write: an UPDATE whose WHERE
 * reads its own table runs in two passes: in an in-process run of 64 keys, 11 µs a settle that
 * released nothing and 131 µs one that did, against 2.7 and 93 µs for a read and an UPDATE by seq.
 */
export const NEXT_IN_LINE = `SELECT line.seq, line.unmetDependencies, line.keyConcurrency, ${lineRunning("?", "?")} AS running ${orderingLine("?", "?")} AND line.status = 'waiting' ORDER BY line.seq LIMIT 1`;
/**
 * TaskStore.releaseLine's next reads, once one of the line was made pending: the task that now
 * waits longest, without counting the line again (parameters queue, key). Counted once a release:
 * a count reads as many entries as run (up to 1,000), and a release of 1,000 that counted before
 * each read 500,000 of them, in one write (490 ms).
 */
export const NEXT_WAITING = `SELECT line.seq, line.unmetDependencies, line.keyConcurrency ${orderingLine("?", "?")} AND line.status = 'waiting' ORDER BY line.seq LIMIT 1`;

/** 1 for a pending task whose runAt is still ahead of `now` (the delayed column), else 0. */
const delayedAt = (runAt: number, now: number): number => (runAt > now ? 1 : 0);

/**
 * The claim index a pick reads, named: with statistics (ANALYZE, or PRAGMA optimize run by an
 * operator) over a table of pending tasks, SQLite's planner scanned and sorted the whole table for
 * every claim of any queue or of several (40 ms a claim at 200,000 pending). A steal's pick
 * (`onlySeqs`) reads its few rows by seq instead.
 */
function claimIndex(filter: ClaimFilter): string {
  if (filter.onlySeqs) return "";
  return filter.queues ? "INDEXED BY tasks_pending_queue_idx" : "INDEXED BY tasks_pending_idx";
}

/**
 * WHERE clause (and its params) selecting the pending tasks a claimer may take at `now`: none whose
 * expiry has come (no run starts after it; the expiry job cancels it, within leaseSweepMs).
 */
function claimableWhere(filter: ClaimFilter, params: unknown[], now: number): string {
  params.push(now);
  return `status = 'pending' AND (expiresAt IS NULL OR expiresAt > ?) AND ${runnableBy(filter, params)}`;
}

/**
 * WHERE clause (and its params) selecting the tasks, in any state, that the claimer may run: its
 * target, queues and capabilities. A claim and a steal share it, so a steal never takes over a
 * lease for a task its thief could not have claimed.
 */
function runnableBy(filter: ClaimFilter, params: unknown[]): string {
  // A paused queue's tasks are left out from the write that paused it, held or not yet.
  const clauses = ["(targetAgentId IS NULL OR targetAgentId = ?)", `queue NOT IN (${PAUSED_QUEUES})`];
  params.push(filter.agentId);
  if (filter.queues) {
    clauses.push(`queue IN (${placeholders(filter.queues.length)})`);
    params.push(...filter.queues);
  }
  if (filter.capabilities === "registered") {
    clauses.push("(capability IS NULL OR capability IN (SELECT capability FROM agent_capabilities WHERE agentId = ?))");
    params.push(filter.agentId);
  } else if (filter.capabilities.length > 0) {
    clauses.push(`(capability IS NULL OR capability IN (${placeholders(filter.capabilities.length)}))`);
    params.push(...filter.capabilities);
  } else {
    clauses.push("capability IS NULL");
  }
  if (filter.onlySeqs) {
    clauses.push(`seq IN (${placeholders(filter.onlySeqs.length)})`);
    params.push(...filter.onlySeqs);
  }
  return clauses.join(" AND ");
}

/**
 * FROM and WHERE (params pushed on `params`) of a limited queue's held tasks due by `now` that the
 * claimer of `filter` may take, in tasks_held_due_idx (a claim's read, and the look for a full one).
 * Literal held and delayed values: a partial index is used only where the WHERE implies its own.
 */
function dueHeldOf(filter: ClaimFilter, queue: string, now: number, params: unknown[]): string {
  const where = claimableWhere(filter, params, now);
  params.push(queue, now);
  return `FROM tasks INDEXED BY tasks_held_due_idx WHERE ${where} AND queue = ? AND held = 1 AND delayed = 0 AND runAt <= ?`;
}

/**
 * The SQL of a page of tasks.list (TaskStore.listPage) and its parameters. A key's filter with a
 * status of tasks that have not settled names its index's condition as written (a parameter's
 * status cannot imply it): a queue's line of an ordering key, or the task holding a dedupe key, is
 * then a range of tasks_ordering_idx or tasks_dedupe_idx, not a walk of the table in seq order;
 * a trace's tasks are a range of tasks_trace_idx, an enqueuer's of tasks_enqueuer_idx.
 */
export function listQuery(filter: TaskListFilter, limit: number): { sql: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  for (const [column, value] of [
    ["queue", filter.queue],
    ["status", filter.status],
    ["leaseOwner", filter.agentId],
    ["capability", filter.capability],
    ["dedupeKey", filter.dedupeKey],
    ["orderingKey", filter.orderingKey],
  ] as const) {
    if (value === undefined) continue;
    clauses.push(`${column} = ?`);
    params.push(value);
  }
  if (filter.status === "pending" || filter.status === "waiting" || filter.status === "claimed") {
    if (filter.orderingKey !== undefined) clauses.push("orderingKey IS NOT NULL");
    if (filter.dedupeKey !== undefined) clauses.push("dedupeKey IS NOT NULL");
    if (filter.orderingKey !== undefined || filter.dedupeKey !== undefined) clauses.push("status IN ('pending', 'waiting', 'claimed')");
  }
  if (filter.traceId !== undefined) {
    // One range of tasks_trace_idx (traceparents are stored as version 00), named with its condition.
    clauses.push("traceparent IS NOT NULL AND traceparent BETWEEN ? AND ?");
    params.push(...traceRange(filter.traceId));
  }
  if (filter.enqueuedBy !== undefined) {
    // A range of tasks_enqueuer_idx, in seq order, named with its condition (an agent's id is never '').
    clauses.push("idempotencyScope <> '' AND idempotencyScope = ?");
    params.push(filter.enqueuedBy);
  }
  if (filter.after !== undefined) {
    clauses.push(filter.order === "asc" ? "seq > ?" : "seq < ?");
    params.push(filter.after);
  }
  params.push(limit);
  const where = clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : "";
  return { sql: `SELECT * FROM tasks ${where} ORDER BY seq ${filter.order === "asc" ? "ASC" : "DESC"} LIMIT CAST(? AS INTEGER)`, params };
}

export class TaskStore {
  private readonly limits: QueueLimitStore;
  private readonly rates: QueueRateStore;

  constructor(private readonly st: Statements) {
    this.limits = new QueueLimitStore(st);
    this.rates = new QueueRateStore(st);
  }

  /**
   * Appends a pending task, held when its queue is paused or limited (primary-key reads). The row is built
   * here rather than read back (RETURNING costs a fifth of an insert): the other columns take the
   * schema's defaults, which a test compares with what the database stores
   * (tests/schema-drift.test.ts).
   */
  insert(task: NewTask, now: number): TaskRow {
    // A waiting task is in no claim index: it is held or delayed only once it is pending (dependentsMet, releaseLine).
    const waiting = task.waitingFor.length > 0 || task.inLine;
    const held = waiting ? 0 : this.setAsideNow(task.queue);
    const delayed = waiting ? 0 : delayedAt(task.runAt, now);
    const { lastInsertRowid } = this.st
      .get(
        `INSERT INTO tasks (id, queue, payload, priority, capability, targetAgentId, maxAttempts, runAt, idempotencyKey, idempotencyScope, createdAt, updatedAt, delayed, held, status, dependsOn, unmetDependencies, cancelOnDependencyFailure, backoff, scheduleId, expiresAt, enqueuedExpiresAt, maxRunMs, dedupeKey, orderingKey, traceparent, tracestate, keyConcurrency, baggage)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(task.id, task.queue, task.payload, task.priority, task.capability, task.targetAgentId, task.maxAttempts, task.runAt, task.idempotencyKey, task.idempotencyScope, now, now, delayed, held, waiting ? "waiting" : "pending", task.dependsOn, task.waitingFor.length, task.cancelOnDependencyFailure, task.backoff, task.scheduleId, task.expiresAt, task.expiresAt, task.maxRunMs, task.dedupeKey, task.orderingKey, task.traceparent, task.tracestate, task.keyConcurrency, task.baggage);
    const seq = Number(lastInsertRowid);
    for (const dependsOnSeq of task.waitingFor) this.st.get<[number, number]>(`INSERT INTO task_dependencies (dependsOnSeq, taskSeq) VALUES (?, ?)`).run(dependsOnSeq, seq);
    // Every column named, in the table's order: the same hidden class as a row read back (taskRowWith).
    return {
      seq,
      id: task.id,
      queue: task.queue,
      payload: task.payload,
      priority: task.priority,
      capability: task.capability,
      targetAgentId: task.targetAgentId,
      status: waiting ? "waiting" : "pending",
      attempts: 0,
      maxAttempts: task.maxAttempts,
      runAt: task.runAt,
      leaseOwner: null,
      leaseExpiresAt: null,
      leaseToken: 0,
      result: null,
      lastError: null,
      errorHistory: "[]",
      idempotencyKey: task.idempotencyKey,
      createdAt: now,
      updatedAt: now,
      claimedAt: null,
      finishedAt: null,
      leaseMs: null,
      delayed,
      held,
      claimKey: null,
      releasedBy: null,
      idempotencyScope: task.idempotencyScope,
      dependsOn: task.dependsOn,
      unmetDependencies: task.waitingFor.length,
      cancelOnDependencyFailure: task.cancelOnDependencyFailure,
      progress: null,
      progressAt: null,
      backoff: task.backoff,
      scheduleId: task.scheduleId,
      enqueuedPriority: null,
      editedAt: null,
      expiresAt: task.expiresAt,
      enqueuedExpiresAt: task.expiresAt,
      maxRunMs: task.maxRunMs,
      dedupeKey: task.dedupeKey,
      duplicates: 0,
      replacedAt: null,
      orderingKey: task.orderingKey,
      checkpoint: null,
      checkpointAt: null,
      traceparent: task.traceparent,
      tracestate: task.tracestate,
      keyConcurrency: task.keyConcurrency,
      baggage: task.baggage,
    };
  }

  /**
   * `seq` completed: up to `limit` of the tasks that named it (dependency rows) have one
   * dependency fewer to wait for, those for which it was the last become pending, due at their
   * runAt or now if later (so a claim's waitedMs counts from now), held when their queue is set
   * aside; those rows go. The tasks made pending, best first, how many rows went, and whether
   * rows may be left. One primary-key probe when nothing named it (the usual complete).
   */
  dependentsMet(seq: number, now: number, limit: number): { ready: DependentRow[]; rows: number; more: boolean } {
    const named = this.st
      .get<[number, number], number>(`SELECT taskSeq FROM task_dependencies WHERE dependsOnSeq = ? LIMIT CAST(? AS INTEGER)`)
      .pluck()
      .all(seq, limit);
    if (named.length === 0) return { ready: [], rows: 0, more: false };
    const chunk = JSON.stringify(named);
    const waiting = `seq IN (SELECT value FROM json_each(?)) AND status = 'waiting'`;
    this.st.get<[string]>(`UPDATE tasks SET unmetDependencies = unmetDependencies - 1 WHERE ${waiting}`).run(chunk);
    // One behind an unsettled task of its ordering key waits on, for releaseLine.
    const ready = this.st
      .get<[number, number, number, string], DependentRow>(
        `UPDATE tasks SET ${WAITED}
         WHERE ${waiting} AND unmetDependencies <= 0 AND ${HEADS_ITS_LINE}
         RETURNING ${DEPENDENT_COLUMNS}`,
      )
      .all(now, now, now, chunk);
    this.st.get<[number, string]>(`DELETE FROM task_dependencies WHERE dependsOnSeq = ? AND taskSeq IN (SELECT value FROM json_each(?))`).run(seq, chunk);
    return { ready: ready.sort((a, b) => a.priority - b.priority || a.seq - b.seq), rows: named.length, more: named.length === limit };
  }

  /**
   * Whether a task of ordering key `key` in `queue` that would be pending must wait for its turn
   * instead: `keyConcurrency` (its own) tasks of the key run (pending or claimed), or one enqueued
   * before `seq` waits (a new task: Number.MAX_SAFE_INTEGER, behind any). Reads of tasks_ordering_idx only.
   */
  behindLine(queue: string, key: string, keyConcurrency: number, seq: number): boolean {
    return this.st.get<[string, string, number, string, string, number], number>(BEHIND_LINE).pluck().get(queue, key, keyConcurrency, queue, key, seq) === 1;
  }

  /**
   * A task of ordering key `key` in `queue` settled, or one was made pending or cancelled: the
   * tasks of the key that wait longest become pending (WAITED), in enqueue order, returned, while
   * fewer than the next one's keyConcurrency of the key run and it waits only for its turn (no
   * dependency left: its last one's complete makes it pending, dependentsMet). The line's running
   * tasks are counted once, then one more for each made pending; `limit` of them at most. Reads of
   * tasks_ordering_idx only.
   */
  releaseLine(queue: string, key: string, now: number, limit = Number.MAX_SAFE_INTEGER): DependentRow[] {
    const released: DependentRow[] = [];
    const first = this.st.get<[string, string, string, string], LineHead & { running: number }>(NEXT_IN_LINE).get(queue, key, queue, key);
    if (first === undefined) return released;
    let running = first.running;
    for (let next: LineHead | undefined = first; next !== undefined && released.length < limit && next.unmetDependencies <= 0 && running < next.keyConcurrency; next = this.st.get<[string, string], LineHead>(NEXT_WAITING).get(queue, key)) {
      released.push(
        this.st
          .get<[number, number, number, number], DependentRow>(`UPDATE tasks SET ${WAITED} WHERE seq = ? RETURNING ${DEPENDENT_COLUMNS}`)
          .get(now, now, now, next.seq)!,
      );
      running++;
    }
    return released;
  }

  /**
   * Up to `limit` of the tasks waiting on `seq` (its cancel, or its deletion as a dead letter,
   * cancels them); with `cancellingOnFailure`, only those that cancel when it dead-letters.
   */
  waitingOn(seq: number, limit: number, cancellingOnFailure = false): DependentRow[] {
    return this.st
      .get<[number, number], DependentRow>(
        `SELECT ${DEPENDENT_COLUMNS} FROM tasks
         WHERE seq IN (SELECT taskSeq FROM task_dependencies WHERE dependsOnSeq = ?) AND status = 'waiting'${cancellingOnFailure ? " AND cancelOnDependencyFailure = 1" : ""}
         ORDER BY seq LIMIT CAST(? AS INTEGER)`,
      )
      .all(seq, limit);
  }

  /** The seq and status of task `id`: what a task naming it as a dependency needs (never its payload). */
  stateOf(id: string): Pick<TaskRow, "seq" | "status"> | undefined {
    return this.st.get<[string], Pick<TaskRow, "seq" | "status">>(`SELECT seq, status FROM tasks WHERE id = ?`).get(id);
  }

  /** The dependencies `seq` named that had not completed when it last waited (its rows), with their state now (null: deleted). */
  stillAwaited(seq: number): Array<{ dependsOnSeq: number; status: TaskStatus | null }> {
    return this.st
      .get<[number], { dependsOnSeq: number; status: TaskStatus | null }>(
        `SELECT d.dependsOnSeq, t.status FROM task_dependencies d LEFT JOIN tasks t ON t.seq = d.dependsOnSeq WHERE d.taskSeq = ?`,
      )
      .all(seq);
  }

  /** Dependents left for the background job: `seq`'s (its id, how it ended). */
  deferDependents(seq: number, taskId: string, outcome: DependencyOutcome): void {
    this.st.get<[number, string, string]>(`INSERT OR REPLACE INTO dependency_work (seq, taskId, outcome) VALUES (?, ?, ?)`).run(seq, taskId, outcome);
  }

  /** Up to `limit` dependencies whose dependents are left to settle, oldest first. */
  deferredDependents(limit: number): Array<{ seq: number; taskId: string; outcome: DependencyOutcome }> {
    return this.st
      .get<[number], { seq: number; taskId: string; outcome: DependencyOutcome }>(`SELECT seq, taskId, outcome FROM dependency_work ORDER BY seq LIMIT CAST(? AS INTEGER)`)
      .all(limit);
  }

  /** `seq`'s dependents are settled. */
  dependentsSettled(seq: number): void {
    this.st.get<[number]>(`DELETE FROM dependency_work WHERE seq = ?`).run(seq);
  }

  /** Whether dependents are left to settle (the job looks on the reader before it writes). */
  anyDeferredDependents(): boolean {
    return this.st.get<[], number>(`SELECT EXISTS (SELECT 1 FROM dependency_work)`).pluck().get() === 1;
  }

  /** `seq` waits no more (requeued to pending, or deleted): its dependency rows go. */
  forgetDependencies(seq: number): void {
    this.st.get<[number]>(`DELETE FROM task_dependencies WHERE taskSeq = ?`).run(seq);
  }

  /**
   * `seq` waits for `awaited` only (requeued): its rows for the other dependencies go (completed
   * ones whose rows a deferred complete would otherwise count down a second time; all of them
   * when `awaited` is empty).
   */
  keepDependencies(seq: number, awaited: readonly number[]): void {
    this.st.get<[number, string]>(`DELETE FROM task_dependencies WHERE taskSeq = ? AND dependsOnSeq NOT IN (SELECT value FROM json_each(?))`).run(seq, JSON.stringify(awaited));
  }

  /**
   * 1 when `queue` is paused, limited or rate-limited now (an enqueue into it is held), else 0: HELD_IF_SET_ASIDE's
   * predicate as primary-key reads (`? IN (PAUSED_QUEUES)` scans the pauses each time: 0.5 against
   * 5 µs with 50 of them, on every enqueue).
   */
  private setAsideNow(queue: string): number {
    return this.st
      .get<[string, string, string], number>(
        `SELECT EXISTS (SELECT 1 FROM queue_pauses WHERE queue = ? AND resumedAt IS NULL) OR EXISTS (SELECT 1 FROM queue_limits WHERE queue = ? AND removedAt IS NULL) OR EXISTS (SELECT 1 FROM queue_rates WHERE queue = ? AND removedAt IS NULL)`,
      )
      .pluck()
      .get(queue, queue, queue)!;
  }

  findById(id: string): TaskRow | undefined {
    return this.st.get<[string], TaskRow>(`SELECT * FROM tasks WHERE id = ?`).get(id);
  }

  /**
   * The status and answer size (taskAnswerBytes, read from the record header: no text is loaded)
   * of those of `ids` that exist, by id: a waitMany's looks, and how its answer is packed.
   */
  statusesOf(ids: readonly string[]): Map<string, { status: TaskStatus; bytes: number }> {
    const rows = this.st
      .get<[string], { id: string; status: TaskStatus; bytes: number }>(`SELECT id, status, ${TASK_ANSWER_BYTES} AS bytes FROM tasks WHERE id IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(ids));
    return new Map(rows.map((row) => [row.id, row]));
  }

  /** The task enqueued with `key` by `scope`'s enqueuer (TaskRow.idempotencyScope). */
  findByIdempotencyKey(scope: string, key: string): TaskRow | undefined {
    return this.st.get<[string, string], TaskRow>(`SELECT * FROM tasks WHERE idempotencyScope = ? AND idempotencyKey = ?`).get(scope, key);
  }

  /**
   * The claim: picks the best claimable tasks (lowest priority number, then oldest) and leases
   * them. Atomic because it runs inside the Writer's IMMEDIATE transaction: no other claimer, in
   * this process or another, can see these rows as pending meanwhile. One task is read, then
   * leased by seq; several stop before their answer would pass `budgetBytes` (but always include
   * the first). `claimKey`: the key of the call (claim-keys.ts), kept on the leases (heldUnder finds them by it).
   */
  claim(filter: ClaimFilter, limit: number, budgetBytes: number, leaseMs: number, now: number, claimKey: string | null = null): TaskRow[] {
    this.promoteDue(now);
    const leaseExpiresAt = now + leaseMs;
    // The key is kept with the token of the lease it took, answered once (claim-keys.ts; an
    // UPDATE's expressions read the row as it was). A new run starts with no progress reported.
    // A run with a time limit starts now: its lease ends at its deadline if that comes first.
    const lease = `UPDATE tasks SET status = 'claimed', leaseOwner = ?, leaseExpiresAt = ${CUT_AT_DEADLINE("?")}, leaseToken = leaseToken + 1,
           attempts = attempts + 1, claimedAt = ?, updatedAt = ?, leaseMs = ?, progress = NULL, progressAt = NULL, claimKey = ? || '#' || (leaseToken + 1) || '#1'`;
    const leaseParams = [filter.agentId, leaseExpiresAt, leaseExpiresAt, now, now, now, leaseMs, claimKey];
    // Read, then written by seq (no RETURNING: a read-back costs more than building the row here).
    // A limited queue's lease keeps held = 1: its count includes it (queue-limit-store.ts).
    const leaseRow = (row: TaskRow, limited: boolean): TaskRow[] => {
      this.st.get<unknown[]>(`${lease}${limited ? ", held = 1" : ""} WHERE seq = ?`).run(...leaseParams, row.seq);
      return [
        taskRowWith(row, { status: "claimed", leaseOwner: filter.agentId, leaseExpiresAt: row.maxRunMs === null ? leaseExpiresAt : Math.min(leaseExpiresAt, now + row.maxRunMs), leaseToken: row.leaseToken + 1, attempts: row.attempts + 1, claimedAt: now, updatedAt: now, leaseMs, claimKey: leaseKey(claimKey, row.leaseToken + 1), held: limited ? 1 : row.held, progress: null, progressAt: null }),
      ];
    };
    // The limits this claim must keep: of the queues it may take from. A steal takes over leases
    // its own write just ended, so a limited queue's count is as it was.
    const limits = filter.onlySeqs ? [] : this.limitsFor(filter);
    if (limits.length > 0) return this.claimWithLimits(filter, limit, budgetBytes, now, limits, lease, leaseParams, leaseRow);
    // A steal's victims went back to pending in its write, held if their queue is limited.
    const notHeld = filter.onlySeqs ? "" : "AND held = 0";
    if (limit === 1) {
      const pickParams: unknown[] = [];
      const pickWhere = claimableWhere(filter, pickParams, now);
      pickParams.push(now);
      const row = this.st.get<unknown[], TaskRow>(`SELECT * FROM tasks ${claimIndex(filter)} WHERE ${pickWhere} AND delayed = 0 ${notHeld} AND runAt <= ? ORDER BY priority, seq LIMIT 1`).get(...pickParams);
      return row === undefined ? [] : leaseRow(row, false);
    }
    // A pending row has no leaseOwner: its answer will carry the claimer's id.
    const ownerBytes = utf8Bytes(filter.agentId);
    const pickParams: unknown[] = [];
    const pickWhere = claimableWhere(filter, pickParams, now);
    pickParams.push(now, limit);
    const picked = withinBudget(
      this.st
        .get<unknown[], { seq: number; bytes: number }>(
          `SELECT seq, ${TASK_ANSWER_BYTES} AS bytes FROM tasks ${claimIndex(filter)} WHERE ${pickWhere} AND delayed = 0 ${notHeld} AND runAt <= ? ORDER BY priority, seq LIMIT CAST(? AS INTEGER)`,
        )
        .iterate(...pickParams),
      (row) => row.bytes + ownerBytes,
      budgetBytes,
    ).rows.map((row) => row.seq);
    return this.lease(lease, leaseParams, picked);
  }

  /**
   * A claim that may take from limited queues (queue-limit-store.ts): the best of the other
   * queues' tasks (the general index, limited queues left out: those of their tasks not held yet,
   * just after a limit was set, wait until the queue-holds job held them, within a second) and,
   * for each limited queue, its best due tasks that would beat those (tasks_held_due_idx: one
   * seek, which stops at once for an empty queue or one whose tasks rank lower). A queue's leases
   * are counted only when one of its tasks would be chosen; it gives at most its free slots. The
   * best of them all are leased, each limited queue's marked held so that its count includes
   * them. One task: rows read whole and leased by seq, as the plain claim does; more: their seq,
   * order and size, then RETURNING.
   */
  private claimWithLimits(
    filter: ClaimFilter,
    limit: number,
    budgetBytes: number,
    now: number,
    limits: readonly ClaimBounds[],
    lease: string,
    leaseParams: unknown[],
    leaseRow: (row: TaskRow, limited: boolean) => TaskRow[],
  ): TaskRow[] {
    /** `rate`: the rate of the limited queue it is from, if it has one (its claims are counted). */
    type Pick = { row: TaskRow & { bytes: number }; limited: boolean; rate?: ActiveRate | null };
    const better = (a: Pick, b: Pick) => a.row.priority - b.row.priority || a.row.seq - b.row.seq;
    const columns = limit === 1 ? `*, ${TASK_ANSWER_BYTES} AS bytes` : `seq, priority, ${TASK_ANSWER_BYTES} AS bytes`;
    const read = (sql: string, params: unknown[], limited: boolean): Pick[] =>
      this.st
        .get<unknown[], TaskRow & { bytes: number }>(sql)
        .all(...params)
        .map((row) => ({ row, limited }));
    const generalParams: unknown[] = [];
    const generalWhere = claimableWhere(filter, generalParams, now);
    generalParams.push(now, limit);
    let picks = read(
      `SELECT ${columns} FROM tasks ${claimIndex(filter)} WHERE ${generalWhere} AND queue NOT IN (${LIMITED_QUEUES}) AND delayed = 0 AND held = 0 AND runAt <= ? ORDER BY priority, seq LIMIT CAST(? AS INTEGER)`,
      generalParams,
      false,
    );
    for (const bounds of limits) {
      const { queue } = bounds;
      const params: unknown[] = [];
      const dueHeld = dueHeldOf(filter, queue, now, params);
      // Only tasks that would beat the `limit` best found so far: the walk stops where they end,
      // as the general index's does, past tasks this claimer cannot take.
      let beats = "";
      const last = picks.length >= limit ? picks[limit - 1]! : undefined;
      if (last) {
        // A row value: SQLite reads it as a range of the index, and the walk ends at its bound.
        beats = "AND (priority, seq) < (?, ?)";
        params.push(last.row.priority, last.row.seq);
      }
      params.push(limit);
      const candidates = read(
        `SELECT ${columns} ${dueHeld} ${beats} ORDER BY priority, seq LIMIT CAST(? AS INTEGER)`,
        params,
        true,
      );
      if (candidates.length === 0) continue;
      const free = this.room(bounds, now);
      if (free <= 0) continue;
      for (const candidate of candidates) candidate.rate = bounds.rate;
      picks = [...picks, ...candidates.slice(0, free)].sort(better).slice(0, limit);
    }
    const ownerBytes = utf8Bytes(filter.agentId);
    const chosen = withinBudget(picks, (pick) => pick.row.bytes + ownerBytes, budgetBytes).rows;
    // Each rate-limited queue's claims are counted in this write, one row for them all.
    const rated = new Map<ActiveRate, number>();
    for (const { rate } of chosen) if (rate) rated.set(rate, (rated.get(rate) ?? 0) + 1);
    for (const [rate, n] of rated) this.rates.record(rate.queue, n, now);
    if (limit === 1) {
      const [first] = chosen;
      if (first === undefined) return [];
      // Not a column: taken out before the row is handed on.
      const { bytes: _bytes, ...row } = first.row;
      return leaseRow(row, first.limited);
    }
    const seqs = (limited: boolean) => chosen.filter((pick) => pick.limited === limited).map((pick) => pick.row.seq);
    return [...this.lease(lease, leaseParams, seqs(false)), ...this.lease(`${lease}, held = 1`, leaseParams, seqs(true))].sort((a, b) => a.priority - b.priority || a.seq - b.seq);
  }

  /** The concurrency limits and rates in force over the queues `filter` may take from, a queue's together. */
  private limitsFor(filter: ClaimFilter): ClaimBounds[] {
    const limits = this.limits.active();
    const rates = this.rates.active();
    if (limits.length === 0 && rates.length === 0) return [];
    const covered = (queue: string) => filter.queues === null || filter.queues.includes(queue);
    const byQueue = new Map<string, ClaimBounds>();
    for (const { queue, maxLeased } of limits) if (covered(queue)) byQueue.set(queue, { queue, maxLeased, rate: null });
    for (const rate of rates) {
      if (!covered(rate.queue)) continue;
      const bounds = byQueue.get(rate.queue);
      if (bounds) bounds.rate = rate;
      else byQueue.set(rate.queue, { queue: rate.queue, maxLeased: null, rate });
    }
    return [...byQueue.values()];
  }

  /**
   * How many more of a limited queue's tasks a claim may take now: its free slots, and no more
   * than its rate's room in the window that ends `now` (a write: the claims that left the window
   * are dropped first). Each bound is counted only if the queue has it, the rate only if slots are free.
   */
  private room(bounds: ClaimBounds, now: number): number {
    const free = this.freeSlots(bounds);
    return free > 0 && bounds.rate !== null ? Math.min(free, this.rates.roomAt(bounds.rate, now)) : free;
  }

  /** A limited queue's free slots (its limit less its leases); unbounded without a limit. */
  private freeSlots(bounds: ClaimBounds): number {
    return bounds.maxLeased === null ? Number.MAX_SAFE_INTEGER : bounds.maxLeased - this.limits.leased(bounds.queue);
  }

  /** Leases the tasks `seqs` with the `lease` UPDATE; the rows as they are now, best first. */
  private lease(lease: string, leaseParams: readonly unknown[], seqs: readonly number[]): TaskRow[] {
    if (seqs.length === 0) return [];
    const rows = this.st.get<unknown[], TaskRow>(`${lease} WHERE seq IN (${placeholders(seqs.length)}) RETURNING *`).all(...leaseParams, ...seqs);
    // RETURNING does not promise an order; hand tasks out best first.
    return rows.sort((a, b) => a.priority - b.priority || a.seq - b.seq);
  }

  /**
   * The limited queues the claimer could take a task of now but for their concurrency limit: each
   * is full (its leases all held), and holds a pending task due now that the claimer may run. A
   * claim that found nothing parks until a lease of one of them ends (claim-waiters.ts). Empty
   * when no queue is limited. (A full rate window: rateOutlook.)
   */
  fullQueuesFor(filter: ClaimFilter, now: number): string[] {
    const full: string[] = [];
    for (const bounds of this.limitsFor(filter)) {
      if (bounds.maxLeased !== null && this.holdsDueFor(filter, bounds.queue, now) && this.freeSlots(bounds) <= 0) full.push(bounds.queue);
    }
    return full;
  }

  /**
   * The rate-limited queues `filter` may take from (only those it took tasks of, if given), as the
   * claim left them (RateOutlook): whether anyone has a task to wait for there, the window's state,
   * the limit's. A write (see room). Empty when none of them has a rate, without a read.
   */
  rateOutlook(filter: ClaimFilter, now: number, tookFrom?: ReadonlyArray<{ task: { queue: string } }>): RateOutlook[] {
    const outlook: RateOutlook[] = [];
    for (const bounds of this.limitsFor(filter)) {
      const { queue, rate } = bounds;
      if (rate === null || (tookFrom !== undefined && !tookFrom.some((taken) => taken.task.queue === queue))) continue;
      const mine = this.holdsDueFor(filter, queue, now);
      if (!mine && !this.holdsDue(queue, now)) {
        outlook.push({ queue, freesAt: now, empty: true, full: false, slotsFull: false, mine });
        continue;
      }
      const full = this.rates.roomAt(rate, now) <= 0;
      outlook.push({ queue, freesAt: full ? this.rates.freesAt(rate, now) : now, empty: false, full, slotsFull: !full && this.freeSlots(bounds) <= 0, mine });
    }
    return outlook;
  }

  /**
   * Why a claim of `filter` finds nothing at `now`: whether it would after all (claimable: a
   * claim's own look, as long as a claim that finds nothing); the queues asked for that are
   * paused (none asked: the paused ones holding tasks; PAUSED_OUTLOOK of them at most); the
   * limited ones at their limit (as fullQueuesFor finds them); the rate-limited ones whose window
   * is full, with when it frees; of OUTLOOK_SAMPLE due tasks of those queues at most, the
   * capabilities they need that the claimer does not offer and how many are for other agents;
   * and when the next delayed task it may run falls due. A read: a rate's window is counted
   * without the claims that left it (inWindow), none of them deleted.
   */
  claimOutlook(filter: ClaimFilter, now: number): ClaimOutlook {
    // Paused: each queue asked for, or (none asked) each holding a task; one seek a queue, whoever may run its tasks.
    const paused = this.st
      .get<unknown[], string>(
        filter.queues === null
          ? `SELECT p.queue FROM queue_pauses AS p WHERE p.resumedAt IS NULL
               AND EXISTS (SELECT 1 FROM tasks INDEXED BY tasks_held_idx WHERE tasks.queue = p.queue AND status = 'pending' AND held = 1) ORDER BY p.queue LIMIT ${PAUSED_OUTLOOK}`
          : `SELECT queue FROM queue_pauses WHERE resumedAt IS NULL AND queue IN (${placeholders(filter.queues.length)}) ORDER BY queue LIMIT ${PAUSED_OUTLOOK}`,
      )
      .pluck()
      .all(...(filter.queues ?? []));
    const rateLimited: ClaimOutlook["rateLimited"] = [];
    const fullQueues: string[] = [];
    // Whether a claim now would be handed a task: of a limited queue with a free slot and room in
    // its rate, or (below) of the other queues. Without it, the outlook of an agent that simply
    // does not claim read as work kept from it, its reasons those of the tasks it may not take.
    let claimable = false;
    for (const bounds of this.limitsFor(filter)) {
      const { queue, rate } = bounds;
      if (!this.holdsDueFor(filter, queue, now)) continue;
      const slotsFull = this.freeSlots(bounds) <= 0;
      // Full as fullQueuesFor says it (one look at the queue's due tasks serves both).
      if (bounds.maxLeased !== null && slotsFull) fullQueues.push(queue);
      let freesAt = now;
      if (rate !== null) {
        // The claims in the window now (inWindow): `used` counts those a write has not yet taken
        // off, and with no claim since the window emptied, it stayed full for ever here.
        freesAt = this.rates.freesAt(rate, now, this.rates.inWindow(queue, rate.perMs, now));
        if (freesAt > now) rateLimited.push({ queue, maxClaims: rate.maxClaims, perMs: rate.perMs, freesAt });
      }
      if (freesAt <= now && !slotsFull) claimable = true;
    }
    /** Whether a queue no limit holds has a task the claimer may take in `index` (`delayed`: 0, in the claim indexes; 1, fallen due but not yet promoted). */
    const dueIn = (index: string, delayed: 0 | 1): boolean => {
      const params: unknown[] = [];
      const where = claimableWhere(filter, params, now);
      params.push(now);
      const held = delayed === 0 ? "AND held = 0" : "";
      return this.st.get<unknown[], number>(`SELECT 1 FROM tasks ${index} WHERE ${where} AND queue NOT IN (${LIMITED_QUEUES}) AND delayed = ${delayed} ${held} AND runAt <= ? LIMIT 1`).pluck().get(...params) !== undefined;
    };
    // The claim's own pick over the queues no limit holds (the general index, as claimWithLimits
    // reads it): it reads no more than a claim that found nothing would. Then a delayed task that
    // fell due: only a claim's write moves it into the claim indexes (promoteDue), so with no claim
    // since, neither the pick nor nextRunAt sees it, and a claim would take it; its own index, as
    // nextRunAt reads it (a limited queue's falls due held, and waits for its limit's room).
    claimable ||= dueIn(claimIndex(filter), 0) || dueIn("INDEXED BY tasks_delayed_idx", 1);
    // Due tasks of the queues asked, in no order (ordered, a claim over several queues would sort
    // them all): the claim took none, so each is one it may not run, or one another claim took since.
    const sampleParams: unknown[] = [now, now];
    const inQueues = filter.queues === null ? "" : `AND queue IN (${placeholders(filter.queues.length)})`;
    if (filter.queues !== null) sampleParams.push(...filter.queues);
    const sample = this.st
      .get<unknown[], { capability: string | null; targetAgentId: string | null }>(
        `SELECT capability, targetAgentId FROM tasks ${claimIndex(filter)} WHERE status = 'pending' AND delayed = 0 AND held = 0 AND runAt <= ? AND (expiresAt IS NULL OR expiresAt > ?) ${inQueues} LIMIT ${OUTLOOK_SAMPLE}`,
      )
      .all(...sampleParams);
    // And the delayed ones that fell due with no claim since (a retry's backoff that ran out while
    // the workers were down): no claim moved them into the claim indexes, yet they wait as much.
    if (sample.length < OUTLOOK_SAMPLE) {
      sample.push(
        ...this.st
          .get<unknown[], { capability: string | null; targetAgentId: string | null }>(
            `SELECT capability, targetAgentId FROM tasks INDEXED BY tasks_delayed_idx WHERE status = 'pending' AND delayed = 1 AND held = 0 AND runAt <= ? AND (expiresAt IS NULL OR expiresAt > ?) ${inQueues} LIMIT ${OUTLOOK_SAMPLE - sample.length}`,
          )
          .all(...sampleParams),
      );
    }
    const offered = new Set(filter.capabilities === "registered" ? this.st.get<[string], string>(`SELECT capability FROM agent_capabilities WHERE agentId = ?`).pluck().all(filter.agentId) : filter.capabilities);
    const needed = new Map<string, number>();
    let forOthers = 0;
    for (const { capability, targetAgentId } of sample) {
      if (targetAgentId !== null && targetAgentId !== filter.agentId) forOthers++;
      else if (capability !== null && !offered.has(capability)) needed.set(capability, (needed.get(capability) ?? 0) + 1);
    }
    return {
      claimable,
      paused,
      fullQueues,
      rateLimited,
      looked: sample.length,
      needCapabilities: [...needed].sort(([a, m], [b, n]) => n - m || (a < b ? -1 : 1)).map(([capability, tasks]) => ({ capability, tasks })),
      forOtherAgents: forOthers,
      offered: [...offered].sort(),
      nextRunAt: this.nextRunAt(filter, now),
    };
  }

  /** Whether limited `queue`, not paused, holds a task due by `now` that any claimer may take (one seek). */
  private holdsDue(queue: string, now: number): boolean {
    return (
      this.st
        .get<[string, number], number>(
          `SELECT 1 FROM tasks INDEXED BY tasks_held_due_idx WHERE queue = ? AND status = 'pending' AND held = 1 AND delayed = 0 AND runAt <= ? AND queue NOT IN (${PAUSED_QUEUES}) LIMIT 1`,
        )
        .pluck()
        .get(queue, now) !== undefined
    );
  }

  /** Whether limited `queue` holds a task due by `now` that the claimer of `filter` may take. */
  private holdsDueFor(filter: ClaimFilter, queue: string, now: number): boolean {
    const params: unknown[] = [];
    return this.st.get<unknown[], number>(`SELECT 1 ${dueHeldOf(filter, queue, now, params)} LIMIT 1`).pluck().get(...params) !== undefined;
  }

  /**
   * The tasks `agentId` still holds under the very leases the call of `claimKey` took (claim-keys.ts:
   * a lease that moved on since never matches), best first: what that call answered, for the same
   * call sent again. A seek in the agent's claimed-tasks index over the key's values.
   */
  heldUnder(agentId: string, claimKey: string): TaskRow[] {
    return this.st
      .get<[string, string, string], TaskRow>(
        `SELECT * FROM tasks INDEXED BY tasks_claimed_owner_idx WHERE leaseOwner = ? AND status = 'claimed' AND claimKey > ? AND claimKey < ? ORDER BY priority, seq`,
      )
      .all(agentId, `${claimKey}#`, `${claimKey}$`)
      .filter((row) => currentLeaseKey(row)?.key === claimKey);
  }

  /**
   * One more answer hands the lease of `row` out (a repeat of the call that took it): counted, and
   * renewed as a heartbeat renews it, to `leaseMs` from `now` unless it runs longer already (a
   * lease that ran out unswept is held again: the repeat is its holder's sign of life). The row
   * as it is now.
   */
  answeredAgain(row: TaskRow, leaseMs: number, now: number): TaskRow {
    const current = currentLeaseKey(row)!;
    // Never past the run's deadline (a lease cut there stays so).
    const deadline = runDeadline(row);
    const leaseExpiresAt = Math.min(Math.max(Number(row.leaseExpiresAt), now + leaseMs), deadline ?? Number.POSITIVE_INFINITY);
    const changes = { claimKey: leaseKey(current.key, row.leaseToken, current.answers + 1), leaseExpiresAt, leaseMs: leaseExpiresAt === now + leaseMs ? leaseMs : row.leaseMs, updatedAt: now };
    this.st
      .get<[string | null, number, number | null, number, number]>(`UPDATE tasks SET claimKey = ?, leaseExpiresAt = ?, leaseMs = ?, updatedAt = ? WHERE seq = ?`)
      .run(changes.claimKey, changes.leaseExpiresAt, changes.leaseMs, changes.updatedAt, row.seq);
    return taskRowWith(row, changes);
  }

  /**
   * An answer that handed out the lease of `row` never reached its client: true when another
   * answer handed the same lease out (a repeat of its call, or the call a repeat repeated), which
   * may have arrived: then this one only counts itself out, and the lease stays. False when it
   * was the only one: the caller gives the lease back.
   */
  answerLost(row: TaskRow): boolean {
    const current = currentLeaseKey(row);
    if (current === undefined || current.answers <= 1) return false;
    this.setClaimKey(row.seq, leaseKey(current.key, row.leaseToken, current.answers - 1));
    return true;
  }

  /** Whether more than one answer handed out the lease of `row` (a keyed call and its repeat): none of them may be the one that arrived. */
  answeredMoreThanOnce(row: TaskRow): boolean {
    return (currentLeaseKey(row)?.answers ?? 0) > 1;
  }

  private setClaimKey(seq: number, claimKey: string | null): void {
    this.st.get<[string | null, number]>(`UPDATE tasks SET claimKey = ? WHERE seq = ?`).run(claimKey, seq);
  }

  /**
   * Delayed tasks that fell due by `now` join the claim indexes (tasks_delayed_idx): a range read
   * that finds nothing when none did, so a claim pays nothing for the tasks not due yet. Run by
   * the first claim of each transaction (a group commit's writes share one `now`, and none of
   * them leaves a task delayed that is due by it), by every claim outside a counted one; a task
   * promoted by one server is due for every server.
   */
  promoteDue(now: number): void {
    const transaction = this.st.transactions;
    if (transaction !== 0 && transaction === this.promotedIn) return;
    this.promotedIn = transaction;
    // A task of a paused queue falls due held, as the rest of its queue is.
    this.st.get<[number]>(`UPDATE tasks SET delayed = 0, ${HELD_IF_SET_ASIDE} WHERE status = 'pending' AND delayed = 1 AND runAt <= ?`).run(now);
  }
  /** The transaction (Statements.transactions) whose first claim promoted the due tasks. */
  private promotedIn = -1;

  /**
   * When the next delayed task the claimer could take becomes due, so a long-poll can wake for it;
   * null when none. Every claim that finds nothing asks, on the writer: it reads the delayed tasks'
   * own index, soonest first, and stops at the first the claimer could take (it read the whole
   * table before, 10 ms a claim with 200,000 settled tasks kept).
   */
  nextRunAt(filter: ClaimFilter, now: number): number | null {
    const params: unknown[] = [];
    const where = claimableWhere(filter, params, now);
    params.push(now);
    const next = this.st
      .get<unknown[], number>(`SELECT runAt FROM tasks INDEXED BY tasks_delayed_idx WHERE ${where} AND delayed = 1 AND runAt > ? ORDER BY runAt LIMIT 1`)
      .pluck()
      .get(...params);
    return next === undefined ? null : Number(next);
  }

  /**
   * Renews a lease for `leaseMs` from `now`, no further than its run's deadline (claimedAt +
   * maxRunMs); that length is the lease's from then on. With `saved`, the same write keeps the
   * run's progress report and the task's checkpoint as of `now`.
   */
  extendLease(seq: number, leaseMs: number, now: number, saved: RunSaves = {}): TaskRow {
    // One row write whatever the heartbeat carries (a renewal, a report, a checkpoint): the
    // statement for each combination is prepared once and cached.
    const { progress, checkpoint } = saved;
    const params: unknown[] = [now + leaseMs, now + leaseMs, leaseMs, now];
    let sets = `leaseExpiresAt = ${CUT_AT_DEADLINE("claimedAt")}, leaseMs = ?, updatedAt = ?`;
    if (progress !== undefined) {
      sets += ", progress = ?, progressAt = ?";
      params.push(progress, now);
    }
    if (checkpoint !== undefined) {
      sets += ", checkpoint = ?, checkpointAt = ?";
      params.push(checkpoint, checkpoint === null ? null : now);
    }
    params.push(seq);
    return this.st.get<unknown[], TaskRow>(`UPDATE tasks SET ${sets} WHERE seq = ? RETURNING *`).get(...params)!;
  }

  /** Sets the task's checkpoint (JSON text; null clears it) as of `now`: a settle's (tasks.fail, tasks.release). */
  saveCheckpoint(seq: number, checkpoint: string | null, now: number): TaskRow {
    return this.st.get<[string | null, number | null, number], TaskRow>(`UPDATE tasks SET checkpoint = ?, checkpointAt = ? WHERE seq = ? RETURNING *`).get(checkpoint, checkpoint === null ? null : now, seq)!;
  }

  /**
   * Completes the task if it is claimed under the given lease (any holder when agentId is null,
   * any token when leaseToken is null); undefined when it is not. Read, checked, then written by
   * seq, inside the writer's transaction: the same as one conditional UPDATE … RETURNING, which
   * cost a third more on the hot path (bench/RESULTS.md, 2026-11-30).
   */
  completeHeld(id: string, agentId: string | null, leaseToken: number | null, result: unknown, now: number): TaskRow | undefined {
    const row = this.findById(id);
    if (row === undefined || row.status !== "claimed") return undefined;
    if ((agentId !== null && row.leaseOwner !== agentId) || (leaseToken !== null && row.leaseToken !== leaseToken)) return undefined;
    const text = toJsonText(result);
    this.st
      .get<[string, number, number, number]>(`UPDATE tasks SET status = 'completed', result = ?, leaseExpiresAt = NULL, finishedAt = ?, updatedAt = ? WHERE seq = ?`)
      .run(text, now, now, row.seq);
    return taskRowWith(row, { status: "completed", result: text, leaseExpiresAt: null, finishedAt: now, updatedAt: now });
  }

  /** Records a failed run: back to pending at `retryAt`, or dead-lettered when retryAt is null. */
  recordFailure(row: TaskRow, error: string, agentId: string | null, retryAt: number | null, now: number, marks: FailureMarks = {}): TaskRow {
    const errorHistory = historyAfterFailure(row, error, agentId, now, marks);
    if (retryAt === null) {
      return this.st
        .get<[string, string, number, number, number], TaskRow>(
          `UPDATE tasks SET status = 'dead_letter', lastError = ?, errorHistory = ?, leaseExpiresAt = NULL, finishedAt = ?, updatedAt = ?
           WHERE seq = ? RETURNING *`,
        )
        .get(error, errorHistory, now, now, row.seq)!;
    }
    return this.st
      .get<[string, string, number, number, number, number], TaskRow>(
        `UPDATE tasks SET status = 'pending', lastError = ?, errorHistory = ?, runAt = ?, delayed = ?, ${HELD_IF_SET_ASIDE}, leaseOwner = NULL, leaseExpiresAt = NULL, updatedAt = ?
         WHERE seq = ? RETURNING *`,
      )
      .get(error, errorHistory, retryAt, delayedAt(retryAt, now), now, row.seq)!;
  }

  /** Back to pending without charging the attempt. */
  /** Back to pending, uncharged; `releasedBy`: the holder's own release (releasedLease), or null when the server gave it back. */
  release(seq: number, runAt: number, now: number, releasedBy: string | null = null): TaskRow {
    return this.st
      .get<[number, number, string | null, number, number], TaskRow>(
        `UPDATE tasks SET status = 'pending', attempts = MAX(attempts - 1, 0), runAt = ?, delayed = ?, ${HELD_IF_SET_ASIDE}, leaseOwner = NULL, leaseExpiresAt = NULL, releasedBy = ?, updatedAt = ?
         WHERE seq = ? RETURNING *`,
      )
      .get(runAt, delayedAt(runAt, now), releasedBy, now, seq)!;
  }

  /**
   * A task that waits to run (pending or waiting) given another priority and time to fall due
   * (tasks.update; tasks.promote, due at `now` with the same priority): a pending one's runAt ahead
   * of `now` takes it out of the claim indexes (delayed), one due is in them, held when its queue
   * is paused or limited, as a task falling due is. A waiting task's
   * runAt is when it may run once its dependencies completed (dependentsMet). The first change of
   * priority keeps the one it was enqueued with (enqueuedPriority). updatedAt and editedAt move (EDITED).
   */
  reschedule(row: TaskRow, priority: number, runAt: number, now: number, expiresAt: number | null = row.expiresAt === null ? null : Number(row.expiresAt)): TaskRow {
    const due = row.status === "pending" && runAt <= now ? `, delayed = 0, ${HELD_IF_SET_ASIDE}` : row.status === "pending" ? ", delayed = 1" : "";
    return this.st
      .get<[number, number, number, number | null, number, number, number], TaskRow>(
        `UPDATE tasks SET enqueuedPriority = CASE WHEN priority = ? THEN enqueuedPriority ELSE COALESCE(enqueuedPriority, priority) END,
           priority = ?, runAt = ?${due}, expiresAt = ?, ${EDITED} WHERE seq = ? RETURNING *`,
      )
      .get(priority, priority, runAt, expiresAt, now, now, row.seq)!;
  }

  /**
   * The newest task of `queue` enqueued with dedupe key `key` that an enqueue naming it is answered
   * with: one that waits to run (pending, waiting for its dependencies or its turn) and falls due before it
   * expires (not expired by `now`), or with `running` one claimed too. One short range read of tasks_dedupe_idx (settled
   * tasks are not in it).
   */
  findByDedupeKey(queue: string, key: string, running: boolean, now: number): TaskRow | undefined {
    return this.st.get<[string, string, number, number], TaskRow>(DEDUPE_LOOKUP).get(queue, key, running ? 1 : 0, now);
  }

  /** An enqueue answered with `row` (its dedupe key), counted in its duplicates: no change to the task (updatedAt stays). */
  countDuplicate(row: TaskRow): TaskRow {
    return this.st.get<[number], TaskRow>(`UPDATE tasks SET duplicates = duplicates + 1 WHERE seq = ? RETURNING *`).get(row.seq)!;
  }

  /**
   * `payload` (JSON text) is the task's from now on (dedupe.replace, tasks.update), replacedAt
   * saying when: an enqueue sent again with its idempotencyKey then compares none. Its checkpoint
   * goes with the payload it was saved for: a run of the new one starts from the beginning.
   * updatedAt and editedAt move (EDITED).
   */
  replacePayload(row: TaskRow, payload: string, now: number): TaskRow {
    return this.st
      .get<[string, number, number, number, number], TaskRow>(`UPDATE tasks SET payload = ?, replacedAt = ?, ${NO_CHECKPOINT}, ${EDITED} WHERE seq = ? RETURNING *`)
      .get(payload, now, now, now, row.seq)!;
  }

  /**
   * Clears the task's checkpoint as an operator's change (tasks.update's checkpoint null): updatedAt
   * and editedAt move (EDITED), as reschedule and replacePayload move them, so tasks.events finds
   * the update near the task's last write.
   */
  clearCheckpointEdited(seq: number, now: number): TaskRow {
    return this.st.get<[number, number, number], TaskRow>(`UPDATE tasks SET ${NO_CHECKPOINT}, ${EDITED} WHERE seq = ? RETURNING *`).get(now, now, seq)!;
  }

  /** Clears the task's checkpoint, if it keeps one (a requeue's: nothing else changes): whether it did. */
  clearCheckpoint(seq: number): boolean {
    return this.st.get<[number]>(`UPDATE tasks SET ${NO_CHECKPOINT} WHERE seq = ? AND checkpoint IS NOT NULL`).run(seq).changes === 1;
  }

  /** `reason`, when given: why (its lastError); null keeps the lastError it had. */
  cancel(seq: number, now: number, reason: string | null = null): TaskRow {
    return this.st.get<[string | null, number, number, number], TaskRow>(`UPDATE tasks SET ${CANCELLED} WHERE seq = ? RETURNING *`).get(reason, now, now, seq)!;
  }

  /**
   * A waiting task cancelled because a dependency can no longer complete, as `cancel` does with
   * `why`, nothing read back (a cascade cancels hundreds a write). Its dependency rows stay: a
   * requeue reads from them what it still waits for.
   */
  cancelWaiting(seq: number, why: string, now: number): void {
    this.st.get<[string, number, number, number]>(`UPDATE tasks SET ${CANCELLED} WHERE seq = ?`).run(why, now, now, seq);
  }

  /**
   * A fresh start: pending now, attempts reset; the error history is kept. With `waitingFor` (the
   * seqs of dependencies not completed, whose rows it kept since it was cancelled waiting), or
   * `inLine` (it goes behind its ordering key's head), waiting instead.
   */
  requeue(seq: number, now: number, waitingFor: readonly number[] = [], inLine = false): TaskRow {
    if (waitingFor.length === 0 && !inLine) return this.st.get<[number, number, number, number], TaskRow>(`UPDATE tasks SET ${REQUEUED} WHERE seq = ? RETURNING *`).get(now, now, now, seq)!;
    return this.st.get<[number, number, number, number, number], TaskRow>(`UPDATE tasks SET ${REQUEUED_WAITING} WHERE seq = ? RETURNING *`).get(waitingFor.length, now, now, now, seq)!;
  }

  /**
   * The same, for a bulk requeue: nothing read back (a payload of up to maxBodyBytes each).
   * SQLite still writes the whole row again, payload included: a page is bounded by its rows' bytes.
   */
  requeueQuietly(seq: number, now: number, inLine = false): void {
    if (inLine) this.st.get<[number, number, number, number, number]>(`UPDATE tasks SET ${REQUEUED_WAITING} WHERE seq = ?`).run(0, now, now, now, seq);
    else this.st.get<[number, number, number, number]>(`UPDATE tasks SET ${REQUEUED} WHERE seq = ?`).run(now, now, now, seq);
  }

  /**
   * Up to `window` dead letters after `afterSeq`, oldest first by seq, of `queue` when given: what
   * a bulk requeue may take, with the bytes each row holds. Only what the index holds and the row's
   * header are read (octet_length reads a value's size from there): a row's fields after its
   * payload would be read through its overflow pages (deadLetterAt reads them for the few taken).
   * On the dead letters' own indexes, named so that the plan never turns to another: the
   * completed tasks, most of the settled ones, are never read.
   */
  deadLetters(queue: string | undefined, afterSeq: number, window: number): Array<{ seq: number; bytes: number }> {
    const [index, byQueue] = queue === undefined ? ["tasks_dead_letter_idx", ""] : ["tasks_dead_letter_queue_idx", " AND queue = ?"];
    const params: unknown[] = queue === undefined ? [afterSeq, window] : [queue, afterSeq, window];
    // The indexes' own predicate: SQLite uses a partial index only for a query whose WHERE implies it.
    return this.st
      .get<unknown[], { seq: number; bytes: number }>(
        `SELECT seq, ${TASK_TEXT_BYTES} AS bytes
         FROM tasks INDEXED BY ${index}
         WHERE status = 'dead_letter'${byQueue} AND seq > ? ORDER BY seq LIMIT CAST(? AS INTEGER)`,
      )
      .all(...params);
  }

  /** A dead letter as a bulk requeue reads it, by seq (its fields after the payload: read through it). */
  deadLetterAt(seq: number): DeadLetterRow {
    return this.st.get<[number], DeadLetterRow>(`SELECT seq, id, queue, status, capability, targetAgentId, finishedAt, orderingKey, keyConcurrency FROM tasks WHERE seq = ?`).get(seq)!;
  }

  /** The newest task's seq (0 when there is none): where a bulk cancel's pages stop. */
  lastSeq(): number {
    return this.st.get<[], { seq: number | null }>(`SELECT MAX(seq) AS seq FROM tasks`).get()!.seq ?? 0;
  }

  /**
   * The next `window` tasks after `afterSeq` (to `untilSeq`), oldest first: for each of `queue`'s,
   * the bytes its row holds (null for another queue's); `through`, the last seq the window covered
   * when it was full (the next page starts after it), null when it reached `untilSeq`. Read by seq
   * on the table's own b-tree, and only what comes before a row's payload or is in its header (its
   * queue; octet_length reads sizes from there): no overflow page is read. No index holds a queue's
   * tasks in every state, and one would cost every enqueue and claim a write more for a call
   * operators make rarely.
   */
  queueWindow(queue: string, afterSeq: number, untilSeq: number, window: number): { rows: QueueWindowRow[]; through: number | null } {
    const rows = this.st
      .get<[string, number, number, number], QueueWindowRow>(
        `SELECT seq, CASE WHEN queue = ? THEN ${TASK_TEXT_BYTES} END AS bytes FROM tasks WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT CAST(? AS INTEGER)`,
      )
      .all(queue, afterSeq, untilSeq, window);
    return { rows, through: rows.length === window ? rows.at(-1)!.seq : null };
  }

  /**
   * queueWindow's for the tasks agent `agentId` enqueued under its credential (idempotencyScope):
   * a range of tasks_enqueuer_idx (seq after `afterSeq`, at most `untilSeq`), `window` entries at
   * most, those of another queue with no bytes.
   */
  enqueuerWindow(agentId: string, queue: string, afterSeq: number, untilSeq: number, window: number): { rows: QueueWindowRow[]; through: number | null } {
    const rows = this.st.get<[string, string, number, number, number], QueueWindowRow>(ENQUEUER_WINDOW).all(queue, agentId, afterSeq, untilSeq, window);
    return { rows, through: rows.length === window ? rows.at(-1)!.seq : null };
  }

  /**
   * A task's id, state and enqueue time by seq. Its state and time follow its payload in the row:
   * a payload that overflows is read through to them (a bulk cancel bounds what it looks at so).
   */
  stateAt(seq: number): CancellableRow {
    return this.st.get<[number], CancellableRow>(`SELECT seq, id, status, createdAt FROM tasks WHERE seq = ?`).get(seq)!;
  }

  /**
   * Up to `limit` tasks that wait to run (pending, waiting) whose expiry came by `now`, soonest
   * first, with the bytes their rows hold (read from the record header: no text is loaded):
   * tasks_expiring_idx, a range read that finds nothing when none expired.
   */
  expiredSeqs(now: number, limit: number): Array<{ seq: number; bytes: number }> {
    return this.st
      .get<[number, number], { seq: number; bytes: number }>(
        `SELECT seq, ${TASK_TEXT_BYTES} AS bytes FROM tasks INDEXED BY tasks_expiring_idx WHERE status IN ('pending', 'waiting') AND expiresAt IS NOT NULL AND expiresAt <= ? ORDER BY expiresAt LIMIT CAST(? AS INTEGER)`,
      )
      .all(now, limit);
  }

  /** A task by seq, whole. */
  findBySeq(seq: number): TaskRow | undefined {
    return this.st.get<[number], TaskRow>(`SELECT * FROM tasks WHERE seq = ?`).get(seq);
  }

  /** Claims whose lease ran out within `bounds` (lock-wait-grace.ts), soonest ended first. */
  expiredClaims(bounds: LeaseBounds, limit: number): TaskRow[] {
    return this.st
      .get<unknown[], TaskRow>(`SELECT * FROM tasks WHERE status = 'claimed' AND ${LEASE_RUN_OUT} ORDER BY leaseExpiresAt LIMIT CAST(? AS INTEGER)`)
      .all(...leaseRunOutParams(bounds), limit);
  }

  /** Up to `limit` claims `agentId` holds. */
  claimsHeldBy(agentId: string, limit: number): TaskRow[] {
    return this.st
      .get<[string, number], TaskRow>(`SELECT * FROM tasks INDEXED BY tasks_claimed_owner_idx WHERE status = 'claimed' AND leaseOwner = ? LIMIT CAST(? AS INTEGER)`)
      .all(agentId, limit);
  }

  /**
   * Up to `limit` forfeit claims: those an agent seen offline took at or before its
   * leasesForfeitedAt (agent-commands.ts). Not those it took since, if it came back.
   */
  forfeitedClaims(limit: number): TaskRow[] {
    return this.st
      .get<[number], TaskRow>(
        `SELECT t.* FROM agents a INDEXED BY agents_forfeit_idx JOIN tasks t INDEXED BY tasks_claimed_owner_idx ON t.leaseOwner = a.id
         WHERE a.leasesForfeitedAt IS NOT NULL AND t.status = 'claimed' AND t.claimedAt <= a.leasesForfeitedAt LIMIT CAST(? AS INTEGER)`,
      )
      .all(limit);
  }

  /**
   * Claims a thief may take over: expired leases, or leases held by a registered agent whose last
   * heartbeat is older than `offlineBefore`. Offline is judged from the heartbeat age now, not from
   * the health last saved: that one lags by up to a health-check interval in both directions.
   * Only those `thief` could run (its target, capabilities), and as many as its answer has room
   * for (`budgetBytes`, as a claim's; always the first it hands out), each weighed by
   * `answerBytes` as the steal will answer it: `limit` counts tasks it can take, and no lease it
   * will not take over is ended on its behalf.
   */
  stealable(thief: ClaimFilter, bounds: LeaseBounds, offlineBefore: number, fromAgentId: string | null, limit: number, budgetBytes: number, answerBytes: (victim: TaskRow) => number, now: number): TaskRow[] {
    const params: unknown[] = fromAgentId === null ? [] : [fromAgentId];
    const runnable = runnableBy(thief, params);
    params.push(now, ...leaseRunOutParams(bounds), offlineBefore, limit);
    // Not one whose expiry came: its new run may not start (claimableWhere would leave it out),
    // so it would go back to the queue charged, for no one. The sweeper and the expiry job end it.
    const rows = this.st
      .get<unknown[], TaskRow>(
        `SELECT * FROM tasks WHERE status = 'claimed' ${fromAgentId === null ? "" : "AND leaseOwner = ?"} AND ${runnable}
           AND (expiresAt IS NULL OR expiresAt > ?) AND (${LEASE_RUN_OUT} OR leaseOwner IN (SELECT id FROM agents WHERE lastHeartbeatAt <= ?))
         ORDER BY priority, seq LIMIT CAST(? AS INTEGER)`,
      )
      .iterate(...params);
    return withinBudget(rows, answerBytes, budgetBytes).rows;
  }

  /** One page of `list`, oldest or newest first, cut before its answer would pass `budgetBytes`. */
  listPage(filter: TaskListFilter, limit: number, budgetBytes: number): { rows: TaskRow[]; truncated: boolean } {
    const { sql, params } = listQuery(filter, limit);
    return withinBudget(this.st.get<unknown[], TaskRow>(sql).iterate(...params), taskAnswerBytes, budgetBytes);
  }

  /**
   * Retention: up to `limit` settled tasks (completed, dead-lettered, cancelled) that settled
   * before `before`, oldest first, on the settled-tasks index; not one whose dependents are left to
   * settle (dependency_work: the job reads its state). What deleteSettled may delete.
   */
  settledBefore(before: number, limit: number, seqBelow = 0): Array<Pick<TaskRow, "seq" | "id" | "status">> {
    // Settled before `before`, or at `before` with a seq below `seqBelow` (a count retention's
    // cutoff inside a run of tasks settled in the same ms, as one bulk cancel settles them all).
    return this.st
      .get<[number, number, number, number], Pick<TaskRow, "seq" | "id" | "status">>(
        `SELECT seq, id, status FROM tasks WHERE status IN ('completed', 'dead_letter', 'cancelled') AND finishedAt <= ? AND (finishedAt < ? OR seq < ?) AND seq NOT IN (SELECT seq FROM dependency_work) ORDER BY finishedAt, seq LIMIT CAST(? AS INTEGER)`,
      )
      .all(before, before, seqBelow, limit);
  }

  /**
   * Retention: deletes the settled tasks `tasks` (settledBefore's, in the same write). A dead
   * letter's waiting dependents are cancelled by the caller (TaskTransitions.settleDependents).
   */
  deleteSettled(tasks: ReadonlyArray<Pick<TaskRow, "seq" | "status">>): void {
    for (const task of tasks) {
      this.st.get<[number]>(`DELETE FROM tasks WHERE seq = ?`).run(task.seq);
      // A task cancelled while waiting kept its dependency rows for a requeue: none will come now.
      if (task.status === "cancelled") this.forgetDependencies(task.seq);
    }
  }

  /**
   * The `keep`-th most recently settled task (by settle time, then seq): those before it are beyond
   * a count retention; null when fewer are kept. Its seq too: a time alone kept every task settled
   * in the same ms as it (a bulk cancel of 1,000 under a count of 3 kept all 1,000).
   */
  settledCutoff(keep: number): { at: number; seq: number } | null {
    const row = this.st
      .get<[number], { finishedAt: number; seq: number }>(`SELECT finishedAt, seq FROM tasks WHERE status IN ('completed', 'dead_letter', 'cancelled') ORDER BY finishedAt DESC, seq DESC LIMIT 1 OFFSET CAST(? AS INTEGER)`)
      .get(keep - 1);
    return row === undefined ? null : { at: Number(row.finishedAt), seq: Number(row.seq) };
  }

  /** The oldest settled task's settle time (stats: what is retained); null when none. */
  oldestSettledAt(): number | null {
    const at = this.st.get<[], number>(`SELECT min(finishedAt) FROM tasks WHERE status IN ('completed', 'dead_letter', 'cancelled')`).pluck().get();
    return at == null ? null : Number(at);
  }
}
