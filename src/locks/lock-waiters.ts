// Acquires waiting for a lock to be free (locks.acquire with waitMs) park here, and are woken by
// the event that frees it: lock.released or lock.expired, whichever process committed it (the event
// bus delivers both). Keyed by name, so an event costs one map lookup however many acquires wait.
// Every waiter of the name wakes and tries again: the writer grants the lock to one, the others
// park again (no order among them). A waiter also tries again when the lease it saw runs out (no
// event comes of that until a write meets the grant) and after at most safetyRelookMs (wakeup.ts).
import type { CoordinationEvent } from "../events/event-schemas.js";
import { payloadFields } from "../events/system-events.js";
import { WakeTicket } from "../wakeup.js";

/** The events that free a lock. */
const FREEING_EVENTS: ReadonlySet<string> = new Set(["lock.released", "lock.expired"]);

/** One parked acquire: registered before its write, so a release committed meanwhile is not missed. */
export class LockTicket extends WakeTicket {
  constructor(
    readonly name: string,
    private readonly release: (ticket: LockTicket) => void,
  ) {
    super();
  }

  cancel(): void {
    this.release(this);
  }
}

export class LockWaiters {
  private readonly byName = new Map<string, Set<LockTicket>>();
  private count = 0;

  /** Acquires parked now (observability, tests). */
  get size(): number {
    return this.count;
  }

  /** A ticket woken when lock `name` is freed; cancel() takes it off. */
  ticket(name: string): LockTicket {
    let parked = true;
    const ticket = new LockTicket(name, (t) => {
      if (!parked) return;
      parked = false;
      this.count--;
      const tickets = this.byName.get(t.name);
      tickets?.delete(t);
      if (tickets?.size === 0) this.byName.delete(t.name);
    });
    const tickets = this.byName.get(name);
    if (tickets) tickets.add(ticket);
    else this.byName.set(name, new Set([ticket]));
    this.count++;
    return ticket;
  }

  /** From the event bus: wakes the acquires waiting for each lock an event freed. */
  observe(events: readonly CoordinationEvent[]): void {
    if (this.count === 0) return;
    for (const event of events) {
      if (!FREEING_EVENTS.has(event.type)) continue;
      const { name } = payloadFields(event);
      if (typeof name !== "string") continue;
      for (const ticket of this.byName.get(name) ?? []) ticket.notify();
    }
  }
}
