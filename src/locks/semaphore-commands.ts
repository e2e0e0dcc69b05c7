// Semaphores, as the database writer thread runs them: every acquire, renewal and release is one
// write that commits with its event (semaphore.acquired, semaphore.released, semaphore.expired), so
// no more permits of a name are held at once than its holders' smallest limit, whichever server
// process on the file answers. A permit whose lease ran out is free: the first write to meet it
// (an acquire of its name, the expiry job) takes it away with its semaphore.expired.
import { jsonTextBytes, withinBudget } from "../db/answer-budget.js";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError } from "../errors.js";
import { iso, refuseOverMaxGrants, UNDELIVERED, type GrantDeps } from "./lock-commands.js";
import { MAX_LOCK_NAME } from "./lock-schemas.js";
import type { Permit, PermitAcquired, PermitReleased, PermitsForceReleased, Semaphore, SemaphoreState } from "./semaphore-schemas.js";
import { permitHeld, type PermitRow, type SemaphoreStore } from "./semaphore-store.js";

export interface SemaphoreDeps extends GrantDeps {
  permits: SemaphoreStore;
}

/** A permit's answer less its name and holder, over tRPC (superjson's meta names its two dates' paths) or REST, with room to spare. */
const PERMIT_FIXED_BYTES = 400;
/** An answer's braces, field names, the semaphore's state and superjson's envelope, with room to spare. */
const ENVELOPE_BYTES = 400;
/** What a permit weighs in an answer. */
const permitAnswerBytes = (row: PermitRow): number => PERMIT_FIXED_BYTES + jsonTextBytes(row.name) + jsonTextBytes(row.holder);

export function toPermit(row: PermitRow): Permit {
  return {
    name: row.name,
    holder: row.holder,
    fencingToken: Number(row.fencingToken),
    limit: Number(row.permitLimit),
    acquiredAt: new Date(Number(row.acquiredAt)),
    expiresAt: new Date(Number(row.expiresAt)),
    leaseMs: Number(row.leaseMs),
  };
}

/** A page's cursor: the last permit's token and name (the token first: it holds no colon). */
export const permitCursor = (row: { name: string; fencingToken: number }): string => `${row.fencingToken}:${row.name}`;

/** The permit a cursor names; undefined: none given. The schema has checked its shape. */
export function parsePermitCursor(cursor: string | undefined): { name: string; fencingToken: number } | undefined {
  if (cursor === undefined) return undefined;
  const colon = cursor.indexOf(":");
  return { fencingToken: Number(cursor.slice(0, colon)), name: cursor.slice(colon + 1) };
}

/** Semaphore `name` as it is at `now`, in few bytes. */
function stateOf(store: SemaphoreStore, name: string, now: number): SemaphoreState {
  const { held, limit, nextExpiresAt } = store.state(name, now);
  return { name, held: Number(held), limit: limit === null ? null : Number(limit), nextExpiresAt: nextExpiresAt === null ? null : new Date(Number(nextExpiresAt)) };
}

