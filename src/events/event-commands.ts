// The event stream's writes, as the database writer thread runs them: publish, subscriptions and
// their cursors, auto-ack takes and their undoing, retention.
import type { WriteContext } from "../db/writer.js";
import { CoordinationError, invalidField } from "../errors.js";
import { sameJson } from "../json-value.js";
import { fromJsonText } from "../db/columns.js";
import { assertReadable, inboxOf, isPruned, noPatterns, notSubscribed, readInbox, retainedStart } from "./event-positions.js";
import type { CoordinationEvent, PollRequest, PublishRequest, Subscription } from "./event-schemas.js";
import { toEvent, type EventRow, type EventStore, type InboxPosition, type LostTake } from "./event-store.js";
import { mergePatterns } from "./type-patterns.js";

/**
 * The patterns one agent's subscription holds, at most: each is a range or a value of every read
 * of its inbox (a subscription of 33,000 types failed every poll: SQLite takes 32,766 values).
 */
export const MAX_SUBSCRIPTION_PATTERNS = 1000;

export interface EventCommandDeps {
  events: EventStore;
  /** Whether the registry knows this agent (a direct message to one records its mailbox position). */
  isAgent: (agentId: string) => boolean;
  maxResponseBytes: number;
  eventRetentionMs: number;
  eventRetentionCount: number;
}

/** What an auto-ack poll took. */
export interface Taken {
  batch: CoordinationEvent[];
  /** The agent's patterns (the event loop wakes a parked poll only for events it could take). */
  types: string[];
  /** The batch's hold (poll_takes), when the take asked for one: confirm it, or lose it. */
  held?: number;
}

/**
 * How a take keeps its batch until the answer is confirmed: the server process taking it (it
 * renews the hold while the answer is on its way), and how long the hold lasts unrenewed.
 */
export interface TakeHold {
  owner: string;
  holdMs: number;
}

