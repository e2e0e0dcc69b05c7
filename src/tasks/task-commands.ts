// The task queue's writes, as the database writer thread runs them: each command is one write of
// a group-committed batch (src/db/writer.ts), composed of the transitions in task-transitions.ts,
// so a state change and its system event commit together. TaskService (on the event loop) calls
// them by name and adds what needs no database: long-polling, recall, delivery confirmation.
import type { AgentStore } from "../agents/agent-store.js";
import type { AgentCordonStore } from "../agents/agent-cordon-store.js";
import type { FailureStreaks } from "../agents/agent-cordons.js";
import type { HealthCutoffs } from "../agents/health-cutoffs.js";
import { fromJsonText, toJsonText, undeliverableReason } from "../db/columns.js";
import type { RecallRequest } from "../db/thread/recall-relay.js";
import { recallSubject } from "../memory/memory-recall.js";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError, invalidField, notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { assertJsonDepth, sameJson } from "../json-checks.js";
import { taskWith, type CancelManyRequest, type CancelManyResult, type CancelRequest, type ClaimRequest, type EnqueuedTask, type ScopedEnqueue, type RequeueManyRequest, type RequeueManyResult, type SettledTask, type Task, type UpdateRequest, type RequeueRequest } from "./task-schemas.js";
import { waitsToRun } from "./task-status.js";
import { claimKeyOf } from "./claim-keys.js";
import { claimFilterOf, historyAfterFailure, pastRunDeadline, ranOutOfTime, releasedLease, runDeadline, taskAnswerBytes, taskRowWith, toTask, type ClaimFilter, type RateOutlook, type StoredError, type TaskRow, type TaskStore } from "./task-store.js";
import { endedText, expiryReason, ownLastFailure, refuseExpiryByDue, rescheduledRunAt, type Enqueued, type FailRequest, type ReleaseRequest, type SettleRequest, type TaskTransitions } from "./task-transitions.js";
import { leaseBounds, offlineShiftMs, type LockWaitGrace } from "./lock-wait-grace.js";
import { tracedBy } from "./trace-context.js";
import { copyWith } from "../copy-with.js";
import type { JsonValue } from "../json-types.js";

/** The bytes of task rows one bulk requeue writes again, at most (at least one task). */
const REQUEUE_PAGE_BYTES = 4 * 1024 * 1024;
/** The dead letters one bulk requeue looks at, at most (and the tasks a bulk cancel walks): its filters' walk is bounded (a key lookup each). */
const REQUEUE_WINDOW = 5000;
/** The bytes of task rows a bulk cancel or a bulk requeue by time reads through to their state or end, at most (at least one row). */
const BULK_LOOK_BYTES = 16 * 1024 * 1024;

export interface TaskCommandDeps {
  tasks: TaskStore;
  events: EventStore;
  agents: AgentStore;
  /** Cordoned agents: their claims and steals take nothing (agents/agent-cordons.ts). */
  cordons: AgentCordonStore;
  /** Failed runs in a row, by agent: the quarantine (agents/agent-cordons.ts). */
  streaks: FailureStreaks;
  transitions: TaskTransitions;
  /** When an agent counts as offline (agents/health-cutoffs.ts): steal takes from those. */
  healthCutoffs: (now: number) => HealthCutoffs;
  /** What a lease check allows for a heartbeat waiting for another process's lock (lock-wait-grace.ts). */
  lockWaitGrace: () => LockWaitGrace;
  /** Asks the reader thread for the context of leased tasks, sent before the batch commits (recall-relay.ts). */
  recall: (request: RecallRequest) => void;
  /** The soft bound on one answer: a claim's tasks and their context share it. */
  maxResponseBytes: number;
  /** The deepest nesting a payload may have (a tasks.update's payload, as an enqueue's). */
  maxJsonDepth: number;
}

/**
 * What a claim or a steal answers: the leased tasks; whether their context is being recalled
 * under the call's ticket (else they have none); when nothing was claimable, when the next
 * delayed task the claimer could take falls due, and which full limited queues hold tasks it
 * could take (queue-limit-store.ts); and, for a claim, when each rate-limited queue holding tasks
 * it could take has room for a claim again (queue-rate-store.ts): parked claims wait for that.
 */
export interface Handout {
  leased: Leased[];
  recalling: boolean;
  nextRunAt: number | null;
  /** Set when the claimer is cordoned, so it took nothing: when the cordon lifts by itself (null: when uncordoned). */
  cordonedUntil?: number | null;
  fullQueues?: string[];
  rates?: RateOutlook[];
}

/** One claim attempt, as the event loop asks for it (TaskService.claim). */
export type ClaimArgs = ContextWanted & { request: ClaimRequest; limit: number; leaseMs: number; noteAgent: boolean };

/** What a claim or a steal is asked with: how many memories each leased task gets, and the ticket its context comes back under. */
export interface ContextWanted {
  contextLimit: number;
  recallTicket: number;
}

/** A leased task as a claim hands it out, with the room it takes in the answer (answer-budget.ts). */
export interface Leased {
  task: Task;
  bytes: number;
}

/**
 * An enqueue's answer: the task, and whether it was another enqueue's (its dedupe key's, or its
 * own idempotencyKey's). `addedNow`: the task was added by this very call (an enqueueMany's entry
 * naming the key of an entry before it), so the entry is no replay of an earlier call.
 */
const enqueuedTask = ({ row, deduplicated, added }: Enqueued, addedNow = false): EnqueuedTask => {
  // The fields added to the task built for the answer: a second copy of every field (taskWith) cost
  // enqueues ~5% in-process (bench/RESULTS.md, 2026-12-05).
  const task = toTask(row) as EnqueuedTask;
  task.deduplicated = deduplicated;
  task.replayed = !added && !deduplicated && !addedNow;
  return task;
};

/** The settle answer: the task, and the lease the settle ended (whoever held it). */
const settled = (row: TaskRow, lease: TaskRow = row): SettledTask =>
  taskWith(toTask(row), {
    // A claimed task always has its leaseOwner; completed and dead-lettered ones keep it.
    settledLease: { agentId: lease.leaseOwner!, leaseToken: lease.leaseToken },
  });

