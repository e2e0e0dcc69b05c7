// The task queue on the event loop. Its writes run in the database writer thread
// (task-commands.ts) and its reads in the reader thread (task-queries.ts); what stays here needs
// no database: long-polling (woken by committed events, claim-waiters.ts) and delivery
// confirmation: what a claim or a steal leased goes back, uncharged, when its answer does not
// reach the claimer. (A claim's context comes with its answer: recall-relay.ts.)
import { shuttingDown } from "../errors.js";
import { leaseLength, renewalLength, type Config } from "../config.js";
import type { JsonValue } from "../json-types.js";
import { asFault } from "../db/faults.js";
import type { Database } from "../db/thread/database.js";
import { deserializeError } from "../db/thread/protocol.js";
import { clientGone, refuseIfRevoked, type ConsumingCall } from "../delivery/delivery.js";
import { assertJsonDepth } from "../json-value.js";
import type { PerKeyLimit } from "../per-key-limit.js";
import { retentionPolicies } from "../retention/retention.js";
import { linkSignals, longPollMs, safetyRelookMs, type SignalFanout } from "../wakeup.js";
import { watchUntil } from "../watch-until.js";
import type { Availability, ClaimWaiters } from "./claim-waiters.js";
import type { KeyedWaiters } from "../keyed-waiters.js";
import { SETTLED_STATUSES, untilHolds } from "./task-status.js";
import type { RecalledContexts } from "../db/thread/recall-relay.js";
import type { Leased } from "./task-commands.js";
import { isHeld, taskWith, type CancelManyRequest, type CancelManyResult, type ClaimOutlookRequest, type ClaimOutlookView, type CancelRequest, type ClaimedTask, type ClaimRequest, type CompleteAndClaimRequest, type CompletedAndClaimed, type EnqueuedTask, type EnqueueRequest, type ListRequest, type ScopedEnqueue, type RequeueManyRequest, type RequeueManyResult, type RequeueRequest, type SettledTask, type Task, type TaskStats, type UpdateRequest, type WaitManyRequest, type WaitManyResult, type WaitRequest } from "./task-schemas.js";
import type { FailRequest, ReleaseRequest, SettleRequest } from "./task-transitions.js";
import { copyWith } from "../copy-with.js";
import type { PauseRequest, QueuePause } from "./queue-pause-schemas.js";
import type { QueueLimit, SetLimitRequest } from "./queue-limit-schemas.js";
import type { QueueRate, SetRateRequest } from "./queue-rate-schemas.js";
import { claimFilterOf, type RateOutlook } from "./task-store.js";

export interface TaskServiceDeps {
  config: Config;
  db: Database;
  waiters: ClaimWaiters;
  /** Aborts at shutdown: long-polls return at once. */
  shutdown: SignalFanout;
  /** Long-polls waiting per agent, bounded (maxParkedPerAgent). */
  parked: PerKeyLimit;
  /** Task waits parked (tasks.wait, tasks.waitMany). */
  settles: KeyedWaiters;
  /** Task waits parked per credential, bounded (maxParkedPerAgent), apart from its agent's claims and polls. */
  parkedWaits: PerKeyLimit;
  /** Changes whenever tasks may have changed (the log's head seen by this process, retention's deletions): stats are reused while it stands. */
  changeMark: () => string;
  /** A pause, limit or rate set, or lifted, committed: its queue's tasks are to be held or let go (the queue-holds job). */
  holdsChanged?: () => void;
}

/** Sweeps at most this many expired leases per run. */
const EXPIRY_BATCH = 500;

export class TaskService {
  constructor(private readonly d: TaskServiceDeps) {}

  /**
   * `keyScope`: whose the idempotencyKey is (keyScopeOf: the agent's id for an agent credential,
   * else ''). `agentCredential`: the agent an agent credential acts as, whose dedupe.replace may
   * change only the tasks that agent enqueued (FORBIDDEN otherwise, nothing written).
   */
  enqueue(request: EnqueueRequest, keyScope = "", agentCredential?: string): Promise<EnqueuedTask> {
    assertJsonDepth("payload", request.payload, this.d.config.maxJsonDepth);
    return this.d.db.write("tasks.enqueue", scoped(request, keyScope, agentCredential));
  }

  /** All or nothing: one invalid task rolls the whole batch back. */
  enqueueMany(requests: EnqueueRequest[], keyScope = "", agentCredential?: string): Promise<EnqueuedTask[]> {
    requests.forEach((request, i) => assertJsonDepth(`tasks[${i}].payload`, request.payload, this.d.config.maxJsonDepth));
    return this.d.db.write("tasks.enqueueMany", keyScope === "" && agentCredential === undefined ? requests : requests.map((request) => scoped(request, keyScope, agentCredential)));
  }

