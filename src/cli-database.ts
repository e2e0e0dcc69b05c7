// `coordination migrate` and `coordination backup FILE`: work on the database file itself (from
// --db, the environment or the config file), with or without a server running on it.
//  - migrate: the start-up checks, then the pending migrations, then exit (for deployments that
//    migrate as a separate step);
//  - backup: an online, consistent copy by VACUUM INTO, safe while a server writes: one read
//    transaction (WAL: the server's writes go on) copies one committed state. Not SQLite's backup
//    API: it starts again whenever another connection writes, and under steady writes it never
//    finished. Written to a file beside the target, checked, then renamed: an interrupted backup
//    leaves no half-written copy under the target's name.
//    To restore: stop the server, replace the database file with the copy (removing its -wal and
//    -shm files), start the server.
import { existsSync, linkSync, lstatSync, renameSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { Config } from "./config.js";

export interface Output {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export async function runMigrate(config: Config, out: Output): Promise<number> {
  const [{ checkBeforeMigrating, checkSchema, openToMigrate, unlessLocked }, { applyMigrations }] = await Promise.all([import("./db/startup-checks.js"), import("./db/migrate.js")]);
  checkBeforeMigrating(config);
  const db = openToMigrate(config);
  try {
    const applied = unlessLocked(config.dbPath, () => {
      const done = applyMigrations(db);
      checkSchema(db, config.dbPath);
      return done;
    });
    out.stderr(applied.length === 0 ? `${config.dbPath} is up to date\n` : `applied to ${config.dbPath}: ${applied.join(", ")}\n`);
    return 0;
  } finally {
    db.close();
  }
}

/**
 * Removes a partial copy that failed. One that was never made (a name the file system refuses,
 * ENAMETOOLONG) cannot be removed either: that is no second failure to die of, with its stack,
 * over the first, which the command says.
 */
function removePartial(partial: string): void {
  try {
    rmSync(partial, { force: true });
  } catch {
    // Nothing there to remove.
  }
}

/** Whether a name is in use, a symbolic link to nothing included (existsSync follows links: a rename replaced the link). */
const taken = (path: string): boolean => {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    // A name the file system refuses (ENAMETOOLONG): nothing there; making the copy says why.
    return false;
  }
};

/** What a file system without hard links answers link() (FAT, some network and FUSE file systems). */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EMLINK"]);

export async function runBackup(config: Config, target: string, out: Output): Promise<number> {
  // An empty FILE (an unset shell variable) named no file: renaming the copy to "" threw ENOENT with its stack.
  if (target === "") {
    out.stderr("coordination backup: FILE is empty; give the copy's path\n");
    return 2;
  }
  if (!existsSync(config.dbPath)) {
    out.stderr(`coordination backup: no database at ${config.dbPath}\n`);
    return 2;
  }
  if (taken(target)) {
    out.stderr(`coordination backup: ${target} exists; give a new file (a backup never overwrites)\n`);
    return 2;
  }
  // A usage mistake, said as serve says it of --db: not SQLite's "unable to open" of a temp name.
  const directory = dirname(resolve(target));
  if (!existsSync(directory)) {
    out.stderr(`coordination backup: the directory ${directory} does not exist\n`);
    return 2;
  }
  let source: InstanceType<typeof Database>;
  try {
    source = new Database(config.dbPath, { readonly: true, fileMustExist: true, timeout: config.busyTimeoutMs });
    source.pragma("schema_version");
  } catch (error) {
    // A full disk (no room for the -shm a WAL database's reader needs) is no unreadable file.
    const { diskFullRefusal, writable } = await import("./db/startup-checks.js");
    const full = diskFullRefusal(config.dbPath);
    const sourceDirectory = dirname(resolve(config.dbPath));
    if (full !== undefined) out.stderr(`coordination backup: ${full.message}\n`);
    else if (!existsSync(`${config.dbPath}-shm`) && !writable(sourceDirectory)) {
      // A reader of a WAL database makes the -shm file beside it when no server has made it: a
      // user who may read the file but not write its directory (a backup account, a read-only
      // snapshot) cannot, and SQLite says only "unable to open" or "attempt to write a readonly
      // database", which reads as a file that is no database.
      out.stderr(
        `coordination backup: ${config.dbPath} cannot be read from here: with no server running on it, SQLite must make its -shm file in ${sourceDirectory}, which this user cannot write. Run the backup as the server's user, or while the server runs\n`,
      );
    } else out.stderr(`coordination backup: ${config.dbPath} cannot be read as a database (${(error as Error).message})\n`);
    // Exit 3, as `backup --help` says ("a file it cannot copy") and as migrate and tokens answer
    // the same file: 1 means a server that refused or could not be reached.
    return 3;
  }
  const partial = `${target}.partial-${process.pid}`;
  try {
    // Someone else's file, or an empty one, is no coordination database to back up: said as the
    // server says it, before anything is written (its copy's check then died on "no such table:
    // tasks" with a stack, and left the partial file behind).
    let tables: string[];
    try {
      tables = source.prepare<[], string>(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all();
    } catch (error) {
      out.stderr(`coordination backup: ${config.dbPath} cannot be read as a database (${(error as Error).message})\n`);
      return 3;
    }
    if (!tables.includes("_prisma_migrations") || !tables.includes("tasks")) {
      out.stderr(
        tables.length === 0
          ? `coordination backup: ${config.dbPath} is an empty database, no coordination database: nothing to back up\n`
          : `coordination backup: ${config.dbPath} is not a coordination database (it has tables ${tables.slice(0, 5).join(", ")} and no migration history)\n`,
      );
      return 3;
    }
    try {
      source.prepare("VACUUM INTO ?").run(partial);
    } catch (error) {
      removePartial(partial);
      out.stderr(`coordination backup: cannot write ${target} (${(error as Error).message})\n`);
      return 3;
    }
    let verdict: { ok: true; pages: number; tasks: number } | { ok: false; check: string };
    try {
      const copy = new Database(partial, { fileMustExist: true });
      try {
        // A copy in one file: no -wal and -shm beside it.
        copy.pragma("journal_mode = DELETE");
        const check = String(copy.pragma("quick_check(1)", { simple: true }));
        verdict =
          check === "ok"
            ? { ok: true, pages: Number(copy.pragma("page_count", { simple: true })), tasks: Number(copy.prepare("SELECT count(*) FROM tasks").pluck().get()) }
            : { ok: false, check };
      } finally {
        copy.close();
      }
    } catch (error) {
      // The copy could not be opened, switched to one file or read (a disk that filled meanwhile):
      // no copy, and none left half-made.
      verdict = { ok: false, check: (error as Error).message };
    }
    if (!verdict.ok) {
      removePartial(partial);
      out.stderr(`coordination backup: the copy failed its check (${verdict.check}); nothing was written to ${target}\n`);
      return 3;
    }
    // Never over a file that appeared meanwhile (a backup never overwrites): a hard link is made
    // only where no name is, in one step (a check, then a rename, let a second backup, or a file
    // made between them, be replaced). A file system without hard links: the check and rename.
    try {
      linkSync(partial, target);
      removePartial(partial);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST" || taken(target)) {
        removePartial(partial);
        out.stderr(`coordination backup: ${target} exists; give a new file (a backup never overwrites)\n`);
        return 2;
      }
      try {
        if (!NO_HARD_LINKS.has(code ?? "")) throw error;
        renameSync(partial, target);
      } catch (failed) {
        removePartial(partial);
        out.stderr(`coordination backup: cannot write ${target} (${(failed as Error).message})\n`);
        return 3;
      }
    }
    out.stderr(`backed up ${config.dbPath} to ${target}: ${verdict.pages} pages, ${verdict.tasks} tasks, checked\n`);
    return 0;
  } finally {
    source.close();
  }
}