export function semaphoreCommands(d: SemaphoreDeps) {
  const state = (ctx: WriteContext, name: string): SemaphoreState => stateOf(d.permits, name, ctx.now);

  /** Takes away a permit whose lease ran out, with its semaphore.expired. */
  const expire = (ctx: WriteContext, row: PermitRow): void => {
    d.permits.remove(row.name, row.fencingToken);
    d.events.appendSystem(ctx, "semaphore.expired", {
      name: row.name,
      agentId: row.holder,
      fencingToken: Number(row.fencingToken),
      expiredAt: iso(row.expiresAt),
      heldMs: Number(row.expiresAt) - Number(row.acquiredAt),
    });
  };

  /** Ends permit `row` by its holder's release, an operator's or its agent's deregistration, with its semaphore.released. */
  const release = (ctx: WriteContext, row: PermitRow, how: { releasedBy?: string | null; forced?: boolean; reason?: string }): void => {
    d.permits.remove(row.name, row.fencingToken);
    d.events.appendSystem(ctx, "semaphore.released", {
      name: row.name,
      agentId: row.holder,
      fencingToken: Number(row.fencingToken),
      heldMs: ctx.now - Number(row.acquiredAt),
      ...(how.forced ? { forced: true as const, releasedBy: how.releasedBy ?? null } : {}),
      ...(how.reason !== undefined ? { reason: how.reason } : {}),
    });
  };

  /** The permit `fencingToken` of `name` that `agentId` holds at `now`; undefined: none (released, run out, another's). */
  const heldPermit = (name: string, agentId: string, fencingToken: number, now: number): PermitRow | undefined => {
    const row = d.permits.get(name, fencingToken);
    return row !== undefined && row.holder === agentId && permitHeld(row, now) ? row : undefined;
  };

  return {
    /**
     * Grants `agentId` a permit of `name` for `leaseMs` while fewer are held than the smallest
     * limit among `limit` and those of the permits held (one whose lease ran out is taken away
     * here). One the agent holds under the same `idempotencyKey` is answered as held, renewed from
     * now (its answer may have been lost: the same permit, the same fencing token); asked with
     * another limit, IDEMPOTENCY_MISMATCH. Full: not acquired, the semaphore as it is.
     * LIMIT_EXCEEDED when the agent holds maxLocksPerAgent locks and permits already.
     */
    "semaphores.acquire": (ctx: WriteContext, request: { name: string; agentId: string; limit: number; leaseMs: number; idempotencyKey?: string | undefined }): PermitAcquired => {
      const key = request.idempotencyKey ?? null;
      // Looked at before anything is written: a refusal must leave the write clean.
      const mine = key === null ? undefined : d.permits.heldByKey(request.name, request.agentId, key, ctx.now);
      if (mine !== undefined) {
        // The same key asking for another limit is another request, not this one sent again.
        if (Number(mine.permitLimit) !== request.limit) {
          throw new CoordinationError(
            "IDEMPOTENCY_MISMATCH",
            `idempotencyKey ${JSON.stringify(key)} of agent ${JSON.stringify(request.agentId)} was used for permit ${mine.fencingToken} of semaphore ${JSON.stringify(request.name)} with a different limit (${mine.permitLimit}, not ${request.limit})`,
            { name: request.name, fencingToken: Number(mine.fencingToken), differs: ["limit"] },
          );
        }
        d.noteAgent(ctx, request.agentId);
        const renewed = d.permits.renew(mine, request.leaseMs, ctx.now, true);
        return { acquired: true, permit: toPermit(renewed), semaphore: state(ctx, request.name) };
      }
      const current = d.permits.state(request.name, ctx.now);
      const bound = current.limit === null ? request.limit : Math.min(request.limit, Number(current.limit));
      if (Number(current.held) >= bound) {
        d.noteAgent(ctx, request.agentId);
        return { acquired: false, permit: null, semaphore: state(ctx, request.name) };
      }
      refuseOverMaxGrants(d, request.agentId, ctx.now);
      d.noteAgent(ctx, request.agentId);
      for (const row of d.permits.runOutOf(request.name, ctx.now)) expire(ctx, row);
      const granted = d.permits.grant(request.name, request.agentId, request.limit, request.leaseMs, ctx.now, key);
      const semaphore = state(ctx, request.name);
      d.events.appendSystem(ctx, "semaphore.acquired", {
        name: granted.name,
        agentId: granted.holder,
        fencingToken: granted.fencingToken,
        limit: granted.permitLimit,
        held: semaphore.held,
        expiresAt: iso(granted.expiresAt),
      });
      return { acquired: true, permit: toPermit(granted), semaphore };
    },

    /**
     * Renews `agentId`'s permit `fencingToken` of `name` from now, by `leaseMs` (null: the length
     * it was acquired or last renewed with); never past `maxLeaseMs` (a permit taken before the
     * setting was lowered renews by its own length cut to it, as a task's heartbeat does). LEASE_CONFLICT when it holds none under that token:
     * released (by it or an operator), or its lease ran out. A refusal writes nothing.
     */
    "semaphores.renew": (ctx: WriteContext, request: { name: string; agentId: string; fencingToken: number; leaseMs: number | null; maxLeaseMs: number }): Permit => {
      const row = heldPermit(request.name, request.agentId, request.fencingToken, ctx.now);
      if (row === undefined) {
        throw new CoordinationError(
          "LEASE_CONFLICT",
          `agent ${JSON.stringify(request.agentId)} holds no permit of semaphore ${JSON.stringify(request.name)} under fencing token ${request.fencingToken} (released, by it or by an operator, or its lease ran out): acquire again`,
          { name: request.name, agentId: request.agentId, fencingToken: request.fencingToken, semaphore: state(ctx, request.name) },
        );
      }
      d.noteAgent(ctx, request.agentId);
      return toPermit(d.permits.renew(row, Math.min(request.leaseMs ?? Number(row.leaseMs), request.maxLeaseMs), ctx.now));
    },

    /**
     * An answer that handed permit `fencingToken` of `name` to `agentId` did not reach its caller:
     * the permit goes back, with its semaphore.released (reason "answer not delivered"), unless
     * another answer handed it out too (an acquire sent again with its key): then one answer fewer.
     * A permit gone already, or run out, is left as it is. Whether it was released.
     */
    "semaphores.giveBackUndelivered": (ctx: WriteContext, request: { name: string; agentId: string; fencingToken: number }): boolean => {
      const row = heldPermit(request.name, request.agentId, request.fencingToken, ctx.now);
      if (row === undefined) return false;
      if (Number(row.answers) > 1) {
        d.permits.answerLost(row);
        return false;
      }
      release(ctx, row, { reason: UNDELIVERED });
      return true;
    },

    /** Ends `agentId`'s permit `fencingToken` of `name`: free for anyone from this write. One it does not hold is answered `released: false`, nothing changed (a release sent again finds it so). */
    "semaphores.release": (ctx: WriteContext, request: { name: string; agentId: string; fencingToken: number }): PermitReleased => {
      const row = heldPermit(request.name, request.agentId, request.fencingToken, ctx.now);
      if (row !== undefined) release(ctx, row, {});
      return { released: row !== undefined, semaphore: state(ctx, request.name) };
    },

    /** An operator ends permit `fencingToken` of `name`, or every permit of it held (their holders' next renewals are refused). */
    "semaphores.forceRelease": (ctx: WriteContext, request: { name: string; fencingToken?: number | undefined; reason?: string | undefined; releasedBy: string | null }): PermitsForceReleased => {
      let rows: PermitRow[];
      if (request.fencingToken === undefined) rows = d.permits.heldOf(request.name, ctx.now, Number.MAX_SAFE_INTEGER);
      else {
        const row = d.permits.get(request.name, request.fencingToken);
        rows = row !== undefined && permitHeld(row, ctx.now) ? [row] : [];
      }
      for (const row of rows) release(ctx, row, { forced: true, releasedBy: request.releasedBy, ...(request.reason === undefined ? {} : { reason: request.reason }) });
      return { released: rows.length, semaphore: state(ctx, request.name) };
    },

    /** Ends every permit `agentId` holds (its deregistration), each with its semaphore.released (`reason`). How many. */
    "semaphores.releaseAllOf": (ctx: WriteContext, request: { agentId: string; reason: string }): number => {
      const rows = d.permits.allHeldBy(request.agentId, ctx.now);
      for (const row of rows) release(ctx, row, { reason: request.reason });
      return rows.length;
    },

    /** Takes away up to `limit` permits whose lease ran out, each with its semaphore.expired (the expiry job). How many. */
    "semaphores.expire": (ctx: WriteContext, limit: number): number => {
      const rows = d.permits.runOut(ctx.now, limit);
      for (const row of rows) expire(ctx, row);
      return rows.length;
    },
  };
}

