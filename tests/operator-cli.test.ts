// The operator's command line against a real server: tables and --json, credentials, the live
// tail, migrate, and an online backup taken while the server writes. A real process where the
// process is the subject (Ctrl-C, settings read from its directory, the database file); the
// tables and refusals in this process, as the binary runs them (runOperator).
import { copyFileSync, existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CliProcess, killAllCli, runCli, runOperator } from "./helpers/cli-process.js";
import { ADMIN_SECRET, http, startSecureServer } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const until = (condition: () => boolean | Promise<boolean>) => vi.waitFor(async () => expect(await condition()).toBe(true), { timeout: 15_000, interval: 25 });

describe("operator commands against a running server", () => {
  it("stats, tasks list/get/requeue/cancel and agents: a table, or --json", async () => {
    // Health judged generously: a dozen CLI runs on a loaded machine outlast the default 30 s to stale.
    t = await startTestServer({ agentStaleMs: 600_000, agentOfflineMs: 1_200_000 });
    const env = { COORDINATION_URL: t.url };
    await t.api.agents.register.mutate({ agentId: "agent-9", capabilities: ["pdf"] });
    const dead = await t.api.tasks.enqueue.mutate({ queue: "ops", payload: { n: 1 }, maxAttempts: 1 });
    const other = await t.api.tasks.enqueue.mutate({ queue: "ops", payload: { n: 2 } });
    const later = await t.api.tasks.enqueue.mutate({ queue: "ops", payload: { n: 3 }, delayMs: 3_600_000 });
    const claimed = (await t.api.tasks.claim.mutate({ agentId: "agent-9", queues: ["ops"] }))!;
    expect(claimed.id).toBe(dead.id);
    await t.api.tasks.fail.mutate({ taskId: dead.id, agentId: "agent-9", error: "boom" });

    const stats = await runOperator({ args: ["stats"], env });
    expect(stats.code).toBe(0);
    expect(stats.stdout.split("\n")[0]).toMatch(/^QUEUE\s+WAITING\s+PENDING\s+\(SCHEDULED\)\s+CLAIMED\s+COMPLETED\s+DEAD_LETTER\s+CANCELLED\s+OLDEST PENDING\s+NEXT DUE$/);
    // The delayed task is pending, and scheduled: not due for an hour.
    expect(stats.stdout.split("\n")[1]).toMatch(new RegExp(`^ops\\s+0\\s+2\\s+1\\s+0\\s+0\\s+1\\s+0\\s+\\d+ s\\s+${later.runAt.toISOString().replace("T", " ").slice(0, 19)}Z$`));
    const statsJson = JSON.parse((await runOperator({ args: ["stats", "--json"], env })).stdout);
    expect(statsJson).toEqual({
      queues: [{ queue: "ops", counts: { waiting: 0, pending: 2, claimed: 0, completed: 0, dead_letter: 1, cancelled: 0 }, scheduled: 1, nextDueAt: later.runAt.toISOString(), oldestPendingAgeMs: expect.any(Number), paused: false, maxLeased: null, rate: null }],
      queuesOmitted: 0,
      totals: { waiting: 0, pending: 2, claimed: 0, completed: 0, dead_letter: 1, cancelled: 0 },
      scheduled: 1,
      nextDueAt: later.runAt.toISOString(),
      retention: {
        settledTasks: { maxAgeMs: 2_592_000_000, maxCount: null, oldestSettledAt: expect.any(String) },
        executions: { maxAgeMs: 2_592_000_000, maxCount: null },
        notes: { maxAgeMs: null, maxCount: null },
      },
    });

    const list = await runOperator({ args: ["tasks", "list", "--queue", "ops", "--status", "dead_letter"], env });
    expect(list.stdout).toContain(dead.id);
    expect(list.stdout).not.toContain(other.id);
    const got = await runOperator({ args: ["tasks", "get", dead.id], env });
    expect(got.stdout).toMatch(/last error\s+boom/);
    // A dead letter holds no lease: its last holder is named as such, and when it ended.
    expect(got.stdout).toMatch(/^lease\s+-$/m);
    expect(got.stdout).toMatch(/^last holder\s+agent-9 \(token 1\)$/m);
    expect(got.stdout).toMatch(/^finished\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/m);
    // What a claimer must offer shows, so a pending task that sits unclaimed says why.
    const needy = await t.api.tasks.enqueue.mutate({ queue: "ops", payload: {}, capability: "gpu", targetAgentId: "agent-9" });
    expect((await runOperator({ args: ["tasks", "get", needy.id], env })).stdout).toMatch(/^capability\s+gpu\n^target agent\s+agent-9\n^run at\s+\d{4}-/m);
    expect((await runOperator({ args: ["tasks", "list", "--capability", "gpu"], env })).stdout).toMatch(new RegExp(`^${needy.id}\\s+ops\\s+pending\\s+5\\s+0/3\\s+-\\s+capability gpu, agent agent-9\\s+\\d{4}-`, "m"));
    // A payload of 300 KB shows its first 2,000 characters and how long it is; --json gives it whole.
    const big = await t.api.tasks.enqueue.mutate({ queue: "ops", payload: { text: "é".repeat(300_000) } });
    const shown = await runOperator({ args: ["tasks", "get", big.id], env });
    const payloadLine = shown.stdout.split("\n").find((line) => line.startsWith("payload"))!;
    expect(payloadLine.replace(/^payload +/, "")).toBe(`{"text":"${"é".repeat(1990)}… (300,011 characters in all: --json prints it whole)`);
    expect(shown.stdout.length).toBeLessThan(10_000);
    expect(JSON.parse((await runOperator({ args: ["tasks", "get", big.id, "--json"], env })).stdout).payload.text).toHaveLength(300_000);
    const requeued = JSON.parse((await runOperator({ args: ["tasks", "requeue", dead.id, "--json"], env })).stdout);
    expect(requeued.status).toBe("pending");
    expect((await runOperator({ args: ["tasks", "cancel", other.id], env })).stdout).toMatch(/status\s+cancelled/);

    const agents = await runOperator({ args: ["agents", "--capability", "pdf"], env });
    expect(agents.stdout).toMatch(/agent-9\s+healthy\s+idle\s+0\s+pdf/);
    const missing = await runOperator({ args: ["tasks", "get", "no-such-task"], env });
    expect([missing.code, missing.stderr]).toEqual([1, 'coordination: TASK_NOT_FOUND: task "no-such-task" not found\n']);
  });

  it("a usage error prints its message and the usage of that command alone, then where the rest is", async () => {
    const env = { COORDINATION_URL: "http://127.0.0.1:1" };
    const update = await runOperator({ args: ["tasks", "update", "T1", "--priority", "high"], env });
    expect([update.code, update.stdout]).toEqual([2, ""]);
    expect(update.stderr).toBe(
      [
        "coordination: --priority must be a whole number",
        "Usage: coordination tasks update TASK_ID [--priority N] [--at TIME | --delay DURATION] [--expires TIME|DURATION|never] [--payload JSON|@FILE]",
        "                                    [--clear-checkpoint]",
        "                                    a task that waits to run (pending or waiting): its priority (0 highest), when it falls due (ISO",
        "                                    8601 or Unix ms; or 30s, 5m, 1h from now), when it expires unrun (a time, or a length of time",
        "                                    from now; never: no expiry), what its next run is handed (JSON; its checkpoint goes with the old",
        "                                    one), its checkpoint cleared (its next run starts from the beginning)",
        "(coordination tasks --help: every command, and the options each takes)",
        "",
      ].join("\n"),
    );
    // A word that names several forms (tasks wait, tasks cancel): each of them; an option refused before the words are known: the command's.
    const wait = await runOperator({ args: ["tasks", "wait"], env });
    expect(wait.stderr.split("\n").filter((line) => /^(Usage: | {7})coordination tasks/.test(line))).toEqual([
      "Usage: coordination tasks wait TASK_ID [--timeout DURATION]     until it settles (or DURATION: 30s, 5m, 1h); exit 0 if it completed,",
      "       coordination tasks wait TASK_ID TASK_ID... [--any] [--timeout DURATION]   (up to 100) until all of them completed (--any:",
    ]);
    const stats = await runOperator({ args: ["--url", "http://127.0.0.1:1", "stats", "--bogus"], env: {} });
    expect([stats.code, stats.stderr]).toEqual([2, 'coordination: unknown option "--bogus"\nUsage: coordination stats [--queue Q]                         task counts per queue and state\n(coordination stats --help: every command, and the options each takes)\n']);
    const schedules = await runOperator({ args: ["schedules", "set", "nightly", "--every", "nope"], env });
    expect(schedules.stderr.split("\n").slice(1, -2)).toHaveLength(10);
    expect(schedules.stderr.split("\n")[1]).toMatch(/^Usage: coordination schedules set NAME --cron/);
  });

  it("an option the command does not take is refused, exit 2, never dropped: a bulk requeue told --limit 5 requeues nothing", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3].map((n) => ({ queue: "bulk", payload: n, maxAttempts: 1 })) });
    for (const task of tasks) {
      await t.api.tasks.claim.mutate({ agentId: "w", queues: ["bulk"] });
      await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "w", error: "smtp down" });
    }
    const refused = await runOperator({ args: ["tasks", "requeue", "--all", "--queue", "bulk", "--limit", "5"], env });
    expect(refused.code).toBe(2);
    expect(refused.stderr.split("\n")[0]).toBe("coordination: tasks requeue --all does not take --limit (it takes --all, --queue, --after, --before, --clear-checkpoint)");
    expect((await t.api.tasks.stats.query({ queue: "bulk" })).queues[0]!.counts.dead_letter).toBe(3);
    for (const [args, message] of [
      [["stats", "--status", "pending"], "stats does not take --status (it takes --queue)"],
      [["tasks", "get", tasks[0]!.id, "--queue", "bulk"], "tasks get does not take --queue (it takes none of its own)"],
      [["agents", "--queue", "bulk", "--status", "dead_letter"], "agents does not take --queue, --status (it takes --health, --capability, --cordoned)"],
      [["queues", "resume", "bulk", "--reason", "x"], "queues resume does not take --reason (it takes none of its own)"],
      // --all is the bulk form, which names no task: with a TASK_ID it is refused, not ignored.
      [["tasks", "requeue", tasks[0]!.id, "--all", "--before", "2030-01-01T00:00:00Z"], "tasks requeue does not take --all, --before (it takes --clear-checkpoint)"],
    ] as const) {
      const answer = await runOperator({ args: [...args], env });
      expect([answer.code, answer.stderr.split("\n")[0]], args.join(" ")).toEqual([2, `coordination: ${message}`]);
    }
    // What the API filters by, the commands take: stats of one queue, tasks of one capability.
    await t.api.tasks.enqueue.mutate({ queue: "other", payload: 1, capability: "gpu" });
    const one = JSON.parse((await runOperator({ args: ["stats", "--queue", "bulk", "--json"], env })).stdout);
    expect(one.queues.map((q: { queue: string }) => q.queue)).toEqual(["bulk"]);
    // The queues a --queue leaves out are not "quieter queues not shown".
    expect((await runOperator({ args: ["stats", "--queue", "bulk"], env })).stdout).not.toContain("quieter");
    const gpu = JSON.parse((await runOperator({ args: ["tasks", "list", "--capability", "gpu", "--json"], env })).stdout);
    expect(gpu.items.map((task: { queue: string }) => task.queue)).toEqual(["other"]);
  });

  it("agents lists every agent, page by page, when they do not fit in one answer", async () => {
    t = await startTestServer({ maxResponseBytes: 256 * 1024 });
    const blob = "x".repeat(60 * 1024); // four agents fit in an answer
    const ids = Array.from({ length: 10 }, (_, i) => `agent-${String(i).padStart(2, "0")}`);
    for (const agentId of ids) await t.api.agents.register.mutate({ agentId, capabilities: ["pdf"], metadata: { blob } });
    const listed = await runOperator({ args: ["agents", "--json"], env: { COORDINATION_URL: t.url } });
    expect([listed.code, listed.stderr]).toEqual([0, ""]);
    expect(JSON.parse(listed.stdout).map((a: { agentId: string }) => a.agentId)).toEqual(ids);
  });

  it("text agents chose reaches the operator's terminal with its control characters escaped, never as terminal commands", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    // What an agent can store: a queue name, a capability, a status, an error, all with ESC sequences.
    const forged = "\u001b[2K\r\u001b[32mOK: all agents healthy\u0007";
    await t.api.agents.register.mutate({ agentId: "mallory", capabilities: [`pdf${forged}`] });
    await t.api.agents.heartbeat.mutate({ agentId: "mallory", status: `busy${forged}` });
    const task = await t.api.tasks.enqueue.mutate({ queue: `q${forged}`, maxAttempts: 1 });
    await t.api.tasks.claim.mutate({ agentId: "mallory", queues: [`q${forged}`] });
    await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "mallory", error: `boom${forged}` });
    // C1 controls (CSI, OSC, ST), DEL and a right-to-left override in a run's progress and result.
    const eightBit = "a\u009b2Jb\u009d0;title\u009cc\u007fd\u202ee\u2066f";
    const other = await t.api.tasks.enqueue.mutate({ queue: "eight-bit" });
    await t.api.tasks.claim.mutate({ agentId: "mallory", queues: ["eight-bit"] });
    await t.api.tasks.heartbeat.mutate({ taskId: other.id, agentId: "mallory", progress: { step: eightBit } });
    for (const args of [["agents"], ["stats"], ["tasks", "get", task.id], ["tasks", "list"], ["tasks", "get", other.id], ["tasks", "get", other.id, "--json"], ["tasks", "list", "--json"]]) {
      const { code, stdout } = await runOperator({ args, env });
      expect(code, args.join(" ")).toBe(0);
      expect(stdout, args.join(" ")).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    }
    // --json stays JSON that reads back the same.
    expect(JSON.parse((await runOperator({ args: ["tasks", "get", other.id, "--json"], env })).stdout).progress).toEqual({ step: eightBit });
    expect((await runOperator({ args: ["stats"], env })).stdout).toContain("q\\x1b[2K\\r\\x1b[32mOK: all agents healthy\\x07");
    expect((await runOperator({ args: ["tasks", "get", task.id], env })).stdout).toMatch(/last error\s+boom\\x1b\[2K/);
  });

  it("events tail follows the live log until Ctrl-C", async () => {
    t = await startTestServer();
    const tail = new CliProcess({ args: ["events", "tail", "--types", "task.*", "--url", t.url] });
    // The stream starts after the socket opens: publish until the tail shows one.
    await until(async () => {
      await t!.api.tasks.enqueue.mutate({ queue: "tail" });
      return tail.stdout.includes("task.enqueued");
    });
    await t.api.events.publish.mutate({ type: "other.thing", source: "s" });
    expect(tail.stdout).not.toContain("other.thing");
    tail.child.kill("SIGINT");
    expect((await tail.waitForExit()).code).toBe(0);
  });

  it("events tail without --from, reconnecting before it printed anything, prints what came meanwhile", async () => {
    const first = await startTestServer();
    const port = Number(new URL(first.url).port);
    const tail = new CliProcess({ args: ["events", "tail", "--types", "drill.*", "--url", first.url] });
    // Subscribed (its first HTTP call answered, its socket open) before the server goes away.
    await until(() => first.server.services.events.liveStreams.size === 1);
    await first.stop();
    // Meanwhile, through another server on the file: an event the tail must not miss.
    const other = await startTestServer({}, first.dir);
    await other.api.events.publish.mutate({ type: "drill.during", source: "ops" });
    await other.stop();
    t = await startTestServer({ port }, first.dir);
    await until(() => tail.stdout.includes("drill.during"));
    tail.child.kill("SIGINT");
    expect((await tail.waitForExit()).code).toBe(0);
  });

  it("events tail --from says what is wrong with --from, in the command's own terms", async () => {
    t = await startTestServer({ eventRetentionCount: 2, eventPruneMs: 3_600_000 });
    for (let i = 0; i < 5; i++) await t.api.events.publish.mutate({ type: "job.x", source: "s" });
    await t.server.services.jobs.eventPruner.runNow();
    const pruned = await runCli({ args: ["events", "tail", "--from", "1", "--url", t.url] });
    expect([pruned.code, pruned.stderr]).toEqual([
      1,
      "coordination: EVENTS_PRUNED: --from 1 is behind the retained event log: events up to 3 were pruned. Tail with --from 0 (the oldest retained event) or --from 3 or later, or without --from to follow new events only.\n",
    ]);
    const ahead = await runCli({ args: ["events", "tail", "--from", "99", "--url", t.url] });
    expect([ahead.code, ahead.stderr]).toEqual([1, "coordination: INVALID_INPUT: --from: 99 is beyond the newest event (5)\n"]);
  });

  it("takes the token from the environment, the server's admin token too; without one, the server's refusal and how to give one", async () => {
    t = await startSecureServer();
    const refused = await runCli({ args: ["stats"], env: { COORDINATION_URL: t.url } });
    expect([refused.code, refused.stderr]).toEqual([1, "coordination: UNAUTHORIZED: Unauthorized: send a valid bearer token (Authorization: Bearer <token>) (give one with --token or COORDINATION_TOKEN)\n"]);
    expect((await runCli({ args: ["stats", "--json"], env: { COORDINATION_URL: t.url, COORDINATION_TOKEN: ADMIN_SECRET } })).code).toBe(0);
    // The shell that started the server with its admin token: the operator's commands use it.
    expect((await runCli({ args: ["stats", "--json"], env: { COORDINATION_URL: t.url, COORDINATION_ADMIN_TOKEN: ADMIN_SECRET } })).code).toBe(0);
    const tail = await runCli({ args: ["events", "tail"], env: { COORDINATION_URL: t.url, COORDINATION_TOKEN: "bad", COORDINATION_ADMIN_TOKEN: ADMIN_SECRET } });
    expect([tail.code, tail.stderr]).toEqual([1, "coordination: UNAUTHORIZED: Unauthorized: send a valid bearer token (Authorization: Bearer <token>) (the server refused the token given)\n"]);
  });

  it("without --url or COORDINATION_URL, finds the server by its own settings: .env, its YAML file, --config; settings it cannot read are exit 2 saying so", async () => {
    t = await startSecureServer();
    const { port } = new URL(t.url);
    const dir = makeTempDir();
    writeFileSync(join(dir, "server.yaml"), `host: 127.0.0.1\nport: ${port}\nadmin_token: ${ADMIN_SECRET}\n`);
    writeFileSync(join(dir, ".env"), "COORDINATION_CONFIG=server.yaml\n");
    const found = await runCli({ args: ["stats", "--json"], cwd: dir });
    expect([found.code, found.stderr]).toEqual([0, ""]);
    expect(JSON.parse(found.stdout)).toMatchObject({ totals: { pending: 0 } });
    // From elsewhere, naming the file; a token given still wins over the file's.
    const named = await runCli({ args: ["stats", "--json", "--config", join(dir, "server.yaml")], cwd: makeTempDir() });
    expect([named.code, named.stderr]).toEqual([0, ""]);
    const wrongToken = await runCli({ args: ["stats", "--config", join(dir, "server.yaml")], env: { COORDINATION_TOKEN: "not-the-secret" }, cwd: makeTempDir() });
    expect(wrongToken.code).toBe(1);
    // The settings' admin token goes to the server they describe, never to a URL named otherwise.
    const seen: Array<string | undefined> = [];
    const elsewhere = createHttpServer((req, res) => (seen.push(req.headers.authorization), res.writeHead(503).end()));
    await new Promise<void>((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
    try {
      const other = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
      expect((await runCli({ args: ["stats", "--url", other], cwd: dir })).code).toBe(1);
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.filter((header) => header !== undefined)).toEqual([]);
    } finally {
      elsewhere.closeAllConnections();
      await new Promise<void>((resolve) => elsewhere.close(() => resolve()));
    }
    // With a URL given, settings it does not need are not read: one the server would refuse does not stop the command.
    const unrelated = await runCli({ args: ["stats", "--json", "--url", t.url, "--token", ADMIN_SECRET], env: { COORDINATION_PORT: "abc" }, cwd: dir });
    expect([unrelated.code, unrelated.stderr]).toEqual([0, ""]);
    const missing = await runCli({ args: ["stats", "--config", join(dir, "nope.yaml")], cwd: makeTempDir() });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^coordination: the server's settings cannot be read for its address and token \(give --url, or mend them\): .*nope\.yaml/);
  });

  it("says when the server cannot be reached, the live tail too", async () => {
    for (const args of [["stats"], ["events", "tail"]]) {
      const exit = await runCli({ args: [...args, "--url", "http://127.0.0.1:9"] });
      expect(exit.code, args.join(" ")).toBe(1);
      expect(exit.stderr).toMatch(/^coordination: cannot reach the server at http:\/\/127\.0\.0\.1:9/);
    }
  });

  // A proxy in front of the server may ask for a password in the URL; what the command says goes
  // to terminals and CI logs, and must not carry it.
  it("names the server without the password its URL holds", async () => {
    const exit = await runCli({ args: ["stats", "--url", "http://ops:proxy-pass-42@127.0.0.1:9/"] });
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/^coordination: cannot reach the server at http:\/\/ops:\*\*\*@127\.0\.0\.1:9\/ /);
    expect(exit.stderr).not.toContain("proxy-pass-42");
  });

  // A URL no parser reads (a port past 65535, a space in the host) holds its password all the same.
  // It is refused as no address (exit 2, client-url-text.test.ts), never sent.
  it("names the server without the password of a URL that does not parse", async () => {
    for (const url of ["http://ops:proxy-pass-42@127.0.0.1:99999/", "http://ops:proxy-pass-42@127.0.0 .1:9/", "http://ops:proxy-pass-42@[::1/"]) {
      const exit = await runCli({ args: ["stats", "--url", url] });
      expect(exit.code).toBe(2);
      expect(exit.stderr).toMatch(/^coordination: url ".*" is not an http:\/\/ or https:\/\/ address/);
      expect(exit.stderr).toContain("ops:***@");
      expect(exit.stderr).not.toContain("proxy-pass-42");
    }
  });
});

