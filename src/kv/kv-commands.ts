// Shared state, as the database writer thread runs it: every set and delete is one write that
// commits with its event (kv.set, kv.deleted, kv.expired), so a compare-and-set holds whichever
// server process on the file answers. A key whose expiry passed is absent: the first write to meet
// it (a set or delete of the key, the expiry job) deletes it with its kv.expired.
import { jsonTextBytes, utf8Bytes, withinBudget } from "../db/answer-budget.js";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { iso } from "../locks/lock-commands.js";
import { jsonKind } from "../json-checks.js";
import type { JsonValue } from "../json-types.js";
import { MAX_KEY, type KvCounter, type KvDeleted, type KvEntry, type KvPage, type KvRead } from "./kv-schemas.js";
import { kvPresent, type KvRow, type KvStore } from "./kv-store.js";

/** What kv.increment asks (kv-service.ts fills in the writer and the key): `by` added, the result kept within min and max. */
export interface IncrementCommand {
  key: string;
  by: number;
  min: number | null;
  max: number | null;
  /** A key this increment creates reads as absent this long from now (null: never); one that exists keeps its expiry. */
  ttlMs: number | null;
  updatedBy: string | null;
  idempotencyKey: string | null;
}

/** An entry as kv_increments keeps it (JSON text, times as Unix ms), and back. */
const entryText = (entry: KvEntry): string =>
  JSON.stringify({ ...entry, createdAt: entry.createdAt.getTime(), updatedAt: entry.updatedAt.getTime(), expiresAt: entry.expiresAt?.getTime() ?? null });
function entryOf(text: string): KvCounter {
  const kept = JSON.parse(text) as Omit<KvCounter, "createdAt" | "updatedAt" | "expiresAt"> & { createdAt: number; updatedAt: number; expiresAt: number | null };
  return { ...kept, createdAt: new Date(kept.createdAt), updatedAt: new Date(kept.updatedAt), expiresAt: kept.expiresAt === null ? null : new Date(kept.expiresAt) };
}

/** An entry's answer less its key, value and writer, over tRPC (superjson's meta names its dates' paths) or REST, with room to spare. */
const ENTRY_FIXED_BYTES = 400;
/** A page's braces, field names and superjson's envelope, with room to spare. */
const PAGE_ENVELOPE_BYTES = 200;
/** What an entry weighs in an answer: its value goes out as the JSON text it is stored as. */
const entryAnswerBytes = (row: KvRow): number =>
  ENTRY_FIXED_BYTES + jsonTextBytes(row.key) + utf8Bytes(row.value) + (row.updatedBy === null ? 0 : jsonTextBytes(row.updatedBy)) + (row.ephemeralOwner === null ? 0 : jsonTextBytes(row.ephemeralOwner));

/** A key as answered: `row` when present at `now`, else null. */
export function toEntry(row: KvRow | undefined, now: number): KvEntry | null {
  if (!kvPresent(row, now)) return null;
  return {
    key: row.key,
    value: JSON.parse(row.value) as JsonValue,
    version: Number(row.version),
    createdAt: new Date(Number(row.createdAt)),
    updatedAt: new Date(Number(row.updatedAt)),
    updatedBy: row.updatedBy,
    expiresAt: row.expiresAt === null ? null : new Date(Number(row.expiresAt)),
    ephemeralOwner: row.ephemeralOwner,
  };
}

/** The 409 of a compare-and-set that met another version (`row` absent or expired: version 0). */
function versionConflict(key: string, expected: number, row: KvRow | undefined, now: number): CoordinationError {
  const entry = toEntry(row, now);
  const found = entry === null ? "it is absent" : `its version is ${entry.version}`;
  return new CoordinationError("VERSION_CONFLICT", `key ${JSON.stringify(key)}: ifVersion ${expected} ${expected === 0 ? "asks that it be absent" : "does not match"}, and ${found}: read it again and decide anew`, { key, ifVersion: expected, entry });
}

/** From this magnitude on (2^52) a number holds no fraction: a sum with one is rounded to a whole number. */
const FRACTIONLESS_FROM = 2 ** 52;

