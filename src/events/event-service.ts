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
import { mergePatterns } from "./type-patterns.js";

export interface EventServiceDeps {
  config: Config;
  writer: Writer;
  events: EventStore;
  bus: EventBus;
  shutdownSignal: AbortSignal;
}

export class EventService {
  private parkedPolls = 0;

  constructor(private readonly d: EventServiceDeps) {}

  /** Long-polls currently waiting for an event (observability, and tests that must publish after one parked). */
  get waitingPolls(): number {
    return this.parkedPolls;
  }

  /** Stores the event once, whatever the number of subscribers; returns it with its seq. */
  publish(request: PublishRequest): Promise<CoordinationEvent> {
    return this.d.writer.write((ctx) => this.d.events.append(request, ctx.now));
  }

  /** Adds patterns to the agent's subscription. A new one starts at the head of the log, or after `fromSeq`. */
  subscribe(request: { agentId: string; types: string[]; fromSeq?: number | undefined }): Promise<Subscription> {
    return this.d.writer.write((ctx) => {
      const existing = this.d.events.getSubscription(request.agentId);
      if (request.fromSeq !== undefined) this.assertReadable(request.fromSeq, "fromSeq");
      const cursor = request.fromSeq ?? existing?.cursor ?? this.d.events.headSeq();
      const types = mergePatterns(existing?.types ?? [], request.types);
      return this.d.events.saveSubscription(request.agentId, types, cursor, ctx.now);
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
   * until ack, so a consumer that crashes mid-batch gets the batch again (at-least-once).
   */
  async poll(request: PollRequest, signal?: AbortSignal): Promise<CoordinationEvent[]> {
    const deadline = Date.now() + Math.min(request.waitMs ?? 0, this.d.config.maxWaitMs);
    const stop = linkSignals([signal, this.d.shutdownSignal]);
    try {
      for (;;) {
        const seen = this.d.bus.arrived.current();
        const batch = request.ack === "auto" ? await this.takeBatch(request.agentId, request.limit) : this.peekBatch(request.agentId, request.limit);
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
  assertReadable(seq: number, what: string): void {
    this.assertRetained(seq, what);
    const head = this.d.events.headSeq();
    if (seq > head) throw new CoordinationError("INVALID_INPUT", `${what} ${seq} is beyond the newest event (${head})`);
  }

  /** Throws EVENTS_PRUNED when events after `seq` are no longer all retained. */
  assertRetained(seq: number, what: string): void {
    const prunedThrough = this.d.events.prunedThroughSeq();
    if (seq < prunedThrough) {
      throw new CoordinationError(
        "EVENTS_PRUNED",
        `${what} ${seq} is behind the retained event log: events up to ${prunedThrough} were pruned. ` +
          `Resubscribe with fromSeq >= ${prunedThrough} (or without fromSeq to start at the head).`,
        { prunedThroughSeq: prunedThrough },
      );
    }
  }

  private requireSubscription(agentId: string): Subscription {
    const subscription = this.d.events.getSubscription(agentId);
    if (!subscription) {
      throw new CoordinationError("SUBSCRIPTION_NOT_FOUND", `agent "${agentId}" has no subscription; call events.subscribe first`, { agentId });
    }
    return subscription;
  }

  private peekBatch(agentId: string, limit: number): CoordinationEvent[] {
    const subscription = this.requireSubscription(agentId);
    this.assertRetained(subscription.cursor, "cursor");
    return this.d.events.readMatching(agentId, subscription.types, subscription.cursor, limit);
  }

  private takeBatch(agentId: string, limit: number): Promise<CoordinationEvent[]> {
    return this.d.writer.write((ctx) => {
      const subscription = this.requireSubscription(agentId);
      this.assertRetained(subscription.cursor, "cursor");
      const batch = this.d.events.readMatching(agentId, subscription.types, subscription.cursor, limit);
      // Nothing matched up to the head: skip the cursor past the non-matching events, so the
      // next poll does not scan them again.
      const advanceTo = batch.length > 0 ? batch[batch.length - 1]!.seq : this.d.events.headSeq();
      if (advanceTo > subscription.cursor) this.d.events.advanceCursor(agentId, advanceTo, ctx.now);
      return batch;
    });
  }
}
