// When a schedule's runs fall due: a cron pattern read in an IANA time zone (croner: it knows the
// calendar, ranges, steps, names, L and W, and what daylight saving time does to a wall-clock
// time), or a fixed interval. Pure functions of the schedule's timing and a time, in Unix ms.
import { Cron } from "croner";
import { MAX_TIME_MS } from "../json-value.js";

/** How a schedule's runs are timed: `cron` (with `timezone`) or `everyMs`, from `startAt` when given. */
export interface Timing {
  cron: string | null;
  timezone: string | null;
  everyMs: number | null;
  startAt: number | null;
}

/**
 * 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first. A day of the
 * month and a day of the week both given match either one, as Vixie cron reads them.
 */
const patternOf = (cron: string, timezone: string | null) => new Cron(cron, { timezone: timezone ?? "UTC", mode: "5-or-6-parts" });

/** Why `cron` is no pattern the server takes (croner's words), or null when it is one. */
export function cronProblem(cron: string, timezone: string | null): string | null {
  try {
    const next = patternOf(cron, timezone).nextRun();
    return next === null ? "names no time from now on" : null;
  } catch (error) {
    return (error instanceof Error ? error.message : String(error)).replace(/^Cron\w*: /, "");
  }
}

/** Whether `timezone` is an IANA time zone this server's Node knows ("Europe/Paris", "UTC"). */
export function isTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/** The first time the cron pattern names strictly after `after`, or null when it names none (in range). */
function cronAfter(timing: Timing & { cron: string }, after: number): number | null {
  const next = patternOf(timing.cron, timing.timezone).nextRun(new Date(after))?.getTime() ?? null;
  return next === null || next > MAX_TIME_MS ? null : next;
}

/**
 * When a schedule set (or resumed) at `now` runs first: an interval at startAt (at once if that
 * passed), else `everyMs` from now; a cron pattern at the first time it names from startAt or
 * now, whichever is later. Null: the pattern names no time ahead.
 */
export function firstRunAt(timing: Timing, now: number): number | null {
  if (timing.cron === null) {
    if (timing.startAt !== null) return Math.max(timing.startAt, now);
    const at = now + timing.everyMs!;
    return at > MAX_TIME_MS ? null : at;
  }
  // nextRun is strictly after the time it is given: a startAt the pattern names is its first run.
  return cronAfter({ ...timing, cron: timing.cron }, Math.max(now, (timing.startAt ?? now) - 1));
}

/**
 * The run after the one due at `dueAt`, taken (claimed or cancelled) at `now`: the first time the
 * schedule names after both. An interval keeps its phase (dueAt + k × everyMs): the runs missed
 * meanwhile are skipped, not made up. Null: the pattern names no time ahead.
 */
export function runAfter(timing: Timing, dueAt: number, now: number): number | null {
  if (timing.cron === null) {
    const every = timing.everyMs!;
    const at = dueAt + every * Math.max(1, Math.floor((now - dueAt) / every) + 1);
    return at > MAX_TIME_MS ? null : at;
  }
  return cronAfter({ ...timing, cron: timing.cron }, Math.max(dueAt, now));
}
