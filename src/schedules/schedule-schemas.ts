// Wire shapes of schedules (schedules.set, get, list, remove, pause, resume): recurring tasks, by
// a cron pattern in a time zone or by a fixed interval.
import { z } from "zod";
import { jsonOutput } from "../json-value.js";
import { int, name, text } from "../schema-parts.js";
import { backoffSchema, dateInput, enqueueFields } from "../tasks/task-schemas.js";
import { cronProblem, isTimeZone } from "./next-run.js";

/** The shortest interval between runs, in ms: a second, as a cron pattern's finest field. */
export const MIN_EVERY_MS = 1000;
/** The longest interval between runs, in ms: a year (a longer one is a cron pattern with a month). */
export const MAX_EVERY_MS = 366 * 24 * 3_600_000;

const scheduleIdField = name().describe("The schedule's name, chosen by the caller: setting it again replaces its definition");

/** The task each run enqueues: an enqueue's fields that describe the work (not when, nor a key). */
export const scheduledTaskInput = z.strictObject({
  queue: enqueueFields.shape.queue,
  payload: enqueueFields.shape.payload,
  priority: enqueueFields.shape.priority,
  capability: enqueueFields.shape.capability,
  targetAgentId: enqueueFields.shape.targetAgentId,
  maxAttempts: enqueueFields.shape.maxAttempts,
  backoff: enqueueFields.shape.backoff,
});

export const setScheduleInput = z
  .strictObject({
    scheduleId: scheduleIdField,
    cron: text(200)
      .optional()
      .describe(
        'When runs fall due, as a cron pattern: 5 fields (minute hour day-of-month month day-of-week, e.g. "0 9 * * MON-FRI"), or 6 with seconds first. A day of the month and a day of the week both given match either. Give cron or everyMs',
      ),
    timezone: text(100).optional().describe('The IANA time zone the cron pattern is read in ("Europe/Paris"); left out, UTC. Daylight saving time moves no run: a time skipped runs at the first time after the gap, a time that occurs twice runs once'),
    everyMs: int(MIN_EVERY_MS, MAX_EVERY_MS).optional().describe(`Runs fall due every this many ms (${MIN_EVERY_MS} to ${MAX_EVERY_MS}), from startAt. Give cron or everyMs`),
    startAt: dateInput
      .optional()
      .describe("No run before this time. With everyMs, the first run's time (at once if it passed); left out, everyMs after the set. With cron, the first time the pattern names from then"),
    task: scheduledTaskInput.default({ queue: "default", payload: {}, priority: 5 }).describe("The task each run enqueues; left out, an empty payload on the default queue"),
  })
  .superRefine((input, ctx) => {
    if ((input.cron === undefined) === (input.everyMs === undefined)) {
      ctx.addIssue({ code: "custom", path: [input.cron === undefined ? "cron" : "everyMs"], message: "give cron or everyMs, one of them" });
      return;
    }
    if (input.timezone !== undefined) {
      if (input.cron === undefined) return void ctx.addIssue({ code: "custom", path: ["timezone"], message: "is read with a cron pattern only: an interval needs none" });
      if (!isTimeZone(input.timezone)) return void ctx.addIssue({ code: "custom", path: ["timezone"], message: `is no IANA time zone this server knows (got ${JSON.stringify(input.timezone)}); e.g. "Europe/Paris", "America/New_York", "UTC"` });
    }
    if (input.cron !== undefined) {
      const problem = cronProblem(input.cron, input.timezone ?? null);
      if (problem !== null) ctx.addIssue({ code: "custom", path: ["cron"], message: `is no cron pattern the server takes: ${problem}` });
    }
  });
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
  backoff: backoffSchema.nullable(),
});
export type ScheduledTask = z.infer<typeof scheduledTaskSchema>;

export const scheduleSchema = z
  .object({
    id: z.string(),
    cron: z.string().nullable().describe("The cron pattern; null for an interval"),
    timezone: z.string().nullable().describe("The time zone the pattern is read in; null for an interval"),
    everyMs: z.number().nullable().describe("The interval between runs in ms; null for a cron pattern"),
    startAt: z.date().nullable().describe("No run before this time, as set; null: none given"),
    task: scheduledTaskSchema,
    paused: z.boolean().describe("Paused: no run is enqueued until it is resumed"),
    nextRunAt: z.date().nullable().describe("When its next run falls due; null while paused, or when the pattern names no time ahead"),
    nextTaskId: z.string().nullable().describe("The pending task of that run: claiming it (or cancelling it) enqueues the run after it"),
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

export const scheduleListSchema = z.object({
  items: z.array(scheduleSchema),
  nextCursor: z.string().nullable().describe("Pass as cursor for the next page; null on the last"),
});
export type ScheduleList = z.infer<typeof scheduleListSchema>;
