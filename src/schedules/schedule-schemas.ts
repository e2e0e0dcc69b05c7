// Wire shapes of schedules (schedules.set, get, list, remove, pause, resume): recurring tasks, by
// a cron pattern in a time zone or by a fixed interval.
import { z } from "zod";
import { jsonOutput } from "../json-value.js";
import { int, name, text } from "../schema-parts.js";
import { backoffSchema, dateInput, enqueueFields, taskSchema } from "../tasks/task-schemas.js";
import { canonicalCron, canonicalTimeZone, CRON_LAST_YEAR, cronProblem, firstRunAt } from "./next-run.js";
import { OVERLAPS, SCHEDULE_STATES } from "./schedule-store.js";

/** The shortest interval between runs, in ms: a second, as a cron pattern's finest field. */
export const MIN_EVERY_MS = 1000;
/** The longest interval between runs, in ms: a year (a longer one is a cron pattern with a month). */
export const MAX_EVERY_MS = 366 * 24 * 3_600_000;
/** The largest maxRuns: a billion (no bound at all is null). */
export const MAX_RUNS = 1_000_000_000;

const scheduleIdField = name().describe("The schedule's name, chosen by the caller: setting it again replaces its definition");

/**
 * An optional field that also takes null for none: a schedule as answered (nulls where a field is
 * not set) may be sent back as it is. Its description is the field's own.
 */
function orNull<T extends z.ZodType>(schema: T) {
  const either = schema.nullish().transform((value) => value ?? undefined);
  return schema.description === undefined ? either : either.describe(schema.description);
}

/** The task each run enqueues: an enqueue's fields that describe the work (not when, nor a key). */
export const scheduledTaskInput = z.strictObject({
  queue: enqueueFields.shape.queue,
  payload: enqueueFields.shape.payload,
  priority: enqueueFields.shape.priority,
  capability: orNull(enqueueFields.shape.capability),
  targetAgentId: orNull(enqueueFields.shape.targetAgentId),
  maxAttempts: orNull(enqueueFields.shape.maxAttempts),
  maxRunMs: orNull(enqueueFields.shape.maxRunMs.unwrap().describe("The run time limit of each run (tasks.enqueue's maxRunMs). Left out, the server's maxRunMs when the run is enqueued")),
  backoff: orNull(enqueueFields.shape.backoff),
  ttlMs: orNull(
    enqueueFields.shape.ttlMs.unwrap().describe("Each run expires this many ms after the time it was planned for (a Kubernetes CronJob's startingDeadlineSeconds): a run no agent started by then is cancelled as expired (its task.cancelled says expired: true) and the run after it enqueued. Left out, runs never expire"),
  ),
  orderingKey: orNull(
    enqueueFields.shape.orderingKey
      .unwrap()
      .describe(
        'Each run is enqueued with this orderingKey (tasks.enqueue\'s): it runs one at a time (keyConcurrency at a time) with the queue\'s other tasks of the key, in enqueue order. A run behind an unsettled task of the key (the run before it, or one a call enqueued) waits (status waiting) and stays the schedule\'s next run: it starts once the key\'s turn comes, at once if its time passed meanwhile, neither skipped nor run beside it. A run is enqueued when the one before it is claimed, and holds its place in the key\'s line from then (as any delayed task of a key): a task enqueued for the key after that runs after it. Left out, runs have none',
      ),
  ),
  keyConcurrency: orNull(enqueueFields.shape.keyConcurrency.unwrap().describe("With orderingKey: each run's keyConcurrency (how many tasks of the key may run at once; 1, the default, one at a time). Without an orderingKey, a 400")),
}).superRefine((task, ctx) => {
  // As tasks.enqueue refuses it: a share of a key needs the key.
  if (task.keyConcurrency !== undefined && task.orderingKey === undefined) {
    ctx.addIssue({ code: "custom", path: ["keyConcurrency"], message: "is how many tasks of its orderingKey may run at once: give an orderingKey with it" });
  }
});

