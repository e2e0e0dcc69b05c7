// The worker's calls on a lease it holds: renewals (heartbeats) and settles, each retried on
// transient errors for as long as the lease can still be valid. A server restart, a dropped
// connection or a 503 then costs a delay, not a task run twice: the lease outlives the outage
// (its expiry is in the database), so the complete that arrives after the restart still counts.
import { setTimeout as sleep } from "node:timers/promises";
import { isTRPCClientError } from "@trpc/client";
import { isClientClosed } from "./closing-link.js";
import { isUnsendable } from "./serialize-input.js";
import type { ClaimedTask, CoordinationApi, JsonValue } from "./types.js";
import { sentOnce } from "./send-once.js";

/**
 * A run reached its task's time limit (maxRunMs): the server ends it, and no heartbeat renews its
 * lease. runWorker aborts the handler's signal with it as the reason.
 */
export class RunTimeLimitReached extends Error {
  constructor(readonly maxRunMs: number | null) {
    super(`the run reached its time limit${maxRunMs === null ? "" : ` (maxRunMs ${maxRunMs} ms)`}: the server ends it, and no heartbeat renews it`);
    this.name = "RunTimeLimitReached";
  }
}

/**
 * The reason a run's signal aborts when its task was cancelled (tasks.cancel, by an admin or by
 * the agent that enqueued it): the run is not wanted any more, and nothing it returns is stored.
 * `reason`: the cancel's own, when it gave one.
 */
export class TaskCancelled extends Error {
  constructor(
    readonly taskId: string,
    readonly reason: string | null,
  ) {
    super(`task "${taskId}" was cancelled${reason === null ? "" : `: ${reason}`}`);
    this.name = "TaskCancelled";
  }
}

/** The server refused a call of a lease because its task was cancelled (details.status says so). */
export const isCancelledTask = (error: unknown): boolean =>
  isTRPCClientError(error) && (error.data as { details?: { status?: unknown } } | undefined)?.details?.status === "cancelled";

/** How a settle ended (HeldLease.settle). */
export type SettleOutcome = { kind: "settled" } | { kind: "lost"; error: unknown } | { kind: "refused"; error: unknown };

/** Lease renewals never come faster than this, whatever the server granted. */
const MIN_RENEW_MS = 20;
/** Retries of a failed renewal or settle (and of a run's log append) start at this delay and double up to RETRY_MAX_MS. */
export const RETRY_START_MS = 100;
export const RETRY_MAX_MS = 1000;
/** The least time a renewal or settle is given to answer, however close the lease's end. */
const CALL_MIN_MS = 5000;
/** How long a settle call already sent may still answer once its lease is known to be over (end()). */
const END_GRACE_MS = 1000;
/**
 * A run's progress reports reach the server at most this often (ms): each rides on a renewal, and
 * one reported sooner waits, replaced by any later one, so a handler reporting in a tight loop
 * costs the server one write (and one task.progress event) a second.
 */
export const PROGRESS_EVERY_MS = 1000;
/** A timer may fire a millisecond or two before the clock says it is due: a report it was set for still goes. */
const TIMER_SLACK_MS = 5;
/**
 * Milliseconds on a clock that never steps (performance.now()): renewals and reports are planned
 * on it, so a wall clock set back (NTP, a VM resumed) cannot put the next renewal that far off.
 */
const monotonic = (): number => performance.now();

/** A moment on both clocks: the wall clock's (Date.now()) and the monotonic one's. */
export interface Moment {
  wall: number;
  ticks: number;
}
/** Now, on both clocks. */
export const momentNow = (): Moment => ({ wall: Date.now(), ticks: monotonic() });

/** A progress report waiting for a renewal to carry it: the newest value, and everyone who reported since the last one went. */
interface WaitingReport {
  value: JsonValue;
  callers: Array<(recorded: boolean) => void>;
}
const answer = (report: WaitingReport | undefined, recorded: boolean) => report?.callers.forEach((resolve) => resolve(recorded));

/** The HTTP status of a call's failure; undefined when no answer came (a refused or dropped connection, a timeout). */
export const httpStatus = (error: unknown): number | undefined => (isTRPCClientError(error) ? error.data?.httpStatus : undefined);
/** The server says this lease is gone: another holder, cancelled, settled (409), or no such task (404). */
export const isLeaseGone = (error: unknown): boolean => {
  const status = httpStatus(error);
  return status === 409 || status === 404;
};
/** The server refused a call of a lease whose run reached its time limit (maxRunMs): its details say when that was. */
export const isPastRunLimit = (error: unknown): boolean =>
  isTRPCClientError(error) && typeof (error.data as { details?: { runDeadlineAt?: unknown } } | undefined)?.details?.runDeadlineAt === "string";
