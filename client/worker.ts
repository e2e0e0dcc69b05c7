// An agent worker loop on top of the client: registers the agent, keeps it and its leases
// alive with heartbeats, claims with long-polling, runs the handler, and settles the task.
// Delivery is at-least-once: a handler can run again after a crash or an expired lease,
// so handlers should be idempotent (the task id and leaseToken help).
import { setTimeout as sleep } from "node:timers/promises";
import { isTRPCClientError } from "@trpc/client";
import type { inferRouterOutputs } from "@trpc/server";
import type { AppRouter } from "../src/trpc/app-router.js";
import type { CoordinationApi } from "./index.js";

type Outputs = inferRouterOutputs<AppRouter>;
export type ClaimedTask = NonNullable<Outputs["tasks"]["claim"]>;

/**
 * Runs one task. The signal aborts when the worker gives up on the run: the lease was lost
 * (the task was cancelled, expired or taken over), taskTimeoutMs passed, or stop() ran out of
 * patience. Its `reason` says which. From then on the handler's outcome is ignored.
 */
export type TaskHandler = (task: ClaimedTask, signal: AbortSignal) => Promise<unknown>;

export interface WorkerOptions {
  api: CoordinationApi;
  agentId: string;
  capabilities?: string[];
  metadata?: Record<string, unknown>;
  /** Queues to claim from (default: any). */
  queues?: string[];
  handler: TaskHandler;
  /** Tasks run at once (default 1). */
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
  onError?: (error: unknown) => void;
}

export interface Worker {
  /**
   * Stops claiming, lets running handlers finish (up to stopTimeoutMs; then aborts them and
   * releases their tasks without charging an attempt), deregisters the agent.
   */
  stop(): Promise<void>;
  /** Tasks settled so far. */
  readonly completed: number;
  readonly failed: number;
  /** Tasks run but not settled by this worker: the lease was lost, or the server never took the result. */
  readonly lost: number;
}

/** Why the worker gave up on a run before its handler settled it. */
type Interruption = "lost" | "timeout" | "stopped";

/** complete is retried this many times on network errors and 5xx, backing off from COMPLETE_BACKOFF_MS. */
const COMPLETE_ATTEMPTS = 5;
const COMPLETE_BACKOFF_MS = 100;
/** Lease renewals never come faster than this, whatever the server granted. */
const MIN_RENEW_MS = 20;

const httpStatus = (error: unknown): number | undefined => (isTRPCClientError(error) ? error.data?.httpStatus : undefined);
/** The server says this lease is gone: another holder, cancelled, settled, or no such task. */
const isLeaseGone = (error: unknown): boolean =>
  isTRPCClientError(error) && (error.data?.code === "CONFLICT" || error.data?.code === "NOT_FOUND");
/** No answer, or a 5xx: the request may succeed if sent again. */
const isTransient = (error: unknown): boolean => {
  const status = httpStatus(error);
  return status === undefined || status >= 500;
};
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
/** Rejects with the signal's reason once it aborts. */
const whenAborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));