/** What rounding took from `a + b` written as `sum` (Knuth's two-sum: exact for finite doubles); 0: the sum is exact. */
function roundingError(a: number, b: number, sum: number): number {
  const bPart = sum - a;
  return a - (sum - bPart) + (b - bPart);
}

/** The largest maxEphemeralKeysPerAgent a server takes (config.ts): what an agent's going deletes in one write at most. */
export const MAX_EPHEMERAL_KEYS_PER_AGENT = 10_000;

/** Why an agent's ephemeral keys went, as their kv.deleted says it. */
export type EphemeralEnd = "owner offline" | "owner deregistered";

export interface KvCommandDeps {
  kv: KvStore;
  events: EventStore;
  /** The most keys tied to one agent's life at once (maxEphemeralKeysPerAgent). */
  maxEphemeralKeysPerAgent: number;
  /** A sign of life of `agentId`, healthy from this write (an unknown one is registered): an ephemeral set is one. */
  keepAlive: (ctx: WriteContext, agentId: string) => void;
}

export function kvCommands(d: KvCommandDeps) {
  /** Deletes a key whose expiry passed, with its kv.expired. */
  const expire = (ctx: WriteContext, row: KvRow): void => {
    d.kv.remove(row.key, row.version);
    d.events.appendSystem(ctx, "kv.expired", { key: row.key, version: Number(row.version), expiredAt: iso(row.expiresAt!) });
  };

  /**
   * Writes `key`'s next version in place of `row` (present at `ctx.now` or not: an expired one
   * goes first, with its kv.expired), with its kv.set event (`incrementedBy`: kv.increment's).
   */
  const write = (
    ctx: WriteContext,
    key: string,
    row: KvRow | undefined,
    change: Pick<KvRow, "value" | "updatedBy" | "idempotencyKey" | "expiresAt" | "ephemeralOwner">,
    incrementedBy?: number,
  ): KvRow => {
    const present = kvPresent(row, ctx.now);
    if (row !== undefined && !present) expire(ctx, row);
    const current = present ? Number(row.version) : 0;
    const written = d.kv.put({
      key,
      value: change.value,
      previousVersion: current,
      createdAt: present ? Number(row.createdAt) : ctx.now,
      updatedAt: ctx.now,
      updatedBy: change.updatedBy,
      idempotencyKey: change.idempotencyKey,
      expiresAt: change.expiresAt,
      ephemeralOwner: change.ephemeralOwner,
    });
    d.events.appendSystem(ctx, "kv.set", {
      key: written.key,
      version: written.version,
      previousVersion: current,
      updatedBy: written.updatedBy,
      ...(written.expiresAt === null ? {} : { expiresAt: iso(written.expiresAt) }),
      ...(written.ephemeralOwner === null ? {} : { ephemeralOwner: written.ephemeralOwner }),
      ...(incrementedBy === undefined ? {} : { incrementedBy }),
    });
    return written;
  };

  return {
    /**
     * Writes `value` (JSON text) to `key`, with the next version, and its kv.set. With
     * `ifVersion`, only if the key's version is that one now (0: absent); otherwise
     * VERSION_CONFLICT, nothing written. A set sent again with its `idempotencyKey` (its answer
     * lost) while the key holds its write is answered with that write, not written twice (sent
     * with another value, ifVersion, ttlMs or ephemeral: IDEMPOTENCY_MISMATCH); once another write came after it,
     * the key is another's and the resend is judged as any set. `ttlMs`: it reads as absent that
     * long from now (null: never). `ephemeralOwner`: the agent (its writer) whose life the key is
     * tied to: deleted when that agent is seen offline or deregisters; the set is a sign of the
     * agent's life, and LIMIT_EXCEEDED when it holds maxEphemeralKeysPerAgent other such keys.
     */
    "kv.set": (
      ctx: WriteContext,
      request: { key: string; value: string; ifVersion?: number | undefined; ttlMs: number | null; updatedBy: string | null; idempotencyKey: string | null; ephemeralOwner: string | null },
    ): KvEntry => {
      // Looked at before anything is written: a refusal must leave the write clean (one that
      // changed rows before it throws costs its whole batch a rerun, savepoint by savepoint).
      const row = d.kv.get(request.key);
      const present = kvPresent(row, ctx.now);
      const current = present ? Number(row.version) : 0;
      // Its own write, by its key and writer: content would not do, as two workers of one agent
      // that read one version may compute one value, and the second must not pass for the first.
      if (present && request.idempotencyKey !== null && row.idempotencyKey === request.idempotencyKey && row.updatedBy === request.updatedBy) {
        // Its ttlMs is what its expiry was set from: both are of the one write's now.
        const ttlMs = row.expiresAt === null ? null : Number(row.expiresAt) - Number(row.updatedAt);
        const differs = [
          ...(row.value === request.value ? [] : ["value"]),
          ...(request.ifVersion === undefined || request.ifVersion === Number(row.previousVersion) ? [] : ["ifVersion"]),
          ...(ttlMs === request.ttlMs ? [] : ["ttlMs"]),
          ...((row.ephemeralOwner === null) === (request.ephemeralOwner === null) ? [] : ["ephemeral"]),
        ];
        if (differs.length === 0) return toEntry(row, ctx.now)!;
        throw new CoordinationError("IDEMPOTENCY_MISMATCH", `key ${JSON.stringify(request.key)}: idempotencyKey ${JSON.stringify(request.idempotencyKey)} wrote version ${row.version} with another ${differs.join(" and ")}: give each write a key of its own`, {
          key: request.key,
          version: Number(row.version),
          differs,
        });
      }
      if (request.ifVersion !== undefined && request.ifVersion !== current) throw versionConflict(request.key, request.ifVersion, row, ctx.now);
      const owner = request.ephemeralOwner;
      if (owner !== null) {
        // A key it holds already is replaced, not added: only another counts against the bound.
        const ownKey = present && row.ephemeralOwner === owner;
        const held = ownKey ? 0 : d.kv.countEphemeralOf(owner, ctx.now, d.maxEphemeralKeysPerAgent);
        if (held >= d.maxEphemeralKeysPerAgent) {
          throw new CoordinationError("LIMIT_EXCEEDED", `agent ${JSON.stringify(owner)} holds ${held} key${held === 1 ? "" : "s"} tied to its life already (maxEphemeralKeysPerAgent ${d.maxEphemeralKeysPerAgent}): delete one, or set this key without ephemeral`);
        }
        d.keepAlive(ctx, owner);
      }
      const written = write(ctx, request.key, row, {
        value: request.value,
        updatedBy: request.updatedBy,
        idempotencyKey: request.idempotencyKey,
        expiresAt: request.ttlMs === null ? null : ctx.now + request.ttlMs,
        ephemeralOwner: owner,
      });
      return toEntry(written, ctx.now)!;
    },

    /**
     * Deletes `key`, with its kv.deleted. With `ifVersion`, only if that is its version now;
     * otherwise (another version, or absent) VERSION_CONFLICT, nothing written. One absent without
     * `ifVersion` is answered `deleted: false`: a delete sent again finds it so.
     */
    "kv.delete": (ctx: WriteContext, request: { key: string; ifVersion?: number | undefined; deletedBy: string | null }): KvDeleted => {
      const row = d.kv.get(request.key);
      const present = kvPresent(row, ctx.now);
      if (request.ifVersion !== undefined && (!present || Number(row.version) !== request.ifVersion)) throw versionConflict(request.key, request.ifVersion, row, ctx.now);
      if (!present) {
        if (row !== undefined) expire(ctx, row);
        return { deleted: false, entry: null };
      }
      d.kv.remove(row.key, row.version);
      d.events.appendSystem(ctx, "kv.deleted", { key: row.key, version: Number(row.version), deletedBy: request.deletedBy });
      return { deleted: true, entry: toEntry(row, ctx.now) };
    },

    /**
     * Adds `by` to the number `key` holds (an absent or expired key: 0, so the first increment
     * creates it), with the next version and a kv.set event saying `incrementedBy`. Refused,
     * nothing written: a value that is not a number (INVALID_STATE), a result that adds past `max`
     * or takes away past `min`, or one a number does not hold exactly (OUT_OF_RANGE, details.entry
     * the key as it is). `ttlMs`: a key this increment creates reads as absent that long from now
     * (one that exists keeps its expiry). One sent with an `idempotencyKey` is kept
     * INCREMENT_KEY_KEPT_MS: sent again, it is answered with the entry it wrote, whatever was
     * written since (IDEMPOTENCY_MISMATCH when it asks otherwise).
     */
    "kv.increment": (ctx: WriteContext, request: IncrementCommand): KvCounter => {
      const asked = JSON.stringify({ key: request.key, by: request.by, min: request.min, max: request.max, ttlMs: request.ttlMs });
      const writer = request.updatedBy ?? "";
      if (request.idempotencyKey !== null) {
        const kept = d.kv.findIncrement(writer, request.idempotencyKey);
        if (kept !== undefined) {
          if (kept.request === asked) return entryOf(kept.entry);
          const before = JSON.parse(kept.request) as Record<string, unknown>;
          const now = JSON.parse(asked) as Record<string, unknown>;
          const differs = Object.keys(now).filter((field) => before[field] !== now[field]);
          throw new CoordinationError("IDEMPOTENCY_MISMATCH", `idempotencyKey ${JSON.stringify(request.idempotencyKey)} was an increment of key ${JSON.stringify(kept.key)} with another ${differs.join(", ")}: give each increment a key of its own`, {
            key: kept.key,
            differs,
          });
        }
      }
      // Looked at before anything is written: a refusal leaves the write clean.
      const row = d.kv.get(request.key);
      const present = kvPresent(row, ctx.now);
      const value = present ? (JSON.parse(row.value) as JsonValue) : 0;
      if (typeof value !== "number") {
        throw new CoordinationError("INVALID_STATE", `key ${JSON.stringify(request.key)} holds ${jsonKind(value)}, not a number: an increment adds to a number (kv.set it to one, or delete it)`, { key: request.key, entry: toEntry(row, ctx.now) });
      }
      const next = value + request.by;
      // A sum a number does not hold exactly would write a version that counted nothing (2^53 + 1
      // is 2^53; 1e17 + 0.5 is 1e17): refused as a bound is. Whole numbers are checked exactly. With
      // a fraction among them, from 2^52 on (where no number holds a fraction) the sum is checked
      // exactly too, by its rounding error (Knuth's two-sum): 2^53 + 1.5 written as 2^53 + 2 counted
      // half a unit that was never added. Below 2^52, decimal fractions add as numbers do (0.1 + 0.2).
      const exact =
        Number.isFinite(next) &&
        (Number.isInteger(value) && Number.isInteger(request.by)
          ? BigInt(value) + BigInt(request.by) === BigInt(next)
          : request.by === 0 || (next !== value && (Math.abs(next) < FRACTIONLESS_FROM || roundingError(value, request.by, next) === 0)));
      // max stops what adds past it, min what takes away past it: a refund to a budget already over
      // its max (one lowered since) goes through, and moves it back toward it.
      const pastMax = request.max !== null && request.by > 0 && next > request.max;
      const pastMin = request.min !== null && request.by < 0 && next < request.min;
      if (!exact || pastMax || pastMin) {
        const past = !Number.isFinite(next)
          ? `would be past the largest number JSON holds`
          : !exact
            ? `would not be counted: a number holds ${value} + ${request.by} as ${next}`
            : `would make it ${next}, past its ${pastMax ? `max ${request.max}` : `min ${request.min}`}`;
        throw new CoordinationError("OUT_OF_RANGE", `key ${JSON.stringify(request.key)} is ${value}: adding ${request.by} ${past}; nothing was written`, {
          key: request.key,
          value,
          by: request.by,
          min: request.min,
          max: request.max,
          entry: toEntry(row, ctx.now),
        });
      }
      const written = write(
        ctx,
        request.key,
        row,
        {
          value: JSON.stringify(next),
          updatedBy: request.updatedBy,
          // Its key is kept apart (kv_increments): a kv.set sent again never finds an increment's.
          idempotencyKey: null,
          // A window's counter: its first increment sets when the window ends, the others keep it.
          expiresAt: present ? row.expiresAt : request.ttlMs === null ? null : ctx.now + request.ttlMs,
          // Tied to an agent's life, it stays so (as it keeps its expiry); one it creates is not.
          ephemeralOwner: present ? row.ephemeralOwner : null,
        },
        request.by,
      );
      // The number it wrote, read back as stored (JSON text: -0 is 0).
      const entry = toEntry(written, ctx.now) as KvCounter;
      if (request.idempotencyKey !== null) d.kv.rememberIncrement(writer, request.idempotencyKey, { key: request.key, request: asked, entry: entryText(entry) }, ctx.now);
      return entry;
    },

    /**
     * Deletes the keys tied to `agentId`'s life (at most maxEphemeralKeysPerAgent), each with its
     * kv.deleted saying why: the agent was seen offline, or deregistered. How many.
     */
    "kv.dropEphemeralOf": (ctx: WriteContext, request: { agentId: string; reason: EphemeralEnd }): number => {
      // All of them: an agent may hold more than the bound when it was lowered since they were set.
      const rows = d.kv.ephemeralOf(request.agentId, ctx.now, MAX_EPHEMERAL_KEYS_PER_AGENT);
      for (const row of rows) {
        d.kv.remove(row.key, row.version);
        d.events.appendSystem(ctx, "kv.deleted", { key: row.key, version: Number(row.version), deletedBy: null, ephemeralOwner: request.agentId, reason: request.reason });
      }
      return rows.length;
    },

    /**
     * Deletes up to `limit` keys whose expiry passed, each with its kv.expired, then forgets the
     * increments' idempotencyKeys kept their time, within the same `limit` (the expiry job). How many.
     */
    "kv.expire": (ctx: WriteContext, limit: number): number => {
      const rows = d.kv.expired(ctx.now, limit);
      for (const row of rows) expire(ctx, row);
      return rows.length + (rows.length < limit ? d.kv.forgetIncrements(ctx.now, limit - rows.length) : 0);
    },
  };
}

