// An agent worker loop on top of the client: registers the agent, keeps it and its leases
// alive with heartbeats, claims with long-polling, runs the handler, and settles the task; a
// completed task's settle claims the next one in the same call (tasks.completeAndClaim).
// Delivery is at-least-once: a handler can run again after a crash or an expired lease,
// so handlers should be idempotent (the task id and leaseToken help).
// It rides out a server restart: renewals and settles are retried while the lease may still be
// valid (lease-calls.ts); a claim whose answer was lost is sent again with its idempotencyKey (the
// server answers the lease it took, with its context), and a settle's next task whose answer was
// lost is found among the agent's leases and run (adoptOrphans).
import { setTimeout as sleep } from "node:timers/promises";
import { setMaxListeners } from "node:events";
import { randomUUID } from "node:crypto";
import { HeldLease, isCancelledTask, isCredentialRefused, isLeaseGone, isTransient, isUnanswered, RunTimeLimitReached, TaskCancelled, isUnknownField, isUnknownProcedure, momentNow, type Moment, type SettleOutcome } from "./lease-calls.js";
import { watchCancels } from "./cancel-watch.js";
import { unsendableCause } from "./serialize-input.js";
import type { ClaimedTask, CoordinationApi, JsonObject, JsonValue, RouterInputs, RouterOutputs } from "./types.js";
import { RunLog, type LogOptions } from "./run-log.js";
import { sentOnce } from "./send-once.js";
import { ParkingGate, PARKED_CLAIMS } from "./parking-gate.js";

export type { ClaimedTask };

/** A claimed task as the handler gets it: its payload as parsePayload returned it (JSON without one). */
export type WorkerTask<P = JsonValue> = Omit<ClaimedTask, "payload"> & { payload: P };

/** What a handler can do about its own run besides returning or throwing: the third argument of a TaskHandler. */
export interface TaskRun {
  /**
   * Reports where the run is (any JSON, at most 16,384 bytes as JSON: `{ step: "drafting", done:
   * 2, of: 5 }`): the task's `progress` until its next claim, published as a task.progress event.
   * It rides on a lease renewal, at most one a second (PROGRESS_EVERY_MS); a later report replaces
   * one not sent yet, so reporting often costs nothing. Resolves true once the server recorded it
   * (or a later one), false when it was not: the run ended first (a report still waiting when the
   * handler returns is dropped: await the last one to be sure it is kept), the lease is over, or
   * the server refused it (onError says why). Never rejects, so it need not be awaited.
   */
  reportProgress(progress: JsonValue): Promise<boolean>;
  /**
   * Saves what the run has done so far (any JSON, at most 65,536 bytes as JSON: `{ pagesDone: 40,
   * cursor: "p41" }`) as the task's checkpoint: every later run of the task (a retry after a
   * failure or a crash, a run given back or taken over) is handed it as `task.checkpoint`, so it
   * goes on from there instead of from the beginning. Sent at once (it renews the lease too), in
   * the order saved, as it was when saved (a copy: the handler may go on changing the value; one
   * made while another is under way waits, replaced by any later one: only the last is kept);
   * `null` clears it. Resolves true once the server stored it or a later one, false when it did
   * not: the run ended first, the lease is over (the run's signal aborts then, as a lost renewal
   * aborts it), the value is not JSON or the server refused it (onError says why: too large, too
   * deep), or it was undefined (no checkpoint: nothing sent). Never rejects. Await it before a
   * step whose effects must not be done twice; the worker waits for saves still under way before
   * it settles the run.
   */
  saveCheckpoint(checkpoint: JsonValue): Promise<boolean>;
  /**
   * Adds a line to the run's log (tasks.appendLog: `message`, 1 to 16,384 characters; `level`
   * debug, info by default, warn or error; `data`, any JSON up to 16,384 bytes), for operators and
   * other agents to read with tasks.log while the run goes on and after. Lines logged within
   * LOG_FLUSH_MS (a second) go in one append (100 lines and 256 KiB at most), in order; the worker
   * sends those still waiting before it settles the run (waiting up to 5 s). Resolves true once the
   * server stored the line, false when it did not: the run is over (the handler returned, its lease
   * ended), or the server refused it (onError says why; a line refused costs that line alone, not
   * the others sent with it). Never rejects, so
   * it need not be awaited.
   */
  log(message: string, options?: LogOptions): Promise<boolean>;
}

/**
 * Runs one task. The signal aborts when the worker gives up on the run: the task was cancelled
 * (the reason a TaskCancelled, at once: the worker follows the server's cancels), the lease was
 * lost (expired or taken over), its run reached the task's maxRunMs (the reason a
 * RunTimeLimitReached; the server ends the run), taskTimeoutMs passed, or stop() ran out of
 * patience. Its `reason` says which. From then on the handler's outcome is ignored. `run`
 * reports the run's progress.
 */
export type TaskHandler<P = JsonValue> = (task: WorkerTask<P>, signal: AbortSignal, run: TaskRun) => Promise<JsonValue | void>;

