// `coordination migrate` and `coordination backup FILE`: work on the database file itself (from
// --db, the environment or the config file), with or without a server running on it.
//  - migrate: the start-up checks, then the pending migrations, then exit (for deployments that
//    migrate as a separate step);
//  - backup: an online, consistent copy through SQLite's backup API, safe while a server writes
//    (a reader sees one committed state in WAL mode); the copy is checked before it is reported.
//    To restore: stop the server, replace the database file with the copy (removing its -wal and
//    -shm files), start the server.
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import type { Config } from "./config.js";

export interface Output {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export async function runMigrate(config: Config, out: Output): Promise<number> {
  const [{ checkBeforeMigrating, checkSchema }, { openDatabase }, { applyMigrations }] = await Promise.all([
    import("./db/startup-checks.js"),
    import("./db/open-database.js"),
    import("./db/migrate.js"),
  ]);
  checkBeforeMigrating(config);
  const db = openDatabase(config);
  try {
    const applied = applyMigrations(db);
    checkSchema(db, config.dbPath);
    out.stderr(applied.length === 0 ? `${config.dbPath} is up to date\n` : `applied to ${config.dbPath}: ${applied.join(", ")}\n`);
    return 0;
  } finally {
    db.close();
  }
}

export async function runBackup(config: Config, target: string, out: Output): Promise<number> {
  if (!existsSync(config.dbPath)) {
    out.stderr(`coordination backup: no database at ${config.dbPath}\n`);
    return 2;
  }
  if (existsSync(target)) {
    out.stderr(`coordination backup: ${target} exists; give a new file (a backup never overwrites)\n`);
    return 2;
  }
  let source: InstanceType<typeof Database>;
  try {
    source = new Database(config.dbPath, { readonly: true, fileMustExist: true, timeout: config.busyTimeoutMs });
    source.pragma("schema_version");
  } catch (error) {
    out.stderr(`coordination backup: ${config.dbPath} cannot be read as a database (${(error as Error).message})\n`);
    return 1;
  }
  try {
    let totalPages: number;
    try {
      ({ totalPages } = await source.backup(target));
    } catch (error) {
      out.stderr(`coordination backup: cannot write ${target} (${(error as Error).message})\n`);
      return 1;
    }
    // A copy in one file: the WAL mode it inherited would leave -wal and -shm files beside it.
    const copy = new Database(target, { fileMustExist: true });
    copy.pragma("journal_mode = DELETE");
    try {
      const check = copy.pragma("quick_check(1)", { simple: true });
      if (check !== "ok") {
        out.stderr(`coordination backup: the copy in ${target} failed its check (${String(check)}); do not rely on it\n`);
        return 1;
      }
      const tasks = copy.prepare("SELECT count(*) FROM tasks").pluck().get();
      out.stderr(`backed up ${config.dbPath} to ${target}: ${totalPages} pages, ${String(tasks)} tasks, checked\n`);
      return 0;
    } finally {
      copy.close();
    }
  } finally {
    source.close();
  }
}
