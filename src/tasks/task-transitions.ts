// The task queue's state changes, as they run inside a write (one Writer transaction in the
// database writer thread): each one changes the row and appends its system event together, so no
// subscriber ever sees one without the other. The commands (task-commands.ts, and the agent
// registry's for an agent gone offline) compose them.
import { setNewest } from "../bounded-map.js";
import { copyWith } from "../copy-with.js";
import { newId } from "../ids.js";
import type { AgentStore } from "../agents/agent-store.js";
import type { Config } from "../config.js";
import { fromJsonText, toJsonText } from "../db/columns.js";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError, invalidField, notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { assertJsonDepth, MAX_TIME_MS, sameJson, sameStringsAnyOrder } from "../json-checks.js";
import { recordExecution, type ExecutionOutcome } from "../memory/memory-commands.js";
import type { MemoryStore } from "../memory/memory-store.js";
import { ScheduleRuns } from "../schedules/schedule-runs.js";
import type { ScheduleStore } from "../schedules/schedule-store.js";
import { retryDelayMs, sameBackoff, storedBackoff } from "./retry-backoff.js";
import { storedBaggage, storedTrace, tracedBy } from "./trace-context.js";
import type { JsonValue } from "../json-types.js";
import type { Backoff, ScopedEnqueue } from "./task-schemas.js";
import type { TaskStatus } from "./task-status.js";
import { ranOutOfTime, releasedLease, runDeadline, type ClaimFilter, type DeadLetterRow, type DependencyOutcome, type DependentRow, type FailureMarks, type StoredError, type TaskRow, type TaskStore } from "./task-store.js";

/** What an enqueue answers: the task it added or found by its idempotencyKey, or (deduplicated) the task holding its dedupe key. */
export interface Enqueued {
  row: TaskRow;
  deduplicated: boolean;
  /** Whether this enqueue added `row` (false: found, by its idempotencyKey or its dedupe key). */
  added: boolean;
}

export interface TaskTransitionDeps {
  config: Config;
  tasks: TaskStore;
  events: EventStore;
  agents: AgentStore;
  memories: MemoryStore;
  schedules: ScheduleStore;
}

/** Who asks to settle (complete, fail, release, heartbeat) a task. */
export interface SettleRequest {
  taskId: string;
  /** The settling agent. Omitted only by the seed's REST routes: then the current lease is settled, whoever holds it. */
  agentId?: string | undefined;
  /** The claim's fencing token: when given, only that lease may be settled. */
  leaseToken?: number | undefined;
}

/** A fail (tasks.fail): its run's error, whether to retry, and when (retryAfterMs: instead of the task's backoff). */
export interface FailRequest extends SettleRequest {
  error: string;
  retry: boolean;
  retryAfterMs?: number | undefined;
  /** A checkpoint saved in the fail's write (null clears it); left out, none. */
  checkpoint?: JsonValue | undefined;
}

/** tasks.release: the holder gives the task back uncharged, claimable after `delayMs`, saving `checkpoint` in the same write. */
export interface ReleaseRequest extends SettleRequest {
  agentId: string;
  delayMs?: number | undefined;
  /** A checkpoint saved in the release's write (null clears it); left out, none. */
  checkpoint?: JsonValue | undefined;
}

/**
 * The most tasks one write makes ready or cancels for the dependencies it settles (each with its
 * event); the rest go a chunk a write. 30,000 tasks waiting on one held the writer 2.6 s.
 */
export const DEPENDENTS_PER_WRITE = 500;
/** Dependency rows a complete counts down for the cost of one task made ready (20,000 took 135 ms). */
const ROWS_PER_READY = 10;

/** How often an agent's heartbeat is refreshed by its work, at most (ms). */
const TOUCH_INTERVAL_MS = 1000;
const MAX_REMEMBERED_AGENTS = 10_000;

export class TaskTransitions {
  /** When this process last recorded each agent's sign of life (committed), in ms. */
  private readonly recentlySeen = new Map<string, number>();
  /** Each write's budget of dependents to settle (dependentsBudget), gone with the write. */
  private readonly budgets = new WeakMap<WriteContext, { left: number }>();

  /** Schedules' runs: the claim or cancel of a run's task enqueues the run after it, or with overlap "skip" its settle does (schedule-runs.ts). */
  readonly schedules: ScheduleRuns;

  constructor(private readonly d: TaskTransitionDeps) {
    this.schedules = new ScheduleRuns({
      schedules: d.schedules,
      tasks: d.tasks,
      maxJsonDepth: () => d.config.maxJsonDepth,
      events: d.events,
      insertTask: (ctx, request) => this.insertTask(ctx, request).row,
      cancelRow: (ctx, row, reason) => void this.cancelRow(ctx, row, reason),
      promoteRow: (ctx, row, promotedBy) => this.promoteRow(ctx, row, promotedBy),
    });
  }