/** The server does not know the procedure: it is older than this client (tasks.completeAndClaim came later). */
export const isUnknownProcedure = (error: unknown): boolean => isTRPCClientError(error) && error.data?.code === "ROUTE_NOT_FOUND";
/** The server refused `field` as unknown to it (an older server than this client): the call is sent again without it. */
export const isUnknownField = (error: unknown, field: string): boolean =>
  isTRPCClientError(error) &&
  error.data?.code === "INVALID_INPUT" &&
  ((error.data as { details?: { issues?: Array<{ path?: unknown; message?: unknown }> } }).details?.issues ?? []).some((issue) => issue.path === field && issue.message === "unknown field");
/** The server refused the caller's credential (revoked, unknown, or not this agent's): no retry mends it. */
export const isCredentialRefused = (error: unknown): boolean => isTRPCClientError(error) && (error.data?.code === "UNAUTHORIZED" || error.data?.code === "FORBIDDEN");
/** No answer, a 429 or a 5xx: the request may succeed if sent again. Not an input the client could not even send. */
export const isTransient = (error: unknown): boolean => {
  // A closed client's calls fail for good: sent again, they would fail at once, for ever.
  if (isUnsendable(error) || isClientClosed(error)) return false;
  const status = httpStatus(error);
  // 429: a limit of the moment (a batch past the server's maxBatchCalls, connections): sent
  // again, it may pass; never a reason to give up a result.
  return status === undefined || status === 429 || status >= 500;
};
/**
 * No answer, or a 5xx (a restart's 503, a database of the moment): sent again (under its key), the
 * call may succeed. Not a 429, unlike isTransient: for a call that waits (an acquire, a watch) it
 * is a bound the caller holds (maxLocksPerAgent, maxParkedPerAgent), which no resend mends and
 * which it must be told of; nor input the client could not send.
 */
export const isUnanswered = (error: unknown): boolean => {
  if (!isTransient(error)) return false;
  const status = httpStatus(error);
  return status === undefined || status >= 500;
};

/**
 * Runs `call` until it answers or fails for a reason no resend mends (isUnanswered: a 429 is the caller's to hear); waits between
 * tries, up to a second. `failed`: told of each retryable failure, before the wait; what it throws
 * ends the loop (a write whose outcome the caller's stop leaves unknown).
 */
export async function untilAnswered<T>(call: () => Promise<T>, signal: AbortSignal | undefined, failed?: (error: unknown) => void): Promise<T> {
  let retryMs = RETRY_START_MS;
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await call();
    } catch (error) {
      signal?.throwIfAborted();
      if (!isUnanswered(error)) throw error;
      failed?.(error);
      await sleep(retryMs, undefined, { signal }).catch(() => signal?.throwIfAborted());
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    }
  }
}

/** The shortest round of a watch or a follow: long-polls are not sent closer together than this (a server whose maxWaitMs is 0 answers at once). */
const MIN_ROUND_MS = 250;

/** Waits out what is left of a long-poll round sent at `sentAt` (performance.now() ms) that brought nothing new: MIN_ROUND_MS in all. */
export async function paceRound(sentAt: number, signal: AbortSignal | undefined): Promise<void> {
  const pause = sentAt + MIN_ROUND_MS - performance.now();
  if (pause > 0) await sleep(pause, undefined, { signal });
}

/**
 * One held lease: when it may still be valid (on this machine's clock), renewals, and settles.
 * The length granted is read on the server's clock (expiry - updatedAt of the answer), then laid
 * from the moment the request was sent, so the local deadline is never later than the server's.
 */
