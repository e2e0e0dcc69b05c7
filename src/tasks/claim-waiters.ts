// Long-polling claims that found nothing wait here, and are woken by the events that make a task
// claimable (task.enqueued, task.ready, task.promoted, task.updated, task.deduplicated, task.released, task.requeued, task.retried, queue.resumed), whichever process
// committed them: the event bus delivers both. Before, every parked claim re-ran its claim
// statement every crossProcessPollMs, so 1,000 idle long-polls burned half a core; and every
// enqueue woke them all, to find one task.
//  - A task any agent on its queue may take wakes one waiter (the longest waiting); a task with a
//    capability or a target wakes every waiter that could take it.
//  - A task due later (a delay, a retry backoff) wakes nobody now: it brings the waiters' next
//    look forward to its run-at.
//  - A claim with an idempotencyKey parked here may be a repeat of one parked elsewhere (its
//    client gave up on it: a proxy, a failover) that takes the task when it comes: each
//    task.claimed of its agent wakes it to look, on the reader, for a lease under its key
//    (TaskService.claim). Woken for that only, it claims nothing on the writer unless one is there.
//  - A claim that found nothing because a limited queue it could take from is full (its limit's
//    leases all held, queue-limit-store.ts) waits for a lease of that queue to end: each slot a
//    commit frees (leases completed, failed, expired, released, cancelled, less the takes paired
//    with them in the same write: a complete-and-claim's of the same queue, a steal's) wakes the
//    longest waiting of those claims, one slot one claim, and one that does not take it passes it
//    on (TaskService.claim); enqueues into the full queue wake none of them; a limit set or
//    removed, and each chunk of its tasks held, wake them all. A slot freed while the claim's
//    attempt was under way counts too: it looks again at once.
//  - A claim that found nothing because a rate-limited queue it could take from has made its
//    window's claims (queue-rate-store.ts) is blocked on its window, and woken, one claim at a
//    time, when the window has room again: one timer a queue (rateFreesAt), and each claim of the
//    queue that leaves room wakes the next (passOnRoom; TaskService.afterClaim); never by a lease
//    end. A queue with a full window and a full limit blocks its claims on the window; once the
//    window has room and the limit is still full, they wait for a lease end (moveToSlots); once
//    the queue holds no task anyone may take, they wait as unblocked claims do (unblockRate).
//  - A claim of a cordoned agent (agents.cordon) waits taking no task's wake-up, and looks again
//    at its agent's cordon changes and at the cordon's end; a wake-up it took before it knew
//    (cordoned while parked, or during its attempt) goes to the next waiter (handOn), as does one
//    a claim took and leaves without looking at (its time ran out, its client went).
//  - A waiter also looks again after at most safetyRelookMs (wakeup.ts), in case a wake-up was
//    missed (a capability granted by re-registration, a log pruned before it was read): bounded,
//    and rare.
import type { CoordinationEvent } from "../events/event-schemas.js";
import { payloadFields } from "../events/system-events.js";

const AVAILABILITY = new Set(["task.enqueued", "task.ready", "task.promoted", "task.updated", "task.deduplicated", "task.released", "task.requeued", "task.retried"]);
/** Events that end a lease (a released one is AVAILABILITY too): a slot of a limited queue frees. */
const LEASE_ENDS = new Set(["task.completed", "task.failed", "task.lease_expired", "task.cancelled", "task.released"]);
/** Queues whose last lease end is remembered (for claims whose attempt it overlapped); past this many the memory starts again. */
const MAX_LEASE_END_QUEUES = 10_000;
/** A queue's resume, or its limit or rate set or removed: every claim that could take from it looks again. */
const QUEUE_CHANGES = new Set(["queue.resumed", "queue.limit_set", "queue.limit_removed", "queue.rate_set", "queue.rate_removed"]);
/** Registry changes that can make tasks claimable for that agent (new capabilities). */
/** An agent's registration changed, or its cordon: its parked claims look again (a cordon's new end too). */
const AGENT_CHANGES = new Set(["agent.registered", "agent.updated", "agent.cordoned", "agent.uncordoned"]);