export const setScheduleInput = z
  .strictObject({
    scheduleId: scheduleIdField,
    cron: orNull(
      text(200)
        .transform(canonicalCron)
        .describe(
          'When runs fall due, as a cron pattern: 5 fields (minute hour day-of-month month day-of-week, e.g. "0 9 * * MON-FRI"), or 6 with seconds first, or @daily, @hourly, @weekly, @monthly, @yearly. A day of the month and a day of the week both given match either. Give cron or everyMs',
        ),
    ),
    timezone: orNull(
      text(100).describe('The IANA time zone the cron pattern is read in ("Europe/Paris"); left out, UTC. Daylight saving time moves no run: a time skipped runs at the first time after the gap, a time that occurs twice runs once'),
    ),
    everyMs: orNull(int(MIN_EVERY_MS, MAX_EVERY_MS).describe(`Runs fall due every this many ms (${MIN_EVERY_MS} to ${MAX_EVERY_MS}), on the phase of startAt when given. Give cron or everyMs`)),
    startAt: orNull(
      dateInput.describe(
        "No run before this time. With everyMs, the first run's time, and the phase of the runs after it (a startAt that passed: the first run is due at once, the next on the phase); left out, everyMs after the set. With cron, the first time the pattern names from then",
      ),
    ),
    endAt: orNull(
      dateInput.describe(
        "No run falls due after this time: the write that leaves the schedule no run ahead for it (state ended, nextRunAt null) writes a schedule.ended event. Must be after startAt; a new schedule whose first run would come after it is refused (it would never run)",
      ),
    ),
    maxRuns: orNull(
      int(1, MAX_RUNS).describe(`No run after this many were claimed (runs, which counts on when the schedule is set again): the claim of the last one plans none after it, and a schedule.ended event says so. 1 to ${MAX_RUNS}`),
    ),
    overlap: z
      .enum(OVERLAPS)
      .default("allow")
      .describe(
        'While the last run (lastTaskId) still runs (claimed, or pending a retry): "allow" (the default), the next falls due on time and may run beside it; "skip", no run is enqueued until it settled (completed, dead-lettered or cancelled), the times that fell due meanwhile skipped: the next is the first the schedule names from then. Only the last run is waited for: runs claimed before the schedule was set to "skip", or requeued by an operator, may run beside it',
      ),
    task: scheduledTaskInput
      .default({ queue: "default", payload: {}, priority: 5, capability: undefined, targetAgentId: undefined, maxAttempts: undefined, maxRunMs: undefined, backoff: undefined, ttlMs: undefined, orderingKey: undefined, keyConcurrency: undefined }).describe("The task each run enqueues; left out, an empty payload on the default queue"),
  })
  .superRefine((input, ctx) => {
    if ((input.cron === undefined) === (input.everyMs === undefined)) {
      ctx.addIssue({ code: "custom", path: [input.cron === undefined ? "cron" : "everyMs"], message: "give cron or everyMs, one of them" });
      return;
    }
    if (input.endAt !== undefined && input.startAt !== undefined && input.endAt.getTime() <= input.startAt.getTime()) {
      return void ctx.addIssue({ code: "custom", path: ["endAt"], message: `must be after startAt (${input.startAt.toISOString()}): the schedule would never run` });
    }
    if (input.timezone !== undefined) {
      if (input.cron === undefined) return void ctx.addIssue({ code: "custom", path: ["timezone"], message: "is read with a cron pattern only: an interval needs none" });
      if (canonicalTimeZone(input.timezone) === undefined) {
        return void ctx.addIssue({ code: "custom", path: ["timezone"], message: `is no IANA time zone this server knows (got ${JSON.stringify(input.timezone)}); e.g. "Europe/Paris", "America/New_York", "UTC"` });
      }
    }
    if (input.cron !== undefined) {
      const problem = cronProblem(input.cron, input.timezone ?? null);
      if (problem !== null) return void ctx.addIssue({ code: "custom", path: ["cron"], message: `is no cron pattern the server takes: ${problem}` });
      // A pattern that names times, but none from startAt on (croner looks until the end of CRON_LAST_YEAR), would never run.
      const timing = { cron: input.cron, timezone: input.timezone ?? null, everyMs: null, startAt: input.startAt?.getTime() ?? null };
      if (input.startAt !== undefined && firstRunAt(timing, Date.now()) === null) {
        ctx.addIssue({ code: "custom", path: ["startAt"], message: `the cron pattern names no time from ${input.startAt.toISOString()} to the end of year ${CRON_LAST_YEAR}, as far as the server looks: the schedule would never run` });
      }
    }
  })
  // Stored as Node names the zone ("europe/paris" is "Europe/Paris"): the same zone set again is the same definition.
  .transform((input) => (input.timezone === undefined ? input : { ...input, timezone: canonicalTimeZone(input.timezone)! }));
export type SetScheduleInput = z.input<typeof setScheduleInput>;
export type SetScheduleRequest = z.output<typeof setScheduleInput>;

