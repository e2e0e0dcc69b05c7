// A run's log from the operator's command line (coordination tasks logs TASK_ID), as a real
// process against a real server: a line each (number, UTC time to the millisecond, level, agent
// and run, message, data), --json a JSON object a line, the lines the log dropped said, pages up
// to 10,000 lines, and --follow: each new line as it comes until the task settles (exit 0), or
// Ctrl-C. A test that runs many processes one after another names a bound of its own: each takes
// a second or more to start on a loaded machine.
import { afterEach, describe, expect, it, vi } from "vitest";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { CliProcess, killAllCli, runOperator, type CliOptions } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The command run to its end: its bound is only there to fail a hung command, never a slow machine's (runOperator's own is 60 s). */
const run = (options: Pick<CliOptions, "args" | "env">) => runOperator(options, 120_000);

/** A log line's time as the CLI prints it: UTC to the millisecond, marked Z. */
const stamp = (date: Date): string => date.toISOString().replace("T", " ");

/** `value` as --json prints it: dates as ISO text. */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

/** NDJSON's objects. */
const ndjson = (text: string): unknown[] => text.split("\n").filter(Boolean).map((line) => JSON.parse(line) as unknown);

/** A task enqueued in `queue` and claimed by `agentId`. */
async function claimed(server: TestServer, agentId = "agent-1", queue = "logs") {
  const { id } = await server.api.tasks.enqueue.mutate({ queue });
  const task = await server.api.tasks.claim.mutate({ agentId, queues: [queue], context: false });
  expect(task?.id).toBe(id);
  return task!;
}

/** Resolves once the server at `url` has `count` log follows parked. */
const following = (url: string, count: number) => vi.waitFor(async () => expect(await parkedLongPolls(url, "follow")).toBe(count), { timeout: 20_000, interval: 20 });

