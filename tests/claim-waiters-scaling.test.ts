// Every task an event makes available is checked against every parked claim (couldTake). The
// claims' queues (up to 100) and capabilities (up to 200) were scanned as lists for each: an
// enqueueMany of 1,000 tasks of a capability no waiter offers cost 1,000 parked claims 300
// million comparisons, 0.7 s of the event loop. Counted here as the reads of the claims' lists.
import { describe, expect, it } from "vitest";
import type { CoordinationEvent } from "../src/events/event-schemas.js";
import { ClaimWaiters } from "../src/tasks/claim-waiters.js";

/** `items` as an array counting the reads of its items into `reads`. */
function counted(items: string[], reads: { n: number }): string[] {
  return new Proxy(items, {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads.n++;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}

const enqueued = (seq: number, payload: Record<string, unknown>) => ({ seq, type: "task.enqueued", payload, target: null, createdAt: new Date(0) }) as unknown as CoordinationEvent;

describe("parked claims are matched in time independent of their lists' length", () => {
  it("1,000 tasks against 100 claims of 100 queues and 200 capabilities read each list about once, not once a task", () => {
    const waiters = new ClaimWaiters();
    const reads = { n: 0 };
    const queues = Array.from({ length: 99 }, (_, i) => `queue-${i}`).concat(["q"]);
    const capabilities = Array.from({ length: 200 }, (_, i) => `capability-${i}`);
    const tickets = Array.from({ length: 100 }, (_, i) => waiters.ticket({ agentId: `agent-${i}`, queues: counted(queues, reads), capabilities: counted(capabilities, reads) }));
    const listed = reads.n;
    // No waiter offers "nobody"; then 1,000 of a capability all offer, each of its own: a thousand different tasks.
    waiters.observe(Array.from({ length: 1000 }, (_, i) => enqueued(i + 1, { taskId: `t${i}`, queue: "q", capability: "nobody" })));
    expect(tickets.filter((ticket) => ticket.isWoken)).toHaveLength(0);
    waiters.observe(Array.from({ length: 1000 }, (_, i) => enqueued(1001 + i, { taskId: `u${i}`, queue: "q", capability: capabilities[i % 200] })));
    expect(tickets.filter((ticket) => ticket.isWoken)).toHaveLength(100);
    // Each claim's lists are read when it is made (about 300 items, twice over at most), never per task.
    expect(reads.n - listed).toBeLessThanOrEqual(100 * 300);
    expect(listed).toBeLessThanOrEqual(2 * 100 * 300);
    for (const ticket of tickets) ticket.cancel();
  });

  it("a second task alike wakes no one more, and a task of a queue or capability a claim does not name does not wake it", () => {
    const waiters = new ClaimWaiters();
    const picky = waiters.ticket({ agentId: "a", queues: ["q"], capabilities: ["gpu"] });
    const other = waiters.ticket({ agentId: "b", queues: ["r"], capabilities: undefined });
    waiters.observe([enqueued(1, { taskId: "t1", queue: "q", capability: "cpu" }), enqueued(2, { taskId: "t2", queue: "q", capability: "cpu" })]);
    expect([picky.isWoken, other.isWoken]).toEqual([false, false]);
    waiters.observe([enqueued(3, { taskId: "t3", queue: "q", capability: "gpu" }), enqueued(4, { taskId: "t4", queue: "r", capability: "gpu" })]);
    expect([picky.isWoken, other.isWoken]).toEqual([true, true]);
    picky.cancel();
    other.cancel();
  });
});
