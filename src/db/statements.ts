// Prepares each SQL text once per connection. Preparing costs more than running a small
// statement, and some statements (claims with a variable number of queues) are built at run time.
import type { Statement } from "better-sqlite3";
import type { SqliteDatabase } from "./open-database.js";

export class Statements {
  private readonly cache = new Map<string, Statement>();
  constructor(readonly db: SqliteDatabase) {}

  get<P extends unknown[] = unknown[], R = unknown>(sql: string): Statement<P, R> {
    let statement = this.cache.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.cache.set(sql, statement);
    }
    return statement as Statement<P, R>;
  }
}

/** "?, ?, ?" for an IN (...) list of n values. */
export const placeholders = (n: number): string => Array.from({ length: n }, () => "?").join(", ");