  /**
   * Claims up to `limit` tasks (default 1), long-polling up to `waitMs` when none is available.
   * Registers an unknown claimer. Stops once the claimer left (`call.gone`, `call.signals`), and hands
   * back what it took if the answer does not reach the claimer (`call.delivery`).
   */
  async claim(request: ClaimRequest, call: ConsumingCall = {}): Promise<ClaimedTask[]> {
    const limit = request.limit ?? 1;
    const leaseMs = leaseLength(this.d.config, request.leaseMs);
    const waitMs = longPollMs(request.waitMs, this.d.config.maxWaitMs);
    if (waitMs <= 0) {
      // One look, nothing to wait for: no waiter ticket, no signals to link.
      if (clientGone(call)) {
        refuseIfRevoked(call);
        return [];
      }
      const since = this.d.waiters.leaseEndMark;
      const claimed = await this.d.db.handOut("tasks.claim", { request, limit, leaseMs, noteAgent: true, contextLimit: this.contextLimit(request.context) });
      if (claimed.leased.length === 0) return [];
      this.afterClaim(claimed.rates, since);
      return this.handOut(claimed, call);
    }
    const unpark = this.d.parked.acquire(request.agentId);
    const deadline = Date.now() + waitMs;
    const shutdown = this.d.shutdown.child();
    const stop = linkSignals([...(call.signals?.() ?? []), shutdown.signal]);
    const interest = {
      agentId: request.agentId,
      queues: request.queues && request.queues.length > 0 ? request.queues : null,
      capabilities: request.capabilities,
      idempotencyKey: request.idempotencyKey,
    };
    /** The limited queue whose freed slot, or the rate-limited queue whose window's room, woke the last wait: passed on if this claim does not take it. */
    let wokenFor: { queue: string; byRate: boolean } | undefined;
    /** The last attempt found its agent cordoned: the next ticket takes no task's wake-up either (its agent's events and the cordon's end still wake it). */
    let cordoned = false;
    /** The task whose wake-up ended the last wait: handed on if the next attempt finds the agent cordoned, or never runs. */
    let wokenByTask: Availability | undefined;
    try {
      for (let attempt = 0; ; attempt++) {
        if (clientGone(call)) {
          // A task's wake-up it took and will not look at goes where it would have gone.
          if (wokenByTask !== undefined) this.d.waiters.handOn(wokenByTask);
          refuseIfRevoked(call);
          return [];
        }
        // Waiting starts before the attempt: a task committed meanwhile wakes it at once.
        const ticket = this.d.waiters.ticket(interest);
        ticket.cordoned = cordoned;
        /** It looks again (woken, or its cordon lifted): a wake-up its ticket took is its own to look at. */
        let again = false;
        try {
          const claimed = await this.d.db.handOut("tasks.claim", { request, limit, leaseMs, noteAgent: attempt === 0, contextLimit: this.contextLimit(request.context) });
          if (wokenFor !== undefined) this.passOnUntaken(wokenFor, claimed);
          wokenFor = undefined;
          if (claimed.leased.length > 0) {
            // What woke it during this attempt is left as before: the leases it took answered it.
            ticket.wokenByTask = undefined;
            this.afterClaim(claimed.rates, ticket.madeAt);
            return await this.handOut(claimed, call);
          }
          const wasCordoned = cordoned;
          cordoned = claimed.cordonedUntil !== undefined;
          if (cordoned) {
            // Cordoned: it waits for its uncordon, a change of its cordon or the cordon's end,
            // taking no task's wake-up. One it took (a task any waiter may take wakes one waiter:
            // the one that ended its last wait, when it was cordoned while parked) goes where it
            // would have gone, once; one during this attempt, in `finally` (whatever comes next).
            ticket.cordoned = true;
            if (wokenByTask !== undefined) this.d.waiters.handOn(wokenByTask);
            wokenByTask = undefined;
          }
          // Not an empty answer: that reads as "no task", and the claimer would ask this server again.
          if (shutdown.signal.aborted) throw shuttingDown();
          refuseIfRevoked(call);
          const now = Date.now();
          if (now >= deadline || stop.signal.aborted) return [];
          if (cordoned) {
            if (ticket.wokenByTask !== undefined) this.d.waiters.handOn(ticket.wokenByTask);
            ticket.wokenByTask = undefined;
            if (claimed.cordonedUntil !== null) ticket.dueBy(claimed.cordonedUntil!);
          } else if (wasCordoned) {
            // Its cordon lifted during this attempt, made with a ticket that took no task's
            // wake-up: one committed meanwhile may have passed it by. It looks again at once.
            again = true;
            continue;
          }
          if (claimed.nextRunAt !== null) ticket.dueBy(claimed.nextRunAt);
          // A queue with a full window waits for the window (its limit may be full too: once the
          // window has room, a lease end is what frees it; ClaimWaiters.moveToSlots).
          const windows = (claimed.rates ?? []).filter((rate) => rate.full && rate.mine).map((rate) => rate.queue);
          ticket.blockedBy(
            (claimed.fullQueues ?? []).filter((queue) => !windows.includes(queue)),
            windows,
          );
          this.afterClaim(claimed.rates, ticket.madeAt);
          call.waiting?.();
          const relookMs = safetyRelookMs(this.d.config.crossProcessPollMs);
          // Waits until woken, or for the rest of its time (the deadline: true once that ran out),
          // or the safety re-look. A timer may fire a moment before Date.now() reaches its end, so
          // the deadline is known by the timer that ran out, not by the clock.
          const waitOut = async () => {
            const left = deadline - Date.now();
            return (await ticket.wait(Math.min(left, relookMs), stop.signal)) && left <= relookMs;
          };
          let ranOut = await waitOut();
          // Woken by its agent's claim alone (a keyed claim): another call with its key, which its
          // client gave up on, may have taken the task it waits for. Looked for on the reader; the
          // claim runs again only if it is there (it then answers that lease), else waits on.
          let underKey = false;
          while (ticket.takeAgentClaimed() && !stop.signal.aborted) {
            underKey = await this.d.db.read("tasks.holdsUnderKey", { agentId: request.agentId, idempotencyKey: request.idempotencyKey! });
            if (underKey || Date.now() >= deadline) break;
            ranOut = await waitOut();
          }
          // The wait ran out with nothing committed for it: no last look, the claimer asks again.
          if (!ticket.isWoken && !underKey && (ranOut || Date.now() >= deadline)) return [];
          again = true;
        } finally {
          wokenFor = ticket.wokenFor;
          // Leaving (its time ran out, its client left, a refusal) with a task's wake-up it took and
          // will not look at: that goes where it would have gone.
          if (!again && ticket.wokenByTask !== undefined) this.d.waiters.handOn(ticket.wokenByTask);
          wokenByTask = again ? ticket.wokenByTask : undefined;
          ticket.cancel();
        }
      }
    } finally {
      stop.dispose();
      shutdown.dispose();
      unpark();
    }
  }

