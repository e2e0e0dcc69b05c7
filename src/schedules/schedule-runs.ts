// Schedules as the database writer thread runs them. A schedule's next run is always one pending
// task (delayed until it falls due, so the claim machinery that serves delays serves it: indexes,
// parked long-polls woken at its runAt, queue pauses, limits and rates). The write that claims
// that task, or cancels it, enqueues the run after it in the same transaction: no timer, no
// sweeper, and with several servers on one file exactly one run follows each (the write lock
// orders them). A run nobody claims stands for every time it is late: runs are skipped, never
// piled up, while a queue is paused, no agent claims, or every server is down. With overlap
// "skip" the claim only plans the next run's time; the write that settles the run (complete,
// dead letter, cancel) enqueues it. A schedule past its endAt or its maxRuns plans none.
import type { WriteContext } from "../db/writer.js";
import { CoordinationError, invalidField, notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { assertJsonDepth, sameJson } from "../json-checks.js";
import { sameBackoff, storedBackoff } from "../tasks/retry-backoff.js";
import type { Backoff, ScopedEnqueue } from "../tasks/task-schemas.js";
import type { TaskRow, TaskStore } from "../tasks/task-store.js";
import { waitsToRun } from "../tasks/task-status.js";
import { firstRunAt, intervalAnchor, resumedRunAt, runAfter, type Timing } from "./next-run.js";
import type { Schedule, ScheduledTask, SetScheduleRequest, SetScheduleResult } from "./schedule-schemas.js";
import type { ScheduleDefinition, ScheduleRow, ScheduleState, ScheduleStore } from "./schedule-store.js";

/** Why a schedule has no run ahead: a time past its endAt, or its maxRuns claimed. */
/**
 * Why a schedule has no run ahead: its endAt or maxRuns, or its timing ("timing": a stored cron
 * pattern or zone this server cannot read, or one that names no time before CRON_LAST_YEAR).
 */
type EndReason = "endAt" | "maxRuns" | "timing";

export interface ScheduleRunDeps {
  schedules: ScheduleStore;
  tasks: TaskStore;
  events: EventStore;
  /** The server's maxJsonDepth: a set checks its task's payload by it (a run's enqueue does not: see insertTask). */
  maxJsonDepth: () => number;
  /** Enqueues a task as tasks.enqueue does, with its task.enqueued event (TaskTransitions.insertTask). */
  insertTask: (ctx: WriteContext, request: ScopedEnqueue & { scheduleId: string }) => TaskRow;
  /** Cancels a pending task as tasks.cancel does, with its event and what waits on it (TaskTransitions.cancelRow). */
  cancelRow: (ctx: WriteContext, row: TaskRow, reason: string) => void;
  /** Makes a pending task due now as tasks.promote does, with its event; one due already as it is (TaskTransitions.promoteRow). */
  promoteRow: (ctx: WriteContext, row: TaskRow, promotedBy: string | null) => TaskRow;
}

const timingOf = (row: ScheduleRow): Timing => ({ cron: row.cron, timezone: row.timezone, everyMs: row.everyMs, startAt: row.startAt === null ? null : Number(row.startAt), anchorAt: row.anchorAt === null ? null : Number(row.anchorAt) });

/** Where the schedule stands (ScheduleState), as ScheduleStore.stateCounts counts it. */
const stateOf = (row: ScheduleRow): ScheduleState => (row.paused === 1 ? "paused" : row.nextTaskId !== null ? "running" : row.nextRunAt !== null ? "waiting" : "ended");

/** A schedule row as answered. */
export function toSchedule(row: ScheduleRow): Schedule {
  const date = (ms: number | null) => (ms === null ? null : new Date(Number(ms)));
  return {
    id: row.id,
    cron: row.cron,
    timezone: row.timezone,
    everyMs: row.everyMs,
    startAt: date(row.startAt),
    endAt: date(row.endAt),
    maxRuns: row.maxRuns,
    overlap: row.overlap,
    task: taskOf(row.task),
    paused: row.paused === 1,
    state: stateOf(row),
    nextRunAt: date(row.nextRunAt),
    nextTaskId: row.nextTaskId,
    runs: row.runs,
    lastRunAt: date(row.lastRunAt),
    lastTaskId: row.lastTaskId,
    setBy: row.setBy,
    createdAt: new Date(Number(row.createdAt)),
    updatedAt: new Date(Number(row.updatedAt)),
  };
}

/** A schedule's stored task (JSON text) with every field: one stored before a field existed has none of it. */
const taskOf = (text: string): ScheduledTask => {
  const task = JSON.parse(text) as Omit<ScheduledTask, "ttlMs" | "maxRunMs" | "orderingKey" | "keyConcurrency"> & Partial<Pick<ScheduledTask, "ttlMs" | "maxRunMs" | "orderingKey" | "keyConcurrency">>;
  return { ...task, ttlMs: task.ttlMs ?? null, maxRunMs: task.maxRunMs ?? null, orderingKey: task.orderingKey ?? null, keyConcurrency: task.keyConcurrency ?? null };
};

/** The definition a set stores: every field filled in, so that the same set sent again compares equal. */
function definitionOf(request: SetScheduleRequest, setBy: string | null): ScheduleDefinition {
  const t = request.task;
  const task: ScheduledTask = {
    queue: t.queue,
    payload: t.payload,
    priority: t.priority,
    capability: t.capability ?? null,
    targetAgentId: t.targetAgentId ?? null,
    maxAttempts: t.maxAttempts ?? null,
    maxRunMs: t.maxRunMs ?? null,
    backoff: t.backoff === undefined ? null : (JSON.parse(storedBackoff(t.backoff)) as Backoff),
    ttlMs: t.ttlMs ?? null,
    orderingKey: t.orderingKey ?? null,
    // Stored as enqueue stores it: 1 unless asked (one at a time), and none without a key.
    keyConcurrency: t.orderingKey === undefined ? null : (t.keyConcurrency ?? 1),
  };
  return {
    id: request.scheduleId,
    cron: request.cron ?? null,
    timezone: request.cron === undefined ? null : (request.timezone ?? "UTC"),
    everyMs: request.everyMs ?? null,
    startAt: request.startAt?.getTime() ?? null,
    endAt: request.endAt?.getTime() ?? null,
    maxRuns: request.maxRuns ?? null,
    overlap: request.overlap,
    task: JSON.stringify(task),
    setBy,
  };
}

/** Whether two definitions time their runs alike. Zones compare without letter case: Node takes "asia/kolkata" for "Asia/Kolkata", a link it lists under another name. */
const sameTiming = (a: ScheduleDefinition, b: ScheduleDefinition): boolean =>
  a.cron === b.cron && a.timezone?.toLowerCase() === b.timezone?.toLowerCase() && a.everyMs === b.everyMs && Number(a.startAt ?? -1) === Number(b.startAt ?? -1);

/** Whether two definitions time, bound and make their runs alike (who set them aside). */
function sameDefinition(a: ScheduleDefinition, b: ScheduleDefinition): boolean {
  if (!sameTiming(a, b) || Number(a.endAt ?? -1) !== Number(b.endAt ?? -1) || a.maxRuns !== b.maxRuns || a.overlap !== b.overlap) return false;
  const ta = taskOf(a.task);
  const tb = taskOf(b.task);
  const text = (backoff: Backoff | null) => (backoff === null ? null : JSON.stringify(backoff));
  return (
    ta.queue === tb.queue &&
    sameJson(ta.payload, tb.payload) &&
    ta.priority === tb.priority &&
    ta.capability === tb.capability &&
    ta.targetAgentId === tb.targetAgentId &&
    ta.maxAttempts === tb.maxAttempts &&
    ta.maxRunMs === tb.maxRunMs &&
    ta.ttlMs === tb.ttlMs &&
    ta.orderingKey === tb.orderingKey &&
    ta.keyConcurrency === tb.keyConcurrency &&
    sameBackoff(text(ta.backoff), text(tb.backoff))
  );
}

export class ScheduleRuns {
  constructor(private readonly d: ScheduleRunDeps) {}

  /** Enqueues the schedule's run due at `runAt` (a delayed pending task naming it). */
  private enqueueRun(ctx: WriteContext, schedule: ScheduleRow, runAt: number): TaskRow {
    const t = taskOf(schedule.task);
    return this.d.insertTask(ctx, {
      queue: t.queue,
      payload: t.payload,
      priority: t.priority,
      capability: t.capability ?? undefined,
      targetAgentId: t.targetAgentId ?? undefined,
      maxAttempts: t.maxAttempts ?? undefined,
      maxRunMs: t.maxRunMs ?? undefined,
      backoff: t.backoff ?? undefined,
      ttlMs: t.ttlMs ?? undefined,
      orderingKey: t.orderingKey ?? undefined,
      keyConcurrency: t.keyConcurrency ?? undefined,
      runAt: new Date(runAt),
      scheduleId: schedule.id,
    });
  }

  /**
   * The schedule's next run, due at `runAt` (none when null): enqueued, unless overlap "skip"
   * waits for the last run to settle (then only its time is kept, `taskId` null). None past its
   * endAt, nor once it had its maxRuns (`schedule.runs` as it will be stored), nor when its timing
   * names no time (`runAt` null): `ended` says which.
   */
  private plan(ctx: WriteContext, schedule: ScheduleRow, runAt: number | null): { taskId: string | null; runAt: number | null; ended: EndReason | null } {
    if (runAt === null) return { taskId: null, runAt: null, ended: "timing" };
    const ended = endReason(schedule, runAt);
    if (ended !== null) return { taskId: null, runAt: null, ended };
    if (this.lastRunGoesOn(schedule)) return { taskId: null, runAt, ended: null };
    return { taskId: this.enqueueRun(ctx, schedule, runAt).id, runAt, ended: null };
  }

  /**
   * Plans the run due at `runAt` (none when null) and records it as the schedule's next. Why it
   * has none ahead, when its endAt or maxRuns left it none (null otherwise): the caller writes the
   * schedule.ended event (ended) when the schedule had a run ahead before.
   */
  private planNext(ctx: WriteContext, schedule: ScheduleRow, runAt: number | null): EndReason | null {
    const next = this.plan(ctx, schedule, runAt);
    this.d.schedules.setNext(schedule.id, next.taskId, next.runAt, ctx.now);
    return next.ended;
  }

  /** The schedule.ended event of a schedule left no run ahead by its endAt, maxRuns or timing (`reason`; nothing when null). */
  private ended(ctx: WriteContext, schedule: ScheduleRow, reason: EndReason | null): void {
    if (reason === null) return;
    this.d.events.appendSystem(ctx, "schedule.ended", { scheduleId: schedule.id, queue: (JSON.parse(schedule.task) as ScheduledTask).queue, runs: schedule.runs, reason });
  }

  /** Whether the schedule has overlap "skip" and its last run has not settled: its task claimed, or pending a retry (or given back, or waiting behind its orderingKey). No run is enqueued meanwhile. */
  private lastRunGoesOn(schedule: ScheduleRow): boolean {
    if (schedule.overlap !== "skip" || schedule.lastTaskId === null) return false;
    const status = this.d.tasks.stateOf(schedule.lastTaskId)?.status;
    return status === "claimed" || status !== undefined && waitsToRun(status);
  }

  /** When the run planned at nextRunAt falls due now: then, or the first time the schedule names after now when that passed while it waited (overlap "skip": the times missed are skipped). */
  private dueFrom(schedule: ScheduleRow, now: number): number | null {
    const due = Number(schedule.nextRunAt);
    return due >= now ? due : runAfter(timingOf(schedule), due, now);
  }

  /** Cancels the schedule's pending run, if it has one, saying why. */
  private dropNext(ctx: WriteContext, schedule: ScheduleRow, reason: string): void {
    const row = schedule.nextTaskId === null ? undefined : this.d.tasks.findById(schedule.nextTaskId);
    if (row !== undefined && waitsToRun(row.status)) this.d.cancelRow(ctx, row, reason);
    // Also a next run planned but not enqueued (current).
    if (schedule.nextTaskId !== null || schedule.nextRunAt !== null) this.d.schedules.setNext(schedule.id, null, null, ctx.now);
  }

  /**
   * `row` (a task naming a schedule) was just claimed: when it is the schedule's next run, that
   * run began, and the one after it is enqueued, at the first time the schedule names after both
   * its due time and now. A retry of an earlier run, or a run given back and claimed again, is not.
   */
  taken(ctx: WriteContext, row: TaskRow): void {
    const schedule = this.d.schedules.get(row.scheduleId!);
    if (schedule === undefined || schedule.nextTaskId !== row.id) return;
    // As ran() is about to store it: this run counted (maxRuns), and the last (overlap "skip").
    const ran: ScheduleRow = { ...schedule, runs: schedule.runs + 1, lastTaskId: row.id, lastRunAt: ctx.now };
    const next = this.plan(ctx, ran, runAfter(timingOf(schedule), Number(schedule.nextRunAt), ctx.now));
    this.d.schedules.ran(schedule.id, row.id, ctx.now, next.taskId, next.runAt, ctx.now);
    this.ended(ctx, ran, next.ended);
  }

  /** The schedule whose planned next run (nextTaskId) `row` is; undefined for any other task. */
  private plannedBy(row: TaskRow): ScheduleRow | undefined {
    if (row.scheduleId === null) return undefined;
    const schedule = this.d.schedules.get(row.scheduleId);
    return schedule?.nextTaskId === row.id ? schedule : undefined;
  }

  /** Whether `row` is its schedule's planned next run (nextTaskId): a task whose time is the schedule's. */
  plansRun(row: TaskRow): boolean {
    return this.plannedBy(row) !== undefined;
  }

  /** `row` (a task naming a schedule) was cancelled by a call: when it was the schedule's next run, that run is skipped, and the one after it enqueued. */
  skipped(ctx: WriteContext, row: TaskRow): void {
    const schedule = this.plannedBy(row);
    if (schedule === undefined) return;
    this.ended(ctx, schedule, this.planNext(ctx, schedule, runAfter(timingOf(schedule), Number(schedule.nextRunAt), ctx.now)));
  }

  /**
   * `row` (a task naming a schedule) was made due now (tasks.promote): when it is the schedule's
   * next run, that run is due now, an extra one, and its claim plans the one after it from then:
   * the time that run was planned for stays ahead.
   */
  promoted(ctx: WriteContext, row: TaskRow): void {
    const schedule = this.plannedBy(row);
    if (schedule === undefined) return;
    this.d.schedules.setNext(schedule.id, row.id, ctx.now, ctx.now);
  }

  /**
   * `row` (a task naming a schedule) settled: completed, dead-lettered or cancelled. When it is the
   * last run of a schedule with overlap "skip" that waits for it, the next run is enqueued: due when
   * planned, or at the first time the schedule names after now when that passed meanwhile.
   */
  settled(ctx: WriteContext, row: TaskRow): void {
    const schedule = this.d.schedules.get(row.scheduleId!);
    if (schedule === undefined || schedule.lastTaskId !== row.id || !awaitsLastRun(schedule)) return;
    this.ended(ctx, schedule, this.planNext(ctx, schedule, this.dueFrom(schedule, ctx.now)));
  }

  /**
   * Plans the next run of schedules whose pending run was taken by something that did not (an
   * older server on the same file claimed it, a hand edit): a run claimed counts as run, at its
   * claim; one cancelled or gone is skipped. Up to `limit` schedules a write; how many it planned.
   * Run by the schedule-repair job, after a look on the reader found one.
   */
  repair(ctx: WriteContext, limit: number): number {
    const stranded = this.d.schedules.stranded(limit);
    for (const schedule of stranded) this.repairOne(ctx, schedule);
    return stranded.length;
  }

  /** Plans the next run of one schedule whose pending run is no longer pending, or whose last run settled unseen (see repair), and enqueues it. */
  private repairOne(ctx: WriteContext, schedule: ScheduleRow): void {
    if (schedule.nextTaskId !== null) this.followTaken(ctx, schedule);
    this.planPending(ctx, this.d.schedules.get(schedule.id)!);
  }

  /**
   * The schedule `id` as a call on it finds it. One whose pending run something else took (see
   * repair) has that run followed first (followTaken), with nothing enqueued, for the call to plan
   * (set), drop (pause, remove) or enqueue as it is (the same definition set again: planPending).
   * An edit then keeps no run time that was taken already, and no run is enqueued only to be cancelled.
   */
  private current(ctx: WriteContext, id: string): ScheduleRow | undefined {
    const row = this.d.schedules.get(id);
    if (row === undefined || row.nextTaskId === null) return row;
    // A run that waits to run (a run has no dependencies: waiting is behind its orderingKey) is
    // still the next run: only a claim, a cancel or its deletion takes it (as stranded reads it).
    const status = this.d.tasks.findById(row.nextTaskId)?.status;
    if (status !== undefined && waitsToRun(status)) return row;
    this.followTaken(ctx, row);
    return this.d.schedules.get(id);
  }

  /**
   * A run that something else took (claimed, cancelled, deleted) is followed as taken or skipped
   * would: counted if it was claimed, at its claim; `nextRunAt` the time after it, `nextTaskId`
   * null: planned, not enqueued.
   */
  private followTaken(ctx: WriteContext, schedule: ScheduleRow): void {
    const task = this.d.tasks.findById(schedule.nextTaskId!);
    const claimed = task !== undefined && task.claimedAt !== null && task.status !== "cancelled";
    const after = runAfter(timingOf(schedule), Number(schedule.nextRunAt), ctx.now);
    // Bounded as a claim's plan is (with this run counted): a time past endAt, or past maxRuns, is
    // none; and as plan() says, timing that names no time ahead ends it too ("timing").
    const counted = claimed ? { ...schedule, runs: schedule.runs + 1 } : schedule;
    const ended: EndReason | null = after === null ? "timing" : endReason(counted, after);
    const next = ended === null ? after : null;
    if (claimed) this.d.schedules.ran(schedule.id, task.id, Number(task.claimedAt), null, next, ctx.now);
    else this.d.schedules.setNext(schedule.id, null, next, ctx.now);
    this.ended(ctx, counted, ended);
  }

  /**
   * Enqueues the next run `current` left planned but not enqueued, when the schedule runs and does
   * not wait for its last run (overlap "skip"); due as planned, or the first time after now.
   */
  private planPending(ctx: WriteContext, row: ScheduleRow): ScheduleRow {
    if (row.paused === 1 || row.nextTaskId !== null || row.nextRunAt === null || this.lastRunGoesOn(row)) return row;
    this.ended(ctx, row, this.planNext(ctx, row, this.dueFrom(row, ctx.now)));
    return this.d.schedules.get(row.id)!;
  }

  /**
   * Creates the schedule, or replaces its definition: its pending run is cancelled and the first
   * run of the new one enqueued (unless it is paused). A new task with the same timing keeps the
   * next run's time (and an interval its phase); new timing plans from now. The same definition
   * set again changes nothing, its next run included.
   */
  set(ctx: WriteContext, request: SetScheduleRequest & { setBy: string | null }): SetScheduleResult {
    const definition = definitionOf(request, request.setBy);
    const existing = this.current(ctx, definition.id);
    if (existing !== undefined && sameDefinition(existing, definition)) return { schedule: toSchedule(this.planPending(ctx, existing)), created: false, changed: false };
    // Checked here, paused or not: a run's enqueue takes the stored payload as it is. (The same
    // definition sent again passed above: its runs go on as they are.)
    assertJsonDepth("task.payload", request.task.payload, this.d.maxJsonDepth());
    const keepsTiming = existing !== undefined && sameTiming(existing, definition);
    const timing: Timing = { cron: definition.cron, timezone: definition.timezone, everyMs: definition.everyMs, startAt: definition.startAt };
    const anchorAt = definition.everyMs === null ? null : keepsTiming ? Number(existing.anchorAt) : intervalAnchor(timing, ctx.now);
    // Its timing kept: the next run as it was; one that had none ahead (it ended, or was paused)
    // runs on from the first time it names from now (and after its last run): never a time
    // before the set, as a resume plans. New timing: its first run.
    const kept = { ...timing, anchorAt };
    const next = !keepsTiming
      ? firstRunAt(kept, ctx.now)
      : existing.nextRunAt !== null
        ? Number(existing.nextRunAt)
        : existing.lastRunAt !== null
          ? runAfter(kept, Number(existing.lastRunAt), ctx.now)
          : resumedRunAt(kept, ctx.now);
    // A new schedule whose first run would come after its endAt would never run: a mistake,
    // refused before anything is written. An existing one may be given an endAt that passed, to end it.
    if (existing === undefined && next !== null && definition.endAt !== null && next > definition.endAt) {
      throw invalidField("endAt", `is before the schedule's first run (${new Date(next).toISOString()}): it would never run`);
    }
    if (existing !== undefined) this.dropNext(ctx, existing, `schedule "${existing.id}" was set again with another definition`);
    const row = this.d.schedules.put(definition, anchorAt, ctx.now);
    const ended = row.paused === 0 ? this.planNext(ctx, row, next) : null;
    const schedule = toSchedule(this.d.schedules.get(row.id)!);
    this.d.events.appendSystem(ctx, "schedule.set", {
      scheduleId: schedule.id,
      queue: schedule.task.queue,
      created: existing === undefined,
      nextRunAt: schedule.nextRunAt?.toISOString() ?? null,
      setBy: request.setBy,
    });
    // A bound lowered under the runs it had (maxRuns) or before its next time (endAt) ends it.
    if (existing !== undefined && existing.nextRunAt !== null) this.ended(ctx, row, ended);
    return { schedule, created: existing === undefined, changed: true };
  }

  /** Deletes the schedule and cancels its pending run; the schedule as it was. SCHEDULE_NOT_FOUND when there is none. */
  remove(ctx: WriteContext, request: { scheduleId: string; removedBy: string | null }): Schedule {
    const existing = this.found(ctx, request.scheduleId);
    this.dropNext(ctx, existing, `schedule "${existing.id}" was removed`);
    this.d.schedules.delete(existing.id);
    this.d.events.appendSystem(ctx, "schedule.removed", { scheduleId: existing.id, queue: (JSON.parse(existing.task) as ScheduledTask).queue, runs: existing.runs, removedBy: request.removedBy });
    return toSchedule(existing);
  }

  /** Pauses the schedule: its pending run is cancelled, none is enqueued until it is resumed. One paused already, or ended, is answered as it is. */
  pause(ctx: WriteContext, request: { scheduleId: string; pausedBy: string | null }): Schedule {
    const existing = this.found(ctx, request.scheduleId);
    // One that has ended has nothing to hold back: as it is (a resume would end it again).
    if (existing.paused === 1 || stateOf(existing) === "ended") return toSchedule(existing);
    this.dropNext(ctx, existing, `schedule "${existing.id}" was paused`);
    this.d.schedules.setPaused(existing.id, true, ctx.now);
    this.d.events.appendSystem(ctx, "schedule.paused", { scheduleId: existing.id, queue: (JSON.parse(existing.task) as ScheduledTask).queue, pausedBy: request.pausedBy });
    return toSchedule(this.d.schedules.get(existing.id)!);
  }

  /**
   * Resumes a paused schedule: its next run is the first time it names from now (those missed
   * while paused are skipped; an interval keeps its startAt's phase). One running is answered as it is.
   */
  resume(ctx: WriteContext, request: { scheduleId: string; resumedBy: string | null }): Schedule {
    const existing = this.found(ctx, request.scheduleId);
    if (existing.paused === 0) return toSchedule(existing);
    this.d.schedules.setPaused(existing.id, false, ctx.now);
    const ended = this.planNext(ctx, existing, resumedRunAt(timingOf(existing), ctx.now));
    const schedule = toSchedule(this.d.schedules.get(existing.id)!);
    this.d.events.appendSystem(ctx, "schedule.resumed", { scheduleId: schedule.id, queue: schedule.task.queue, nextRunAt: schedule.nextRunAt?.toISOString() ?? null, resumedBy: request.resumedBy });
    // Its endAt passed (or its maxRuns were claimed) while it was paused: it ends as it resumes.
    this.ended(ctx, existing, ended);
    return schedule;
  }

  /**
   * Runs the schedule now: its pending run is made due at once (task.promoted, schedule.triggered;
   * one due already is answered as it is, nothing written), an extra run, counted when claimed as any run is (maxRuns); the time it was planned for stays
   * ahead. INVALID_STATE when it has no pending run: paused, ended, or (overlap "skip") waiting for
   * its last run to settle. SCHEDULE_NOT_FOUND when there is none.
   */
  trigger(ctx: WriteContext, request: { scheduleId: string; triggeredBy: string | null }): { schedule: Schedule; task: TaskRow } {
    // A run taken elsewhere is followed, and the run after it enqueued, first (as a set would).
    const existing = this.planPending(ctx, this.found(ctx, request.scheduleId));
    const state = stateOf(existing);
    if (state !== "running") {
      const why =
        state === "paused"
          ? "it is paused: resume it first"
          : state === "waiting"
            ? `its last run (task "${existing.lastTaskId}") still runs and its overlap is "skip": the next run is enqueued when that one settles`
            : "it has ended (no run ahead): set it again with room for more runs";
      throw new CoordinationError("INVALID_STATE", `schedule "${existing.id}" cannot be triggered: ${why}`, { state });
    }
    const pending = this.d.tasks.findById(existing.nextTaskId!)!;
    // Due already (late, nobody claimed it yet, or triggered before: a retry whose answer was
    // lost): it stands for this trigger as it is, and nothing is written, as tasks.promote does.
    // A second schedule.triggered would tell the log's readers and webhooks of a run there is not.
    if (Number(pending.runAt) <= ctx.now) return { schedule: toSchedule(existing), task: pending };
    const task = this.d.promoteRow(ctx, pending, request.triggeredBy);
    this.d.events.appendSystem(ctx, "schedule.triggered", { scheduleId: existing.id, queue: task.queue, taskId: task.id, triggeredBy: request.triggeredBy });
    return { schedule: toSchedule(this.d.schedules.get(existing.id)!), task };
  }

  private found(ctx: WriteContext, id: string): ScheduleRow {
    const row = this.current(ctx, id);
    if (row === undefined) throw notFound("SCHEDULE_NOT_FOUND", id);
    return row;
  }
}

/** Why `schedule` (its runs as stored) has no run at `runAt`: its maxRuns were claimed, or runAt is past its endAt; null when it has one. */
function endReason(schedule: ScheduleRow, runAt: number): EndReason | null {
  if (schedule.maxRuns !== null && schedule.runs >= schedule.maxRuns) return "maxRuns";
  return schedule.endAt !== null && runAt > Number(schedule.endAt) ? "endAt" : null;
}

/** Whether the schedule (running, overlap "skip") has a next run planned but not enqueued: it waits for its last run to settle. */
const awaitsLastRun = (s: ScheduleRow): boolean => s.overlap === "skip" && s.paused === 0 && s.nextTaskId === null && s.nextRunAt !== null;

/** Room a schedule takes in an answer beside its text columns (task ids, times and superjson's note of each, counters, bounds, overlap, keys), in bytes. */
const SCHEDULE_FIXED_BYTES = 1000;

/** Reads of schedules (the reader thread). A list page stops before its answer would pass `maxResponseBytes` (but always holds one). */
export function scheduleQueries(schedules: ScheduleStore, maxResponseBytes: number) {
  return {
    "schedules.get": (id: string): Schedule => {
      const row = schedules.get(id);
      if (row === undefined) throw notFound("SCHEDULE_NOT_FOUND", id);
      return toSchedule(row);
    },
    /** How many schedules are in each state: running, waiting (for a last run, overlap "skip"), paused, ended (the metrics). */
    "schedules.stateCounts": (_: undefined) => schedules.stateCounts(),
    /** Whether a running schedule's next run is no longer pending: a look before any write (the schedule-repair job). */
    "schedules.stranded": (_: undefined): boolean => schedules.stranded(1).length > 0,
    "schedules.list": (request: { queue?: string | undefined; cursor?: string | undefined; limit: number }) => {
      const page: ScheduleRow[] = [];
      let bytes = 0;
      let more = false;
      // Rows are read one at a time: those past the page's bytes never are.
      for (const row of schedules.page(request.queue ?? null, request.cursor ?? null, request.limit + 1)) {
        const size = SCHEDULE_FIXED_BYTES + [row.id, row.task, row.cron ?? "", row.timezone ?? "", row.setBy ?? ""].reduce((sum, text) => sum + Buffer.byteLength(text, "utf8"), 0);
        if (page.length === request.limit || (page.length > 0 && bytes + size > maxResponseBytes)) {
          more = true;
          break;
        }
        page.push(row);
        bytes += size;
      }
      return { items: page.map(toSchedule), nextCursor: more ? page.at(-1)!.id : null };
    },
  };
}