/** How runWorker claims and runs tasks: the client, the agent, the handler, and how much at once. */
export interface WorkerOptions<P = JsonValue> {
  api: CoordinationApi;
  agentId: string;
  /**
   * The agent's registration: runWorker registers it when it starts, replacing what was
   * registered before under this id (capabilities, metadata, A2A card: give the card here to keep one).
   */
  capabilities?: string[];
  metadata?: JsonObject;
  /** An A2A Agent Card: its skills' ids join the capabilities (agents.register's `card`). */
  card?: RouterInputs["agents"]["register"]["card"];
  /** Queues to claim from (default: any). */
  queues?: string[];
  /**
   * Checks each task's payload and gives it its type before the handler runs, e.g. a zod
   * schema's `parse`. A payload it throws for can never succeed (a poison message): the task is
   * failed without retry, so it is dead-lettered at once with the thrown error's message, and the
   * handler never sees it. Without it the handler gets the payload as JSON.
   */
  parsePayload?: (payload: JsonValue) => P;
  handler: TaskHandler<P>;
  /**
   * Tasks run at once (default 1). Idle, at most 8 of its loops park a claim at once (each is one
   * of the agent's maxParkedPerAgent long-polls); the others wait their turn in the worker.
   */
  concurrency?: number;
  /** Lease per claim (default: the server's). Renewed at a third of what the server actually granted. */
  leaseMs?: number;
  /** Long-poll length per claim (default 10 s). */
  waitMs?: number;
  /** Agent heartbeat interval (default 5 s). */
  heartbeatMs?: number;
  /** A handler running longer than this is aborted and its task failed (retried as usual). Default: no limit. */
  taskTimeoutMs?: number;
  /** How long stop() waits for running handlers before aborting them and releasing their tasks (default 30 s). */
  stopTimeoutMs?: number;
  /**
   * Other workers run under the same agentId (replicas of one role; default false). This worker
   * then cannot tell their tasks from its own: stop() does not deregister the agent (that would
   * release every task held under the id), and a claim whose answer was lost with a crashed
   * server is left to run out its lease rather than found and run (adoption would take the other
   * replicas' tasks too). The agent goes offline by itself agentOfflineMs after the last one stops.
   */
  sharedAgentId?: boolean;
  /**
   * Called with every error the worker rides out (a server unreachable, a call retried, a lease
   * lost, a result refused). Default: one line on stderr at most every 10 s.
   */
  onError?: (error: unknown) => void;
}

/** The longest a RetryLater defers a task: the server's bound on a release's delayMs (7 days). */
const MAX_DEFER_MS = 7 * 24 * 3_600_000;

/**
 * Thrown by a handler: the task runs again after `delayMs` (clamped to 0 to 7 days), by this
 * worker or another.
 * - By default not a failure: the task is given back uncharged (no attempt, no error recorded;
 *   counted in `deferred`). For what is not the task's fault: a model API's rate limit (429 with
 *   Retry-After), a resource busy. A handler that keeps deferring a task defers it for good: the
 *   server counts no attempt for it.
 * - With `{ chargeAttempt: true }`, a failure that says when to try again (a 503 with
 *   Retry-After, a service down for maintenance): the run fails with `message` as its error and
 *   the attempt counts (tasks.fail's `retryAfterMs`), so the last attempt is dead-lettered;
 *   counted in `failed`. Against a server older than retryAfterMs the run fails all the same,
 *   after the task's backoff (onError says so).
 */
export class RetryLater extends Error {
  readonly delayMs: number;
  /** Whether the run fails, its attempt counted (true), or the task is given back uncharged (false). */
  readonly chargeAttempt: boolean;
  constructor(delayMs: number, message = `retry in ${delayMs} ms`, options: { chargeAttempt?: boolean } = {}) {
    super(message);
    this.name = "RetryLater";
    // Clamped to 0 to 7 days: Infinity (a Retry-After read as "not before forever") is the longest
    // wait, not none; NaN, no delay at all, is none.
    this.delayMs = Number.isNaN(delayMs) ? 0 : Math.min(Math.max(0, Math.round(delayMs)), MAX_DEFER_MS);
    this.chargeAttempt = options.chargeAttempt === true;
  }
}

/**
 * Thrown by a handler that knows no retry can succeed (a downstream API's 400, input the task can
 * never be done with): the task fails at once to the dead-letter queue with `message` as its
 * error, whatever attempts it has left, and counts as failed. Any other error is retried until
 * the task's maxAttempts.
 */
export class DeadLetter extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DeadLetter";
  }
}

/** A running worker (runWorker): its counts so far, and stop(). */
export interface Worker {
  /**
   * Stops claiming, lets running handlers finish (up to stopTimeoutMs; then aborts them and
   * releases their tasks without charging an attempt), deregisters the agent (unless
   * sharedAgentId).
   */
  stop(): Promise<void>;
  /** Tasks settled so far. */
  readonly completed: number;
  readonly failed: number;
  /** Tasks run but not settled by this worker: the lease was lost, or the server never took the result. */
  readonly lost: number;
  /** Runs stopped because their task was cancelled (an admin, or the agent that enqueued it): nothing to settle, no error. */
  readonly cancelled: number;
  /** Tasks its handler deferred (RetryLater without chargeAttempt), given back uncharged. */
  readonly deferred: number;
  /**
   * Settles once the worker claims and runs no more: when stop() has let its runs end, or when
   * the server refused its credential or its registration for good (onError said why). A process
   * that serves a health check can watch it: the worker is then done, whatever else keeps the
   * process up. stop() tidies up after that (gives back what it adopted but never ran,
   * deregisters): await stop() itself before exiting.
   */
  readonly closed: Promise<void>;
}

