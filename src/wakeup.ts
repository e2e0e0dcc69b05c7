/**
 * How long a long-poll waits, in ms: what it asked for (`asked`; left out, `unnamed`: 0, answer at
 * once, or maxWaitMs for the waits that wait by default: tasks.wait, a key watch), never past the
 * server's maxWaitMs.
 */
export const longPollMs = (asked: number | undefined, maxWaitMs: number, unnamed = 0): number => Math.min(asked ?? unnamed, maxWaitMs);

/**
 * How long a parked long-poll waits before it looks again by itself, in case a wake-up was missed
 * (waiters are woken by committed events: claim-waiters.ts, poll-waiters.ts). Long, because it is
 * only a safety net: 1,000 parked claims looking every 5 s cost 3% of a core while idle. Scaled
 * with crossProcessPollMs so it never fires before the log is read. A long-poll whose wait ends
 * without a wake-up returns empty without a last look; its caller asks again.
 */
export const safetyRelookMs = (crossProcessPollMs: number): number => Math.max(30_000, 5 * crossProcessPollMs);

/**
 * A signal that aborts when any of the given ones does, plus `dispose` to detach it again.
 * Not AbortSignal.any: on Node 20 it keeps a reference from the long-lived shutdown signal for
 * every call (nodejs/node#55351), so each long-poll would leak a little memory for good.
 */
export function linkSignals(signals: Array<AbortSignal | undefined>): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const sources = signals.filter((s): s is AbortSignal => s !== undefined);
  const abort = () => controller.abort();
  if (sources.some((s) => s.aborted)) controller.abort();
  else for (const source of sources) source.addEventListener("abort", abort, { once: true });
  return { signal: controller.signal, dispose: () => sources.forEach((source) => source.removeEventListener("abort", abort)) };
}

/**
 * Hands many waiters a signal that aborts with one source signal, through a single listener on
 * it. Every parked long-poll needs to end at shutdown; a listener each on the shutdown signal
 * is what made Node print MaxListenersExceededWarning past ten parked polls.
 */
export class SignalFanout {
  private readonly children = new Set<AbortController>();

  constructor(private readonly source: AbortSignal) {
    source.addEventListener(
      "abort",
      () => {
        for (const child of this.children) child.abort();
        this.children.clear();
      },
      { once: true },
    );
  }

  /** A signal that aborts with the source; dispose() lets it go. */
  child(): { signal: AbortSignal; dispose: () => void } {
    const controller = new AbortController();
    if (this.source.aborted) controller.abort();
    else this.children.add(controller);
    return { signal: controller.signal, dispose: () => void this.children.delete(controller) };
  }

  /** Whether the source aborted (shutdown began). */
  get aborted(): boolean {
    return this.source.aborted;
  }

  /** Waiters attached now (leak checks in tests). */
  get size(): number {
    return this.children.size;
  }
}

/**
 * A parked long-poll's wake-up, registered before its read so that an event committed during the
 * read is not missed: notified (by the waiters' registry, from the event bus) at most once per
 * look; `wait` resolves when notified, after `maxMs`, or when `signal` aborts. Poll and task-wait
 * tickets (poll-waiters.ts, keyed-waiters.ts) add what they wait for and how they leave.
 */
export class WakeTicket {
  private woken = false;
  private wake: (() => void) | undefined;

  /** Whether an event it waits for woke it. */
  get isWoken(): boolean {
    return this.woken;
  }

  notify(): void {
    this.woken = true;
    this.wake?.();
  }

  wait(maxMs: number, signal: AbortSignal): Promise<void> {
    if (this.woken || signal.aborted || maxMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      this.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