export function taskCommands(d: TaskCommandDeps) {
  const t = d.transitions;

  /**
   * Claims like claimRows, and checks each answer before the commit: a task whose stored payload
   * cannot be delivered (UNDELIVERABLE_VALUE, REFUSED_KEY_VALUE) is dead-lettered, saying why,
   * instead of being handed out and failing after the lease was taken; then the next one is claimed.
   * Each round picks within what is left of maxResponseBytes after `answerBytes` (what else the
   * answer carries: a complete-and-claim's completed task) and the tasks taken before it.
   */
  const claimDeliverable = (ctx: WriteContext, filter: ClaimFilter, limit: number, leaseMs: number, claimKey: string | null, after: string | undefined, answerBytes: number): Leased[] => {
    const claimed: Leased[] = [];
    let room = d.maxResponseBytes - answerBytes;
    for (;;) {
      let poisoned = 0;
      for (const row of t.claimRows(ctx, filter, limit - claimed.length, leaseMs, room, undefined, claimKey, after)) {
        const task = toTask(row);
        const undeliverable = undeliverableReason(task.payload);
        if (undeliverable === null) {
          const bytes = taskAnswerBytes(row);
          claimed.push({ task, bytes });
          room -= bytes;
        } else {
          poisoned++;
          t.recordFailedRun(ctx, row, `the stored payload cannot be delivered: ${undeliverable}`, row.leaseOwner, null);
        }
      }
      // Only a round that dead-lettered something leaves room to claim again.
      if (poisoned === 0 || claimed.length === limit || (claimed.length > 0 && room <= 0)) return claimed;
    }
  };

  /**
   * The leased tasks; their context, `contextLimit` memories each, recalled on the reader thread
   * while this batch commits (asked for just before COMMIT, and only if this write succeeded).
   * `answerBytes`: what else the answer carries beside the tasks and their context.
   */
  const handOut = (ctx: WriteContext, leased: Leased[], wanted: ContextWanted, answerBytes = 0): Handout => {
    if (leased.length === 0 || wanted.contextLimit <= 0) return { leased, recalling: false, nextRunAt: null };
    const budgetBytes = d.maxResponseBytes - answerBytes - leased.reduce((sum, l) => sum + l.bytes, 0);
    const request = { ticket: wanted.recallTicket, tasks: leased.map((l) => recallSubject(l.task)), limit: wanted.contextLimit, budgetBytes };
    ctx.beforeCommit(() => d.recall(request));
    return { leased, recalling: true, nextRunAt: null };
  };

  /**
   * One claim attempt. `noteAgent` registers or refreshes the claimer even when nothing is
   * claimable (the first attempt of a long-poll). When nothing is, says when the next delayed
   * task the claimer could take falls due, so a long-poll can wake for it. `claimKey`: the key of
   * the call (claim-keys.ts), kept on the leases it takes. A call whose key still holds leases of
   * this agent (the same call sent again, its answer lost) hands those out again, renewed as a
   * heartbeat renews them, instead of leasing other tasks: no event, no attempt charged; each
   * lease counts one more answer, so a lost one gives it back only if no other answer handed it
   * out (releaseUndelivered).
   */
  /**
   * The leases a keyed call (a claim, a steal) took that its agent still holds, at most `limit`,
   * handed out once more, as its repeat answers them: counted and renewed (answeredAgain), no
   * event, no attempt; the agent noted as alive. Empty when it holds none under that key.
   */
  const answerAgain = (ctx: WriteContext, agentId: string, key: string, limit: number, leaseMs: number): Leased[] => {
    // As many as this call may carry (a single claim's answer carries one): those it does not carry
    // are not its answer's. A run past its time limit is not handed out again: it is over (as a
    // heartbeat is told), and the sweeper ends it; with none left, the call claims anew.
    const held = d.tasks.heldUnder(agentId, key).filter((row) => !pastRunDeadline(row, ctx.now)).slice(0, limit);
    if (held.length > 0) t.noteAgent(ctx, agentId);
    return held.map((row) => {
      const renewed = d.tasks.answeredAgain(row, leaseMs, ctx.now);
      return { task: toTask(renewed), bytes: taskAnswerBytes(renewed) };
    });
  };

  /** The task of `lease` while still claimed under that very lease; undefined once it moved on (settled, expired, stolen). */
  const stillHeld = (lease: { id: string; leaseToken: number }): TaskRow | undefined => {
    const current = d.tasks.findById(lease.id);
    return current?.status === "claimed" && current.leaseToken === lease.leaseToken ? current : undefined;
  };

  /** `after`: the task a complete-and-claim completed in this write (its task.claimed says so). */
  const claim = (ctx: WriteContext, args: ClaimArgs, answerBytes = 0, claimKey: string | null = null, mayRepeat = true, after?: string): Handout => {
    if (claimKey !== null && mayRepeat) {
      const again = answerAgain(ctx, args.request.agentId, claimKey, args.limit, args.leaseMs);
      if (again.length > 0) return handOut(ctx, again, args, answerBytes);
    }
    const filter = claimFilterOf(args.request);
    // A cordoned agent takes nothing, whatever is claimable; it is alive all the same.
    const cordonedUntil = d.cordons.cordonedUntil(args.request.agentId, ctx.now);
    if (cordonedUntil !== undefined) {
      if (args.noteAgent) t.noteAgent(ctx, args.request.agentId, filter.capabilities);
      return { leased: [], recalling: false, nextRunAt: null, cordonedUntil };
    }
    const leased = claimDeliverable(ctx, filter, args.limit, args.leaseMs, claimKey, after, answerBytes);
    if (args.noteAgent || leased.length > 0) t.noteAgent(ctx, args.request.agentId, filter.capabilities);
    if (leased.length > 0) {
      const handout = handOut(ctx, leased, args, answerBytes);
      // Of the rate-limited queues it took from: room left for the next parked claim, or when there is.
      const rates = d.tasks.rateOutlook(filter, ctx.now, leased);
      if (rates.length > 0) handout.rates = rates;
      return handout;
    }
    const handout: Handout = { leased, recalling: false, nextRunAt: d.tasks.nextRunAt(filter, ctx.now), fullQueues: d.tasks.fullQueuesFor(filter, ctx.now) };
    const rates = d.tasks.rateOutlook(filter, ctx.now);
    if (rates.length > 0) handout.rates = rates;
    return handout;
  };

  /**
   * Completes the task under the caller's lease. Sent again (its first answer lost), it gets the
   * same answer, as long as it carries the same result: a different result for a task already
   * completed is a conflict, so a stale or forged anonymous complete can never pass as the
   * rightful holder's. With the answer, the room it takes (answer-budget.ts), and whether it was
   * such a repeat.
   */
  const complete = (ctx: WriteContext, request: SettleRequest & { result?: unknown }): { task: SettledTask; bytes: number; repeated: boolean } => {
    // The usual case in one statement: the task is claimed under the caller's lease.
    const row = d.tasks.completeHeld(request.taskId, request.agentId ?? null, request.leaseToken ?? null, request.result, ctx.now);
    if (row === undefined) {
      const current = t.findTask(request.taskId);
      if (current.status === "completed" && t.isHolder(current, request)) {
        if (sameJson(fromJsonText(current.result), request.result ?? null)) return { task: settled(current), bytes: taskAnswerBytes(current), repeated: true };
        throw new CoordinationError(
          "INVALID_STATE",
          `task "${request.taskId}" was already completed under lease ${current.leaseToken} of agent "${current.leaseOwner}" with a different result`,
          { status: current.status, leaseOwner: current.leaseOwner, leaseToken: current.leaseToken },
        );
      }
      throw t.leaseConflict(current, request);
    }
    if (request.agentId !== undefined) t.noteAgent(ctx, request.agentId);
    d.events.appendSystem(ctx, "task.completed", {
      taskId: row.id,
      queue: row.queue,
      agentId: row.leaseOwner,
      attempt: row.attempts,
      leaseToken: row.leaseToken,
      ...ranFor(row, ctx.now),
      ...(request.agentId === undefined ? { anonymous: true } : {}),
      ...tracedBy(row),
    });
    t.recordExecution(ctx, row, "completed");
    t.settleDependents(ctx, row, "completed");
    t.nextInLine(ctx, row);
    // A schedule's run that settled: one with overlap "skip" enqueues its next run now.
    if (row.scheduleId !== null) t.schedules.settled(ctx, row);
    d.streaks.completed(ctx, row.leaseOwner);
    return { task: settled(row), bytes: taskAnswerBytes(row), repeated: false };
  };

  return {
    "tasks.enqueue": (ctx: WriteContext, request: ScopedEnqueue): EnqueuedTask => enqueuedTask(t.insertTask(ctx, request)),

    /** All or nothing: one invalid task rolls the whole batch back. */
    "tasks.enqueueMany": (ctx: WriteContext, requests: ScopedEnqueue[]): EnqueuedTask[] => {
      // The tasks this batch inserted ("tasks[i]" by id): a key used twice in it names no stored task.
      const inBatch = new Map<string, string>();
      // Each task's id, in order: a later task's dependsOn may name one as "tasks[i]".
      const ids: string[] = [];
      // What the tasks found (by an idempotencyKey or a dedupe key) weigh in the answer: the ones
      // added weigh what the request carried, but a thousand entries naming one key would answer
      // its stored task a thousand times (a payload of a megabyte: a gigabyte). The first found is
      // answered whatever it weighs, as tasks.enqueue answers it (a soft bound, as the lists'): a
      // batch of one, resent after its answer was lost, must find its task.
      let foundBytes = 0;
      let found = 0;
      return requests.map((request, i) => {
        const enqueued = t.insertTask(ctx, request, `tasks[${i}].payload`, inBatch, ids);
        ids.push(enqueued.row.id);
        if (!enqueued.added) {
          found += 1;
          foundBytes += taskAnswerBytes(enqueued.row);
          if (found > 1 && foundBytes > d.maxResponseBytes) {
            throw invalidField(
              "tasks",
              `the tasks stored already that answer tasks[0..${i}] (by their idempotencyKey or dedupe key) weigh more than the server's maxResponseBytes (${d.maxResponseBytes} bytes) in the answer: send fewer at a time, each key once`,
              { index: i },
            );
          }
        }
        return enqueuedTask(enqueued, !enqueued.added && inBatch.has(enqueued.row.id));
      });
    },

    "tasks.claim": (ctx: WriteContext, args: ClaimArgs): Handout =>
      claim(ctx, args, 0, args.request.idempotencyKey === undefined ? null : claimKeyOf.claim(args.request.idempotencyKey)),

    /**
     * Renews the lease by `leaseMs`, or when none is named by the length it was claimed or last
     * renewed with; never past `maxLeaseMs` (a lease granted before the setting was lowered), nor
     * past the run's deadline (maxRunMs): at or after it, LEASE_CONFLICT. With `progress`, the
     * run's report (task.progress); with `checkpoint`, what every later run is handed
     * (task.checkpointed), in the same write.
     */
    "tasks.heartbeat": (
      ctx: WriteContext,
      args: SettleRequest & { agentId: string; leaseMs: number | undefined; defaultLeaseMs: number; maxLeaseMs: number; progress?: JsonValue | undefined; checkpoint?: JsonValue | undefined },
    ): Task => {
      const row = t.heldTask(args);
      // A run past its time limit is not renewed: the sweeper ends it (its lease ends there).
      refuseOverRun(row, ctx.now, "no heartbeat renews it");
      t.noteAgent(ctx, args.agentId);
      const leaseMs = Math.min(args.leaseMs ?? row.leaseMs ?? args.defaultLeaseMs, args.maxLeaseMs);
      // A report and a checkpoint are proofs of life too: they renew the lease, in the same row
      // write. Acknowledged, the checkpoint is what the next run is handed.
      const progress = args.progress === undefined ? undefined : toJsonText(args.progress);
      const checkpoint = args.checkpoint === undefined ? undefined : args.checkpoint === null ? null : toJsonText(args.checkpoint);
      const renewed = d.tasks.extendLease(row.seq, leaseMs, ctx.now, { progress, checkpoint });
      if (checkpoint !== undefined) t.checkpointed(ctx, renewed, args.agentId, checkpoint);
      if (args.progress === undefined) return toTask(renewed);
      d.events.appendSystem(ctx, "task.progress", {
        taskId: renewed.id,
        queue: renewed.queue,
        agentId: args.agentId,
        attempt: renewed.attempts,
        leaseToken: renewed.leaseToken,
        progress: args.progress,
      });
      return toTask(renewed);
    },

    "tasks.complete": (ctx: WriteContext, request: SettleRequest & { result?: unknown }): SettledTask => complete(ctx, request).task,

    /**
     * Completes the caller's task and claims its next one in the same write: one round trip per
     * task for a worker instead of two. The claim runs only if the complete succeeded (a conflict
     * claims nothing); it takes a task at once or answers none, without waiting. The same call
     * sent again (its answer lost) gets the same answer while the agent still holds what the
     * first one leased: those leases, not another task. Once they ended (settled, expired, given
     * back because the answer never arrived), it claims anew.
     */
    "tasks.completeAndClaim": (
      ctx: WriteContext,
      args: ContextWanted & { complete: SettleRequest & { result?: unknown }; claim: Omit<ClaimArgs, keyof ContextWanted> },
    ): Handout & { completed: SettledTask } => {
      const completed = complete(ctx, args.complete);
      // The completed task shares the answer's byte budget with the next one and its context. Its
      // id keys the next leases: only a repeat of this complete can find them (see claim), so a
      // first complete does not look.
      const key = claimKeyOf.completeAndClaim(completed.task.id);
      return { completed: completed.task, ...claim(ctx, copyWith(args.claim, { contextLimit: args.contextLimit, recallTicket: args.recallTicket }), completed.bytes, key, completed.repeated, completed.task.id) };
    },

    /**
     * Fails the run under the caller's lease: back to pending after its backoff, or to the
     * dead-letter queue (retry false, or no attempt left). Sent again (its first answer lost), it
     * gets the same answer while the task is still as that fail left it (see repeatedFail).
     */
    "tasks.fail": (ctx: WriteContext, request: FailRequest): SettledTask => {
      const current = t.findTask(request.taskId);
      if (current.status !== "claimed") {
        const repeated = repeatedFail(current, request);
        if (repeated instanceof CoordinationError) throw repeated;
        if (repeated !== undefined) return repeated;
      }
      const held = t.settleCheckpoint(ctx, t.assertHeld(current, request), request.checkpoint);
      if (request.agentId !== undefined) t.noteAgent(ctx, request.agentId);
      const asked = request.retry && held.attempts < held.maxAttempts ? ctx.now + (request.retryAfterMs ?? t.retryDelay(held)) : null;
      const retryAt = t.retryBeforeExpiry(held, asked);
      d.events.appendSystem(ctx, "task.failed", {
        taskId: held.id,
        queue: held.queue,
        agentId: held.leaseOwner,
        attempt: held.attempts,
        leaseToken: held.leaseToken,
        ...ranFor(held, ctx.now),
        error: request.error,
        willRetry: retryAt !== null,
        ...(request.agentId === undefined ? { anonymous: true } : {}),
      });
      const failed = settled(t.recordFailedRun(ctx, held, request.error, held.leaseOwner, asked, { retryAfterMs: request.retryAfterMs }), held);
      // The agent's own fails count, not a fail sent for it (the seed's routes, an orchestrator).
      if (request.agentId !== undefined) d.streaks.failed(ctx, request.agentId, held.id, request.error);
      return failed;
    },

    /**
     * Gives the task back uncharged. Sent again (its first answer lost), it gets the same answer
     * while the task is pending under the lease that release ended (no claim since): the task as
     * it is now, under that lease.
     */
    "tasks.release": (ctx: WriteContext, request: ReleaseRequest): SettledTask => {
      const row = t.findTask(request.taskId);
      const repeated = isRepeatedRelease(row, request);
      const holding = repeated ? row : t.assertHeld(row, request);
      // Given back uncharged, a run past its limit would run again for ever without one charged:
      // the sweeper ends it, charged, as its time limit says.
      if (!repeated) refuseOverRun(holding, ctx.now, "it is not given back uncharged");
      // A repeat saves nothing: the first saved it, and a later run may have saved another since.
      const held = repeated ? holding : t.settleCheckpoint(ctx, holding, request.checkpoint);
      t.noteAgent(ctx, request.agentId);
      if (repeated) {
        // The release it repeats set runAt to its time (updatedAt, which no transition changes
        // while the task waits under that lease) plus its delay: another delay is another call.
        // An operator's change since (tasks.update, tasks.promote: editedAt is updatedAt) moved
        // both: the delay it asked for is no longer known, and the task as it is now answers.
        const firstDelayMs = Number(row.runAt) - Number(row.updatedAt);
        const editedSince = row.editedAt !== null && Number(row.editedAt) === Number(row.updatedAt);
        if (!editedSince && firstDelayMs !== (request.delayMs ?? 0)) {
          throw new CoordinationError(
            "LEASE_CONFLICT",
            `lease ${row.leaseToken} of agent "${request.agentId}" on task "${row.id}" was released already, with delayMs ${firstDelayMs}; this release differs (delayMs ${request.delayMs ?? 0}), and changes nothing`,
            { status: row.status, leaseOwner: null, leaseToken: row.leaseToken },
          );
        }
        return settled(row, taskRowWith(row, { leaseOwner: request.agentId }));
      }
      return settled(t.releaseRow(ctx, held, ctx.now + (request.delayMs ?? 0), { byHolder: true }), held);
    },

    /**
     * Stops a waiting, pending or claimed task (its holder can no longer settle it), or discards a
     * dead letter: handled, out of the dead-letter queue, its errors kept. A completed task stays
     * so. The tasks waiting on it are cancelled with it, and theirs in turn.
     */
    "tasks.cancel": (ctx: WriteContext, { request, byAgent }: { request: CancelRequest; byAgent: string | null }): Task => {
      const { taskId, reason } = request;
      const row = t.findTask(taskId);
      // What an agent enqueued under its credential carries its id (the key scope); a task an
      // admin, a schedule or another agent enqueued does not.
      if (byAgent !== null && row.idempotencyScope !== byAgent) {
        throw new CoordinationError("FORBIDDEN", `task "${taskId}" was not enqueued by agent ${JSON.stringify(byAgent)}: an agent credential cancels only the tasks its agent enqueued (an admin's, any task)`);
      }
      if (row.status === "cancelled") return toTask(row);
      if (row.status === "completed") {
        throw new CoordinationError("INVALID_STATE", `task "${taskId}" is ${row.status} and cannot be cancelled`);
      }
      const cancelled = t.cancelRow(ctx, row, reason, false, byAgent);
      // A schedule's next run cancelled: that run is skipped, the one after it enqueued.
      if (row.scheduleId !== null) t.schedules.skipped(ctx, row);
      return toTask(cancelled);
    },

    /**
     * One write of the expiry job: tasks that wait to run whose expiry came by this write's time,
     * soonest first, each cancelled as expired (TaskTransitions.expireRow): a page of them as the
     * bulk calls take one (takePage: up to `limit`, and REQUEUE_PAGE_BYTES of rows). Whether more
     * may be left.
     */
    "tasks.expire": (ctx: WriteContext, { limit }: { limit: number }): { expired: number; more: boolean } => {
      const due = d.tasks.expiredSeqs(ctx.now, limit);
      const { taken, stoppedAt } = takePage(due, limit, false, (seq) => seq, () => true);
      let expired = 0;
      for (const seq of taken) {
        // Read now: one waiting on a task expired before it in this write was cancelled with it.
        const row = d.tasks.findBySeq(seq);
        if (row === undefined || !waitsToRun(row.status)) continue;
        t.expireRow(ctx, row);
        expired++;
      }
      return { expired, more: stoppedAt !== null || due.length === limit };
    },

    /** One write of the dependency job: what earlier writes left of dependents to settle (TaskTransitions.settleDeferredDependents). Whether any is left. */
    "tasks.settleDependents": (ctx: WriteContext, _: undefined): boolean => t.settleDeferredDependents(ctx),

    /**
     * Makes a pending task that is not due yet (a delay, a retry's backoff, a schedule's next run)
     * due now. One due already is answered as it is (a repeat finds it so); any other state is
     * INVALID_STATE.
     */
    "tasks.promote": (ctx: WriteContext, { taskId, promotedBy }: { taskId: string; promotedBy: string | null }): Task => {
      const row = t.findTask(taskId);
      if (row.status !== "pending") {
        const why =
          row.status === "waiting" ? waitingFor(row) : row.status === "claimed" ? "it runs already" : row.status === "completed" ? "it has completed" : "it has settled: requeue brings it back";
        throw new CoordinationError("INVALID_STATE", `task "${taskId}" is ${row.status}: only a pending task can be promoted (${why})`, { status: row.status });
      }
      return toTask(t.promoteRow(ctx, row, promotedBy));
    },

    /**
     * Gives a task that waits to run (pending, or waiting for its dependencies or its turn) another priority,
     * time to fall due and expiry (INVALID_INPUT when it would fall due at or after its expiry).
     * Nothing changed answers it as it is; a schedule's planned next run keeps the time its
     * schedule planned; any other state is INVALID_STATE.
     */
    "tasks.update": (ctx: WriteContext, { taskId, priority, runAt, delayMs, expiresAt, payload, checkpoint, updatedBy }: UpdateRequest & { updatedBy: string | null }): Task => {
      const row = t.findTask(taskId);
      if (!waitsToRun(row.status)) {
        const why = row.status === "claimed" ? "it runs already" : row.status === "completed" ? "it has completed" : "it has settled: requeue brings it back";
        throw new CoordinationError("INVALID_STATE", `task "${taskId}" is ${row.status}: only a task that waits to run (pending or waiting) can be updated (${why})`, { status: row.status });
      }
      const at = rescheduledRunAt(Number(row.runAt), runAt?.getTime() ?? (delayMs === undefined ? undefined : ctx.now + delayMs), ctx.now);
      // A retry or a release of a run is no time its schedule planned: only the planned next run is.
      if (at !== Number(row.runAt) && t.schedules.plansRun(row)) {
        throw new CoordinationError(
          "INVALID_STATE",
          `task "${taskId}" is the next run of schedule "${row.scheduleId}": it falls due when the schedule planned it (schedules.trigger runs it now; schedules.set plans other times); its priority may be changed`,
          { status: row.status, scheduleId: row.scheduleId },
        );
      }
      const expiryWas = row.expiresAt === null ? null : Number(row.expiresAt);
      const expiry = expiresAt === undefined ? expiryWas : expiresAt === null ? null : expiresAt.getTime();
      if (expiry !== null && expiry !== expiryWas) refuseExpiryByDue(expiry, at, ctx.now, "expiresAt");
      if (at !== Number(row.runAt) && expiry !== null && at >= expiry) {
        const iso = new Date(expiry).toISOString();
        throw invalidField(delayMs === undefined ? "runAt" : "delayMs", `${new Date(at).toISOString()} is not before the task expires (its expiresAt, ${iso}): it would never run`, { expiresAt: iso });
      }
      if (payload !== undefined) assertJsonDepth("payload", payload, d.maxJsonDepth);
      return toTask(
        t.updateRow(ctx, row, { priority, runAt: at, expiresAt: expiry, payload: payload === undefined ? undefined : toJsonText(payload), clearCheckpoint: checkpoint === null }, updatedBy),
      );
    },

    /** `checkpoint: null`: its checkpoint is cleared in the same write, before any claim can hand it out. */
    "tasks.requeue": (ctx: WriteContext, { taskId, checkpoint }: RequeueRequest): Task => {
      const row = t.findTask(taskId);
      if (row.status !== "dead_letter" && row.status !== "cancelled") {
        throw new CoordinationError("INVALID_STATE", `task "${taskId}" is ${row.status}; only dead_letter or cancelled tasks can be requeued`);
      }
      return toTask(t.requeueRow(ctx, row, checkpoint === null));
    },

    /**
     * Brings back dead letters, oldest first, each as `requeue` does, in one
     * write (all of them or none): up to `limit`, and rows of REQUEUE_PAGE_BYTES at most (SQLite
     * writes a row again whole, payload included: a page of 1,000 tasks of 900 KB held every other
     * write 15 s), among the next REQUEUE_WINDOW dead letters after the cursor (a filter that
     * matches few is looked for a window at a time), reading BULK_LOOK_BYTES of their rows at most
     * to find when each died (that follows the payload in a row). An operator's answer to an outage that
     * sent a queue's tasks to the dead-letter queue; a script pages with nextCursor until it is null.
     */
    "tasks.requeueMany": (ctx: WriteContext, request: RequeueManyRequest): RequeueManyResult => {
      const window = d.tasks.deadLetters(request.queue, request.cursor === undefined ? 0 : Number(request.cursor), REQUEUE_WINDOW);
      const after = request.finishedAfter?.getTime() ?? Number.NEGATIVE_INFINITY;
      const before = request.finishedBefore?.getTime() ?? Number.POSITIVE_INFINITY;
      const byTime = request.finishedAfter !== undefined || request.finishedBefore !== undefined;
      // When it died follows its payload in the row: a time filter reads rows through.
      const { taken, stoppedAt } = takePage(window, request.limit, byTime, (seq) => d.tasks.deadLetterAt(seq), (row) => {
        const finishedAt = Number(row.finishedAt);
        return finishedAt >= after && finishedAt < before;
      });
      /** Where the next call resumes, unless this one saw the whole rest. */
      const through = stoppedAt ?? (window.length === REQUEUE_WINDOW ? window.at(-1)!.seq : null);
      for (const row of taken) t.requeueQuietly(ctx, row, request.checkpoint === null);
      return { requeued: taken.map((row) => row.id), nextCursor: through === null ? null : String(through) };
    },

    /**
     * Cancels a queue's tasks in bulk (an operator's purge: what a bad deploy enqueued, a backlog
     * no longer wanted), oldest first, as tasks.cancel does each: its task.cancelled event, the
     * tasks waiting on it cancelled with it, a schedule's pending run skipped (its next one
     * enqueued). One write a call: up to `limit` tasks and REQUEUE_PAGE_BYTES of their rows, among
     * the next REQUEUE_WINDOW tasks of any queue after the cursor, reading BULK_LOOK_BYTES of the
     * queue's rows at most to find them (the tasks waiting on them go as a single cancel's cascade
     * does: up to 500 a write, the rest by the dependency job); only tasks there were when the first
     * call ran (its cursor carries the newest seq then), so the runs a cancel enqueues are never
     * reached.
     */
    "tasks.cancelMany": (ctx: WriteContext, { request, byAgent }: { request: CancelManyRequest; byAgent: string | null }): CancelManyResult => {
      const [afterSeq, untilSeq] = request.cursor === undefined ? [0, d.tasks.lastSeq()] : request.cursor.split("-").map(Number) as [number, number];
      // One agent's enqueues are a range of their own index, not a walk of every task.
      const window = request.enqueuedBy === undefined ? d.tasks.queueWindow(request.queue, afterSeq, untilSeq, REQUEUE_WINDOW) : d.tasks.enqueuerWindow(request.enqueuedBy, request.queue, afterSeq, untilSeq, REQUEUE_WINDOW);
      const after = request.createdAfter?.getTime() ?? Number.NEGATIVE_INFINITY;
      const before = request.createdBefore?.getTime() ?? Number.POSITIVE_INFINITY;
      const wanted: ReadonlySet<string> = new Set(request.statuses);
      // A task's state follows its payload: looking at it reads the row through (settled tasks of
      // the queue with large payloads, say).
      const { taken, stoppedAt } = takePage(window.rows, request.limit, true, (seq) => d.tasks.stateAt(seq), (row) => {
        const createdAt = Number(row.createdAt);
        return wanted.has(row.status) && createdAt >= after && createdAt < before;
      });
      const through = stoppedAt ?? window.through;
      const cancelled: string[] = [];
      for (const { id } of taken) {
        // Read whole now: one waiting on a task cancelled before it in this call was cancelled with it.
        const row = t.findTask(id);
        if (!wanted.has(row.status)) continue;
        t.cancelRow(ctx, row, request.reason, false, byAgent);
        if (row.scheduleId !== null) t.schedules.skipped(ctx, row);
        cancelled.push(id);
      }
      return { cancelled, nextCursor: through === null ? null : `${through}-${untilSeq}` };
    },

    /**
     * Work stealing: takes over claims whose lease expired or whose holder is offline, without
     * waiting for the sweeper. The abandoned run is charged like an expiry (a task that keeps
     * killing its agents still reaches the dead-letter queue); the thief gets a fresh lease.
     * Stealing from an agent the registry has never heard of is AGENT_NOT_FOUND.
     */
    "tasks.steal": (
      ctx: WriteContext,
      request: ContextWanted & { agentId: string; fromAgentId?: string | undefined; limit: number; leaseMs: number; capabilities?: string[] | undefined; idempotencyKey?: string | undefined; asOf: number },
    ): Handout => {
      // Sent again (its answer lost): the leases it took that the thief still holds, as a keyed
      // claim's; looked for first, as the agent it stole from may be gone since.
      const key = request.idempotencyKey === undefined ? null : claimKeyOf.steal(request.idempotencyKey);
      const again = key === null ? [] : answerAgain(ctx, request.agentId, key, request.limit, request.leaseMs);
      if (again.length > 0) return handOut(ctx, again, request);
      if (request.fromAgentId !== undefined && !d.agents.get(request.fromAgentId)) throw notFound("AGENT_NOT_FOUND", request.fromAgentId);
      const filter = claimFilterOf(request);
      t.noteAgent(ctx, request.agentId, filter.capabilities);
      // A cordoned thief takes nothing: the victims stay where they are (the lease sweeper and
      // offline checks take them back), not charged for a steal that hands them to no one.
      const cordonedUntil = d.cordons.cordonedUntil(request.agentId, ctx.now);
      if (cordonedUntil !== undefined) {
        const none = handOut(ctx, [], request);
        none.cordonedUntil = cordonedUntil;
        return none;
      }
      // Expired or offline as of when the steal was asked for, allowing for a heartbeat still
      // waiting for the lock in another process (see tasks.expireLeases).
      const grace = d.lockWaitGrace();
      const { offlineBefore } = d.healthCutoffs(request.asOf - offlineShiftMs(grace));
      // A run at its last attempt is dead-lettered, not stolen: its error must not say it went to the thief.
      const stolen = (victim: TaskRow) => victim.attempts < victim.maxAttempts;
      // As expireClaim records it (a run that reached its time limit says so instead).
      const reason = (victim: TaskRow) =>
        expiryReason(
          victim,
          stolen(victim)
            ? `stolen by ${request.agentId} from ${victim.leaseOwner}`
            : `${victim.leaseOwner} stopped renewing its lease at the last attempt: dead-lettered by ${request.agentId}'s steal, not stolen`,
          ctx.now,
        );
      // Each weighed as the answer will carry it: the thief's lease, no progress, the steal in its
      // lastError and errorHistory (victims weighed as they were made answers past maxResponseBytes);
      // one dead-lettered is not in the answer.
      const answerBytes = (victim: TaskRow) =>
        stolen(victim)
          ? taskAnswerBytes(
              taskRowWith(victim, { leaseOwner: request.agentId, progress: null, lastError: reason(victim), errorHistory: historyAfterFailure(victim, reason(victim), victim.leaseOwner, ctx.now, { expired: true, timedOut: ranOutOfTime(victim, ctx.now) }) }),
            )
          : 0;
      const victims = d.tasks.stealable(filter, leaseBounds(request.asOf, grace), offlineBefore, request.fromAgentId ?? null, request.limit, d.maxResponseBytes, answerBytes, ctx.now);
      for (const victim of victims) t.expireClaim(ctx, victim, reason(victim));
      if (victims.length === 0) return handOut(ctx, [], request);
      const stolenFrom = (row: TaskRow) => victims.find((v) => v.seq === row.seq)?.leaseOwner ?? null;
      const leased = t
        // Weighed when chosen, and their leases ended: all are taken, or one would go back to the queue, charged, for no one.
        .claimRows(ctx, copyWith(filter, { onlySeqs: victims.map((v) => v.seq) }), request.limit, request.leaseMs, Number.POSITIVE_INFINITY, stolenFrom, key)
        .map((row) => ({ task: toTask(row), bytes: taskAnswerBytes(row) }));
      return handOut(ctx, leased, request);
    },

    /**
     * Returns claims whose lease had expired at `asOf` (when the sweep was asked for) to the
     * queue, charging the attempt. Not the commit time: a sweep that waited for the write lock
     * (another process held it) must not expire a lease whose holder's heartbeat, sent in time,
     * waits in the same queue. Within one process that ordering is exact. Across processes it is
     * not, and a lease another process may renew counts as expired only the lock-wait grace after
     * its end (lock-wait-grace.ts). Run by the lease sweeper. `sharedGraceMs`: how far the
     * sweeper's look on the reader may lag asOf (the grace while the file is shared, else 0).
     */
    "tasks.expireLeases": (ctx: WriteContext, args: { batchSize: number; asOf: number }): { expired: number; sharedGraceMs: number } => {
      const grace = d.lockWaitGrace();
      const expired = d.tasks.expiredClaims(leaseBounds(args.asOf, grace), args.batchSize);
      for (const row of expired) t.expireClaim(ctx, row, `lease expired (held by ${row.leaseOwner})`);
      return { expired: expired.length, sharedGraceMs: offlineShiftMs(grace) };
    },

    /**
     * The compensation for a claim whose answer never reached the claimer: each task still held
     * under that very lease goes back to pending with no attempt charged; its task.released event
     * says why. A lease that moved on meanwhile (settled, expired, stolen) is left alone, and so is
     * one another answer handed out too (a keyed call and its repeat: claim-keys.ts).
     */
    "tasks.releaseUndelivered": (ctx: WriteContext, claimed: Array<{ id: string; leaseToken: number }>): number => {
      let released = 0;
      for (const lease of claimed) {
        const current = stillHeld(lease);
        if (current === undefined) continue;
        // Another answer (a repeat of the call, or the call it repeated) handed this lease out too, and may have arrived.
        if (d.tasks.answerLost(current)) continue;
        t.releaseRow(ctx, current, ctx.now, { reason: "the claimer never received the task (its connection closed before the answer was delivered)" });
        released++;
      }
      return released;
    },

    /**
     * A claim's context could not be recalled (the claim's answer is an error, or a
     * complete-and-claim's next task is left out): each task still held under the lease it was
     * given goes back to pending, uncharged, as an undelivered one does. A lease another answer
     * handed out too (a keyed call sent again, its first answer lost) cannot go back: that answer
     * may have arrived. Those are the ids returned: the call hands them out without context
     * rather than leave the agent holding a task it was told nothing of.
     */
    "tasks.releaseUnrecalled": (ctx: WriteContext, claimed: Array<{ id: string; leaseToken: number }>): string[] => {
      const kept: string[] = [];
      for (const lease of claimed) {
        const current = stillHeld(lease);
        if (current === undefined) continue;
        if (d.tasks.answeredMoreThanOnce(current)) kept.push(current.id);
        else t.releaseRow(ctx, current, ctx.now, { reason: "its context could not be recalled, so the claim failed" });
      }
      return kept;
    },
  };
}

