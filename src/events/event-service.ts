// The event stream on the event loop: writes go to the database writer thread, reads to the
// reader thread (event-commands.ts, event-queries.ts); what stays here needs no database:
// long-polling (woken by the bus, poll-waiters.ts), one auto-ack poll per agent at a time, and
// delivery confirmation (an auto-ack poll's batch is held until its answer arrives; one lost
// with its answer, or with its server, is the agent's next batch: poll_takes).
import { invalidField, shuttingDown } from "../errors.js";
import { RESERVED_EVENT_TYPE } from "../auth/access.js";
import { randomUUID } from "node:crypto";
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import type { Logger } from "../logger.js";
import { clientGone, refuseIfRevoked, type ConsumingCall } from "../delivery/delivery.js";
import { assertJsonDepth, isJsonObject } from "../json-checks.js";
import { whileMore } from "../db/in-batches.js";
import { KeyedLock } from "../keyed-lock.js";
import type { PerKeyLimit } from "../per-key-limit.js";
import { linkSignals, longPollMs, safetyRelookMs, type SignalFanout } from "../wakeup.js";
import type { Position, Reads } from "./event-positions.js";
import type { CoordinationEvent, PollRequest, PublishRequest, Subscription } from "./event-schemas.js";
import type { LiveStreamStats } from "./event-stream.js";
import type { PollWaiters } from "./poll-waiters.js";

/** The most event seqs one pruning write deletes: ~2 ms of the writer with small events. */
const PRUNE_BATCH_EVENTS = 2000;

export interface EventServiceDeps {
  config: Config;
  db: Database;
  log: Logger;
  waiters: PollWaiters;
  shutdown: SignalFanout;
  /** Long-polls waiting per agent, bounded (maxParkedPerAgent). */
  parked: PerKeyLimit;
}

export interface ListEventsRequest {
  afterSeq: number;
  types?: string[] | undefined;
  limit: number;
  /** Whose direct messages the answer may hold: absent, everyone's; null, nobody's. */
  recipient?: string | null;
}

export class EventService {
  /**
   * One auto-ack poll per agent at a time in this process, held until its answer's fate is
   * known: a poll whose answer is lost rewinds the cursors, and must not rewind past events a
   * second poll already handed out.
   */
  private readonly consuming = new KeyedLock();
  /** The open live streams (events.onEvent), each with its counters; they add and remove themselves. */
  readonly liveStreams = new Set<LiveStreamStats>();

  /** This process among the servers on the file: the owner of the holds it takes (poll_takes). */
  private readonly owner = randomUUID();
  /**
   * This server's holds not yet settled, by seq: when each was taken or last renewed (Unix ms),
   * and whether its answer arrived (then only its confirm write is left, retried until it commits).
   */
  private readonly holds = new Map<number, { renewedAt: number; delivered: boolean }>();

  constructor(private readonly d: EventServiceDeps) {}

  /**
   * How long a held batch lasts unrenewed: the server's lease length, as a claim's would, and at
   * least four runs of the job that renews it (leaseSweepMs), so a live server always renews in time.
   */
  private get holdMs(): number {
    return Math.max(this.d.config.leaseMs, 4 * this.d.config.leaseSweepMs);
  }

  /** Long-polls currently waiting for an event (observability, and tests that must publish after one parked). */
  get waitingPolls(): number {
    return this.d.waiters.size;
  }

  /** Stores the event once, whatever the number of subscribers; returns it with its seq. */
  publish(request: PublishRequest): Promise<CoordinationEvent> {
    assertJsonDepth("payload", request.payload, this.d.config.maxJsonDepth);
    // Readers of the server's own events (and its own listeners) take their payloads for objects.
    if (RESERVED_EVENT_TYPE.test(request.type) && !isJsonObject(request.payload)) {
      throw invalidField("payload", `an event of type ${JSON.stringify(request.type)} (task.*, agent.*, queue.*, schedule.*: the server's own kinds) carries a JSON object, as the server's own do`);
    }
    return this.d.db.write("events.publish", request);
  }

  /** Adds patterns to the agent's subscription; its mailbox keeps its position. */
  subscribe(request: { agentId: string; types: string[]; fromSeq?: number | undefined }): Promise<Subscription> {
    return this.d.db.write("events.subscribe", request);
  }