/** A task leased to this worker, and when it was received (or, from complete-and-claim, sent for): the lease is laid from then. */
interface Claimed {
  task: ClaimedTask;
  receivedAt: Moment;
}

/** Why the worker gave up on a run before its handler settled it. */
type Interruption = "lost" | "cancelled" | "timeout" | "stopped";

/** How many finished leases the worker remembers, to skip one that arrives a second time. */
const FINISHED_REMEMBERED = 1000;
/** After a failed claim, wait this long before the next. */
const CLAIM_RETRY_MS = 500;

/**
 * A thrown value as text, whatever it is: never throws. A handler may throw anything, and this
 * text is computed while the run is settled: a throw here (String() of a null-prototype object,
 * `.trim()` of an Error whose message is not a string, a getter or a Proxy trap that throws) was
 * taken by the settle's retry loop for a network error, so the fail was "sent again" until the
 * lease ran out, and, the lease being renewed meanwhile, the run's slot and its task were held for good.
 */
function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if ((value !== null && typeof value === "object") || typeof value === "function") {
    try {
      const json = JSON.stringify(value);
      if (json !== undefined && json !== "{}") return json;
    } catch {
      // a cycle or a throwing getter: its String() then
    }
  }
  try {
    return String(value);
  } catch {
    // no toString or Symbol.toPrimitive (Object.create(null)), or one that throws
  }
  try {
    return Object.prototype.toString.call(value);
  } catch {
    return `a thrown ${typeof value} that cannot be read as text`;
  }
}

/** Whether `value` is an instance of `type`, false where asking throws (a Proxy whose getPrototypeOf trap does). */
function isInstance<T>(value: unknown, type: abstract new (...args: never[]) => T): value is T {
  try {
    return value instanceof type;
  } catch {
    return false;
  }
}

/** An error's message; a thrown value that is no Error as its JSON when it has one (`{"code":42}`, not "[object Object]"). Never throws. */
const messageOf = (error: unknown): string => {
  if (!isInstance(error, Error)) return textOf(error);
  try {
    // An Error whose message was set to undefined or null has none: failureText names it then.
    const message: unknown = error.message;
    return message == null ? "" : textOf(message);
  } catch {
    return `${errorName(error)} whose message cannot be read`;
  }
};

/** An Error's name, "Error" where reading it throws or it is no string. */
function errorName(error: unknown): string {
  try {
    const name = (error as Error).name;
    return typeof name === "string" && name !== "" ? name : "Error";
  } catch {
    return "Error";
  }
}

/** The task as the handler gets it, or why its payload was refused (a payload parsePayload threw for). */
function toWorkerTask<P>(task: ClaimedTask, parsePayload: ((payload: JsonValue) => P) | undefined): { ok: true; task: WorkerTask<P> } | { ok: false; error: Error } {
  if (parsePayload === undefined) return { ok: true, task: task as WorkerTask<P> };
  try {
    return { ok: true, task: { ...task, payload: parsePayload(task.payload as JsonValue) } };
  } catch (error) {
    return { ok: false, error: new Error(`parsePayload refused the payload: ${messageOf(error)}`, { cause: error }) };
  }
}

/** The most characters of an error a fail stores: the server refuses longer (tasks.fail's `error`, 1 to 10,000). */
export const MAX_ERROR_CHARS = 10_000;

/**
 * What a fail reports of a handler's error, as the server takes it: its message, or its name when
 * it has none (an empty error is refused); valid Unicode (a lone surrogate is refused); cut to
 * MAX_ERROR_CHARS with a note of how much was left out (a stack or a model's output can be longer).
 */
export function failureText(error: unknown): string {
  const message = messageOf(error);
  const text = (message.trim() === "" ? `${isInstance(error, Error) ? errorName(error) : typeof error} with no message` : message).toWellFormed();
  if (text.length <= MAX_ERROR_CHARS) return text;
  const note = ` … (${text.length} characters, cut)`;
  return text.slice(0, MAX_ERROR_CHARS - note.length).toWellFormed() + note;
}

/** Why a result was not taken: the client could not send it, or the server refused it. */
function refusedResult(error: unknown): string {
  const unsent = unsendableCause(error);
  return unsent ? `the handler's result cannot be sent: ${unsent.reason}` : `the server refused the handler's result: ${messageOf(error)}`;
}

/**
 * The worker's errors when no onError is given: one line on stderr, at most every 10 s (a worker
 * retrying a server that is down would write one a second), with how many were left out.
 */
function reportToStderr(agentId: string): (error: unknown) => void {
  let lastAt = 0;
  let skipped = 0;
  return (error) => {
    const now = Date.now();
    if (now - lastAt < 10_000) return void skipped++;
    lastAt = now;
    const more = skipped > 0 ? ` (and ${skipped} more errors since the last line)` : "";
    skipped = 0;
    process.stderr.write(`coordination worker ${agentId}: ${messageOf(error)}${more}\n`);
  };
}

