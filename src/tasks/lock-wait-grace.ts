// How the writer's lease and health checks allow for a heartbeat that waits for another
// process's write lock. Within one process writes run in the order they came, so a check asked
// after a lease's end never overtakes a heartbeat asked before it. Across processes SQLite hands
// the lock to whichever waiter polls first (its busy handler polls a newer waiter more often), so
// a check in one server can commit before a heartbeat sent in time through another. Such a
// heartbeat's batch waits at most busyTimeoutMs for the lock, behind at most one batch of its
// own server that waited as long (unless that server's writer is backed up further): a check
// allows 2 × busyTimeoutMs after a lease's end, or an agent's offline point, before it takes
// the task back.
import type { Statements } from "../db/statements.js";

export interface LockWaitGrace {
  /** 2 × busyTimeoutMs, in ms. */
  graceMs: number;
  /**
   * Whether another connection has committed to the file since the writer's opened: another
   * server (or the CLI) writes to it, and every check allows graceMs.
   */
  shared: boolean;
  /**
   * When the writer's connection opened (Unix ms). Before the file is seen shared, leases last
   * renewed before then still get graceMs: a server that wrote them may be alive and never have
   * committed since (its next write may be the heartbeat waiting for the lock).
   */
  openedAt: number;
}

/** The grace as the writer's connection sees it now: one pragma until the file is seen shared. */
export function lockWaitGrace(st: Statements, busyTimeoutMs: number): () => LockWaitGrace {
  const openedAt = st.openedAt;
  return () => ({ graceMs: 2 * busyTimeoutMs, shared: st.fileShared(), openedAt });
}

/** How far back an agent's offline point moves: the grace on a shared file, else none (start-up is health-cutoffs.ts's grace). */
export const offlineShiftMs = (grace: LockWaitGrace): number => (grace.shared ? grace.graceMs : 0);

/** What a lease check counts as run out (TaskStore.expiredClaims). */
export interface LeaseBounds {
  /** Ended at or before this time (Unix ms), and either */
  asOf: number;
  /** ended at or before this one too, */
  endedBy: number;
  /** or last renewed at or after this one. */
  exactSince: number;
}

/** Leases ended by `asOf`, with no grace (a look on the reader, whose own asOf is already moved back). */
export const exactBounds = (asOf: number): LeaseBounds => ({ asOf, endedBy: asOf, exactSince: 0 });

/**
 * The bounds of a lease check asked at `asOf`: a lease is run out if it ended at or before
 * `endedBy` (asOf less the grace), or at or before `asOf` when renewed at or after `exactSince`
 * (by this process, on a file no other has written to since it opened).
 */
export function leaseBounds(asOf: number, grace: LockWaitGrace): LeaseBounds {
  return { asOf, endedBy: asOf - grace.graceMs, exactSince: grace.shared ? Number.MAX_SAFE_INTEGER : grace.openedAt };
}