describe("the database file", () => {
  it("migrate applies pending migrations and exits; then it is up to date; options take their values whatever they look like", async () => {
    const db = join(makeTempDir(), "m.db");
    const first = await runCli({ args: ["migrate", "--db", db] });
    // Every migration in the folder, oldest first (their names start with their time).
    const migrations = readdirSync(fileURLToPath(new URL("../prisma/migrations", import.meta.url)), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
    expect(migrations.length).toBeGreaterThan(1);
    expect([first.code, first.stderr]).toEqual([0, `applied to ${db}: ${migrations.join(", ")}\n`]);
    expect(await runCli({ args: ["migrate", "--db", db] })).toMatchObject({ code: 0, stderr: `${db} is up to date\n` });
    // Any option's value is its value: a level after --log-level, a FILE named like the --db path.
    expect(await runCli({ args: ["migrate", "--db", db, "--log-level", "debug"] })).toMatchObject({ code: 0, stderr: `${db} is up to date\n` });
    const copy = join(dirname(db), "same-name.db");
    const made = await runCli({ args: ["backup", copy, "--log-level", "debug", "--db", db] });
    expect([made.code, made.stderr]).toEqual([0, expect.stringMatching(/^backed up .* checked\n$/)]);
    expect(await runCli({ args: ["migrate", "--db", db, "stray"] })).toMatchObject({ code: 2, stderr: 'coordination: migrate: unexpected "stray"\n' });
  });

  it("backup copies a 20 MB database online while a server writes to it without pause, and the copy restores", async () => {
    const dir = makeTempDir();
    const db = join(dir, "live.db");
    const server = new CliProcess({ args: ["--port", "0", "--db", db] });
    const url = await server.waitForUrl();
    // 20 MB first: SQLite's backup API, copying in steps, started again at every write of the
    // server and never finished on a file this size under steady writes.
    const blob = "y".repeat(200_000);
    for (let i = 0; i < 100; i++) expect((await http(url, "POST", "/tasks", { body: { queue: "seed", payload: { blob } } })).status).toBe(200);
    const acknowledged: string[] = [];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const answer = await http(url, "POST", "/tasks", { body: { queue: "b", payload: { text: "x".repeat(2000) } } });
        if (answer.status === 200) acknowledged.push(answer.body.id);
      }
    })();
    await until(() => acknowledged.length >= 200);
    const before = acknowledged.length;
    const backup = join(dir, "copy.db");
    const made = await runCli({ args: ["backup", backup, "--db", db] });
    writing = false;
    await writer;
    expect(made.code).toBe(0);
    expect(made.stderr).toMatch(new RegExp(`^backed up ${db} to ${backup}: \\d+ pages, \\d+ tasks, checked\\n$`));
    const copy = new Database(backup, { readonly: true });
    const ids = new Set(copy.prepare("SELECT id FROM tasks").pluck().all());
    copy.close();
    for (const id of acknowledged.slice(0, before)) expect(ids.has(id)).toBe(true);
    expect((await runCli({ args: ["backup", backup, "--db", db] })).code).toBe(2);
    expect(existsSync(`${backup}-wal`) || existsSync(`${backup}-shm`)).toBe(false);
    const nowhere = await runCli({ args: ["backup", join(dir, "missing", "copy.db"), "--db", db] });
    // A directory that does not exist is a usage mistake (2), said as serve says it of --db.
    expect([nowhere.code, nowhere.stderr]).toEqual([2, `coordination backup: the directory ${join(dir, "missing")} does not exist\n`]);

    // Restore, as the README says: stop, replace the file (without its -wal and -shm), start.
    server.child.kill("SIGTERM");
    expect((await server.waitForExit()).code).toBe(0);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${db}${suffix}`, { force: true });
    copyFileSync(backup, db);
    const restored = new CliProcess({ args: ["--port", "0", "--db", db] });
    const restoredUrl = await restored.waitForUrl();
    expect((await http(restoredUrl, "GET", `/tasks/${acknowledged[0]}`)).status).toBe(200);
    restored.child.kill("SIGTERM");
    await restored.waitForExit();
  });
});
