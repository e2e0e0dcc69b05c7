// Prepares each SQL text once per connection. Preparing costs more than running a small
// statement, and some statements (claims with a variable number of queues) are built at run time.
//
// Rows come back as objects built by a function made for the statement's columns, from
// better-sqlite3's raw (array) rows. better-sqlite3 builds each row object property by property,
// and V8 then walks a chain of hidden-class transitions for every row: a 22-column task row cost
// 15 µs that way and 6.6 µs this way (13-column memory 7.4 → 4.0 µs, 6-column event 3.8 → 2.6 µs;
// bench/RESULTS.md). A claim reads two task rows, a recall up to fifty memories.
import type { RunResult, Statement } from "better-sqlite3";
import type { SqliteDatabase } from "./open-database.js";

/**
 * Statements built at run time vary with list lengths (queues, capabilities, stolen tasks), so the
 * cache is bounded: least recently used statements are dropped past this many.
 */
export const MAX_CACHED = 500;

/** The part of better-sqlite3's Statement the stores use. Rows are plain objects keyed by column name (the last of a repeated name wins, as in better-sqlite3). */
export interface Query<P extends unknown[], R> {
  run(...params: P): RunResult;
  get(...params: P): R | undefined;
  all(...params: P): R[];
  iterate(...params: P): IterableIterator<R>;
  /** From now on, rows are their first column's value (for this SQL text, on this connection). */
  pluck(): Query<P, R>;
}

export class Statements {
  /** By SQL text; `used`: when last handed out, on a counter of this cache's own. */
  private readonly cache = new Map<string, { query: Query<unknown[], unknown>; used: number }>();
  private uses = 0;
  private readonly schemaVersion: Statement<[], number>;
  /** Any statement that reads the schema: running one makes the connection load a changed schema. */
  private readonly schemaRead: Statement<[], number>;
  private knownSchema: number;
  private readonly dataVersion: Statement<[], number>;
  private knownData: number;
  /** data_version when this connection opened; `shared` once it differs (see fileShared). */
  private readonly openedData: number;
  private shared = false;
  /** When this connection opened, Unix ms (src/tasks/lock-wait-grace.ts). */
  readonly openedAt = Date.now();
  /**
   * Transactions begun on this connection, counted by revalidate (run first in each): what a
   * store does once a transaction tells by it (TaskStore.promoteDue). 0 while none was counted.
   */
  transactions = 0;

  constructor(readonly db: SqliteDatabase) {
    this.dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();
    this.knownData = this.dataVersion.get()!;
    this.openedData = this.knownData;
    this.schemaVersion = db.prepare<[], number>("PRAGMA schema_version").pluck();
    this.schemaRead = db.prepare<[], number>("SELECT 1 FROM sqlite_schema LIMIT 1").pluck();
    this.knownSchema = this.schemaVersion.get()!;
  }

  /**
   * Drops every prepared statement if the schema changed since the last look (another process
   * migrated the file, or rebuilt a table): SQLite re-prepares a statement by itself, but a row
   * builder keeps the columns it was made for, and would name a rebuilt table's values wrongly.
   * Run first in every transaction, where the schema cannot change until it ends: one pragma.
   */
  revalidate(): void {
    this.transactions++;
    const version = this.schemaVersion.get()!;
    if (version === this.knownSchema) return;
    // The pragma reads the file's header only; until a statement runs, the connection would
    // still prepare new statements against the schema it had (and describe their columns so).
    this.schemaRead.get();
    this.cache.clear();
    this.knownSchema = version;
  }

  /**
   * Whether another connection (another server process on the file, the CLI) committed since the
   * last look: what this process remembers of the rows is then no longer sure. One pragma.
   */
  changedElsewhere(): boolean {
    const version = this.dataVersion.get()!;
    if (version === this.knownData) return false;
    this.knownData = version;
    return true;
  }

  /**
   * Whether another connection (another server process, the CLI) has committed to the file since
   * this one opened. Once true it stays true: the file is shared, and a write of this process may
   * be racing one that waits for the lock in another. One pragma until then, none after.
   */
  fileShared(): boolean {
    if (!this.shared && this.dataVersion.get() !== this.openedData) this.shared = true;
    return this.shared;
  }

  /** The cached statement for `sql`, prepared on first use; throws for a LIMIT or OFFSET bound bare (see assertPlannedOnce). */
  get<P extends unknown[] = unknown[], R = unknown>(sql: string): Query<P, R> {
    const cached = this.cache.get(sql);
    if (cached !== undefined) {
      // A number written, not the entry moved to the map's end: every statement a write runs
      // comes through here, and a delete and set per use was 2% of the writer thread's time.
      cached.used = ++this.uses;
      return cached.query as Query<P, R>;
    }
    const query = prepare(this.db.prepare(assertPlannedOnce(sql)));
    if (this.cache.size >= MAX_CACHED) this.dropLeastRecentlyUsed();
    this.cache.set(sql, { query, used: ++this.uses });
    return query as Query<P, R>;
  }