  /**
   * `field` names the task in errors ("payload", "tasks[3].payload"); `inBatch`, the tasks an
   * enqueueMany inserted before this one (id → "tasks[i]"), to which this one is added if inserted;
   * `batchIds`, the ids of the batch's tasks before this one, in order (inserted or found by their
   * key), which its dependsOn may name as "tasks[i]".
   */
  insertTask(ctx: WriteContext, request: ScopedEnqueue & { scheduleId?: string }, field = "payload", inBatch?: Map<string, string>, batchIds?: readonly string[]): Enqueued {
    const scope = request.idempotencyScope ?? "";
    // A schedule's run carries the payload its set checked: a maxJsonDepth lowered since must not
    // fail the claim (or cancel) that enqueues it, nor every claim behind it.
    if (request.scheduleId === undefined) assertJsonDepth(field, request.payload, this.d.config.maxJsonDepth);
    const task = field.replace(/\.payload$/, "");
    const dependsField = task === "payload" ? "dependsOn" : `${task}.dependsOn`;
    const dependsOn = request.dependsOn === undefined ? undefined : batchTasksNamed(request.dependsOn, dependsField, batchIds);
    const definition = {
      queue: request.queue,
      payload: toJsonText(request.payload),
      priority: request.priority,
      capability: request.capability ?? null,
      targetAgentId: request.targetAgentId ?? null,
      maxAttempts: request.maxAttempts ?? this.d.config.maxAttempts,
      // The server's limit when it names none, kept with the task (0: none).
      maxRunMs: request.maxRunMs ?? (this.d.config.maxRunMs === 0 ? null : this.d.config.maxRunMs),
      backoff: request.backoff === undefined ? null : storedBackoff(request.backoff),
      // [] names none (a planner's list that came out empty): stored as no list.
      dependsOn: dependsOn === undefined || dependsOn.length === 0 ? null : JSON.stringify(dependsOn),
      cancelOnDependencyFailure: request.onDependencyFailure === "cancel" ? 1 : 0,
      dedupeKey: request.dedupe?.key ?? null,
      orderingKey: request.orderingKey ?? null,
      keyConcurrency: request.keyConcurrency ?? 1,
    };
    if (request.idempotencyKey !== undefined) {
      // An agent's key is looked for among its own, then among the shared ones: what admins and
      // versions before scoped keys stored (an enqueue sent again across the upgrade finds its
      // task). An agent creates only in its own scope, so none can take another's key first.
      const existing = this.d.tasks.findByIdempotencyKey(scope, request.idempotencyKey) ?? (scope === "" ? undefined : this.d.tasks.findByIdempotencyKey("", request.idempotencyKey));
      if (existing) {
        // What the client sent is compared, not what the server fills in: an identical request
        // sent again to a server with another maxAttempts or maxRunMs setting (or after it changed), or with
        // no runAt (now, when it was stored), or a delayMs (relative to when each was sent: never
        // compared), is the same task. runAt is the task's next run,
        // moved by retries, releases and requeues: it says what was asked only while the task
        // is as enqueued (never claimed, cancelled or requeued since: updatedAt is createdAt).
        const differs: string[] = (Object.keys(definition) as Array<keyof typeof definition>).filter((k) =>
          k === "payload"
            ? // A dedupe.replace gave it another enqueue's payload: what this one asked is not kept.
              existing.replacedAt === null && !sameJson(fromJsonText(existing.payload), request.payload)
            : k === "dependsOn"
              ? !sameDependencies(existing.dependsOn, dependsOn)
              : k === "backoff"
              ? !sameBackoff(existing.backoff, definition.backoff)
              : k === "maxAttempts"
              ? request.maxAttempts !== undefined && existing.maxAttempts !== request.maxAttempts
              : k === "maxRunMs"
              ? request.maxRunMs !== undefined && existing.maxRunMs !== request.maxRunMs
              : k === "priority"
              ? (existing.enqueuedPriority ?? existing.priority) !== definition.priority
              : existing[k] !== definition[k],
        ).map((k) => (k === "cancelOnDependencyFailure" ? "onDependencyFailure" : k === "dedupeKey" ? "dedupe.key" : k));
        const asEnqueued = Number(existing.updatedAt) === Number(existing.createdAt);
        if (request.runAt !== undefined && asEnqueued && Number(existing.runAt) !== request.runAt.getTime()) differs.push("runAt");
        // The expiry it was enqueued with (a requeue or tasks.update may have changed it since).
        if (request.expiresAt !== undefined && Number(existing.enqueuedExpiresAt ?? Number.NaN) !== request.expiresAt.getTime()) differs.push("expiresAt");
        if (differs.length > 0) {
          // A key used twice in one enqueueMany names no stored task: the batch is rolled back.
          const where = inBatch?.get(existing.id);
          throw new CoordinationError(
            "IDEMPOTENCY_MISMATCH",
            where === undefined
              ? `idempotencyKey "${request.idempotencyKey}" was used for task "${existing.id}" with a different ${differs.join(", ")}`
              : `idempotencyKey "${request.idempotencyKey}" is also ${where}'s in this batch, with a different ${differs.join(", ")}`,
            where === undefined ? { taskId: existing.id, differs } : { differs },
          );
        }
        return { row: existing, deduplicated: false, added: false };
      }
    }
    const prefix = task === "payload" ? "" : `${task}.`;
    if (request.dedupe !== undefined) {
      // After the idempotencyKey: an enqueue sent again finds its own task, not as a duplicate of it.
      const found = this.d.tasks.findByDedupeKey(request.queue, request.dedupe.key, request.dedupe.until === "settled", ctx.now);
      if (found !== undefined) return { row: this.countDuplicate(ctx, found, request, prefix), deduplicated: true, added: false };
    }
    const runAt = request.runAt?.getTime() ?? ctx.now + (request.delayMs ?? 0);
    const expiresAt = expiryOf(request, runAt, ctx.now, prefix);
    const waitingFor = dependsOn === undefined ? [] : this.unmetDependencies(dependsOn, dependsField, request.onDependencyFailure === "cancel");
    // Behind any task of its ordering key that has not settled: it runs after them.
    const inLine = definition.orderingKey !== null && this.d.tasks.behindLine(request.queue, definition.orderingKey, definition.keyConcurrency, Number.MAX_SAFE_INTEGER);
    // Not in `definition`: an enqueue sent again from another span (a retry) is the same task.
    const trace = storedTrace(request);
    const row = this.d.tasks.insert(
      { id: newId(), ...definition, ...trace, baggage: storedBaggage(request), runAt, expiresAt, idempotencyKey: request.idempotencyKey ?? null, idempotencyScope: scope, waitingFor, inLine, scheduleId: request.scheduleId ?? null },
      ctx.now,
    );
    inBatch?.set(row.id, task);
    this.d.events.appendSystem(ctx, "task.enqueued", {
      taskId: row.id,
      queue: row.queue,
      priority: row.priority,
      capability: row.capability,
      targetAgentId: row.targetAgentId,
      runAt: new Date(Number(row.runAt)).toISOString(),
      ...(row.status === "waiting" ? { waitingFor: waitingFor.length } : {}),
      ...(row.scheduleId === null ? {} : { scheduleId: row.scheduleId }),
      ...(row.expiresAt === null ? {} : { expiresAt: new Date(Number(row.expiresAt)).toISOString() }),
      ...(row.maxRunMs === null ? {} : { maxRunMs: row.maxRunMs }),
      ...(row.dedupeKey === null ? {} : { dedupeKey: row.dedupeKey }),
      ...(row.orderingKey === null ? {} : { orderingKey: row.orderingKey }),
      ...(row.orderingKey === null || row.keyConcurrency === 1 ? {} : { keyConcurrency: row.keyConcurrency }),
      ...tracedBy(row),
    });
    return { row, deduplicated: false, added: true };
  }