/** The reader's side: a key as it is now, a page of keys, whether the expiry job has work. */
export function kvQueries(d: { kv: KvStore; maxResponseBytes: number }) {
  // A page's room: the answer less its envelope and its nextCursor (the longest key, escaped).
  const budget = d.maxResponseBytes - (PAGE_ENVELOPE_BYTES + 6 * MAX_KEY);
  return {
    "kv.get": (request: { key: string; now: number }): KvRead => ({ key: request.key, entry: toEntry(d.kv.get(request.key), request.now) }),
    /** The keys present, by key, of `prefix` when given, up to `limit` and the answer's byte budget: a page cut short by either has a nextCursor. */
    "kv.page": (request: { prefix?: string | undefined; ephemeralOwner?: string | undefined; after?: string | undefined; limit: number; now: number }): KvPage => {
      const { prefix, limit, now } = request;
      const rows = d.kv.page({ from: prefix, after: request.after, ephemeralOwner: request.ephemeralOwner }, now);
      // One more than the page: whether a page follows. Past the prefix's range nothing matches.
      const matching = (function* () {
        let taken = 0;
        for (const row of rows) {
          if (prefix !== undefined && !row.key.startsWith(prefix)) return;
          yield row;
          if (++taken > limit) return;
        }
      })();
      const fit = withinBudget(matching, entryAnswerBytes, budget);
      const more = fit.truncated || fit.rows.length > limit;
      const items = fit.rows.slice(0, limit).map((row) => toEntry(row, now)!);
      return { items, nextCursor: more ? items[items.length - 1]!.key : null };
    },
    "kv.anyExpired": (now: number): boolean => d.kv.anyExpired(now),
  };
}
