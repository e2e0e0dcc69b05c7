// When a schedule's runs fall due (src/schedules/next-run.ts): cron patterns read in a time zone,
// across daylight saving time, and intervals that keep their phase and skip what was missed.
// Pure functions of a time: every case is exact.
import { describe, expect, it } from "vitest";
import { cronProblem, firstRunAt, isTimeZone, runAfter, type Timing } from "../src/schedules/next-run.js";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const cron = (pattern: string, timezone: string | null = "UTC", startAt: number | null = null): Timing => ({ cron: pattern, timezone, everyMs: null, startAt });
const every = (everyMs: number, startAt: number | null = null): Timing => ({ cron: null, timezone: null, everyMs, startAt });

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
    expect(cronProblem("0 9 * *", null)).toMatch(/^invalid configuration format \('0 9 \* \*'\), exactly five, six, or seven space separated parts are required\.$/);
    expect(cronProblem("0 0 0 1 1 * 2020", null)).toMatch(/requires exactly 5 or 6 parts/);
    expect(cronProblem("0 0 30 2 *", null)).toBe("names no time from now on");
    expect([isTimeZone("Europe/Paris"), isTimeZone("UTC"), isTimeZone("Mars/Olympus_Mons"), isTimeZone("")]).toEqual([true, true, false, false]);
  });
});

describe("intervals", () => {
  it("run everyMs after the set, or at startAt (at once when it passed)", () => {
    const now = at("2026-12-03T13:00:00Z");
    expect(firstRunAt(every(60_000), now)).toBe(now + 60_000);
    expect(firstRunAt(every(60_000, now + 5000), now)).toBe(now + 5000);
    expect(firstRunAt(every(60_000, now - 5000), now)).toBe(now);
  });

  it("keep their phase: the run after one taken late is the next of due + k × everyMs after the take, the missed ones skipped", () => {
    const due = at("2026-12-03T13:00:00Z");
    expect(runAfter(every(60_000), due, due + 200)).toBe(due + 60_000);
    expect(runAfter(every(60_000), due, due + 60_000)).toBe(due + 120_000);
    expect(runAfter(every(60_000), due, due + 5 * 60_000 + 1)).toBe(due + 6 * 60_000);
  });

  it("a run past the end of year 9999 is none", () => {
    expect(runAfter(every(366 * 24 * 3_600_000), at("9999-06-01T00:00:00Z"), at("9999-06-01T00:00:01Z"))).toBeNull();
    expect(firstRunAt(cron("0 0 1 1 *"), at("9999-06-01T00:00:00Z"))).toBeNull();
  });
});
