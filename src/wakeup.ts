// Wakes long-polling claims and polls when something they wait for was committed.
// A generation counter closes the race between "looked, found nothing" and "started waiting":
// the waiter remembers the generation it looked at, and returns at once if it moved since.

export class Wakeup {
  private generation = 0;
  private readonly waiters = new Set<() => void>();

  /** The generation to pass to wait(), read at the moment you look for work. */
  current(): number {
    return this.generation;
  }

  notify(): void {
    this.generation++;
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** Resolves on the next notify after `seen`, after `ms`, or when `signal` aborts. */
  wait(seen: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.generation !== seen || ms <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

/** An AbortSignal that fires when any of the given ones does. */
export function anySignal(signals: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
}
