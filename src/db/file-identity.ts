// Which file a connection has open. A database file deleted while the server runs stays open
// (the connection holds its inode) and takes writes that nobody will ever read; one replaced at
// the same path is another database, which a second process would open. The writer compares the
// path's file, and its -wal's, with those it opened before every commit, and the reader before
// every /health (sameFilesGuard).
import { statSync } from "node:fs";
import { CoordinationError } from "../errors.js";

export interface FileIdentity {
  dev: number;
  ino: number;
}

/** The identity of the file at `path`; undefined for an in-memory database or a missing file. */
export function fileIdentity(path: string): FileIdentity | undefined {
  if (path === ":memory:" || path === "") return undefined;
  try {
    const stat = statSync(path);
    return { dev: stat.dev, ino: stat.ino };
  } catch {
    return undefined;
  }
}

/** Throws DATABASE_REPLACED when the file at `path` is no longer the one opened as `opened`. */
export function assertSameFile(path: string, opened: FileIdentity | undefined, what = "database file"): void {
  if (opened === undefined) return;
  const now = fileIdentity(path);
  if (now !== undefined && now.dev === opened.dev && now.ino === opened.ino) return;
  throw new CoordinationError(
    "DATABASE_REPLACED",
    `The ${what} ${path} was ${now === undefined ? "deleted" : "replaced by another file"} while the server ran; writes are refused so that none is acknowledged into a file nobody will read. Restart the server (it opens whatever file is at the path then)`,
    { path },
  );
}

/**
 * A check of both files a connection writes through, for a thread to run before every commit (or
 * read it answers): the database file, and its write-ahead log (`-wal`), which holds every commit
 * not yet checkpointed into the file. A log deleted or replaced under a running server (a restore
 * done without stopping it) goes on taking writes into the unlinked file, and every one
 * acknowledged is lost at the next start. While a connection is open SQLite never deletes its
 * log, so the log's identity holds from the first commit on. Throws DATABASE_REPLACED.
 */
export function sameFilesGuard(dbPath: string): () => void {
  if (dbPath === ":memory:" || dbPath === "") return () => undefined;
  const opened = fileIdentity(dbPath);
  const wal = `${dbPath}-wal`;
  let walOpened = fileIdentity(wal);
  return () => {
    assertSameFile(dbPath, opened);
    walOpened ??= fileIdentity(wal);
    assertSameFile(wal, walOpened, "write-ahead log");
  };
}
