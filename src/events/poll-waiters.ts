// Long-polling polls that found nothing wait here, and are woken by the committed events they
// could read: a direct message to their agent, or an untargeted event matching its patterns
// (from this process or, through the bus's tail, another one). No parked poll re-reads the
// database on a timer; each looks again after at most safetyRelookMs (wakeup.ts), in case a
// wake-up was missed.
import type { CoordinationEvent } from "./event-schemas.js";
import { matchesType } from "./type-patterns.js";
import { WakeTicket } from "../wakeup.js";

export class PollTicket extends WakeTicket {
  constructor(
    readonly agentId: string,
    /** The agent's patterns; undefined (not known yet): any event wakes it. */
    public types: readonly string[] | undefined,
    private readonly release: (ticket: PollTicket) => void,
  ) {
    super();
  }

  wants(event: CoordinationEvent): boolean {
    if (event.target !== null) return event.target === this.agentId;
    return this.types === undefined || matchesType(event.type, this.types);
  }

  cancel(): void {
    this.release(this);
  }
}

export class PollWaiters {
  private readonly tickets = new Set<PollTicket>();

  /** Polls parked now (observability, tests). */
  get size(): number {
    return this.tickets.size;
  }

  ticket(agentId: string, types?: readonly string[]): PollTicket {
    const ticket = new PollTicket(agentId, types, (t) => this.tickets.delete(t));
    this.tickets.add(ticket);
    return ticket;
  }

  /** From the event bus: wakes each waiting poll that could read one of the events. */
  observe(events: readonly CoordinationEvent[]): void {
    for (const ticket of this.tickets) if (events.some((event) => ticket.wants(event))) ticket.notify();
  }
}