  /**
   * Why a claim asking `request` would find no task now, as far as reads on the reader
   * tell (TaskStore.claimOutlook): paused, full and rate-limited queues, the capabilities and
   * targets of the due tasks it may not run, when the next delayed task it may run falls due,
   * and whether a claim would be handed a task after all (claimable). Meant for a claim that just
   * answered nothing (the MCP claim_task's note), and an operator's `agents why-idle`.
   */
  async claimOutlook(request: ClaimOutlookRequest): Promise<ClaimOutlookView> {
    const outlook = await this.d.db.read("tasks.claimOutlook", { filter: claimFilterOf(request), now: Date.now() });
    return copyWith(outlook, {
      rateLimited: outlook.rateLimited.map((rate) => copyWith(rate, { freesAt: new Date(rate.freesAt) })),
      nextRunAt: outlook.nextRunAt === null ? null : new Date(outlook.nextRunAt),
    });
  }

  /**
   * What a claim's answer says of the rate-limited queues (those it took from, or all it could take
   * from when it took nothing) goes to the claims parked on their windows: a queue with no task
   * anyone may take unblocks them (its next task wakes one, as for any queue); a full window's time of
   * room arms the queue's timer (at once if it passed while the answer came: a claim blocked on it
   * now looks, this one among them); room with a free slot wakes the next claim parked on it; room
   * with the limit's slots full sends them to wait for a lease end. `since`: leaseEndMark before the call.
   */
  private afterClaim(rates: readonly RateOutlook[] | undefined, since: number): void {
    for (const { queue, freesAt, empty, full, slotsFull } of rates ?? []) {
      if (empty) this.d.waiters.unblockRate(queue);
      else if (full) this.d.waiters.rateFreesAt(queue, freesAt);
      else if (slotsFull) this.d.waiters.moveToSlots(queue, since);
      else this.d.waiters.passOnRoom(queue);
    }
  }

