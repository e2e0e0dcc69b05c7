// Shared state from the operator's command line (coordination kv, kv get|set|delete|watch), as a
// real process against a real server: tables with UTC times, --json, and the exit codes a script
// reads: 3 for a key that is absent (kv get) or not at the version asked (--if-version).
// A test that runs many processes one after another names a bound of its own: each takes a second
// or more to start on a loaded machine (50 s seen for the first test on two busy cores).
import { afterEach, describe, expect, it, vi } from "vitest";
import { CliProcess, killAllCli, runOperator, type CliOptions } from "./helpers/cli-process.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The command run to its end: its bound is only there to fail a hung command, never a slow machine's (runOperator's own is 60 s). */
const run = (options: Pick<CliOptions, "args" | "env">) => runOperator(options, 120_000);

/** A time as the CLI prints it: UTC to the second, marked Z. */
const at = (date: Date): string => date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");

/** `value` as --json prints it: dates as ISO text. */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

/** The kv events of the log, as [type, payload]. */
async function kvEvents(server: TestServer): Promise<Array<[string, unknown]>> {
  const events = await server.api.events.list.query({ types: ["kv.*"], limit: 1000 });
  return events.map((event) => [event.type, event.payload]);
}

/** A table's rows after its header, each cut into its cells (columns are two spaces apart or more; a time holds one). */
const rows = (stdout: string): string[][] =>
  stdout
    .split("\n")
    .slice(1)
    .filter(Boolean)
    .map((line) => line.split(/ {2,}/));

