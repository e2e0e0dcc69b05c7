// Live fan-out of the event log. After every local commit (and every crossProcessPollMs, for
// events written by other server processes on the same file) the bus reads the log past the
// last seq it saw and hands the new events, in seq order, to every listener. The log is the
// only source: listeners never see an event that is not committed, nor one out of order.
import type { Config } from "../config.js";
import type { Writer } from "../db/writer.js";
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
    writer.onCommit(() => this.tail());
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

  /** Reads and dispatches everything committed since the last call. */
  tail(): void {
    let found = false;
    for (;;) {
      // Pages bounded in bytes too: a burst of large events is dispatched a slice at a time.
      const { events: batch, more } = this.events.readLogPage(this.seenSeq, PAGE, this.config.maxResponseBytes);
      if (batch.length === 0) break;
      found = true;
      this.seenSeq = batch[batch.length - 1]!.seq;
      for (const listener of this.listeners) {
        try {
          listener(batch);
        } catch (error) {
          this.log.error({ err: error }, "event listener failed");
        }
      }
      if (!more) break;
    }
    if (found) this.arrived.notify();
  }
}