  /** Drops the given patterns, or all of them; the agent's mailbox position is kept. */
  unsubscribe(request: { agentId: string; types?: string[] | undefined }): Promise<Subscription> {
    return this.d.db.write("events.unsubscribe", request);
  }

  getSubscription(agentId: string): Promise<Subscription> {
    return this.d.db.read("events.subscription", agentId);
  }

  /**
   * The agent's next events in seq order: its subscribed types and its mailbox. auto: the cursors
   * move past them in the same transaction (two concurrent polls never get the same event), and
   * the batch is held until its answer arrives: lost (the answer did not arrive, or the server
   * died first), it is the agent's next auto-ack batch. manual: they stay until ack (only skipping
   * events that did not match), so a consumer that crashes mid-batch gets the batch again
   * (at-least-once). An agent never heard of gets its mailbox, or [].
   */
  async poll(request: PollRequest, call: ConsumingCall = {}): Promise<CoordinationEvent[]> {
    const waitMs = longPollMs(request.waitMs, this.d.config.maxWaitMs);
    if (waitMs <= 0) return (request.ack === "auto" ? await this.take(request, call) : await this.peek(request)).batch;
    const unpark = this.d.parked.acquire(request.agentId);
    const deadline = Date.now() + waitMs;
    const shutdown = this.d.shutdown.child();
    const stop = linkSignals([...(call.signals?.() ?? []), shutdown.signal]);
    let types: readonly string[] | undefined;
    try {
      for (;;) {
        // Waiting starts before the read: an event committed meanwhile wakes it at once.
        const ticket = this.d.waiters.ticket(request.agentId, types);
        try {
          const taken = request.ack === "auto" ? await this.take(request, call) : await this.peek(request);
          types = taken.types;
          ticket.types = types;
          const now = Date.now();
          // Not an empty answer: that reads as "no events", and the agent would poll this server again.
          if (taken.batch.length === 0 && shutdown.signal.aborted) throw shuttingDown();
          if (taken.batch.length === 0) refuseIfRevoked(call);
          if (taken.batch.length > 0 || now >= deadline || stop.signal.aborted) return taken.batch;
          call.waiting?.();
          await ticket.wait(Math.min(deadline - now, safetyRelookMs(this.d.config.crossProcessPollMs)), stop.signal);
          // The wait ran out with nothing committed for it: no last read, the agent polls again.
          if (!ticket.isWoken && Date.now() >= deadline) return [];
        } finally {
          ticket.cancel();
        }
      }
    } finally {
      stop.dispose();
      shutdown.dispose();
      unpark();
    }
  }

  /** Acknowledges everything up to and including `seq`, types and mailbox alike. Never moves back. */
  ack(request: { agentId: string; seq: number }): Promise<Subscription> {
    return this.d.db.write("events.ack", request);
  }

  /**
   * The log itself, for history and audit: every event, or with `recipient` only the untargeted
   * ones and the direct messages to that agent (null: none).
   */
  list(request: ListEventsRequest): Promise<CoordinationEvent[]> {
    return this.d.db.read("events.list", request);
  }

  /**
   * Deletes events past the configured age and count; a run that deleted any says so at info,
   * with the limits (deleting data is never silent). Run periodically. How many went.
   */
  async prune(): Promise<number> {
    // One bounded write after another, the writer given back between them. By seqs, which may
    // have gaps: a write that deleted fewer rows than its bound may not be the last.
    const removed = await whileMore(async () => {
      const { deleted, more } = await this.d.db.write("events.prune", PRUNE_BATCH_EVENTS);
      return { done: deleted, more };
    });
    if (removed > 0) {
      const { eventRetentionMs, eventRetentionCount } = this.d.config;
      this.d.log.info({ removed, eventRetentionMs, eventRetentionCount }, `event log pruned: ${removed} events past their age or count limits`);
    }
    return removed;
  }

  /** A live stream's start: the subscription it follows (null: none), where its mailbox starts. */
  async streamSetup(agentId: string | undefined): Promise<{ subscription: Subscription | null; mailboxStart: number }> {
    if (agentId === undefined) return { subscription: null, mailboxStart: 0 };
    const [subscription, mailboxStart] = await Promise.all([
      this.getSubscription(agentId).catch(() => null),
      this.d.db.read("events.mailboxStart", agentId),
    ]);
    return { subscription, mailboxStart };
  }

