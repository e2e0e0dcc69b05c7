// What the server checks of its database file before it serves anything, so that a file it
// cannot use well is refused with one sentence instead of served until something answers 500:
//  - before anything is written (a read-only connection): the file can be written (and its
//    directory, where SQLite keeps -wal and -shm); it is a database and not damaged (quick_check);
//    it is ours (tables but no migration history: someone else's file); it was not migrated by a
//    newer version (history this version does not know);
//  - after the pending migrations: every table and column this version expects is there, as it
//    expects it (a renamed or dropped column is a file this version would corrupt).
// A refused file is never migrated nor written to; the CLI exits with code 3.
import { accessSync, closeSync, constants, existsSync, lstatSync, openSync, readlinkSync, readSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { Config } from "../config.js";
import { DatabaseRefused } from "./database-refused.js";
import { diskHasRoom } from "./faults.js";
import { applyMigrations, defaultMigrationsDir, readMigrations } from "./migrate.js";
import { openDatabase, type SqliteDatabase } from "./open-database.js";

export { DatabaseRefused } from "./database-refused.js";

/** Another process held the file's lock past the busy timeout while start-up checked or migrated it: try again once it lets go. */
export class DatabaseLocked extends Error {
  override name = "DatabaseLocked";
  constructor(path: string) {
    super(
      `the database file ${path} is locked by another process, which held its lock past the busy timeout: start again once it lets go (an open sqlite3 shell or a long transaction on the file, another server migrating it)`,
    );
  }
}

const isBusy = (error: unknown): boolean => error instanceof Database.SqliteError && error.code.startsWith("SQLITE_BUSY");

/**
 * Start-up's work on the file (its migrations, the check of its schema): a lock another process
 * holds past the busy timeout is said in one sentence (DatabaseLocked), not thrown on as a crash
 * with its stack.
 */
export function unlessLocked<T>(path: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (isBusy(error)) throw new DatabaseLocked(path);
    throw error;
  }
}

/** Room a start needs beside the file: its -shm (32 KiB) and the first writes to its -wal. */
const START_ROOM_BYTES = 1024 * 1024;

/**
 * A file SQLite could not open or read because the disk holding it is full (it cannot make the
 * -shm file a WAL database needs: "disk I/O error", SQLITE_IOERR_SHMSIZE) is no damaged file:
 * said so, for the operator to free space rather than restore a backup over acknowledged work.
 * Undefined when the disk has room (the error is then the file's).
 */
export function diskFullRefusal(path: string): DatabaseRefused | undefined {
  const directory = dirname(resolve(path));
  if (diskHasRoom(directory, START_ROOM_BYTES)) return undefined;
  return new DatabaseRefused(`the disk holding the database file ${path} is full (SQLite cannot make its -shm and -wal files in ${directory}): the file is not damaged; free space, then start again`);
}

/** Whether this process may write `path` (a file, or a directory: make files in it). */
export const writable = (path: string): boolean => {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * A -wal file beside a database whose header says rollback-journal mode (bytes 18 and 19 are 1)
 * belongs to another file: SQLite writes 2 there before it writes a WAL, so no file of ours has a
 * WAL without it. That is a restore that put a backup (`coordination backup` writes its copy in
 * rollback mode) in place of the file and left the old -wal and -shm: SQLite would replay the old
 * file's pages into the copy (refused as "malformed" at best, silently mixed at worst). Refused,
 * naming the files to delete, as the README's restore says.
 */
function foreignWal(path: string): void {
  const wal = `${path}-wal`;
  let walBytes: number;
  try {
    walBytes = statSync(wal).size;
  } catch {
    return;
  }
  if (walBytes === 0) return;
  const header = Buffer.alloc(20);
  let read: number;
  const fd = openSync(path, "r");
  try {
    read = readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  if (read < 20 || header.toString("latin1", 0, 16) !== "SQLite format 3\0" || header[18] !== 1 || header[19] !== 1) return;
  throw new DatabaseRefused(
    `the database file ${path} is in rollback-journal mode (a backup copy put in its place?) but ${wal} beside it holds another file's write-ahead log: delete ${wal} and ${path}-shm (a restore replaces the file and deletes them), then start again`,
  );
}

/** Checks an existing file before anything is written to it; throws DatabaseRefused naming the problem. */
export function checkBeforeMigrating(config: Pick<Config, "dbPath">, dir = defaultMigrationsDir()): void {
  const path = config.dbPath;
  if (path === ":memory:") return;
  // Where SQLite keeps the -wal and -shm files, and creates a new database file.
  const directory = dirname(resolve(path));
  if (!existsSync(path)) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(directory).isDirectory();
    } catch (error) {
      throw new DatabaseRefused(`cannot create the database file ${path}: ${directory} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    if (!isDirectory) throw new DatabaseRefused(`cannot create the database file ${path}: ${directory} is not a directory`);
    if (!writable(directory)) throw new DatabaseRefused(`cannot create the database file ${path}: the directory ${directory} is read-only`);
    return;
  }
  if (!writable(path)) throw new DatabaseRefused(`the database file ${path} is read-only: this server writes to it. Make it writable, or point dbPath at a copy`);
  if (!writable(directory)) throw new DatabaseRefused(`the directory ${directory} is read-only: SQLite keeps the database's -wal and -shm files there`);
  foreignWal(path);
  let db: SqliteDatabase;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw diskFullRefusal(path) ?? new DatabaseRefused(`the database file ${path} cannot be opened (${(error as Error).message})`);
  }
  try {
    let check: string;
    try {
      // quick_check(1): the first problem only; it reads every page once, without the slower index cross-checks.
      check = db.pragma("quick_check(1)", { simple: true }) as string;
    } catch (error) {
      // A file in rollback-journal mode (a backup copy put in place) under another's write: not damaged.
      if (isBusy(error)) throw new DatabaseLocked(path);
      throw diskFullRefusal(path) ?? new DatabaseRefused(`the file ${path} is not a usable SQLite database (${(error as Error).message})`);
    }
    if (check !== "ok") throw new DatabaseRefused(`the database file ${path} is damaged (quick_check: ${check.replace(/\s+/g, " ").trim()}); restore a backup`);
    const tables = db.prepare<[], string>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).pluck().all();
    if (tables.length === 0) return;
    if (!tables.includes("_prisma_migrations")) {
      throw new DatabaseRefused(`the database file ${path} is not a coordination database (it has tables ${tables.slice(0, 5).join(", ")} and no migration history)`);
    }
    const known = new Set(readMigrations(dir).map((m) => m.name));
    const applied = db.prepare<[], string>(`SELECT migration_name FROM _prisma_migrations WHERE rolled_back_at IS NULL`).pluck().all();
    const unknown = applied.filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new DatabaseRefused(
        `the database file ${path} was migrated by a newer version of coordination (migrations this version does not know: ${unknown.join(", ")}); run that version, or restore a backup`,
      );
    }
  } finally {
    db.close();
  }
}

