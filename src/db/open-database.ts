// Opens the SQLite file the way a server needs it: WAL so readers never block the writer,
// a busy timeout so a second server process on the same file waits instead of failing,
// foreign keys on, `synchronous` chosen by the durability setting, and a bound on the size the
// WAL file keeps once a checkpoint has emptied it.
import Database from "better-sqlite3";
import type { Config } from "../config.js";

export type SqliteDatabase = Database.Database;

/** Bytes the -wal file keeps after the log starts over (64 MiB: about 16,000 pages, 16 default autocheckpoints). */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export function openDatabase(config: Pick<Config, "dbPath" | "busyTimeoutMs" | "durability">): SqliteDatabase {
  const db = new Database(config.dbPath, { timeout: config.busyTimeoutMs });
  db.pragma("journal_mode = WAL");
  db.pragma(`busy_timeout = ${config.busyTimeoutMs}`);
  db.pragma("foreign_keys = ON");
  // FULL syncs the WAL on every commit: an acknowledged write survives power loss.
  // NORMAL syncs only at checkpoints: faster, but the last commits can vanish on power loss.
  db.pragma(`synchronous = ${config.durability === "full" ? "FULL" : "NORMAL"}`);
  // A reader that holds one snapshot long (a backup's VACUUM INTO, a slow replay, another
  // process) keeps checkpoints from starting the log over, so the -wal file grows with every
  // write meanwhile. SQLite reuses the file from its start afterwards but never shrinks it: without
  // a limit, the disk a long backup took stays taken until the server stops. With one, the file is
  // cut back to this size the next time the log starts over (the pages past it were copied into
  // the database by then).
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
  return db;
}