/** A task that became claimable, as its event says: what a waiter woken for it may take. */
export interface Availability {
  queue: string;
  capability: string | null;
  targetAgentId: string | null;
  /** When it becomes claimable, in ms; undefined: now. */
  runAt: number | undefined;
}

export interface ClaimInterest {
  agentId: string;
  /** null: any queue. */
  queues: readonly string[] | null;
  /** The capabilities the claim offers; undefined: the agent's registered ones (not known here). */
  capabilities: readonly string[] | undefined;
  /** The claim's idempotencyKey: it is woken by its agent's claims too (see above). */
  idempotencyKey?: string | undefined;
}

/** One parked claim: registered before its attempt, so an event during the attempt is not missed. */
export class ClaimTicket {
  private woken = false;
  /** One of its agent's claims leased a task since the last look for its key. */
  private agentClaimed = false;
  private wake: (() => void) | undefined;
  /** When the earliest task this claimer could take falls due, in ms (Infinity: none known). */
  dueAt = Number.POSITIVE_INFINITY;
  private dueTimer: NodeJS.Timeout | undefined;

  /** The full limited queues its last attempt could have taken from (blockedBy). */
  blockedOn: readonly string[] = [];
  /** The rate-limited queues with a full window its last attempt could have taken from (blockedBy). */
  rateBlockedOn: readonly string[] = [];
  /**
   * Its agent is cordoned: no task wakes it (it would take none, and a task any waiter may take
   * wakes one waiter only); its agent's uncordon does, or the time the cordon lifts (dueBy).
   */
  cordoned = false;
  /** The task whose availability woke it (one a waiter may take wakes one waiter): a claim that will not look at it hands it on (ClaimWaiters.handOn). */
  wokenByTask: Availability | undefined;
  /** The queue whose freed slot (byRate false) or window's room (true) woke it (ClaimWaiters.passOn). */
  wokenFor: { queue: string; byRate: boolean } | undefined;

  /**
   * interest.queues and interest.capabilities as sets (null, undefined: any): every task an
   * event makes available is checked against every waiting claim (couldTake), and a claim names
   * up to 100 queues and 200 capabilities. Scanned as lists, an enqueueMany of 1,000 tasks with a
   * capability no waiter offers cost 1,000 claims parked (ten batches of 100) 300 million
   * comparisons: 0.7 s of the event loop per enqueue.
   */
  readonly queues: ReadonlySet<string> | null;
  readonly capabilities: ReadonlySet<string> | undefined;

  constructor(
    readonly interest: ClaimInterest,
    private readonly release: (ticket: ClaimTicket) => void,
    /** The count of lease ends observed when it was made (ClaimWaiters.leaseEnds). */
    readonly madeAt: number,
    private readonly blocked: (ticket: ClaimTicket, queues: readonly string[], rateQueues: readonly string[]) => void,
  ) {
    this.queues = interest.queues === null ? null : new Set(interest.queues);
    this.capabilities = interest.capabilities === undefined ? undefined : new Set(interest.capabilities);
  }

  /**
   * Its attempt found nothing because these limited queues, which hold tasks it could take, are
   * full: it waits for one of their leases to end (or looks again at once if one ended during the
   * attempt); and because these rate-limited queues' windows are full: it waits for one to have room.
   */
  blockedBy(queues: readonly string[], rateQueues: readonly string[] = []): void {
    if (queues.length > 0 || rateQueues.length > 0) this.blocked(this, queues, rateQueues);
  }

  get isWoken(): boolean {
    return this.woken;
  }

  notify(): void {
    this.woken = true;
    this.wake?.();
  }

  /** Its agent's claim leased a task (a keyed claim only): wakes it to look for a lease under its key. */
  notifyAgentClaimed(): void {
    this.agentClaimed = true;
    this.wake?.();
  }

  /** Woken by its agent's claims alone since the last call: its key is to be looked for, nothing else changed. Clears the mark. */
  takeAgentClaimed(): boolean {
    const only = this.agentClaimed && !this.woken;
    this.agentClaimed = false;
    return only;
  }

