// Long-polling polls that found nothing wait here, and are woken by the committed events they
// could read: a direct message to their agent, or an untargeted event matching its patterns
// (from this process or, through the bus's tail, another one). No parked poll re-reads the
// database on a timer; each looks again after at most safetyRelookMs (wakeup.ts), in case a
// wake-up was missed.
//
// The parked polls are indexed by what wakes them: their agent, their exact types, their
// prefixes (`task.*`), and those that take any event (`*`, or patterns not known yet). An event
// costs a lookup of its target, or of its type and of the type's prefixes at its dots, however
// many polls are parked and however many patterns each holds; and a batch's events are looked up
// once per distinct type and target. Before, every event was matched against every parked poll's
// every pattern: one agent (64 polls parked, maxParkedPerAgent; 1,000 patterns,
// MAX_SUBSCRIPTION_PATTERNS) cost an enqueueMany of 1,000 tasks 64 million comparisons, 1.5 s of
// the event loop.
import type { CoordinationEvent } from "./event-schemas.js";
import { patternKinds, prefixesOf } from "./type-patterns.js";
import { WakeTicket } from "../wakeup.js";

/** What the registry does for a ticket: index its patterns anew, or let it go. */
interface PollRegistry {
  retype(ticket: PollTicket, types: readonly string[] | undefined): void;
  release(ticket: PollTicket): void;
}

export class PollTicket extends WakeTicket {
  private patterns: readonly string[] | undefined;
  /** Where the registry filed it under its patterns (undefined: with the polls any event wakes). */
  indexed: { exact: string[]; prefixes: string[] } | undefined;
  /** Taken off the registry (cancelled): a later change of types files it nowhere. */
  released = false;

  constructor(
    readonly agentId: string,
    types: readonly string[] | undefined,
    private readonly registry: PollRegistry,
  ) {
    super();
    this.patterns = types;
  }

  /** The agent's patterns; undefined (not known yet): any event wakes it. Set once its read tells them. */
  get types(): readonly string[] | undefined {
    return this.patterns;
  }

  set types(types: readonly string[] | undefined) {
    this.patterns = types;
    this.registry.retype(this, types);
  }

  cancel(): void {
    this.registry.release(this);
  }
}

/** Sets of tickets by key; empty sets are dropped. */
class TicketsBy<K> {
  readonly map = new Map<K, Set<PollTicket>>();

  /** Files `ticket` under `key`; true when the key is new. */
  add(key: K, ticket: PollTicket): boolean {
    const tickets = this.map.get(key);
    if (tickets) {
      tickets.add(ticket);
      return false;
    }
    this.map.set(key, new Set([ticket]));
    return true;
  }

  /** Takes `ticket` from under `key`; true when the key is gone with it. */
  delete(key: K, ticket: PollTicket): boolean {
    const tickets = this.map.get(key);
    if (!tickets?.delete(ticket) || tickets.size > 0) return false;
    this.map.delete(key);
    return true;
  }

  wake(key: K): void {
    const tickets = this.map.get(key);
    if (tickets) for (const ticket of tickets) ticket.notify();
  }
}

export class PollWaiters {
  private count = 0;
  /** Every parked poll, by agent: a direct message wakes its agent's. */
  private readonly byAgent = new TicketsBy<string>();
  /** Polls any untargeted event wakes: `*`, or patterns not known yet. */
  private readonly anyType = new Set<PollTicket>();
  private readonly byExact = new TicketsBy<string>();
  /** By prefix: `task.*` is filed as "task.". */
  private readonly byPrefix = new TicketsBy<string>();
  /** How many prefixes filed are of each length: a type is looked up only at those of its dots. */
  private readonly prefixLengths = new Map<number, number>();

  private readonly registry: PollRegistry = {
    retype: (ticket, types) => {
      if (ticket.released) return;
      this.unindex(ticket);
      this.index(ticket, types);
    },
    release: (ticket) => {
      if (ticket.released) return;
      ticket.released = true;
      this.unindex(ticket);
      this.byAgent.delete(ticket.agentId, ticket);
      this.count--;
    },
  };

  /** Polls parked now (observability, tests). */
  get size(): number {
    return this.count;
  }

  ticket(agentId: string, types?: readonly string[]): PollTicket {
    const ticket = new PollTicket(agentId, types, this.registry);
    this.byAgent.add(agentId, ticket);
    this.index(ticket, types);
    this.count++;
    return ticket;
  }

  /** From the event bus: wakes each waiting poll that could read one of the events. */
  observe(events: readonly CoordinationEvent[]): void {
    if (this.count === 0) return;
    const types = new Set<string>();
    const targets = new Set<string>();
    for (const event of events) {
      if (event.target !== null) targets.add(event.target);
      else types.add(event.type);
    }
    for (const target of targets) this.byAgent.wake(target);
    if (types.size === 0) return;
    for (const ticket of this.anyType) ticket.notify();
    for (const type of types) {
      this.byExact.wake(type);
      if (this.prefixLengths.size > 0) {
        prefixesOf(type, this.prefixLengths, (prefix) => {
          this.byPrefix.wake(prefix);
          return false;
        });
      }
    }
  }

  private index(ticket: PollTicket, types: readonly string[] | undefined): void {
    if (types === undefined || types.includes("*")) {
      this.anyType.add(ticket);
      ticket.indexed = undefined;
      return;
    }
    const { exact, prefixes } = patternKinds(types);
    for (const type of exact) this.byExact.add(type, ticket);
    for (const prefix of prefixes) {
      if (this.byPrefix.add(prefix, ticket)) this.prefixLengths.set(prefix.length, (this.prefixLengths.get(prefix.length) ?? 0) + 1);
    }
    ticket.indexed = { exact: [...exact], prefixes: [...prefixes] };
  }

  private unindex(ticket: PollTicket): void {
    const indexed = ticket.indexed;
    if (indexed === undefined) {
      this.anyType.delete(ticket);
      return;
    }
    ticket.indexed = undefined;
    for (const type of indexed.exact) this.byExact.delete(type, ticket);
    for (const prefix of indexed.prefixes) {
      if (!this.byPrefix.delete(prefix, ticket)) continue;
      const left = this.prefixLengths.get(prefix.length)! - 1;
      if (left === 0) this.prefixLengths.delete(prefix.length);
      else this.prefixLengths.set(prefix.length, left);
    }
  }
}
