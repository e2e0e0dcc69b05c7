// The live stream behind the `events.onEvent` subscription. Order of work matters:
// 1. listen to the bus first (into a bounded buffer), 2. backfill from the log after
// lastEventId, 3. drain the buffer, skipping what the backfill already yielded.
// Listening before reading is what makes a reconnect gap-free; the seq check makes it duplicate-free.
import { tracked, TRPCError, type TrackedEnvelope } from "@trpc/server";
import { CoordinationError, invalidField } from "../errors.js";
import { trpcCodeOf } from "../trpc/error-shape.js";
import type { EventBus } from "./event-bus.js";
import type { CoordinationEvent } from "./event-schemas.js";
import type { EventService } from "./event-service.js";
import { eventBytes } from "./event-bytes.js";
import { mergePatterns, typeMatcher } from "./type-patterns.js";

/**
 * A lastEventId: an event seq ("0": everything retained), or MAILBOX:SEQ, which a fresh agent
 * stream tracks its mailbox replay with (replayMailbox); that one resumes an agent's stream only.
 */
function parseLastEventId(lastEventId: string, recipient: string | null): { seq: string; mailbox?: number } {
  const [first, second] = lastEventId.split(":");
  if (second === undefined) return { seq: first! };
  if (recipient === null) throw invalidField("lastEventId", `${lastEventId} is a position in an agent's mailbox; resume it with that agentId`);
  if (Number(first) > Number(second)) throw invalidField("lastEventId", `${lastEventId} is not a position a stream gave: its mailbox part is past its seq`);
  return { seq: second, mailbox: Number(first) };
}

export interface StreamRequest {
  agentId?: string | undefined;
  types?: string[] | undefined;
  lastEventId?: string | null | undefined;
}

export interface StreamDeps {
  bus: EventBus;
  service: EventService;
  /** Events buffered for a consumer that reads slower than events arrive. */
  bufferLimit: number;
  /** The same in bytes of the events' JSON: events may be 1 MiB each, so a count alone bounds little. */
  bufferBytesLimit: number;
  /** Called when the buffer overflows: closes the connection so the client resumes by lastEventId. */
  onOverflow: (reason: string) => void;
  /**
   * Bytes queued on the client's socket. tRPC's WebSocket adapter sends every yielded value at
   * once, so without this check a slow reader would pile events up inside the socket instead.
   */
  socketBacklog: () => number;
}

/** What one open stream has done so far (observability: operators and tests see backpressure work). */
export interface LiveStreamStats {
  /** Events handed to the socket. */
  sent: number;
  /** The most unsent bytes seen on the socket right after an event was handed to it. */
  peakSocketBacklog: number;
  /** True while the stream waits for the socket to drain below SOCKET_HIGH_WATER. */
  waitingForSocket: boolean;
  /** Events it should get that wait in its buffer, not yet handed to the socket: its lag. */
  readonly buffered: number;
}

/**
 * A committed batch's events by what a stream's filter reads of them: the type of an untargeted
 * event, the target of a direct message. Made once per batch (the bus hands every listener the
 * same array), so each stream tests the batch's kinds, not its events: 2,000 streams open (the
 * default maxSubscriptionsPerCredential, and an open server's only credential) each tested the
 * 1,000 events of one enqueueMany, 2 million filter calls and 50 ms of the event loop even with
 * the patterns matched by set (typeMatcher); with each stream's 1,100 patterns scanned as a list,
 * 47 s.
 */
interface BatchKinds {
  /** Each event's kind, by its index in the batch. */
  keys: string[];
  /** One event of each kind: the filter's answer for it is its kind's. */
  kinds: Map<string, CoordinationEvent>;
}
const batchKinds = new WeakMap<readonly CoordinationEvent[], BatchKinds>();