  /** A task it could take falls due at `runAt`: look then, if that is sooner than planned. */
  dueBy(runAt: number): void {
    if (runAt >= this.dueAt) return;
    this.dueAt = runAt;
    if (this.wake) this.armDue();
  }

  /** Resolves when notified, when a task falls due, after `maxMs`, or when `signal` aborts: true when it was `maxMs` that ran out. */
  wait(maxMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.woken || this.agentClaimed || signal.aborted) return Promise.resolve(false);
    if (maxMs <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (timedOut: boolean) => {
        clearTimeout(timer);
        clearTimeout(this.dueTimer);
        signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve(timedOut);
      };
      const done = () => finish(false);
      const timer = setTimeout(() => finish(true), maxMs);
      this.wake = done;
      this.armDue();
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Leaves the registry (the claim returned, or is about to look again with a new ticket). */
  cancel(): void {
    clearTimeout(this.dueTimer);
    this.release(this);
  }

  private armDue(): void {
    clearTimeout(this.dueTimer);
    if (!Number.isFinite(this.dueAt)) return;
    this.dueTimer = setTimeout(() => this.notify(), Math.max(this.dueAt - Date.now(), 1));
  }
}

export class ClaimWaiters {
  /** In arrival order: the first match of a one-waiter wake-up has waited longest. */
  private readonly tickets = new Set<ClaimTicket>();

  /** Claims parked now (observability, tests). */
  get size(): number {
    return this.tickets.size;
  }

  /** Lease ends observed so far; by queue, the count when its last one was observed (bounded: see markLeaseEnd). */
  private leaseEnds = 0;
  private readonly lastLeaseEnd = new Map<string, number>();
  /** Every lease end before this count is taken as having been of any queue (the map was cleared). */
  private forgottenBefore = 0;
  /** The tickets waiting for a lease of a full limited queue to end, by queue, oldest first. */
  private readonly blockedOn = new Map<string, Set<ClaimTicket>>();
  /** The tickets waiting for a rate-limited queue's full window to have room, by queue, oldest first. */
  private readonly rateBlockedOn = new Map<string, Set<ClaimTicket>>();
  /** By rate-limited queue, the one timer that wakes a claim blocked on it when its window has room (rateFreesAt). */
  private readonly rateTimers = new Map<string, { at: number; timer: NodeJS.Timeout }>();

  ticket(interest: ClaimInterest): ClaimTicket {
    const ticket = new ClaimTicket(
      interest,
      (t) => {
        this.tickets.delete(t);
        for (const queue of t.blockedOn) unblock(this.blockedOn, queue, t);
        for (const queue of t.rateBlockedOn) unblock(this.rateBlockedOn, queue, t);
      },
      this.leaseEnds,
      (t, queues, rateQueues) => this.block(t, queues, rateQueues),
    );
    this.tickets.add(ticket);
    return ticket;
  }

  private block(ticket: ClaimTicket, queues: readonly string[], rateQueues: readonly string[]): void {
    for (const queue of ticket.blockedOn) unblock(this.blockedOn, queue, ticket);
    for (const queue of ticket.rateBlockedOn) unblock(this.rateBlockedOn, queue, ticket);
    ticket.blockedOn = queues;
    ticket.rateBlockedOn = rateQueues;
    for (const queue of queues) {
      // A lease of it ended while the attempt was under way: the slot may be free already.
      if (ticket.madeAt < this.forgottenBefore || (this.lastLeaseEnd.get(queue) ?? -1) >= ticket.madeAt) ticket.notify();
      block(this.blockedOn, queue, ticket);
    }
    // A window that had room during the attempt was passed on to it, or woke it (rateFreesAt).
    for (const queue of rateQueues) block(this.rateBlockedOn, queue, ticket);
  }

