// Shared state, as the database writer thread runs it: every set and delete is one write that
// commits with its event (kv.set, kv.deleted, kv.expired), so a compare-and-set holds whichever
// server process on the file answers. A key whose expiry passed is absent: the first write to meet
// it (a set or delete of the key, the expiry job) deletes it with its kv.expired.
import { jsonTextBytes, utf8Bytes, withinBudget } from "../db/answer-budget.js";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { iso } from "../locks/lock-commands.js";
import type { JsonValue } from "../json-types.js";
import { MAX_KEY, type KvDeleted, type KvEntry, type KvPage, type KvRead } from "./kv-schemas.js";
import { kvPresent, type KvRow, type KvStore } from "./kv-store.js";

/** An entry's answer less its key, value and writer, over tRPC (superjson's meta names its dates' paths) or REST, with room to spare. */
const ENTRY_FIXED_BYTES = 400;
/** A page's braces, field names and superjson's envelope, with room to spare. */
const PAGE_ENVELOPE_BYTES = 200;
/** What an entry weighs in an answer: its value goes out as the JSON text it is stored as. */
const entryAnswerBytes = (row: KvRow): number => ENTRY_FIXED_BYTES + jsonTextBytes(row.key) + utf8Bytes(row.value) + (row.updatedBy === null ? 0 : jsonTextBytes(row.updatedBy));

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
  };
}

/** The 409 of a compare-and-set that met another version (`row` absent or expired: version 0). */
function versionConflict(key: string, expected: number, row: KvRow | undefined, now: number): CoordinationError {
  const entry = toEntry(row, now);
  const found = entry === null ? "it is absent" : `its version is ${entry.version}`;
  return new CoordinationError("VERSION_CONFLICT", `key ${JSON.stringify(key)}: ifVersion ${expected} ${expected === 0 ? "asks that it be absent" : "does not match"}, and ${found}: read it again and decide anew`, { key, ifVersion: expected, entry });
}

export function kvCommands(d: { kv: KvStore; events: EventStore }) {
  /** Deletes a key whose expiry passed, with its kv.expired. */
  const expire = (ctx: WriteContext, row: KvRow): void => {
    d.kv.remove(row.key, row.version);
    d.events.appendSystem(ctx, "kv.expired", { key: row.key, version: Number(row.version), expiredAt: iso(row.expiresAt!) });
  };

  return {
    /**
     * Writes `value` (JSON text) to `key`, with the next version, and its kv.set. With
     * `ifVersion`, only if the key's version is that one now (0: absent); otherwise
     * VERSION_CONFLICT, nothing written. A set sent again with its `idempotencyKey` (its answer
     * lost) while the key holds its write is answered with that write, not written twice (sent
     * with another value, ifVersion or ttlMs: IDEMPOTENCY_MISMATCH); once another write came after it,
     * the key is another's and the resend is judged as any set. `ttlMs`: it reads as absent that
     * long from now (null: never).
     */
    "kv.set": (ctx: WriteContext, request: { key: string; value: string; ifVersion?: number | undefined; ttlMs: number | null; updatedBy: string | null; idempotencyKey: string | null }): KvEntry => {
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
        ];
        if (differs.length === 0) return toEntry(row, ctx.now)!;
        throw new CoordinationError("IDEMPOTENCY_MISMATCH", `key ${JSON.stringify(request.key)}: idempotencyKey ${JSON.stringify(request.idempotencyKey)} wrote version ${row.version} with another ${differs.join(" and ")}: give each write a key of its own`, {
          key: request.key,
          version: Number(row.version),
          differs,
        });
      }
      if (request.ifVersion !== undefined && request.ifVersion !== current) throw versionConflict(request.key, request.ifVersion, row, ctx.now);
      if (row !== undefined && !present) expire(ctx, row);
      const written = d.kv.put({
        key: request.key,
        value: request.value,
        previousVersion: current,
        createdAt: present ? Number(row.createdAt) : ctx.now,
        updatedAt: ctx.now,
        updatedBy: request.updatedBy,
        idempotencyKey: request.idempotencyKey,
        expiresAt: request.ttlMs === null ? null : ctx.now + request.ttlMs,
      });
      d.events.appendSystem(ctx, "kv.set", {
        key: written.key,
        version: written.version,
        previousVersion: current,
        updatedBy: written.updatedBy,
        ...(written.expiresAt === null ? {} : { expiresAt: iso(written.expiresAt) }),
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

    /** Deletes up to `limit` keys whose expiry passed, each with its kv.expired (the expiry job). How many. */
    "kv.expire": (ctx: WriteContext, limit: number): number => {
      const rows = d.kv.expired(ctx.now, limit);
      for (const row of rows) expire(ctx, row);
      return rows.length;
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
    "kv.page": (request: { prefix?: string | undefined; after?: string | undefined; limit: number; now: number }): KvPage => {
      const { prefix, limit, now } = request;
      const rows = d.kv.page({ from: prefix, after: request.after }, now);
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
