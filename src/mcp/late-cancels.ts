// A cancel (notifications/cancelled) may reach the server after it sent the request's answer: the
// host, having cancelled, drops the answer when it arrives (MCP: the sender of a cancel ignores
// any response that follows it). A claim_task, or a complete_task's next, answered that way
// handed a lease to an agent that was never told: it waited out its lease and was charged an
// attempt. Each session keeps, for a while, the leases (and named locks' grants, semaphores' permits) its recent answers
// handed out, and a late cancel gives them back as an answer never delivered is
// (tasks.releaseUndelivered, locks.giveBackUndelivered, semaphores.giveBackUndelivered: a lease or grant that moved on, or that
// another answer handed out too, stays). Only an answer that arrived: one lost on its way was given
// back by delivery confirmation already (twice would take a resent call's answer away); one still
// on its way when the cancel comes is given back once it arrives.

/** A lease an answer handed out. */
export interface HandedLease {
  id: string;
  leaseToken: number;
}

/** A named lock's grant (acquire_lock) or a semaphore's permit (acquire_permit) an answer handed out. */
export interface HandedLock {
  name: string;
  agentId: string;
  fencingToken: number;
}

/** What one answer handed out. */
export interface Handed {
  leases: HandedLease[];
  locks: HandedLock[];
  permits: HandedLock[];
}

/** How long after its answer a cancel still gives the answer's leases back, in ms: a cancel crossing the answer on the wire comes well within it. */
export const LATE_CANCEL_MS = 60_000;
/** The answers a session remembers, the newest: a host cancels what it is waiting for, not old calls. */
const REMEMBERED = 64;

export class LateCancels {
  private readonly handed = new Map<string | number, { handed: Handed; at: number; delivered: boolean; cancelled: boolean }>();
  /** Requests known delivered before their handouts were noted (an answer with no HTTP response to wait for). */
  private readonly deliveredEarly = new Set<string | number>();

  /** Request `id`'s answer handed out `handed`. */
  note(id: string | number, handed: Handed, now = Date.now()): void {
    this.handed.delete(id);
    this.handed.set(id, { handed, at: now, delivered: this.deliveredEarly.delete(id), cancelled: false });
    if (this.handed.size > REMEMBERED) this.handed.delete(this.handed.keys().next().value!);
  }

  /**
   * Request `id`'s answer is known delivered: only then may a cancel give back what it handed out.
   * One that was lost gave it back already (delivery confirmation); a second give-back would take
   * an answer away from another call that handed out the same grant or lease (a call sent again).
   * Returns what to give back now: what it handed out, when a cancel of it came while it was on its way.
   */
  delivered(id: string | number): Handed | undefined {
    const entry = this.handed.get(id);
    if (entry === undefined) {
      this.deliveredEarly.add(id);
      if (this.deliveredEarly.size > REMEMBERED) this.deliveredEarly.delete(this.deliveredEarly.values().next().value!);
      return undefined;
    }
    // Cancelled while it was on its way (a large answer the client was still reading): it arrived,
    // and its host drops it, so what it handed out goes back now.
    if (entry.cancelled) {
      this.handed.delete(id);
      return entry.handed;
    }
    entry.delivered = true;
    return undefined;
  }

  /**
   * What request `id`'s delivered answer handed out, if it did so within LATE_CANCEL_MS; each
   * once. An answer whose delivery is not decided yet (still on the wire) is marked cancelled:
   * delivered() hands what it handed out back if it arrives (one lost was given back already).
   */
  take(id: string | number, now = Date.now()): Handed | undefined {
    const entry = this.handed.get(id);
    if (entry === undefined) return undefined;
    if (!entry.delivered) {
      entry.cancelled = true;
      return undefined;
    }
    this.handed.delete(id);
    return now - entry.at <= LATE_CANCEL_MS ? entry.handed : undefined;
  }
}