  /** A lease of `queue` ended: counted, and the longest waiting claim blocked on it (if any) looks again. */
  private markLeaseEnd(queue: string): void {
    if (this.lastLeaseEnd.size >= MAX_LEASE_END_QUEUES && !this.lastLeaseEnd.has(queue)) {
      this.lastLeaseEnd.clear();
      this.forgottenBefore = this.leaseEnds + 1;
    }
    this.lastLeaseEnd.set(queue, this.leaseEnds++);
    this.passOn(queue);
  }

  /**
   * Wakes the longest waiting claim blocked on `queue`, for a slot of it that is free: one that
   * frees, or one a claim woken for it left (it took another queue's task, or nothing: TaskService.claim).
   */
  passOn(queue: string): void {
    wakeOne(this.blockedOn, queue, false);
  }

  /** The count of lease ends observed so far: what moveToSlots compares with (taken before a claim's attempt). */
  get leaseEndMark(): number {
    return this.leaseEnds;
  }

  /**
   * Rate-limited `queue`'s window has room, but its concurrency limit's slots are all held: the
   * claims blocked on its window wait for a slot now, woken by a lease end as any claim blocked on
   * the queue's limit is; if a lease of it ended since `since` (leaseEndMark, taken before the
   * claim that found this), the longest waiting looks at once.
   */
  moveToSlots(queue: string, since: number): void {
    const waiting = this.rateBlockedOn.get(queue);
    if (!waiting) return;
    this.rateBlockedOn.delete(queue);
    for (const ticket of waiting) {
      ticket.rateBlockedOn = ticket.rateBlockedOn.filter((q) => q !== queue);
      if (!ticket.blockedOn.includes(queue)) ticket.blockedOn = [...ticket.blockedOn, queue];
      block(this.blockedOn, queue, ticket);
    }
    // That lease end woke none of them (they waited for the window then).
    if (since < this.forgottenBefore || (this.lastLeaseEnd.get(queue) ?? -1) >= since) this.passOn(queue);
  }

  /**
   * Rate-limited `queue` holds no task due now that anyone may take: the claims blocked on its
   * window wait as unblocked ones do (its next task wakes one), not for room there.
   */
  unblockRate(queue: string): void {
    const waiting = this.rateBlockedOn.get(queue);
    if (!waiting) return;
    this.rateBlockedOn.delete(queue);
    for (const ticket of waiting) ticket.rateBlockedOn = ticket.rateBlockedOn.filter((q) => q !== queue);
  }

  /**
   * Wakes the longest waiting claim blocked on rate-limited `queue`'s full window, for room in it:
   * room that came (rateFreesAt), or that a claim woken for it left (it took a task there and room
   * is left, or took none: TaskService.claim).
   */
  passOnRoom(queue: string): void {
    wakeOne(this.rateBlockedOn, queue, true);
  }

  /**
   * Rate-limited `queue`'s window has room for a claim at `at` (Unix ms): then the longest waiting
   * claim blocked on it looks (passOnRoom), now if `at` is past. One timer a queue, at the earliest
   * time reported: every claim of the queue reports it, and the claim woken reports the next.
   */
  rateFreesAt(queue: string, at: number): void {
    const wait = at - Date.now();
    if (wait <= 0) return this.passOnRoom(queue);
    const armed = this.rateTimers.get(queue);
    if (armed !== undefined && armed.at <= at) return;
    if (armed !== undefined) clearTimeout(armed.timer);
    const timer = setTimeout(() => {
      this.rateTimers.delete(queue);
      this.passOnRoom(queue);
    }, wait);
    // A timer with nothing blocked on its queue wakes nobody; it never keeps the process up.
    timer.unref();
    this.rateTimers.set(queue, { at, timer });
  }

  /**
   * A task's wake-up a claim took and will not look at (its agent is cordoned: woken before it
   * was, or while its attempt learned so; or it leaves: its time ran out, its client went) goes to
   * the waiters it would have gone to instead, chosen as observe chooses them.
   */
  handOn(task: Availability): void {
    this.wakeFor(task, Date.now());
  }