export class HeldLease {
  /**
   * Until then (Date.now() ms) the lease may still be valid; calls are retried until it passes.
   * Kept on both clocks, and the lease taken as over at the first to pass: the wall clock may be
   * set back (NTP, by hand), and the monotonic one stands still while the machine sleeps.
   */
  private deadline: number;
  /** The same deadline on monotonic() (ms). */
  private monotonicDeadline: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private interval: number;
  /** Set once the lease is known to be over (end()): no renewal, no settle sent again. */
  private ended: Error | undefined;
  /** Aborted END_GRACE_MS after end(): a call still unanswered then is given up. */
  private readonly over = new AbortController();
  /** keepAlive's renewal, once started; a renewal is under way while `renewing`. */
  private renew: (() => Promise<void>) | undefined;
  /** keepAlive's way to end the run once the lease is known to be gone (a refused checkpoint save says so). */
  private lost: ((error: unknown) => void) | undefined;
  private renewing = false;
  /** When the next renewal is due (monotonic() ms), whatever progress report may bring it forward. */
  private renewAt = 0;
  /** The progress report the next renewal carries, and when the last one went (monotonic() ms). */
  private report: WaitingReport | undefined;
  private reportedAt = -Infinity;
  /** Set when the server does not know a heartbeat's progress (older than this client): reports are not sent. */
  private progressUnknown = false;
  /** Set by endReports (the run over, settling, or its lease lost, stopped or ended): reports are not sent. */
  private reportsEnded = false;
  /** The checkpoint saves under way, one after another (saveCheckpoint): settles once the last one is answered. */
  private saves: Promise<void> = Promise.resolve();
  /**
   * The save waiting for those before it to be answered (not sent yet): a later save replaces its
   * value (only the last one is kept on the task), so saves made faster than the server answers
   * them cost one call each round, not one each, and the settle waits for one at most.
   */
  private waitingSave: WaitingReport | undefined;
  /** Set by closeCheckpoints (the run over, its outcome about to be sent) and stop(): no save is taken. */
  private checkpointsClosed = false;
  /** Set when the server does not know a heartbeat's checkpoint (older than this client): saves are not sent. */
  private checkpointsUnknown = false;
  /** Set once keepAlive found the lease lost (gone, past its run's time limit, or run out unreachable): no save is sent, which would renew a lease the run gave up. */
  private leaseLost = false;
  /**
   * When the run reaches its time limit (the task's maxRunMs; monotonic() ms, laid from the
   * claim's answer as the lease is): no renewal extends it, so none is sent past it, and the lease
   * counts as lost then. Infinity without a limit (or from a server older than run time limits).
   * Laid again from each renewal's answer (the earlier end kept).
   */
  private runEnd: number;
  /** The same end on Date.now(), as the lease's deadline is kept on both clocks. */
  private runEndWall: number;

  constructor(
    private readonly api: CoordinationApi,
    readonly task: ClaimedTask,
    private readonly agentId: string,
    private readonly leaseMs: number | undefined,
    private readonly onError: (error: unknown) => void,
    receivedAt: Moment,
  ) {
    const granted = HeldLease.granted(task, leaseMs);
    this.deadline = receivedAt.wall + granted;
    this.monotonicDeadline = receivedAt.ticks + granted;
    this.interval = Math.max(granted / 3, MIN_RENEW_MS);
    const runLeft = HeldLease.runLeft(task);
    this.runEnd = receivedAt.ticks + runLeft;
    this.runEndWall = receivedAt.wall + runLeft;
  }

  /** How long the run has left by an answer (its runDeadlineAt less its updatedAt, on the server's clock); Infinity without a limit. */
  private static runLeft(lease: { updatedAt: Date; runDeadlineAt?: Date | null }): number {
    return lease.runDeadlineAt ? lease.runDeadlineAt.getTime() - lease.updatedAt.getTime() : Number.POSITIVE_INFINITY;
  }

  /** Whether the run reached its time limit, by either clock. */
  private get runOver(): boolean {
    return monotonic() >= this.runEnd - TIMER_SLACK_MS || Date.now() >= this.runEndWall - TIMER_SLACK_MS;
  }

  /** Whether `lease` ends at its run's time limit: a renewal would extend it no further. */
  private static atRunEnd(lease: { leaseExpiresAt: Date | null; runDeadlineAt?: Date | null }): boolean {
    return !!lease.runDeadlineAt && !!lease.leaseExpiresAt && lease.leaseExpiresAt.getTime() >= lease.runDeadlineAt.getTime();
  }

  private static granted(lease: { leaseExpiresAt: Date | null; updatedAt: Date }, fallback: number | undefined): number {
    return lease.leaseExpiresAt ? lease.leaseExpiresAt.getTime() - lease.updatedAt.getTime() : (fallback ?? 30_000);
  }