  /**
   * A claim woken for a limited queue's freed slot, or a rate-limited queue's room, that took no
   * task of it (it took another queue's, or found none there it may take): the next claim blocked
   * on that queue gets its turn, unless the queue is full again (its limit, or its window).
   */
  private passOnUntaken(woken: { queue: string; byRate: boolean }, claimed: { leased: readonly Leased[]; fullQueues?: string[]; rates?: RateOutlook[] }): void {
    const { queue } = woken;
    if (claimed.leased.some((leased) => leased.task.queue === queue)) return;
    // Full still, by either bound, or nothing there to take for anyone: no one else need look.
    if ((claimed.fullQueues ?? []).includes(queue) || (claimed.rates ?? []).some((rate) => rate.queue === queue && (rate.full || rate.empty))) return;
    if (woken.byRate) this.d.waiters.passOnRoom(queue);
    else this.d.waiters.passOn(queue);
  }

  /**
   * Renews the lease; with `progress`, records it on the task and publishes task.progress; with
   * `checkpoint`, keeps it for every later run and publishes task.checkpointed (task-commands.ts).
   */
  heartbeat(request: SettleRequest & { agentId: string; leaseMs?: number | undefined; progress?: JsonValue | undefined; checkpoint?: JsonValue | undefined }): Promise<Task> {
    if (request.progress !== undefined) assertJsonDepth("progress", request.progress, this.d.config.maxJsonDepth);
    if (request.checkpoint !== undefined) assertJsonDepth("checkpoint", request.checkpoint, this.d.config.maxJsonDepth);
    // Named (and not 0), the new length; else the lease's own, which only the writer knows.
    const named = renewalLength(this.d.config, request.leaseMs);
    return this.d.db.write("tasks.heartbeat", copyWith(request, { leaseMs: named, defaultLeaseMs: leaseLength(this.d.config, undefined), maxLeaseMs: this.d.config.maxLeaseMs }));
  }

  /** Completes under the caller's lease; sent again with the same result, the same answer (task-commands.ts). */
  complete(request: SettleRequest & { result?: unknown }): Promise<SettledTask> {
    assertJsonDepth("result", request.result, this.d.config.maxJsonDepth);
    return this.d.db.write("tasks.complete", request);
  }

  /**
   * Completes the agent's task and claims its next one in the same write (one round trip per
   * task for a worker). If the answer does not reach the agent, the next task goes back
   * uncharged; the complete stands (sent again with the same result, it answers the same).
   */
  async completeAndClaim(request: CompleteAndClaimRequest, call: ConsumingCall = {}): Promise<CompletedAndClaimed> {
    assertJsonDepth("result", request.result, this.d.config.maxJsonDepth);
    const { next = {}, ...settle } = request;
    // The agent left before the write: its complete still counts (sent again, it answers the same); a next task would not reach it.
    if (clientGone(call)) return { completed: await this.d.db.write("tasks.complete", settle), next: null };
    const claimRequest: ClaimRequest = { agentId: request.agentId, queues: next.queues, capabilities: next.capabilities, leaseMs: next.leaseMs, context: next.context };
    const since = this.d.waiters.leaseEndMark;
    const done = await this.d.db.handOut("tasks.completeAndClaim", {
      complete: settle,
      claim: { request: claimRequest, limit: 1, leaseMs: leaseLength(this.d.config, next.leaseMs), noteAgent: false },
      contextLimit: this.contextLimit(next.context),
    });
    if (done.leased.length === 0) return { completed: done.completed, next: null };
    this.afterClaim(done.rates, since);
    // The complete stands and must be answered as such: a next task whose context could not be
    // recalled goes back, uncharged (next: null), unless an earlier answer of this call handed it out.
    const [claimed] = await this.handOut(done, call, "none");
    return { completed: done.completed, next: claimed ?? null };
  }

  /** Fails the run (task-commands.ts); `checkpoint` is saved in the same write, held to maxJsonDepth as a heartbeat's is. */
  fail(request: FailRequest): Promise<SettledTask> {
    // A checkpoint is stored whichever call carries it: one that ends a run is bounded as one
    // that renews it, or a value refused on a heartbeat got in on the fail that follows.
    if (request.checkpoint !== undefined) assertJsonDepth("checkpoint", request.checkpoint, this.d.config.maxJsonDepth);
    return this.d.db.write("tasks.fail", request);
  }

  /** Gives the task back uncharged (task-commands.ts); `checkpoint` is saved in the same write, held to maxJsonDepth as a heartbeat's is. */
  release(request: ReleaseRequest): Promise<SettledTask> {
    if (request.checkpoint !== undefined) assertJsonDepth("checkpoint", request.checkpoint, this.d.config.maxJsonDepth);
    return this.d.db.write("tasks.release", request);
  }

