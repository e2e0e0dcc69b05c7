// All SQL of shared state (SQLite dialect). A row of `kv` is a key: present while its expiresAt is
// null or ahead, absent once it passed (read as absent by every query here; the expiry job or the
// next write of the key deletes it with its kv.expired event). Versions come from one counter in
// system_state, so they keep growing however many rows are deleted.
import type { Statements } from "../db/statements.js";
import { nextCounter } from "../locks/lock-store.js";

export interface KvRow {
  key: string;
  /** The value as JSON text. */
  value: string;
  version: number;
  previousVersion: number;
  createdAt: number;
  updatedAt: number;
  updatedBy: string | null;
  /** The write's own key (null: none). */
  idempotencyKey: string | null;
  expiresAt: number | null;
  /** The agent whose life the key is tied to (kv.set's ephemeral): it goes when that agent does. Null: none. */
  ephemeralOwner: string | null;
}

/** An increment remembered by its idempotencyKey (kv_increments): what it asked and the entry it wrote, JSON text. */
export interface KvIncrementRow {
  key: string;
  request: string;
  entry: string;
}

/** How long an increment's idempotencyKey is remembered, in ms: a resend later than this adds again. */
export const INCREMENT_KEY_KEPT_MS = 24 * 3_600_000;

/** The system_state key of the last version written. */
const VERSION_KEY = "kv.version";
const COLUMNS = "key, value, version, previousVersion, createdAt, updatedAt, updatedBy, idempotencyKey, expiresAt, ephemeralOwner";

/** Whether `row` is present at `now`: one whose expiry passed is absent. */
export const kvPresent = (row: KvRow | undefined, now: number): row is KvRow => row !== undefined && (row.expiresAt === null || Number(row.expiresAt) > now);

export class KvStore {
  constructor(private readonly st: Statements) {}

  /** The row of `key`, present or expired; undefined: none. */
  get(key: string): KvRow | undefined {
    return this.st.get<[string], KvRow>(`SELECT ${COLUMNS} FROM kv WHERE key = ?`).get(key);
  }

  /** Writes `row` in place of whatever row `key` has (none, or one the caller found absent or replaces), with the next version. The row as written. */
  put(row: Omit<KvRow, "version">): KvRow {
    const version = nextCounter(this.st, VERSION_KEY);
    const written: KvRow = { ...row, version };
    this.st
      .get<[string, string, number, number, number, number, string | null, string | null, number | null, string | null]>(
        `INSERT INTO kv (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version, previousVersion = excluded.previousVersion,
           createdAt = excluded.createdAt, updatedAt = excluded.updatedAt, updatedBy = excluded.updatedBy, idempotencyKey = excluded.idempotencyKey, expiresAt = excluded.expiresAt,
           ephemeralOwner = excluded.ephemeralOwner`,
      )
      .run(written.key, written.value, written.version, written.previousVersion, written.createdAt, written.updatedAt, written.updatedBy, written.idempotencyKey, written.expiresAt, written.ephemeralOwner);
    return written;
  }

  /** Deletes `key` at `version`. Whether it was there. */
  remove(key: string, version: number): boolean {
    return this.st.get<[string, number]>(`DELETE FROM kv WHERE key = ? AND version = ?`).run(key, version).changes > 0;
  }

  /**
   * The keys present at `now` tied to `owner`'s life, up to `limit`, by key (a range of
   * kv_ephemeralOwner_idx: ephemeral keys only): their key and version, what deleting them takes,
   * not their values (up to 64 KiB each, 10,000 keys). Those whose expiry passed are left to the expiry job.
   */
  ephemeralOf(owner: string, now: number, limit: number): Array<Pick<KvRow, "key" | "version">> {
    return this.st
      .get<[string, number, number], Pick<KvRow, "key" | "version">>(
        `SELECT key, version FROM kv INDEXED BY kv_ephemeralOwner_idx WHERE ephemeralOwner = ? AND (expiresAt IS NULL OR expiresAt > ?) ORDER BY key LIMIT CAST(? AS INTEGER)`,
      )
      .all(owner, now, limit);
  }

  /** How many keys present at `now` are tied to `owner`'s life, counted up to `limit` (what maxEphemeralKeysPerAgent bounds). */
  countEphemeralOf(owner: string, now: number, limit: number): number {
    return this.st
      .get<[string, number, number], number>(
        `SELECT count(*) FROM (SELECT 1 FROM kv INDEXED BY kv_ephemeralOwner_idx WHERE ephemeralOwner = ? AND (expiresAt IS NULL OR expiresAt > ?) LIMIT CAST(? AS INTEGER))`,
      )
      .pluck()
      .get(owner, now, limit)!;
  }