  /** True while the lease may still be valid. */
  get mayBeValid(): boolean {
    return Date.now() < this.deadline && monotonic() < this.monotonicDeadline;
  }

  /**
   * Renews at a third of the granted lease until stop(); calls onLost once the lease is gone,
   * or once the run reaches its time limit (the task's maxRunMs: the server ends the run then).
   * A progress report waiting (reportProgress) rides on the next renewal, which then comes as
   * soon as PROGRESS_EVERY_MS has passed since the last report went. A lease cut at the run's
   * time limit is renewed only to carry a report.
   */
  keepAlive(onLost: (error: unknown) => void): void {
    // Once: a checkpoint save and a renewal under way may both find the lease gone, in either order.
    const lost = (error: unknown) => {
      if (this.leaseLost) return;
      this.leaseLost = true;
      clearTimeout(this.timer);
      this.endReports();
      onLost(error);
    };
    // A checkpoint save the server refused as the lease's end ends the run at once, as a renewal would.
    this.lost = lost;
    this.renew = async () => {
      if (this.runOver) return lost(new RunTimeLimitReached(this.task.maxRunMs ?? null));
      const sentAt = Date.now();
      // A report goes no sooner than PROGRESS_EVERY_MS after the last one, even on a renewal due
      // sooner (a short lease's): it waits for a later one.
      const ticks = monotonic();
      const carrying = this.report !== undefined && ticks >= this.reportedAt + PROGRESS_EVERY_MS - TIMER_SLACK_MS ? this.report : undefined;
      if (carrying) {
        this.report = undefined;
        this.reportedAt = ticks;
      }
      this.renewing = true;
      try {
        const renewed = await this.untilDeadline((signal) =>
          this.api.tasks.heartbeat.mutate(
            { taskId: this.task.id, agentId: this.agentId, leaseToken: this.task.leaseToken, leaseMs: this.leaseMs, ...(carrying ? { progress: carrying.value } : {}) },
            sentOnce(signal),
          ),
        );
        this.renewing = false;
        answer(carrying, true);
        // Stopped, or a checkpoint save found the lease gone while this renewal was under way: no renewal is planned.
        if (this.stopped || this.leaseLost) return;
        const granted = HeldLease.granted(renewed, this.leaseMs);
        this.deadline = sentAt + granted;
        this.monotonicDeadline = ticks + granted;
        const runLeft = HeldLease.runLeft(renewed);
        this.runEnd = Math.min(this.runEnd, ticks + runLeft);
        this.runEndWall = Math.min(this.runEndWall, sentAt + runLeft);
        this.interval = Math.max(granted / 3, MIN_RENEW_MS);
        this.plan(HeldLease.atRunEnd(renewed) ? this.runEnd : monotonic() + this.interval);
      } catch (error) {
        this.renewing = false;
        if (this.stopped || this.leaseLost) return answer(carrying, false);
        if (isLeaseGone(error)) {
          answer(carrying, false);
          // Refused as past the run's time limit, which the server says (details.runDeadlineAt):
          // this worker may lay the limit later than the server does (a claim's answer is laid
          // from when it arrived). Any other refusal (a cancel, a steal) is what it says, even
          // when it comes after the run's end here.
          return lost(isPastRunLimit(error) ? new RunTimeLimitReached(this.task.maxRunMs ?? null) : error);
        }
        if (carrying && !isTransient(error)) {
          // The server will not take this progress (too large, or a server older than progress
          // reports): the report is dropped, and the lease renewed at once without it.
          if (isUnknownField(error, "progress")) {
            this.progressUnknown = true;
            // A report made meanwhile would be refused as well: answered now, never sent.
            answer(this.report as WaitingReport | undefined, false);
            this.report = undefined;
            this.onError(new Error(`the server does not record progress (it is older than this client): task "${this.task.id}"'s reports are dropped`, { cause: error }));
          } else this.onError(error);
          answer(carrying, false);
          return this.plan(monotonic());
        }
        this.onError(error);
        // Transient: the report waits for the next try, unless a newer one replaced it meanwhile,
        // or the run ended meanwhile (it would reach the server after the settle).
        const newer = this.report as WaitingReport | undefined; // set by reportProgress during the call
        if (carrying && this.reportsEnded) answer(carrying, false);
        else if (carrying) this.report = newer ? { value: newer.value, callers: [...carrying.callers, ...newer.callers] } : carrying;
        // Retry soon, for as long as the lease may still be valid.
        if (!this.mayBeValid) return lost(new Error("lease expired while the server could not be reached", { cause: error }));
        this.plan(monotonic() + Math.min(this.interval, RETRY_MAX_MS));
      }
    };
    this.plan(HeldLease.atRunEnd(this.task) ? this.runEnd : monotonic() + this.interval);
  }

