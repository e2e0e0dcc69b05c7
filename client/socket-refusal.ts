// A WebSocket the server closes with 4401 carried no valid credential: missing, wrong, or
// revoked while it was open. Reconnecting cannot help (a token is never valid again once
// revoked), yet tRPC's WebSocket client reconnects for as long as a subscription is open, and
// since the server accepts the upgrade before it reads the credential, every attempt counts as a
// successful open and the back-off starts over: ~10 reconnections a second, for good, with the
// subscription never told. This link ends every live subscription with an UNAUTHORIZED error
// when the socket is refused, so the caller learns why and the socket is left to close.
import { TRPCClientError, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import type { AppRouter } from "./types.js";

/** The server's close code for a WebSocket without a valid credential (src/server/create-server.ts). */
export const WS_CLOSE_UNAUTHORIZED = 4401;

export interface SocketRefusal {
  /** Call when the WebSocket opens (createWSClient's onOpen). */
  opened(): void;
  /** Call with each close code of the WebSocket (createWSClient's onClose). */
  closed(code: number | undefined): void;
  /** Put before the WebSocket link: subscriptions end with UNAUTHORIZED when the socket is refused. */
  link: TRPCLink<AppRouter>;
}

/** How long a subscription's failure waits for its socket's close to say whether it was refused. */
const CLOSE_WAIT_MS = 5000;

export function socketRefusal(): SocketRefusal {
  const live = new Set<(error: TRPCClientError<AppRouter>) => void>();
  /** Run at the socket's next open or close, once. */
  const atNextSocketEvent = new Set<() => void>();
  /** The refusal, while the last socket closed with 4401 and none opened since. */
  let refused: TRPCClientError<AppRouter> | undefined;
  const socketEvent = () => {
    const waiting = [...atNextSocketEvent];
    atNextSocketEvent.clear();
    for (const run of waiting) run();
  };
  return {
    opened() {
      refused = undefined;
      socketEvent();
    },
    closed(code) {
      if (code === WS_CLOSE_UNAUTHORIZED) {
        const message = "Unauthorized: the server closed the WebSocket (4401): its token is missing, wrong or revoked; create the client with a valid token";
        refused = TRPCClientError.from<AppRouter>({ error: { message, code: -32001, data: { code: "UNAUTHORIZED", httpStatus: 401 } } });
        for (const end of [...live]) end(refused);
      } else {
        refused = undefined;
      }
      socketEvent();
    },
    link:
      () =>
      ({ op, next }) =>
        observable((observer) => {
          // Once ended here, what the WebSocket client says of the subscription (its completion as
          // it is torn down) no longer reaches the caller: the refusal is the last word.
          let ended = false;
          /** Set while its error waits for the socket's close to say why (below). */
          let waitingForClose: (() => void) | undefined;
          // Assigned once next(op) subscribed; an error raised while it subscribes ends it after.
          let subscription: { unsubscribe(): void } | undefined;
          const end = (error: TRPCClientError<AppRouter>) => {
            if (ended) return;
            ended = true;
            live.delete(end);
            observer.error(error);
            // The WebSocket client forgets it, and reconnects for it no more.
            subscription?.unsubscribe();
          };
          subscription = next(op).subscribe({
            next: (value) => observer.next(value),
            error: (error) => {
              if (ended) return;
              if (refused !== undefined) return end(refused);
              // An error the server sent (it has data: INVALID_INPUT, EVENTS_PRUNED…) is passed on.
              if (error.data !== undefined) return end(error);
              // One of the connection's own, raised while its socket was being closed before the
              // close arrived ("Active connection is not open"): the close says whether it was a
              // refusal, which is then the error given; else (or if none comes) this one.
              const settle = () => {
                clearTimeout(fallback);
                atNextSocketEvent.delete(settle);
                end(refused ?? error);
              };
              const fallback = setTimeout(settle, CLOSE_WAIT_MS);
              fallback.unref?.();
              atNextSocketEvent.add(settle);
              waitingForClose = settle;
            },
            complete: () => {
              if (ended) return;
              ended = true;
              live.delete(end);
              observer.complete();
            },
          });
          if (ended) subscription.unsubscribe();
          else live.add(end);
          return () => {
            ended = true;
            live.delete(end);
            if (waitingForClose !== undefined) atNextSocketEvent.delete(waitingForClose);
            subscription?.unsubscribe();
          };
        }),
  };
}
