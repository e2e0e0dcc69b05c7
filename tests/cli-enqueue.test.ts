// `coordination tasks enqueue` and `coordination events publish`: work asked for and news told from
// a shell script, a cron job or a CI step. Each option lands in its field; a resend with
// --idempotency-key adds nothing; --wait waits as `tasks wait` does, with its output and exit codes.
import { createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CliProcess, killAllCli, runCli, runOperator, type CliExit } from "./helpers/cli-process.js";
import { ADMIN_SECRET, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/**
 * The command line against `server`, run in this process (runOperatorCommand, what the binary
 * calls): the same code, without a process start for each of the many refusals tested here. The
 * --wait test runs the binary itself.
 */
async function cli(server: { url: string }, ...args: string[]): Promise<CliExit> {
  return inProcess(args, { COORDINATION_URL: server.url });
}

const inProcess = (args: string[], env: Record<string, string>) => runOperator({ args, env });

/** The task id a `tasks enqueue` line starts with. */
const idOf = (stdout: string): string => stdout.split(" ")[0]!;

describe("coordination tasks enqueue", () => {
  it("puts each option in its field, prints the task's id first, and says when it runs", async () => {
    t = await startTestServer();
    const dependency = await t.api.tasks.enqueue.mutate({ queue: "before" });
    const before = Date.now();
    const made = await cli(
      t,
      ...["tasks", "enqueue", "--queue", "emails", "--payload", '{"to":"ops@example.com"}', "--priority", "2", "--capability", "smtp", "--target", "mailer-1"],
      ...["--delay", "5m", "--expires", "1h", "--max-attempts", "7", "--max-run", "90s", "--depends-on", ` ${dependency.id}, `, "--ordering-key", "ops", "--dedupe-key", "weekly"],
    );
    expect([made.code, made.stderr]).toEqual([0, ""]);
    const task = await t.api.tasks.get.query({ taskId: idOf(made.stdout) });
    expect(made.stdout).toBe(`${task.id} enqueued on queue emails, waiting (for its dependencies, or its turn)\n`);
    expect(task).toMatchObject({
      queue: "emails",
      payload: { to: "ops@example.com" },
      priority: 2,
      capability: "smtp",
      targetAgentId: "mailer-1",
      maxAttempts: 7,
      maxRunMs: 90_000,
      dependsOn: [dependency.id],
      orderingKey: "ops",
      dedupeKey: "weekly",
      status: "waiting",
    });
    expect(task.runAt.getTime()).toBeGreaterThanOrEqual(before + 300_000);
    expect(task.expiresAt!.getTime() - task.runAt.getTime()).toBeLessThanOrEqual(3_600_000);
    const delayed = await cli(t, "tasks", "enqueue", "--at", String(Date.now() + 3_600_000));
    expect(delayed.stdout).toMatch(/^\S+ enqueued on queue default, pending, due \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\n$/);
    const plain = await cli(t, "tasks", "enqueue", "--json");
    expect(JSON.parse(plain.stdout)).toMatchObject({ queue: "default", payload: {}, priority: 5, status: "pending", deduplicated: false, replayed: false });
  });

  it("run again with --idempotency-key, or with a dedupe key still waiting, it adds nothing", async () => {
    t = await startTestServer();
    const first = await cli(t, "tasks", "enqueue", "--queue", "q", "--idempotency-key", "nightly-2026-12-06");
    const again = await cli(t, "tasks", "enqueue", "--queue", "q", "--idempotency-key", "nightly-2026-12-06");
    // The same task, its id first; saying it was the first run's.
    expect([first.code, again.code, again.stdout]).toEqual([0, 0, `${idOf(first.stdout)} on queue q, pending: enqueued before with idempotency key "nightly-2026-12-06", nothing added\n`]);
    expect(first.stdout).toBe(`${idOf(first.stdout)} enqueued on queue q, pending\n`);
    expect(JSON.parse((await cli(t, "tasks", "enqueue", "--queue", "q", "--idempotency-key", "nightly-2026-12-06", "--json")).stdout)).toMatchObject({ id: idOf(first.stdout), replayed: true, deduplicated: false });
    const deduped = await cli(t, "tasks", "enqueue", "--queue", "q", "--dedupe-key", "d");
    const dedupedAgain = await cli(t, "tasks", "enqueue", "--queue", "q", "--dedupe-key", "d");
    expect(dedupedAgain.stdout).toBe(`${idOf(deduped.stdout)} on queue q, pending: enqueued before with dedupe key "d", nothing added\n`);
    expect((await t.api.tasks.list.query({ queue: "q" })).items).toHaveLength(2);
    // The same key with another payload: the server's 409, exit 1.
    const mismatch = await cli(t, "tasks", "enqueue", "--queue", "q", "--idempotency-key", "nightly-2026-12-06", "--payload", "1");
    expect([mismatch.code, mismatch.stderr]).toEqual([1, `coordination: IDEMPOTENCY_MISMATCH: idempotencyKey "nightly-2026-12-06" was used for task "${idOf(first.stdout)}" with a different payload; the options that differ: --payload\n`]);
    // An option left out differs too (the first run gave it): named by the option the command takes.
    const keyed = await cli(t, "tasks", "enqueue", "--queue", "q", "--idempotency-key", "k2", "--priority", "2", "--ordering-key", "o", "--key-concurrency", "3");
    const leftOut = await cli(t, "tasks", "enqueue", "--queue", "q", "--idempotency-key", "k2", "--ordering-key", "o");
    expect([leftOut.code, leftOut.stderr]).toEqual([1, `coordination: IDEMPOTENCY_MISMATCH: idempotencyKey "k2" was used for task "${idOf(keyed.stdout)}" with a different priority, keyConcurrency; the options that differ: --priority, --key-concurrency\n`]);
  });

  it("run again with --idempotency-key and --expires DURATION (its answer lost), it adds nothing: the expiry counts from when the task falls due", async () => {
    t = await startTestServer();
    const args = ["tasks", "enqueue", "--queue", "q", "--expires", "1h", "--idempotency-key", "report-2026-12"];
    const first = await cli(t, ...args);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const again = await cli(t, ...args);
    expect([first.code, again.code, again.stderr, again.stdout]).toEqual([0, 0, "", `${idOf(first.stdout)} on queue q, pending: enqueued before with idempotency key "report-2026-12", nothing added\n`]);
    const task = await t.api.tasks.get.query({ taskId: idOf(first.stdout) });
    expect(task.expiresAt!.getTime() - task.runAt.getTime()).toBe(3_600_000);
    // Due in 2 h, it may start up to 30 min after that (a time from now would fall before it: refused).
    const later = await cli(t, "tasks", "enqueue", "--queue", "q", "--at", String(Date.now() + 7_200_000), "--expires", "30m");
    expect([later.code, later.stderr]).toEqual([0, ""]);
    const laterTask = await t.api.tasks.get.query({ taskId: idOf(later.stdout) });
    expect(laterTask.expiresAt!.getTime() - laterTask.runAt.getTime()).toBe(1_800_000);
    expect((await t.api.tasks.list.query({ queue: "q" })).items).toHaveLength(2);
  });

  it("refuses --depends-on naming no task, and an option given twice, rather than drop what it was given", async () => {
    t = await startTestServer();
    const [a, b] = [await t.api.tasks.enqueue.mutate({ queue: "before" }), await t.api.tasks.enqueue.mutate({ queue: "before" })];
    const empty = await cli(t, "tasks", "enqueue", "--queue", "after", "--depends-on", "");
    expect([empty.code, empty.stderr.split("\n")[0]]).toEqual([2, 'coordination: --depends-on names no task (got ""): give the ids it waits for, separated by commas, or leave it out']);
    const twice = await cli(t, "tasks", "enqueue", "--queue", "after", "--depends-on", a.id, "--depends-on", b.id);
    expect([twice.code, twice.stderr.split("\n")[0]]).toEqual([2, "coordination: --depends-on is given twice (give it once, its values separated by commas)"]);
    const queueTwice = await cli(t, "tasks", "enqueue", "--queue", "after", "--queue=other");
    expect([queueTwice.code, queueTwice.stderr.split("\n")[0]]).toEqual([2, "coordination: --queue is given twice (give it once)"]);
    expect((await t.api.tasks.stats.query()).totals).toMatchObject({ pending: 2, waiting: 0 });
    const both = await cli(t, "tasks", "enqueue", "--queue", "after", "--depends-on", `${a.id},${b.id}`);
    expect((await t.api.tasks.get.query({ taskId: idOf(both.stdout) })).dependsOn).toEqual([a.id, b.id]);
  });

  it("--on-dependency-failure cancel: a dependency dead-lettered cancels the task, one dead-lettered already is refused; tasks get says which", async () => {
    t = await startTestServer();
    const build = await t.api.tasks.enqueue.mutate({ queue: "build", maxAttempts: 1 });
    const deploy = await cli(t, "tasks", "enqueue", "--queue", "deploy", "--depends-on", build.id, "--on-dependency-failure", "cancel");
    expect([deploy.code, deploy.stderr]).toEqual([0, ""]);
    const waits = await cli(t, "tasks", "enqueue", "--queue", "report", "--depends-on", build.id);
    const deployId = idOf(deploy.stdout);
    expect((await t.api.tasks.get.query({ taskId: deployId })).onDependencyFailure).toBe("cancel");
    expect((await cli(t, "tasks", "get", deployId)).stdout).toMatch(new RegExp(`^depends on\\s+${build.id} \\(pending\\)\n^dependency failure\\s+a dependency dead-lettered cancels it$`, "m"));
    expect((await cli(t, "tasks", "get", idOf(waits.stdout))).stdout).toMatch(/^dependency failure\s+waits for a dead-lettered dependency's requeue$/m);
    await t.api.tasks.claim.mutate({ agentId: "builder", queues: ["build"], context: false });
    await t.api.tasks.fail.mutate({ taskId: build.id, agentId: "builder", error: "compile error" });
    expect((await t.api.tasks.get.query({ taskId: deployId })).status).toBe("cancelled");
    expect((await t.api.tasks.get.query({ taskId: idOf(waits.stdout) })).status).toBe("waiting");
    // Its dependency dead-lettered already: the server refuses it, naming the dependency; nothing is added.
    const late = await cli(t, "tasks", "enqueue", "--queue", "deploy", "--depends-on", build.id, "--on-dependency-failure", "cancel");
    expect([late.code, late.stderr]).toEqual([1, `coordination: INVALID_STATE: dependsOn[0]: task "${build.id}" is dead_letter, so a task depending on it would be cancelled (onDependencyFailure "cancel") (requeue it first)\n`]);
    // What it cannot send: a value that is neither, or one with no --depends-on to apply to.
    const bogus = await cli(t, "tasks", "enqueue", "--depends-on", build.id, "--on-dependency-failure", "skip");
    expect([bogus.code, bogus.stderr.split("\n")[0]]).toEqual([2, 'coordination: --on-dependency-failure is wait or cancel (got "skip")']);
    const alone = await cli(t, "tasks", "enqueue", "--on-dependency-failure", "cancel");
    expect([alone.code, alone.stderr.split("\n")[0]]).toEqual([2, "coordination: --on-dependency-failure says what a dependency's dead letter does to the task: give --depends-on too"]);
    expect((await t.api.tasks.list.query({ queue: "deploy" })).items.map((task) => task.id)).toEqual([deployId]);
  });

  it("--depends-on a dead letter, under the default wait: enqueued, and told on stderr that it waits for that dead letter's requeue", async () => {
    t = await startTestServer();
    const build = await t.api.tasks.enqueue.mutate({ queue: "build", maxAttempts: 1 });
    const lint = await t.api.tasks.enqueue.mutate({ queue: "lint" });
    await t.api.tasks.claim.mutate({ agentId: "builder", queues: ["build"], context: false });
    await t.api.tasks.fail.mutate({ taskId: build.id, agentId: "builder", error: "compile error" });
    // A task that nothing will ever start unless someone requeues the build: the enqueue says so.
    const report = await cli(t, "tasks", "enqueue", "--queue", "report", "--depends-on", `${lint.id},${build.id}`);
    expect(report.code).toBe(0);
    expect(report.stdout).toBe(`${idOf(report.stdout)} enqueued on queue report, waiting (for its dependencies, or its turn)\n`);
    expect(report.stderr).toBe(
      `coordination: its dependency ${build.id} is dead-lettered: the task waits until it is requeued (tasks requeue ${build.id}) and completes; --on-dependency-failure cancel refuses such a dependency\n`,
    );
    expect((await t.api.tasks.get.query({ taskId: idOf(report.stdout) })).status).toBe("waiting");
    // --json: the answer alone on stdout, the note on stderr as well.
    const json = await cli(t, "tasks", "enqueue", "--queue", "report", "--depends-on", build.id, "--json");
    expect(JSON.parse(json.stdout)).toMatchObject({ status: "waiting", dependsOn: [build.id] });
    expect(json.stderr).toMatch(/^coordination: its dependency \S+ is dead-lettered: /);
    // None dead-lettered: nothing said.
    const fine = await cli(t, "tasks", "enqueue", "--queue", "report", "--depends-on", lint.id);
    expect([fine.code, fine.stderr]).toEqual([0, ""]);
  });

  it("--wait: waits for the task as tasks wait does: the result on stdout and exit 0, the enqueue on stderr; 3 dead-lettered, 4 not in time", async () => {
    t = await startTestServer();
    const api = t.api;
    const waiting = new CliProcess({ args: ["tasks", "enqueue", "--queue", "build", "--payload", '{"ref":"main"}', "--wait", "--json"], env: { COORDINATION_URL: t.url } });
    await vi.waitFor(() => expect(waiting.stderr).toMatch(/ enqueued on queue build, pending\n$/), { timeout: 60_000, interval: 50 });
    const [claimed] = await api.tasks.claimMany.mutate({ agentId: "builder", queues: ["build"], limit: 1 });
    expect(claimed!.payload).toEqual({ ref: "main" });
    await api.tasks.complete.mutate({ taskId: claimed!.id, agentId: "builder", result: { artifact: "app.tgz" } });
    const done = await waiting.waitForExit(60_000);
    expect([done.code, JSON.parse(done.stdout)]).toMatchObject([0, { id: claimed!.id, status: "completed", result: { artifact: "app.tgz" } }]);
    expect(done.stderr).toBe(`${claimed!.id} enqueued on queue build, pending\n`);

    const failing = new CliProcess({ args: ["tasks", "enqueue", "--queue", "build", "--max-attempts", "1", "--wait"], env: { COORDINATION_URL: t.url } });
    await vi.waitFor(() => expect(failing.stderr).toMatch(/ enqueued on queue build, pending\n$/), { timeout: 60_000, interval: 50 });
    const [doomed] = await api.tasks.claimMany.mutate({ agentId: "builder", queues: ["build"], limit: 1 });
    await api.tasks.fail.mutate({ taskId: doomed!.id, agentId: "builder", error: "compiler crashed" });
    const dead = await failing.waitForExit(60_000);
    expect(dead.code).toBe(3);
    expect(dead.stdout).toMatch(/last error +compiler crashed/);
    expect(dead.stderr).toBe(`${doomed!.id} enqueued on queue build, pending\ncoordination: task ${doomed!.id} was dead-lettered\n`);

    const late = await runCli({ args: ["tasks", "enqueue", "--queue", "nobody", "--wait", "--timeout", "1s"], env: { COORDINATION_URL: t.url } }, 60_000);
    expect(late.code).toBe(4);
    expect(late.stderr).toMatch(/^(\S+) enqueued on queue nobody, pending\ncoordination: task \1 had not settled in 1s \(it is pending\)\n$/);
  });

  it("refuses what it cannot send, naming the option; the server's refusals name the option too", async () => {
    t = await startTestServer();
    const usage = async (...args: string[]) => {
      const exit = await cli(t!, "tasks", "enqueue", ...args);
      return [exit.code, exit.stderr.split("\n")[0]];
    };
    expect(await usage("--at", "2030-01-01T00:00:00Z", "--delay", "5m")).toEqual([2, "coordination: tasks enqueue takes --at or --delay, not both"]);
    expect(await usage("--timeout", "5s")).toEqual([2, "coordination: --timeout bounds --wait: give --wait too"]);
    expect(await usage("--payload", "{oops")).toEqual([2, 'coordination: --payload must be JSON (got "{oops")']);
    expect(await usage("--priority", "high")).toEqual([2, "coordination: --priority must be a whole number"]);
    expect(await usage("--max-run", "forever")).toEqual([2, 'coordination: --max-run must be a length of time from 1ms to 366d, such as 30s, 10m or 2h (got "forever")']);
    expect(await usage("some-id")).toEqual([2, "coordination: tasks enqueue takes no TASK_ID (got some-id): the server names the task"]);
    expect(await usage("--reason", "x")).toEqual([2, expect.stringMatching(/^coordination: tasks enqueue does not take --reason \(it takes --queue, /)]);
    expect(await usage("--priority", "2000000")).toEqual([2, expect.stringMatching(/^coordination: INVALID_INPUT: --priority: /)]);
    expect(await usage("--depends-on", "no-such-task")).toEqual([1, expect.stringMatching(/^coordination: TASK_NOT_FOUND: /)]);
    // Said as what they are not: a negative number, a delay past the server's bound, an expiry of nothing.
    expect(await usage("--priority", "-1")).toEqual([2, "coordination: --priority must be 0 or more (got -1)"]);
    expect(await usage("--delay", "99999d")).toEqual([2, 'coordination: --delay is at most 36600d, 100 years (got "99999d")']);
    expect(await usage("--expires", "0s")).toEqual([2, "coordination: --expires 0s would end the task before it could run: give a length of time (30s, 5m, 1h, 1d), a time, or never"]);
    // Unix seconds (date +%s) read as ms would be a time in 1970: the task would run at once.
    expect(await usage("--at", "1800000000")).toEqual([2, "coordination: --at 1800000000 would be 1970-01-21T20:00:00.000Z (digits are Unix ms): for Unix seconds give 1800000000000, or an ISO 8601 time such as 2030-01-01T09:00:00Z"]);
    expect(await usage("--expires", "1800000000")).toEqual([2, expect.stringMatching(/^coordination: --expires 1800000000 would be 1970-01-21T20:00:00.000Z \(digits are Unix ms\)/)]);
    expect((await t.api.tasks.stats.query()).totals).toMatchObject({ pending: 0, waiting: 0 });
    const inMs = await cli(t, "tasks", "enqueue", "--at", "1800000000000");
    expect((await t.api.tasks.get.query({ taskId: idOf(inMs.stdout) })).runAt.toISOString()).toBe("2027-01-15T08:00:00.000Z");
  });
});

describe("coordination, interrupted", () => {
  it("a command stuck on a server that takes its call and never answers ends on SIGTERM (exit 143) or Ctrl-C (130), saying what was asked may have been done", async () => {
    // A server frozen with its port open: it takes connections and the requests on them, and answers nothing.
    const sockets: Socket[] = [];
    let requests = 0;
    const frozen = createTcpServer((socket) => {
      sockets.push(socket);
      socket.on("data", () => requests++);
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => frozen.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(frozen.address() as AddressInfo).port}`;
    try {
      for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
        const before = requests;
        const stuck = new CliProcess({ args: ["tasks", "enqueue", "--queue", "q"], env: { COORDINATION_URL: url } });
        await vi.waitFor(() => expect(requests).toBeGreaterThan(before), { timeout: 60_000, interval: 20 });
        stuck.kill(signal);
        const exit = await stuck.waitForExit(60_000);
        expect([exit.code, exit.stdout, exit.stderr]).toEqual([code, "", `coordination: interrupted (${signal}) while waiting for the server's answer: what was asked may have been done\n`]);
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => frozen.close(() => resolve()));
    }
  });
});

describe("coordination events publish", () => {
  it("publishes TYPE with its payload, source and target; an agent token's agent is the source left out; an admin names one", async () => {
    const s = await startSecureServer();
    t = s;
    const admin = (...args: string[]) => inProcess(["events", "publish", ...args], { COORDINATION_URL: s.url, COORDINATION_TOKEN: ADMIN_SECRET });
    const told = await admin("build.finished", "--payload", '{"ok":true}', "--source", "ci", "--target", "deployer", "--idempotency-key", "build-41");
    expect([told.code, told.stderr]).toEqual([0, ""]);
    const [event] = await s.admin.events.list.query({ types: ["build.finished"] });
    expect(event).toMatchObject({ type: "build.finished", source: "ci", target: "deployer", payload: { ok: true } });
    expect(told.stdout).toBe(`event ${event!.seq} published: build.finished from ci, to deployer's mailbox\n`);
    // Run again with its key (its answer lost): the event it stored, not a second one.
    expect((await admin("build.finished", "--payload", '{"ok":true}', "--source", "ci", "--target", "deployer", "--idempotency-key", "build-41")).stdout).toBe(told.stdout);
    expect(await s.admin.events.list.query({ types: ["build.finished"] })).toHaveLength(1);
    const unnamed = await admin("build.started");
    expect([unnamed.code, unnamed.stderr]).toEqual([2, "coordination: INVALID_INPUT: --source: is required\n"]);
    const agentToken = await s.admin.tokens.create.mutate({ role: "agent", agentId: "planner-1" });
    const asAgent = await inProcess(["events", "publish", "plan.ready", "--json"], { COORDINATION_URL: s.url, COORDINATION_TOKEN: agentToken.secret });
    expect([asAgent.code, JSON.parse(asAgent.stdout)]).toMatchObject([0, { type: "plan.ready", source: "planner-1", target: null, payload: {} }]);
    // The server's own namespace is not an agent's to publish into.
    const system = await inProcess(["events", "publish", "task.completed"], { COORDINATION_URL: s.url, COORDINATION_TOKEN: agentToken.secret });
    expect([system.code, system.stderr]).toEqual([1, expect.stringMatching(/^coordination: FORBIDDEN: /)]);
    const usage = await admin("a.b", "c.d");
    expect([usage.code, usage.stderr.split("\n")[0]]).toEqual([2, "coordination: events publish takes one TYPE (got 2)"]);
  });
});
