// A live stream asked for "new events only" (events.onEvent with neither lastEventId nor
// agentId) resumes after a reconnect from the id of the last event it received. Until it has
// received one it has no id: reconnected (a server restart, a failover), it asked for "new
// events only" again, from the new head, and every event published while it was away was lost
// without a word. This link reads the head first and opens the stream after it, so the stream
// has a position from the start: what it resumes from until its first event. Events published
// between the head read and the stream opening are delivered (none are skipped).
// An agent's stream (agentId) is left as asked: it starts with the agent's unread mailbox.
import type { Operation, TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import type { AppRouter } from "./types.js";

type StreamInput = { agentId?: unknown; lastEventId?: unknown } | undefined;

/** Whether `op` is a stream of new events only, which has no position to resume from until its first event. */
const startsAtNow = (op: Operation): boolean => {
  if (op.type !== "subscription" || op.path !== "events.onEvent") return false;
  const input = op.input as StreamInput;
  return input?.agentId == null && input?.lastEventId == null;
};

/**
 * Put before the links that route calls (its head query goes by HTTP, its stream by WebSocket).
 * A head the server does not answer (down, a refused token) opens the stream as asked: it then
 * waits for the server, or fails, as any stream does.
 */
export function streamStartLink(): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) =>
      observable((observer) => {
        if (!startsAtNow(op)) return next(op).subscribe(observer);
        let ended = false;
        let stream: { unsubscribe(): void } | undefined;
        const open = (head: number | undefined) => {
          if (ended || stream !== undefined) return;
          const input = { ...(op.input as object), ...(head === undefined ? {} : { lastEventId: String(head) }) };
          stream = next({ ...op, input }).subscribe(observer);
        };
        const headQuery: Operation = { ...op, type: "query", path: "events.head", input: undefined };
        const read = next(headQuery).subscribe({
          next: (envelope) => {
            const data = (envelope.result as { data?: { head?: unknown } }).data;
            open(typeof data?.head === "number" ? data.head : undefined);
          },
          error: () => open(undefined),
          complete: () => open(undefined),
        });
        return () => {
          ended = true;
          read.unsubscribe();
          stream?.unsubscribe();
        };
      });
}