  /**
   * Sets the next renewal for `renewAt` (no later than the run's time limit, when the lease is
   * given up), sooner when a progress report waits and may go before then.
   */
  private plan(renewAt: number): void {
    clearTimeout(this.timer);
    this.renewAt = Math.min(renewAt, this.runEnd);
    const at = this.report ? Math.min(this.renewAt, this.reportedAt + PROGRESS_EVERY_MS) : this.renewAt;
    this.timer = setTimeout(() => void this.renew?.(), Math.max(0, at - monotonic()));
  }

  /**
   * Reports where the run is: sent with the next renewal (at most one every PROGRESS_EVERY_MS; a
   * later report replaces one that has not gone yet). True once the server recorded it or a later
   * one; false when it was not: the lease is over or the run settled first, the server refused it
   * (onError says why: too large, not JSON), or the server is older than progress reports.
   */
  reportProgress(value: JsonValue): Promise<boolean> {
    // undefined is no report (a heartbeat without progress would leave the last one as it was).
    if (value === undefined || this.reportsEnded || this.progressUnknown || this.renew === undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      if (this.report) {
        this.report.value = value;
        this.report.callers.push(resolve);
      } else this.report = { value, callers: [resolve] };
      if (!this.renewing) this.plan(this.renewAt);
    });
  }

  /**
   * Saves what the run has done (a heartbeat's `checkpoint`, renewing the lease too): the task's
   * checkpoint, handed to every later claim of it. Sent at once, or once the save under way is
   * answered (so the last one asked is the one kept; one made meanwhile is replaced by any later
   * one, which answers for both), and retried on transient errors while the lease may be valid.
   * True once the server stored it or a later one; false when it did not: the lease is over, the
   * run ended first, or the server refused it (onError says why: too large, not JSON, a server
   * older than checkpoints, said once). Never rejects.
   */
  saveCheckpoint(value: JsonValue): Promise<boolean> {
    // undefined is no checkpoint (a heartbeat without one leaves the last as it was).
    if (value === undefined || this.checkpointsClosed || this.checkpointsUnknown || this.ended || this.leaseLost) return Promise.resolve(false);
    // Sent once the saves before it answered: a copy of it now, so a value the handler changes
    // after the call (an array it goes on filling) goes as it was when saved.
    let copy: JsonValue;
    try {
      copy = structuredClone(value);
    } catch (error) {
      // Not a plain value (a function inside): superjson would drop that part without a word.
      this.onError(new Error(`task "${this.task.id}"'s checkpoint was not saved: it is not JSON (${error instanceof Error ? error.message : String(error)})`, { cause: error }));
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const waiting = this.waitingSave;
      if (waiting) {
        waiting.value = copy;
        waiting.callers.push(resolve);
        return;
      }
      const save: WaitingReport = { value: copy, callers: [resolve] };
      this.waitingSave = save;
      this.saves = this.saves.then(async () => {
        // Its turn: taken, so a save made from now on waits for its answer.
        this.waitingSave = undefined;
        let saved = false;
        try {
          saved = await this.sendCheckpoint(save.value);
        } catch {
          // Only an onError that threw: the save is answered all the same, and the saves after it go.
        } finally {
          answer(save, saved);
        }
      });
    });
  }

  /** One checkpoint sent until the server answers it or no resend can help. */
  private async sendCheckpoint(value: JsonValue): Promise<boolean> {
    for (let delay = RETRY_START_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      if (this.ended || this.stopped || this.leaseLost || this.checkpointsUnknown) return false;
      try {
        await this.untilDeadline((signal) =>
          this.api.tasks.heartbeat.mutate({ taskId: this.task.id, agentId: this.agentId, leaseToken: this.task.leaseToken, leaseMs: this.leaseMs, checkpoint: value }, sentOnce(signal)),
        );
        return true;
      } catch (error) {
        if (this.ended || this.stopped) return false;
        // The lease is gone (cancelled, taken over, past the run's time limit): the run ends now.
        if (isLeaseGone(error)) {
          this.lost?.(isPastRunLimit(error) ? new RunTimeLimitReached(this.task.maxRunMs ?? null) : error);
          return false;
        }
        if (isUnknownField(error, "checkpoint")) {
          // Said once: every later save would be refused as well.
          this.checkpointsUnknown = true;
          this.onError(new Error(`the server does not keep checkpoints (it is older than this client): task "${this.task.id}"'s checkpoint was not saved`, { cause: error }));
          return false;
        }
        this.onError(error);
        if (!isTransient(error) || !this.mayBeValid) return false;
        await sleep(delay, undefined, { signal: this.over.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * The run is over, its outcome about to be sent: no checkpoint is taken from now, and those
   * under way are waited for (bounded by the lease: each call is given up once it may have run
   * out), so a failed run's retry is handed the last checkpoint it saved.
   */
  closeCheckpoints(): Promise<void> {
    this.checkpointsClosed = true;
    return this.saves;
  }

  /** The run is over or settling: the report waiting, if any, and any made from now on, answer false unsent. */
  endReports(): void {
    this.reportsEnded = true;
    const report = this.report;
    this.report = undefined;
    answer(report, false);
  }

  /** How long the lease may still be valid (ms; negative once over), by the clock that says least. */
  private timeLeft(): number {
    return Math.min(this.deadline - Date.now(), this.monotonicDeadline - monotonic());
  }

  stop(): void {
    this.stopped = true;
    this.checkpointsClosed = true;
    clearTimeout(this.timer);
    this.endReports();
  }

  /**
   * The lease is over for certain (the server handed a newer lease on the task to this worker):
   * renewals stop, a settle is not sent again, and one under way answers "lost" with `reason` if
   * it has no answer within END_GRACE_MS (a settle that did commit, a release say, keeps its answer:
   * the newer lease may follow its commit closely).
   */
  end(reason: Error): void {
    if (this.ended) return;
    this.ended = reason;
    this.stop();
    setTimeout(() => this.over.abort(reason), END_GRACE_MS).unref();
  }

  /**
   * Runs `call` with a signal that aborts once the lease may have run out: a server that hangs
   * with its port open (paused, a frozen VM) must not hold a renewal or a settle, and with it
   * stop(), for longer than the lease could be valid (the call then fails as a broken connection
   * does); or once end()'s grace is over. Built by hand: Node 20's AbortSignal.any lets a
   * timeout signal it combines be collected before it fires (nodejs/node#57736).
   */
  private async untilDeadline<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    // At least CALL_MIN_MS: the local deadline errs early (the lease is laid from when the claim
    // was sent), so a call made just past it may still be taken.
    const timer = setTimeout(() => controller.abort(new DOMException("The lease may have run out", "TimeoutError")), Math.max(CALL_MIN_MS, this.timeLeft()));
    const onOver = () => controller.abort(this.over.signal.reason);
    if (this.over.signal.aborted) onOver();
    else this.over.signal.addEventListener("abort", onOver, { once: true });
    try {
      return await call(controller.signal);
    } finally {
      clearTimeout(timer);
      this.over.signal.removeEventListener("abort", onOver);
    }
  }

  /**
   * Runs a settle (complete, fail, release), retried on transient errors while the lease may be
   * valid (a retried complete is idempotent on the server). "lost": the lease is gone, or ran out
   * while the server could not be reached; "refused": the server answered that it will not take
   * this call as sent (a 4xx other than a lost lease: a result too large, bad input), so sending
   * it again would not help.
   */
  async settle(call: (signal: AbortSignal) => Promise<unknown>): Promise<SettleOutcome> {
    for (let delay = RETRY_START_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      if (this.ended) return { kind: "lost", error: this.ended };
      try {
        await this.untilDeadline(call);
        return { kind: "settled" };
      } catch (error) {
        if (this.ended) return { kind: "lost", error: this.ended };
        if (isLeaseGone(error)) return { kind: "lost", error };
        this.onError(error);
        if (!isTransient(error)) return { kind: "refused", error };
        // Never turn a success into a failure: past the lease, the server retries the task itself.
        if (!this.mayBeValid) return { kind: "lost", error: new Error("the lease ran out while the server could not be reached", { cause: error }) };
        await sleep(delay, undefined, { signal: this.over.signal }).catch(() => undefined);
      }
    }
  }
}
