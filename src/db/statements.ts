// Prepares each SQL text once per connection. Preparing costs more than running a small
// statement, and some statements (claims with a variable number of queues) are built at run time.
import type { Statement } from "better-sqlite3";
import type { SqliteDatabase } from "./open-database.js";

/**
 * Statements built at run time vary with list lengths (queues, capabilities, stolen tasks), so the
 * cache is bounded: least recently used statements are dropped past this many.
 */
const MAX_CACHED = 500;

export class Statements {
  private readonly cache = new Map<string, Statement>();
  constructor(readonly db: SqliteDatabase) {}

  get<P extends unknown[] = unknown[], R = unknown>(sql: string): Statement<P, R> {
    let statement = this.cache.get(sql);
    if (statement) {
      // Re-insert: a Map iterates in insertion order, so the first key is the least recently used.
      this.cache.delete(sql);
    } else {
      statement = this.db.prepare(sql);
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(sql, statement);
    return statement as Statement<P, R>;
  }
}

/** "?, ?, ?" for an IN (...) list of n values. */
export const placeholders = (n: number): string => Array.from({ length: n }, () => "?").join(", ");