  /** Only when the cache is full: statements built at run time with list lengths seldom seen. */
  private dropLeastRecentlyUsed(): void {
    let oldest: string | undefined;
    let oldestUse = Infinity;
    for (const [sql, { used }] of this.cache) {
      if (used < oldestUse) {
        oldestUse = used;
        oldest = sql;
      }
    }
    if (oldest !== undefined) this.cache.delete(oldest);
  }
}

const perConnection = new WeakMap<SqliteDatabase, Statements>();

/** The connection's one statement cache, shared by its stores and by whoever runs its transactions. */
export function statementsFor(db: SqliteDatabase): Statements {
  let statements = perConnection.get(db);
  if (statements === undefined) perConnection.set(db, (statements = new Statements(db)));
  return statements;
}

function prepare(statement: Statement<unknown[], unknown>): Query<unknown[], unknown> {
  // A statement that returns no rows (INSERT, UPDATE without RETURNING) cannot be put in raw mode.
  if (!statement.reader) return statement as unknown as Query<unknown[], unknown>;
  return new RowQuery(statement);
}

/** A reading statement whose rows are built from raw arrays by a function made for its columns. */
class RowQuery implements Query<unknown[], unknown> {
  private readonly toRow: (values: unknown[]) => unknown;
  private plucked = false;

  constructor(private readonly statement: Statement<unknown[], unknown>) {
    statement.raw(true);
    this.toRow = rowBuilder(statement.columns().map((column) => column.name));
  }

  run(...params: unknown[]): RunResult {
    return this.statement.run(...params);
  }

  get(...params: unknown[]): unknown {
    const values = this.statement.get(...params) as unknown[] | undefined;
    if (this.plucked) return values;
    return values === undefined ? undefined : this.toRow(values);
  }

  all(...params: unknown[]): unknown[] {
    const rows = this.statement.all(...params) as unknown[][];
    return this.plucked ? rows : rows.map(this.toRow);
  }

  *iterate(...params: unknown[]): IterableIterator<unknown> {
    const rows = this.statement.iterate(...params) as IterableIterator<unknown[]>;
    if (this.plucked) yield* rows;
    else for (const values of rows) yield this.toRow(values);
  }

  pluck(): Query<unknown[], unknown> {
    // better-sqlite3's pluck mode turns raw mode off: the statement answers single values.
    this.statement.pluck(true);
    this.plucked = true;
    return this;
  }
}

/**
 * A function building `{ name0: values[0], name1: values[1], … }` as one object literal, so every
 * row of the statement gets the same hidden class at once. Generated code: column names come from
 * SQLite's description of our own statements, and are quoted by JSON.stringify.
 */
function rowBuilder(names: readonly string[]): (values: unknown[]) => unknown {
  const fields = names.map((name, i) => `${JSON.stringify(name)}: values[${i}]`).join(", ");
  return new Function("values", `return { ${fields} };`) as (values: unknown[]) => unknown;
}

/** String literals, quoted names and comments: what a LIMIT inside them says is not SQL. */
const NOT_SQL = /'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/g;
/**
 * A LIMIT or OFFSET whose value is a parameter by itself, in any spelling SQLite reads the same:
 * `LIMIT ?`, `LIMIT?`, `LIMIT (?)`, `OFFSET ?2`, `LIMIT :n`, and the count of `LIMIT 10, ?`.
 * (A bare OFFSET is only re-planned on a virtual table, but one rule for both is simpler to keep.)
 */
const BARE_BOUND_LIMIT = /\b(?:LIMIT|OFFSET)\b[\s(]*[?:@$]|\bLIMIT\b[^,()]*,[\s(]*[?:@$]/i;

/**
 * `sql`, if SQLite plans it once. SQLite as better-sqlite3 ships it (3.53) reads the value bound
 * to a bare `LIMIT ?` while it plans a statement (sqlite3ExprIsInteger marks the parameter
 * "plan again if bound again"), and every run binds it again: each run parsed and planned the
 * whole statement anew. The lease sweeper's read took 25 µs instead of 3.7, a recall term's FTS
 * lookup 36 instead of 17 (bench/RESULTS.md). The plans never differed: better-sqlite3 binds a
 * JS number as REAL, and the planner uses only an INTEGER value. `LIMIT CAST(? AS INTEGER)` is an
 * expression SQLite does not read while planning: planned once, the value read at run time.
 * Refused here, where every store's SQL passes, rather than remembered at each call site. (Prisma's
 * own queries, tasks.stats's only, are prepared anew each time by its adapter in any case.)
 */
export function assertPlannedOnce(sql: string): string {
  if (BARE_BOUND_LIMIT.test(sql.replace(NOT_SQL, " "))) {
    throw new Error(`a LIMIT or OFFSET bound as a bare parameter makes SQLite prepare the statement again on every run; write LIMIT CAST(? AS INTEGER): ${sql}`);
  }
  return sql;
}

/** "?, ?, ?" for an IN (...) list of n values. */
export const placeholders = (n: number): string => Array.from({ length: n }, () => "?").join(", ");