describe("shared state from the command line", () => {
  it('reaches a key that starts with "--" after the end of the options (--)', async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    expect(await run({ args: ["kv", "set", "--", "--draft", '"v"'], env })).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse((await run({ args: ["kv", "get", "--json", "--", "--draft"], env })).stdout)).toMatchObject({ key: "--draft", entry: { value: "v" } });
    expect(await run({ args: ["kv", "delete", "--", "--draft"], env })).toMatchObject({ code: 0, stderr: "" });
    expect((await t.api.kv.get.query({ key: "--draft" })).entry).toBeNull();
    // Without it, such a key reads as an option, refused.
    expect(await run({ args: ["kv", "get", "--draft"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown option "--draft"') });
  });

  it("sets, reads, lists and deletes keys: tables with UTC times, --json, exit 3 when a key is absent or not at the version asked", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    expect(await run({ args: ["kv"], env })).toMatchObject({ code: 0, stdout: "no key\n", stderr: "" });
    expect(await run({ args: ["kv", "get", "plans/repo-a"], env })).toMatchObject({ code: 3, stdout: "", stderr: "coordination: key plans/repo-a is absent (never set, deleted or expired)\n" });
    const absent = await run({ args: ["kv", "get", "plans/repo-a", "--json"], env });
    expect([absent.code, JSON.parse(absent.stdout), absent.stderr]).toEqual([3, { key: "plans/repo-a", entry: null }, "coordination: key plans/repo-a is absent (never set, deleted or expired)\n"]);

    // Created only if absent, expiring in an hour.
    const created = await run({ args: ["kv", "set", "plans/repo-a", '{"steps":["read","write"]}', "--if-version", "0", "--ttl", "1h"], env });
    const first = (await t.api.kv.get.query({ key: "plans/repo-a" })).entry!;
    expect(first).toMatchObject({ value: { steps: ["read", "write"] }, version: 1, updatedBy: null });
    expect(first.expiresAt!.getTime() - first.updatedAt.getTime()).toBe(3_600_000);
    expect(created).toMatchObject({ code: 0, stdout: `key plans/repo-a set: version 1, expires ${at(first.expiresAt!)}\n`, stderr: "" });
    const status = await t.api.kv.set.mutate({ key: "status", value: "green", agentId: "planner" });
    expect(status.version).toBe(2);

    // A compare-and-set that meets another version: exit 3, the key as it is, nothing written.
    expect(await run({ args: ["kv", "set", "plans/repo-a", "[]", "--if-version", "0"], env })).toMatchObject({
      code: 3,
      stdout: "",
      stderr: `coordination: VERSION_CONFLICT: key plans/repo-a is at version 1 (updated ${at(first.updatedAt)}): --if-version 0 writes only a key that is absent; nothing written\n`,
    });
    expect(await run({ args: ["kv", "set", "status", '"red"', "--if-version", "1", "--json"], env })).toMatchObject({
      code: 3,
      stdout: "",
      stderr: `coordination: VERSION_CONFLICT: key status is at version 2 (updated ${at(status.updatedAt)} by planner): not at version 1; nothing written\n`,
    });
    // At the version read, it writes; --json answers the entry.
    const moved = await run({ args: ["kv", "set", "status", '"red"', "--if-version", "2", "--json"], env });
    const red = (await t.api.kv.get.query({ key: "status" })).entry!;
    expect([moved.code, JSON.parse(moved.stdout), moved.stderr]).toEqual([0, asJson(red), ""]);
    expect(red).toMatchObject({ value: "red", version: 3, createdAt: status.createdAt, updatedBy: null, expiresAt: null });
    // A version the API refuses is named by its option, exit 2 as any usage error.
    expect(await run({ args: ["kv", "set", "status", "1", "--if-version", "99999999999999999999"], env })).toMatchObject({ code: 2, stderr: "coordination: INVALID_INPUT: --if-version: must be at most 9007199254740991\n" });

    // One key: its version and times, then its value as JSON.
    expect(await run({ args: ["kv", "get", "plans/repo-a"], env })).toMatchObject({
      code: 0,
      stdout: `key plans/repo-a: version 1, updated ${at(first.updatedAt)}, created ${at(first.createdAt)}, expires ${at(first.expiresAt!)}\n{\n  "steps": [\n    "read",\n    "write"\n  ]\n}\n`,
      stderr: "",
    });
    const read = await run({ args: ["kv", "get", "status", "--json"], env });
    expect([read.code, JSON.parse(read.stdout)]).toEqual([0, asJson({ key: "status", entry: red })]);

    // The keys, by key, each value on one line, cut short.
    const long = await t.api.kv.set.mutate({ key: "plans/repo-b", value: { text: "x".repeat(100) }, agentId: "writer" });
    const listed = await run({ args: ["kv"], env });
    expect([listed.code, listed.stderr]).toEqual([0, ""]);
    expect(listed.stdout.split("\n")[0]).toMatch(/^KEY\s+VERSION\s+UPDATED\s+BY\s+EXPIRES\s+GOES WITH\s+VALUE$/);
    expect(rows(listed.stdout)).toEqual([
      ["plans/repo-a", "1", at(first.updatedAt), "-", at(first.expiresAt!), "-", '{"steps":["read","write"]}'],
      ["plans/repo-b", "4", at(long.updatedAt), "writer", "-", "-", `{"text":"${"x".repeat(50)}…`],
      ["status", "3", at(red.updatedAt), "-", "-", "-", '"red"'],
    ]);
    const plans = await run({ args: ["kv", "list", "--prefix", "plans/", "--json"], env });
    expect(JSON.parse(plans.stdout)).toEqual({ items: asJson([first, long]), nextCursor: null });
    expect(rows((await run({ args: ["kv", "--prefix", "plans/", "--after", "plans/repo-a"], env })).stdout).map((row) => row[0])).toEqual(["plans/repo-b"]);
    expect(await run({ args: ["kv", "--prefix", "builds/"], env })).toMatchObject({ code: 0, stdout: 'no key starting with "builds/"\n' });

    // Deletes: at a version (exit 3 at another, or absent), or whatever it is.
    expect(await run({ args: ["kv", "delete", "status", "--if-version", "2"], env })).toMatchObject({
      code: 3,
      stdout: "",
      stderr: `coordination: VERSION_CONFLICT: key status is at version 3 (updated ${at(red.updatedAt)}): not at version 2; nothing deleted\n`,
    });
    expect(await run({ args: ["kv", "delete", "status", "--if-version", "3"], env })).toMatchObject({ code: 0, stdout: "key status deleted (it was at version 3)\n", stderr: "" });
    expect(await run({ args: ["kv", "delete", "status"], env })).toMatchObject({ code: 0, stdout: "key status was absent: nothing changed\n", stderr: "" });
    expect(await run({ args: ["kv", "delete", "status", "--if-version", "3"], env })).toMatchObject({
      code: 3,
      stderr: "coordination: VERSION_CONFLICT: key status is absent (deleted already: perhaps by an earlier try of this delete): not at version 3; nothing deleted\n",
    });
    const deleted = await run({ args: ["kv", "delete", "plans/repo-b", "--json"], env });
    expect([deleted.code, JSON.parse(deleted.stdout)]).toEqual([0, { deleted: true, entry: asJson(long) }]);

    // What the server has of it: each write with its event, nothing for the refusals.
    expect(await kvEvents(t)).toEqual([
      ["kv.set", { key: "plans/repo-a", version: 1, previousVersion: 0, updatedBy: null, expiresAt: first.expiresAt!.toISOString() }],
      ["kv.set", { key: "status", version: 2, previousVersion: 0, updatedBy: "planner" }],
      ["kv.set", { key: "status", version: 3, previousVersion: 2, updatedBy: null }],
      ["kv.set", { key: "plans/repo-b", version: 4, previousVersion: 0, updatedBy: "writer" }],
      ["kv.deleted", { key: "status", version: 3, deletedBy: null }],
      ["kv.deleted", { key: "plans/repo-b", version: 4, deletedBy: null }],
    ]);

    // A key tied to an agent's life says so, and the agent's keys list alone.
    const presence = await t.api.kv.set.mutate({ key: "presence/w1", value: "here", agentId: "w1", ephemeral: true });
    expect(await run({ args: ["kv", "get", "presence/w1"], env })).toMatchObject({
      code: 0,
      stdout: `key presence/w1: version ${presence.version}, updated ${at(presence.updatedAt)} by w1, created ${at(presence.createdAt)}, no expiry, goes with agent w1 (deleted when it is seen offline or deregisters)\n"here"\n`,
    });
    expect(rows((await run({ args: ["kv", "--ephemeral-owner", "w1"], env })).stdout)).toEqual([["presence/w1", String(presence.version), at(presence.updatedAt), "w1", "-", "w1", '"here"']]);
    expect(await run({ args: ["kv", "--ephemeral-owner", "w2"], env })).toMatchObject({ code: 0, stdout: "no key tied to agent w2\n" });
  }, 300_000);

  it("a usage error says what is wrong and shows the command's usage, exit 2, before anything is sent", async () => {
    // Nothing listens there: each is refused before a call.
    const env = { COORDINATION_URL: "http://127.0.0.1:1" };
    for (const [args, message] of [
      [["kv", "set", "status", "green"], `kv set: the value must be JSON (got "green"): a text is written with its quotes, '"green"'`],
      [["kv", "set", "note", '{"a":'], `kv set: the value is not valid JSON (got "{\\"a\\":"): check its brackets, quotes and commas`],
      [["kv", "set", "plan", '{"step":', "2}"], `kv set takes a KEY and one JSON value, not 3 words: quote the value ('{"step": 2}')`],
      [["kv", "set", "plan"], "kv set needs the value as JSON after the KEY"],
      [["kv", "set", "plan", "1", "--ttl", "0s"], '--ttl must be a length of time from 1ms to 366d, such as 30s, 10m or 1d (got "0s")'],
      [["kv", "set", "plan", "1", "--if-version", "-1"], "--if-version must be 0 or more (got -1)"],
      [["kv", "delete", "plan", "--if-version", "0"], "kv delete --if-version is the version the key must be at to be deleted: 1 or more (an absent key has nothing to delete)"],
      [["kv", "delete", "plan", "--ttl", "1h"], "kv delete does not take --ttl (it takes --if-version)"],
      [["kv", "get"], "kv get needs a KEY"],
      [["kv", "get", "a", "b"], "kv get takes one KEY (got 2)"],
      [["kv", "get", "a", "--prefix", "x"], "kv get does not take --prefix (it takes none of its own)"],
      [["kv", "watch"], "kv watch needs a KEY (or --prefix TEXT)"],
      [["kv", "--holder", "x"], "kv does not take --holder (it takes --prefix, --ephemeral-owner, --after)"],
      [["kv", "bogus"], 'unknown command "kv bogus"'],
    ] as const) {
      const answer = await run({ args: [...args], env });
      expect([answer.code, answer.stdout, answer.stderr.split("\n")[0]], args.join(" ")).toEqual([2, "", `coordination: ${message}`]);
    }
    // The usage shown is the command's own.
    const set = await run({ args: ["kv", "set", "plan"], env });
    expect(set.stderr.split("\n").slice(1)).toEqual([
      `Usage: coordination kv set KEY JSON|@FILE [--if-version N] [--ttl DURATION]   write the value (quoted as the shell needs: '{"step":2}',`,
      `                                    '"text"'); --if-version: only if that is its version now (0: only if absent), else exit 3,`,
      "                                    nothing written; --ttl: it reads as absent that long from now (30s, 10m, 1d; left out,",
      "                                    never: each set says its own); the key written outlives its writer (one an agent had",
      "                                    tied to its life is no longer)",
      "(coordination kv --help: every command, and the options each takes)",
      "",
    ]);
  }, 300_000);

  it("kv lists every key, page by page, up to 10,000, and says where the rest start", async () => {
    // Four 60 KiB values fit in an answer: ten take pages.
    t = await startTestServer({ maxResponseBytes: 256 * 1024 });
    const env = { COORDINATION_URL: t.url };
    const big = Array.from({ length: 10 }, (_, i) => `big/${String(i).padStart(2, "0")}`);
    for (const key of big) await t.api.kv.set.mutate({ key, value: { blob: "x".repeat(60 * 1024) } });
    const all = await run({ args: ["kv", "--prefix", "big/", "--json"], env });
    expect([all.code, all.stderr]).toEqual([0, ""]);
    const answer = JSON.parse(all.stdout) as { items: Array<{ key: string }>; nextCursor: string | null };
    expect([answer.items.map((entry) => entry.key), answer.nextCursor]).toEqual([big, null]);
    expect(rows((await run({ args: ["kv", "--prefix", "big/"], env })).stdout).map((row) => row[0])).toEqual(big);

    // Past 10,000 keys: written straight to the file (ten thousand sets would be this test's whole time).
    const many = Array.from({ length: 10_050 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    withDatabase(t, (db) => {
      const insert = db.prepare("INSERT INTO kv (key, value, version, previousVersion, createdAt, updatedAt, updatedBy, expiresAt) VALUES (?, ?, ?, 0, ?, ?, NULL, NULL)");
      db.transaction(() => many.forEach((key, i) => insert.run(key, String(i), 1000 + i, Date.now(), Date.now())))();
    });
    const first = await run({ args: ["kv", "--prefix", "many/", "--json"], env });
    const head = JSON.parse(first.stdout) as { items: Array<{ key: string; value: number }>; nextCursor: string | null };
    expect([first.code, head.items.length, head.items.at(-1)?.key, head.nextCursor]).toEqual([0, 10_000, "many/09999", "many/09999"]);
    expect(head.items.map((entry) => entry.key)).toEqual(many.slice(0, 10_000));
    const table = await run({ args: ["kv", "--prefix", "many/"], env });
    expect(table.stdout.split("\n").slice(-3)).toEqual([expect.stringMatching(/^many\/09999\s+10999\s/), "(more keys than 10,000: narrow with --prefix, or go on with --after many/09999)", ""]);
    const rest = JSON.parse((await run({ args: ["kv", "--prefix", "many/", "--after", "many/09999", "--json"], env })).stdout) as typeof head;
    expect([rest.items.map((entry) => entry.key), rest.nextCursor]).toEqual([many.slice(10_000), null]);
  }, 300_000);

  it("kv watch --prefix shows the keys under it, then each change to one, a key gone with its agent too, until Ctrl-C", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const first = await t.api.kv.set.mutate({ key: "presence/a", value: { host: "h1" }, agentId: "a", ephemeral: true });
    await t.api.kv.set.mutate({ key: "elsewhere", value: 0 });
    const watch = new CliProcess({ args: ["kv", "watch", "--prefix", "presence/"], env });
    const shown = (lines: number) => vi.waitFor(() => expect(watch.stdout.split("\n").length - 1).toBe(lines), { timeout: 20_000, interval: 20 });
    await shown(1);
    const second = await t.api.kv.set.mutate({ key: "presence/b", value: "x\u009b2J" });
    await t.api.kv.set.mutate({ key: "elsewhere", value: 1 });
    await shown(2);
    await t.api.agents.deregister.mutate({ agentId: "a" });
    await shown(3);
    watch.kill("SIGINT");
    expect(await watch.waitForExit(60_000)).toMatchObject({ code: 0, stderr: "" });
    expect(watch.stdout).toBe(
      [
        `presence/a  1  ${at(first.updatedAt)}  a  {"host":"h1"}  (goes with a)`,
        `presence/b  ${second.version}  ${at(second.updatedAt)}  -  "x\\x9b2J"`,
        "presence/a  gone (deleted, expired, or with the agent it was tied to)",
        "",
      ].join("\n"),
    );
    expect(await runOperator({ args: ["kv", "watch", "k", "--prefix", "p"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("kv watch takes a KEY or --prefix TEXT, not both") });
  }, 120_000);

  it("kv watch shows the key, then each version it takes, until Ctrl-C", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const key = "plans/repo-a";
    const watch = new CliProcess({ args: ["kv", "watch", key], env });
    // Each change waits for the watch to show the one before: a version replaced before the watch looks is not shown.
    const shown = (lines: number) => vi.waitFor(() => expect(watch.stdout.split("\n").length - 1).toBe(lines), { timeout: 20_000, interval: 20 });
    await shown(1);
    const planned = await t.api.kv.set.mutate({ key, value: { step: 1 }, agentId: "planner" });
    await shown(2);
    // Text agents chose reaches the terminal escaped (a C1 control here).
    const expiring = await t.api.kv.set.mutate({ key, value: "x\u009b2J", ttlMs: 3_600_000 });
    await shown(3);
    await t.api.kv.delete.mutate({ key });
    await shown(4);
    // Another key's write is no change of this one.
    await t.api.kv.set.mutate({ key: "plans/repo-b", value: 0 });
    const again = await t.api.kv.set.mutate({ key, value: [1] });
    await shown(5);
    watch.kill("SIGINT");
    expect(await watch.waitForExit(60_000)).toMatchObject({ code: 0, stderr: "" });
    expect(watch.stdout).toBe(
      [
        "       -  absent (never set, deleted or expired)",
        `       1  ${at(planned.updatedAt)}  planner  {"step":1}`,
        `       2  ${at(expiring.updatedAt)}  -  "x\\x9b2J"  (expires ${at(expiring.expiresAt!)})`,
        "       -  absent (never set, deleted or expired)",
        `       4  ${at(again.updatedAt)}  -  [1]`,
        "",
      ].join("\n"),
    );

    // --json: a line of JSON each, the key as kv.get answers it.
    const json = new CliProcess({ args: ["kv", "watch", key, "--json"], env });
    await vi.waitFor(() => expect(json.stdout).toContain("\n"), { timeout: 20_000, interval: 20 });
    json.kill("SIGINT");
    expect((await json.waitForExit(60_000)).code).toBe(0);
    expect(json.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line))).toEqual([asJson({ key, entry: again })]);
  });

  it("kv watch waits through a server's restart, and shows what was written meanwhile", async () => {
    const first = await startTestServer();
    const port = Number(new URL(first.url).port);
    const written = await first.api.kv.set.mutate({ key: "leader", value: "agent-a" });
    const watch = new CliProcess({ args: ["kv", "watch", "leader", "--url", first.url] });
    await vi.waitFor(() => expect(watch.stdout).toContain("agent-a"), { timeout: 20_000, interval: 20 });
    await first.stop();
    t = await startTestServer({ port }, first.dir);
    const next = await t.api.kv.set.mutate({ key: "leader", value: "agent-b", ifVersion: written.version });
    await vi.waitFor(() => expect(watch.stdout).toContain("agent-b"), { timeout: 60_000, interval: 20 });
    watch.kill("SIGINT");
    const exit = await watch.waitForExit(60_000);
    expect(exit.code).toBe(0);
    expect(exit.stdout).toBe(`       1  ${at(written.updatedAt)}  -  "agent-a"\n       2  ${at(next.updatedAt)}  -  "agent-b"\n`);
    // The outage is said once, on stderr.
    expect(exit.stderr).toMatch(/^coordination: [^\n]*; asking again for up to 60 s\n$/);
  });

  it("keys and values agents chose reach the operator's terminal with their control characters escaped", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const forged = "\u001b[2K\r\u001b[32mOK\u0007\u009b2J\u202e";
    await t.api.kv.set.mutate({ key: `k${forged}`, value: { note: forged }, agentId: `a${forged}` });
    for (const args of [["kv"], ["kv", "get", `k${forged}`], ["kv", "get", `k${forged}`, "--json"], ["kv", "--json"], ["kv", "set", `k${forged}`, "1"], ["kv", "delete", `k${forged}`]]) {
      const { code, stdout, stderr } = await run({ args, env });
      expect([code, stderr], args.join(" ")).toEqual([0, ""]);
      expect(stdout, args.join(" ")).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    }
  }, 300_000);
});