function kindsOf(events: readonly CoordinationEvent[]): BatchKinds {
  let found = batchKinds.get(events);
  if (found === undefined) {
    found = { keys: [], kinds: new Map() };
    for (const event of events) {
      const key = event.target === null ? `t${event.type}` : `m${event.target}`;
      found.keys.push(key);
      if (!found.kinds.has(key)) found.kinds.set(key, event);
    }
    batchKinds.set(events, found);
  }
  return found;
}

/** Above this many unsent bytes on the socket, the stream stops yielding (backfill and live alike). */
export const SOCKET_HIGH_WATER = 1 << 20;
const DRAIN_CHECK_MS = 10;

const BACKFILL_PAGE = 500;
/** How long a stream works before it gives the event loop back, in ms. */
const SLICE_MS = 4;

export async function* streamEvents(
  deps: StreamDeps,
  request: StreamRequest,
  signal: AbortSignal | undefined,
): AsyncGenerator<TrackedEnvelope<CoordinationEvent>> {
  // Listen before anything is read, or an event committed meanwhile would be missed. Until the
  // agent's patterns are known (one read away), everything is kept; then only what is wanted.
  const recipient = request.agentId ?? null;
  let wanted: ((e: CoordinationEvent) => boolean) | undefined;
  let buffer: CoordinationEvent[] = [];
  let bufferedBytes = 0;
  /** Why the buffer overflowed ("50 events", "16777216 bytes"), once it did. */
  let overflowed: string | undefined;
  let wake: (() => void) | undefined;
  const keep = (event: CoordinationEvent) => {
    buffer.push(event);
    bufferedBytes += eventBytes(event);
  };
  const unlisten = deps.bus.listen((events) => {
    if (overflowed !== undefined) return;
    if (wanted === undefined) {
      for (const event of events) keep(event);
    } else {
      const { keys, kinds } = kindsOf(events);
      const taken = new Set<string>();
      for (const [key, event] of kinds) if (wanted(event)) taken.add(key);
      if (taken.size === 0) return;
      events.forEach((event, i) => taken.has(keys[i]!) && keep(event));
    }
    if (buffer.length > deps.bufferLimit) overflowed = `${deps.bufferLimit} events`;
    else if (bufferedBytes > deps.bufferBytesLimit) overflowed = `${deps.bufferBytesLimit} bytes`;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  const stats: LiveStreamStats = {
    sent: 0,
    peakSocketBacklog: 0,
    waitingForSocket: false,
    get buffered() {
      return buffer.length;
    },
  };
  deps.service.liveStreams.add(stats);
  let cursor = deps.bus.lastSeq;
  /** The id of the last event sent: where the client resumes. */
  let lastSent: string | undefined;

  /**
   * Runs before every yield, backfill and live alike: false when the stream must end (aborted,
   * or the buffer overflowed, which closes the connection: during a backfill the buffer fills
   * from the bus too), else it waits while the socket holds more than SOCKET_HIGH_WATER bytes.
   */
  let sliceStart = performance.now();
  const readyToYield = async (): Promise<boolean> => {
    // Each event costs the event loop its serialization and send; a backfill of thousands in a
    // row would hold every other connection. Past SLICE_MS of work, let the loop run first.
    if (performance.now() - sliceStart > SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
    for (;;) {
      if (signal?.aborted) return false;
      if (overflowed !== undefined) {
        deps.onOverflow(`subscriber fell more than ${overflowed} behind; resume with lastEventId ${lastSent ?? cursor}`);
        return false;
      }
      // The adapter sent the last value before asking for the next: the backlog includes it.
      const backlog = deps.socketBacklog();
      stats.peakSocketBacklog = Math.max(stats.peakSocketBacklog, backlog);
      stats.waitingForSocket = backlog > SOCKET_HIGH_WATER;
      if (!stats.waitingForSocket) return true;
      // WebSocket has no drain event to await; look again shortly.
      await new Promise<void>((resolve) => setTimeout(resolve, DRAIN_CHECK_MS));
    }
  };
  const envelope = (event: CoordinationEvent) => {
    cursor = event.seq;
    stats.sent++;
    lastSent = String(event.seq);
    return tracked(lastSent, event);
  };

  try {
    const setup = await deps.service.streamSetup(request.agentId);
    // An agent's stream: its subscription's patterns and the request's own, added up, and its
    // mailbox; with neither, the mailbox alone, as its poll gives. No agent: the request's
    // patterns, or every event.
    const patterns = recipient !== null ? mergePatterns(setup.subscription?.types ?? [], request.types ?? []) : (request.types ?? ["*"]);
    // Every committed event is tested against every open stream's patterns (up to 1,100 an agent's stream).
    const matches = typeMatcher(patterns);
    wanted = (e) => (e.target === null ? matches(e.type) : e.target === recipient);
    buffer = buffer.filter(wanted);
    bufferedBytes = buffer.reduce((sum, event) => sum + eventBytes(event), 0);
    /**
     * The agent's direct messages after `after`, up to `liveEdge`, page by page: a fresh stream's
     * mailbox, before its live events. Each is tracked as MAILBOX:EDGE (mailbox read through its
     * seq, everything else through the edge), so a reconnect resumes the mailbox where it was and
     * the rest from the edge: the events before the edge that the stream skipped on purpose stay
     * skipped, whether or not it reconnected.
     */
    const replayMailbox = async function* (agent: string, after: number, liveEdge: number, position: "mailboxCursor" | "lastEventId") {
      for (;;) {
        const page = (await deps.service.backfill({ recipient: agent, patterns: [], afterSeq: after, limit: BACKFILL_PAGE, position })).filter((e) => e.seq <= liveEdge);
        for (const event of page) {
          if (!(await readyToYield())) return false;
          after = event.seq;
          stats.sent++;
          lastSent = event.seq === liveEdge ? String(liveEdge) : `${event.seq}:${liveEdge}`;
          yield tracked(lastSent, event);
        }
        if (page.length === 0) return true;
      }
    };
    const resume = request.lastEventId == null ? undefined : parseLastEventId(request.lastEventId, recipient);
    if (resume !== undefined) {
      // "0" asks for everything retained, like subscribe's fromSeq 0: start where the log now begins.
      // Behind the retained log, it resumes where nothing it reads was pruned since.
      cursor = await deps.service.streamStart(resume.seq, "lastEventId", { patterns, recipient });
      // Stopped in a fresh stream's mailbox: the rest of it first, up to the edge it had then.
      if (resume.mailbox !== undefined && !(yield* replayMailbox(recipient!, resume.mailbox, cursor, "lastEventId"))) return;
      // Backfill what was published while the client was away, page by page, up to the live edge.
      // The pruner may run between pages: a gap is an error (EVENTS_PRUNED), never a silent skip.
      for (;;) {
        const page = await deps.service.backfill({ recipient, patterns, afterSeq: cursor, limit: BACKFILL_PAGE, position: "lastEventId" });
        for (const event of page) {
          if (!(await readyToYield())) return;
          yield envelope(event);
        }
        if (page.length === 0) break;
      }
    } else if (recipient !== null) {
      // A fresh stream for an agent starts with its mailbox: the direct messages it has not
      // consumed (by poll or ack), up to the live edge. They need no subscription.
      if (!(yield* replayMailbox(recipient, setup.mailboxStart, cursor, "mailboxCursor"))) return;
    }
    for (;;) {
      if (!(await readyToYield())) return;
      const event = buffer.shift();
      if (event === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      bufferedBytes -= eventBytes(event);
      if (event.seq <= cursor) continue;
      yield envelope(event);
    }
  } catch (error) {
    // Thrown while iterating, where the procedure's error middleware no longer applies:
    // translate here, or the client would see INTERNAL_SERVER_ERROR instead of e.g. EVENTS_PRUNED.
    if (error instanceof CoordinationError) throw new TRPCError({ code: trpcCodeOf(error.code), message: error.message, cause: error });
    throw error;
  } finally {
    unlisten();
    signal?.removeEventListener("abort", onAbort);
    deps.service.liveStreams.delete(stats);
  }
}