  /**
   * An enqueue (`request`) answered with `row`, the task holding its dedupe key: counted in the
   * task's duplicates, with a task.deduplicated event. With dedupe.replace (`row` waits to run) the
   * task takes the request's payload, and its due time and expiry when it gives them (a debounce:
   * each enqueue pushes the run back); a due time at or after the expiry it keeps is refused
   * (INVALID_INPUT naming runAt or delayMs under `prefix`), as tasks.update refuses it.
   */
  private countDuplicate(ctx: WriteContext, row: TaskRow, request: ScopedEnqueue, prefix: string): TaskRow {
    const runAtWas = Number(row.runAt);
    const expiryWas = row.expiresAt === null ? null : Number(row.expiresAt);
    let runAt = runAtWas;
    let expiresAt = expiryWas;
    let payload: string | null = null;
    if (request.dedupe?.replace === true) {
      // Replacing is changing the task (what tasks.update, an admin's, does): an agent credential
      // changes only what its agent enqueued, as it cancels only that. Checked before anything moves.
      if (request.replacesOwnOf !== undefined && row.idempotencyScope !== request.replacesOwnOf) {
        throw new CoordinationError(
          "FORBIDDEN",
          `${prefix === "" ? "" : `${prefix.slice(0, -1)}: `}task "${row.id}", which holds dedupe key ${JSON.stringify(row.dedupeKey)} in queue ${JSON.stringify(row.queue)}, was not enqueued by agent ${JSON.stringify(request.replacesOwnOf)}: an agent credential replaces only the tasks its agent enqueued (an admin's, any task); without replace, the enqueue is answered that task as it is`,
          { taskId: row.id },
        );
      }
      // A payload the same as the task's (as JSON, keys in any order) is no replacement, as in
      // tasks.update: replacedAt stays, and so does the checkpoint saved for it.
      payload = sameJson(fromJsonText(row.payload), request.payload) ? null : toJsonText(request.payload);
      if (request.runAt !== undefined || request.delayMs !== undefined) runAt = request.runAt?.getTime() ?? ctx.now + (request.delayMs ?? 0);
      if (request.expiresAt !== undefined || request.ttlMs !== undefined) expiresAt = expiryOf(request, runAt, ctx.now, prefix);
      else if (runAt !== runAtWas && expiresAt !== null && Math.max(runAt, ctx.now) >= expiresAt) {
        const iso = new Date(expiresAt).toISOString();
        throw invalidField(`${prefix}${request.delayMs === undefined ? "runAt" : "delayMs"}`, `${new Date(runAt).toISOString()} is not before task "${row.id}" (which holds dedupe key "${row.dedupeKey}") expires (its expiresAt, ${iso}): give expiresAt or ttlMs too`, { taskId: row.id, expiresAt: iso });
      }
    }
    const rescheduled = runAt === runAtWas && expiresAt === expiryWas ? row : this.d.tasks.reschedule(row, row.priority, runAt, ctx.now, expiresAt);
    const replaced = payload === null ? rescheduled : this.d.tasks.replacePayload(rescheduled, payload, ctx.now);
    const counted = this.d.tasks.countDuplicate(replaced);
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    this.d.events.appendSystem(ctx, "task.deduplicated", {
      taskId: row.id,
      queue: row.queue,
      dedupeKey: row.dedupeKey!,
      duplicates: counted.duplicates,
      status: row.status as TaskStatus,
      replaced: payload !== null,
      ...(payload !== null && row.checkpoint !== null ? { checkpointCleared: true as const } : {}),
      priority: row.priority,
      capability: row.capability,
      targetAgentId: row.targetAgentId,
      runAt: new Date(runAt).toISOString(),
      previousRunAt: new Date(runAtWas).toISOString(),
      ...(row.status === "waiting" ? { waitingFor: row.unmetDependencies } : {}),
      ...(expiresAt === expiryWas ? {} : { expiresAt: iso(expiresAt), previousExpiresAt: iso(expiryWas) }),
    });
    return counted;
  }

  /**
   * The seqs of the tasks in `ids` that have not completed: what a task depending on them waits
   * for. TASK_NOT_FOUND for an id no task has (never enqueued, or deleted by retention), and
   * INVALID_STATE for a cancelled one (a task waiting on it would never run), or a dead letter
   * when `cancelOnFailure`; otherwise a dead letter may still complete (requeued): it is waited
   * for. `field` names the list in errors. Reads each one's seq and status only (a dependency's
   * payload and result may be megabytes).
   */
  unmetDependencies(ids: readonly string[], field: string, cancelOnFailure: boolean): number[] {
    const unmet: number[] = [];
    ids.forEach((id, i) => {
      const dependency = this.d.tasks.stateOf(id);
      if (dependency === undefined) throw new CoordinationError("TASK_NOT_FOUND", `${field}[${i}]: task "${id}" not found (never enqueued, or deleted by retention)`, { id });
      if (neverRunsAfter(dependency.status, cancelOnFailure)) {
        const would = dependency.status === "cancelled" ? "would never run" : 'would be cancelled (onDependencyFailure "cancel")';
        throw new CoordinationError("INVALID_STATE", `${field}[${i}]: task "${id}" is ${dependency.status}, so a task depending on it ${would} (requeue it first)`, { id, status: dependency.status });
      }
      if (dependency.status !== "completed") unmet.push(dependency.seq);
    });
    return unmet;
  }

