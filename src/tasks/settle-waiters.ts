// Long-polls waiting for tasks to settle (tasks.wait, tasks.waitMany) park here, and are woken by
// the event that settles one: task.completed, task.dead_lettered or task.cancelled, whichever
// process committed it (the event bus delivers both). Keyed by task id, so an event costs one map
// lookup however many waits are parked. A waiter also looks again after at most safetyRelookMs
// (wakeup.ts), in case a wake-up was missed (the log pruned before the bus read it).
import type { CoordinationEvent } from "../events/event-schemas.js";
import { payloadFields } from "../events/system-events.js";
import { WakeTicket } from "../wakeup.js";

/** The events that put a task in one of them. */
const SETTLING_EVENTS: ReadonlySet<string> = new Set(["task.completed", "task.dead_lettered", "task.cancelled"]);

/** One parked wait, on one task or several: registered before its read, so a settle committed during the read is not missed. */
export class SettleTicket extends WakeTicket {
  constructor(
    readonly taskIds: readonly string[],
    private readonly release: (ticket: SettleTicket) => void,
  ) {
    super();
  }

  cancel(): void {
    this.release(this);
  }
}

export class SettleWaiters {
  private readonly byTask = new Map<string, Set<SettleTicket>>();
  private count = 0;

  /** Waits parked now (observability, tests). */
  get size(): number {
    return this.count;
  }

  /** A ticket woken when any of `taskIds` (distinct) settles; cancel() takes it off all of them. */
  ticket(taskIds: readonly string[]): SettleTicket {
    let parked = true;
    const ticket = new SettleTicket(taskIds, (t) => {
      if (!parked) return;
      parked = false;
      this.count--;
      for (const taskId of t.taskIds) {
        const tickets = this.byTask.get(taskId);
        tickets?.delete(t);
        if (tickets?.size === 0) this.byTask.delete(taskId);
      }
    });
    for (const taskId of taskIds) {
      const tickets = this.byTask.get(taskId);
      if (tickets) tickets.add(ticket);
      else this.byTask.set(taskId, new Set([ticket]));
    }
    this.count++;
    return ticket;
  }

  /** From the event bus: wakes the waits of each task an event settled. */
  observe(events: readonly CoordinationEvent[]): void {
    if (this.count === 0) return;
    for (const event of events) {
      if (!SETTLING_EVENTS.has(event.type)) continue;
      const { taskId } = payloadFields(event);
      if (typeof taskId !== "string") continue;
      for (const ticket of this.byTask.get(taskId) ?? []) ticket.notify();
    }
  }
}
