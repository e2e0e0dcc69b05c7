// A runWorker on one queue for a test: agent `w-<name>`, queue `<name>`, short claim waits, and
// every error it reports kept in `errors` for the test to look at.
import { runWorker, type CoordinationApi, type WorkerOptions } from "../../client/index.js";

export async function workerOn(api: CoordinationApi, name: string, options: Pick<WorkerOptions, "handler"> & Partial<WorkerOptions>) {
  const errors: unknown[] = [];
  const worker = await runWorker({ api, agentId: `w-${name}`, queues: [name], waitMs: 200, onError: (e) => errors.push(e), ...options });
  return { worker, errors };
}
