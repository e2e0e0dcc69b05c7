// A schedule's runs with an orderingKey wait (status waiting) and stay its next run. A server of
// the version before that (its last migration 20270106000000_token_kv_prefixes) takes a waiting
// next run for one taken elsewhere: its schedule-repair job enqueues a second run beside it, and
// that run (as every run it enqueues) without the key. So that version must refuse the file once
// this one has served it, as it refuses any file migrated by a later version.
import { cpSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultMigrationsDir } from "../src/db/migrate.js";
import { checkBeforeMigrating } from "../src/db/startup-checks.js";
import { makeTempDir, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The last migration of the version before schedules took an orderingKey. */
const LAST_BEFORE_KEYED_SCHEDULES = "20270106000000_token_kv_prefixes";

describe("a file served by this version, schedules with an orderingKey", () => {
  it("is refused by the version before keyed schedules (its migrations), which would run a waiting run twice and without its key", async () => {
    t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ queue: "k", orderingKey: "repo:1" });
    await t.api.tasks.claim.mutate({ agentId: "a", queues: ["k"], context: false });
    const { schedule } = await t.api.schedules.set.mutate({ scheduleId: "s", everyMs: 3_600_000, task: { queue: "k", orderingKey: "repo:1" } });
    expect(await t.api.tasks.get.query({ taskId: schedule.nextTaskId! })).toMatchObject({ status: "waiting" });
    const dbPath = t.dbPath;
    await t.stop();

    // The migrations the earlier version ships: this version's up to its last.
    const earlier = makeTempDir();
    for (const name of readdirSync(defaultMigrationsDir())) {
      if (name === "migration_lock.toml" || name <= LAST_BEFORE_KEYED_SCHEDULES) cpSync(join(defaultMigrationsDir(), name), join(earlier, name), { recursive: true });
    }
    expect(() => checkBeforeMigrating({ dbPath }, earlier)).toThrow(/migrated by a newer version of coordination/);
  });
});