  /**
   * Stops a task (and what waits on it), or discards a dead letter; `reason` is kept as its
   * lastError (task-commands.ts). `byAgent`: the agent an agent credential acts as, which may
   * cancel only a task it enqueued (FORBIDDEN otherwise, nothing changed), and is named in the
   * task.cancelled event; null (an admin, an open server, in-process): any task.
   */
  cancel(request: CancelRequest, byAgent: string | null = null): Promise<Task> {
    return this.d.db.write("tasks.cancel", { request, byAgent });
  }

  /** A dead letter or cancelled task back in its queue (TaskCommands "tasks.requeue"); `checkpoint: null` clears its checkpoint. */
  requeue(request: RequeueRequest): Promise<Task> {
    return this.d.db.write("tasks.requeue", request);
  }

  /** A task that waits to run (pending or waiting) with another priority, time to fall due, expiry or payload (TaskCommands "tasks.update"); `updatedBy`: the credential's id, in its event. */
  update(request: UpdateRequest, updatedBy: string | null): Promise<Task> {
    return this.d.db.write("tasks.update", copyWith(request, { updatedBy }));
  }

  /** A pending task not due yet due now (TaskCommands "tasks.promote"); `promotedBy`: the credential's id, in its event. */
  promote(taskId: string, promotedBy: string | null): Promise<Task> {
    return this.d.db.write("tasks.promote", { taskId, promotedBy });
  }

  /**
   * Pauses a queue: from this write on, no claim or steal takes its tasks; enqueues are taken.
   * A queue already paused keeps its pause (the answer names it). `pausedBy`: the credential's id.
   */
  async pause(request: PauseRequest, pausedBy: string | null): Promise<QueuePause> {
    const answer = await this.d.db.write("queues.pause", copyWith(request, { pausedBy }));
    this.d.holdsChanged?.();
    return answer;
  }

  /** Resumes a paused queue: claims take its tasks again, best first. One not paused is answered as it is. `resumedBy`: the credential's id. */
  async resume(queue: string, resumedBy: string | null): Promise<QueuePause> {
    const answer = await this.d.db.write("queues.resume", { queue, resumedBy });
    this.d.holdsChanged?.();
    return answer;
  }

  /**
   * Limits a queue: from this write on, at most `maxLeased` of its tasks are leased at once
   * (leases already above it run on). Setting the same limit again changes nothing. `setBy`: the credential's id.
   */
  async setLimit(request: SetLimitRequest, setBy: string | null): Promise<QueueLimit> {
    const answer = await this.d.db.write("queues.setLimit", copyWith(request, { setBy }));
    this.d.holdsChanged?.();
    return answer;
  }

  /** Removes a queue's limit: claims take its tasks without a bound again, best first. A queue with none is answered as it is. */
  async removeLimit(queue: string, removedBy: string | null): Promise<QueueLimit> {
    const answer = await this.d.db.write("queues.removeLimit", { queue, removedBy });
    this.d.holdsChanged?.();
    return answer;
  }

  /** Limited queues, and those whose removed limit's tasks are still being let go. */
  limits(): Promise<QueueLimit[]> {
    return this.d.db.read("queues.limits", undefined);
  }

  /**
   * Rate-limits a queue: from this write on, at most `maxClaims` of its tasks are claimed in any
   * window of `perMs` (the claims already made in the window count). Setting the same rate again
   * changes nothing. `setBy`: the credential's id.
   */
  async setRate(request: SetRateRequest, setBy: string | null): Promise<QueueRate> {
    const answer = await this.d.db.write("queues.setRate", copyWith(request, { setBy }));
    this.d.holdsChanged?.();
    return answer;
  }

  /** Removes a queue's rate: claims take its tasks without it again, best first. A queue with none is answered as it is. */
  async removeRate(queue: string, removedBy: string | null): Promise<QueueRate> {
    const answer = await this.d.db.write("queues.removeRate", { queue, removedBy });
    this.d.holdsChanged?.();
    return answer;
  }

  /** Rate-limited queues, and those whose removed rate's tasks are still being let go. */
  rates(): Promise<QueueRate[]> {
    return this.d.db.read("queues.rates", undefined);
  }

  /** Paused queues, and resumed ones whose tasks are still being let go. */
  pauses(): Promise<QueuePause[]> {
    return this.d.db.read("queues.paused", undefined);
  }

