// runWorker stops a run whose task was cancelled at once, not at its next lease renewal: it follows
// the server's task.cancelled events, each naming the lease it ended. The run's signal aborts with
// a TaskCancelled carrying the cancel's reason; the run counts as cancelled, not lost, and is no
// error. Real server, real client over HTTP and WebSocket.
import { afterEach, describe, expect, it, vi } from "vitest";
import { TaskCancelled, type CoordinationApi } from "../client/index.js";
import { workerOn } from "./helpers/worker-on.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A handler that waits for its signal and keeps why it aborted, and when (ms after it started). */
function waitingHandler() {
  const aborted: Array<{ taskId: string; reason: unknown }> = [];
  let started!: (taskId: string) => void;
  const starts: string[] = [];
  const handler = async (task: { id: string }, signal: AbortSignal) => {
    starts.push(task.id);
    started?.(task.id);
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    aborted.push({ taskId: task.id, reason: signal.reason });
    return "never stored";
  };
  return { handler, aborted, starts };
}

describe("runWorker and cancelled tasks", () => {
  it("a cancel stops the run at once, with its reason: counted cancelled, no error, nothing settled; the slot takes the next task", async () => {
    t = await startTestServer();
    const api = t.api;
    const { handler, aborted, starts } = waitingHandler();
    // A lease of an hour: renewed every 20 minutes, so only the cancel's event can stop the run within the test.
    const { worker, errors } = await workerOn(api, "cancel", { leaseMs: 3_600_000, stopTimeoutMs: 100, handler });
    try {
      const task = await api.tasks.enqueue.mutate({ queue: "cancel" });
      await vi.waitFor(() => expect(starts).toEqual([task.id]), { timeout: 30_000, interval: 20 });
      await api.tasks.cancel.mutate({ taskId: task.id, reason: "the user asked for something else" });
      await vi.waitFor(() => expect(worker.cancelled).toBe(1), { timeout: 30_000, interval: 20 });
      expect(aborted).toHaveLength(1);
      const reason = aborted[0]!.reason as TaskCancelled;
      expect(reason).toBeInstanceOf(TaskCancelled);
      expect([reason.name, reason.taskId, reason.reason, reason.message]).toEqual(["TaskCancelled", task.id, "the user asked for something else", `task "${task.id}" was cancelled: the user asked for something else`]);
      expect([worker.completed, worker.failed, worker.lost, worker.cancelled]).toEqual([0, 0, 0, 1]);
      expect(errors).toEqual([]);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "cancelled", result: null, attempts: 1, errorHistory: [] });
      // Its loop is free again.
      const next = await api.tasks.enqueue.mutate({ queue: "cancel" });
      await vi.waitFor(() => expect(starts).toEqual([task.id, next.id]), { timeout: 30_000, interval: 20 });
    } finally {
      await worker.stop();
    }
  });

  it("a cancel of an older lease of the task never stops a later run of it, nor does another agent's", async () => {
    t = await startTestServer();
    const api = t.api;
    const { handler, aborted, starts } = waitingHandler();
    const { worker, errors } = await workerOn(api, "again", { leaseMs: 3_600_000, concurrency: 2, stopTimeoutMs: 100, handler });
    try {
      const task = await api.tasks.enqueue.mutate({ queue: "again" });
      await vi.waitFor(() => expect(starts).toEqual([task.id]), { timeout: 30_000, interval: 20 });
      await api.tasks.cancel.mutate({ taskId: task.id });
      await vi.waitFor(() => expect(worker.cancelled).toBe(1), { timeout: 30_000, interval: 20 });
      // Requeued, and run here again under lease 2.
      await api.tasks.requeue.mutate({ taskId: task.id });
      await vi.waitFor(() => expect(starts).toEqual([task.id, task.id]), { timeout: 30_000, interval: 20 });
      // The first cancel's event arriving only now (as the server wrote it: on a server without
      // credentials anyone may publish under its name), and another agent's run cancelled.
      await api.events.publish.mutate({ type: "task.cancelled", source: "coordination", payload: { taskId: task.id, queue: "again", previousStatus: "claimed", agentId: "w-again", leaseToken: 1 } });
      const elsewhere = await api.tasks.enqueue.mutate({ queue: "elsewhere" });
      await api.tasks.claim.mutate({ agentId: "someone-else", queues: ["elsewhere"], context: false });
      await api.tasks.cancel.mutate({ taskId: elsewhere.id });
      // A run cancelled after those: once the worker's stream brought its cancel, it had brought theirs.
      const marker = await api.tasks.enqueue.mutate({ queue: "again" });
      await vi.waitFor(() => expect(starts).toEqual([task.id, task.id, marker.id]), { timeout: 30_000, interval: 20 });
      await api.tasks.cancel.mutate({ taskId: marker.id });
      await vi.waitFor(() => expect(worker.cancelled).toBe(2), { timeout: 30_000, interval: 20 });
      // The second run of the task still runs, its lease held.
      expect(aborted.map((entry) => entry.taskId)).toEqual([task.id, marker.id]);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseToken: 2, leaseOwner: "w-again" });
      expect(errors).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("without the event stream (a client that cannot open it), the next renewal finds the cancel, counted the same", async () => {
    t = await startTestServer();
    const api = t.api;
    // The same client, but its event stream refused: what an older server or a lost stream leaves.
    const noStream = new Proxy(api, {
      get: (target, key) =>
        key === "events"
          ? {
              onEvent: {
                subscribe: () => {
                  throw new Error("no stream here");
                },
              },
            }
          : Reflect.get(target, key),
    }) as CoordinationApi;
    const { handler, aborted, starts } = waitingHandler();
    const { worker, errors } = await workerOn(noStream, "renewal", { leaseMs: 600, handler }); // renewed every 200 ms
    try {
      const task = await api.tasks.enqueue.mutate({ queue: "renewal" });
      await vi.waitFor(() => expect(starts).toEqual([task.id]), { timeout: 30_000, interval: 20 });
      await api.tasks.cancel.mutate({ taskId: task.id, reason: "not wanted" });
      await vi.waitFor(() => expect(worker.cancelled).toBe(1), { timeout: 30_000, interval: 20 });
      // The renewal's refusal carries no reason: the run is told it was cancelled.
      expect((aborted[0]!.reason as TaskCancelled).message).toBe(`task "${task.id}" was cancelled`);
      expect([worker.lost, worker.cancelled, errors]).toEqual([0, 1, []]);
    } finally {
      await worker.stop();
    }
  });
});
