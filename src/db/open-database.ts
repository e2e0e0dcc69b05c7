// Opens the SQLite file the way a server needs it: WAL so readers never block the writer,
// a busy timeout so a second server process on the same file waits instead of failing,
// foreign keys on, and `synchronous` chosen by the durability setting.
import Database from "better-sqlite3";
import type { Config } from "../config.js";

export type SqliteDatabase = Database.Database;

export function openDatabase(config: Pick<Config, "dbPath" | "busyTimeoutMs" | "durability">): SqliteDatabase {
  const db = new Database(config.dbPath, { timeout: config.busyTimeoutMs });
  db.pragma("journal_mode = WAL");
  db.pragma(`busy_timeout = ${config.busyTimeoutMs}`);
  db.pragma("foreign_keys = ON");
  // FULL syncs the WAL on every commit: an acknowledged write survives power loss.
  // NORMAL syncs only at checkpoints: faster, but the last commits can vanish on power loss.
  db.pragma(`synchronous = ${config.durability === "full" ? "FULL" : "NORMAL"}`);
  return db;
}
