// Live fan-out of the event log. Events this process commits come from the Writer as they were
// written, in seq order, with no read of the log. Events other server processes commit on the
// same file are read from the log: every crossProcessPollMs, and whenever a local batch does not
// follow the last seq seen (another process wrote in between). Either way listeners get every
// committed event, once, in seq order, and never one that is not committed.
import type { Config } from "../config.js";
import type { AppendedEvent, Writer } from "../db/writer.js";
import type { Logger } from "../logger.js";
import { Wakeup } from "../wakeup.js";
import type { CoordinationEvent } from "./event-schemas.js";
import type { EventStore } from "./event-store.js";

export type EventListener = (events: readonly CoordinationEvent[]) => void;

const PAGE = 1000;

export class EventBus {
  /** Notified whenever new events were seen: long-polling polls wait on it. */
  readonly arrived = new Wakeup();
  private seenSeq = 0;
  private readonly listeners = new Set<EventListener>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: EventStore,
    writer: Writer,
    private readonly config: Pick<Config, "crossProcessPollMs" | "maxResponseBytes">,
    private readonly log: Logger,
  ) {
    this.seenSeq = events.headSeq();
    writer.onCommit((appended) => this.committed(appended as readonly CoordinationEvent[]));
  }

  start(): void {
    this.timer = setInterval(() => this.tail(), this.config.crossProcessPollMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  /** The newest seq delivered to listeners. */
  get lastSeq(): number {
    return this.seenSeq;
  }

  /** Live streams currently attached (observability; tests see a dropped subscriber leave). */
  get listenerCount(): number {
    return this.listeners.size;
  }

  listen(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads and dispatches everything committed since the last call (events of other processes). */
  tail(): void {
    let found = false;
    for (;;) {
      // Pages bounded in bytes too: a burst of large events is dispatched a slice at a time.
      const { events: batch, more } = this.events.readLogPage(this.seenSeq, PAGE, this.config.maxResponseBytes);
      if (batch.length === 0) break;
      found = true;
      this.dispatch(batch);
      if (!more) break;
    }
    if (found) this.arrived.notify();
  }

  /** A local commit's events, as written. Anything another process committed before them is read first. */
  private committed(appended: readonly AppendedEvent[]): void {
    const first = appended[0];
    if (first === undefined) return;
    if (first.seq !== this.seenSeq + 1) this.tail();
    const fresh = (appended as readonly CoordinationEvent[]).filter((event) => event.seq > this.seenSeq);
    if (fresh.length === 0) return;
    this.dispatch(fresh);
    this.arrived.notify();
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