/**
 * The numbers of a worker's options, checked before anything is sent. A wrong one did no good
 * later: concurrency 0 or below started no loop, a worker that silently never claimed;
 * NaN or Infinity threw only after the agent was registered and its heartbeat started (a timer
 * that kept the process up); a negative waitMs was refused by the server on every claim, one
 * onError line every half second for good; heartbeatMs 0 sent heartbeats back to back; a
 * negative stopTimeoutMs made stop() throw before it deregistered.
 */
function checkNumbers(options: Pick<WorkerOptions<unknown>, "concurrency" | "leaseMs" | "waitMs" | "heartbeatMs" | "taskTimeoutMs" | "stopTimeoutMs">): void {
  const check = (name: keyof typeof options, value: number | undefined, least: number, integer: boolean) => {
    if (value === undefined) return;
    if (typeof value !== "number" || !Number.isFinite(value) || value < least || (integer && !Number.isInteger(value))) {
      throw new TypeError(`runWorker: ${name} must be ${integer ? "a whole number" : "a finite number"} of at least ${least}; got ${String(value)}`);
    }
  };
  check("concurrency", options.concurrency, 1, true);
  check("leaseMs", options.leaseMs, 1, false);
  check("waitMs", options.waitMs, 0, false);
  check("heartbeatMs", options.heartbeatMs, 1, false);
  check("taskTimeoutMs", options.taskTimeoutMs, 1, false);
  check("stopTimeoutMs", options.stopTimeoutMs, 0, false);
  // These three are timers' lengths: past 2^31 - 1 ms Node fires a timer at once (with a
  // TimeoutOverflowWarning), so a long taskTimeoutMs timed every task out as it began, a long
  // heartbeatMs sent heartbeats back to back, a long stopTimeoutMs aborted handlers at once.
  for (const name of ["heartbeatMs", "taskTimeoutMs", "stopTimeoutMs"] as const) {
    const value = options[name];
    if (value !== undefined && value > MAX_TIMER_MS) throw new TypeError(`runWorker: ${name} must be at most ${MAX_TIMER_MS} (a timer holds no longer: about 24.8 days); got ${String(value)}`);
  }
}

/** The longest a Node timer waits (2^31 - 1 ms); a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** Rejects with the signal's reason once it aborts. */
const whenAborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));

/**
 * Starts a worker; with parsePayload, its handler's payload has the type parsePayload returns.
 * Without it the payload is JSON: a handler declaring a narrower type does not compile.
 */