/**
 * What a bulk write (requeueMany, cancelMany, the expiry job's) takes of its window, in order: each row of it
 * (`bytes` null: not the call's, passed over) is read by seq and taken when `wanted` says so, up to
 * `limit` rows and REQUEUE_PAGE_BYTES of them; with `boundLooks` (its filter reads rows through
 * to fields after their payload), BULK_LOOK_BYTES of rows read at most (at least one).
 * `stoppedAt`: the seq before the first row not read when it stopped short of the window's end
 * (where the next call starts), else null.
 */
function takePage<R>(
  window: ReadonlyArray<{ seq: number; bytes: number | null }>,
  limit: number,
  boundLooks: boolean,
  read: (seq: number) => R,
  wanted: (row: R) => boolean,
): { taken: R[]; stoppedAt: number | null } {
  const taken: R[] = [];
  let takenBytes = 0;
  let lookedBytes = 0;
  for (const { seq, bytes } of window) {
    if (bytes === null) continue;
    const full = taken.length === limit || (taken.length > 0 && takenBytes + bytes > REQUEUE_PAGE_BYTES);
    if (full || (boundLooks && lookedBytes > 0 && lookedBytes + bytes > BULK_LOOK_BYTES)) return { taken, stoppedAt: seq - 1 };
    lookedBytes += bytes;
    const row = read(seq);
    if (!wanted(row)) continue;
    taken.push(row);
    takenBytes += bytes;
  }
  return { taken, stoppedAt: null };
}

