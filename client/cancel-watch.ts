// A worker learns at once that a task it runs was cancelled. Without this, a run learned it at
// its next lease renewal, a third of its lease later (10 s with the default lease, minutes with
// the long leases LLM runs take), spending a model's tokens all that time on work nobody wants.
// The worker follows the server's task.cancelled events on the client's WebSocket (one stream a
// worker, whatever its concurrency); each names the lease it ended (leaseToken), so a run of a
// later lease of the task (requeued and claimed again here) is never stopped by an older cancel.
// A server that does not stream them to this credential, or a stream that fails, leaves the
// renewal to find the cancel, as before.
import { isSystemEvent } from "./system-events.js";
import type { CoordinationApi } from "./types.js";

/** A running cancel watch: close() stops it (the worker's stop()). */
export interface CancelWatch {
  close(): void;
}

/**
 * Calls `onCancel` for each task.cancelled that ended a lease (a claimed task's), from when the
 * stream opens; never throws (a stream it cannot open or keep is given up silently).
 */
export function watchCancels(api: CoordinationApi, onCancel: (taskId: string, leaseToken: number, reason: string | null) => void): CancelWatch {
  let subscription: { unsubscribe(): void } | undefined;
  try {
    subscription = api.events.onEvent.subscribe(
      { types: ["task.cancelled"] },
      {
        onData: ({ data: event }) => {
          if (!isSystemEvent(event, "task.cancelled")) return;
          const { taskId, leaseToken, reason } = event.payload;
          if (leaseToken !== undefined) onCancel(taskId, leaseToken, reason ?? null);
        },
        // Refused (a credential that may not read events, an older server) or ended: renewals find cancels.
        onError: () => undefined,
      },
    );
  } catch {
    subscription = undefined;
  }
  return { close: () => subscription?.unsubscribe() };
}