export const scheduleIdInput = z.strictObject({ scheduleId: scheduleIdField });

export const listSchedulesInput = z
  .strictObject({
    queue: name().optional().describe("Only the schedules whose runs go to this queue"),
    cursor: text(200).optional().describe("The nextCursor of the page before: the schedules after it, by id"),
    limit: int(1, 1000).default(100).describe("The most schedules in the page"),
  })
  .optional();

/** The task each run enqueues, every field filled in. */
export const scheduledTaskSchema = z.object({
  queue: z.string(),
  payload: jsonOutput,
  priority: z.number(),
  capability: z.string().nullable(),
  targetAgentId: z.string().nullable(),
  /** Null: the server's maxAttempts when the run is enqueued. */
  maxAttempts: z.number().nullable(),
  /** Null: the server's maxRunMs when the run is enqueued. Schedules stored before it answer null. */
  maxRunMs: z.number().nullable(),
  backoff: backoffSchema.nullable(),
  /** Null: its runs never expire. Schedules stored before it answer null. */
  ttlMs: z.number().nullable(),
  /** Null: its runs have no orderingKey. Schedules stored before it answer null. */
  orderingKey: z.string().nullable(),
  /** With an orderingKey, each run's keyConcurrency (1: one at a time); null without one. */
  keyConcurrency: z.number().int().nullable(),
});
export type ScheduledTask = z.infer<typeof scheduledTaskSchema>;

export const scheduleSchema = z
  .object({
    id: z.string(),
    cron: z.string().nullable().describe("The cron pattern; null for an interval"),
    timezone: z.string().nullable().describe("The time zone the pattern is read in; null for an interval"),
    everyMs: z.number().nullable().describe("The interval between runs in ms; null for a cron pattern"),
    startAt: z.date().nullable().describe("No run before this time, as set; null: none given"),
    endAt: z.date().nullable().describe("No run falls due after this time, as set; null: none given"),
    maxRuns: z.number().nullable().describe("No run after this many were claimed (runs); null: no bound"),
    overlap: z.enum(OVERLAPS).describe('"allow": a run falls due on time while the last one still runs; "skip": the next is enqueued only once the last one settled'),
    task: scheduledTaskSchema,
    paused: z.boolean().describe("Paused: no run is enqueued until it is resumed"),
    state: z
      .enum(SCHEDULE_STATES)
      .describe('Where it stands: "running", its next run waits in its queue (nextTaskId); "waiting", overlap "skip" holds its next run (due at nextRunAt at the earliest) until the last run (lastTaskId) settles; "paused"; "ended", no run ahead (its next time is past its endAt, its maxRuns were claimed, or its pattern names no time ahead)'),
    nextRunAt: z
      .date()
      .nullable()
      .describe('When its next run falls due (with overlap "skip" and no nextTaskId: the earliest, once the last run settled); null while paused, or with no run ahead (its pattern names no time before endAt, or maxRuns were claimed)'),
    nextTaskId: z
      .string()
      .nullable()
      .describe('The pending task of that run: claiming it (or cancelling it) enqueues the run after it. Null with a nextRunAt: overlap "skip" waits for the last run (lastTaskId) to settle before it enqueues it'),
    runs: z.number().describe("Runs claimed so far"),
    lastRunAt: z.date().nullable().describe("When the last run's task was first claimed"),
    lastTaskId: z.string().nullable().describe("That run's task"),
    setBy: z.string().nullable().describe("The credential that last set it (a token id); null on an open server or in-process"),
    createdAt: z.date(),
    updatedAt: z.date(),
  })
  .meta({ id: "Schedule" });
export type Schedule = z.infer<typeof scheduleSchema>;

export const setScheduleResultSchema = z.object({
  schedule: scheduleSchema,
  created: z.boolean().describe("true: no schedule had this id"),
  changed: z.boolean().describe("false: the same definition was set again (its next run stays as it was)"),
});
export type SetScheduleResult = z.infer<typeof setScheduleResultSchema>;

export const triggerScheduleResultSchema = z.object({
  schedule: scheduleSchema,
  task: taskSchema.describe("The run made due now: the schedule's pending run (nextTaskId)"),
});
export type TriggerScheduleResult = z.infer<typeof triggerScheduleResultSchema>;

export const scheduleListSchema = z.object({
  items: z.array(scheduleSchema),
  nextCursor: z.string().nullable().describe("Pass as cursor for the next page; null on the last"),
});
export type ScheduleList = z.infer<typeof scheduleListSchema>;
