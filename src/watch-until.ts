// The long-poll of a read that waits for something named to change (a task to settle: tasks.wait,
// tasks.waitMany; a key of shared state: kv.get with afterVersion): it looks, and until what it
// sees is enough, parks on a ticket of the names' waiters (keyed-waiters.ts), woken by the events
// that name them from any process on the file. Parked waits are bounded per credential, and end at
// the server's shutdown (503) or the client's departure (the last look is the answer).
import type { Config } from "./config.js";
import { refuseIfRevoked, type ConsumingCall } from "./delivery/delivery.js";
import { shuttingDown } from "./errors.js";
import type { KeyedWaiters } from "./keyed-waiters.js";
import type { PerKeyLimit } from "./per-key-limit.js";
import { linkSignals, safetyRelookMs, type SignalFanout } from "./wakeup.js";

export interface WatchDeps {
  config: Config;
  waiters: KeyedWaiters;
  shutdown: SignalFanout;
  /** Waits parked per credential, bounded (maxParkedPerAgent). */
  parked: PerKeyLimit;
}

export interface Watch<T> {
  /** The names waited on: the waiters' keys (distinct). */
  keys: readonly string[];
  /** How long to wait, in ms (> 0). */
  waitMs: number;
  /** One look, a read. */
  look: () => Promise<T>;
  /** Whether a look is the answer. */
  enough: (looked: T) => boolean;
  /** When what a look saw changes with no event (an expiry: Unix ms); null, or left out: only by an event. */
  changesAt?: (looked: T) => number | null;
  /** The credential the wait is parked as (undefined: unbounded: an open server, in-process). */
  parkedAs: string | undefined;
  call: ConsumingCall;
}

/** Looks until what it sees is `enough`, `waitMs` runs out (the last look is the answer), or the client leaves. */
export async function watchUntil<T>(d: WatchDeps, w: Watch<T>): Promise<T> {
  const deadline = Date.now() + w.waitMs;
  const shutdown = d.shutdown.child();
  const stop = linkSignals([...(w.call.signals?.() ?? []), shutdown.signal]);
  let unpark: (() => void) | undefined;
  try {
    for (;;) {
      // Waiting starts before the read: a change committed meanwhile wakes it at once.
      const ticket = d.waiters.ticket(w.keys);
      try {
        const looked = await w.look();
        if (w.enough(looked)) return looked;
        const now = Date.now();
        // Its time ran out: what it saw is the answer, whatever began meanwhile.
        if (now >= deadline) return looked;
        // Cut short, not the names as they are: that reads as "not changed yet", and the caller would wait on this server again.
        if (shutdown.signal.aborted) throw shuttingDown();
        refuseIfRevoked(w.call);
        if (stop.signal.aborted) return looked;
        if (unpark === undefined && w.parkedAs !== undefined) unpark = d.parked.acquire(w.parkedAs);
        w.call.waiting?.();
        const changesAt = w.changesAt?.(looked) ?? null;
        const wakeAt = Math.min(deadline, changesAt === null ? Infinity : changesAt + 1, now + safetyRelookMs(d.config.crossProcessPollMs));
        await ticket.wait(Math.max(0, wakeAt - now), stop.signal);
        // Out of time, not woken: one last read still answers a change the bus had not read yet.
      } finally {
        ticket.cancel();
      }
    }
  } finally {
    stop.dispose();
    shutdown.dispose();
    unpark?.();
  }
}
