// A live stream asked for "new events only" (events.onEvent with neither lastEventId nor
// agentId) resumes after a reconnect from the id of the last event it received. Until it has
// received one it has no id: reconnected (a server restart, a failover), it asked for "new
// events only" again, from the new head, and every event published while it was away was lost
// without a word. This link reads the head first and opens the stream after it, so the stream
// has a position from the start: what it resumes from until its first event. Events published
// between the head read and the stream opening are delivered (none are skipped).
// An agent's stream (agentId) lost its subscription's events the same way (reconnected before its
// first event, it started again at the new head), so it gets a position too: MAILBOX:HEAD, its
// unread mailbox from where the agent's mailbox cursor stood (as a fresh stream starts with it),
// everything else after the head. A credential that may not read the agent's cursors (or a server
// that does not answer) opens it as asked.
import { isTRPCClientError, type Operation, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import type { AppRouter } from "./types.js";

type StreamInput = { agentId?: unknown; lastEventId?: unknown } | undefined;

/** Whether `op` is a stream with no position to resume from until its first event (none asked). */
const startsAtNow = (op: Operation): boolean => {
  if (op.type !== "subscription" || op.path !== "events.onEvent") return false;
  const input = op.input as StreamInput;
  return input?.lastEventId == null;
};

const dataOf = (envelope: { result: unknown }): Record<string, unknown> | undefined => {
  const data = (envelope.result as { data?: unknown }).data;
  return typeof data === "object" && data !== null ? (data as Record<string, unknown>) : undefined;
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
        let read: { unsubscribe(): void } | undefined;
        const open = (lastEventId: string | undefined) => {
          if (ended || stream !== undefined) return;
          const input = { ...(op.input as object), ...(lastEventId === undefined ? {} : { lastEventId }) };
          stream = next({ ...op, input }).subscribe(observer);
        };
        /** One query's answer (undefined: none), then `then` with it. */
        const query = (path: string, input: unknown, then: (data: Record<string, unknown> | undefined, failed: unknown) => void) => {
          let done = false;
          const once = (data: Record<string, unknown> | undefined, failed?: unknown) => {
            if (done) return;
            done = true;
            then(data, failed);
          };
          read = next({ ...op, type: "query", path, input }).subscribe({
            next: (envelope) => once(dataOf(envelope)),
            error: (error) => once(undefined, error ?? true),
            complete: () => once(undefined, true),
          });
        };
        const agentId = (op.input as StreamInput)?.agentId;
        const readHead = (mailboxCursor: number | undefined) =>
          query("events.head", undefined, (data) => {
            const head = data?.head;
            const prunedThrough = data?.prunedThrough;
            if (typeof head !== "number") return open(undefined);
            if (agentId == null) return open(String(head));
            if (mailboxCursor === undefined || typeof prunedThrough !== "number") return open(undefined);
            // Where a fresh stream of this agent reads its mailbox from (events.mailboxStart).
            const mailboxStart = Math.min(Math.max(mailboxCursor, prunedThrough), head);
            open(mailboxStart === head ? String(head) : `${mailboxStart}:${head}`);
          });
        if (agentId == null) readHead(undefined);
        else {
          // Its mailbox cursor first: read before the head, it is never past what the stream may skip.
          query("events.subscription", { agentId }, (data, failed) => {
            const cursor = data?.mailboxCursor;
            if (typeof cursor === "number") return readHead(cursor);
            // No subscription row: its mailbox starts where the retained log does (cursor 0).
            if (isTRPCClientError(failed) && failed.data?.code === "SUBSCRIPTION_NOT_FOUND") return readHead(0);
            open(undefined);
          });
        }
        return () => {
          ended = true;
          read?.unsubscribe();
          stream?.unsubscribe();
        };
      });
}
