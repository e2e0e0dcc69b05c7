// The event stream's rules: publish once, subscribe with patterns, poll with a cursor
// (auto or manual ack), retention with an explicit error for cursors left behind, and the
// live stream that resumes from lastEventId with no gap and no duplicate.
import type { Config } from "../config.js";
import type { Writer } from "../db/writer.js";
import { CoordinationError } from "../errors.js";
import { linkSignals } from "../wakeup.js";
import type { EventBus } from "./event-bus.js";
import type { CoordinationEvent, PollRequest, PublishRequest, Subscription } from "./event-schemas.js";
import type { EventStore } from "./event-store.js";
import type { LiveStreamStats } from "./event-stream.js";
import { mergePatterns } from "./type-patterns.js";

/** The positions a reader can hold, each with its own way out of EVENTS_PRUNED. */
type Position = "cursor" | "fromSeq" | "lastEventId" | "afterSeq";
const resubscribe = (prunedThrough: number) =>
  `Resubscribe with fromSeq 0 (or fromSeq >= ${prunedThrough}) to read what is retained, or without fromSeq to skip to the newest event.`;
const RECOVERY: Record<Position, (prunedThrough: number) => string> = {
  cursor: resubscribe,
  fromSeq: resubscribe,
  lastEventId: (p) => `Reconnect with lastEventId >= ${p}, or without lastEventId to follow new events only.`,
  afterSeq: (p) => `List with afterSeq 0 (the oldest retained event) or afterSeq >= ${p}.`,
};

export interface EventServiceDeps {
  config: Config;
  writer: Writer;
  events: EventStore;
  bus: EventBus;
  shutdownSignal: AbortSignal;
}

export class EventService {
  private parkedPolls = 0;
  /** The open live streams (events.onEvent), each with its counters; they add and remove themselves. */
  readonly liveStreams = new Set<LiveStreamStats>();

  constructor(private readonly d: EventServiceDeps) {}

  /** Long-polls currently waiting for an event (observability, and tests that must publish after one parked). */
  get waitingPolls(): number {
    return this.parkedPolls;
  }

  /** Stores the event once, whatever the number of subscribers; returns it with its seq. */
  publish(request: PublishRequest): Promise<CoordinationEvent> {
    return this.d.writer.write((ctx) => this.d.events.append(request, ctx.now));
  }

  /** Adds patterns to the agent's subscription; where it then reads from: see startCursor. */
  subscribe(request: { agentId: string; types: string[]; fromSeq?: number | undefined }): Promise<Subscription> {
    return this.d.writer.write((ctx) => {
      const existing = this.d.events.getSubscription(request.agentId);
      const types = mergePatterns(existing?.types ?? [], request.types);
      return this.d.events.saveSubscription(request.agentId, types, this.startCursor(request.fromSeq, existing), ctx.now);
    });
  }

  /** Drops the given patterns, or the whole subscription when none are given (or none remain). */
  unsubscribe(request: { agentId: string; types?: string[] | undefined }): Promise<Subscription> {
    return this.d.writer.write((ctx) => {
      const existing = this.requireSubscription(request.agentId);
      const remaining = request.types ? existing.types.filter((t) => !request.types!.includes(t)) : [];
      if (remaining.length === 0) {
        this.d.events.deleteSubscription(request.agentId);
        return { ...existing, types: [], updatedAt: new Date(ctx.now) };
      }
      return this.d.events.saveSubscription(request.agentId, remaining, existing.cursor, ctx.now);
    });
  }

  getSubscription(agentId: string): Subscription {
    return this.requireSubscription(agentId);
  }

  /**
   * The agent's next events in seq order. auto: the cursor moves past them in the same
   * transaction (two concurrent polls never get the same event). manual: the cursor stays
   * until ack (it only skips events that did not match), so a consumer that crashes mid-batch
   * gets the batch again (at-least-once).
   */
  async poll(request: PollRequest, signal?: AbortSignal): Promise<CoordinationEvent[]> {
    const deadline = Date.now() + Math.min(request.waitMs ?? 0, this.d.config.maxWaitMs);
    const stop = linkSignals([signal, this.d.shutdownSignal]);
    try {
      for (;;) {
        const seen = this.d.bus.arrived.current();
        const batch = await (request.ack === "auto"
          ? this.takeBatch(request.agentId, request.limit, signal)
          : this.peekBatch(request.agentId, request.limit));
        const now = Date.now();
        if (batch.length > 0 || now >= deadline || stop.signal.aborted) return batch;
        this.parkedPolls++;
        try {
          await this.d.bus.arrived.wait(seen, Math.min(deadline - now, this.d.config.crossProcessPollMs), stop.signal);
        } finally {
          this.parkedPolls--;
        }
      }
    } finally {
      stop.dispose();
    }
  }

  /** Acknowledges everything up to and including `seq` (manual mode). Never moves the cursor back. */
  ack(request: { agentId: string; seq: number }): Promise<Subscription> {
    return this.d.writer.write((ctx) => {
      this.requireSubscription(request.agentId);
      const head = this.d.events.headSeq();
      if (request.seq > head) {
        throw new CoordinationError("INVALID_INPUT", `seq ${request.seq} is beyond the newest event (${head})`);
      }
      return this.d.events.advanceCursor(request.agentId, request.seq, ctx.now)!;
    });
  }

