// The reader thread's transactions: every read command, and every recall, in one read
// transaction of its own.
import { statementsFor } from "./statements.js";
import type { SqliteDatabase } from "./open-database.js";

/**
 * Runs a read inside one read transaction: its statements see one snapshot of the database, and
 * the WAL read lock is taken once rather than by each statement (an autocommit read paid about
 * 8 µs of locking, and a recall runs a dozen statements). Only the synchronous part of a read is
 * inside: one that returns a promise (tasks.stats, on Prisma's own connection) has only started
 * by then. The read's own error is what its caller gets. If the transaction cannot end (COMMIT
 * and ROLLBACK both refused: a statement of it still running), `stuck` is called: the connection
 * would otherwise serve that one snapshot from then on. `beforeBegin` runs just before each
 * transaction begins (memory-changes.ts).
 */
export function readTransaction(db: SqliteDatabase, stuck: (error: unknown) => void, beforeBegin: () => void = () => undefined): <T>(read: () => T) => T {
  const begin = db.prepare("BEGIN");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const statements = statementsFor(db);
  let open = false;
  /** Ends the transaction; the error if it could not commit (then it was rolled back, or is stuck). */
  const end = (how: typeof commit): unknown => {
    open = false;
    try {
      how.run();
      return undefined;
    } catch (error) {
      try {
        if (db.inTransaction) rollback.run();
      } catch {
        // Still inside: reported below.
      }
      if (db.inTransaction) stuck(error);
      return error;
    }
  };
  return <T>(read: () => T): T => {
    if (open) return read();
    beforeBegin();
    begin.run();
    open = true;
    let result: T;
    try {
      statements.revalidate();
      result = read();
    } catch (error) {
      end(rollback);
      throw error;
    }
    const failed = end(commit);
    if (failed !== undefined) throw failed;
    return result;
  };
}
