// The event stream's writes, as the database writer thread runs them: publish, subscriptions and
// their cursors, auto-ack takes and their undoing, retention.
import type { WriteContext } from "../db/writer.js";
import { invalidField } from "../errors.js";
import { assertReadable, inboxOf, noPatterns, notSubscribed, readInbox } from "./event-positions.js";
import type { CoordinationEvent, PollRequest, PublishRequest, Subscription } from "./event-schemas.js";
import type { EventStore, InboxPosition } from "./event-store.js";
import { mergePatterns } from "./type-patterns.js";

export interface EventCommandDeps {
  events: EventStore;
  maxResponseBytes: number;
  eventRetentionMs: number;
  eventRetentionCount: number;
}

/** What an auto-ack poll took, and the positions to go back to should its answer not arrive. */
export interface Taken {
  batch: CoordinationEvent[];
  before: InboxPosition;
  after: InboxPosition;
  /** The agent's patterns (the event loop wakes a parked poll only for events it could take). */
  types: string[];
}

export function eventCommands(d: EventCommandDeps) {
  const { events } = d;

  /**
   * After `fromSeq` (0: from the oldest retained event). Without it, an existing subscription
   * keeps its cursor and a new one starts at the head, as does one whose cursor fell behind the
   * retained log: resubscribing is the way out of EVENTS_PRUNED that its message offers.
   * Runs inside subscribe's write, so the pruner cannot move the retained window meanwhile.
   */
  const startCursor = (fromSeq: number | undefined, existing: Subscription | undefined): number => {
    // 0 is "everything retained", whatever was pruned: the documented meaning, not an error.
    if (fromSeq === 0) return events.prunedThroughSeq();
    if (fromSeq !== undefined) {
      assertReadable(events, fromSeq, "fromSeq");
      return fromSeq;
    }
    if (existing && existing.cursor >= events.prunedThroughSeq()) return existing.cursor;
    return events.headSeq();
  };

  return {
    /** Stores the event once, whatever the number of subscribers; returns it with its seq. */
    "events.publish": (ctx: WriteContext, request: PublishRequest): CoordinationEvent => events.append(ctx, request),

    /**
     * Adds patterns to the agent's subscription; where it then reads from: see startCursor. The
     * mailbox keeps its position (from the oldest retained direct message for a new agent).
     */
    "events.subscribe": (ctx: WriteContext, request: { agentId: string; types: string[]; fromSeq?: number | undefined }): Subscription => {
      const existing = events.getSubscription(request.agentId);
      const types = mergePatterns(existing?.types ?? [], request.types);
      // A mailbox-only agent (no patterns yet) subscribes like a new one: from the head.
      const cursor = startCursor(request.fromSeq, existing && existing.types.length > 0 ? existing : undefined);
      const mailboxCursor = Math.max(existing?.mailboxCursor ?? 0, events.prunedThroughSeq());
      return events.saveSubscription(request.agentId, types, { cursor, mailboxCursor }, ctx.now);
    },

    /**
     * Drops the given patterns, or all of them when none are given. The agent's row stays (with no
     * patterns) so its mailbox position is kept; SUBSCRIPTION_NOT_FOUND when it has no patterns
     * (none yet, or all dropped), or no row at all.
     */
    "events.unsubscribe": (ctx: WriteContext, request: { agentId: string; types?: string[] | undefined }): Subscription => {
      const existing = events.getSubscription(request.agentId);
      if (!existing) throw notSubscribed(request.agentId);
      // Its row (cursors) is what events.subscription answers: the 404 says why there is nothing to drop.
      if (existing.types.length === 0) throw noPatterns(request.agentId);
      const remaining = request.types ? existing.types.filter((t) => !request.types!.includes(t)) : [];
      return events.saveSubscription(request.agentId, remaining, existing, ctx.now);
    },

    /**
     * auto-ack: reads the agent's next batch and moves its cursors past it, in one write (two
     * concurrent polls never get the same event). Nothing for it up to the head: the cursors skip
     * what did not match, so the next poll does not scan it again; null then.
     */
    "events.take": (ctx: WriteContext, request: Pick<PollRequest, "agentId" | "limit">): Taken | { batch: []; types: string[] } => {
      const inbox = inboxOf(events, request.agentId);
      const batch = readInbox(events, request.agentId, inbox, request.limit, d.maxResponseBytes);
      const last = batch.at(-1);
      if (last === undefined) {
        const head = events.headSeq();
        if (inbox.recorded && (inbox.cursor < head || inbox.mailboxCursor < head)) events.advanceInbox(request.agentId, head, ctx.now);
        return { batch: [], types: inbox.types };
      }
      const after = events.advanceInbox(request.agentId, last.seq, ctx.now);
      return {
        batch,
        before: { cursor: inbox.cursor, mailboxCursor: inbox.mailboxCursor },
        after: { cursor: after.cursor, mailboxCursor: after.mailboxCursor },
        types: inbox.types,
      };
    },

    /** Undoes a take whose answer never reached the agent (see EventStore.rewindInbox). */
    "events.rewind": (ctx: WriteContext, args: { agentId: string; before: InboxPosition; after: InboxPosition }): void =>
      events.rewindInbox(args.agentId, args.before, args.after, ctx.now),

    /**
     * manual ack: when nothing matched up to the head, the cursors skip to the head: nothing there
     * is left to ack, and a cursor left behind would get EVENTS_PRUNED once the unrelated events
     * after it are pruned. Reads again inside the write: an event committed since must not be skipped.
     */
    "events.skipToHead": (ctx: WriteContext, request: Pick<PollRequest, "agentId" | "limit">): CoordinationEvent[] => {
      const again = readInbox(events, request.agentId, inboxOf(events, request.agentId), request.limit, d.maxResponseBytes);
      if (again.length === 0) events.advanceInbox(request.agentId, events.headSeq(), ctx.now);
      return again;
    },

    /** Acknowledges everything up to and including `seq`, types and mailbox alike. Never moves back. */
    "events.ack": (ctx: WriteContext, request: { agentId: string; seq: number }): Subscription => {
      const head = events.headSeq();
      if (request.seq > head) throw invalidField("seq", `${request.seq} is beyond the newest event (${head})`);
      return events.advanceInbox(request.agentId, request.seq, ctx.now);
    },

    /** Deletes events past the configured age and count. Run periodically. */
    "events.prune": (ctx: WriteContext, _: undefined): number =>
      events.prune(d.eventRetentionMs > 0 ? ctx.now - d.eventRetentionMs : null, d.eventRetentionCount > 0 ? d.eventRetentionCount : null),
  };
}