  /** The log itself (all events, direct messages included), for history and audit. */
  list(request: { afterSeq: number; types?: string[] | undefined; limit: number }): CoordinationEvent[] {
    if (request.afterSeq > 0) this.assertRetained(request.afterSeq, "afterSeq");
    return this.d.events.readLog(request.afterSeq, request.limit, request.types);
  }

  /** Deletes events past the configured age and count. Run periodically. */
  prune(): Promise<number> {
    const { eventRetentionMs, eventRetentionCount } = this.d.config;
    return this.d.writer.write((ctx) =>
      this.d.events.prune(eventRetentionMs > 0 ? ctx.now - eventRetentionMs : null, eventRetentionCount > 0 ? eventRetentionCount : null),
    );
  }

  /**
   * A position to read after: not behind the retained log (EVENTS_PRUNED), and not beyond its
   * head (INVALID_INPUT: a cursor there would silently skip the next events published).
   */
  assertReadable(seq: number, what: Position): void {
    this.assertRetained(seq, what);
    const head = this.d.events.headSeq();
    if (seq > head) throw new CoordinationError("INVALID_INPUT", `${what} ${seq} is beyond the newest event (${head})`);
  }

  /** Throws EVENTS_PRUNED when events after `seq` are no longer all retained. */
  assertRetained(seq: number, what: Position): void {
    const prunedThrough = this.d.events.prunedThroughSeq();
    if (seq < prunedThrough) {
      throw new CoordinationError(
        "EVENTS_PRUNED",
        `${what} ${seq} is behind the retained event log: events up to ${prunedThrough} were pruned. ${RECOVERY[what](prunedThrough)}`,
        { prunedThroughSeq: prunedThrough },
      );
    }
  }

  /**
   * After `fromSeq` (0: from the oldest retained event). Without it, an existing subscription
   * keeps its cursor and a new one starts at the head, as does one whose cursor fell behind the
   * retained log: resubscribing is the way out of EVENTS_PRUNED that its message offers.
   * Runs inside subscribe's write, so the pruner cannot move the retained window meanwhile.
   */
  private startCursor(fromSeq: number | undefined, existing: Subscription | undefined): number {
    // 0 is "everything retained", whatever was pruned: the documented meaning, not an error.
    if (fromSeq === 0) return this.d.events.prunedThroughSeq();
    if (fromSeq !== undefined) {
      this.assertReadable(fromSeq, "fromSeq");
      return fromSeq;
    }
    if (existing && existing.cursor >= this.d.events.prunedThroughSeq()) return existing.cursor;
    return this.d.events.headSeq();
  }

  private requireSubscription(agentId: string): Subscription {
    const subscription = this.d.events.getSubscription(agentId);
    if (!subscription) {
      throw new CoordinationError("SUBSCRIPTION_NOT_FOUND", `agent "${agentId}" has no subscription; call events.subscribe first`, { agentId });
    }
    return subscription;
  }

  /**
   * manual: the cursor moves on ack, not here. But when nothing matched up to the head, it skips
   * to the head: nothing there is left to ack, and a cursor left behind would get EVENTS_PRUNED
   * once the unrelated events after it are pruned.
   */
  private async peekBatch(agentId: string, limit: number): Promise<CoordinationEvent[]> {
    const subscription = this.requireSubscription(agentId);
    this.assertRetained(subscription.cursor, "cursor");
    const batch = this.d.events.readMatching(agentId, subscription.types, subscription.cursor, limit);
    if (batch.length > 0 || this.d.events.headSeq() <= subscription.cursor) return batch;
    // Read again inside the write: an event committed since the read above must not be skipped.
    return this.readAndAdvance(agentId, limit, false);
  }

  private takeBatch(agentId: string, limit: number, signal?: AbortSignal): Promise<CoordinationEvent[]> {
    return this.readAndAdvance(agentId, limit, true, signal);
  }

  /**
   * Reads the next batch in a write (two concurrent polls never get the same event) and moves the
   * cursor past it when `consume`; when nothing matched up to the head, past the non-matching
   * events in either mode, so the next poll does not scan them again.
   */
  private readAndAdvance(agentId: string, limit: number, consume: boolean, signal?: AbortSignal): Promise<CoordinationEvent[]> {
    return this.d.writer.write((ctx) => {
      // The caller went away while this write waited for its batch: consume nothing for nobody.
      if (consume && signal?.aborted) return [];
      const subscription = this.requireSubscription(agentId);
      this.assertRetained(subscription.cursor, "cursor");
      const batch = this.d.events.readMatching(agentId, subscription.types, subscription.cursor, limit);
      const last = batch.at(-1);
      const advanceTo = last === undefined ? this.d.events.headSeq() : consume ? last.seq : subscription.cursor;
      if (advanceTo > subscription.cursor) this.d.events.advanceCursor(agentId, advanceTo, ctx.now);
      return batch;
    });
  }
}
