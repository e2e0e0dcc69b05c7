// A JSON value given to the command line as @FILE is read from the file, @- from standard input:
// a payload past the shell's limit on one argument, or one a program writes. What cannot be read,
// is not JSON or is too large is refused naming the option and the file (exit 2), nothing sent.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { runOperatorCommand } from "../src/cli-operator.js";
import { OperatorUsageError } from "../src/cli-options.js";
import { MAX_VALUE_FILE_BYTES, ReadInterrupted, readStream } from "../src/cli-value-files.js";
import { killAllCli, runCli, runOperator, type CliExit } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});
const dir = mkdtempSync(join(tmpdir(), "coordination-value-files-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file in this test's directory holding `text`; its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The command line in this process (runOperator: what the binary calls); `stdin` is its standard input, if it has one. */
const cli = (args: string[], stdin?: string): Promise<CliExit> => runOperator({ args: [...args, "--url", t!.url], ...(stdin === undefined ? {} : { input: stdin }) });

/** A payload past what one command-line argument may be on Linux (128 KiB). */
const large = { diff: "+".repeat(300_000), files: ["a.ts", "b.ts"] };

describe("a JSON value read from a file or standard input", () => {
  it("tasks enqueue and tasks update take --payload @FILE; a file saved with a byte order mark too", async () => {
    t = await startTestServer();
    const made = await cli(["tasks", "enqueue", "--queue", "review", "--payload", `@${file("large.json", `${JSON.stringify(large)}\n`)}`]);
    expect([made.code, made.stderr]).toEqual([0, ""]);
    const id = made.stdout.split(" ")[0]!;
    expect((await t.api.tasks.get.query({ taskId: id })).payload).toEqual(large);
    const updated = await cli(["tasks", "update", id, "--payload", `@${file("bom.json", '\uFEFF{"step":2}')}`]);
    expect([updated.code, updated.stderr]).toEqual([0, ""]);
    expect((await t.api.tasks.get.query({ taskId: id })).payload).toEqual({ step: 2 });
  });

  it("events publish takes --payload @- from standard input, and kv set its VALUE from @FILE", async () => {
    t = await startTestServer();
    const published = await cli(["events", "publish", "build.done", "--payload", "@-", "--source", "ci"], '{"commit":"abc123","ok":true}\n');
    expect([published.code, published.stderr]).toEqual([0, ""]);
    const events = await t.api.events.list.query({ types: ["build.done"] });
    expect(events.map((e) => [e.source, e.payload])).toEqual([["ci", { commit: "abc123", ok: true }]]);
    // A key's value is at most 64 KiB: this one's quoting alone would be a chore at a prompt.
    const plan = { steps: Array.from({ length: 500 }, (_, n) => ({ n, says: `it's "step" ${n}` })) };
    const set = await cli(["kv", "set", "plans/big", `@${file("plan.json", JSON.stringify(plan))}`]);
    expect([set.code, set.stderr]).toEqual([0, ""]);
    expect((await t.api.kv.get.query({ key: "plans/big" })).entry?.value).toEqual(plan);
  });

  it("refuses, naming the option and the file, what cannot be read, is not JSON, or is larger than any server takes: nothing is sent", async () => {
    t = await startTestServer();
    const missing = join(dir, "missing.json");
    const refusals: Array<[string[], string | undefined, string]> = [
      [["tasks", "enqueue", "--payload", `@${missing}`], undefined, `coordination: --payload @${missing}: cannot read it (no such file)`],
      [["tasks", "enqueue", "--payload", `@${dir}`], undefined, `coordination: --payload @${dir}: cannot read it (EISDIR: illegal operation on a directory, read)`],
      [["tasks", "enqueue", "--payload", "@"], undefined, "coordination: --payload @ needs a file after it: @payload.json, or @- for standard input"],
      [["events", "publish", "x", "--payload", "@-"], "", "coordination: --payload @-: standard input is empty (pipe the value to it: jq … | coordination … @-)"],
      [["events", "publish", "x", "--payload", `@${file("empty.json", "\n")}`], undefined, `coordination: --payload @${join(dir, "empty.json")}: the file is empty`],
      [["events", "publish", "x", "--payload", "@-"], undefined, "coordination: --payload @- reads standard input, and this command has none"],
      [["kv", "set", "k", `@${missing}`], undefined, `coordination: kv set's VALUE @${missing}: cannot read it (no such file)`],
    ];
    for (const [args, stdin, message] of refusals) {
      const refused = await cli(args, stdin);
      expect([refused.code, refused.stdout, refused.stderr.split("\n")[0]]).toEqual([2, "", message]);
    }
    // JSON.parse's own words say where (they differ between Node versions).
    const broken = await cli(["tasks", "enqueue", "--payload", `@${file("broken.json", '{"to": "ops",}')}`]);
    expect([broken.code, broken.stderr.split("\n")[0]]).toEqual([2, expect.stringMatching(new RegExp(`^coordination: --payload @${join(dir, "broken.json")}: the file is not JSON \\(.*position 13.*\\)$`))]);
    // A file larger than the largest body a server may be set to take is refused before it is read (a sparse file: no disk used).
    const huge = file("huge.json", "");
    truncateSync(huge, MAX_VALUE_FILE_BYTES + 1);
    const tooLarge = await cli(["tasks", "enqueue", "--payload", `@${huge}`]);
    expect([tooLarge.code, tooLarge.stderr.split("\n")[0]]).toEqual([2, `coordination: --payload @${huge}: the file is ${MAX_VALUE_FILE_BYTES + 1} bytes, more than any server takes (${MAX_VALUE_FILE_BYTES})`]);
    expect((await t.api.tasks.list.query({})).items).toEqual([]);
    expect(await t.api.events.list.query({ types: ["x"] })).toEqual([]);
    expect((await t.api.kv.get.query({ key: "k" })).entry).toBeNull();
  });

  it("a value larger than this server takes (its maxBodyBytes) is refused by it as a usage error: exit 2, as a key's value past its bound is", async () => {
    t = await startTestServer({ maxBodyBytes: 4096 });
    const big = file("big.json", JSON.stringify({ diff: "+".repeat(8000) }));
    const tooLarge = "coordination: PAYLOAD_TOO_LARGE: Request body exceeds 4096 bytes (the server's maxBodyBytes, COORDINATION_MAX_BODY_BYTES): send less in one request\n";
    for (const args of [["tasks", "enqueue", "--payload", `@${big}`], ["events", "publish", "x", "--source", "ci", "--payload", `@${big}`], ["kv", "set", "k", `@${big}`]]) {
      const refused = await cli(args);
      expect([args[0], refused.code, refused.stdout, refused.stderr]).toEqual([args[0], 2, "", tooLarge]);
    }
    expect((await t.api.tasks.list.query({})).items).toEqual([]);
  });

  it("shows the control characters of a file's text and name as escapes, never raw to the terminal", async () => {
    t = await startTestServer();
    // JSON.parse's message quotes the text it stopped at: here an OSC sequence that sets a terminal's title.
    const titled = file("titled.json", "\u001b]0;pwned\u0007 {}");
    const refused = await cli(["tasks", "enqueue", "--payload", `@${titled}`]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(refused.stderr.split("\n")[0]).toMatch(/^coordination: --payload @.*titled\.json: the file is not JSON \(.*\\x1b\]0;pwned\\x07.*\)$/);
    const named = join(dir, "in\u001b[2Jvisible.json");
    const missing = await cli(["kv", "set", "k", `@${named}`]);
    expect([missing.code, missing.stderr.split("\n")[0]]).toEqual([2, `coordination: kv set's VALUE @${join(dir, "in\\x1b[2Jvisible.json")}: cannot read it (no such file)`]);
  });

  it("refuses a file or standard input that is not UTF-8 (a Latin-1 file), rather than send its text altered", async () => {
    t = await startTestServer();
    const latin1 = join(dir, "latin1.json");
    writeFileSync(latin1, Buffer.from('{"name":"caf\u00e9"}', "latin1"));
    const refused = await cli(["tasks", "enqueue", "--payload", `@${latin1}`]);
    expect([refused.code, refused.stderr.split("\n")[0]]).toEqual([2, `coordination: --payload @${latin1}: the file is not UTF-8 text, as JSON is (convert it: iconv -t UTF-8)`]);
    const piped = await runCli({ args: ["events", "publish", "x", "--source", "ci", "--payload", "@-"], env: { COORDINATION_URL: t.url }, input: Buffer.from('"caf\u00e9"', "latin1") }, 60_000);
    expect([piped.code, piped.stderr.split("\n")[0]]).toEqual([2, "coordination: --payload @-: standard input is not UTF-8 text, as JSON is (convert it: iconv -t UTF-8)"]);
    expect((await t.api.tasks.list.query({})).items).toEqual([]);
    expect(await t.api.events.list.query({ types: ["x"] })).toEqual([]);
  });

  it("a command that is not one is refused before its --payload @- is read: a terminal is not asked for a value", async () => {
    let asked = false;
    let stderr = "";
    const out = { stdout: () => {}, stderr: (text: string) => void (stderr += text), stdin: async () => ((asked = true), "{}") };
    const code = await runOperatorCommand(["events", "publsh", "x", "--payload", "@-", "--url", "http://127.0.0.1:9"], {}, out);
    expect([code, stderr.split("\n")[0], asked]).toEqual([2, 'coordination: unknown command "events publsh x"', false]);
  });

  it("reads standard input as the binary is given it: a pipe, or none", async () => {
    t = await startTestServer();
    const piped = await runCli({ args: ["events", "publish", "deploy.started", "--payload", "@-", "--source", "ci"], env: { COORDINATION_URL: t.url }, input: JSON.stringify(large) }, 60_000);
    expect([piped.code, piped.stderr]).toEqual([0, ""]);
    const events = await t.api.events.list.query({ types: ["deploy.started"] });
    expect(events.map((e) => e.payload)).toEqual([large]);
    // No standard input (/dev/null, a closed one, a job run by cron): nothing to read, said as such.
    const none = await runCli({ args: ["events", "publish", "deploy.started", "--payload", "@-", "--source", "ci"], env: { COORDINATION_URL: t.url } }, 60_000);
    expect([none.code, none.stderr.split("\n")[0]]).toEqual([2, "coordination: --payload @-: standard input is empty (pipe the value to it: jq … | coordination … @-)"]);
  });

  it("Ctrl-C while standard input is read ends the command as an interrupted one (130), in one line, no usage: nothing was sent", async () => {
    t = await startTestServer();
    const waiting = new PassThrough();
    const stop = new AbortController();
    let stderr = "";
    const out = { stdout: () => {}, stderr: (text: string) => void (stderr += text), stdin: () => readStream(waiting, stop.signal) };
    const running = runOperatorCommand(["events", "publish", "x", "--source", "ci", "--payload", "@-", "--url", t.url], {}, out, stop.signal);
    waiting.write('{"partial":');
    await new Promise((resolve) => setTimeout(resolve, 50));
    stop.abort();
    expect([await running, stderr]).toEqual([130, "coordination: interrupted while reading standard input: nothing was sent\n"]);
    expect(await t.api.events.list.query({ types: ["x"] })).toEqual([]);
  });

  it("reads a FIFO or a device (<(jq …), /dev/zero) bounded as standard input is, and Ctrl-C ends the wait for one", async () => {
    t = await startTestServer();
    // A device with no end: refused once past the bound, not read into memory until Node gives up.
    const endless = await cli(["tasks", "enqueue", "--payload", "@/dev/zero"]);
    expect([endless.code, endless.stderr.split("\n")[0]]).toEqual([2, `coordination: --payload @/dev/zero: the file is more than any server takes (${MAX_VALUE_FILE_BYTES} bytes)`]);
    // A FIFO its writer has not written to yet: the wait for it is interrupted.
    const fifo = join(dir, "payload.fifo");
    execFileSync("mkfifo", [fifo]);
    const stop = new AbortController();
    let stderr = "";
    const running = runOperatorCommand(["tasks", "enqueue", "--payload", `@${fifo}`, "--url", t.url], {}, { stdout: () => {}, stderr: (text) => void (stderr += text) }, stop.signal);
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      stop.abort();
      const ended = await Promise.race([running, new Promise((resolve) => setTimeout(() => resolve("still reading"), 5_000))]);
      expect([ended, stderr]).toEqual([130, `coordination: --payload @${fifo}: interrupted while reading the file: nothing was sent\n`]);
    } finally {
      // A read still waiting for a writer is given one, and its end.
      closeSync(openSync(fifo, constants.O_RDWR));
      await running.catch(() => {});
    }
    // Written by another program (it waits for the reader): read whole once its writer ends.
    const writer = spawn("sh", ["-c", `printf '%s' '{"from":"a FIFO"}' > "$1"`, "sh", fifo], { stdio: "ignore" });
    const written = new Promise((resolve) => writer.once("exit", resolve));
    const made = await cli(["tasks", "enqueue", "--queue", "fifo", "--payload", `@${fifo}`]);
    expect(await written).toBe(0);
    expect([made.code, made.stderr]).toEqual([0, ""]);
    expect((await t.api.tasks.list.query({ queue: "fifo" })).items.map((task) => task.payload)).toEqual([{ from: "a FIFO" }]);
    expect((await t.api.tasks.list.query({})).items).toHaveLength(1);
  });

  it("stops reading standard input past its bound, or when interrupted", async () => {
    const flood = new PassThrough();
    const tooMuch = readStream(flood, undefined, 10);
    flood.write("12345678");
    flood.write("901");
    await expect(tooMuch).rejects.toThrow(new OperatorUsageError("standard input is more than any server takes (10 bytes)"));
    const waiting = new PassThrough();
    const stop = new AbortController();
    const interrupted = readStream(waiting, stop.signal);
    waiting.write('{"partial":');
    stop.abort();
    await expect(interrupted).rejects.toThrow(new ReadInterrupted("interrupted while reading standard input: nothing was sent"));
    await expect(interrupted).rejects.toBeInstanceOf(ReadInterrupted);
    const whole = new PassThrough();
    const read = readStream(whole);
    whole.end("é".repeat(3));
    expect(await read).toBe("ééé");
  });
});