  /**
   * Holds the pending tasks of paused and limited queues out of the general claim indexes, and
   * lets those of resumed (or no longer limited) ones back, a bounded chunk a write
   * (queue-holds.ts), until none is left. Looked for on the reader first: a server with nothing
   * to move writes nothing. Run by the queue-holds job, and after every pause, resume and limit
   * change. After each chunk of a queue not paused (this process's, or another's on the same
   * file, seen at the next run), the claims parked here for the queue look again: the tasks let
   * go, or held for a limit (claims of a limited queue read its held tasks), may be the first they
   * can take. Stops at shutdown: the next start goes on. Returns how many rows moved.
   */
  async settleHolds(): Promise<number> {
    let moved = 0;
    for (;;) {
      const queues = await this.d.db.read("queues.unsettled", undefined);
      if (queues.length === 0) return moved;
      for (const { queue, claimable } of queues) {
        if (this.d.shutdown.aborted) return moved;
        moved += await this.d.db.write("queues.settleHolds", queue);
        if (claimable) this.d.waiters.wakeQueue(queue);
      }
    }
  }

  /**
   * Goes on with what writes left of a completed or cancelled task's dependents (a write readies
   * or cancels DEPENDENTS_PER_WRITE at most: task-transitions.ts), a chunk a write, until none is
   * left: this process's, another's on the same file, or one a stop interrupted. Looked for on the
   * reader first: a server with nothing left writes nothing. Run by the task-dependents job.
   * Stops at shutdown: the next start goes on. Returns how many writes it made.
   */
  async settleDependents(): Promise<number> {
    let writes = 0;
    if (!(await this.d.db.read("tasks.dependentsLeft", undefined))) return writes;
    while (!this.d.shutdown.aborted) {
      writes++;
      if (!(await this.d.db.write("tasks.settleDependents", undefined))) break;
    }
    return writes;
  }

  /**
   * Cancels the tasks that wait to run whose expiry came (tasks.enqueue's expiresAt or ttlMs), a
   * batch a write, until none is left: this process's, or another's on the same file. Looked for on
   * the reader first: a server with none expired writes nothing. Run by the task-expiry job (a
   * claim never takes an expired task meanwhile). Stops at shutdown. Returns how many it cancelled.
   */
  async expireTasks(): Promise<number> {
    let expired = 0;
    if (!(await this.d.db.read("tasks.anyExpired", Date.now()))) return expired;
    while (!this.d.shutdown.aborted) {
      const write = await this.d.db.write("tasks.expire", { limit: EXPIRY_BATCH });
      expired += write.expired;
      if (!write.more) break;
    }
    return expired;
  }

  /** Up to `limit` of a queue's tasks cancelled, oldest first, in one write (task-commands.ts). */
  cancelMany(request: CancelManyRequest, byAgent: string | null = null): Promise<CancelManyResult> {
    return this.d.db.write("tasks.cancelMany", { request, byAgent });
  }

  /** Up to `limit` dead letters (or cancelled tasks) back to pending, oldest first, in one write (task-commands.ts). */
  requeueMany(request: RequeueManyRequest): Promise<RequeueManyResult> {
    return this.d.db.write("tasks.requeueMany", request);
  }

  /**
   * Work stealing: takes over claims whose lease expired or whose holder is offline, without
   * waiting for the sweeper (task-commands.ts). Stealing from an unknown agent is AGENT_NOT_FOUND.
   */
  async steal(
    request: { agentId: string; fromAgentId?: string | undefined; limit: number; leaseMs?: number | undefined; capabilities?: string[] | undefined; idempotencyKey?: string | undefined },
    call: ConsumingCall = {},
  ): Promise<ClaimedTask[]> {
    if (clientGone(call)) {
      refuseIfRevoked(call);
      return [];
    }
    const stolen = await this.d.db.handOut("tasks.steal", copyWith(request, { leaseMs: leaseLength(this.d.config, request.leaseMs), asOf: Date.now(), contextLimit: this.contextLimit(true) }));
    return stolen.leased.length === 0 ? [] : this.handOut(stolen, call);
  }

  get(taskId: string): Promise<Task> {
    return this.d.db.read("tasks.get", taskId);
  }

  /**
   * The task once it is settled (completed, dead_letter or cancelled), or as it is when `waitMs`
   * (left out: maxWaitMs; cut to it) ran out first, or when its client left. Woken by the event
   * that settles it, from this process or another on the file (keyed-waiters.ts); never re-read
   * on a timer but the safety re-look. `parkedAs`: the credential whose parked waits it counts
   * among while it waits (maxParkedPerAgent of them, apart from its agent's claims and polls);
   * undefined for callers not bounded (an open server's, in-process). A task settled already is
   * answered without parking, so never refused for the bound. TASK_NOT_FOUND for an unknown id,
   * or one retention deleted meanwhile; SHUTTING_DOWN (503) when the server stops first.
   */
  async wait(request: WaitRequest, parkedAs: string | undefined, call: ConsumingCall = {}): Promise<Task> {
    const waitMs = this.waitLength(request.waitMs);
    if (waitMs <= 0) return this.get(request.taskId);
    return this.untilSettled([request.taskId], waitMs, () => this.get(request.taskId), (task) => SETTLED_STATUSES.has(task.status), parkedAs, call);
  }

