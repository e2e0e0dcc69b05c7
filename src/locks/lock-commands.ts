// Named locks, as the database writer thread runs them: every acquire, renewal and release is one
// write that commits with its event (lock.acquired, lock.released, lock.expired), so a lock is
// granted to one agent at a time whichever server process on the file answers. A grant whose
// lease ran out is free: the first write to meet it (an acquire or renewal of its name, the expiry
// job) takes it away with its lock.expired.
import { jsonTextBytes, withinBudget } from "../db/answer-budget.js";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { MAX_LOCK_NAME, type Acquired, type ForceReleased, type ForceReleaseRequest, type Lock, type Released } from "./lock-schemas.js";
import { lockHeld, type LockRow, type LockStore } from "./lock-store.js";

/** What named locks and semaphores share: the event log, one bound on what an agent holds, its signs of life. */
export interface GrantDeps {
  events: EventStore;
  /** The most locks and semaphore permits one agent may hold at once (maxLocksPerAgent). */
  maxLocksPerAgent: number;
  /** How many locks and semaphore permits `agentId` holds at `now`: what maxLocksPerAgent bounds. */
  grantsHeldBy: (agentId: string, now: number) => number;
  /** A sign of life of `agentId`, registering it if unknown (as a claim does): its deregistration then finds what it holds. */
  noteAgent: (ctx: WriteContext, agentId: string) => void;
}

export interface LockDeps extends GrantDeps {
  locks: LockStore;
}

/** A lock's answer less its name and holder, over tRPC (superjson's meta names its two dates' paths) or REST, with room to spare. */
const LOCK_FIXED_BYTES = 400;
/** A page's braces, field names and superjson's envelope, with room to spare. */
const PAGE_ENVELOPE_BYTES = 200;
/** What a held lock weighs in an answer. */
const lockAnswerBytes = (row: LockRow): number => LOCK_FIXED_BYTES + jsonTextBytes(row.name) + jsonTextBytes(row.holder);

/** lock.released's reason for a grant given back because no answer that handed it out reached its caller. */
export const UNDELIVERED = "answer not delivered";

/** LIMIT_EXCEEDED when `agentId` holds maxLocksPerAgent locks and permits already: a refusal before anything is written. */
export function refuseOverMaxGrants(d: Pick<GrantDeps, "maxLocksPerAgent" | "grantsHeldBy">, agentId: string, now: number): void {
  const held = d.grantsHeldBy(agentId, now);
  if (held < d.maxLocksPerAgent) return;
  throw new CoordinationError("LIMIT_EXCEEDED", `agent ${JSON.stringify(agentId)} holds ${held} locks and semaphore permits already (maxLocksPerAgent ${d.maxLocksPerAgent}): release one first`);
}

export const iso = (ms: number): string => new Date(Number(ms)).toISOString();

/** A lock as answered: `row` when held at `now`, else free. */
export function toLock(name: string, row: LockRow | undefined, now: number): Lock {
  if (!lockHeld(row, now)) return { name, held: false, holder: null, fencingToken: null, acquiredAt: null, expiresAt: null, leaseMs: null };
  return {
    name,
    held: true,
    holder: row.holder,
    fencingToken: Number(row.fencingToken),
    acquiredAt: new Date(Number(row.acquiredAt)),
    expiresAt: new Date(Number(row.expiresAt)),
    leaseMs: Number(row.leaseMs),
  };
}

