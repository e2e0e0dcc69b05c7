// Long-polls that wait for something named (a task to settle: tasks.wait, tasks.waitMany; a named
// lock to be free: locks.acquire; a semaphore's permit: semaphores.acquire; a key to change: kv.get; a run's log to grow: tasks.log) park here, keyed by those names, and are woken by the events
// that name them, whichever process committed them (the event bus delivers both): an event costs
// one map lookup however many waits are parked. A waiter also looks again after at most
// safetyRelookMs (wakeup.ts), in case a wake-up was missed (the log pruned before the bus read it).
import type { CoordinationEvent } from "./events/event-schemas.js";
import { payloadFields } from "./events/system-events.js";
import { WakeTicket } from "./wakeup.js";

/** One parked wait, on one key or several: registered before its read, so an event committed during the read is not missed. */
export class KeyedTicket extends WakeTicket {
  constructor(
    readonly keys: readonly string[],
    private readonly release: (ticket: KeyedTicket) => void,
  ) {
    super();
  }

  cancel(): void {
    this.release(this);
  }
}

export class KeyedWaiters {
  private readonly byKey = new Map<string, Set<KeyedTicket>>();
  private count = 0;

  /**
   * `types`: the events that wake waits; `field`: the payload field naming the key they wake (an
   * event of those types published by an admin, whose payload the server did not write, wakes
   * only if that field is text: the waits look again, and find what is so).
   */
  constructor(
    private readonly types: ReadonlySet<string>,
    private readonly field: string,
  ) {}

  /** Waits parked now (observability, tests). */
  get size(): number {
    return this.count;
  }

  /** A ticket woken when an event names any of `keys` (distinct); cancel() takes it off all of them. */
  ticket(keys: readonly string[]): KeyedTicket {
    let parked = true;
    const ticket = new KeyedTicket(keys, (t) => {
      if (!parked) return;
      parked = false;
      this.count--;
      for (const key of t.keys) {
        const tickets = this.byKey.get(key);
        tickets?.delete(t);
        if (tickets?.size === 0) this.byKey.delete(key);
      }
    });
    for (const key of keys) {
      const tickets = this.byKey.get(key);
      if (tickets) tickets.add(ticket);
      else this.byKey.set(key, new Set([ticket]));
    }
    this.count++;
    return ticket;
  }

  /** From the event bus: wakes the waits of each key an event of the types names. */
  observe(events: readonly CoordinationEvent[]): void {
    if (this.count === 0) return;
    for (const event of events) {
      if (!this.types.has(event.type)) continue;
      const key = payloadFields(event)[this.field];
      if (typeof key !== "string") continue;
      for (const ticket of this.byKey.get(key) ?? []) ticket.notify();
    }
  }
}

/** Task waits (tasks.wait, tasks.waitMany), by task id: woken by the events that settle a task. */
export const settleWaiters = (): KeyedWaiters => new KeyedWaiters(new Set(["task.completed", "task.dead_lettered", "task.cancelled"]), "taskId");

/**
 * Lock acquires waiting (locks.acquire with waitMs), by lock name: woken by the events that free
 * one. Every waiter of the name wakes and tries again: the writer grants the lock to one, the
 * others park again (no order among them). A waiter also tries again when the lease it saw runs
 * out (no event comes of that until a write meets the grant).
 */
export const lockWaiters = (): KeyedWaiters => new KeyedWaiters(new Set(["lock.released", "lock.expired"]), "name");

/**
 * Semaphore acquires waiting (semaphores.acquire with waitMs), by semaphore name: woken by the
 * events that free a permit. Every waiter of the name wakes and tries again: the writer grants the
 * free permits, the others park again (no order among them).
 */
export const semaphoreWaiters = (): KeyedWaiters => new KeyedWaiters(new Set(["semaphore.released", "semaphore.expired"]), "name");

/** Follows of a run's log (tasks.log with waitMs), by task id: woken by its new lines and by its settle. */
export const logWaiters = (): KeyedWaiters => new KeyedWaiters(new Set(["task.log", "task.completed", "task.dead_lettered", "task.cancelled"]), "taskId");

/** Watches of shared state (kv.get with afterVersion), by key: woken by every event that changes one. */
export const kvWaiters = (): KeyedWaiters => new KeyedWaiters(new Set(["kv.set", "kv.deleted", "kv.expired"]), "key");
