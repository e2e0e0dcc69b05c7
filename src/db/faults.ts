// What a failing database means to a caller. SQLite reports a full disk, a read-only file, an
// I/O error or a lock held too long by its result code; each becomes a 503 with a code of its
// own (src/errors.ts) and, where retrying makes sense, Retry-After. Nothing was stored in any of
// these cases: SQLite rolled the transaction back, so the write can be retried as it was.
// The Database tracks whether writes are failing (an "episode"): /health then answers 503 with
// the reason, probing with a small write until one succeeds (a full disk: and the disk has room
// for the largest request again), and the episode is logged once when it starts and once when it
// ends, never per failing call.
import { statfsSync } from "node:fs";
import { CoordinationError, type DomainErrorCode } from "../errors.js";
import type { Logger } from "../logger.js";

export type FaultCode = Extract<DomainErrorCode, "DISK_FULL" | "READ_ONLY" | "IO_ERROR" | "DATABASE_LOCKED" | "DATABASE_REPLACED">;

/** The fault a SQLite result code stands for (extended codes included: SQLITE_IOERR_WRITE is IO_ERROR). */
export function faultOfSqliteCode(code: string | undefined): FaultCode | undefined {
  if (code === undefined) return undefined;
  if (code === "SQLITE_FULL") return "DISK_FULL";
  if (code.startsWith("SQLITE_READONLY") || code === "SQLITE_PERM") return "READ_ONLY";
  if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CANTOPEN")) return "IO_ERROR";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return "DATABASE_LOCKED";
  return undefined;
}

const SENTENCE: Record<Exclude<FaultCode, "DATABASE_REPLACED">, (sqliteCode: string, busyTimeoutMs: number) => string> = {
  DISK_FULL: () => "The disk holding the database is full; nothing was stored. Free space, then retry",
  READ_ONLY: (code) => `The database file or its directory cannot be written (${code}); nothing was stored`,
  IO_ERROR: (code) => `The database could not be read or written (${code}); nothing was stored`,
  DATABASE_LOCKED: (_, busyTimeoutMs) => `Another process held the database's write lock for more than ${busyTimeoutMs} ms (busyTimeoutMs); nothing was stored. Retry`,
};

/** The error a caller sees for `error`: a fault's own code, or `error` itself when it is none. */
export function asFault(error: unknown, busyTimeoutMs: number): unknown {
  if (error instanceof CoordinationError) return error;
  const sqliteCode = (error as { code?: unknown } | null)?.code;
  const fault = faultOfSqliteCode(typeof sqliteCode === "string" ? sqliteCode : undefined);
  if (fault === undefined || fault === "DATABASE_REPLACED") return error;
  return new CoordinationError(fault, SENTENCE[fault](sqliteCode as string, busyTimeoutMs), { sqliteCode });
}

/** Faults that say the database cannot take writes for now (a lock held by another process is not one: it passes). */
export const DEGRADING_FAULTS = ["DISK_FULL", "READ_ONLY", "IO_ERROR", "DATABASE_REPLACED"] as const satisfies readonly FaultCode[];
const DEGRADING = new Set<string>(DEGRADING_FAULTS);

/**
 * Whether the disk holding `dir` has room for a write of `bytes`, or a tenth of the disk when that
 * is less (on a small volume a large maxBodyBytes could never be free again). Room is the blocks
 * available to every user: root may write into the filesystem's reserve too, but not all of it
 * (ext4 keeps clusters back even from root; root in a user namespace has none of it), so a disk
 * full into its reserve reads as full until space beyond the reserve is freed. True when the
 * filesystem cannot say.
 */
export function diskHasRoom(dir: string, bytes: number): boolean {
  try {
    const fs = statfsSync(dir);
    return fs.bavail * fs.bsize >= Math.min(bytes, (fs.blocks * fs.bsize) / 10);
  } catch {
    return true;
  }
}

/**
 * Whether writes are failing now, and why; logs each episode's start and end once. A full disk's
 * episode ends only once the disk has room again (`hasRoom`): on a disk still full, a small write
 * succeeds in pages SQLite already holds (the write-ahead log's, once checkpointed), and /health
 * went back to 200, logging "work again", while every write of any size still failed.
 */
export class WriteFaults {
  private episode: { error: CoordinationError; since: number } | undefined;

  constructor(
    private readonly log: Logger,
    private readonly hasRoom: () => boolean = () => true,
  ) {}

  /** The fault of the current episode, if writes are failing. */
  get current(): CoordinationError | undefined {
    return this.episode?.error;
  }

  failed(error: unknown): void {
    if (!(error instanceof CoordinationError) || !DEGRADING.has(error.code)) return;
    if (this.episode === undefined) this.log.error({ code: error.code, err: error }, "database writes are failing; answering 503 until they work again");
    this.episode = { error, since: this.episode?.since ?? Date.now() };
  }

  succeeded(): void {
    if (this.episode === undefined) return;
    if (this.episode.error.code === "DISK_FULL" && !this.hasRoom()) return;
    this.log.info({ code: this.episode.error.code, failingForMs: Date.now() - this.episode.since }, "database writes work again");
    this.episode = undefined;
  }
}