export function eventCommands(d: EventCommandDeps) {
  const { events } = d;

  /**
   * After `fromSeq` (0: from the oldest retained event). Without it, an existing subscription
   * keeps its cursor (behind the retained log with nothing of its types pruned since, where the
   * log begins) and a new one starts at the head, as does one that missed pruned events:
   * resubscribing is the way out of EVENTS_PRUNED that its message offers.
   * Runs inside subscribe's write, so the pruner cannot move the retained window meanwhile.
   */
  const startCursor = (fromSeq: number | undefined, existing: Subscription | undefined): number => {
    // 0 is "everything retained", whatever was pruned: the documented meaning, not an error.
    if (fromSeq === 0) return events.prunedThroughSeq();
    if (fromSeq !== undefined) {
      assertReadable(events, fromSeq, "fromSeq");
      return fromSeq;
    }
    // Behind the retained log, it reads on from there if nothing of its types was pruned since.
    if (existing) {
      try {
        return retainedStart(events, existing.cursor, { patterns: existing.types, recipient: null }, "cursor");
      } catch (error) {
        if (!isPruned(error)) throw error;
      }
    }
    return events.headSeq();
  };

  /** `taken`, its batch held (after `before`, to its last event, read with `types`) when the take asked for a hold. */
  const held = (ctx: WriteContext, request: { agentId: string; hold?: TakeHold }, taken: Taken, before: InboxPosition, types: readonly string[]): Taken => {
    if (request.hold !== undefined) taken.held = events.holdTake(request.agentId, request.hold.owner, before, taken.batch.at(-1)!.seq, types, ctx.now + request.hold.holdMs);
    return taken;
  };

  /**
   * The agent's oldest lost batch, given again: its inbox in the range the batch covered (after
   * its before cursors, up to its last event, with the patterns it had then), up to `limit`.
   * What is left of the range stays lost for the next take; what is given again is held as any
   * batch is. Undefined when the agent has no lost batch with events left. `types` (the agent's
   * patterns now) go with the answer, as any take's.
   */
  const takeLost = (ctx: WriteContext, request: Pick<PollRequest, "agentId" | "limit"> & { hold?: TakeHold }, types: string[]): Taken | undefined => {
    const lost = events.lostTake(request.agentId, ctx.now);
    if (lost === undefined) return undefined;
    const before = lostRange(lost, request.agentId);
    const read = events.readInbox(request.agentId, lost.types, before, request.limit, d.maxResponseBytes);
    const batch = read.filter((event) => event.seq <= lost.lastSeq);
    const last = batch.at(-1);
    // Read past the range's end, or to it: nothing of it is left after this batch.
    if (last === undefined || last.seq >= lost.lastSeq || batch.length < read.length) events.releaseTake(lost.seq);
    else events.shrinkLostTake(lost, last.seq);
    if (last === undefined) return undefined;
    return held(ctx, request, { batch, types }, before, lost.types);
  };

  /**
   * Where a lost batch is read again from: its before cursors, or where the retained log begins
   * if nothing it held was pruned since. A batch whose events were pruned before it was given
   * again is EVENTS_PRUNED until the agent acknowledges past them (events.ack) or subscribes
   * again from a position (fromSeq), never a batch skipped in silence.
   */
  const lostRange = (lost: LostTake, agentId: string): InboxPosition => {
    try {
      return {
        cursor: retainedStart(events, lost.beforeCursor, { patterns: lost.types, recipient: null }, "cursor"),
        mailboxCursor: retainedStart(events, lost.beforeMailboxCursor, { patterns: [], recipient: agentId }, "mailboxCursor"),
      };
    } catch (error) {
      if (!isPruned(error)) throw error;
      const prunedThrough = events.prunedThroughSeq();
      throw new CoordinationError(
        "EVENTS_PRUNED",
        `a batch polled for agent "${agentId}" (events after ${Math.min(lost.beforeCursor, lost.beforeMailboxCursor)} through ${lost.lastSeq}) never reached it, and events of it were pruned before it could be given again: events up to ${prunedThrough} are gone. Acknowledge up to seq ${prunedThrough} (events.ack), or subscribe again with fromSeq 0 (or fromSeq >= ${prunedThrough}).`,
        { prunedThroughSeq: prunedThrough, lostBatch: { after: Math.min(lost.beforeCursor, lost.beforeMailboxCursor), through: lost.lastSeq } },
      );
    }
  };

  return {
    /**
     * Stores the event once, whatever the number of subscribers; returns it with its seq. A direct
     * message to a registered agent gives it a mailbox position if it had none (from the oldest
     * retained event, so this message is unread): should retention prune the message unread, the
     * agent's next poll is EVENTS_PRUNED, as a subscriber's is, never a silent gap. Only for
     * agents the registry knows: any name may be a target, and a row per name would only grow.
     */
    "events.publish": (ctx: WriteContext, request: PublishRequest): CoordinationEvent => {
      if (request.idempotencyKey !== undefined) {
        const stored = events.findByKey(request.source, request.idempotencyKey);
        if (stored) return samePublish(stored, request);
      }
      if (request.target && d.isAgent(request.target)) events.openMailbox(request.target, ctx.now);
      return events.append(ctx, request);
    },

    /**
     * Adds patterns to the agent's subscription; where it then reads from: see startCursor. The
     * mailbox keeps its position (from the oldest retained direct message for a new agent).
     */
    "events.subscribe": (ctx: WriteContext, request: { agentId: string; types: string[]; fromSeq?: number | undefined }): Subscription => {
      const existing = events.getSubscription(request.agentId);
      const types = mergePatterns(existing?.types ?? [], request.types);
      if (types.length > MAX_SUBSCRIPTION_PATTERNS) {
        throw invalidField("types", `an agent's subscription holds at most ${MAX_SUBSCRIPTION_PATTERNS} patterns, and these would make it ${types.length}: unsubscribe some, or take a prefix (task.*) in place of the types under it`);
      }
      // A mailbox-only agent (no patterns yet) subscribes like a new one: from the head.
      const cursor = startCursor(request.fromSeq, existing && existing.types.length > 0 ? existing : undefined);
      const mailboxCursor = Math.max(existing?.mailboxCursor ?? 0, events.prunedThroughSeq());
      // From a position it names: lost batches of what was pruned are given up (the way out of their EVENTS_PRUNED).
      if (request.fromSeq !== undefined) events.releaseTakesThrough(request.agentId, events.prunedThroughSeq());
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
     * what did not match, so the next poll does not scan it again. With `hold`, the batch is kept
     * (poll_takes) until its answer is confirmed. A batch lost for this agent (its hold expired
     * unconfirmed: the server that took it died, or the answer did not arrive) comes first, from
     * the range it covered, whichever server lost it; the cursors stay where they are then.
     */
    "events.take": (ctx: WriteContext, request: Pick<PollRequest, "agentId" | "limit"> & { hold?: TakeHold }): Taken => {
      const inbox = inboxOf(events, request.agentId);
      const again = takeLost(ctx, request, inbox.types);
      if (again !== undefined) return again;
      const batch = readInbox(events, request.agentId, inbox, request.limit, d.maxResponseBytes);
      const last = batch.at(-1);
      if (last === undefined) {
        const head = events.headSeq();
        if (inbox.recorded && (inbox.cursor < head || inbox.mailboxCursor < head)) events.advanceInbox(request.agentId, head, ctx.now);
        return { batch: [], types: inbox.types };
      }
      events.advanceInbox(request.agentId, last.seq, ctx.now);
      return held(ctx, request, { batch, types: inbox.types }, { cursor: inbox.cursor, mailboxCursor: inbox.mailboxCursor }, inbox.types);
    },

    /** Held batches whose answers reached their agents: each is its agent's for good. */
    "events.confirmTakes": (_: WriteContext, held: number[]): void => {
      for (const seq of held) events.releaseTake(seq);
    },

    /** A held batch's answer did not reach its agent: its next auto-ack poll gets the batch again. */
    "events.loseTake": (_: WriteContext, held: number): void => events.loseTake(held),

    /** Renews the holds of batches whose answers `owner` is still sending (so no other take counts them lost). */
    "events.renewTakes": (ctx: WriteContext, args: { owner: string; held: number[]; holdMs: number }): void => events.renewTakes(args.owner, args.held, ctx.now + args.holdMs),

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
      // What it says it has is not to be given again: holds through seq go, later ones start after it.
      events.releaseTakesThrough(request.agentId, request.seq);
      return events.advanceInbox(request.agentId, request.seq, ctx.now);
    },

    /** Deletes events past the configured age and count, up to `limit` seqs; `more` when some are left for the next write. Run periodically. */
    "events.prune": (ctx: WriteContext, limit: number): { deleted: number; more: boolean } => {
      // A lost batch whose events are pruned stays: its agent's next take says so (lostRange).
      return events.prune(d.eventRetentionMs > 0 ? ctx.now - d.eventRetentionMs : null, d.eventRetentionCount > 0 ? d.eventRetentionCount : null, limit);
    },
  };
}

/**
 * A publish sent again with the key of an event its source stored: that event, as it is. Sent with
 * a different type, payload or target, the key names another event: 409 IDEMPOTENCY_MISMATCH.
 */
function samePublish(stored: EventRow, request: PublishRequest): CoordinationEvent {
  const differs = [
    ...(stored.type === request.type ? [] : ["type"]),
    ...(sameJson(fromJsonText(stored.payload), request.payload) ? [] : ["payload"]),
    ...(stored.target === (request.target ?? null) ? [] : ["target"]),
  ];
  if (differs.length > 0) {
    throw new CoordinationError("IDEMPOTENCY_MISMATCH", `idempotencyKey "${request.idempotencyKey}" of "${request.source}" was used for event ${stored.seq} with a different ${differs.join(", ")}`, {
      seq: stored.seq,
      differs,
    });
  }
  return toEvent(stored);
}
