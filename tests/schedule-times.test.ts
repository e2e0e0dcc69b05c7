// When a schedule's runs fall due (src/schedules/next-run.ts): cron patterns read in a time zone,
// across daylight saving time, and intervals that keep their phase and skip what was missed.
// Pure functions of a time: every case is exact.
import { describe, expect, it } from "vitest";
import { canonicalCron, canonicalTimeZone, cronProblem, firstRunAt, resumedRunAt, runAfter, type Timing } from "../src/schedules/next-run.js";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const cron = (pattern: string, timezone: string | null = "UTC", startAt: number | null = null): Timing => ({ cron: pattern, timezone, everyMs: null, startAt });
const every = (everyMs: number, startAt: number | null = null, anchorAt: number | null = startAt): Timing => ({ cron: null, timezone: null, everyMs, startAt, anchorAt });

describe("cron patterns", () => {
  it("are read in their time zone: 9:00 on weekdays in Paris is 8:00 UTC in winter, 7:00 in summer; a Friday's next is Monday", () => {
    const weekdays = cron("0 9 * * MON-FRI", "Europe/Paris");
    // Thursday 2026-12-03, 13:00 UTC: the next is Friday 9:00 CET.
    expect(iso(firstRunAt(weekdays, at("2026-12-03T13:00:00Z")))).toBe("2026-12-04T08:00:00.000Z");
    expect(iso(runAfter(weekdays, at("2026-12-04T08:00:00Z"), at("2026-12-04T08:00:00.250Z")))).toBe("2026-12-07T08:00:00.000Z");
    expect(iso(firstRunAt(weekdays, at("2026-07-01T12:00:00Z")))).toBe("2026-07-02T07:00:00.000Z");
    expect(iso(firstRunAt(cron("0 9 * * *", "America/New_York"), at("2026-12-03T13:00:00Z")))).toBe("2026-12-03T14:00:00.000Z");
  });

  it("across daylight saving time: a time the clocks skip runs at the first time after the gap, a time they repeat runs once", () => {
    // 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    const small = cron("30 2 * * *", "Europe/Paris");
    expect(iso(firstRunAt(small, at("2026-03-28T12:00:00Z")))).toBe("2026-03-29T01:00:00.000Z");
    expect(iso(runAfter(small, at("2026-03-29T01:00:00Z"), at("2026-03-29T01:00:01Z")))).toBe("2026-03-30T00:30:00.000Z");
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, the run once.
    const first = runAfter(small, at("2026-10-24T00:30:00Z"), at("2026-10-24T00:30:01Z"));
    expect(iso(first)).toBe("2026-10-25T00:30:00.000Z");
    expect(iso(runAfter(small, first!, first! + 1000))).toBe("2026-10-26T01:30:00.000Z");
  });

  it("across daylight saving time, lists and ranges of wall-clock times are wall-clock times too (as Vixie cron has it); a pattern with a wildcard or a step follows the clock", () => {
    const runs = (timing: Timing, from: string, until: string) => {
      const out: string[] = [];
      for (let t = runAfter(timing, at(from), at(from)); t !== null && t < at(until); t = runAfter(timing, t, t)) out.push(iso(t)!);
      return out;
    };
    // Spring forward in Paris: 02:00 and 02:30 do not exist; each runs once, at 03:00 CEST.
    expect(runs(cron("0,30 2 * * *", "Europe/Paris"), "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z")).toEqual(["2026-03-29T01:00:00.000Z"]);
    expect(runs(cron("0 2,14 * * *", "Europe/Paris"), "2026-03-28T20:00:00Z", "2026-03-29T10:00:00Z")).toEqual(["2026-03-29T01:00:00.000Z"]);
    // Fall back: 02:00 and 02:30 happen twice; each runs once.
    expect(runs(cron("0,30 2 * * *", "Europe/Paris"), "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z")).toEqual(["2026-10-25T00:00:00.000Z", "2026-10-25T00:30:00.000Z"]);
    expect(runs(cron("0 2,14 * * *", "Europe/Paris"), "2026-10-24T20:00:00Z", "2026-10-25T10:00:00Z")).toEqual(["2026-10-25T00:00:00.000Z"]);
    // Every 30 minutes by the clock: none in the skipped hour, both halves of the repeated one.
    expect(runs(cron("*/30 * * * *", "Europe/Paris"), "2026-03-29T00:40:00Z", "2026-03-29T01:40:00Z")).toEqual(["2026-03-29T01:00:00.000Z", "2026-03-29T01:30:00.000Z"]);
    expect(runs(cron("*/30 * * * *", "Europe/Paris"), "2026-10-25T00:10:00Z", "2026-10-25T01:10:00Z")).toEqual(["2026-10-25T00:30:00.000Z", "2026-10-25T01:00:00.000Z"]);
  });

  it("with seconds as a sixth field; the run after one taken late is the first time after the take, not a backlog", () => {
    const everySecond = cron("* * * * * *");
    expect(iso(firstRunAt(everySecond, at("2026-12-03T13:00:00.400Z")))).toBe("2026-12-03T13:00:01.000Z");
    // Due at :01, claimed at :07.3: the next is :08, the six missed are skipped.
    expect(iso(runAfter(everySecond, at("2026-12-03T13:00:01Z"), at("2026-12-03T13:00:07.300Z")))).toBe("2026-12-03T13:00:08.000Z");
  });

  it("startAt: no run before it; a time the pattern names at startAt itself is the first run", () => {
    expect(iso(firstRunAt(cron("0 * * * *", "UTC", at("2027-01-01T05:00:00Z")), at("2026-12-03T13:20:00Z")))).toBe("2027-01-01T05:00:00.000Z");
    expect(iso(firstRunAt(cron("0 * * * *", "UTC", at("2027-01-01T05:00:01Z")), at("2026-12-03T13:20:00Z")))).toBe("2027-01-01T06:00:00.000Z");
    // A startAt that passed bounds nothing.
    expect(iso(firstRunAt(cron("0 * * * *", "UTC", at("2020-01-01T00:00:00Z")), at("2026-12-03T13:20:00Z")))).toBe("2026-12-03T14:00:00.000Z");
  });

  it("a pattern the server does not take says why; one that names no time ahead is refused", () => {
    expect(cronProblem("0 9 * * MON-FRI", "Europe/Paris")).toBeNull();
    expect(cronProblem("61 9 * * *", null)).toBe("Invalid value for minute: 61");
    const fieldCount = (n: number) => `must have 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, or be one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly alone: it has ${n}`;
    expect([cronProblem("0 9 * *", null), cronProblem("0 0 0 1 1 * 2020", null), cronProblem("every monday", null), cronProblem("@daily 5", null)]).toEqual([fieldCount(4), fieldCount(7), fieldCount(2), fieldCount(2)]);
    expect([cronProblem("@daily", null), cronProblem("@midnight", null), cronProblem(" 0  9 * * *\n", null)]).toEqual([null, null, null]);
    expect(canonicalCron(" 0  9\t* * *\n")).toBe("0 9 * * *");
    expect(cronProblem("0 0 30 2 *", null)).toBe("names no time from now on");
    // The letter case of the zone Node lists; a link Node knows by another name is kept as given (Node 20 lists Asia/Kolkata as Asia/Calcutta).
    expect(["Europe/Paris", "europe/paris", "UTC", "utc", "Asia/Kolkata", "Europe/Kyiv", "Mars/Olympus_Mons", ""].map(canonicalTimeZone)).toEqual(["Europe/Paris", "Europe/Paris", "UTC", "UTC", "Asia/Kolkata", "Europe/Kyiv", undefined, undefined]);
  });
});