/**
 * LEASE_CONFLICT for a call that would keep or hand back a run past its time limit (claimedAt +
 * maxRunMs) by `now`: a heartbeat, a release. `refused` says what the call does not do. A complete
 * or a fail is taken until the sweeper ends the run (the work was done, or failed, and charged).
 */
function refuseOverRun(row: TaskRow, now: number, refused: string): void {
  if (!pastRunDeadline(row, now)) return;
  const at = new Date(runDeadline(row)!).toISOString();
  throw new CoordinationError(
    "LEASE_CONFLICT",
    `the run of task "${row.id}" under lease ${row.leaseToken} reached its time limit (maxRunMs ${row.maxRunMs} ms) at ${at}: ${refused}, and the server ends it`,
    { status: row.status, leaseOwner: row.leaseOwner, leaseToken: row.leaseToken, runDeadlineAt: at },
  );
}

/**
 * The answer a fail already gave, when `request` repeats it: the task is as that fail left it
 * (ownLastFailure) with the same error, and dead-lettered exactly when that fail would have. A
 * fail of that same lease that differs is a conflict saying so; anything else is undefined
 * (LEASE_CONFLICT, as before).
 */
function repeatedFail(row: TaskRow, request: FailRequest): SettledTask | CoordinationError | undefined {
  const last = ownLastFailure(row, request);
  // The server ended that run (its lease ran out, its time limit, a steal): no fail of its holder's
  // to repeat. The refusal of any call of an ended lease says so (leaseConflict).
  if (last === undefined || last.expired === true) return undefined;
  // retry false always dead-letters; retry true does only once the attempts ran out, or when its
  // retry would have started after the task's expiry (recorded in the entry: that time is gone).
  const deadLettered = !request.retry || row.attempts >= row.maxAttempts || last.pastExpiry === true;
  // The wait that fail asked for is in its history entry (none: it asked for the backoff): a
  // repeat asking for another, or for none where it asked for one, is another call.
  const otherWait = (last.retryAfterMs ?? null) !== (request.retryAfterMs ?? null);
  if (last.error === request.error && deadLettered === (row.status === "dead_letter") && !otherWait) return settled(row, taskRowWith(row, { leaseOwner: last.agentId }));
  const holder = request.agentId === undefined ? "" : ` of agent "${request.agentId}"`;
  return new CoordinationError(
    "LEASE_CONFLICT",
    `lease ${row.leaseToken}${holder} on task "${row.id}" has ended already (${endedText(last)}) and the task is ${row.status}; this fail differs (${last.error !== request.error ? "error" : otherWait ? "retryAfterMs" : "retry"}), and changes nothing`,
    { status: row.status, leaseOwner: row.leaseOwner, leaseToken: row.leaseToken },
  );
}