  /**
   * A queue's tasks are claimable again (its resume, each chunk of its held tasks let go after
   * it, or held for its limit: TaskService.settleHolds; a limit set or removed): every waiter that could take from it looks, since
   * the tasks back may be ones only some of them can take.
   */
  wakeQueue(queue: string): void {
    for (const ticket of this.tickets) if (!ticket.cordoned && (ticket.queues === null || ticket.queues.has(queue))) ticket.notify();
  }

  /** From the event bus: wakes the waiters the committed events concern. */
  observe(events: readonly CoordinationEvent[]): void {
    if (this.tickets.size === 0) return;
    const now = Date.now();
    // By queue, the slots these events freed: the leases they ended, less those taken back in the
    // write that ended them (a complete-and-claim takes the next task of the queue it completed
    // one of; a steal ends a lease and takes it over). Any other claim took a slot that was free
    // before: a claim parked since then was woken for it, or found it free.
    const freed = new Map<string, number>();
    const count = (queue: unknown, by: number) => {
      if (typeof queue === "string") freed.set(queue, (freed.get(queue) ?? 0) + by);
    };
    /** The ends seen so far in these events, by task: what a take in the same write pairs with (once). */
    const ended = new Map<string, { type: string; queue: unknown }>();
    /** Tasks taken in these events and not ended since: one dead-lettered or retried without a lease end event (a poisoned payload found by its claim) frees its slot. */
    const takenHere = new Set<string>();
    /** The tasks these events made available now that only some waiters may take, by queue, capability and target: a second alike wakes no one the first did not. */
    const woken = new Set<string>();
    for (const event of events) {
      if (AGENT_CHANGES.has(event.type)) {
        const change = payloadFields(event);
        // An implicit registration (by the agent's own first claim) grants no capability.
        if (change.implicit === true) continue;
        // A cordon that lapsed was read as lifted at its end already: only claims still marked cordoned (whose end timer has not fired) need look.
        const lapsed = event.type === "agent.uncordoned" && change.lapsed === true;
        for (const ticket of this.tickets) if (ticket.interest.agentId === change.agentId && (!lapsed || ticket.cordoned)) ticket.notify();
        continue;
      }
      if (event.type === "task.claimed") {
        const { agentId, queue, taskId, stolenFrom, after } = payloadFields(event);
        const endOf = typeof after === "string" ? after : stolenFrom !== undefined && typeof taskId === "string" ? taskId : undefined;
        const pairedEnd = endOf === undefined ? undefined : ended.get(endOf);
        if (pairedEnd && pairedEnd.queue === queue && pairedEnd.type === (typeof after === "string" ? "task.completed" : "task.lease_expired")) {
          count(queue, -1);
          ended.delete(endOf!);
        }
        if (typeof taskId === "string") takenHere.add(taskId);
        for (const ticket of this.tickets) if (ticket.interest.idempotencyKey !== undefined && ticket.interest.agentId === agentId) ticket.notifyAgentClaimed();
        continue;
      }
      if (QUEUE_CHANGES.has(event.type)) {
        const { queue } = payloadFields(event);
        if (typeof queue === "string") this.wakeQueue(queue);
        continue;
      }
      // A cancel ends a lease only when the task was claimed (not one waiting, pending or dead-lettered).
      if (LEASE_ENDS.has(event.type) && (event.type !== "task.cancelled" || payloadFields(event).previousStatus === "claimed")) {
        const { queue, taskId } = payloadFields(event);
        count(queue, 1);
        if (typeof taskId === "string") {
          ended.set(taskId, { type: event.type, queue });
          takenHere.delete(taskId);
        }
      } else if (event.type === "task.dead_lettered" || event.type === "task.retried") {
        const { queue, taskId } = payloadFields(event);
        if (typeof taskId === "string" && takenHere.delete(taskId)) count(queue, 1);
      }
      if (!AVAILABILITY.has(event.type)) continue;
      const task = availabilityOf(event);
      if (task) this.wakeFor(task, now, woken);
    }
    for (const [queue, slots] of freed) for (let i = 0; i < slots; i++) this.markLeaseEnd(queue);
  }