  /**
   * `dependency` ended: the tasks that named it go on (completed: those whose last dependency it
   * was become pending, each with its task.ready, an event that wakes waiting claims) or are
   * cancelled (cancelled, deleted by retention as a dead letter: each with its task.cancelled
   * naming why; dead_lettered: only those with onDependencyFailure "cancel"), and so are the
   * tasks waiting on those, to the end of the chain. At most DEPENDENTS_PER_WRITE tasks a write,
   * whatever the dependencies it settles (a sweep expiring 500 last-attempt leases, a retention
   * batch: the budget is the write's): what is left goes to dependency_work, for the background
   * job to go on with (TaskService.settleDependents). Whether all were settled.
   */
  settleDependents(ctx: WriteContext, dependency: Pick<TaskRow, "seq" | "id">, outcome: DependencyOutcome, reason?: string): boolean {
    const budget = this.dependentsBudget(ctx);
    if (budget.left <= 0) {
      // Spent by the dependencies settled before it in this write (a sweep's expiries, a retention batch).
      this.d.tasks.deferDependents(dependency.seq, dependency.id, outcome);
      return false;
    }
    if (outcome === "completed") {
      for (;;) {
        // A row whose task waits on for another dependency costs a tenth of one made ready (no
        // event): a chunk of budget.left rows at a time, a write counts down ~10 × the budget at most.
        const { ready, rows, more } = this.d.tasks.dependentsMet(dependency.seq, ctx.now, budget.left);
        budget.left -= ready.length + Math.ceil((rows - ready.length) / ROWS_PER_READY);
        for (const task of ready) this.ready(ctx, task, dependency.id);
        // A key's first in line that runs now may make room for those behind it (keyConcurrency
        // above 1): each it starts is one made ready, charged to the write's budget, and none past
        // it. A line left short of its room runs below it until the next settle of its key (the
        // head runs: its own settle comes), which starts as many as then fit.
        for (const task of ready) if (task.orderingKey !== null) budget.left -= this.nextInLine(ctx, task, Math.max(0, budget.left));
        if (!more) return true;
        if (budget.left <= 0) {
          this.d.tasks.deferDependents(dependency.seq, dependency.id, outcome);
          return false;
        }
      }
    }
    // Depth first; each entry a task whose waiting dependents are to be cancelled.
    const stack: Array<{ seq: number; id: string; outcome: DependencyOutcome }> = [{ seq: dependency.seq, id: dependency.id, outcome }];
    for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
      // The cancel's own reason is named for the tasks waiting on the task it cancelled (in this write).
      const because = next.seq === dependency.seq && reason !== undefined ? `: ${reason}` : "";
      const why = `its dependency "${next.id}" was ${next.outcome === "deleted" ? "deleted by retention as a dead letter" : next.outcome === "dead_lettered" ? "dead-lettered" : "cancelled"}${because}`;
      // A dead letter cancels only the tasks that asked for it; the others wait for its requeue.
      const waiting = this.d.tasks.waitingOn(next.seq, Math.max(1, budget.left), next.outcome === "dead_lettered");
      for (const task of waiting) {
        this.d.tasks.cancelWaiting(task.seq, why, ctx.now);
        this.d.events.appendSystem(ctx, "task.cancelled", { taskId: task.id, queue: task.queue, previousStatus: "waiting", agentId: null, reason: why, ...tracedBy(task) });
        // The tasks of its key it lets start (up to 1,000 when it headed its line) count as much.
        budget.left -= 1 + this.nextInLine(ctx, task);
        stack.push({ seq: task.seq, id: task.id, outcome: "cancelled" });
        // The rest of those waiting on `next` wait for the job (deferred below).
        if (budget.left <= 0) break;
      }
      if (budget.left <= 0) {
        // `next` may have more waiting on it; every entry left has.
        for (const left of [...stack, next]) this.d.tasks.deferDependents(left.seq, left.id, left.outcome);
        return false;
      }
    }
    return true;
  }

  /**
   * One write of the background job: goes on with the dependents writes left (dependency_work),
   * oldest first, DEPENDENTS_PER_WRITE tasks at most. A cancelled dependency requeued since is
   * dropped: what waits on it waits on. Whether any is left.
   */
  settleDeferredDependents(ctx: WriteContext): boolean {
    for (const work of this.d.tasks.deferredDependents(100)) {
      this.d.tasks.dependentsSettled(work.seq);
      // Requeued since (pending, waiting, claimed or even completed): what waits on it waits on.
      const state = this.d.tasks.stateOf(work.taskId);
      const endedAs = work.outcome === "cancelled" ? "cancelled" : work.outcome === "dead_lettered" ? "dead_letter" : undefined;
      if (endedAs !== undefined && state !== undefined && state.status !== endedAs) continue;
      if (!this.settleDependents(ctx, { seq: work.seq, id: work.taskId }, work.outcome)) return true;
    }
    return this.d.tasks.anyDeferredDependents();
  }

  /**
   * `row`, a task of an ordering key, settled (completed, dead-lettered, cancelled), or was made
   * pending by its last dependency's complete: the tasks of the key that wait longest run now, in
   * enqueue order, while fewer than the next one's keyConcurrency of the key run and it waits for
   * nothing else (TaskStore.releaseLine), each with its task.ready event (`after`: `row`), which
   * wakes the claims that could take it. A settle frees one place, so with one keyConcurrency for
   * the key one task at most; more when a task that waited for a smaller one (or for its
   * dependencies, holding the line behind it) goes. `limit` of them at most: only where one of the
   * key runs (a head just made pending), whose settle lets the rest start. Nothing for a task
   * without a key. How many it made pending.
   */
  nextInLine(ctx: WriteContext, row: Pick<TaskRow, "id" | "queue" | "orderingKey">, limit?: number): number {
    if (row.orderingKey === null) return 0;
    // At most the largest keyConcurrency (1,000), the line's running tasks counted once.
    const released = this.d.tasks.releaseLine(row.queue, row.orderingKey, ctx.now, limit);
    for (const next of released) this.ready(ctx, next, row.id, row.orderingKey);
    return released.length;
  }

  /**
   * The task.ready of `task`, a waiting task made pending in this write: by the complete of its last
   * dependency, `after`, or (`orderingKey` given) by the settle of `after`, the task of its key before it.
   */
  private ready(ctx: WriteContext, task: DependentRow, after: string, orderingKey?: string): void {
    this.d.events.appendSystem(ctx, "task.ready", {
      taskId: task.id,
      queue: task.queue,
      priority: task.priority,
      capability: task.capability,
      targetAgentId: task.targetAgentId,
      runAt: new Date(Number(task.runAt)).toISOString(),
      after,
      ...(orderingKey === undefined ? {} : { orderingKey }),
    });
  }

  /** What the write of `ctx` may still make ready or cancel of dependents (settleDependents): one budget a write. */
  private dependentsBudget(ctx: WriteContext): { left: number } {
    let budget = this.budgets.get(ctx);
    if (budget === undefined) this.budgets.set(ctx, (budget = { left: DEPENDENTS_PER_WRITE }));
    return budget;
  }

  /** Leases up to `limit` claimable tasks to `filter.agentId`, as many as fit in `budgetBytes` (the first always), each with its task.claimed event. */
  claimRows(ctx: WriteContext, filter: ClaimFilter, limit: number, leaseMs: number, budgetBytes: number, stolenFrom?: (row: TaskRow) => string | null, claimKey: string | null = null, after?: string): TaskRow[] {
    const rows = this.d.tasks.claim(filter, limit, budgetBytes, leaseMs, ctx.now, claimKey);
    for (const row of rows) {
      this.d.events.appendSystem(ctx, "task.claimed", {
        taskId: row.id,
        queue: row.queue,
        agentId: filter.agentId,
        attempt: row.attempts,
        leaseToken: row.leaseToken,
        // As leased: cut at the run's deadline when that comes first.
        leaseExpiresAt: new Date(Number(row.leaseExpiresAt)).toISOString(),
        ...(row.maxRunMs === null ? {} : { runDeadlineAt: new Date(runDeadline(row)!).toISOString() }),
        /** How long it was claimable before this claim (since enqueue, or since its retry or delay came due), in ms. */
        waitedMs: Math.max(0, ctx.now - Number(row.runAt)),
        ...(stolenFrom ? { stolenFrom: stolenFrom(row) } : {}),
        ...(after === undefined ? {} : { after }),
      });
      // A schedule's run began: the run after it is enqueued in the same write.
      if (row.scheduleId !== null) this.schedules.taken(ctx, row);
    }
    return rows;
  }

  /**
   * Cancels a waiting, pending or claimed task, or discards a dead letter, with its task.cancelled
   * event (`reason`, when given, kept as its lastError); what waits on it is cancelled with it.
   */
  cancelRow(ctx: WriteContext, row: TaskRow, reason: string | undefined, expired = false, cancelledBy: string | null = null): TaskRow {
    // A waiting task keeps its dependency rows: a requeue reads what it still waits for.
    const cancelled = this.d.tasks.cancel(row.seq, ctx.now, reason ?? null);
    // agentId: the holder whose lease this ends (a dead letter keeps its last holder's name, but no lease).
    this.d.events.appendSystem(ctx, "task.cancelled", {
      taskId: row.id,
      queue: row.queue,
      previousStatus: row.status,
      agentId: row.status === "claimed" ? row.leaseOwner : null,
      // The lease it ended: a worker stops the run of that lease, and not a later one of the task.
      ...(row.status === "claimed" ? { leaseToken: row.leaseToken } : {}),
      ...(reason === undefined ? {} : { reason }),
      ...(expired ? { expired: true as const } : {}),
      ...(cancelledBy === null ? {} : { cancelledBy }),
      ...tracedBy(row),
    });
    // What waits on it would never run; the next of its ordering key runs.
    this.settleDependents(ctx, row, "cancelled", reason);
    this.nextInLine(ctx, row);
    // A schedule's run that settled: one with overlap "skip" enqueues its next run now.
    if (row.scheduleId !== null) this.schedules.settled(ctx, row);
    return cancelled;
  }

  /**
   * A task that waits to run (pending or waiting) whose expiry came: cancelled as tasks.cancel does
   * (what waits on it with it; a schedule's run skipped, its next one enqueued), its lastError and
   * event saying it expired (`expired: true`).
   */
  expireRow(ctx: WriteContext, row: TaskRow): void {
    const at = new Date(Number(row.expiresAt)).toISOString();
    this.cancelRow(ctx, row, `expired: its expiresAt (${at}) passed before its next run started`, true);
    if (row.scheduleId !== null) this.schedules.skipped(ctx, row);
  }

  /**
   * A pending task not due yet (a delay, a retry's backoff, a schedule's next run) due now, with
   * its task.promoted event (which wakes the claims that could take it). A schedule's next run
   * promoted is an extra run now: the run after it stays as planned (ScheduleRuns.promoted). One
   * due already is returned as it is, nothing written: a repeat finds it so.
   */
  promoteRow(ctx: WriteContext, row: TaskRow, promotedBy: string | null): TaskRow {
    if (Number(row.runAt) <= ctx.now) return row;
    const promoted = this.d.tasks.reschedule(row, row.priority, ctx.now, ctx.now);
    this.d.events.appendSystem(ctx, "task.promoted", {
      taskId: row.id,
      queue: row.queue,
      priority: row.priority,
      capability: row.capability,
      targetAgentId: row.targetAgentId,
      runAt: new Date(ctx.now).toISOString(),
      previousRunAt: new Date(Number(row.runAt)).toISOString(),
      promotedBy,
    });
    if (row.scheduleId !== null) this.schedules.promoted(ctx, row);
    return promoted;
  }

  /**
   * A task that waits to run (pending or waiting) with another priority, time to fall due and expiry
   * (tasks.update; `runAt` as rescheduledRunAt gives it), payload (its checkpoint cleared with the
   * old one) or its checkpoint cleared, with its task.updated event: a pending one due by it wakes
   * the claims that could take it, one due later sets their timers. Nothing changed is returned as
   * it is, nothing written: a repeat finds it so.
   */
  updateRow(
    ctx: WriteContext,
    row: TaskRow,
    change: { priority?: number | undefined; runAt: number; expiresAt: number | null; payload?: string | undefined; clearCheckpoint?: boolean },
    updatedBy: string | null,
  ): TaskRow {
    const runAtWas = Number(row.runAt);
    const priority = change.priority ?? row.priority;
    const runAt = change.runAt;
    const expiryWas = row.expiresAt === null ? null : Number(row.expiresAt);
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    // A payload the same as the task's (as JSON, keys in any order) changes nothing.
    const payload = change.payload === undefined || sameJson(fromJsonText(row.payload), fromJsonText(change.payload)) ? undefined : change.payload;
    const retimed = priority !== row.priority || runAt !== runAtWas || change.expiresAt !== expiryWas;
    // A replaced payload clears the checkpoint with it (replacePayload); a checkpoint asked cleared when none is kept changes nothing.
    const checkpointCleared = row.checkpoint !== null && (payload !== undefined || change.clearCheckpoint === true);
    if (!retimed && payload === undefined && !checkpointCleared) return row;
    const rescheduled = retimed ? this.d.tasks.reschedule(row, priority, runAt, ctx.now, change.expiresAt) : row;
    const replaced = payload === undefined ? rescheduled : this.d.tasks.replacePayload(rescheduled, payload, ctx.now);
    const updated = checkpointCleared && payload === undefined ? this.d.tasks.clearCheckpointEdited(replaced.seq, ctx.now) : replaced;
    this.d.events.appendSystem(ctx, "task.updated", {
      taskId: row.id,
      queue: row.queue,
      priority,
      previousPriority: row.priority,
      capability: row.capability,
      targetAgentId: row.targetAgentId,
      runAt: new Date(runAt).toISOString(),
      previousRunAt: new Date(runAtWas).toISOString(),
      ...(row.status === "waiting" ? { waitingFor: row.unmetDependencies } : {}),
      ...(change.expiresAt === expiryWas ? {} : { expiresAt: iso(change.expiresAt), previousExpiresAt: iso(expiryWas) }),
      ...(payload === undefined ? {} : { payloadReplaced: true as const }),
      ...(checkpointCleared ? { checkpointCleared: true as const } : {}),
      updatedBy,
    });
    return updated;
  }

  /**
   * Back to pending at `runAt` without charging the attempt, with its event. Events that make a
   * task claimable carry what a waiting claimer needs to know whether it could take it.
   */
  releaseRow(ctx: WriteContext, row: TaskRow, runAt: number, why: { byHolder: true; reason?: undefined } | { reason: string }): TaskRow {
    const { reason } = why;
    // Its holder's own release is kept, for a repeat of it to find (releasedLease).
    const releasedBy = "byHolder" in why && row.leaseOwner !== null ? releasedLease(row.leaseToken, row.leaseOwner) : null;
    const released = this.d.tasks.release(row.seq, runAt, ctx.now, releasedBy);
    this.d.events.appendSystem(ctx, "task.released", {
      taskId: row.id,
      queue: row.queue,
      agentId: row.leaseOwner,
      capability: row.capability,
      targetAgentId: row.targetAgentId,
      runAt: new Date(runAt).toISOString(),
      ...(reason ? { reason } : {}),
    });
    return released;
  }

  /**
   * A dead letter or cancelled task back to pending now, attempts reset (its error history kept),
   * with its event. A task cancelled while it waited goes back to waiting for what it still waits
   * for (its dependency rows: those completed since are gone); refused while one of those is
   * cancelled or was deleted by retention (a dead letter), since it would never run.
   */
  requeueRow(ctx: WriteContext, row: TaskRow, clearCheckpoint = false): TaskRow {
    const waitingFor: number[] = [];
    if (row.status === "cancelled" && row.dependsOn !== null) {
      for (const { dependsOnSeq, status } of this.d.tasks.stillAwaited(row.seq)) {
        if (status === null || neverRunsAfter(status, row.cancelOnDependencyFailure === 1)) {
          const why = status === null ? "was deleted by retention" : status === "cancelled" ? "is cancelled (requeue it first)" : 'is dead-lettered (requeue it first: onDependencyFailure is "cancel")';
          throw new CoordinationError("INVALID_STATE", `task "${row.id}" cannot be requeued: a task it depends on ${why}, so it would never run`, { status: row.status });
        }
        if (status !== "completed") waitingFor.push(dependsOnSeq);
      }
      // The rows of dependencies completed since go (all of them when none is left to wait for).
      this.d.tasks.keepDependencies(row.seq, waitingFor);
    }
    // Cleared before the requeue's own UPDATE, whose RETURNING then reads the row without it.
    const checkpointCleared = clearCheckpoint && this.d.tasks.clearCheckpoint(row.seq);
    const inLine = this.behindLine(row);
    const requeued = this.d.tasks.requeue(row.seq, ctx.now, waitingFor, inLine);
    this.requeued(ctx, row, waitingFor.length > 0 || inLine ? waitingFor.length : undefined, checkpointCleared);
    return requeued;
  }

  /** The same for a bulk requeue's row: nothing read back. */
  requeueQuietly(ctx: WriteContext, row: DeadLetterRow, clearCheckpoint = false): void {
    const checkpointCleared = clearCheckpoint && this.d.tasks.clearCheckpoint(row.seq);
    const inLine = this.behindLine(row);
    this.d.tasks.requeueQuietly(row.seq, ctx.now, inLine);
    this.requeued(ctx, row, inLine ? 0 : undefined, checkpointCleared);
  }

  /**
   * Whether `row`, requeued, waits for its turn in its ordering key's line: a task of the key runs,
   * or one enqueued before it waits. It takes its place by when it was enqueued, not the back of the line.
   */
  private behindLine(row: Pick<TaskRow, "seq" | "queue" | "orderingKey" | "keyConcurrency">): boolean {
    return row.orderingKey !== null && this.d.tasks.behindLine(row.queue, row.orderingKey, row.keyConcurrency, row.seq);
  }

  /** `waitingFor`: how many dependencies it waits for, when it waits (for them, or for its turn: 0 then); undefined: pending. */
  private requeued(ctx: WriteContext, row: Pick<TaskRow, "id" | "queue" | "status" | "capability" | "targetAgentId" | "orderingKey">, waitingFor?: number, checkpointCleared = false): void {
    this.d.events.appendSystem(ctx, "task.requeued", {
      taskId: row.id,
      queue: row.queue,
      previousStatus: row.status,
      capability: row.capability,
      targetAgentId: row.targetAgentId,
      ...(waitingFor === undefined ? {} : { waitingFor }),
      ...(row.orderingKey === null ? {} : { orderingKey: row.orderingKey }),
      ...(checkpointCleared ? { checkpointCleared: true as const } : {}),
    });
  }

  /**
   * Frees up to `limit` claims an agent holds (it went offline or deregistered), charging each
   * run; how many. A write frees a bounded number: an agent holding 20,000 leases freed them in
   * one write that held every other write 3.5-4.9 s.
   */
  releaseClaimsOf(ctx: WriteContext, agentId: string, reason: string, limit: number): number {
    const held = this.d.tasks.claimsHeldBy(agentId, limit);
    for (const row of held) this.expireClaim(ctx, row, reason);
    return held.length;
  }

  /** Frees up to `limit` forfeit claims (those agents' offline writes left); how many. */
  releaseForfeited(ctx: WriteContext, limit: number): number {
    const held = this.d.tasks.forfeitedClaims(limit);
    for (const row of held) this.expireClaim(ctx, row, `agent ${row.leaseOwner} went offline`);
    return held.length;
  }

  /** The execution record of a run that ended: pre-execution memory for the next runs. */
  recordExecution(ctx: WriteContext, task: TaskRow, outcome: ExecutionOutcome, run: TaskRow = task): void {
    // An operator whose agents use no context can spare the writer the record (config.ts).
    if (this.d.config.recordExecutions) recordExecution(this.d.memories, ctx, task, outcome, run);
  }

  /**
   * A run that ended without a verdict (lease expired, agent gone): retry now, or dead-letter at
   * the limit (or at its expiry). One whose lease ran out at its run's deadline (maxRunMs) timed
   * out, whoever ends it (the sweeper, a steal, its agent's offline release): its reason and event
   * say so. It is retried at once all the same, as any lease that ran out (a steal takes it over
   * in the same write).
   */
  expireClaim(ctx: WriteContext, row: TaskRow, reason: string): TaskRow {
    const timedOut = ranOutOfTime(row, ctx.now);
    const why = expiryReason(row, reason, ctx.now);
    this.d.events.appendSystem(ctx, "task.lease_expired", {
      taskId: row.id,
      queue: row.queue,
      agentId: row.leaseOwner,
      attempt: row.attempts,
      reason: why,
      ...(timedOut ? { timedOut: true as const, maxRunMs: row.maxRunMs! } : {}),
    });
    return this.recordFailedRun(ctx, row, why, row.leaseOwner, row.attempts < row.maxAttempts ? ctx.now : null, { expired: true, timedOut });
  }

  /**
   * When a failed run of `row` is retried: at `retryAt`, or never (null) when attempts ran out
   * (`retryAt` null) or when the retry would start at or after the task's expiry, which no run
   * may: then the run's failure is its last, and it is dead-lettered with its own error (a
   * cancel as expired later would say it never started, and hide what went wrong).
   */
  retryBeforeExpiry(row: TaskRow, retryAt: number | null): number | null {
    return retryAt !== null && row.expiresAt !== null && retryAt >= Number(row.expiresAt) ? null : retryAt;
  }

  /**
   * `retryAt`: when the task is retried as asked (its backoff, the fail's retryAfterMs), null for
   * no retry; one at or after its expiry is none (retryBeforeExpiry), and the dead letter says so
   * (`expired` in its event, `pastExpiry` in its errorHistory entry, for a repeat of the fail).
   * `marks`: the wait its fail asked for (`retryAfterMs`, kept in the run's errorHistory entry: a
   * repeat of that fail is compared with it), or how the server ended it (`expired`, `timedOut`).
   */
  recordFailedRun(ctx: WriteContext, row: TaskRow, error: string, agentId: string | null, asked: number | null, marks: Omit<FailureMarks, "pastExpiry"> = {}): TaskRow {
    const retryAt = this.retryBeforeExpiry(row, asked);
    const pastExpiry = asked !== null && retryAt === null;
    const retryAfterMs = marks.retryAfterMs;
    const updated = this.d.tasks.recordFailure(row, error, agentId, retryAt, ctx.now, copyWith(marks, { pastExpiry }));
    if (retryAt === null) {
      this.d.events.appendSystem(ctx, "task.dead_lettered", { taskId: row.id, queue: row.queue, attempts: row.attempts, error, ...(pastExpiry ? { expired: true as const } : {}), ...tracedBy(row) });
      this.recordExecution(ctx, updated, "dead_letter", row);
      // The tasks waiting on it that asked to be cancelled then (onDependencyFailure "cancel").
      this.settleDependents(ctx, row, "dead_lettered");
      // The next of its ordering key runs: a dead letter holds its key's line no more.
      this.nextInLine(ctx, row);
      // A schedule's run that settled: one with overlap "skip" enqueues its next run now.
      if (row.scheduleId !== null) this.schedules.settled(ctx, row);
    } else {
      this.d.events.appendSystem(ctx, "task.retried", {
        taskId: row.id,
        queue: row.queue,
        attempt: row.attempts,
        runAt: new Date(retryAt).toISOString(),
        delayMs: retryAt - ctx.now,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        capability: row.capability,
        targetAgentId: row.targetAgentId,
      });
      this.recordExecution(ctx, updated, "failed", row);
    }
    return updated;
  }

  /**
   * Every agent that claims, heartbeats or settles is in the registry, so health, offline release
   * and stealing cover it: an unknown one is registered here (capabilities only if given), with
   * its agent.registered event; a known one has its heartbeat refreshed.
   */
  noteAgent(ctx: WriteContext, agentId: string, capabilities?: readonly string[] | "registered"): void {
    // Health is judged in seconds (agentStaleMs): one sign of life a second is plenty, and it spares
    // two statements on most claims and settles of a busy agent. A quarter of agentStaleMs at most:
    // with health judged in under a few seconds, a working agent was seen stale, then offline.
    const seen = this.recentlySeen.get(agentId);
    if (seen !== undefined && ctx.now - seen < Math.min(TOUCH_INTERVAL_MS, this.d.config.agentStaleMs / 4)) {
      // Remembered from this process's own writes: still so unless another process wrote since
      // (it may have deregistered the agent: a claim must then register it again, or the agent
      // would hold a task no offline check or steal can reach).
      if (!this.d.agents.changedElsewhere()) return;
      this.recentlySeen.clear();
    }
    const caps = capabilities === undefined || capabilities === "registered" ? [] : [...new Set(capabilities)].sort();
    if (this.d.agents.registerIfAbsent(agentId, caps, ctx.now)) {
      this.d.events.appendSystem(ctx, "agent.registered", { agentId, capabilities: caps, health: "healthy", implicit: true });
    } else {
      this.d.agents.touch(agentId, ctx.now);
    }
    ctx.afterCommit(() => this.seen(agentId, ctx.now));
  }

  /** Forgets that an agent was seen (it deregistered): the next sign of life registers it again. */
  forgetAgent(agentId: string): void {
    this.recentlySeen.delete(agentId);
  }

  private seen(agentId: string, at: number): void {
    setNewest(this.recentlySeen, agentId, at, MAX_REMEMBERED_AGENTS);
  }

  /**
   * The task.checkpointed event of a checkpoint (JSON text; null: cleared) its holder `agentId`
   * saved on the task of `row` (TaskStore.extendLease wrote it): its size, not its value (up to
   * 64 KiB an event, and the task has it).
   */
  /**
   * Saves the checkpoint a settle carries (tasks.fail, tasks.release: JSON, null clears it) on the
   * task its caller holds, with its task.checkpointed event, before the settle's own write: the
   * row as saved. Left out (undefined), the row as it is.
   */
  settleCheckpoint(ctx: WriteContext, held: TaskRow, checkpoint: JsonValue | undefined): TaskRow {
    if (checkpoint === undefined) return held;
    const text = checkpoint === null ? null : toJsonText(checkpoint);
    const saved = this.d.tasks.saveCheckpoint(held.seq, text, ctx.now);
    this.checkpointed(ctx, saved, held.leaseOwner ?? "", text);
    return saved;
  }

  checkpointed(ctx: WriteContext, row: TaskRow, agentId: string, checkpoint: string | null): void {
    this.d.events.appendSystem(ctx, "task.checkpointed", {
      taskId: row.id,
      queue: row.queue,
      agentId,
      attempt: row.attempts,
      leaseToken: row.leaseToken,
      bytes: checkpoint === null ? 0 : Buffer.byteLength(checkpoint),
      cleared: checkpoint === null,
    });
  }

  heldTask(request: SettleRequest): TaskRow {
    return this.assertHeld(this.findTask(request.taskId), request);
  }

  /** The row, if the caller holds its current lease; LEASE_CONFLICT otherwise. */
  assertHeld(row: TaskRow, request: SettleRequest): TaskRow {
    if (row.status === "claimed" && this.isHolder(row, request)) return row;
    throw this.leaseConflict(row, request);
  }

  /** LEASE_CONFLICT, saying who holds the task instead (or what state it is in). */
  leaseConflict(row: TaskRow, request: SettleRequest): CoordinationError {
    const details = { status: row.status, leaseOwner: row.leaseOwner, leaseToken: row.leaseToken };
    const caller = request.agentId === undefined ? "the caller" : `agent "${request.agentId}"`;
    if (row.status === "claimed" && request.leaseToken !== undefined && request.leaseToken !== row.leaseToken && (request.agentId ?? row.leaseOwner) === row.leaseOwner) {
      // The same agent, an older (or unknown) lease: say which lease it sent and which one holds.
      return new CoordinationError(
        "LEASE_CONFLICT",
        `lease ${request.leaseToken} of ${caller} on task "${request.taskId}" is not the current one: the task is claimed by "${row.leaseOwner}" under lease ${row.leaseToken}`,
        details,
      );
    }
    // The caller's own lease (named by its agent or its token: an anonymous caller's is nobody's)
    // ended without a complete (its fail, its lease running out, its run's time limit, its agent
    // seen offline): say how, rather than only what the task is now. One its time limit ended
    // says when that was, as a heartbeat refused then does.
    const ended = request.agentId === undefined && request.leaseToken === undefined ? undefined : ownLastFailure(row, request);
    if (ended !== undefined) {
      const deadline = runDeadline(row);
      const overRun = ended.timedOut === true && deadline !== null ? { runDeadlineAt: new Date(deadline).toISOString() } : {};
      return new CoordinationError("LEASE_CONFLICT", `lease ${row.leaseToken} of ${caller} on task "${request.taskId}" has ended (${endedText(ended)}) and the task is ${row.status}`, copyWith(details, overRun));
    }
    const holder = row.status === "claimed" ? `claimed by "${row.leaseOwner}" (lease ${row.leaseToken})` : row.status;
    return new CoordinationError("LEASE_CONFLICT", `${caller} does not hold the lease on task "${request.taskId}": it is ${holder}`, details);
  }

  /** Fencing: the same agent (when named) and the same lease (when a token is given). */
  isHolder(row: TaskRow, request: SettleRequest): boolean {
    return (
      (request.agentId === undefined || row.leaseOwner === request.agentId) &&
      (request.leaseToken === undefined || request.leaseToken === row.leaseToken)
    );
  }

  findTask(taskId: string): TaskRow {
    const row = this.d.tasks.findById(taskId);
    if (!row) throw notFound("TASK_NOT_FOUND", taskId);
    return row;
  }

  /** How long `row`'s failed run (its attempts-th) waits before a retry, in ms: its own backoff, or the server's (retry-backoff.ts). */
  retryDelay(row: TaskRow): number {
    return retryDelayMs(row.backoff === null ? null : (JSON.parse(row.backoff) as Backoff), row.attempts, this.d.config);
  }
}