  /** Up to `limit` keys whose expiry passed by `now`, the oldest expiry first. */
  expired(now: number, limit: number): KvRow[] {
    return this.st
      .get<[number, number], KvRow>(`SELECT ${COLUMNS} FROM kv WHERE expiresAt IS NOT NULL AND expiresAt <= ? ORDER BY expiresAt LIMIT CAST(? AS INTEGER)`)
      .all(now, limit);
  }

  /**
   * Whether any key's expiry passed by `now`, or an increment's idempotencyKey was kept its
   * INCREMENT_KEY_KEPT_MS: a look on the reader before the expiry job writes.
   */
  anyExpired(now: number): boolean {
    return (
      this.st.get<[number], number>(`SELECT 1 FROM kv WHERE expiresAt IS NOT NULL AND expiresAt <= ? LIMIT 1`).pluck().get(now) !== undefined ||
      this.st.get<[number], number>(`SELECT 1 FROM kv_increments WHERE at <= ? LIMIT 1`).pluck().get(now - INCREMENT_KEY_KEPT_MS) !== undefined
    );
  }

  /** The increment `writer` ('' for none) sent with `idempotencyKey`, while it is kept. */
  findIncrement(writer: string, idempotencyKey: string): KvIncrementRow | undefined {
    return this.st.get<[string, string], KvIncrementRow>(`SELECT key, request, entry FROM kv_increments WHERE writer = ? AND idempotencyKey = ?`).get(writer, idempotencyKey);
  }

  /** Remembers an increment by its writer and idempotencyKey (INCREMENT_KEY_KEPT_MS from `at`). */
  rememberIncrement(writer: string, idempotencyKey: string, row: KvIncrementRow, at: number): void {
    this.st
      .get<[string, string, string, string, string, number]>(`INSERT INTO kv_increments (writer, idempotencyKey, key, request, entry, at) VALUES (?, ?, ?, ?, ?, ?)`)
      .run(writer, idempotencyKey, row.key, row.request, row.entry, at);
  }

  /** Forgets up to `limit` increments kept INCREMENT_KEY_KEPT_MS by `now`, the oldest first. How many. */
  forgetIncrements(now: number, limit: number): number {
    return this.st
      .get<[number, number]>(`DELETE FROM kv_increments WHERE rowid IN (SELECT rowid FROM kv_increments WHERE at <= ? ORDER BY at LIMIT CAST(? AS INTEGER))`)
      .run(now - INCREMENT_KEY_KEPT_MS, limit).changes;
  }

  /**
   * The keys present at `now` from `from` on (or the first), after `after` when given, by key,
   * read lazily: the caller stops at its budget, and at the first key past its prefix (the keys
   * that start with one are a contiguous range of the primary key in byte order, so nothing past
   * it is read; LIKE would hold % and _ a key may hold, and ignore case). One lower bound goes to
   * SQLite, the later of the two: given both, it seeks by one and filters by the other row by row,
   * so each page of a prefix re-read the pages before it. `ephemeralOwner`: only the keys tied to
   * that agent's life.
   */
  page(filter: { from?: string | undefined; after?: string | undefined; ephemeralOwner?: string | undefined }, now: number): IterableIterator<KvRow> {
    const params: Record<string, string | number> = { now };
    let bound = "";
    // Compared as SQLite compares text (its bytes), not as JavaScript does (UTF-16 code units).
    const afterFirst = filter.after !== undefined && (filter.from === undefined || Buffer.compare(Buffer.from(filter.after), Buffer.from(filter.from)) >= 0);
    if (afterFirst) {
      bound = "AND key > @after";
      params.after = filter.after!;
    } else if (filter.from !== undefined) {
      bound = "AND key >= @from";
      params.from = filter.from;
    }
    // One agent's keys: a range of its index by (owner, key), read from the cursor in key order.
    if (filter.ephemeralOwner !== undefined) {
      params.owner = filter.ephemeralOwner;
      return this.st
        .get<[Record<string, string | number>], KvRow>(`SELECT ${COLUMNS} FROM kv INDEXED BY kv_ephemeralOwner_idx WHERE ephemeralOwner = @owner AND (expiresAt IS NULL OR expiresAt > @now) ${bound} ORDER BY key`)
        .iterate(params);
    }
    return this.st.get<[Record<string, string | number>], KvRow>(`SELECT ${COLUMNS} FROM kv WHERE (expiresAt IS NULL OR expiresAt > @now) ${bound} ORDER BY key`).iterate(params);
  }
}
