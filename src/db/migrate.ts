// Applies prisma/migrations at start-up and records each one in `_prisma_migrations` exactly
// as Prisma's migration engine does (same table, sha256 checksum of migration.sql, timestamps),
// so `prisma migrate status` / `deploy` agree with us on a machine that has Prisma's engine.
// Prisma's CLI cannot run here (its engine is a download), hence this module.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { DatabaseRefused } from "./database-refused.js";
import type { SqliteDatabase } from "./open-database.js";

// Prisma's own DDL for the history table on SQLite.
const CREATE_HISTORY_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

/** The migrations folder, found from this file whether it runs from src/ or dist/src/. */
export function defaultMigrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "prisma", "migrations");
    if (existsSync(candidate)) return candidate;
    dir = resolve(dir, "..");
  }
  throw new Error("prisma/migrations not found next to the installed package");
}

export function readMigrations(dir: string): Migration[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, "migration.sql")))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

/**
 * The newest migration this version ships: its schema version. Two builds that share a version
 * number (a deployment between releases) differ by it; /health gives it.
 */
export function shippedSchema(dir = defaultMigrationsDir()): string {
  return readMigrations(dir).at(-1)?.name ?? "none";
}

/** The timestamp format Prisma's engine writes into _prisma_migrations on SQLite. */
const prismaTimestamp = (date: Date): string => date.toISOString().replace("T", " ").replace("Z", "+00:00");

/**
 * A migration history this version cannot continue (one started and never finished, one changed
 * since it was applied) or a migration that failed on this file: a refused file (exit 3, one
 * sentence), as the start-up checks refuse one, not a crash with its stack. Its name stays
 * DatabaseRefused, the name the command line answers with its sentence.
 */
export class MigrationError extends DatabaseRefused {}

/**
 * Applies every migration not yet recorded, all in one IMMEDIATE transaction: two server
 * processes starting together on one file never apply the same migration twice, and one of them
 * applies the whole set while the other finds it done (with a transaction per migration they
 * took turns, each applying some). A failure applies none of them.
 * Returns the names applied now (empty when the database was already up to date).
 */
export function applyMigrations(db: SqliteDatabase, dir = defaultMigrationsDir()): string[] {
  const applied: string[] = [];
  const migrations = readMigrations(dir);
  let current: string | undefined;
  try {
    db.exec(CREATE_HISTORY_TABLE);
    const findRecord = db.prepare<[string], { checksum: string; finished_at: string | null }>(
      `SELECT checksum, finished_at FROM "_prisma_migrations" WHERE migration_name = ? AND rolled_back_at IS NULL`,
    );
    const insertRecord = db.prepare(
      `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
       VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)`,
    );
    db.transaction(() => {
      for (const migration of migrations) {
        const record = findRecord.get(migration.name);
        if (record) {
          if (record.finished_at === null) {
            throw new MigrationError(`the database file ${db.name}: migration ${migration.name} was started but never finished; repair the database before starting`);
          }
          if (record.checksum !== migration.checksum) {
            throw new MigrationError(`the database file ${db.name}: migration ${migration.name} was modified after it was applied (checksum differs)`);
          }
          continue;
        }
        const startedAt = prismaTimestamp(new Date());
        current = migration.name;
        db.exec(migration.sql);
        insertRecord.run(randomUUID(), migration.checksum, prismaTimestamp(new Date()), migration.name, startedAt);
        applied.push(migration.name);
      }
      // What fails from here is the commit: of them all, not of the last one.
      current = undefined;
    }).immediate();
  } catch (error) {
    // A statement or the commit failing on this file (a disk full, a migration its data refuses):
    // rolled back whole, said in one sentence. Another process's lock is no fault of the file:
    // thrown on for unlessLocked to say (exit 1, try again).
    if (!(error instanceof Database.SqliteError) || error.code.startsWith("SQLITE_BUSY")) throw error;
    const where = current === undefined ? "its migrations" : `migration ${current}`;
    throw new MigrationError(`the database file ${db.name}: ${where} failed (${error.message}); nothing was applied`);
  }
  return applied;
}

/** Migrations this version ships that the database has not recorded as applied, in order. */
export function pendingMigrations(db: SqliteDatabase, dir = defaultMigrationsDir()): string[] {
  const history = db.prepare<[], number>(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'`).pluck().get()!;
  const applied = new Set(
    history === 0 ? [] : db.prepare<[], string>(`SELECT migration_name FROM "_prisma_migrations" WHERE rolled_back_at IS NULL AND finished_at IS NOT NULL`).pluck().all(),
  );
  return readMigrations(dir)
    .map((m) => m.name)
    .filter((name) => !applied.has(name));
}

/**
 * Migrations recorded in the database that this version does not ship: the database was
 * migrated by a newer version (a downgrade). The start-up checks refuse such a file (startup-checks.ts).
 */
export function unknownMigrations(db: SqliteDatabase, dir = defaultMigrationsDir()): string[] {
  const known = new Set(readMigrations(dir).map((m) => m.name));
  return db
    .prepare<[], string>(`SELECT migration_name FROM "_prisma_migrations" WHERE rolled_back_at IS NULL ORDER BY migration_name`)
    .pluck()
    .all()
    .filter((name) => !known.has(name));
}