  /**
   * Several tasks once every one (`until` all) or one of them (any) has settled, or as they are
   * when `waitMs` runs out: `done` says which. As wait does, for one call: it parks once, on a
   * ticket woken by a settle of any of them, and its looks read only their statuses; the answer
   * is read once, at the end (in the order asked, packed within maxResponseBytes: tasks.getMany).
   * TASK_NOT_FOUND names the ids of no task (never, or retention deleted them meanwhile).
   */
  async waitMany(request: WaitManyRequest, parkedAs: string | undefined, call: ConsumingCall = {}): Promise<WaitManyResult> {
    const { taskIds, until } = request;
    const waitMs = this.waitLength(request.waitMs);
    if (waitMs > 0) {
      await this.untilSettled(taskIds, waitMs, () => this.d.db.read("tasks.countSettled", taskIds), (settled) => untilHolds(until, settled, taskIds.length), parkedAs, call);
    }
    return this.d.db.read("tasks.getMany", { taskIds, until, settledOnly: request.settledOnly });
  }

  /** A task wait's length: `waitMs` as asked, left out the server's maxWaitMs, and never past it. */
  private waitLength(waitMs: number | undefined): number {
    return longPollMs(waitMs, this.d.config.maxWaitMs, this.d.config.maxWaitMs);
  }

  /**
   * The long-poll of wait and waitMany (watch-until.ts): looks (`look`) until what it sees is
   * `enough`, `waitMs` runs out (the last look is the answer), or the client leaves; between
   * looks, parked on a ticket woken by a settle of any of `taskIds`.
   */
  private untilSettled<T>(taskIds: readonly string[], waitMs: number, look: () => Promise<T>, enough: (looked: T) => boolean, parkedAs: string | undefined, call: ConsumingCall): Promise<T> {
    const { config, settles, shutdown, parkedWaits } = this.d;
    return watchUntil({ config, waiters: settles, shutdown, parked: parkedWaits }, { keys: taskIds, waitMs, look, enough, parkedAs, call });
  }

  /** One page, in seq order; a page stops early (with a nextCursor) rather than pass maxResponseBytes. */
  list(request: ListRequest): Promise<{ items: Task[]; nextCursor: string | null }> {
    return this.d.db.read("tasks.list", request);
  }

  /**
   * Counts per queue and state, and what retention keeps. Counting reads every task (about 0.2 s
   * at 100k tasks, on the reader thread), so an answer is reused while no task changed (the
   * change mark: the event log's head, as every change appends an event seen before its write is
   * answered, so a caller always sees its own writes; and retention's deletions), or, with
   * `maxStaleMs` (metrics scrapes), while it is younger than that. Concurrent callers share one read.
   */
  stats(options: { maxStaleMs?: number } = {}): Promise<TaskStats> {
    const now = Date.now();
    const mark = this.d.changeMark();
    const cached = this.statsCache;
    // A reused count is as true as when it was read, until a scheduled task falls due (counts
    // move from scheduled to due with no write); the oldest pending task has aged since.
    if (cached && ((cached.mark === mark && now < cached.dueAt) || now - cached.at < (options.maxStaleMs ?? 0))) return cached.value.then((stats) => agedBy(stats, now - cached.at));
    const value = this.readStats();
    const entry = { at: now, mark, value, dueAt: Number.POSITIVE_INFINITY };
    this.statsCache = entry;
    void value.then((stats) => (entry.dueAt = stats.nextDueAt?.getTime() ?? Number.POSITIVE_INFINITY), () => undefined);
    value.catch(() => {
      if (this.statsCache === entry) this.statsCache = undefined;
    });
    return value;
  }

  private statsCache: { at: number; mark: string; value: Promise<TaskStats>; dueAt: number } | undefined;

  private async readStats(): Promise<TaskStats> {
    const [counts, oldestSettledAt] = await Promise.all([this.d.db.read("tasks.stats", undefined), this.d.db.read("retention.oldestSettledAt", undefined)]);
    const { settledTasks, executions, notes } = retentionPolicies(this.d.config);
    const oldest = oldestSettledAt === null ? null : new Date(oldestSettledAt);
    return copyWith(counts, { retention: { settledTasks: copyWith(settledTasks, { oldestSettledAt: oldest }), executions, notes } });
  }

  /** The lock-wait grace the last sweep allowed on a shared file (ms; lock-wait-grace.ts). */
  private sweepGraceMs = 0;