  /**
   * Where a resuming stream starts: EVENTS_PRUNED behind the retained log only if something it
   * reads (`reads`) was pruned since; INVALID_INPUT past its head.
   */
  streamStart(lastEventId: string, position: Position, reads: Reads): Promise<number> {
    return this.d.db.read("events.streamStart", { lastEventId, position, reads });
  }

  /** One page of a stream's backfill; EVENTS_PRUNED if the pruner moved past `afterSeq` meanwhile. */
  backfill(args: { recipient: string | null; patterns: string[]; afterSeq: number; limit: number; position: Position }): Promise<CoordinationEvent[]> {
    return this.d.db.read("events.backfill", args);
  }

  /**
   * auto: reads and consumes the next batch in one write, held until its answer is known to have
   * arrived (confirmed) or not (lost: the agent's next take gets it again). Holds the agent's
   * lock until the outcome is known, and a lost batch's write is done.
   */
  private async take(request: PollRequest, call: ConsumingCall): Promise<{ batch: CoordinationEvent[]; types: string[] }> {
    const unlock = await this.consuming.acquire(request.agentId);
    let handedOff = false;
    try {
      // The caller may have gone while waiting for the lock: consume nothing for nobody.
      if (clientGone(call)) {
        refuseIfRevoked(call);
        return { batch: [], types: [] };
      }
      const { delivery } = call;
      // With a transport that confirms delivery, the batch is held until it does (poll_takes):
      // lost (the answer did not arrive, or this server died first), it is the agent's next batch.
      const taken = await this.d.db.write("events.take", { agentId: request.agentId, limit: request.limit, ...(delivery ? { hold: { owner: this.owner, holdMs: this.holdMs } } : {}) });
      const { held } = taken;
      if (delivery && held !== undefined) {
        const hold = { renewedAt: Date.now(), delivered: false };
        this.holds.set(held, hold);
        // Not arrived: lost now, so this agent's next take (which waits for it) gets the batch
        // again. A write that fails leaves the hold to run out unrenewed: lost all the same.
        delivery.onUndelivered(() => {
          this.holds.delete(held);
          return this.d.db.write("events.loseTake", held);
        });
        // Arrived: the confirm may commit after the agent's next take (the hold is renewed until
        // it does, so no take counts it lost); one that fails is retried by the job.
        delivery.onDelivered(async () => {
          hold.delivered = true;
          await this.d.db.write("events.confirmTakes", [held]);
          this.holds.delete(held);
        });
        void delivery.whenDecided().then(() => (delivery.state === "delivered" ? unlock() : delivery.whenSettled().then(unlock)));
        handedOff = true;
      }
      return taken;
    } finally {
      if (!handedOff) unlock();
    }
  }

  /**
   * Renews the holds of batches whose answers this server is still sending, before half their
   * time is gone: no take, here or on another server, counts them lost while they are on their
   * way (a tRPC batch that holds a long-poll, a slow reader). A server that died renews nothing:
   * its batches are lost holdMs after their last renewal. Run every leaseSweepMs. Also retries
   * the confirms of answers that arrived whose write failed.
   */
  async renewHolds(now = Date.now()): Promise<void> {
    // Due when less than half its time would be left at the next run.
    const due = [...this.holds].filter(([, hold]) => hold.renewedAt + this.holdMs - now <= this.holdMs / 2 + this.d.config.leaseSweepMs);
    if (due.length === 0) return;
    for (const [, hold] of due) hold.renewedAt = now;
    await this.d.db.write("events.renewTakes", { owner: this.owner, held: due.map(([held]) => held), holdMs: this.holdMs });
    // Confirms that failed (a lock held too long, a full disk): once more, together.
    const unconfirmed = due.filter(([, hold]) => hold.delivered).map(([held]) => held);
    if (unconfirmed.length === 0) return;
    await this.d.db.write("events.confirmTakes", unconfirmed);
    for (const held of unconfirmed) this.holds.delete(held);
  }

  /**
   * manual: the cursors move on ack, not here. When nothing matched up to the head, the writer
   * moves them to the head (rereading first: an event committed since must not be skipped).
   */
  private async peek(request: PollRequest): Promise<{ batch: CoordinationEvent[]; types: string[] }> {
    const peeked = await this.d.db.read("events.peek", { agentId: request.agentId, limit: request.limit });
    if (!peeked.skip) return peeked;
    return { batch: await this.d.db.write("events.skipToHead", { agentId: request.agentId, limit: request.limit }), types: peeked.types };
  }
}