/** Whether `request` repeats the release that ended the task's current lease: the same agent, that lease, and pending under it since. */
function isRepeatedRelease(row: TaskRow, request: SettleRequest & { agentId: string }): boolean {
  return (
    row.status === "pending" &&
    row.releasedBy === releasedLease(row.leaseToken, request.agentId) &&
    (request.leaseToken === undefined || request.leaseToken === row.leaseToken)
  );
}

/** How long the settled run held its task, claim to settle, in ms (absent when the claim time is unknown). */
function ranFor(row: { claimedAt: number | Date | null }, now: number): { ranMs?: number } {
  return row.claimedAt == null ? {} : { ranMs: Math.max(0, now - Number(row.claimedAt)) };
}

/** What a waiting task waits for, as a refusal says it: the tasks it depends on, or its turn behind the tasks of its ordering key. */
function waitingFor(row: Pick<TaskRow, "unmetDependencies" | "orderingKey" | "keyConcurrency">): string {
  if (row.unmetDependencies > 0) return row.orderingKey === null ? "it waits for the tasks it depends on" : `it waits for the tasks it depends on, and for its turn behind the tasks of its ordering key ${JSON.stringify(row.orderingKey)} enqueued before it`;
  if (row.keyConcurrency > 1) return `it waits for its turn: ${row.keyConcurrency} tasks of its ordering key ${JSON.stringify(row.orderingKey)} are pending or claimed (its keyConcurrency; a pending one holds its place while not due), or one enqueued before it waits`;
  return `it waits for its turn: a task of its ordering key ${JSON.stringify(row.orderingKey)} enqueued before it has not settled`;
}