/** The reader's side: what a semaphore is now, the permits held, whether the expiry job has work. */
export function semaphoreQueries(d: { permits: SemaphoreStore; maxResponseBytes: number }) {
  // A page's room: the answer less its envelope and its nextCursor (the longest name, escaped, and a token).
  const budget = d.maxResponseBytes - (ENVELOPE_BYTES + 6 * MAX_LOCK_NAME + 20);
  return {
    /** Semaphore `name` with the permits held, oldest token first, as many as fit in the answer. */
    "semaphores.get": (request: { name: string; now: number }): Semaphore => {
      const state = stateOf(d.permits, request.name, request.now);
      const fit = withinBudget(d.permits.heldOf(request.name, request.now, state.held), permitAnswerBytes, budget);
      return { name: state.name, held: state.held, limit: state.limit, nextExpiresAt: state.nextExpiresAt, permits: fit.rows.map(toPermit), permitsOmitted: state.held - fit.rows.length };
    },
    /** The permits held, by name and token, up to `limit` and the answer's byte budget: a page cut short by either has a nextCursor. */
    "semaphores.page": (request: { holder?: string | undefined; prefix?: string | undefined; cursor?: string | undefined; limit: number; now: number }): { items: Permit[]; nextCursor: string | null } => {
      const rows = d.permits.page({ holder: request.holder, prefix: request.prefix, after: parsePermitCursor(request.cursor), limit: request.limit }, request.now);
      const fit = withinBudget(rows.slice(0, request.limit), permitAnswerBytes, budget);
      const more = fit.truncated || rows.length > request.limit;
      return { items: fit.rows.map(toPermit), nextCursor: more ? permitCursor(fit.rows[fit.rows.length - 1]!) : null };
    },
    /** Semaphore `name` in few fields, without its permits (a departed waiter's answer). */
    "semaphores.state": (request: { name: string; now: number }): SemaphoreState => stateOf(d.permits, request.name, request.now),
    "semaphores.anyRunOut": (now: number): boolean => d.permits.anyRunOut(now),
    "semaphores.countHeld": (now: number): number => d.permits.countHeld(now),
  };
}