export function lockCommands(d: LockDeps) {
  /** Takes away a grant whose lease ran out, with its lock.expired. */
  const expire = (ctx: WriteContext, row: LockRow): void => {
    d.locks.remove(row.name, row.fencingToken);
    d.events.appendSystem(ctx, "lock.expired", { name: row.name, agentId: row.holder, fencingToken: Number(row.fencingToken), expiredAt: iso(row.expiresAt), heldMs: Number(row.expiresAt) - Number(row.acquiredAt) });
  };

  /** The grant of `name` held now, or undefined; one whose lease ran out is taken away here. */
  const current = (ctx: WriteContext, name: string): LockRow | undefined => {
    const row = d.locks.get(name);
    if (row === undefined || lockHeld(row, ctx.now)) return row;
    expire(ctx, row);
    return undefined;
  };

  /** Ends grant `row` by its holder's release, an operator's or its agent's deregistration, with its lock.released. */
  const release = (ctx: WriteContext, row: LockRow, how: { releasedBy?: string | null; forced?: boolean; reason?: string }): void => {
    d.locks.remove(row.name, row.fencingToken);
    d.events.appendSystem(ctx, "lock.released", {
      name: row.name,
      agentId: row.holder,
      fencingToken: Number(row.fencingToken),
      heldMs: ctx.now - Number(row.acquiredAt),
      ...(how.forced ? { forced: true as const, releasedBy: how.releasedBy ?? null } : {}),
      ...(how.reason !== undefined ? { reason: how.reason } : {}),
    });
  };

  /**
   * Whether `agentId` naming `fencingToken` (or none) speaks for grant `row`: by its token; without
   * one, a grant taken without an idempotencyKey (the agent's keyless acquires share it). A grant
   * taken with a key is one acquire's among the agent's: another acquire of the agent, which knows
   * no token, must not renew or release it.
   */
  const speaksFor = (row: LockRow, agentId: string, fencingToken: number | undefined): boolean =>
    row.holder === agentId && (fencingToken !== undefined ? Number(row.fencingToken) === fencingToken : row.idempotencyKey === null);

  /** The LEASE_CONFLICT of a renewal by an agent that does not hold `name` (under `fencingToken`). */
  const notHeld = (name: string, agentId: string, fencingToken: number | undefined, row: LockRow | undefined, now: number): CoordinationError => {
    // A grant of its agent's taken with a key, named without its token: the caller may be that
    // acquire, or another of the agent's; either way the grant holds, and is named by its token.
    const keyed = row !== undefined && row.holder === agentId && fencingToken === undefined && row.idempotencyKey !== null;
    const grant = fencingToken === undefined ? "" : ` under fencing token ${fencingToken}`;
    const now_ = row === undefined ? "it is free" : `agent ${JSON.stringify(row.holder)} holds it under fencing token ${row.fencingToken}`;
    const message = keyed
      ? `lock ${JSON.stringify(name)} was taken by an acquire of agent ${JSON.stringify(agentId)} with an idempotencyKey: that acquire renews it with its fencingToken, and it is held still`
      : `agent ${JSON.stringify(agentId)} does not hold lock ${JSON.stringify(name)}${grant} (released, by it or by an operator, or its lease ran out): ${now_}`;
    return new CoordinationError("LEASE_CONFLICT", message, {
      name,
      agentId,
      ...(fencingToken === undefined ? {} : { fencingToken }),
      lock: toLock(name, row, now),
    });
  };

  return {
    /**
     * Grants `name` to `agentId` for `leaseMs` when it is free (one whose lease ran out is). One
     * the agent holds under the same `idempotencyKey` (or none, as the grant had none) is answered
     * as held, renewed from now by `leaseMs` (its answer may have been lost: the same grant, the
     * same fencing token). Held otherwise (another agent, or another key): not acquired, the lock
     * as it is. LIMIT_EXCEEDED when the agent holds maxLocksPerAgent locks already.
     */
    "locks.acquire": (ctx: WriteContext, request: { name: string; agentId: string; leaseMs: number; idempotencyKey?: string | undefined }): Acquired => {
      const key = request.idempotencyKey ?? null;
      // Looked at before anything is written: a refusal must leave the write clean (one that
      // changed rows before it throws costs its whole batch a rerun, savepoint by savepoint).
      const row = d.locks.get(request.name);
      const held = lockHeld(row, ctx.now);
      if (!held) refuseOverMaxGrants(d, request.agentId, ctx.now);
      d.noteAgent(ctx, request.agentId);
      if (held && row.holder === request.agentId && row.idempotencyKey === key) {
        return { acquired: true, lock: toLock(request.name, d.locks.renew(row, request.leaseMs, ctx.now, true), ctx.now) };
      }
      if (held) return { acquired: false, lock: toLock(request.name, row, ctx.now) };
      if (row !== undefined) expire(ctx, row);
      const granted = d.locks.grant(request.name, request.agentId, request.leaseMs, ctx.now, key);
      d.events.appendSystem(ctx, "lock.acquired", { name: granted.name, agentId: granted.holder, fencingToken: granted.fencingToken, expiresAt: iso(granted.expiresAt) });
      return { acquired: true, lock: toLock(request.name, granted, ctx.now) };
    },

    /**
     * Renews `agentId`'s grant of `name` from now, by `leaseMs` (null: the length it was acquired
     * or last renewed with); never past `maxLeaseMs` (a grant taken before the setting was
     * lowered renews by its own length cut to it, as a task's heartbeat does). LEASE_CONFLICT when it holds none (under `fencingToken`, when given;
     * a grant taken with an idempotencyKey is named by its token only: speaksFor): released, or its
     * lease ran out (then the lock is free, or another agent's). A refusal
     * writes nothing (a grant run out is the expiry job's, or the next acquire's, to take away).
     */
    "locks.renew": (ctx: WriteContext, request: { name: string; agentId: string; fencingToken?: number | undefined; leaseMs: number | null; maxLeaseMs: number }): Lock => {
      const stored = d.locks.get(request.name);
      const row = lockHeld(stored, ctx.now) ? stored : undefined;
      if (row === undefined || !speaksFor(row, request.agentId, request.fencingToken)) throw notHeld(request.name, request.agentId, request.fencingToken, row, ctx.now);
      d.noteAgent(ctx, request.agentId);
      return toLock(request.name, d.locks.renew(row, Math.min(request.leaseMs ?? Number(row.leaseMs), request.maxLeaseMs), ctx.now), ctx.now);
    },

    /**
     * An answer that handed grant `fencingToken` of `name` to `agentId` did not reach its caller
     * (delivery confirmation, an MCP call cancelled after its answer): the grant goes back, with
     * its lock.released (reason "answer not delivered"), unless another answer handed it out too
     * (an acquire sent again with its key), which may have arrived: then one answer fewer. A grant
     * gone already, or run out, is left as it is. Whether it was released.
     */
    "locks.giveBackUndelivered": (ctx: WriteContext, request: { name: string; agentId: string; fencingToken: number }): boolean => {
      const row = d.locks.get(request.name);
      if (!lockHeld(row, ctx.now) || row.holder !== request.agentId || Number(row.fencingToken) !== request.fencingToken) return false;
      if (Number(row.answers) > 1) {
        d.locks.answerLost(row);
        return false;
      }
      release(ctx, row, { reason: UNDELIVERED });
      return true;
    },

    /**
     * Ends `agentId`'s grant of `name` (that of `fencingToken`, when given; one taken with an
     * idempotencyKey, by its token only): free for anyone from this write. One it does not hold is
     * answered `released: false`, nothing changed: a release
     * sent again (its answer lost) finds it so.
     */
    "locks.release": (ctx: WriteContext, request: { name: string; agentId: string; fencingToken?: number | undefined }): Released => {
      const row = current(ctx, request.name);
      if (row === undefined || !speaksFor(row, request.agentId, request.fencingToken)) return { released: false, lock: toLock(request.name, row, ctx.now) };
      release(ctx, row, {});
      return { released: true, lock: toLock(request.name, undefined, ctx.now) };
    },

    /** An operator ends whichever grant holds `name` (its holder's next renewal is refused), and says whose it was. One free is answered `released: false`. */
    "locks.forceRelease": (ctx: WriteContext, request: ForceReleaseRequest & { releasedBy: string | null }): ForceReleased => {
      const row = current(ctx, request.name);
      if (row === undefined) return { released: false, holder: null, fencingToken: null, lock: toLock(request.name, undefined, ctx.now) };
      release(ctx, row, { forced: true, releasedBy: request.releasedBy, ...(request.reason === undefined ? {} : { reason: request.reason }) });
      return { released: true, holder: row.holder, fencingToken: Number(row.fencingToken), lock: toLock(request.name, undefined, ctx.now) };
    },

    /** Ends every lock `agentId` holds (its deregistration), each with its lock.released (`reason`). How many. */
    "locks.releaseAllOf": (ctx: WriteContext, request: { agentId: string; reason: string }): number => {
      const rows = d.locks.allHeldBy(request.agentId, ctx.now);
      for (const row of rows) release(ctx, row, { reason: request.reason });
      return rows.length;
    },

    /** Takes away up to `limit` grants whose lease ran out, each with its lock.expired (the expiry job). How many. */
    "locks.expire": (ctx: WriteContext, limit: number): number => {
      const rows = d.locks.runOut(ctx.now, limit);
      for (const row of rows) expire(ctx, row);
      return rows.length;
    },
  };
}

