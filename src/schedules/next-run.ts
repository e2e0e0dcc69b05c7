// When a schedule's runs fall due: a cron pattern read in an IANA time zone (croner: it knows the
// calendar, ranges, steps, names, L and W, and what daylight saving time does to a wall-clock
// time), or a fixed interval. Pure functions of the schedule's timing and a time, in Unix ms.
import { Cron } from "croner";
import { MAX_TIME_MS } from "../json-value.js";

/**
 * How a schedule's runs are timed: `cron` (with `timezone`) or `everyMs`, from `startAt` when
 * given. `anchorAt`: an interval's phase, its runs at anchorAt + k × everyMs (null: none fixed yet).
 */
export interface Timing {
  cron: string | null;
  timezone: string | null;
  everyMs: number | null;
  startAt: number | null;
  anchorAt?: number | null;
}

/** The last year croner looks for a cron pattern's next time in: a cron schedule with none before its end has no run ahead. */
export const CRON_LAST_YEAR = 2999;

/**
 * 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first. A day of the
 * month and a day of the week both restricted match either one. Daylight saving time, as Vixie
 * cron has it: a pattern whose seconds, minutes and hours hold no wildcard or step (`30 2`,
 * `0,30 2`, `0 2,14`) names wall-clock times, so one the clocks skip runs at the first time after
 * the gap and one they repeat runs once (croner's "no-wildcard" rule); any other (`*\/15 * …`)
 * follows the clock, none in a skipped hour and both of a repeated one.
 */
const patternOf = (cron: string, timezone: string | null) => new Cron(cron, { timezone: timezone ?? "UTC", mode: "5-or-6-parts", fixedTimeRule: "no-wildcard" });

/** The nicknames croner reads in place of 5 fields (@daily is "0 0 * * *"). */
const NICKNAMES = /^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$/i;

/** A cron pattern as stored: its fields separated by one space, nothing around them. */
export const canonicalCron = (cron: string): string => cron.trim().split(/\s+/).join(" ");

/** Why `cron` is no pattern the server takes (croner's words past the count of fields), or null when it is one. */
export function cronProblem(cron: string, timezone: string | null): string | null {
  const fields = canonicalCron(cron).split(" ");
  if (NICKNAMES.test(fields[0]!) ? fields.length !== 1 : fields.length !== 5 && fields.length !== 6) {
    return `must have 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, or be one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly alone: it has ${fields.length}`;
  }
  try {
    const next = patternOf(cron, timezone).nextRun();
    return next === null ? "names no time from now on" : null;
  } catch (error) {
    return (error instanceof Error ? error.message : String(error)).replace(/^Cron\w*: /, "");
  }
}

/** The IANA zones this Node lists, by their names in lower case (for their letter case). */
let listedZones: Map<string, string> | undefined;

/**
 * `timezone` with the letter case of the zone this Node lists under that name ("europe/paris" is
 * "Europe/Paris"; "utc" is "UTC"), or as given when Node knows it by another name (a link such as
 * "Asia/Kolkata", which Node 20 lists as "Asia/Calcutta": renaming it would change with the Node
 * version). Undefined when it is no time zone Node knows.
 */
export function canonicalTimeZone(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    return undefined;
  }
  if (timezone.toUpperCase() === "UTC") return "UTC";
  listedZones ??= new Map(Intl.supportedValuesOf("timeZone").map((zone) => [zone.toLowerCase(), zone]));
  return listedZones.get(timezone.toLowerCase()) ?? timezone;
}

/**
 * The first time the cron pattern names strictly after `after`, or null when it names none (in
 * range), or none this server can read. A set checks pattern and zone (cronProblem), but a stored
 * one may still be unreadable here: set by another server on the file whose Node knows a zone
 * this one does not (tzdata adds zones), or whose croner took a pattern this one refuses. Thrown,
 * it would fail the write that plans the run after one (a claim, a cancel, the expiry job's page),
 * and every one after it that takes that run: a queue no claim gets through. It has no run ahead
 * here instead (state "ended"), until set again.
 */
function cronAfter(timing: Timing & { cron: string }, after: number): number | null {
  let next: number | null;
  try {
    next = patternOf(timing.cron, timing.timezone).nextRun(new Date(after))?.getTime() ?? null;
  } catch {
    return null;
  }
  return next === null || next > MAX_TIME_MS ? null : next;
}

/** An interval's phase when its timing is set at `now`: startAt, else everyMs after the set. */
export const intervalAnchor = (timing: Timing, now: number): number => timing.startAt ?? now + timing.everyMs!;

/**
 * When a schedule whose timing was set at `now` runs first: an interval at startAt (at once if
 * that passed), else at its anchor (everyMs after the set); a cron pattern at the first time it
 * names from startAt or now, whichever is later. Null: the pattern names no time ahead.
 */
export function firstRunAt(timing: Timing, now: number): number | null {
  if (timing.cron === null) {
    const at = timing.startAt !== null ? Math.max(timing.startAt, now) : (timing.anchorAt ?? intervalAnchor(timing, now));
    return at > MAX_TIME_MS ? null : at;
  }
  // nextRun is strictly after the time it is given: a startAt the pattern names is its first run.
  return cronAfter({ ...timing, cron: timing.cron }, Math.max(now, (timing.startAt ?? now) - 1));
}

/**
 * The run after the one due at `dueAt`, taken (claimed or cancelled) at `now`: the first time the
 * schedule names after both. An interval keeps its phase, from startAt when it has one, else from
 * its first run (dueAt + k × everyMs): the runs missed meanwhile are skipped, not made up. Null:
 * the pattern names no time ahead.
 */
export function runAfter(timing: Timing, dueAt: number, now: number): number | null {
  // Never before startAt: a run made due early (schedules.trigger) leaves the first one planned ahead.
  const from = Math.max(dueAt, now, (timing.startAt ?? Number.NEGATIVE_INFINITY) - 1);
  if (timing.cron === null) {
    const every = timing.everyMs!;
    const anchor = timing.anchorAt ?? timing.startAt ?? dueAt;
    // Before its phase's first run (a trigger before it): that run is the next.
    if (from < anchor) return anchor > MAX_TIME_MS ? null : anchor;
    const at = anchor + every * (Math.floor((from - anchor) / every) + 1);
    return at > MAX_TIME_MS ? null : at;
  }
  return cronAfter({ ...timing, cron: timing.cron }, from);
}

/**
 * When a schedule resumed at `now` runs next: a cron pattern as when it was set; an interval on
 * its phase, the first anchorAt + k × everyMs from now (a resume makes up for nothing).
 */
export function resumedRunAt(timing: Timing, now: number): number | null {
  if (timing.cron !== null) return firstRunAt(timing, now);
  const anchor = timing.anchorAt ?? intervalAnchor(timing, now);
  if (anchor >= now) return anchor > MAX_TIME_MS ? null : anchor;
  return runAfter({ ...timing, anchorAt: anchor }, anchor, now);
}
