// All SQL of named locks (SQLite dialect). A row of `locks` is a grant: held while its expiresAt is
// ahead, free once it passed (read as free by every query here; the expiry job or the next
// acquire of the name deletes it with its lock.expired event). The last fencing token granted is
// kept in system_state, so tokens keep growing however many rows are deleted.
import type { Statements } from "../db/statements.js";

export interface LockRow {
  name: string;
  holder: string;
  fencingToken: number;
  acquiredAt: number;
  leaseMs: number;
  expiresAt: number;
  idempotencyKey: string | null;
  /** The answers that handed this grant out, not known lost. */
  answers: number;
}

/** The system_state key of the last fencing token granted. */
const FENCING_KEY = "locks.fencingToken";
const COLUMNS = "name, holder, fencingToken, acquiredAt, leaseMs, expiresAt, idempotencyKey, answers";

/** Whether `row` is held at `now`: one whose lease ran out is free. */
export const lockHeld = (row: LockRow | undefined, now: number): row is LockRow => row !== undefined && Number(row.expiresAt) > now;

/**
 * The next value of counter `key` of system_state: one more than the last (1 for the first), kept
 * across deletes of what it numbered and restarts. Fencing tokens, shared state's versions.
 */
export function nextCounter(st: Statements, key: string): number {
  return st
    .get<[string], number>(
      `INSERT INTO system_state (key, value) VALUES (?, '1')
       ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) RETURNING CAST(value AS INTEGER)`,
    )
    .pluck()
    .get(key)!;
}

/** The next fencing token: one more than the last granted, of any lock or semaphore permit. */
export const nextFencingToken = (st: Statements): number => nextCounter(st, FENCING_KEY);

/**
 * The WHERE terms and parameters of a page of grants (locks or permits) held at `now`, of `holder`
 * and of names starting with `prefix` when given, with `limit` + 1 rows (the caller tells whether
 * a page follows). A prefix is a range of the index, not LIKE (whose % and _ a name may hold, and
 * which ignores case), compared as bytes (length() of text stops at a NUL).
 */
export function heldPageTerms(filter: { holder?: string | undefined; prefix?: string | undefined; limit: number }, now: number): { where: string[]; params: Record<string, string | number> } {
  const where = ["expiresAt > @now"];
  const params: Record<string, string | number> = { now, limit: filter.limit + 1 };
  if (filter.holder !== undefined) {
    where.push("holder = @holder");
    params.holder = filter.holder;
  }
  if (filter.prefix !== undefined) {
    where.push("name >= @prefix", "substr(CAST(name AS BLOB), 1, length(CAST(@prefix AS BLOB))) = CAST(@prefix AS BLOB)");
    params.prefix = filter.prefix;
  }
  return { where, params };
}

export class LockStore {
  constructor(private readonly st: Statements) {}

  /** The row of `name`, held or run out; undefined: none. */
  get(name: string): LockRow | undefined {
    return this.st.get<[string], LockRow>(`SELECT ${COLUMNS} FROM locks WHERE name = ?`).get(name);
  }

  /** A new grant of `name` (no row of it may be left), with the next fencing token; `idempotencyKey`: the acquire's (null: none). */
  grant(name: string, holder: string, leaseMs: number, now: number, idempotencyKey: string | null): LockRow {
    const fencingToken = nextFencingToken(this.st);
    const row: LockRow = { name, holder, fencingToken, acquiredAt: now, leaseMs, expiresAt: now + leaseMs, idempotencyKey, answers: 1 };
    this.st
      .get<[string, string, number, number, number, number, string | null, number]>(`INSERT INTO locks (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(row.name, row.holder, row.fencingToken, row.acquiredAt, row.leaseMs, row.expiresAt, row.idempotencyKey, row.answers);
    return row;
  }

  /** Renews grant `row` to `leaseMs` from `now`, and counts one more answer that handed it out when `answeredAgain`; the row as written. */
  renew(row: LockRow, leaseMs: number, now: number, answeredAgain = false): LockRow {
    const answers = Number(row.answers) + (answeredAgain ? 1 : 0);
    this.st
      .get<[number, number, number, string, number]>(`UPDATE locks SET leaseMs = ?, expiresAt = ?, answers = ? WHERE name = ? AND fencingToken = ?`)
      .run(leaseMs, now + leaseMs, answers, row.name, row.fencingToken);
    return { name: row.name, holder: row.holder, fencingToken: row.fencingToken, acquiredAt: row.acquiredAt, leaseMs, expiresAt: now + leaseMs, idempotencyKey: row.idempotencyKey, answers };
  }

  /** One answer that handed grant `row` out did not reach its caller: one fewer. */
  answerLost(row: LockRow): void {
    this.st.get<[string, number]>(`UPDATE locks SET answers = answers - 1 WHERE name = ? AND fencingToken = ?`).run(row.name, row.fencingToken);
  }

  /** Deletes grant `fencingToken` of `name`. Whether it was there. */
  remove(name: string, fencingToken: number): boolean {
    return this.st.get<[string, number]>(`DELETE FROM locks WHERE name = ? AND fencingToken = ?`).run(name, fencingToken).changes > 0;
  }

  /** How many locks `holder` holds at `now` (those whose lease ran out not counted). */
  heldBy(holder: string, now: number): number {
    return this.st.get<[string, number], number>(`SELECT count(*) FROM locks WHERE holder = ? AND expiresAt > ?`).pluck().get(holder, now)!;
  }

  /** How many locks are held at `now` (the metrics' gauge). */
  countHeld(now: number): number {
    return this.st.get<[number], number>(`SELECT count(*) FROM locks WHERE expiresAt > ?`).pluck().get(now)!;
  }

  /** Every lock `holder` holds at `now`, by name (at most maxLocksPerAgent: acquire bounds them). */
  allHeldBy(holder: string, now: number): LockRow[] {
    return this.st.get<[string, number], LockRow>(`SELECT ${COLUMNS} FROM locks WHERE holder = ? AND expiresAt > ? ORDER BY name`).all(holder, now);
  }

  /** Up to `limit` grants whose lease ran out by `now`, the oldest end first. */
  runOut(now: number, limit: number): LockRow[] {
    return this.st.get<[number, number], LockRow>(`SELECT ${COLUMNS} FROM locks WHERE expiresAt <= ? ORDER BY expiresAt LIMIT CAST(? AS INTEGER)`).all(now, limit);
  }

  /** Whether any grant's lease ran out by `now`: a look on the reader before the expiry job writes. */
  anyRunOut(now: number): boolean {
    return this.st.get<[number], number>(`SELECT 1 FROM locks WHERE expiresAt <= ? LIMIT 1`).pluck().get(now) !== undefined;
  }

  /**
   * The locks held at `now`, by name after `after`, at most `limit` (+1: the caller tells whether
   * a page follows), of `holder` and starting with `prefix` when given.
   */
  page(filter: { holder?: string | undefined; prefix?: string | undefined; after?: string | undefined; limit: number }, now: number): LockRow[] {
    const { where, params } = heldPageTerms(filter, now);
    if (filter.after !== undefined) {
      where.push("name > @after");
      params.after = filter.after;
    }
    return this.st.get<[Record<string, string | number>], LockRow>(`SELECT ${COLUMNS} FROM locks WHERE ${where.join(" AND ")} ORDER BY name LIMIT CAST(@limit AS INTEGER)`).all(params);
  }
}