/** The reader's side: what a lock is now, the locks held, whether the expiry job has work. */
export function lockQueries(d: { locks: LockStore; maxResponseBytes: number }) {
  // A page's room: the answer less its envelope and its nextCursor (the longest name, escaped).
  const budget = d.maxResponseBytes - (PAGE_ENVELOPE_BYTES + 6 * MAX_LOCK_NAME);
  return {
    "locks.get": (request: { name: string; now: number }): Lock => toLock(request.name, d.locks.get(request.name), request.now),
    /** The locks held, by name, up to `limit` and the answer's byte budget: a page cut short by either has a nextCursor. */
    "locks.page": (request: { holder?: string | undefined; prefix?: string | undefined; after?: string | undefined; limit: number; now: number }): { items: Lock[]; nextCursor: string | null } => {
      const rows = d.locks.page(request, request.now);
      const fit = withinBudget(rows.slice(0, request.limit), lockAnswerBytes, budget);
      const items = fit.rows.map((row) => toLock(row.name, row, request.now));
      const more = fit.truncated || rows.length > request.limit;
      return { items, nextCursor: more ? items[items.length - 1]!.name : null };
    },
    "locks.anyRunOut": (now: number): boolean => d.locks.anyRunOut(now),
    "locks.countHeld": (now: number): number => d.locks.countHeld(now),
  };
}