/**
 * Whether a task waiting on a dependency in `status` would never run: a cancelled one never
 * completes, and a dead letter cancels it when it asked so (onDependencyFailure "cancel"). What an
 * enqueue naming it and a requeue of a task still waiting on it refuse.
 */
function neverRunsAfter(status: TaskStatus, cancelOnFailure: boolean): boolean {
  return status === "cancelled" || (cancelOnFailure && status === "dead_letter");
}

/** Whether a stored dependsOn (JSON text, or null) names the same tasks as a request's, in any order. */
function sameDependencies(stored: string | null, requested: readonly string[] | undefined): boolean {
  const a = stored === null ? [] : (JSON.parse(stored) as string[]);
  return sameStringsAnyOrder(a, requested ?? []);
}

/** A dependency named by its place in the batch (enqueueMany): "tasks[2]". A task id never has this shape (ids are UUIDs). */
const BATCH_TASK = /^tasks\[(0|[1-9]\d*)\]$/;
/** What a reference mistyped looks like ("tasks[01]", "tasks[ 1]", "TASKS[0]"): no id, so a 400 saying so, not a 404. */
const LIKE_BATCH_TASK = /^tasks\[/i;

/**
 * `ids` with each "tasks[i]" replaced by the id of the batch's task i, which must come before this
 * one (so no chain loops); INVALID_INPUT naming `field[k]` otherwise, or outside a batch, or when
 * two entries come to the same task.
 */
function batchTasksNamed(ids: readonly string[], field: string, batchIds: readonly string[] | undefined): string[] {
  const named = ids.map((id, k) => {
    const place = BATCH_TASK.exec(id);
    if (place === null) {
      if (LIKE_BATCH_TASK.test(id)) throw invalidField(`${field}[${k}]`, `"${id}" is not a reference to a task of the batch: write "tasks[i]", i the task's index (0, 1, 2…)`);
      return id;
    }
    if (batchIds === undefined) throw invalidField(`${field}[${k}]`, `"${id}" names a task of a batch, which only tasks.enqueueMany's tasks may do: give the task's id`);
    const at = Number(place[1]);
    if (at >= batchIds.length) throw invalidField(`${field}[${k}]`, `"${id}" is not a task before this one in the batch: a task may wait only for the batch's tasks before it`);
    return batchIds[at]!;
  });
  named.forEach((id, k) => {
    if (named.indexOf(id) !== k) throw invalidField(`${field}[${k}]`, `names task "${id}" twice`);
  });
  return named;
}

/**
 * The runAt a tasks.update gives a task due at `current` (Unix ms) when asked for `requested`
 * (none: unchanged): a time passed is now; a task due already asked to be due by now keeps its
 * own, so a repeat of "now" sent later changes nothing.
 */
export function rescheduledRunAt(current: number, requested: number | undefined, now: number): number {
  if (requested === undefined || (requested <= now && current <= now)) return current;
  return Math.max(requested, now);
}

/**
 * When a task enqueued by `request`, due at `runAt`, expires (Unix ms; null: never): its expiresAt,
 * or ttlMs after it falls due (runAt, or `now` when that passed). An expiry at or before that is
 * refused (refuseExpiryByDue, naming `prefix`expiresAt). Checked for a new task only: an enqueue
 * sent again after its expiry passed still finds its task.
 */
function expiryOf(request: { expiresAt?: Date | undefined; ttlMs?: number | undefined }, runAt: number, now: number, prefix: string): number | null {
  // Past the last time an answer may carry (a runAt near the year 9999, a schedule's run there):
  // that time, so the answer can be sent back as it is.
  if (request.ttlMs !== undefined) return Math.min(Math.max(runAt, now) + request.ttlMs, MAX_TIME_MS);
  if (request.expiresAt === undefined) return null;
  refuseExpiryByDue(request.expiresAt.getTime(), runAt, now, `${prefix}expiresAt`);
  return request.expiresAt.getTime();
}

/**
 * INVALID_INPUT naming `field` when `expiresAt` (Unix ms) is at or before the time a task due at
 * `runAt` falls due (runAt, or `now` when that passed): it would never run. An enqueue's expiry
 * and tasks.update's new one are refused so.
 */
export function refuseExpiryByDue(expiresAt: number, runAt: number, now: number, field: string): void {
  const due = Math.max(runAt, now);
  if (expiresAt > due) return;
  throw invalidField(field, `${new Date(expiresAt).toISOString()} is not after the task falls due (${new Date(due).toISOString()}${due === now ? ", now" : ""}): it would never run`);
}

/**
 * The newest failed run of `row`, when it is the caller's lease's and no run of the task began
 * since (not claimed after it: a claim and a release would bring the attempt count back to the
 * same number; a requeue resets it): pending for its retry, or a dead letter.
 */
export function ownLastFailure(row: TaskRow, request: SettleRequest): StoredError | undefined {
  if (row.status !== "pending" && row.status !== "dead_letter") return undefined;
  const last = (JSON.parse(row.errorHistory) as StoredError[]).at(-1);
  // No claim since it (a claim and a release would bring the attempt count back to the same
  // number): its lease is still the task's last (an entry older than leaseToken in the history:
  // claimed no later than it failed, which a claim in the same write batch passes); an
  // operator's change since (tasks.update, tasks.promote) moves updatedAt, not claimedAt.
  if (last === undefined || last.attempt !== row.attempts) return undefined;
  if (last.leaseToken !== undefined ? last.leaseToken !== row.leaseToken : row.claimedAt !== null && Number(row.claimedAt) > last.at) return undefined;
  if (request.agentId !== undefined && last.agentId !== request.agentId) return undefined;
  if (request.leaseToken !== undefined && request.leaseToken !== row.leaseToken) return undefined;
  return last;
}

/**
 * What ends the run of `row` whose lease is taken from it at `now` for `reason` (it ran out, a
 * steal, its agent gone): its time limit when its lease ran out there (ranOutOfTime), whoever
 * ends it. The lastError and errorHistory entry expireClaim writes; a steal weighs its answer by it.
 */
export function expiryReason(row: TaskRow, reason: string, now: number): string {
  return ranOutOfTime(row, now) ? `its run reached its time limit (maxRunMs ${row.maxRunMs} ms; held by ${row.leaseOwner})` : reason;
}

/** How a lease's run ended, as a refusal says it: its recorded error (the server's own when it ended the run). */
export const endedText = (ended: StoredError): string => `its last error: ${JSON.stringify(ended.error.slice(0, 200))}`;