  /** Returns claims expired by now to the queue (charging the attempt). Run by the lease sweeper. */
  async expireLeases(): Promise<number> {
    // Judged as of now, not as of when the write commits (task-commands.ts); and looked for on
    // the reader first, so an idle server takes no write lock every leaseSweepMs, nor one for a
    // lease still within the grace a shared file gives it.
    const asOf = Date.now();
    if (!(await this.d.db.read("tasks.anyLeaseExpired", asOf - this.sweepGraceMs))) return 0;
    const { expired, sharedGraceMs } = await this.d.db.write("tasks.expireLeases", { batchSize: EXPIRY_BATCH, asOf });
    this.sweepGraceMs = sharedGraceMs;
    return expired;
  }

  /**
   * The claimed tasks as answered, each with the memories recalled for it (the writer started
   * recall on the reader thread inside the claim's batch: recall-relay.ts). From here on the
   * claimer owns them, unless the answer does not reach it: then they go back, uncharged.
   *
   * Recall failed: what was leased goes back, uncharged, and the call fails with recall's error
   * (`whenNoneLeft` "throw": a claim, a steal) or answers no task ("none": a complete-and-claim,
   * whose complete stands). But a lease another answer handed out too (a keyed call sent again,
   * its first answer lost) stays, as that answer may have arrived: it is handed out once more,
   * without context, rather than left with an agent told nothing of it (it would wait out its
   * lease, charged an attempt).
   */
  private async handOut({ leased, contexts }: { leased: Leased[]; contexts: RecalledContexts }, call: ConsumingCall, whenNoneLeft: "throw" | "none" = "throw"): Promise<ClaimedTask[]> {
    let handed = leased;
    let contextOf = (i: number) => (contexts.ok ? (contexts.contexts[i] ?? []) : []);
    if (!contexts.ok) {
      const failure = asFault(deserializeError(contexts.error), this.d.config.busyTimeoutMs);
      const kept = new Set(await this.d.db.write("tasks.releaseUnrecalled", leases(leased)));
      if (kept.size === 0) {
        if (whenNoneLeft === "none") return [];
        throw failure;
      }
      handed = leased.filter(({ task }) => kept.has(task.id));
      contextOf = () => [];
    }
    call.delivery?.onUndelivered(() => this.releaseUndelivered(handed));
    return handed.map(({ task }, i) => {
      // A claim's write leased each of them in the batch that answered: held, by construction.
      if (!isHeld(task)) throw new Error(`claimed task ${task.id} came back ${task.status}, not held`);
      return taskWith(task, { context: contextOf(i) });
    });
  }

  /**
   * Gives leases back uncharged whose answer its client dropped (an MCP call cancelled after it
   * was answered): as an answer never delivered, each only if still held under that lease and
   * handed out by that answer alone. How many went back.
   */
  giveBack(leases: Array<{ id: string; leaseToken: number }>): Promise<number> {
    return this.d.db.write("tasks.releaseUndelivered", leases);
  }

  /** Gives leased tasks back uncharged (their answer did not reach the claimer), each under the lease it was given. */
  private releaseUndelivered(leased: Leased[]): Promise<unknown> {
    return this.d.db.write("tasks.releaseUndelivered", leases(leased));
  }

  /** How many memories each claimed task gets: none when the claimer said `context: false`. */
  private contextLimit(wanted: boolean | undefined): number {
    return wanted === false ? 0 : this.d.config.memoryContextLimit;
  }

}

/** Stats read `ms` ago, with every oldest-pending age grown by `ms`. */
function agedBy(stats: TaskStats, ms: number): TaskStats {
  if (ms <= 0) return stats;
  return copyWith(stats, { queues: stats.queues.map((q) => (q.oldestPendingAgeMs === null ? q : copyWith(q, { oldestPendingAgeMs: q.oldestPendingAgeMs + ms }))) });
}

/** The leases of claimed tasks, as the writer's release commands take them. */
function leases(leased: Leased[]): Array<{ id: string; leaseToken: number }> {
  return leased.map(({ task }) => ({ id: task.id, leaseToken: task.leaseToken }));
}

/** An enqueue with whose its key is and whose tasks its dedupe.replace may change (ScopedEnqueue); as sent when neither applies. */
function scoped(request: EnqueueRequest, keyScope: string, agentCredential: string | undefined): ScopedEnqueue {
  if (keyScope === "" && agentCredential === undefined) return request;
  // Fields set one by one: a literal of spreads is what hot-path-objects.test.ts keeps off this path.
  const scope: { idempotencyScope?: string; replacesOwnOf?: string } = {};
  if (keyScope !== "") scope.idempotencyScope = keyScope;
  if (agentCredential !== undefined) scope.replacesOwnOf = agentCredential;
  return copyWith(request, scope);
}
