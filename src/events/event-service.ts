// The event stream's rules: publish once, subscribe with patterns, poll with cursors (auto or
// manual ack), every agent's mailbox, and retention with an explicit error for cursors left
// behind. An agent reads two things: untargeted events matching its patterns (after `cursor`)
// and its mailbox, the events targeted at it (after `mailboxCursor`). The mailbox needs no
// subscription: an agent the server never heard of reads every retained direct message to it.
import type { Config } from "../config.js";
import type { Writer } from "../db/writer.js";
import type { ConsumingCall } from "../delivery/delivery.js";
import { CoordinationError } from "../errors.js";
import { assertJsonDepth } from "../json-value.js";
import { KeyedLock } from "../keyed-lock.js";
import { linkSignals, type SignalFanout } from "../wakeup.js";
import type { EventBus } from "./event-bus.js";
import type { CoordinationEvent, PollRequest, PublishRequest, Subscription } from "./event-schemas.js";
import type { EventStore, InboxPosition } from "./event-store.js";
import type { LiveStreamStats } from "./event-stream.js";
import { mergePatterns } from "./type-patterns.js";

/** The positions a reader can hold, each with its own way out of EVENTS_PRUNED. */
type Position = "cursor" | "mailboxCursor" | "fromSeq" | "lastEventId" | "afterSeq";
const resubscribe = (prunedThrough: number) =>
  `Resubscribe with fromSeq 0 (or fromSeq >= ${prunedThrough}) to read what is retained, or without fromSeq to skip to the newest event.`;
const RECOVERY: Record<Position, (prunedThrough: number) => string> = {
  cursor: resubscribe,
  mailboxCursor: (p) => `Acknowledge up to seq ${p} (events.ack) or resubscribe to read the direct messages still retained.`,
  fromSeq: resubscribe,
  lastEventId: (p) => `Reconnect with lastEventId >= ${p}, or without lastEventId to follow new events only.`,
  afterSeq: (p) => `List with afterSeq 0 (the oldest retained event) or afterSeq >= ${p}.`,
};

export interface EventServiceDeps {
  config: Config;
  writer: Writer;
  events: EventStore;
  bus: EventBus;
  /** Aborts at shutdown: long-polls return at once. */
  shutdown: SignalFanout;
}

/** What an agent reads from: its patterns and both cursors, recorded or (never seen) implied. */
interface Inbox extends InboxPosition {
  types: string[];
  /** False for an agent with no row yet: its cursors are implied, nothing was consumed. */
  recorded: boolean;
}

export class EventService {
  private parkedPolls = 0;
  /**
   * One auto-ack poll per agent at a time in this process, held until its answer's fate is
   * known: a poll whose answer is lost rewinds the cursors, and must not rewind past events a
   * second poll already handed out.
   */
  private readonly consuming = new KeyedLock();
  /** The open live streams (events.onEvent), each with its counters; they add and remove themselves. */
  readonly liveStreams = new Set<LiveStreamStats>();

  constructor(private readonly d: EventServiceDeps) {}

  /** Long-polls currently waiting for an event (observability, and tests that must publish after one parked). */
  get waitingPolls(): number {
    return this.parkedPolls;
  }

  /** Stores the event once, whatever the number of subscribers; returns it with its seq. */
  publish(request: PublishRequest): Promise<CoordinationEvent> {
    assertJsonDepth("payload", request.payload, this.d.config.maxJsonDepth);
    return this.d.writer.write((ctx) => this.d.events.append(ctx, request));
  }

  /**
   * Adds patterns to the agent's subscription; where it then reads from: see startCursor. The
   * mailbox keeps its position (from the oldest retained direct message for a new agent).
   */
  subscribe(request: { agentId: string; types: string[]; fromSeq?: number | undefined }): Promise<Subscription> {
    return this.d.writer.write((ctx) => {
      const existing = this.d.events.getSubscription(request.agentId);
      const types = mergePatterns(existing?.types ?? [], request.types);
      // A mailbox-only agent (no patterns yet) subscribes like a new one: from the head.
      const cursor = this.startCursor(request.fromSeq, existing && existing.types.length > 0 ? existing : undefined);
      const mailboxCursor = Math.max(existing?.mailboxCursor ?? 0, this.d.events.prunedThroughSeq());
      return this.d.events.saveSubscription(request.agentId, types, { cursor, mailboxCursor }, ctx.now);
    });
  }

  /**
   * Drops the given patterns, or all of them when none are given. The agent's row stays (with no
   * patterns) so its mailbox position is kept; SUBSCRIPTION_NOT_FOUND when it had no patterns.
   */
  unsubscribe(request: { agentId: string; types?: string[] | undefined }): Promise<Subscription> {
    return this.d.writer.write((ctx) => {
      const existing = this.requireSubscription(request.agentId);
      const remaining = request.types ? existing.types.filter((t) => !request.types!.includes(t)) : [];
      return this.d.events.saveSubscription(request.agentId, remaining, existing, ctx.now);
    });
  }

  getSubscription(agentId: string): Subscription {
    const subscription = this.d.events.getSubscription(agentId);
    if (!subscription) throw notSubscribed(agentId);
    return subscription;
  }