  /** Wakes the waiters `task` concerns: one when any waiter may take it, else each that could; those it falls due for later, then. */
  private wakeFor(task: Availability, now: number, woken?: Set<string>): void {
    const later = task.runAt !== undefined && task.runAt > now;
    const anyone = task.capability === null && task.targetAgentId === null;
    // Every waiter that could take such a task was woken by the first alike (an enqueueMany's
    // thousand tasks of one capability): the others need not go through them all again.
    if (woken !== undefined && !later && !anyone) {
      const alike = JSON.stringify([task.queue, task.capability, task.targetAgentId]);
      if (woken.has(alike)) return;
      woken.add(alike);
    }
    for (const ticket of this.tickets) {
      // Blocked by the queue's limit or its rate: a task more there does not free a slot (a lease
      // end wakes it), nor make room in a window (time does). A cordoned agent's takes none.
      if (ticket.cordoned || ticket.blockedOn.includes(task.queue) || ticket.rateBlockedOn.includes(task.queue) || !couldTake(ticket, task)) continue;
      if (later) ticket.dueBy(task.runAt!);
      else if (!ticket.isWoken) {
        ticket.wokenByTask = task;
        ticket.notify();
        // One task any waiter can take needs one waiter; the others keep waiting.
        if (anyone) break;
      }
    }
  }
}

function availabilityOf(event: CoordinationEvent): Availability | null {
  const p = payloadFields(event);
  // A task enqueued or requeued waiting (for its dependencies, or for its turn behind a task of its
  // orderingKey: waitingFor 0) is claimable only at its task.ready.
  if (typeof p.queue !== "string" || p.waitingFor !== undefined) return null;
  // A task given another priority only is no more claimable than it was; one whose expiry moved
  // may be again (an expired task not cancelled yet, given a later expiry or none).
  // A dedupe answered by a task is no more claimable than it was, unless its due time or expiry
  // moved (dedupe.replace, which takes only a task that waits: one that runs never moves, so it
  // ends here too).
  if ((event.type === "task.updated" || event.type === "task.deduplicated") && p.runAt === p.previousRunAt && p.expiresAt === undefined) return null;
  const runAt = typeof p.runAt === "string" ? Date.parse(p.runAt) : undefined;
  return {
    queue: p.queue,
    capability: typeof p.capability === "string" ? p.capability : null,
    targetAgentId: typeof p.targetAgentId === "string" ? p.targetAgentId : null,
    runAt: Number.isNaN(runAt) ? undefined : runAt,
  };
}

/** Whether the waiting claim might take the task (unknown capabilities count as yes: it will look). */
function couldTake(ticket: ClaimTicket, task: Availability): boolean {
  if (ticket.queues !== null && !ticket.queues.has(task.queue)) return false;
  if (task.targetAgentId !== null && task.targetAgentId !== ticket.interest.agentId) return false;
  if (task.capability !== null && ticket.capabilities !== undefined && !ticket.capabilities.has(task.capability)) return false;
  return true;
}

/** Adds `ticket` to those blocked on `queue` in `map`. */
function block(map: Map<string, Set<ClaimTicket>>, queue: string, ticket: ClaimTicket): void {
  let waiting = map.get(queue);
  if (!waiting) map.set(queue, (waiting = new Set()));
  waiting.add(ticket);
}

function unblock(map: Map<string, Set<ClaimTicket>>, queue: string, ticket: ClaimTicket): void {
  const waiting = map.get(queue);
  if (!waiting) return;
  waiting.delete(ticket);
  if (waiting.size === 0) map.delete(queue);
}

/** Wakes the longest waiting ticket blocked on `queue` in `map` that is not woken already. */
function wakeOne(map: Map<string, Set<ClaimTicket>>, queue: string, byRate: boolean): void {
  const waiting = map.get(queue);
  if (!waiting) return;
  for (const ticket of waiting) {
    if (ticket.isWoken) continue;
    ticket.wokenFor = { queue, byRate };
    ticket.notify();
    return;
  }
}
