// `coordination schedules get` (and set, pause, resume, which print the same) shows every bound of
// a schedule's definition: its startAt too, as it shows endAt. "Set again, what it is not given is
// left out": an operator who sets a schedule again from what the command showed must see the
// start, or the set drops it and moves an interval's phase (every run of "every 1h from :30" would
// move to the minute of the set).
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("schedules get shows startAt", () => {
  it("says the start of an interval and of a cron schedule, and nothing for one without", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const every = await runOperator({ args: ["schedules", "set", "sync42", "--every", "1h", "--start", "2030-03-01T00:30:00Z", "--queue", "sync", "--ordering-key", "repo:42"], env });
    expect([every.code, every.stdout.split("\n")[0]]).toEqual([0, "created: schedule sync42: every 1h, from 2030-03-01 00:30:00 UTC"]);
    const got = await runOperator({ args: ["schedules", "get", "sync42"], env });
    expect([got.code, got.stdout.split("\n")[0]]).toEqual([0, "schedule sync42: every 1h, from 2030-03-01 00:30:00 UTC"]);
    const cron = await runOperator({ args: ["schedules", "set", "digest", "--cron", "0 9 * * *", "--start", "2030-03-01T00:00:00Z", "--end", "2031-01-01T00:00:00Z"], env });
    expect([cron.code, cron.stdout.split("\n")[0]]).toEqual([0, "created: schedule digest: 0 9 * * * (UTC), from 2030-03-01 00:00:00 UTC, until 2031-01-01 00:00:00 UTC"]);
    const plain = await runOperator({ args: ["schedules", "set", "sweep", "--every", "10m"], env });
    expect([plain.code, plain.stdout.split("\n")[0]]).toEqual([0, "created: schedule sweep: every 10m"]);
  });
});