describe("a run's log from the command line", () => {
  it("prints a line each: number, time, level, agent and run, message (its lines under the first), data; filters; --json; exit 1 for an unknown task", async () => {
    t = await startTestServer();
    const { api } = t;
    const env = { COORDINATION_URL: t.url };
    const task = await claimed(t);
    await api.tasks.appendLog.mutate({
      taskId: task.id,
      agentId: "agent-1",
      entries: [
        { message: "fetching the page" },
        { message: "model answered", level: "debug", data: { tokens: { in: 812, out: 64 } } },
        { message: "Traceback:\n\tat fetch\r\n\tat run\n", level: "error" },
      ],
    });
    await api.tasks.fail.mutate({ taskId: task.id, agentId: "agent-1", error: "timeout", retryAfterMs: 0 });
    expect((await api.tasks.claim.mutate({ agentId: "agent-2", queues: ["logs"], context: false }))?.id).toBe(task.id);
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-2", entries: [{ message: "retrying with a longer timeout", level: "warn", data: [1, "two"] }] });
    const { lines } = await api.tasks.log.query({ taskId: task.id });
    const [one, two, three, four] = lines.map((line) => stamp(line.at));

    // A message's lines go under its first, at the message's column; tabs as spaces, its trailing newline dropped.
    const under = " ".repeat("     3  ".length + one!.length + "  error  agent-1 (run 1)  ".length);
    const all = [
      `     1  ${one}  info   agent-1 (run 1)  fetching the page`,
      `     2  ${two}  debug  agent-1 (run 1)  model answered  {"tokens":{"in":812,"out":64}}`,
      `     3  ${three}  error  agent-1 (run 1)  Traceback:`,
      `${under}    at fetch`,
      `${under}    at run`,
      `     4  ${four}  warn   agent-2 (run 2)  retrying with a longer timeout  [1,"two"]`,
      "",
    ];
    expect(await run({ args: ["tasks", "logs", task.id], env })).toMatchObject({ code: 0, stdout: all.join("\n"), stderr: "" });
    // Filters: a level and those more urgent, a run, the lines after one.
    expect(await run({ args: ["tasks", "logs", task.id, "--level", "warn"], env })).toMatchObject({ code: 0, stdout: [...all.slice(2)].join("\n"), stderr: "" });
    expect(await run({ args: ["tasks", "logs", task.id, "--attempt", "2"], env })).toMatchObject({ code: 0, stdout: `${all[5]}\n`, stderr: "" });
    expect(await run({ args: ["tasks", "logs", task.id, "--after", "1", "--attempt", "1"], env })).toMatchObject({ code: 0, stdout: [...all.slice(1, 5), ""].join("\n"), stderr: "" });
    // --limit: that many lines, and where the rest start.
    expect(await run({ args: ["tasks", "logs", task.id, "--limit", "2"], env })).toMatchObject({
      code: 0,
      stdout: `${all[0]}\n${all[1]}\n(more lines after line 2: go on with --after 2)\n`,
      stderr: "",
    });
    // --tail: the last lines, oldest first (of those the filters keep).
    expect(await run({ args: ["tasks", "logs", task.id, "--tail", "1"], env })).toMatchObject({ code: 0, stdout: `${all[5]}\n`, stderr: "" });
    expect(await run({ args: ["tasks", "logs", task.id, "--tail", "2", "--level", "error"], env })).toMatchObject({ code: 0, stdout: [...all.slice(2, 5), ""].join("\n"), stderr: "" });
    expect(await run({ args: ["tasks", "logs", task.id, "--tail", "2", "--attempt", "1"], env })).toMatchObject({ code: 0, stdout: [...all.slice(1, 5), ""].join("\n"), stderr: "" });
    // None to show: said, with the filters that left them out.
    expect(await run({ args: ["tasks", "logs", task.id, "--attempt", "2", "--level", "error"], env })).toMatchObject({ code: 0, stdout: "(no lines of run 2 at level error or above)\n", stderr: "" });
    expect(await run({ args: ["tasks", "logs", task.id, "--after", "4"], env })).toMatchObject({ code: 0, stdout: "(no lines after line 4)\n", stderr: "" });

    // --json: a JSON object a line, each as tasks.log answers it; nothing at all for none.
    const json = await run({ args: ["tasks", "logs", task.id, "--json"], env });
    expect([json.code, ndjson(json.stdout), json.stderr]).toEqual([0, asJson(lines), ""]);
    expect(json.stdout.split("\n").length).toBe(5);
    expect(await run({ args: ["tasks", "logs", task.id, "--json", "--level", "error", "--attempt", "2"], env })).toMatchObject({ code: 0, stdout: "", stderr: "" });

    // An unknown task is the API's TASK_NOT_FOUND, exit 1 as for every other command.
    expect(await run({ args: ["tasks", "logs", "no-such-task"], env })).toMatchObject({ code: 1, stdout: "", stderr: 'coordination: TASK_NOT_FOUND: task "no-such-task" not found\n' });
    // A task with no line yet.
    const quiet = await api.tasks.enqueue.mutate({ queue: "quiet" });
    expect(await run({ args: ["tasks", "logs", quiet.id], env })).toMatchObject({ code: 0, stdout: "(no lines)\n", stderr: "" });
    // A value the server refuses is named by its option, exit 2 as any usage error.
    const level = await run({ args: ["tasks", "logs", task.id, "--level", "loud"], env });
    expect([level.code, level.stdout, level.stderr.split("\n")[0]]).toEqual([2, "", 'coordination: INVALID_INPUT: --level: must be one of "debug", "info", "warn", "error"']);
    const attempt = await run({ args: ["tasks", "logs", task.id, "--attempt", "0"], env });
    expect([attempt.code, attempt.stderr.split("\n")[0]]).toEqual([2, "coordination: INVALID_INPUT: --attempt: must be at least 1"]);
  }, 300_000);

  it("text agents chose reaches the operator's terminal with its control characters escaped", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const forged = "\u001b[2K\r\u001b[32mOK\u0007\u009b2J\u202e";
    const task = await claimed(t, `a${forged}`);
    await t.api.tasks.appendLog.mutate({ taskId: task.id, agentId: `a${forged}`, entries: [{ message: `m${forged}`, data: { note: forged } }] });
    const [line] = (await t.api.tasks.log.query({ taskId: task.id })).lines;
    const escaped = "\\x1b[2K\\r\\x1b[32mOK\\x07\\x9b2J\\u202e";
    expect(await run({ args: ["tasks", "logs", task.id], env })).toMatchObject({
      code: 0,
      stdout: `     1  ${stamp(line!.at)}  info   a${escaped} (run 1)  m${escaped}  {"note":"\\u001b[2K\\r\\u001b[32mOK\\u0007\\x9b2J\\u202e"}\n`,
      stderr: "",
    });
    const json = await run({ args: ["tasks", "logs", task.id, "--json"], env });
    expect(json.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(ndjson(json.stdout)).toEqual(asJson([line]));
  }, 300_000);

  it("drops a message's trailing line ends (\\n and \\r\\n, a run of 16,383 too) and keeps a lone \\r", async () => {
    t = await startTestServer();
    const task = await claimed(t);
    const entries = [{ message: `done\r\n${"\n".repeat(16_378)}` }, { message: "x\r\r\n\n" }, { message: "\n\n" }, { message: "a\n\nb\n" }];
    await t.api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries });
    const at = (await t.api.tasks.log.query({ taskId: task.id })).lines.map((line) => stamp(line.at));
    const under = " ".repeat("     4  ".length + at[3]!.length + "  info   agent-1 (run 1)  ".length);
    expect(await run({ args: ["tasks", "logs", task.id], env: { COORDINATION_URL: t.url } })).toMatchObject({
      code: 0,
      stdout: [
        `     1  ${at[0]}  info   agent-1 (run 1)  done`,
        `     2  ${at[1]}  info   agent-1 (run 1)  x\\r`,
        `     3  ${at[2]}  info   agent-1 (run 1)  `,
        `     4  ${at[3]}  info   agent-1 (run 1)  a`,
        under,
        `${under}b`,
        "",
      ].join("\n"),
      stderr: "",
    });
  }, 300_000);

  it("says which lines the log dropped (maxTaskLogBytes), on stderr with --json; not when --after is past them", async () => {
    t = await startTestServer({ maxTaskLogBytes: 65_536 });
    const env = { COORDINATION_URL: t.url };
    const task = await claimed(t);
    // Each line weighs its message (10,000 bytes), its agent and 64: six fit in 65,536; of eight, the first two go.
    const line = (i: number) => ({ message: `${i}`.padEnd(10_000, ".") });
    expect(await t.api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [1, 2, 3, 4, 5, 6, 7, 8].map(line) })).toMatchObject({ dropped: 2 });
    const dropped = "lines 1 to 2 are no longer kept: the log drops its oldest lines past the server's maxTaskLogBytes";
    const text = await run({ args: ["tasks", "logs", task.id], env });
    expect([text.code, text.stderr]).toEqual([0, ""]);
    const [said, ...rows] = text.stdout.split("\n");
    expect([said, rows.map((row) => row.slice(0, 8))]).toEqual([`(${dropped})`, ["     3  ", "     4  ", "     5  ", "     6  ", "     7  ", "     8  ", ""]]);
    const json = await run({ args: ["tasks", "logs", task.id, "--json"], env });
    expect([json.code, (ndjson(json.stdout) as Array<{ line: number }>).map((l) => l.line), json.stderr]).toEqual([0, [3, 4, 5, 6, 7, 8], `coordination: ${dropped}\n`]);
    const later = await run({ args: ["tasks", "logs", task.id, "--after", "6"], env });
    expect([later.code, later.stdout.split("\n").map((row) => row.slice(0, 8)), later.stderr]).toEqual([0, ["     7  ", "     8  ", ""], ""]);
  }, 300_000);

  it("reads every page, up to 10,000 lines, and says where the rest start", async () => {
    // Lines of about 300 bytes an answer: a page stops at maxResponseBytes (some 800 lines) before its limit of 1,000.
    t = await startTestServer({ maxResponseBytes: 256 * 1024 });
    const env = { COORDINATION_URL: t.url };
    const task = await claimed(t);
    for (let first = 1; first <= 10_050; first += 100) {
      const entries = Array.from({ length: Math.min(100, 10_051 - first) }, (_, i) => ({ message: `page ${first + i}` }));
      await t.api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries });
    }
    const text = await run({ args: ["tasks", "logs", task.id], env });
    const rows = text.stdout.split("\n");
    expect([text.code, text.stderr, rows.length]).toEqual([0, "", 10_002]);
    expect(rows.slice(0, 10_000).map((row) => /^ *(\d+)  .*  page (\d+)$/.exec(row)?.slice(1).map(Number))).toEqual(Array.from({ length: 10_000 }, (_, i) => [i + 1, i + 1]));
    expect(rows.slice(-2)).toEqual(["(more lines after line 10000: go on with --after 10000)", ""]);
    const json = await run({ args: ["tasks", "logs", task.id, "--json"], env });
    const objects = ndjson(json.stdout) as Array<{ line: number }>;
    expect([json.code, objects.length, objects.at(-1)?.line, json.stderr]).toEqual([0, 10_000, 10_000, "coordination: more lines after line 10000: go on with --after 10000\n"]);
    const rest = await run({ args: ["tasks", "logs", task.id, "--after", "10000", "--json"], env });
    expect([rest.code, (ndjson(rest.stdout) as Array<{ line: number }>).map((l) => l.line), rest.stderr]).toEqual([0, Array.from({ length: 50 }, (_, i) => 10_001 + i), ""]);
  }, 300_000);

  it("--follow prints the lines there are, then each as it comes, until the task settles: exit 0", async () => {
    t = await startTestServer();
    const { api } = t;
    const env = { COORDINATION_URL: t.url };
    const task = await claimed(t);
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "one" }] });
    const follow = new CliProcess({ args: ["tasks", "logs", task.id, "--follow"], env });
    const json = new CliProcess({ args: ["tasks", "logs", task.id, "--follow", "--json", "--level", "warn"], env });
    await vi.waitFor(() => expect(follow.stdout).toContain("one"), { timeout: 60_000, interval: 20 });
    await following(t.url, 2);
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "two", level: "warn" }, { message: "three\nand more", data: { n: 3 } }] });
    await vi.waitFor(() => expect(follow.stdout).toContain("and more"), { timeout: 20_000, interval: 20 });
    await following(t.url, 2);
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "agent-1" });
    // The settle ends both: exit 0, nothing on stderr.
    expect(await follow.waitForExit(60_000)).toMatchObject({ code: 0, stderr: "" });
    expect(await json.waitForExit(60_000)).toMatchObject({ code: 0, stderr: "" });
    const { lines } = await api.tasks.log.query({ taskId: task.id });
    const [one, two, three] = lines.map((line) => stamp(line.at));
    expect(follow.stdout).toBe(
      [
        `     1  ${one}  info   agent-1 (run 1)  one`,
        `     2  ${two}  warn   agent-1 (run 1)  two`,
        `     3  ${three}  info   agent-1 (run 1)  three`,
        `${" ".repeat(58)}and more  {"n":3}`,
        "",
      ].join("\n"),
    );
    expect(ndjson(json.stdout)).toEqual(asJson([lines[1]]));

    // A task settled already: its lines, and the follow ends at once.
    expect(await run({ args: ["tasks", "logs", task.id, "--follow", "--after", "2"], env })).toMatchObject({ code: 0, stdout: `     3  ${three}  info   agent-1 (run 1)  three\n${" ".repeat(58)}and more  {"n":3}\n`, stderr: "" });
    // An unknown task fails at once, as without --follow.
    expect(await run({ args: ["tasks", "logs", "no-such-task", "--follow"], env })).toMatchObject({ code: 1, stdout: "", stderr: 'coordination: TASK_NOT_FOUND: task "no-such-task" not found\n' });
  }, 300_000);

  it("--follow ends cleanly on Ctrl-C and on SIGTERM (exit 0), and waits through a server's restart", async () => {
    const first = await startTestServer();
    t = first;
    const port = Number(new URL(first.url).port);
    const env = { COORDINATION_URL: first.url };
    const task = await claimed(first);
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      const follow = new CliProcess({ args: ["tasks", "logs", task.id, "--follow"], env });
      await following(first.url, 1);
      follow.kill(signal);
      expect(await follow.waitForExit(60_000), signal).toMatchObject({ code: 0, stdout: "", stderr: "" });
      await following(first.url, 0);
    }

    const follow = new CliProcess({ args: ["tasks", "logs", task.id, "--follow"], env });
    await following(first.url, 1);
    await first.stop();
    t = await startTestServer({ port }, first.dir);
    await t.api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "after the restart" }] });
    await vi.waitFor(() => expect(follow.stdout).toContain("after the restart"), { timeout: 60_000, interval: 20 });
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "agent-1" });
    const exit = await follow.waitForExit(60_000);
    const [line] = (await t.api.tasks.log.query({ taskId: task.id })).lines;
    expect(exit).toMatchObject({ code: 0, stdout: `     1  ${stamp(line!.at)}  info   agent-1 (run 1)  after the restart\n` });
    // The outage was said once, on stderr (the stop's 503, or a refused connection while none listened).
    expect(exit.stderr).toMatch(/^coordination: [^\n]+; asking again for up to 60 s\n$/);

    // --tail with --follow: the last lines, then those that come.
    const next = await claimed(t);
    await t.api.tasks.appendLog.mutate({ taskId: next.id, agentId: "agent-1", entries: [{ message: "old" }, { message: "recent" }] });
    const tailing = new CliProcess({ args: ["tasks", "logs", next.id, "--tail", "1", "--follow"], env });
    await following(t.url, 1);
    await t.api.tasks.appendLog.mutate({ taskId: next.id, agentId: "agent-1", entries: [{ message: "new" }] });
    await t.api.tasks.complete.mutate({ taskId: next.id, agentId: "agent-1" });
    const tailed = await tailing.waitForExit(60_000);
    const stamps = (await t.api.tasks.log.query({ taskId: next.id })).lines.map((l) => stamp(l.at));
    expect(tailed).toMatchObject({ code: 0, stdout: `     2  ${stamps[1]}  info   agent-1 (run 1)  recent\n     3  ${stamps[2]}  info   agent-1 (run 1)  new\n`, stderr: "" });
  }, 300_000);

  it("a usage error says what is wrong and shows the command's usage, exit 2, before anything is sent", async () => {
    // Nothing listens there: each is refused before a call.
    const env = { COORDINATION_URL: "http://127.0.0.1:1" };
    for (const [args, message] of [
      [["tasks", "logs"], "tasks logs needs a TASK_ID"],
      [["tasks", "logs", "a", "b"], "tasks logs takes one TASK_ID (got 2)"],
      [["tasks", "logs", "a", "--limit", "5", "--follow"], "tasks logs takes --limit or --follow, not both: a follow shows every line until the task settles"],
      [["tasks", "logs", "a", "--tail", "5", "--after", "2"], "tasks logs takes --tail alone or --after and --limit: --tail is the last N lines"],
      [["tasks", "logs", "a", "--tail", "0"], "--tail must be from 1 to 1,000"],
      [["tasks", "logs", "a", "--limit", "0"], "--limit must be from 1 to 10,000"],
      [["tasks", "logs", "a", "--limit", "10001"], "--limit must be from 1 to 10,000"],
      [["tasks", "logs", "a", "--attempt", "first"], "--attempt must be a whole number"],
      [["tasks", "logs", "a", "--after", "-1"], "--after must be 0 or more (got -1)"],
      [["tasks", "logs", "a", "--follow=yes"], '--follow takes no value (got "--follow=yes": leave it out for no)'],
      [["tasks", "logs", "a", "--timeout", "5m"], "tasks logs does not take --timeout (it takes --after, --tail, --attempt, --level, --limit, --follow)"],
      [["tasks", "get", "a", "--follow"], "tasks get does not take --follow (it takes none of its own)"],
    ] as const) {
      const answer = await run({ args: [...args], env });
      expect([answer.code, answer.stdout, answer.stderr.split("\n")[0]], args.join(" ")).toEqual([2, "", `coordination: ${message}`]);
    }
    // The usage shown is the command's own.
    const usage = await run({ args: ["tasks", "logs"], env });
    expect(usage.stderr.split("\n").slice(1)).toEqual([
      "Usage: coordination tasks logs TASK_ID [--after N | --tail N] [--attempt N] [--level L] [--limit N] [--follow]   its runs' log,",
      "                                    oldest first: a line each: its number, time (UTC), level, agent and run, message (then its",
      "                                    data as JSON); --after: the lines after line N; --tail: the last N (up to 1,000); --attempt:",
      "                                    that attempt's alone; --level warn: warn, error; up to 10,000 lines (--limit: fewer); --follow:",
      "                                    then each new line as it comes, until the task settles (exit 0) or Ctrl-C; --json: a JSON",
      "                                    object a line",
      "(coordination tasks --help: every command, and the options each takes)",
      "",
    ]);
  }, 300_000);
});
