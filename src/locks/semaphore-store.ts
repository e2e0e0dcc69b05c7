// All SQL of semaphores (SQLite dialect). A row of `semaphore_permits` is a permit: held while its
// expiresAt is ahead, free once it passed (read as free by every query here; the expiry job or the
// next acquire of the name deletes it with its semaphore.expired event). Fencing tokens come from
// the named locks' counter (lock-store.ts), so a token names one grant of any lock or semaphore.
import type { Statements } from "../db/statements.js";
import { heldPageTerms, nextFencingToken } from "./lock-store.js";

export interface PermitRow {
  name: string;
  fencingToken: number;
  holder: string;
  permitLimit: number;
  acquiredAt: number;
  leaseMs: number;
  expiresAt: number;
  idempotencyKey: string | null;
  /** The answers that handed this permit out, not known lost. */
  answers: number;
}

const COLUMNS = "name, fencingToken, holder, permitLimit, acquiredAt, leaseMs, expiresAt, idempotencyKey, answers";

/** Whether `row` is held at `now`: one whose lease ran out is free. */
export const permitHeld = (row: PermitRow, now: number): boolean => Number(row.expiresAt) > now;

export class SemaphoreStore {
  constructor(private readonly st: Statements) {}

  /** How many permits of `name` are held at `now`, the smallest limit among them and the first lease's end (null, null: none). */
  state(name: string, now: number): { held: number; limit: number | null; nextExpiresAt: number | null } {
    return this.st
      .get<[string, number], { held: number; limit: number | null; nextExpiresAt: number | null }>(
        `SELECT count(*) AS held, min(permitLimit) AS "limit", min(expiresAt) AS nextExpiresAt FROM semaphore_permits WHERE name = ? AND expiresAt > ?`,
      )
      .get(name, now)!;
  }

  /** The permit of `name` held at `now` that `holder` took with `idempotencyKey`; undefined: none. */
  heldByKey(name: string, holder: string, idempotencyKey: string, now: number): PermitRow | undefined {
    return this.st
      .get<[string, string, string, number], PermitRow>(`SELECT ${COLUMNS} FROM semaphore_permits WHERE name = ? AND holder = ? AND idempotencyKey = ? AND expiresAt > ? LIMIT 1`)
      .get(name, holder, idempotencyKey, now);
  }

  /** The permits of `name` whose lease ran out by `now`. */
  runOutOf(name: string, now: number): PermitRow[] {
    return this.st.get<[string, number], PermitRow>(`SELECT ${COLUMNS} FROM semaphore_permits WHERE name = ? AND expiresAt <= ?`).all(name, now);
  }

  /** The permits of `name` held at `now`, by token, at most `limit`. */
  heldOf(name: string, now: number, limit: number): PermitRow[] {
    return this.st
      .get<[string, number, number], PermitRow>(`SELECT ${COLUMNS} FROM semaphore_permits WHERE name = ? AND expiresAt > ? ORDER BY fencingToken LIMIT CAST(? AS INTEGER)`)
      .all(name, now, limit);
  }

  /** The permit `fencingToken` of `name`, held or run out; undefined: none. */
  get(name: string, fencingToken: number): PermitRow | undefined {
    return this.st.get<[string, number], PermitRow>(`SELECT ${COLUMNS} FROM semaphore_permits WHERE name = ? AND fencingToken = ?`).get(name, fencingToken);
  }

