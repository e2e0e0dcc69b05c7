// `coordination memory recall|remember|forget`: what a task's claim is handed, the lesson an
// operator writes for a queue's tasks, and a misleading memory forgotten, at a terminal.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runCli, runOperator, type CliExit } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The command line against the test's server, in this process (runOperator: what the binary calls). */
async function cli(...args: string[]): Promise<Pick<CliExit, "code" | "stdout" | "stderr">> {
  const { code, stdout, stderr } = await runOperator({ args, env: { COORDINATION_URL: t!.url } });
  return { code, stdout, stderr };
}

describe("coordination memory", () => {
  it("remember writes a lesson for a queue; recall --task shows what its tasks' claims are handed; forget deletes one for good", async () => {
    t = await startTestServer();
    const lesson = await cli("memory", "remember", "Never deploy on Fridays:\non-call is thin", "--kind", "lesson", "--queue", "deploys", "--capability", "kubectl", "--agent", "ops", "--tags", "deploy, friday,");
    expect([lesson.code, lesson.stderr]).toEqual([0, ""]);
    const [id] = lesson.stdout.split(" ");
    expect(lesson.stdout).toBe(`${id} remembered: a lesson, about queue deploys, capability kubectl, agent ops\n`);
    const misleading = await t.api.memory.remember.mutate({ content: "deploys may skip the canary", queue: "deploys" });
    await t.api.memory.remember.mutate({ content: "the staging database password rotates monthly" });
    const task = await t.api.tasks.enqueue.mutate({ queue: "deploys", payload: { service: "api" } });

    const recalled = await cli("memory", "recall", "--task", task.id, "--limit", "5", "--json");
    const handed = JSON.parse(recalled.stdout) as Array<{ memory: { id: string; kind: string; tags: string[] } }>;
    expect(handed.map(({ memory }) => memory.id).sort()).toEqual([id, misleading.id].sort());
    expect(handed.find(({ memory }) => memory.id === id)!.memory).toMatchObject({ kind: "lesson", tags: ["deploy", "friday"] });
    // What the claim is handed: the same memories.
    const claimed = await t.api.tasks.claim.mutate({ agentId: "deployer", queues: ["deploys"] });
    expect(claimed!.context.map((match) => match.memory.id).sort()).toEqual([id, misleading.id].sort());

    // The table: a line each, the content on one line.
    const table = await cli("memory", "recall", "password");
    expect(table.stdout.split("\n")[0]).toMatch(/^ID +KIND +SCORE +ABOUT +CREATED +CONTENT$/);
    expect(table.stdout.split("\n").slice(1)).toEqual([expect.stringMatching(/^\S+ +note +\d\.\d{3} +- +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +the staging database password rotates monthly$/), ""]);
    expect((await cli("memory", "recall", "--task", task.id)).stdout).toContain("lesson  ");
    expect((await cli("memory", "recall", "--task", task.id)).stdout).toContain("Never deploy on Fridays: on-call is thin");
    expect(await cli("memory", "recall", "zebra crossing")).toEqual({ code: 0, stdout: "no memory matches\n", stderr: "" });

    const forgotten = await cli("memory", "forget", misleading.id);
    expect(forgotten).toEqual({ code: 0, stdout: `${misleading.id} forgotten: it is recalled no more (it was a note: deploys may skip the canary)\n`, stderr: "" });
    expect((await t.api.memory.recall.query({ taskId: task.id })).map(({ memory }) => memory.id)).toEqual([id]);
    expect(await cli("memory", "forget", misleading.id)).toEqual({ code: 1, stdout: "", stderr: `coordination: MEMORY_NOT_FOUND: memory "${misleading.id}" not found\n` });
  });

  it("refuses what it cannot send, naming the option; the binary routes memory to these commands", async () => {
    t = await startTestServer();
    const first = async (...args: string[]) => {
      const exit = await cli("memory", ...args);
      return [exit.code, exit.stderr.split("\n")[0]];
    };
    expect(await first()).toEqual([2, "coordination: memory needs recall, remember or forget"]);
    expect(await first("learn", "x")).toEqual([2, 'coordination: unknown command "memory learn"']);
    expect(await first("remember")).toEqual([2, "coordination: memory remember takes one TEXT (got 0): quote it"]);
    expect(await first("remember", "a", "b")).toEqual([2, "coordination: memory remember takes one TEXT (got 2): quote it"]);
    expect(await first("remember", "x", "--kind", "execution")).toEqual([2, 'coordination: --kind must be note or lesson (got "execution")']);
    expect(await first("remember", "   ")).toEqual([2, expect.stringMatching(/^coordination: INVALID_INPUT: .*must not be blank/)]);
    expect(await first("recall", "a", "b")).toEqual([2, "coordination: memory recall takes one TEXT (got 2): quote it"]);
    expect(await first("recall", "--limit", "500")).toEqual([2, expect.stringMatching(/^coordination: INVALID_INPUT: --limit: /)]);
    expect(await first("recall", "--task", "no-such-task")).toEqual([1, 'coordination: TASK_NOT_FOUND: task "no-such-task" not found']);
    expect(await first("forget", "x", "--queue", "q")).toEqual([2, "coordination: memory forget does not take --queue (it takes none of its own)"]);
    const viaBinary = await runCli({ args: ["memory", "remember", "from the binary", "--json"], env: { COORDINATION_URL: t.url } }, 60_000);
    expect([viaBinary.code, JSON.parse(viaBinary.stdout)]).toMatchObject([0, { kind: "note", content: "from the binary" }]);
  });
});