export async function runWorker(options: WorkerOptions): Promise<Worker> {
  const { api, agentId, handler } = options;
  const onError = options.onError ?? (() => undefined);
  // Aborts claims only; each run has its own controller, so stopping never aborts a handler by itself.
  const claiming = new AbortController();
  /** Interrupts of the runs in progress, for stop() past its timeout. */
  const running = new Set<() => void>();
  let completed = 0;
  let failed = 0;
  let lost = 0;

  await api.agents.register.mutate({ agentId, capabilities: options.capabilities ?? [], metadata: options.metadata ?? {} });
  const agentHeartbeat = setInterval(() => {
    api.agents.heartbeat.mutate({ agentId }).catch(onError);
  }, options.heartbeatMs ?? 5000);

  /**
   * Renews the lease until stopped, each time at a third of the lease the server granted (it may
   * cap the leaseMs we asked for). The length is read on the server's clock (expiry - updatedAt),
   * so clock skew between agent and server does not matter. Calls onLost when the lease is gone.
   */
  const keepLease = (task: ClaimedTask, onLost: (error: unknown) => void) => {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    let interval = 0;
    const schedule = (lease: { leaseExpiresAt: Date | null; updatedAt: Date }) => {
      const granted = lease.leaseExpiresAt ? lease.leaseExpiresAt.getTime() - lease.updatedAt.getTime() : (options.leaseMs ?? 30_000);
      interval = Math.max(granted / 3, MIN_RENEW_MS);
      timer = setTimeout(renew, interval);
    };
    const renew = async () => {
      try {
        const renewed = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, leaseMs: options.leaseMs });
        if (!stopped) schedule(renewed);
      } catch (error) {
        if (stopped) return;
        if (isLeaseGone(error)) return onLost(error);
        // Transient (network, 5xx): try again after the same interval; a lease outlives one missed renewal.
        onError(error);
        timer = setTimeout(renew, interval);
      }
    };
    schedule(task);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  };

  /** complete, retried on network errors and 5xx (a retried complete is idempotent on the server). */
  const complete = async (task: ClaimedTask, result: unknown): Promise<"completed" | "lost"> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await api.tasks.complete.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, result });
        return "completed";
      } catch (error) {
        if (isLeaseGone(error)) return "lost";
        onError(error);
        // Never fail a task whose handler succeeded: past the retries, its lease expires and the server retries it.
        if (!isTransient(error) || attempt === COMPLETE_ATTEMPTS) return "lost";
        await sleep(COMPLETE_BACKOFF_MS * 2 ** (attempt - 1));
      }
    }
  };

  const fail = (task: ClaimedTask, error: string) =>
    api.tasks.fail.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, error }).catch(onError);
  const release = (task: ClaimedTask) => api.tasks.release.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken }).catch(onError);

  const runOne = async (task: ClaimedTask) => {
    const run = new AbortController();
    let interruption: Interruption | undefined;
    const interrupt = (why: Interruption, reason: Error) => {
      if (interruption) return;
      interruption = why;
      run.abort(reason);
    };
    // Renewed until the task is settled: complete's retries must not outlive a short lease.
    const stopRenewing = keepLease(task, (error) => interrupt("lost", new Error(`lease lost: ${messageOf(error)}`, { cause: error })));
    const { taskTimeoutMs } = options;
    const timeout =
      taskTimeoutMs === undefined ? undefined : setTimeout(() => interrupt("timeout", new Error(`handler timed out after ${taskTimeoutMs} ms`)), taskTimeoutMs);
    const stopNow = () => interrupt("stopped", new Error("worker stopped"));
    running.add(stopNow);

    let outcome: { ok: true; result: unknown } | { ok: false; error: unknown };
    try {
      // Once the signal fires the run is over, even for a handler that ignores it: it cannot hold the slot or the lease.
      outcome = { ok: true, result: await Promise.race([handler(task, run.signal), whenAborted(run.signal)]) };
    } catch (error) {
      outcome = { ok: false, error };
    } finally {
      clearTimeout(timeout);
      running.delete(stopNow);
    }

    try {
      if (interruption === "lost") {
        lost++; // someone else owns the task now: settling it would only get CONFLICT
      } else if (interruption === "stopped") {
        await release(task); // not the task's fault: back to the queue without charging an attempt
      } else if (interruption === "timeout") {
        failed++;
        await fail(task, messageOf(run.signal.reason));
      } else if (!outcome.ok) {
        failed++;
        await fail(task, messageOf(outcome.error));
      } else if ((await complete(task, outcome.result)) === "completed") {
        completed++;
      } else {
        lost++;
      }
    } finally {
      stopRenewing();
    }
  };

  const loop = async () => {
    while (!claiming.signal.aborted) {
      try {
        const task = await api.tasks.claim.mutate(
          { agentId, queues: options.queues, leaseMs: options.leaseMs, waitMs: options.waitMs ?? 10_000 },
          { signal: claiming.signal },
        );
        // A claim answered just as stop() began: give the task back rather than start it.
        if (task && claiming.signal.aborted) await release(task);
        else if (task) await runOne(task);
      } catch (error) {
        if (claiming.signal.aborted) break;
        onError(error);
        await sleep(500, undefined, { signal: claiming.signal }).catch(() => undefined);
      }
    }
  };
  const loops = Array.from({ length: options.concurrency ?? 1 }, loop);

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
    stop() {
      stopping ??= (async () => {
        claiming.abort();
        const deadline = setTimeout(() => running.forEach((stopNow) => stopNow()), options.stopTimeoutMs ?? 30_000);
        await Promise.allSettled(loops);
        clearTimeout(deadline);
        clearInterval(agentHeartbeat);
        // Last: deregistering frees any claim still held, charging an attempt.
        await api.agents.deregister.mutate({ agentId }).catch(onError);
      })();
      return stopping;
    },
  };
}