  /** A new permit of `name` for `holder` under `limit`, with the next fencing token. */
  grant(name: string, holder: string, limit: number, leaseMs: number, now: number, idempotencyKey: string | null): PermitRow {
    const row: PermitRow = { name, fencingToken: nextFencingToken(this.st), holder, permitLimit: limit, acquiredAt: now, leaseMs, expiresAt: now + leaseMs, idempotencyKey, answers: 1 };
    this.st
      .get<[string, number, string, number, number, number, number, string | null, number]>(`INSERT INTO semaphore_permits (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(row.name, row.fencingToken, row.holder, row.permitLimit, row.acquiredAt, row.leaseMs, row.expiresAt, row.idempotencyKey, row.answers);
    return row;
  }

  /** Renews permit `row` to `leaseMs` from `now`, and counts one more answer that handed it out when `answeredAgain`; the row as written. */
  renew(row: PermitRow, leaseMs: number, now: number, answeredAgain = false): PermitRow {
    const answers = Number(row.answers) + (answeredAgain ? 1 : 0);
    this.st
      .get<[number, number, number, string, number]>(`UPDATE semaphore_permits SET leaseMs = ?, expiresAt = ?, answers = ? WHERE name = ? AND fencingToken = ?`)
      .run(leaseMs, now + leaseMs, answers, row.name, row.fencingToken);
    return {
      name: row.name,
      fencingToken: row.fencingToken,
      holder: row.holder,
      permitLimit: row.permitLimit,
      acquiredAt: row.acquiredAt,
      leaseMs,
      expiresAt: now + leaseMs,
      idempotencyKey: row.idempotencyKey,
      answers,
    };
  }

  /** One answer that handed permit `row` out did not reach its caller: one fewer. */
  answerLost(row: PermitRow): void {
    this.st.get<[string, number]>(`UPDATE semaphore_permits SET answers = answers - 1 WHERE name = ? AND fencingToken = ?`).run(row.name, row.fencingToken);
  }

  /** Deletes permit `fencingToken` of `name`. Whether it was there. */
  remove(name: string, fencingToken: number): boolean {
    return this.st.get<[string, number]>(`DELETE FROM semaphore_permits WHERE name = ? AND fencingToken = ?`).run(name, fencingToken).changes > 0;
  }

  /** How many permits `holder` holds at `now` (those whose lease ran out not counted). */
  heldBy(holder: string, now: number): number {
    return this.st.get<[string, number], number>(`SELECT count(*) FROM semaphore_permits WHERE holder = ? AND expiresAt > ?`).pluck().get(holder, now)!;
  }

  /** How many permits are held at `now` (the metrics' gauge). */
  countHeld(now: number): number {
    return this.st.get<[number], number>(`SELECT count(*) FROM semaphore_permits WHERE expiresAt > ?`).pluck().get(now)!;
  }

  /** Every permit `holder` holds at `now`, by name and token (at most maxLocksPerAgent: acquire bounds them). */
  allHeldBy(holder: string, now: number): PermitRow[] {
    return this.st.get<[string, number], PermitRow>(`SELECT ${COLUMNS} FROM semaphore_permits WHERE holder = ? AND expiresAt > ? ORDER BY name, fencingToken`).all(holder, now);
  }

  /** Up to `limit` permits whose lease ran out by `now`, the oldest end first. */
  runOut(now: number, limit: number): PermitRow[] {
    return this.st.get<[number, number], PermitRow>(`SELECT ${COLUMNS} FROM semaphore_permits WHERE expiresAt <= ? ORDER BY expiresAt LIMIT CAST(? AS INTEGER)`).all(now, limit);
  }

  /** Whether any permit's lease ran out by `now`: a look on the reader before the expiry job writes. */
  anyRunOut(now: number): boolean {
    return this.st.get<[number], number>(`SELECT 1 FROM semaphore_permits WHERE expiresAt <= ? LIMIT 1`).pluck().get(now) !== undefined;
  }

  /**
   * The permits held at `now`, by name and token after (`afterName`, `afterToken`), at most
   * `limit` (+1: the caller tells whether a page follows), of `holder` and starting with `prefix`
   * when given.
   */
  page(filter: { holder?: string | undefined; prefix?: string | undefined; after?: { name: string; fencingToken: number } | undefined; limit: number }, now: number): PermitRow[] {
    const { where, params } = heldPageTerms(filter, now);
    if (filter.after !== undefined) {
      where.push("(name > @afterName OR (name = @afterName AND fencingToken > @afterToken))");
      params.afterName = filter.after.name;
      params.afterToken = filter.after.fencingToken;
    }
    return this.st
      .get<[Record<string, string | number>], PermitRow>(`SELECT ${COLUMNS} FROM semaphore_permits WHERE ${where.join(" AND ")} ORDER BY name, fencingToken LIMIT CAST(@limit AS INTEGER)`)
      .all(params);
  }
}
