// Live fan-out of the event log. Events this process commits arrive with the writer thread's
// answers, as they were written, in seq order: nothing reads the log for them. Events other
// server processes commit on the same file are read from the log by the reader thread: every
// crossProcessPollMs, and at once when a local batch does not follow the last seq seen (another
// process wrote in between). Either way listeners get every committed event once, in seq order,
// and never one that is not committed. Dispatch is serialized: a read in progress holds back the
// local batches behind it.
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import type { CoordinationEvent } from "./event-schemas.js";

export type EventListener = (events: readonly CoordinationEvent[]) => void;

/** Reads the log after a seq, a page at a time (the reader thread's events.tail). */
export type LogReader = (afterSeq: number, limit: number) => Promise<{ events: CoordinationEvent[]; more: boolean }>;

const PAGE = 1000;

export class EventBus {
  private seenSeq = 0;
  private readonly listeners = new Set<EventListener>();
  private timer: NodeJS.Timeout | undefined;
  private work: Promise<void> = Promise.resolve();
  private tailFailing = false;
  /** Set by stop(): a read that fails from then on is the shutdown's, not the log's. */
  private stopped = false;
  /** Steps serialized and not finished: while any is, a local batch waits its turn. */
  private queued = 0;

  constructor(
    private readonly readLog: LogReader,
    private readonly config: Pick<Config, "crossProcessPollMs">,
    private readonly log: Logger,
  ) {}

  /** Starts after the log's current head: listeners get what is committed from now on. */
  start(head: number): void {
    this.seenSeq = head;
    this.timer = setInterval(() => void this.serialize(() => this.tail()), this.config.crossProcessPollMs);
    this.timer.unref();
  }

  /**
   * Stops reading and dispatching. Resolves once a read under way ended: the database may close
   * then (closed under it, the read failed and was logged as an error on every clean shutdown
   * that met a poll).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.listeners.clear();
    await this.work;
  }

  /** The newest seq delivered to listeners. */
  get lastSeq(): number {
    return this.seenSeq;
  }

  /** Live streams and waiters attached (observability; tests see a dropped subscriber leave). */
  get listenerCount(): number {
    return this.listeners.size;
  }

  listen(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * A local batch's events, as written. Anything another process committed before them is read
   * first. Resolves once they were dispatched: the writer's callers are answered only then, so
   * a caller never sees its write before the bus has (a subscription opened after an answer does
   * not receive the write as live). Dispatches at once when nothing is in the way.
   */
  committed(events: readonly CoordinationEvent[]): Promise<void> {
    const first = events[0];
    if (first === undefined) return Promise.resolve();
    if (this.queued === 0 && first.seq === this.seenSeq + 1) {
      this.dispatch(events);
      return Promise.resolve();
    }
    return this.serialize(async () => {
      if (first.seq > this.seenSeq + 1) await this.tail();
      const fresh = events.filter((event) => event.seq > this.seenSeq);
      if (fresh.length > 0) this.dispatch(fresh);
    });
  }

  /** Resolves once everything committed so far has been dispatched (tests, shutdown). */
  settled(): Promise<void> {
    return this.work;
  }

  private serialize(step: () => Promise<void>): Promise<void> {
    this.queued++;
    this.work = this.work
      .then(step)
      .catch((error: unknown) => this.log.error({ err: error }, "event bus failed"))
      .finally(() => this.queued--);
    return this.work;
  }

  /** Reads and dispatches everything committed since the last event seen. */
  private async tail(): Promise<void> {
    // Polls queued behind a read under way when the bus stopped: nothing is listening any more.
    if (this.stopped) return;
    try {
      for (;;) {
        const { events, more } = await this.readLog(this.seenSeq, PAGE);
        // Stopped meanwhile: no next page. stop() waits for this read: another process writing
        // as fast as pages are read would otherwise hold the shutdown, and read a closing database.
        if (this.stopped) return;
        if (events.length > 0) this.dispatch(events);
        if (!more || events.length === 0) break;
      }
      if (this.tailFailing) this.log.info("reading the event log works again");
      this.tailFailing = false;
    } catch (error) {
      if (this.stopped) return;
      // Logged once per episode, not every crossProcessPollMs.
      if (!this.tailFailing) this.log.error({ err: error }, "reading the event log failed; retrying");
      this.tailFailing = true;
    }
  }

  private dispatch(batch: readonly CoordinationEvent[]): void {
    this.seenSeq = batch[batch.length - 1]!.seq;
    for (const listener of this.listeners) {
      try {
        listener(batch);
      } catch (error) {
        this.log.error({ err: error }, "event listener failed");
      }
    }
  }
}