/**
 * The first connection that may write, after checkBeforeMigrating: the one that creates a new
 * file. A directory that exists and may be written can still refuse the file (a name longer than
 * the file system takes, a symbolic link to a volume not mounted), and SQLite says only "unable
 * to open database file": refused with the system's reason, as the checks refuse, not thrown on
 * as a crash with its stack.
 */
export function openToMigrate(config: Pick<Config, "dbPath" | "busyTimeoutMs" | "durability">): SqliteDatabase {
  const existed = config.dbPath === ":memory:" || existsSync(config.dbPath);
  try {
    // Its journal mode is set as it opens, which waits for another process's lock.
    return unlessLocked(config.dbPath, () => openDatabase(config));
  } catch (error) {
    if (!(error instanceof Database.SqliteError)) throw error;
    if (existed) throw diskFullRefusal(config.dbPath) ?? new DatabaseRefused(`the database file ${config.dbPath} cannot be opened (${error.message})`);
    throw new DatabaseRefused(`cannot create the database file ${config.dbPath}: ${whyNotCreated(config.dbPath, error.message)}`);
  }
}

/** Why a file SQLite could not create cannot be: the system's code for it, and where a link points. */
function whyNotCreated(path: string, sqliteMessage: string): string {
  let code: string | undefined;
  try {
    closeSync(openSync(path, "r"));
  } catch (error) {
    code = (error as NodeJS.ErrnoException).code;
  }
  let link: string | undefined;
  try {
    if (lstatSync(path).isSymbolicLink()) link = readlinkSync(path);
  } catch {
    // Not there at all: no link to name.
  }
  if (link !== undefined) return `a symbolic link to ${link}, which cannot be created (${code ?? sqliteMessage})`;
  // A file that is not there cannot be read: ENOENT says nothing more than SQLite does.
  return code === undefined || code === "ENOENT" ? sqliteMessage : code;
}

interface Column {
  name: string;
  type: string;
  notnull: number;
  pk: number;
}

/** Tables and columns as SQLite describes them. */
function shapeOf(db: SqliteDatabase): Map<string, Column[]> {
  const tables = db.prepare<[], string>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'memories_fts%' ORDER BY name`).pluck().all();
  return new Map(tables.map((table) => [table, db.prepare<[string], Column>(`SELECT name, type, "notnull", pk FROM pragma_table_info(?)`).all(table)]));
}

/** After migrating: the file's tables and columns are those this version's migrations make; throws DatabaseRefused naming the first difference. */
export function checkSchema(db: SqliteDatabase, path: string, dir = defaultMigrationsDir()): void {
  const reference = new Database(":memory:");
  try {
    applyMigrations(reference, dir);
    const expected = shapeOf(reference);
    const actual = shapeOf(db);
    for (const [table, columns] of expected) {
      const have = actual.get(table);
      if (have === undefined) throw new DatabaseRefused(`the database file ${path} does not match this version's schema: table ${table} is missing`);
      for (const column of columns) {
        const found = have.find((c) => c.name === column.name);
        if (found === undefined) throw new DatabaseRefused(`the database file ${path} does not match this version's schema: column ${table}.${column.name} is missing`);
        if (found.type !== column.type || found.notnull !== column.notnull || found.pk !== column.pk) {
          throw new DatabaseRefused(`the database file ${path} does not match this version's schema: column ${table}.${column.name} is ${found.type}${found.notnull ? " NOT NULL" : ""}, expected ${column.type}${column.notnull ? " NOT NULL" : ""}`);
        }
      }
    }
  } finally {
    reference.close();
  }
}