describe("intervals", () => {
  it("run everyMs after the set, or at startAt (at once when it passed)", () => {
    const now = at("2026-12-03T13:00:00Z");
    expect(firstRunAt(every(60_000), now)).toBe(now + 60_000);
    expect(firstRunAt(every(60_000, now + 5000), now)).toBe(now + 5000);
    expect(firstRunAt(every(60_000, now - 5000), now)).toBe(now);
  });

  it("keep the phase of their startAt: a startAt that passed makes the first run due at once, and the runs after it fall on startAt + k × everyMs; a resume waits for the next of those", () => {
    const startAt = at("2026-12-03T00:00:30Z");
    const now = at("2026-12-03T14:06:36.991Z");
    const timing = every(60_000, startAt);
    expect(firstRunAt(timing, now)).toBe(now);
    expect(iso(runAfter(timing, now, now + 200))).toBe("2026-12-03T14:07:30.000Z");
    expect(iso(runAfter(timing, at("2026-12-03T14:07:30Z"), at("2026-12-03T14:09:31Z")))).toBe("2026-12-03T14:10:30.000Z");
    expect(iso(resumedRunAt(timing, now))).toBe("2026-12-03T14:07:30.000Z");
    // A startAt ahead: the resume waits for it; no startAt: everyMs from the resume; a cron pattern: as when set.
    expect(resumedRunAt(every(60_000, now + 5000), now)).toBe(now + 5000);
    expect(resumedRunAt(every(60_000), now)).toBe(now + 60_000);
    // No startAt: the phase fixed when it was set (its anchor), not the resume's.
    expect(iso(resumedRunAt(every(60_000, null, at("2026-12-03T10:00:10Z")), now))).toBe("2026-12-03T14:07:10.000Z");
    expect(iso(resumedRunAt(cron("0 * * * *"), now))).toBe("2026-12-03T15:00:00.000Z");
  });

  it("keep their phase: the run after one taken late is the next of due + k × everyMs after the take, the missed ones skipped", () => {
    const due = at("2026-12-03T13:00:00Z");
    expect(runAfter(every(60_000), due, due + 200)).toBe(due + 60_000);
    expect(runAfter(every(60_000), due, due + 60_000)).toBe(due + 120_000);
    expect(runAfter(every(60_000), due, due + 5 * 60_000 + 1)).toBe(due + 6 * 60_000);
  });

  it("a run past the end of year 9999 is none", () => {
    expect(runAfter(every(366 * 24 * 3_600_000), at("9999-06-01T00:00:00Z"), at("9999-06-01T00:00:01Z"))).toBeNull();
    // croner looks for a cron pattern's times until the end of 2999.
    expect(iso(firstRunAt(cron("0 0 * * *"), at("2999-12-30T12:00:00Z")))).toBe("2999-12-31T00:00:00.000Z");
    expect(firstRunAt(cron("0 0 * * *"), at("2999-12-31T12:00:00Z"))).toBeNull();
  });
});
