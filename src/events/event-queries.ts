// The event stream's reads, as the database reader thread runs them: subscriptions, manual-ack
// peeks, history, live-stream backfill pages and the log tail for other processes' events.
import { assertReadable, inboxOf, notSubscribed, readInbox, retainedStart, type Position, type Reads } from "./event-positions.js";
import type { CoordinationEvent, PollRequest, Subscription } from "./event-schemas.js";
import type { ListEventsRequest } from "./event-service.js";
import type { EventStore } from "./event-store.js";

/** Pages that stream to the event loop (backfills, the bus's tail) stop at this many bytes. */
const STREAM_PAGE_BYTES = 1 << 20;
/** How many events (of any kind) a task's history reads at most from each of its times on (creation, last claim, end). */
const TASK_EVENT_SCAN = 100_000;

export function eventQueries(d: { events: EventStore; maxResponseBytes: number }) {
  const { events } = d;
  return {
    "events.subscription": (agentId: string): Subscription => {
      const subscription = events.getSubscription(agentId);
      if (!subscription) throw notSubscribed(agentId);
      return subscription;
    },

    /**
     * manual ack: the agent's next batch, cursors unmoved. `skip`: nothing matched although the
     * head is past a recorded cursor (the writer then moves it to the head: events.skipToHead).
     */
    "events.peek": (request: Pick<PollRequest, "agentId" | "limit">): { batch: CoordinationEvent[]; skip: boolean; types: string[] } => {
      const inbox = inboxOf(events, request.agentId);
      const batch = readInbox(events, request.agentId, inbox, request.limit, d.maxResponseBytes);
      const head = events.headSeq();
      return { batch, skip: batch.length === 0 && inbox.recorded && (inbox.cursor < head || inbox.mailboxCursor < head), types: inbox.types };
    },

    /** The log itself, for history and audit; with `recipient`, only the direct messages to it (none for null). */
    "events.list": (request: ListEventsRequest): CoordinationEvent[] => {
      // Past the head is refused as a stream's lastEventId is (a position from a file restored
      // from an older backup would otherwise read [] for ever, saying nothing).
      if (request.afterSeq > 0) assertReadable(events, request.afterSeq, "afterSeq");
      return events.readLogPage(request.afterSeq, request.limit, d.maxResponseBytes, request.types, request.recipient).events;
    },

    /**
     * One page of a live stream's backfill (recipient's mailbox and its patterns' events), at most
     * STREAM_PAGE_BYTES: a page crosses to the event loop in one piece, and a big one would hold it.
     */
    "events.backfill": (args: { recipient: string | null; patterns: string[]; afterSeq: number; limit: number; position: Position }): CoordinationEvent[] => {
      // The pruner may pass a stream between pages without taking anything it reads.
      const after = retainedStart(events, args.afterSeq, { patterns: args.patterns, recipient: args.recipient }, args.position);
      return events.readMatching(args.recipient, args.patterns, after, args.limit, Math.min(STREAM_PAGE_BYTES, d.maxResponseBytes));
    },

    /**
     * Where a stream may start: "0" is everything retained; else the seq, if readable, or, behind
     * the retained log, where it begins if nothing the stream reads (`reads`) was pruned since
     * (retainedStart).
     */
    "events.streamStart": (args: { lastEventId: string; position: Position; reads: Reads }): number => {
      const seq = args.lastEventId === "0" ? events.prunedThroughSeq() : Number(args.lastEventId);
      const start = retainedStart(events, seq, args.reads, args.position);
      assertReadable(events, start, args.position);
      return start;
    },

    /**
     * Where a live stream for `agentId` starts reading its mailbox when it names no lastEventId:
     * its position, or the oldest retained event when that is later. Not EVENTS_PRUNED: a live
     * stream does not consume (only polls and acks move the position), so an agent that read
     * every message live would be refused by every fresh stream once retention passed it, and an
     * observer (`events tail --agent`) has no way out but to ack for the agent.
     */
    "events.mailboxStart": (agentId: string): number => Math.max(events.getSubscription(agentId)?.mailboxCursor ?? 0, events.prunedThroughSeq()),

    /** The log after `afterSeq`, a page at a time: the bus reads other processes' events with it. */
    "events.tail": (args: { afterSeq: number; limit: number }): { events: CoordinationEvent[]; more: boolean } =>
      events.readLogPage(args.afterSeq, args.limit, Math.min(STREAM_PAGE_BYTES, d.maxResponseBytes)),

    "events.head": (_: undefined): number => events.headSeq(),

    /**
     * A task's events (the dashboard's task page), found from the times it was created, last
     * claimed and finished (`times`, ms: a run of a schedule is enqueued long before it is
     * claimed); `recipient` as for events.list. A second before each time: a writer's clock read
     * for the row and the event's may differ by a few ms.
     */
    "events.forTask": (args: { taskId: string; times: number[]; limit: number; recipient?: string | null }): CoordinationEvent[] =>
      events.readForTask(
        args.taskId,
        args.times.map((at) => events.firstSeqAtOrAfter(at - 1000)),
        args.limit,
        TASK_EVENT_SCAN,
        d.maxResponseBytes,
        args.recipient,
      ),

    /** The log's head and how far it has been pruned: the retained window is (prunedThrough, head]. */
    "events.window": (_: undefined): { head: number; prunedThrough: number } => ({ head: events.headSeq(), prunedThrough: events.prunedThroughSeq() }),
  };
}
