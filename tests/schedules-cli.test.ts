// The operator's schedule commands. `schedules set` refusals name the option the operator typed,
// as every other command's do (FLAG_OF_FIELD): the server names a schedule's task fields
// "task.priority", "task.ttlMs", "task.queue", which no operator typed. `coordination schedules`
// lists them all. `schedules get` (and set, pause, resume, which print the same) shows every bound
// of a definition, startAt as endAt: "set again, what it is not given is left out", so an operator
// who sets a schedule again from what the command showed must see the start, or the set drops it
// and moves an interval's phase. `tasks get` says which schedule a task is a run of: a run waiting
// its key's turn beside tasks enqueued by calls must be told apart (cancelling a run skips it, and
// enqueues the schedule's next one). `schedules get` says when a keyed next run waits in its key's
// line: its time is then only the earliest it may start.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("schedules set refusals", () => {
  it("name --priority, --ttl and --queue, not task.priority, task.ttlMs and task.queue", async () => {
    t = await startTestServer();
    const run = (...args: string[]) => runOperator({ args: ["schedules", "set", "nightly", "--every", "1m", ...args, "--url", t!.url] });
    const priority = await run("--priority", "2000000");
    expect(priority.code).toBe(2);
    expect(priority.stderr).toBe("coordination: INVALID_INPUT: --priority: must be at most 1000000\n");
    const ttl = await run("--ttl", "100000d");
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toMatch(/^coordination: INVALID_INPUT: --ttl: must be at most \d+\n$/);
    const queue = await run("--queue", "");
    expect(queue.code).toBe(2);
    expect(queue.stderr).toBe("coordination: INVALID_INPUT: --queue: must be at least 1 character long\n");
    // Nothing was set by the refused calls.
    expect((await t.api.schedules.list.query({})).items).toEqual([]);
  });
});

describe("schedules list", () => {
  it("lists every schedule, over as many pages as their answers take (large payloads cut a page below 1,000)", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    // About 20 KB each: three to a page of 64 KiB.
    for (let i = 0; i < 8; i++) await t.api.schedules.set.mutate({ scheduleId: `s${i}`, everyMs: 3_600_000, task: { queue: "big", payload: { text: "x".repeat(20_000) } } });
    expect((await t.api.schedules.list.query({ limit: 1000 })).nextCursor).not.toBeNull();
    const listed = await runOperator({ args: ["schedules", "--url", t.url] });
    expect([listed.code, listed.stderr]).toEqual([0, ""]);
    expect(listed.stdout.split("\n").filter((line) => /^s\d /.test(line)).map((line) => line.split(" ")[0])).toEqual(["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"]);
    const json = JSON.parse((await runOperator({ args: ["schedules", "--json", "--url", t.url] })).stdout);
    expect([json.items.length, json.nextCursor]).toEqual([8, null]);
  });
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

describe("tasks get names the schedule of a run", () => {
  it("shows the schedule of a run waiting behind its key, and none for an enqueued task", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const adhoc = await t.api.tasks.enqueue.mutate({ queue: "sync", payload: { repo: 42 }, orderingKey: "repo:42" });
    const { schedule } = await t.api.schedules.set.mutate({ scheduleId: "sync42", everyMs: 300_000, task: { queue: "sync", orderingKey: "repo:42" } });
    const run = await runOperator({ args: ["tasks", "get", schedule.nextTaskId!], env });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/\nschedule\s+sync42 \(a run of it\)\n/);
    expect(run.stdout).toMatch(/\nstatus\s+waiting\n/);
    const other = await runOperator({ args: ["tasks", "get", adhoc.id], env });
    expect(other.code).toBe(0);
    expect(other.stdout).not.toMatch(/\nschedule\s/);
  });
});

describe("schedules get says a keyed next run waits in its key's line", () => {
  it("adds that it waits for the tasks of its key before it, and says nothing of the kind once its turn came", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    // A task of the key runs first: the schedule's run waits behind it.
    const adhoc = await t.api.tasks.enqueue.mutate({ queue: "sync", payload: { repo: 42 }, orderingKey: "repo:42" });
    const { schedule } = await t.api.schedules.set.mutate({ scheduleId: "sync42", everyMs: 300_000, task: { queue: "sync", orderingKey: "repo:42" } });
    const waiting = await runOperator({ args: ["schedules", "get", "sync42"], env });
    expect(waiting.code).toBe(0);
    expect(waiting.stdout.split("\n")[2]).toBe(
      `  next run  ${schedule.nextRunAt!.toISOString().slice(0, 19).replace("T", " ")} UTC (task ${schedule.nextTaskId}), at the earliest: it waits for the tasks of its key before it to settle`,
    );
    // The key's task settles: the run is pending, due at its time, and said as such.
    const lease = (await t.api.tasks.claim.mutate({ agentId: "w", queues: ["sync"], context: false }))!;
    expect(lease.id).toBe(adhoc.id);
    await t.api.tasks.complete.mutate({ taskId: adhoc.id, agentId: "w", leaseToken: lease.leaseToken, result: null });
    expect((await t.api.tasks.get.query({ taskId: schedule.nextTaskId! })).status).toBe("pending");
    const due = await runOperator({ args: ["schedules", "get", "sync42"], env });
    expect(due.stdout.split("\n")[2]).toBe(`  next run  ${schedule.nextRunAt!.toISOString().slice(0, 19).replace("T", " ")} UTC (task ${schedule.nextTaskId})`);
    // --json is the schedule as the server answers it, with no extra call.
    expect(JSON.parse((await runOperator({ args: ["schedules", "get", "sync42", "--json"], env })).stdout)).toMatchObject({ id: "sync42", nextTaskId: schedule.nextTaskId, state: "running" });
  });
});

describe("a schedule in a time zone the command's machine does not know", () => {
  it("is shown with its times in UTC, naming the zone, and the command that acted on it succeeds", async () => {
    t = await startTestServer();
    const { schedule } = await t.api.schedules.set.mutate({ scheduleId: "kyiv", cron: "0 9 * * *", timezone: "Europe/Paris", task: { queue: "k" } });
    // What a server whose Node knows a newer zone than this machine's (tzdata adds zones) answers:
    // a zone this machine's Intl refuses. Stored by hand, as only reads and a trigger follow (none reads the pattern).
    withDatabase(t, (db) => db.prepare(`UPDATE schedules SET timezone = 'Mars/Olympus_Mons' WHERE id = 'kyiv'`).run());
    const planned = schedule.nextRunAt!.toISOString().replace("T", " ").slice(0, 19);
    const shown = await runOperator({ args: ["schedules", "get", "kyiv", "--url", t.url] });
    expect([shown.code, shown.stderr]).toEqual([0, ""]);
    expect(shown.stdout.split("\n")).toContain(`  next run  ${planned} UTC (in Mars/Olympus_Mons, a time zone this machine does not know) (task ${schedule.nextTaskId})`);
    const triggered = await runOperator({ args: ["schedules", "trigger", "kyiv", "--url", t.url] });
    expect([triggered.code, triggered.stderr, triggered.stdout.split("\n")[0]]).toEqual([0, "", `triggered: task ${schedule.nextTaskId} is due now`]);
    expect(triggered.stdout).toContain(" UTC (in Mars/Olympus_Mons, a time zone this machine does not know) (task ");
  });
});