  /**
   * The agent's next events in seq order: its subscribed types and its mailbox. auto: the cursors
   * move past them in the same transaction (two concurrent polls never get the same event), and
   * move back if the answer does not reach the agent. manual: they stay until ack (only skipping
   * events that did not match), so a consumer that crashes mid-batch gets the batch again
   * (at-least-once). An agent never heard of gets its mailbox, or [].
   */
  async poll(request: PollRequest, call: ConsumingCall = {}): Promise<CoordinationEvent[]> {
    const deadline = Date.now() + Math.min(request.waitMs ?? 0, this.d.config.maxWaitMs);
    const shutdown = this.d.shutdown.child();
    const stop = linkSignals([call.signal, shutdown.signal]);
    try {
      for (;;) {
        const seen = this.d.bus.arrived.current();
        const batch = request.ack === "auto" ? await this.take(request, call) : await this.peek(request);
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
      shutdown.dispose();
    }
  }

  /** Acknowledges everything up to and including `seq`, types and mailbox alike. Never moves back. */
  ack(request: { agentId: string; seq: number }): Promise<Subscription> {
    return this.d.writer.write((ctx) => {
      const head = this.d.events.headSeq();
      if (request.seq > head) {
        throw new CoordinationError("INVALID_INPUT", `seq ${request.seq} is beyond the newest event (${head})`);
      }
      return this.d.events.advanceInbox(request.agentId, request.seq, ctx.now);
    });
  }

  /** The log itself (all events, direct messages included), for history and audit. */
  list(request: { afterSeq: number; types?: string[] | undefined; limit: number }): CoordinationEvent[] {
    if (request.afterSeq > 0) this.assertRetained(request.afterSeq, "afterSeq");
    return this.d.events.readLog(request.afterSeq, request.limit, request.types, this.d.config.maxResponseBytes);
  }

  /** Deletes events past the configured age and count. Run periodically. */
  prune(): Promise<number> {
    const { eventRetentionMs, eventRetentionCount } = this.d.config;
    return this.d.writer.write((ctx) =>
      this.d.events.prune(eventRetentionMs > 0 ? ctx.now - eventRetentionMs : null, eventRetentionCount > 0 ? eventRetentionCount : null),
    );
  }

  /** Where a live stream for `agentId` starts reading its mailbox when it names no lastEventId. */
  mailboxStart(agentId: string): number {
    return Math.max(this.d.events.getSubscription(agentId)?.mailboxCursor ?? 0, this.d.events.prunedThroughSeq());
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
    if (!subscription || subscription.types.length === 0) throw notSubscribed(agentId);
    return subscription;
  }

  /** The agent's patterns and cursors; an agent with no row reads every retained direct message. */
  private inbox(agentId: string): Inbox {
    const row = this.d.events.getSubscription(agentId);
    if (!row) return { types: [], cursor: this.d.events.headSeq(), mailboxCursor: this.d.events.prunedThroughSeq(), recorded: false };
    if (row.types.length > 0) this.assertRetained(row.cursor, "cursor");
    this.assertRetained(row.mailboxCursor, "mailboxCursor");
    return { types: row.types, cursor: row.cursor, mailboxCursor: row.mailboxCursor, recorded: true };
  }

  private read(agentId: string, inbox: Inbox, limit: number): CoordinationEvent[] {
    return this.d.events.readInbox(agentId, inbox.types, inbox, limit, this.d.config.maxResponseBytes);
  }

  /**
   * auto: reads and consumes the next batch in one write, then registers how to give it back
   * should the answer not reach the agent. Holds the agent's lock until that is known.
   */
  private async take(request: PollRequest, call: ConsumingCall): Promise<CoordinationEvent[]> {
    const unlock = await this.consuming.acquire(request.agentId);
    let handedOff = false;
    try {
      const taken = await this.d.writer.write((ctx) => {
        // The caller went away while this write waited for its batch: consume nothing for nobody.
        if (call.signal?.aborted) return null;
        const inbox = this.inbox(request.agentId);
        const batch = this.read(request.agentId, inbox, request.limit);
        const last = batch.at(-1);
        if (last === undefined) {
          // Nothing for this agent up to the head: skip what did not match, so the next poll does not scan it again.
          const head = this.d.events.headSeq();
          if (inbox.recorded && (inbox.cursor < head || inbox.mailboxCursor < head)) this.d.events.advanceInbox(request.agentId, head, ctx.now);
          return null;
        }
        const after = this.d.events.advanceInbox(request.agentId, last.seq, ctx.now);
        return { batch, before: inbox as InboxPosition, after: after as InboxPosition };
      });
      if (taken === null) return [];
      const { delivery } = call;
      if (delivery) {
        delivery.onUndelivered(() => this.d.writer.write((ctx) => this.d.events.rewindInbox(request.agentId, taken.before, taken.after, ctx.now)));
        void delivery.whenSettled().then(unlock);
        handedOff = true;
      }
      return taken.batch;
    } finally {
      if (!handedOff) unlock();
    }
  }

  /**
   * manual: the cursors move on ack, not here. But when nothing matched up to the head, they skip
   * to the head: nothing there is left to ack, and a cursor left behind would get EVENTS_PRUNED
   * once the unrelated events after it are pruned.
   */
  private async peek(request: PollRequest): Promise<CoordinationEvent[]> {
    const inbox = this.inbox(request.agentId);
    const batch = this.read(request.agentId, inbox, request.limit);
    if (batch.length > 0 || !inbox.recorded) return batch;
    const head = this.d.events.headSeq();
    if (inbox.cursor >= head && inbox.mailboxCursor >= head) return batch;
    // Read again inside the write: an event committed since the read above must not be skipped.
    return this.d.writer.write((ctx) => {
      const current = this.inbox(request.agentId);
      const again = this.read(request.agentId, current, request.limit);
      if (again.length === 0) this.d.events.advanceInbox(request.agentId, this.d.events.headSeq(), ctx.now);
      return again;
    });
  }
}

const notSubscribed = (agentId: string) =>
  new CoordinationError("SUBSCRIPTION_NOT_FOUND", `agent "${agentId}" has no subscription; call events.subscribe first`, { agentId });
