// All SQL of schedules (SQLite dialect). A schedule is a row of `schedules`; its next run is a
// pending task naming it (tasks.scheduleId), whose id the row keeps (nextTaskId). Read by primary
// key (the claim that takes a run's task) or by id order (the list): the table is an operator's.
import type { Statements } from "../db/statements.js";

export interface ScheduleRow {
  id: string;
  cron: string | null;
  timezone: string | null;
  everyMs: number | null;
  startAt: number | null;
  /** An interval's phase (runs at anchorAt + k × everyMs); null for a cron pattern. */
  anchorAt: number | null;
  /** No run falls due after it (Unix ms); null: none. */
  endAt: number | null;
  /** No run after this many were claimed (`runs`); null: no bound. */
  maxRuns: number | null;
  overlap: Overlap;
  /** JSON text of a ScheduledTask. */
  task: string;
  paused: number;
  nextTaskId: string | null;
  nextRunAt: number | null;
  runs: number;
  lastRunAt: number | null;
  lastTaskId: string | null;
  setBy: string | null;
  createdAt: number;
  updatedAt: number;
}

/** What a set writes: the definition and who set it. */
export type ScheduleDefinition = Pick<ScheduleRow, "id" | "cron" | "timezone" | "everyMs" | "startAt" | "endAt" | "maxRuns" | "overlap" | "task" | "setBy">;

/**
 * Where a schedule stands: "running" (its next run waits in its queue), "waiting" (overlap "skip":
 * its next run's time is planned, its task waits for the last run to settle), "paused", or "ended"
 * (no run ahead: past its endAt, its maxRuns claimed, or a pattern that names no time ahead).
 */
export const SCHEDULE_STATES = ["running", "waiting", "paused", "ended"] as const;
export type ScheduleState = (typeof SCHEDULE_STATES)[number];

/** Whether a schedule's run falls due while its last one still runs ("allow") or waits for it to settle, the times missed skipped ("skip"). */
export const OVERLAPS = ["allow", "skip"] as const;
export type Overlap = (typeof OVERLAPS)[number];

const COLUMNS = `id, cron, timezone, everyMs, startAt, endAt, maxRuns, overlap, anchorAt, task, paused, nextTaskId, nextRunAt, runs, lastRunAt, lastTaskId, setBy, createdAt, updatedAt`;

export class ScheduleStore {
  constructor(private readonly st: Statements) {}

  get(id: string): ScheduleRow | undefined {
    return this.st.get<[string], ScheduleRow>(`SELECT ${COLUMNS} FROM schedules WHERE id = ?`).get(id);
  }

  /** Up to `limit` schedules after `after` (an id), by id, read as they are iterated; those of `queue` only when given. */
  page(queue: string | null, after: string | null, limit: number): IterableIterator<ScheduleRow> {
    return this.st
      .get<[string | null, string | null, string | null, string | null, number], ScheduleRow>(
        `SELECT ${COLUMNS} FROM schedules
         WHERE (? IS NULL OR id > ?) AND (? IS NULL OR json_extract(task, '$.queue') = ?)
         ORDER BY id LIMIT CAST(? AS INTEGER)`,
      )
      .iterate(after, after, queue, queue, limit);
  }

  /**
   * Up to `limit` running schedules whose next run's task no longer waits to run (pending, or
   * waiting behind its orderingKey), or is gone: one that something other than this version's
   * claim or cancel took (an older server on the same file, a database edited by hand); and those
   * with overlap "skip" waiting for a last run that settled (or is gone) without its settle
   * planning the next. ScheduleRuns.repair plans their next runs.
   */
  stranded(limit: number): ScheduleRow[] {
    return this.st
      .get<[number], ScheduleRow>(
        `SELECT ${COLUMNS} FROM schedules s
         WHERE paused = 0 AND (
           (nextTaskId IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = s.nextTaskId AND t.status IN ('pending', 'waiting')))
           OR (overlap = 'skip' AND nextTaskId IS NULL AND nextRunAt IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = s.lastTaskId AND t.status IN ('claimed', 'pending', 'waiting'))))
         ORDER BY id LIMIT CAST(? AS INTEGER)`,
      )
      .all(limit);
  }

  /**
   * Creates the schedule (running), or replaces its definition (its runs so far and whether it is
   * paused stay), with `anchorAt` its phase (null for a cron pattern), and no next run yet.
   */
  put(definition: ScheduleDefinition, anchorAt: number | null, now: number): ScheduleRow {
    const { id, cron, timezone, everyMs, startAt, endAt, maxRuns, overlap, task, setBy } = definition;
    this.st
      .get<[string, string | null, string | null, number | null, number | null, number | null, number | null, Overlap, number | null, string, string | null, number, number]>(
        `INSERT INTO schedules (id, cron, timezone, everyMs, startAt, endAt, maxRuns, overlap, anchorAt, task, paused, nextTaskId, nextRunAt, setBy, createdAt, updatedAt)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, everyMs = excluded.everyMs, startAt = excluded.startAt,
           endAt = excluded.endAt, maxRuns = excluded.maxRuns, overlap = excluded.overlap,
           anchorAt = excluded.anchorAt, task = excluded.task, nextTaskId = NULL, nextRunAt = NULL, setBy = excluded.setBy, updatedAt = excluded.updatedAt`,
      )
      .run(id, cron, timezone, everyMs, startAt, endAt, maxRuns, overlap, anchorAt, task, setBy, now, now);
    return this.get(id)!;
  }

  /** Its next run is `taskId`, due at `runAt` (both null: none ahead, or paused). */
  setNext(id: string, taskId: string | null, runAt: number | null, now: number): void {
    this.st.get<[string | null, number | null, number, string]>(`UPDATE schedules SET nextTaskId = ?, nextRunAt = ?, updatedAt = ? WHERE id = ?`).run(taskId, runAt, now, id);
  }

  /** Its run `ranTaskId` was claimed at `ranAt`: one run more; the next is `taskId` due at `runAt` (null: none ahead). */
  ran(id: string, ranTaskId: string, ranAt: number, taskId: string | null, runAt: number | null, now: number): void {
    this.st
      .get<[string, number, string | null, number | null, number, string]>(
        `UPDATE schedules SET runs = runs + 1, lastTaskId = ?, lastRunAt = ?, nextTaskId = ?, nextRunAt = ?, updatedAt = ? WHERE id = ?`,
      )
      .run(ranTaskId, ranAt, taskId, runAt, now, id);
  }

  /** How many schedules are in each state (ScheduleState), for the metrics; a state none is in is left out. */
  stateCounts(): Array<{ state: ScheduleState; count: number }> {
    return this.st
      .get<[], { state: ScheduleState; count: number }>(
        `SELECT CASE WHEN paused = 1 THEN 'paused' WHEN nextTaskId IS NOT NULL THEN 'running' WHEN nextRunAt IS NOT NULL THEN 'waiting' ELSE 'ended' END AS state, count(*) AS count
         FROM schedules GROUP BY state`,
      )
      .all();
  }

  setPaused(id: string, paused: boolean, now: number): void {
    this.st.get<[number, number, string]>(`UPDATE schedules SET paused = ?, updatedAt = ? WHERE id = ?`).run(paused ? 1 : 0, now, id);
  }

  delete(id: string): void {
    this.st.get<[string]>(`DELETE FROM schedules WHERE id = ?`).run(id);
  }
}
