// Every committed event is tested against every parked long-poll (PollWaiters) and every open live
// stream (events.onEvent), each with its agent's patterns: up to 1,000 (MAX_SUBSCRIPTION_PATTERNS)
// and a stream's own 100 more. Matched as lists, one agent's 64 parked polls (maxParkedPerAgent)
// cost an enqueueMany of 1,000 tasks 64 million comparisons, 1.5 s of the event loop; 2,000
// streams (maxSubscriptionsPerCredential), 47 s. Counted here: reads of the patterns and of the
// events' types, which must not grow with polls × events or streams × events.
import { describe, expect, it } from "vitest";
import type { EventBus } from "../src/events/event-bus.js";
import type { CoordinationEvent } from "../src/events/event-schemas.js";
import type { EventService } from "../src/events/event-service.js";
import { streamEvents } from "../src/events/event-stream.js";
import { PollWaiters } from "../src/events/poll-waiters.js";
import { matchesType, typeMatcher } from "../src/events/type-patterns.js";
import { seededRandom } from "./helpers/seeded-random.js";

/** `items` as an array counting the reads of its items into `reads`. */
function counted(items: string[], reads: { n: number }): string[] {
  return new Proxy(items, {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads.n++;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}

/** An event whose type counts its reads into `reads`. */
function event(seq: number, type: string, target: string | null, reads = { n: 0 }): CoordinationEvent {
  const e = { seq, source: "test", payload: {}, target, createdAt: new Date(0) } as unknown as CoordinationEvent;
  Object.defineProperty(e, "type", { enumerable: true, get: () => (reads.n++, type) });
  return e;
}


const WORDS = ["a", "b", "task", "x-y", "", "a.b", "."];
function randomType(next: () => number): string {
  const depth = 1 + Math.floor(next() * 4);
  return Array.from({ length: depth }, () => WORDS[Math.floor(next() * WORDS.length)]).join(".");
}
function randomPattern(next: () => number): string {
  const roll = next();
  if (roll < 0.05) return "*";
  return roll < 0.5 ? `${randomType(next)}.*` : randomType(next);
}

describe("type patterns matched by set", () => {
  it("typeMatcher answers as matchesType does, odd strings included", () => {
    const next = seededRandom(7);
    for (let round = 0; round < 2000; round++) {
      const patterns = Array.from({ length: Math.floor(next() * 6) }, () => randomPattern(next));
      const matches = typeMatcher(patterns);
      for (let i = 0; i < 10; i++) {
        const type = randomType(next);
        expect(matches(type), `${type} against ${JSON.stringify(patterns)}`).toBe(matchesType(type, patterns));
      }
    }
  });
});

describe("parked polls are woken in time independent of their number and their patterns", () => {
  it("1,000 events against 64 polls of 1,000 patterns none matches read no pattern, and each event's type once", () => {
    const waiters = new PollWaiters();
    const patternReads = { n: 0 };
    const typeReads = { n: 0 };
    const patterns = Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? `zz${i}.sub.*` : `zz${i}.exact`));
    // As EventService.poll does: a ticket first (patterns not known), its patterns once its read tells them.
    const tickets = Array.from({ length: 64 }, () => waiters.ticket("agent"));
    for (const ticket of tickets) ticket.types = counted(patterns, patternReads);
    const filed = patternReads.n;
    waiters.observe(Array.from({ length: 1000 }, (_, i) => event(i + 1, "task.enqueued", null, typeReads)));
    expect(tickets.filter((ticket) => ticket.isWoken)).toHaveLength(0);
    // Read once each when filed, never per event (64 million reads before).
    expect(patternReads.n - filed).toBe(0);
    expect(filed).toBeLessThanOrEqual(2 * 64 * 1000);
    expect(typeReads.n).toBeLessThanOrEqual(1000);
    waiters.observe([event(1001, "zz2.sub.deeper.still", null)]);
    expect(tickets.filter((ticket) => ticket.isWoken)).toHaveLength(64);
    for (const ticket of tickets) ticket.cancel();
    expect(waiters.size).toBe(0);
  });

  it("wakes exactly the polls whose agent or patterns an event matches, as they change and leave", () => {
    const next = seededRandom(11);
    const agents = ["a1", "a2", "a3"];
    for (let round = 0; round < 300; round++) {
      const waiters = new PollWaiters();
      const tickets = Array.from({ length: 8 }, () => {
        const agent = agents[Math.floor(next() * agents.length)]!;
        const roll = next();
        const types = roll < 0.15 ? undefined : roll < 0.25 ? [] : Array.from({ length: 1 + Math.floor(next() * 5) }, () => randomPattern(next));
        return waiters.ticket(agent, types);
      });
      // Some learn their patterns after filing (undefined first), some change them, some leave.
      for (const ticket of tickets) {
        const roll = next();
        if (roll < 0.3) ticket.types = Array.from({ length: Math.floor(next() * 4) }, () => randomPattern(next));
        else if (roll < 0.4) ticket.types = undefined;
      }
      const left = new Set(tickets.filter(() => next() < 0.2));
      for (const ticket of left) ticket.cancel();
      expect(waiters.size).toBe(tickets.length - left.size);
      const events = Array.from({ length: 1 + Math.floor(next() * 4) }, (_, i) => event(i + 1, randomType(next), next() < 0.3 ? agents[Math.floor(next() * agents.length)]! : null));
      const expected = tickets.map((ticket) => !left.has(ticket) && events.some((e) => (e.target !== null ? e.target === ticket.agentId : ticket.types === undefined || matchesType(e.type, ticket.types))));
      waiters.observe(events);
      expect(tickets.map((ticket) => ticket.isWoken), JSON.stringify({ types: tickets.map((t) => t.types), events: events.map((e) => [e.type, e.target]) })).toEqual(expected);
      for (const ticket of tickets) ticket.cancel();
      expect(waiters.size).toBe(0);
    }
  });
});

