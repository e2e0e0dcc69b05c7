// `coordination tasks get` says which schedule a task is a run of (the task's scheduleId). A team
// whose schedule and agents share an ordering key ("repo:42") sees a run waiting its turn beside
// tasks enqueued by calls: the table must tell them apart (cancelling a run skips it, and enqueues
// the schedule's next one). A task enqueued by a call shows no such row.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
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
