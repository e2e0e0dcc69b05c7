// What the lock and semaphore services share on the event loop: the expiry job's loop, and the
// long-poll of an acquire that waits (locks.acquire, semaphores.acquire with waitMs): it parks on
// the name's waiters (keyed-waiters.ts), woken by the events that free a grant of it from any
// process, or when the first lease it saw runs out (no event comes of that until a write meets the
// grant), with one last attempt at the wait's end. Waiting is bounded per agent (maxParkedPerAgent)
// and ends at the server's shutdown (503) or the client's departure (the answer nobody reads).
import type { Config } from "../config.js";
import { clientGone, refuseIfRevoked, type ConsumingCall } from "../delivery/delivery.js";
import { shuttingDown } from "../errors.js";
import type { KeyedWaiters } from "../keyed-waiters.js";
import type { PerKeyLimit } from "../per-key-limit.js";
import { linkSignals, safetyRelookMs, type SignalFanout } from "../wakeup.js";

export interface GrantWaitDeps {
  config: Config;
  waiters: KeyedWaiters;
  shutdown: SignalFanout;
  /** Long-polls waiting per agent, bounded (maxParkedPerAgent): its claims, polls and acquires together. */
  parked: PerKeyLimit;
}

export interface GrantWait<A extends { acquired: boolean }> {
  /** The name waited for: its waiters' key. */
  name: string;
  agentId: string;
  /** How long to wait, in ms, cut to maxWaitMs already; 0: one attempt. */
  waitMs: number;
  call: ConsumingCall;
  /** One acquire, a write. */
  attempt: () => Promise<A>;
  /** What the caller would have been told had it not gone: the name as it is, not acquired (a read). */
  asItIs: () => Promise<A>;
  /** When the first lease of the refusal `answer` runs out (Unix ms; null: none is held). */
  freeAt: (answer: A) => number | null;
}

/** Acquires with `wait.attempt`, waiting up to `wait.waitMs` while the name is taken: the first answer that acquired, or the last refusal. */
export async function acquireWaiting<A extends { acquired: boolean }>(d: GrantWaitDeps, wait: GrantWait<A>): Promise<A> {
  if (wait.waitMs <= 0) return wait.attempt();
  const { call } = wait;
  const unpark = d.parked.acquire(wait.agentId);
  const deadline = Date.now() + wait.waitMs;
  const shutdown = d.shutdown.child();
  const stop = linkSignals([...(call.signals?.() ?? []), shutdown.signal]);
  try {
    for (;;) {
      // Waiting starts before the attempt: a release committed meanwhile wakes it at once.
      if (shutdown.signal.aborted) throw shuttingDown();
      const ticket = d.waiters.ticket([wait.name]);
      try {
        if (clientGone(call)) {
          refuseIfRevoked(call);
          // Gone before it took anything: what it would have been told is what the name is.
          return await wait.asItIs();
        }
        const answer = await wait.attempt();
        if (answer.acquired) return answer;
        // Not a refusal: that reads as "taken", and the caller would ask this server again.
        if (shutdown.signal.aborted) throw shuttingDown();
        refuseIfRevoked(call);
        const now = Date.now();
        if (now >= deadline || stop.signal.aborted) return answer;
        call.waiting?.();
        // A lease running out frees the name with no event until a write meets it: look then.
        const freeAt = wait.freeAt(answer);
        const leaseEnd = freeAt === null ? now : freeAt + 1;
        const wakeAt = Math.min(deadline, leaseEnd, now + safetyRelookMs(d.config.crossProcessPollMs));
        await ticket.wait(wakeAt - now, stop.signal);
        // At the end of the wait, one last attempt: a lease may have run out with it.
        if (!ticket.isWoken && Date.now() >= deadline && !stop.signal.aborted) return await wait.attempt();
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

/** Grants (locks, permits) or keys of shared state an expiry job takes away per write. */
const EXPIRY_BATCH = 500;

/**
 * Takes away the grants whose lease ran out (or the keys whose ttlMs did: kv-service.ts),
 * EXPIRY_BATCH a write (`expire`, each with its expired event: the acquires and watches waiting
 * for them wake), looked for on the reader first (`anyRunOut`), so a server with none writes
 * nothing. How many.
 */
export async function expireRunOut(anyRunOut: (now: number) => Promise<boolean>, expire: (limit: number) => Promise<number>): Promise<number> {
  let expired = 0;
  while (await anyRunOut(Date.now())) {
    const done = await expire(EXPIRY_BATCH);
    expired += done;
    if (done < EXPIRY_BATCH) break;
  }
  return expired;
}
