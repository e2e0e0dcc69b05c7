// An agent worker loop on top of the client: registers the agent, keeps it and its leases
// alive with heartbeats, claims with long-polling, runs the handler, and settles the task.
// Delivery is at-least-once: a handler can run again after a crash or an expired lease,
// so handlers should be idempotent (the task id and leaseToken help).
import type { inferRouterOutputs } from "@trpc/server";
import type { AppRouter } from "../src/trpc/app-router.js";
import type { CoordinationApi } from "./index.js";

type Outputs = inferRouterOutputs<AppRouter>;
export type ClaimedTask = NonNullable<Outputs["tasks"]["claim"]>;

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
  /** Lease per claim (default: the server's). Heartbeats renew it at a third of its length. */
  leaseMs?: number;
  /** Long-poll length per claim (default 10 s). */
  waitMs?: number;
  /** Agent heartbeat interval (default 5 s). */
  heartbeatMs?: number;
  onError?: (error: unknown) => void;
}

export interface Worker {
  /** Stops claiming, lets running handlers finish, deregisters the agent. */
  stop(): Promise<void>;
  /** Tasks settled so far. */
  readonly completed: number;
  readonly failed: number;
}

export async function runWorker(options: WorkerOptions): Promise<Worker> {
  const { api, agentId, handler } = options;
  const onError = options.onError ?? (() => undefined);
  const controller = new AbortController();
  const leaseMs = options.leaseMs ?? 30_000;
  let completed = 0;
  let failed = 0;

  await api.agents.register.mutate({ agentId, capabilities: options.capabilities ?? [], metadata: options.metadata ?? {} });
  const agentHeartbeat = setInterval(() => {
    api.agents.heartbeat.mutate({ agentId }).catch(onError);
  }, options.heartbeatMs ?? 5000);

  const runOne = async (task: ClaimedTask) => {
    const renew = setInterval(() => {
      api.tasks.heartbeat.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, leaseMs }).catch(onError);
    }, Math.max(leaseMs / 3, 50));
    try {
      const result = await handler(task, controller.signal);
      await api.tasks.complete.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, result });
      completed++;
    } catch (error) {
      failed++;
      const message = error instanceof Error ? error.message : String(error);
      await api.tasks.fail.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, error: message }).catch(onError);
    } finally {
      clearInterval(renew);
    }
  };

  const loop = async () => {
    while (!controller.signal.aborted) {
      try {
        const task = await api.tasks.claim.mutate(
          { agentId, queues: options.queues, leaseMs, waitMs: options.waitMs ?? 10_000 },
          { signal: controller.signal },
        );
        if (task) await runOne(task);
      } catch (error) {
        if (controller.signal.aborted) break;
        onError(error);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  };
  const loops = Array.from({ length: options.concurrency ?? 1 }, loop);

  return {
    get completed() {
      return completed;
    },
    get failed() {
      return failed;
    },
    async stop() {
      controller.abort();
      await Promise.allSettled(loops);
      clearInterval(agentHeartbeat);
      await api.agents.deregister.mutate({ agentId }).catch(onError);
    },
  };
}