export function runWorker<P>(options: WorkerOptions<P> & { parsePayload: (payload: JsonValue) => P }): Promise<Worker>;
export function runWorker(options: WorkerOptions): Promise<Worker>;
export async function runWorker<P>(options: WorkerOptions<P>): Promise<Worker> {
  const { api, agentId, handler } = options;
  // The server refuses an empty list on every claim; said once here, not as a claim error a second.
  if (options.queues?.length === 0) throw new TypeError("runWorker: queues is empty; name at least one queue, or leave it out to claim from any queue");
  checkNumbers(options);
  const onError = options.onError ?? reportToStderr(agentId);
  // Aborts claims only; each run has its own controller, so stopping never aborts a handler by itself.
  const claiming = new AbortController();
  // Each loop's long-poll claim listens on it: more than ten loops are not a leak.
  setMaxListeners(Math.max(10, (options.concurrency ?? 1) * 2), claiming.signal);
  /**
   * The runs in progress, by task id: the lease each runs under, its interrupt for stop() past
   * its timeout, and its end. A newer lease on a task that is running here (the server gave the
   * task back and this worker claimed it again: a release by an admin, a deregistration of the
   * agent, a replica stopping under the same id) supersedes the run: the old lease is over.
   */
  const running = new Map<string, { leaseToken: number; stopNow: () => void; supersede: (by: number) => void; cancel: (reason: string | null) => void; ended: Promise<unknown> }>();
  /** The newest lease of each task waiting for an older run of it to end: only that one starts. */
  const newestWaiting = new Map<string, number>();
  /** Whether a run here holds `task`'s lease, or a newer one: the same lease can reach the worker twice (its claim's answer, adoption). */
  const runsLease = (task: { id: string; leaseToken: number }) => (running.get(task.id)?.leaseToken ?? -1) >= task.leaseToken;
  /** Tasks held for this agent that no loop runs yet (adopted after a lost claim answer). */
  const backlog: Claimed[] = [];
  /** Leases run to their end lately ("taskId:leaseToken"), so one that arrives twice is not run again. */
  const finished = new Set<string>();
  let orphansSuspected = false;
  /** False once the server said it has no tasks.completeAndClaim (an older server): plain complete then. */
  let serverCompletesAndClaims = true;
  /** False once the server refused a claim's idempotencyKey as unknown (an older server): claims go without, as before. */
  let serverKeysClaims = true;
  let adopting: Promise<void> | undefined;
  let completed = 0;
  let failed = 0;
  let lost = 0;
  let cancelled = 0;
  let deferred = 0;
  /** Set once the server refused retryAfterMs as a field it does not know (older than it): not sent again. */
  let retryAfterRefused = false;

  // Every call of the worker is sent once (sentOnce), not waited with for a server
  // (waitForServerMs): its loops retry, and report through onError, by themselves; runWorker
  // returns at once when no server answers, its first registration retried in the background.
  const register = (signal?: AbortSignal) =>
    api.agents.register.mutate(
      { agentId, capabilities: options.capabilities ?? [], metadata: options.metadata ?? {}, ...(options.card === undefined ? {} : { card: options.card }) },
      sentOnce(signal),
    );
  /** Settles once the agent is registered (or the worker stops): the loops claim only then. */
  let registered: Promise<void> = Promise.resolve();
  /** The server refused the registration for good: no heartbeat either (the agent heartbeat stops itself). */
  let registrationRefused = false;
  try {
    await register();
  } catch (error) {
    // Refused (a credential, the input): runWorker fails. Not reached (a worker started before
    // its server, a restart): it waits for the server, retrying, and reports through onError.
    if (!isTransient(error)) throw error;
    onError(error);
    registered = (async () => {
      for (let delay = CLAIM_RETRY_MS; !claiming.signal.aborted; delay = Math.min(delay * 2, 5000)) {
        await sleep(delay, undefined, { signal: claiming.signal }).catch(() => undefined);
        if (claiming.signal.aborted) return;
        try {
          return void (await register(claiming.signal));
        } catch (again) {
          if (claiming.signal.aborted) return;
          if (isTransient(again)) {
            onError(again);
            continue;
          }
          // Refused now (a credential revoked meanwhile, say): no retry mends it. The worker
          // claims nothing, says why once, and its stop() returns at once.
          onError(new Error(`runWorker: the server refused the agent's registration, so this worker claims nothing: ${messageOf(again)}`, { cause: again }));
          claiming.abort();
          registrationRefused = true;
          return;
        }
      }
    })();
  }
  const heartbeatMs = options.heartbeatMs ?? 5000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  let beating = false;
  const agentHeartbeat = setInterval(() => {
    if (registrationRefused) return clearInterval(agentHeartbeat);
    // One at a time: a server that hangs must not collect a heartbeat every interval.
    if (beating) return;
    beating = true;
    const signal = AbortSignal.timeout(Math.max(heartbeatMs, 5000));
    api.agents.heartbeat
      .mutate({ agentId }, sentOnce(signal))
      .then(async (agent) => {
        // The registration is gone (deregistered by an admin, or by another process stopping
        // under this id) and the heartbeat made a bare one: claims would offer no capabilities,
        // and tasks that need them would wait for a worker that no longer asks for them.
        if (registrationLost(agent)) await register(signal);
      })
      .catch(onError)
      .finally(() => (beating = false));
  }, heartbeatMs);
  /** Whether `agent`, as the server has it now, lost what this worker registered: the bare registration a sign of life makes. */
  const registrationLost = (agent: { capabilities: string[]; metadata: JsonObject }) =>
    agent.capabilities.length === 0 && Object.keys(agent.metadata).length === 0 && ((options.capabilities?.length ?? 0) > 0 || Object.keys(options.metadata ?? {}).length > 0 || options.card !== undefined);

  /**
   * A claim that failed without an answer (network error, 5xx, server restart) may have leased a
   * task the worker never heard of: it would sit out its lease and be charged an attempt. Once
   * the server answers again, the tasks it holds for this agent that no loop runs are adopted.
   */
  const adoptOrphans = (signal?: AbortSignal): Promise<void> =>
    (adopting ??= (async () => {
      // The agent's other tasks may be another replica's, running there.
      if (options.sharedAgentId === true) return void (orphansSuspected = false);
      const held = await api.tasks.list.query({ agentId, status: "claimed", limit: 500 }, sentOnce(signal));
      for (const task of held.items) {
        if (!asClaimed(task) || runsLease(task) || backlog.some((b) => b.task.id === task.id && b.task.leaseToken >= task.leaseToken)) continue;
        // Renewed first, and laid from that answer: a list's updatedAt is its last write's time,
        // not now, and a lease (or a run's time limit) laid from it would end here after it
        // ended on the server. A lease gone meanwhile (expired, its run's time up) is not adopted.
        const receivedAt = momentNow();
        const renewed = await api.tasks.heartbeat
          .mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken }, sentOnce(signal))
          .catch((error: unknown) => {
            if (isLeaseGone(error)) return undefined;
            throw error;
          });
        const claimed = renewed && asClaimed(renewed);
        if (claimed) backlog.push({ task: claimed, receivedAt });
      }
      orphansSuspected = false;
    })().finally(() => {
      adopting = undefined;
    }));

  /**
   * Runs a task and settles it. A completed task's settle also claims this loop's next task
   * (complete-and-claim: one round trip a task); that task is returned, to run next.
   */
  const runOne = async (task: ClaimedTask, receivedAt: Moment): Promise<Claimed | undefined> => {
    // The same lease can reach the worker twice (its claim answer, and adoption): run it once.
    const leaseKey = `${task.id}:${task.leaseToken}`;
    if (runsLease(task) || finished.has(leaseKey)) return undefined;
    // A run of an older lease on this task: that lease is over, and its run ends (as a lost lease
    // does: its renewals and settles stop at once) before this one starts, so the worker never
    // runs one task twice at once. Looked at again after each wait: another newer lease may have
    // arrived meanwhile, and only the newest runs.
    if (running.has(task.id)) {
      if ((newestWaiting.get(task.id) ?? -1) >= task.leaseToken) return undefined;
      newestWaiting.set(task.id, task.leaseToken);
      for (let older = running.get(task.id); older !== undefined; older = running.get(task.id)) {
        if (newestWaiting.get(task.id) !== task.leaseToken) return undefined;
        if (older.leaseToken >= task.leaseToken) {
          newestWaiting.delete(task.id);
          return undefined;
        }
        older.supersede(task.leaseToken);
        await older.ended;
      }
      // A newer lease came while this one waited: it runs, this one never starts (its lease is over).
      if (newestWaiting.get(task.id) !== task.leaseToken) return undefined;
      newestWaiting.delete(task.id);
    }
    if (finished.has(leaseKey)) return undefined;
    // Stopped meanwhile: not started, so given back uncharged with the backlog by stop().
    if (claiming.signal.aborted) return void backlog.push({ task, receivedAt });
    const run = new AbortController();
    let interruption: Interruption | undefined;
    const interrupt = (why: Interruption, reason: Error) => {
      if (interruption) return;
      interruption = why;
      run.abort(reason);
    };
    const lease = new HeldLease(api, task, agentId, options.leaseMs, onError, receivedAt);
    const runLog = new RunLog(api, { taskId: task.id, agentId, leaseToken: task.leaseToken }, onError);
    let ended!: () => void;
    const entry = {
      leaseToken: task.leaseToken,
      stopNow: () => interrupt("stopped", new Error("worker stopped")),
      supersede: (by: number) => {
        const over = new Error(`lease ${task.leaseToken} is over: the server handed this worker lease ${by} on the task`);
        interrupt("lost", over);
        lease.end(over);
      },
      cancel: (reason: string | null) => {
        const why = new TaskCancelled(task.id, reason);
        interrupt("cancelled", why);
        lease.end(why);
      },
      ended: new Promise<void>((resolve) => (ended = resolve)),
    };
    running.set(task.id, entry);
    // Renewed until the task is settled: settles retried across an outage must not outlive the lease.
    // A run that reached its time limit is aborted with that as the reason (RunTimeLimitReached): the handler can tell it apart.
    // A renewal refused because the task was cancelled (the cancel's event missed: a stream down) ends it as the event would have.
    lease.keepAlive((error) =>
      isCancelledTask(error)
        ? interrupt("cancelled", new TaskCancelled(task.id, null))
        : interrupt("lost", error instanceof RunTimeLimitReached ? error : new Error(`lease lost: ${messageOf(error)}`, { cause: error })),
    );
    const { taskTimeoutMs } = options;
    const timeout =
      taskTimeoutMs === undefined ? undefined : setTimeout(() => interrupt("timeout", new Error(`handler timed out after ${taskTimeoutMs} ms`)), taskTimeoutMs);

    let outcome: { ok: true; result: JsonValue | void } | { ok: false; error: unknown; retry: boolean };
    try {
      const given = toWorkerTask(task, options.parsePayload);
      if (!given.ok) outcome = { ok: false, error: given.error, retry: false };
      // Once the signal fires the run is over, even for a handler that ignores it: it cannot hold the slot or the lease.
      else {
        const handed: TaskRun = {
          reportProgress: (progress) => lease.reportProgress(progress),
          saveCheckpoint: (checkpoint) => lease.saveCheckpoint(checkpoint),
          log: (message, logOptions) => runLog.log(message, logOptions),
        };
        outcome = { ok: true, result: await Promise.race([handler(given.task, run.signal, handed), whenAborted(run.signal)]) };
      }
    } catch (error) {
      outcome = { ok: false, error, retry: !isInstance(error, DeadLetter) };
    } finally {
      clearTimeout(timeout);
      // The run is over: a report still waiting would reach the server after its settle.
      lease.endReports();
    }
    // Its log lines and checkpoint saves still under way go before the settle: the server takes
    // none once the run settled, and a retry is handed the last checkpoint stored.
    await Promise.all([runLog.close(), lease.closeCheckpoints()]);

    const fenced = { taskId: task.id, agentId, leaseToken: task.leaseToken };
    let next: Claimed | undefined;
    let settleAttempts = 0;
    /** A run whose outcome the server did not take: counted, and told to onError once, with why. */
    const lose = (cause: unknown) => {
      lost++;
      onError(new Error(`runWorker: lost the lease on task "${task.id}" (lease ${task.leaseToken}), so its run's outcome was not stored: ${messageOf(cause)}`, { cause }));
    };
    try {
      /** A settle's outcome: true once the server took it, else counted lost (and told onError: the lease gone, or refused by settle). */
      const counted = (as: SettleOutcome): boolean => {
        if (as.kind === "lost") lose(as.error);
        else if (as.kind === "refused") lost++;
        return as.kind === "settled";
      };
      const settled = async (call: (signal: AbortSignal) => Promise<unknown>): Promise<boolean> => counted(await lease.settle(call));
      /** Fails the task with `error` (retried after `retryAfterMs` when given); counted as failed once the server took it. */
      const fail = async (error: unknown, retry = true, retryAfterMs?: number) => {
        // Worked out once, before the settle: nothing the handler threw is read inside its retries.
        const text = failureText(error);
        const send = (after: number | undefined) =>
          lease.settle((signal) => api.tasks.fail.mutate({ ...fenced, error: text, retry, ...(after === undefined ? {} : { retryAfterMs: after }) }, sentOnce(signal)));
        let as = await send(retryAfterRefused ? undefined : retryAfterMs);
        // A server older than retryAfterMs refuses the field: the run fails all the same, after
        // the task's backoff, said once; later runs fail without it.
        if (as.kind === "refused" && retryAfterMs !== undefined && !retryAfterRefused && isUnknownField(as.error, "retryAfterMs")) {
          retryAfterRefused = true;
          onError(new Error(`the server does not take retryAfterMs (it is older than this client): task "${task.id}" is retried after its backoff instead, as are later ones`, { cause: as.error }));
          as = await send(undefined);
        }
        if (counted(as)) failed++;
      };
      if (interruption === "cancelled") {
        cancelled++; // nobody wants its outcome, and the server would refuse it: not an error
      } else if (interruption === "lost") {
        lose(run.signal.reason); // someone else owns the task now: settling it would only get CONFLICT
      } else if (interruption === "stopped") {
        await lease.settle((signal) => api.tasks.release.mutate(fenced, sentOnce(signal))); // not the task's fault: back without charging an attempt
      } else if (interruption === "timeout") {
        await fail(run.signal.reason);
      } else if (!outcome.ok && isInstance(outcome.error, RetryLater) && outcome.error.chargeAttempt) {
        await fail(outcome.error, true, outcome.error.delayMs);
      } else if (!outcome.ok && isInstance(outcome.error, RetryLater)) {
        const { delayMs } = outcome.error;
        if (await settled((signal) => api.tasks.release.mutate({ ...fenced, delayMs }, sentOnce(signal)))) deferred++;
      } else if (!outcome.ok) {
        await fail(outcome.error, outcome.retry);
      } else {
        const completedAs = await lease.settle((signal) =>
          completeAndClaimNext(fenced, outcome.result ?? undefined, settleAttempts++ > 0, (claimed) => (next = claimed), signal),
        );
        if (completedAs.kind === "settled") completed++;
        // The server will not take the result as it is (too large, too deep, not JSON), or the
        // client cannot even send it (a __proto__ key, a getter that throws): the run failed, and
        // says why, rather than waiting out its lease to run again with no trace.
        else if (completedAs.kind === "refused") await fail(new Error(refusedResult(completedAs.error)));
        else lose(completedAs.error);
      }
    } finally {
      lease.stop();
      if (running.get(task.id) === entry) running.delete(task.id);
      ended();
      finished.add(leaseKey);
      if (finished.size > FINISHED_REMEMBERED) finished.delete(finished.values().next().value!);
    }
    return next;
  };

  /**
   * Completes, and while the worker is not stopping, claims the next task in the same call. A
   * call sent again after a transient error (`retried`) may have claimed a task whose answer was
   * lost with a crashed server: the worker then looks for such orphans before its next claim.
   */
  const completeAndClaimNext = async (
    fenced: { taskId: string; agentId: string; leaseToken: number },
    result: JsonValue | undefined,
    retried: boolean,
    onNext: (next: Claimed) => void,
    signal: AbortSignal,
  ) => {
    if (retried) orphansSuspected = true;
    if (claiming.signal.aborted || !serverCompletesAndClaims) return void (await api.tasks.complete.mutate({ ...fenced, result }, sentOnce(signal)));
    const sentAt = momentNow();
    try {
      const done = await api.tasks.completeAndClaim.mutate({ ...fenced, result, next: { queues: options.queues, leaseMs: options.leaseMs } }, sentOnce(signal));
      if (done.next) onNext({ task: done.next, receivedAt: sentAt });
    } catch (error) {
      // No answer (a connection broken, a call aborted at the lease's end): it may have been
      // served, and have claimed a next task the worker never heard of. Looked for before the
      // next claim, whether or not the complete is sent again.
      if (isTransient(error)) orphansSuspected = true;
      // A server older than this client (its 404 must not read as a lost lease): complete alone from now on.
      if (!isUnknownProcedure(error)) throw error;
      serverCompletesAndClaims = false;
      await api.tasks.complete.mutate({ ...fenced, result }, sentOnce(signal));
    }
  };

  const loop = async () => {
    await registered;
    /**
     * The key of this loop's claim until it is answered: a claim that failed without an answer
     * (a connection cut after the server leased) is sent again with it, and the server answers
     * the lease it took, with its context, rather than the task waiting out its lease.
     */
    let claimKey: string | undefined;
    while (!claiming.signal.aborted) {
      try {
        // Aborted by stop(): a server that hangs must not hold the loop, and stop() with it.
        if (orphansSuspected) await adoptOrphans(claiming.signal);
        // A claim sent again goes first: the lease it may hold runs out while it waits behind others.
        const repeat = claimKey !== undefined;
        let next: Claimed | undefined = repeat ? undefined : backlog.shift();
        if (next === undefined) {
          // Idle loops take turns to park a claim (parking-gate.ts); a claim sent again goes at
          // once, for the same reason as above (it is answered at once when it took a lease).
          const leave = repeat ? () => undefined : await parking.enter(claiming.signal);
          if (leave === undefined) continue; // stopping: no claim was sent
          try {
            if (serverKeysClaims) claimKey ??= randomUUID();
            const task = await api.tasks.claim.mutate(
              // With tasks waiting in the backlog, no long-poll: they are run next. Nor for a claim
              // sent again, which skipped its turn: it is answered at once when it took a lease,
              // and, when it did not, it would park past the gate's bound for its whole wait.
              {
                agentId,
                queues: options.queues,
                leaseMs: options.leaseMs,
                waitMs: repeat || backlog.length > 0 ? 0 : (options.waitMs ?? 10_000),
                ...(claimKey === undefined ? {} : { idempotencyKey: claimKey }),
              },
              sentOnce(claiming.signal),
            );
            claimKey = undefined;
            next = task ? { task, receivedAt: momentNow() } : backlog.shift();
          } finally {
            leave();
          }
        }
        // Each completed task hands over the next, until none is left: then a long-poll claim again.
        while (next !== undefined) {
          // A claim answered just as stop() began: give the task back rather than start it.
          if (claiming.signal.aborted) {
            await api.tasks.release
              .mutate({ taskId: next.task.id, agentId, leaseToken: next.task.leaseToken }, sentOnce(AbortSignal.timeout(stopTimeoutMs)))
              .catch(onError);
            break;
          }
          next = await runOne(next.task, next.receivedAt);
          // Orphans to look for, or adopted tasks waiting: back to them first, the next task with them.
          if (next !== undefined && (orphansSuspected || backlog.length > 0)) {
            backlog.push(next);
            break;
          }
        }
      } catch (error) {
        if (claiming.signal.aborted) break;
        if (isCredentialRefused(error)) {
          // Revoked, say: every call would be refused again, a few a second for good. The worker
          // claims no more, says why once; runs in progress end as their settles are refused, and
          // stop() returns at once.
          onError(new Error(`runWorker: the server refused this worker's credential, so it claims no more: ${messageOf(error)}`, { cause: error }));
          claiming.abort();
          clearInterval(agentHeartbeat);
          break;
        }
        // A claim without its answer is sent again with its key (above); a lease another call
        // may have taken without answering (a settle's next task) is looked for among the agent's.
        // A server older than claim keys refuses the field: claims go without it from now on (a
        // lost answer is then found by adoption, as before), at once.
        if (serverKeysClaims && isUnknownField(error, "idempotencyKey")) {
          serverKeysClaims = false;
          claimKey = undefined;
          continue;
        }
        // A claim the server refused (a bad input, too many parked: a 429, which isTransient
        // counts in): answered, it leased nothing. Its key kept, the loop sent it again past its
        // turn (a claim sent again skips the parking gate), each refused loop for good.
        if (!isUnanswered(error)) claimKey = undefined;
        else if (claimKey === undefined) orphansSuspected = true;
        onError(error);
        await sleep(CLAIM_RETRY_MS, undefined, { signal: claiming.signal }).catch(() => undefined);
      }
    }
    // Stopped with a claim unanswered (cut by stop(), or waiting to be sent again): stop() looks
    // for the lease it may have taken among the agent's and gives it back, uncharged.
    if (claimKey !== undefined) orphansSuspected = true;
  };
  // Cancels of the tasks it runs stop those runs at once (cancel-watch.ts), each by the lease it ended.
  const cancels = watchCancels(api, (taskId, leaseToken, reason) => {
    const run = running.get(taskId);
    if (run?.leaseToken === leaseToken) run.cancel(reason);
  });
  const parking = new ParkingGate(Math.min(options.concurrency ?? 1, PARKED_CLAIMS));
  const loops = Array.from({ length: options.concurrency ?? 1 }, loop);
  // Once no loop runs a task, no cancel is wanted.
  const closed = Promise.allSettled(loops).then(() => cancels.close());

  let stopping: Promise<void> | undefined;
  return {
    get completed() {
      return completed;
    },
    get failed() {
      return failed;
    },
    get lost() {
      return lost;
    },
    get cancelled() {
      return cancelled;
    },
    get deferred() {
      return deferred;
    },
    closed,
    stop() {
      stopping ??= (async () => {
        claiming.abort();
        const deadline = setTimeout(() => running.forEach((run) => run.stopNow()), stopTimeoutMs);
        await Promise.allSettled(loops);
        clearTimeout(deadline);
        clearInterval(agentHeartbeat);
        // The calls that tidy up are bounded too: a server that hangs must not hold stop() for good.
        const signal = AbortSignal.timeout(stopTimeoutMs);
        // A settle retried after a transient error may have claimed a task whose answer was lost: find it too.
        if (orphansSuspected) await adoptOrphans(signal).catch(onError);
        // Adopted but never started: back to the queue without charging an attempt.
        for (const { task } of backlog.splice(0)) await api.tasks.release.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken }, sentOnce(signal)).catch(onError);
        // Last: deregistering frees any claim still held, charging an attempt.
        if (options.sharedAgentId !== true) await api.agents.deregister.mutate({ agentId }, sentOnce(signal)).catch(onError);
      })();
      return stopping;
    },
  };
}

/** A listed task still held under a lease, as its claim handed it out (its context is not kept); undefined when it is not held. */
function asClaimed(task: RouterOutputs["tasks"]["list"]["items"][number]): ClaimedTask | undefined {
  const { status, leaseOwner, leaseExpiresAt, claimedAt } = task;
  if (status !== "claimed" || leaseOwner === null || leaseExpiresAt === null || claimedAt === null) return undefined;
  return { ...task, status, leaseOwner, leaseExpiresAt, claimedAt, context: [] };
}
