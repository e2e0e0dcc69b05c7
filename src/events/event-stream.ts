// The live stream behind the `events.onEvent` subscription. Order of work matters:
// 1. listen to the bus first (into a bounded buffer), 2. backfill from the log after
// lastEventId, 3. drain the buffer, skipping what the backfill already yielded.
// Listening before reading is what makes a reconnect gap-free; the seq check makes it duplicate-free.
import { tracked, TRPCError, type TrackedEnvelope } from "@trpc/server";
import { CoordinationError, ERROR_REASONS } from "../errors.js";
import type { EventBus } from "./event-bus.js";
import type { CoordinationEvent } from "./event-schemas.js";
import type { EventService } from "./event-service.js";
import type { EventStore } from "./event-store.js";
import { matchesType, mergePatterns } from "./type-patterns.js";

export interface StreamRequest {
  agentId?: string | undefined;
  types?: string[] | undefined;
  lastEventId?: string | null | undefined;
}

export interface StreamDeps {
  bus: EventBus;
  events: EventStore;
  service: EventService;
  /** Events buffered for a consumer that reads slower than events arrive. */
  bufferLimit: number;
  /** Called when the buffer overflows: closes the connection so the client resumes by lastEventId. */
  onOverflow: (reason: string) => void;
  /**
   * Bytes queued on the client's socket. tRPC's WebSocket adapter sends every yielded value at
   * once, so without this check a slow reader would pile events up inside the socket instead.
   */
  socketBacklog?: () => number;
}

/** Above this many unsent bytes on the socket, the stream stops yielding and lets the buffer fill. */
const SOCKET_HIGH_WATER = 1 << 20;
const DRAIN_CHECK_MS = 10;

const BACKFILL_PAGE = 500;

export async function* streamEvents(
  deps: StreamDeps,
  request: StreamRequest,
  signal: AbortSignal | undefined,
): AsyncGenerator<TrackedEnvelope<CoordinationEvent>> {
  const subscription = request.agentId ? deps.events.getSubscription(request.agentId) : undefined;
  // The agent's subscription and the request's own patterns add up; neither given means everything.
  const patterns = subscription || request.types ? mergePatterns(subscription?.types ?? [], request.types ?? []) : ["*"];
  const recipient = request.agentId ?? null;
  const wanted = (e: CoordinationEvent) => (e.target === null ? matchesType(e.type, patterns) : e.target === recipient);

  const buffer: CoordinationEvent[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  const unlisten = deps.bus.listen((events) => {
    if (overflowed) return;
    for (const event of events) if (wanted(event)) buffer.push(event);
    if (buffer.length > deps.bufferLimit) overflowed = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  try {
    let cursor = deps.bus.lastSeq;
    if (request.lastEventId != null) {
      cursor = Number(request.lastEventId);
      deps.service.assertReadable(cursor, "lastEventId");
      // Backfill what was published while the client was away, page by page, up to the live edge.
      for (;;) {
        // The pruner may run between pages: a gap must be an error, never a silent skip.
        deps.service.assertRetained(cursor, "lastEventId");
        const page = deps.events.readMatching(recipient, patterns, cursor, BACKFILL_PAGE);
        for (const event of page) {
          if (signal?.aborted) return;
          cursor = event.seq;
          yield tracked(String(event.seq), event);
        }
        if (page.length < BACKFILL_PAGE) break;
      }
    }
    while (!signal?.aborted) {
      if (overflowed) {
        deps.onOverflow(`subscriber fell more than ${deps.bufferLimit} events behind; resume with lastEventId ${cursor}`);
        return;
      }
      if (deps.socketBacklog && deps.socketBacklog() > SOCKET_HIGH_WATER) {
        // WebSocket has no drain event to await; look again shortly (the buffer keeps filling meanwhile).
        await new Promise<void>((resolve) => setTimeout(resolve, DRAIN_CHECK_MS));
        continue;
      }
      const event = buffer.shift();
      if (event === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      if (event.seq <= cursor) continue;
      cursor = event.seq;
      yield tracked(String(event.seq), event);
    }
  } catch (error) {
    // Thrown while iterating, where the procedure's error middleware no longer applies:
    // translate here, or the client would see INTERNAL_SERVER_ERROR instead of e.g. EVENTS_PRUNED.
    if (error instanceof CoordinationError) throw new TRPCError({ code: ERROR_REASONS[error.reason], message: error.message, cause: error });
    throw error;
  } finally {
    unlisten();
    signal?.removeEventListener("abort", onAbort);
  }
}
