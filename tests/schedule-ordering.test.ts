// A schedule's runs with an orderingKey (schedules.set task.orderingKey, task.keyConcurrency): each
// run is enqueued with the key, so it waits behind the queue's unsettled tasks of that key (the run
// before it, or one a call enqueued) and starts when the key's turn comes. A run that waits is
// still the schedule's next run: nothing that follows runs taken elsewhere (the schedule-repair
// job, a set, a trigger) may take it for a run gone missing, and a pause or a new definition
// cancels it as it cancels a pending one.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const HOUR = 3_600_000;

/** The ids and statuses of a queue's tasks, oldest first. */
async function tasksOf(api: TestServer["api"], queue: string): Promise<Array<[string, string]>> {
  const items = (await api.tasks.list.query({ queue, limit: 100 })).items;
  return items.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id)).map((task) => [task.id, task.status]);
}

describe("a schedule's runs with an orderingKey", () => {
  it("a run behind its key waits and stays the schedule's next run (repair job, the same set again, a trigger); it starts when the key's task before it settles, and the run after it waits behind it", async () => {
    // The repair job runs only when the test says (runNow).
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const stranded = () => t!.server.services.db.read("schedules.stranded", undefined);
    // A task a call enqueued holds the key, and runs.
    const adHoc = await api.tasks.enqueue.mutate({ queue: "sync", orderingKey: "repo:1", payload: { by: "hand" } });
    expect((await api.tasks.claim.mutate({ agentId: "a", queues: ["sync"], context: false }))?.id).toBe(adHoc.id);

    const startAt = new Date(Date.now() - 1000);
    const definition = { scheduleId: "sync-repo", everyMs: HOUR, startAt, task: { queue: "sync", payload: { repo: 1 }, orderingKey: "repo:1" } };
    const set = await api.schedules.set.mutate(definition);
    // A startAt that passed: the first run is due at the set, the next ones on startAt's phase.
    expect(set).toMatchObject({ created: true, schedule: { state: "running", runs: 0, nextRunAt: set.schedule.createdAt, task: { orderingKey: "repo:1", keyConcurrency: 1 } } });
    const firstRun = set.schedule.nextTaskId!;
    expect(await api.tasks.get.query({ taskId: firstRun })).toMatchObject({ status: "waiting", orderingKey: "repo:1", keyConcurrency: 1, scheduleId: "sync-repo", runAt: set.schedule.createdAt });
    expect(await tasksOf(api, "sync")).toEqual([[adHoc.id, "claimed"], [firstRun, "waiting"]]);

    // Waiting is not gone: no repair, no second run, nothing skipped.
    expect(await stranded()).toBe(false);
    await t.server.services.jobs.scheduleRepair.runNow();
    expect(await api.schedules.set.mutate(definition)).toMatchObject({ created: false, changed: false, schedule: { nextTaskId: firstRun, runs: 0 } });
    expect(await api.schedules.get.query({ scheduleId: "sync-repo" })).toMatchObject({ state: "running", nextTaskId: firstRun, nextRunAt: set.schedule.createdAt, runs: 0 });
    expect(await api.tasks.claim.mutate({ agentId: "b", queues: ["sync"], context: false })).toBeNull();
    // A trigger makes it due now; it still waits for the key's turn.
    const triggered = await api.schedules.trigger.mutate({ scheduleId: "sync-repo" });
    expect(triggered.task).toMatchObject({ id: firstRun, status: "waiting" });
    expect(await tasksOf(api, "sync")).toEqual([[adHoc.id, "claimed"], [firstRun, "waiting"]]);

    // The key's task settles: the run starts, and the run after it waits behind it.
    await api.tasks.complete.mutate({ taskId: adHoc.id, agentId: "a", result: null });
    const run = await api.tasks.claim.mutate({ agentId: "b", queues: ["sync"], context: false });
    expect(run).toMatchObject({ id: firstRun, scheduleId: "sync-repo", payload: { repo: 1 } });
    const running = await api.schedules.get.query({ scheduleId: "sync-repo" });
    expect(running).toMatchObject({ state: "running", runs: 1, lastTaskId: firstRun, nextRunAt: new Date(startAt.getTime() + HOUR) });
    const secondRun = running.nextTaskId!;
    expect(await api.tasks.get.query({ taskId: secondRun })).toMatchObject({ status: "waiting", orderingKey: "repo:1", runAt: running.nextRunAt });
    expect(await stranded()).toBe(false);
    await t.server.services.jobs.scheduleRepair.runNow();
    expect(await api.schedules.get.query({ scheduleId: "sync-repo" })).toEqual(running);

    // The run completes: the next one is pending, due when planned.
    await api.tasks.complete.mutate({ taskId: firstRun, agentId: "b", result: null });
    expect(await api.tasks.get.query({ taskId: secondRun })).toMatchObject({ status: "pending", runAt: running.nextRunAt });
    expect(await tasksOf(api, "sync")).toEqual([[adHoc.id, "completed"], [firstRun, "completed"], [secondRun, "pending"]]);
  });

  it("a pause, a new definition or a removal cancels a run that waits behind its key", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const startAt = new Date(Date.now() - 1000);
    await api.tasks.enqueue.mutate({ queue: "k", orderingKey: "acct:7" });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["k"], context: false });
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "bill", everyMs: HOUR, startAt, task: { queue: "k", orderingKey: "acct:7" } });
    const waiting = schedule.nextTaskId!;

    const paused = await api.schedules.pause.mutate({ scheduleId: "bill" });
    expect(paused).toMatchObject({ state: "paused", nextTaskId: null });
    expect(await api.tasks.get.query({ taskId: waiting })).toMatchObject({ status: "cancelled" });
    const resumed = await api.schedules.resume.mutate({ scheduleId: "bill" });
    const again = resumed.nextTaskId!;
    expect(await api.tasks.get.query({ taskId: again })).toMatchObject({ status: "waiting" });
    // Set with another key: the waiting run is cancelled, the new one is pending (its key is free).
    const changed = await api.schedules.set.mutate({ scheduleId: "bill", everyMs: HOUR, startAt, task: { queue: "k", orderingKey: "acct:8", keyConcurrency: 2 } });
    expect(changed).toMatchObject({ changed: true, schedule: { task: { orderingKey: "acct:8", keyConcurrency: 2 } } });
    expect(await api.tasks.get.query({ taskId: again })).toMatchObject({ status: "cancelled" });
    expect(await api.tasks.get.query({ taskId: changed.schedule.nextTaskId! })).toMatchObject({ status: "pending", orderingKey: "acct:8", keyConcurrency: 2 });
    // Back on the held key, then removed: its waiting run goes with it.
    const back = await api.schedules.set.mutate({ scheduleId: "bill", everyMs: HOUR, startAt, task: { queue: "k", orderingKey: "acct:7" } });
    expect(await api.tasks.get.query({ taskId: back.schedule.nextTaskId! })).toMatchObject({ status: "waiting" });
    await api.schedules.remove.mutate({ scheduleId: "bill" });
    expect(await api.tasks.get.query({ taskId: back.schedule.nextTaskId! })).toMatchObject({ status: "cancelled" });

  });

  it("over REST: keyConcurrency without an orderingKey is a 400 naming task.keyConcurrency; a schedule stored before the fields answers null for both", async () => {
    t = await startTestServer();
    const refused = await rest(t.url, "POST", "/schedules/s", { everyMs: HOUR, task: { queue: "q", keyConcurrency: 2 } });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: "INVALID_INPUT", message: expect.stringMatching(/^task\.keyConcurrency: is how many tasks of its orderingKey may run at once: give an orderingKey with it/) });
    const ok = await rest(t.url, "POST", "/schedules/s", { everyMs: HOUR, task: { queue: "q", orderingKey: "k" } });
    expect(ok.status).toBe(200);
    expect((ok.body as { schedule: { task: unknown } }).schedule.task).toMatchObject({ orderingKey: "k", keyConcurrency: 1 });
    await t.api.schedules.set.mutate({ scheduleId: "old", everyMs: HOUR, task: { queue: "q" } });
    // What a server before ordering keys stored: the task without the two fields.
    withDatabase(t, (db) => db.prepare(`UPDATE schedules SET task = json_remove(task, '$.orderingKey', '$.keyConcurrency') WHERE id = 'old'`).run());
    expect((await t.api.schedules.get.query({ scheduleId: "old" })).task).toMatchObject({ orderingKey: null, keyConcurrency: null });
    // ... and the same definition sent again is the same (no run replaced).
    const before = await t.api.schedules.get.query({ scheduleId: "old" });
    expect(await t.api.schedules.set.mutate({ scheduleId: "old", everyMs: HOUR, task: { queue: "q" } })).toMatchObject({ changed: false, schedule: { nextTaskId: before.nextTaskId } });
  });

  it("the operator's command sets --ordering-key and --key-concurrency (and a run's --capability, --target, --max-attempts) on a schedule, the first two on a task, and shows them", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const set = await runOperator({ args: ["schedules", "set", "nightly", "--every", "1h", "--queue", "n", "--ordering-key", "tenant:a", "--key-concurrency", "2", "--capability", "gpu", "--target", "w-1", "--max-attempts", "5"], env });
    expect(set.stderr).toBe("");
    expect(set.code).toBe(0);
    expect(set.stdout).toContain(`  task      queue n, priority 5, payload {}, capability gpu, agent w-1, 5 attempts, key "tenant:a", 2 at a time\n`);
    expect((await t.api.schedules.get.query({ scheduleId: "nightly" })).task).toMatchObject({ orderingKey: "tenant:a", keyConcurrency: 2, capability: "gpu", targetAgentId: "w-1", maxAttempts: 5 });
    const enqueued = await runOperator({ args: ["tasks", "enqueue", "--queue", "m", "--ordering-key", "tenant:b", "--key-concurrency", "3"], env });
    expect(enqueued.code).toBe(0);
    const id = enqueued.stdout.split(" ")[0]!;
    expect(await t.api.tasks.get.query({ taskId: id })).toMatchObject({ orderingKey: "tenant:b", keyConcurrency: 3 });
    // Behind a task of its key, with no dependency: it waits for its turn, and says so alone.
    await runOperator({ args: ["tasks", "enqueue", "--queue", "m", "--ordering-key", "solo"], env });
    const behind = await runOperator({ args: ["tasks", "enqueue", "--queue", "m", "--ordering-key", "solo"], env });
    expect(behind.stdout).toBe(`${behind.stdout.split(" ")[0]} enqueued on queue m, waiting (for its turn behind the tasks of its ordering key)\n`);
    // Without a key: refused by the server, naming the option.
    const bare = await runOperator({ args: ["schedules", "set", "bare", "--every", "1h", "--key-concurrency", "2"], env });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/--key-concurrency: is how many tasks of its orderingKey may run at once: give an orderingKey with it/);
    const bareTask = await runOperator({ args: ["tasks", "enqueue", "--key-concurrency", "2"], env });
    expect(bareTask.code).toBe(2);
    expect(bareTask.stderr).toMatch(/--key-concurrency: is how many tasks of its orderingKey may run at once: give an orderingKey with it/);
  });
});