describe("live streams filter a batch by its kinds of events, not event by event", () => {
  it("200 streams of 100 patterns none matches read each of 1,000 events' types about once, and a stream gets what it wants in order", async () => {
    const listeners = new Set<(events: readonly CoordinationEvent[]) => void>();
    const bus = { lastSeq: 0, listen: (l: (events: readonly CoordinationEvent[]) => void) => (listeners.add(l), () => listeners.delete(l)) } as unknown as EventBus;
    const service = { liveStreams: new Set(), streamSetup: () => Promise.resolve({ subscription: null, mailboxStart: 0 }) } as unknown as EventService;
    const deps = { bus, service, bufferLimit: 10_000, bufferBytesLimit: 1 << 30, onOverflow: () => undefined, socketBacklog: () => 0 };
    const abort = new AbortController();
    const streams = Array.from({ length: 200 }, (_, s) => streamEvents(deps, { types: Array.from({ length: 100 }, (_, k) => `yy${s}x${k}.*`) }, abort.signal));
    const firsts = streams.map((stream) => stream.next());
    const watcher = streamEvents(deps, { types: ["build.*", "deploy.done"] }, abort.signal);
    const got: unknown[] = [];
    const watching = (async () => {
      for await (const envelope of watcher) {
        got.push((envelope as unknown as [string, CoordinationEvent])[1].seq);
        if (got.length === 4) return;
      }
    })();
    // Let every stream learn its patterns and wait for events.
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(listeners.size).toBe(201);

    const typeReads = { n: 0 };
    const batch = Array.from({ length: 1000 }, (_, i) => event(i + 1, "task.enqueued", null, typeReads));
    for (const listener of listeners) listener(batch);
    // 201 × 1,000 reads before; now each event's once, and each stream's one kind.
    expect(typeReads.n).toBeLessThanOrEqual(1000 + 2 * 201);

    const mixed = [event(1001, "build.started", null), event(1002, "deploy.done", null), event(1003, "deploy.started", null), event(1004, "build.started", "someone"), event(1005, "build.x.y", null), event(1006, "task.enqueued", null), event(1007, "build.started", null)];
    for (const listener of listeners) listener(mixed);
    await watching;
    expect(got).toEqual([1001, 1002, 1005, 1007]);
    abort.abort();
    await Promise.all(streams.map((stream) => stream.return(undefined)));
    await Promise.all(firsts.map((first) => first.catch(() => undefined)));
  });
});
