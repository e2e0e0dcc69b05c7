// Keeps the README honest: its shell and TypeScript examples run against a real server.
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { ERROR_STATUS } from "../src/errors.js";
import { ROUTES } from "../src/rest/routes.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CLI_PATH, CliProcess, killAllCli, runOperator } from "./helpers/cli-process.js";
import { ADMIN_SECRET } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer } from "./helpers/test-server.js";

const run = promisify(execFile);
import { shippedSchema } from "../src/db/migrate.js";

const README = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const blocks = (lang: string) => [...README.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);

/**
 * How long an example's process (node, or a shell session starting the CLI several times) may run
 * before it is killed: only to end one that never will, under the test's own 120 s. A loaded
 * machine took over 30 s for the Security session's six CLI starts.
 */
const PROCESS_BOUND_MS = 100_000;

/** The README's TypeScript block that holds `marker` (the first). */
const exampleBlock = (marker: string) => blocks("ts").find((b) => b.includes(marker))!;

/** Runs the README's TypeScript block that holds `marker` against the server at `url`, or one of its own (it is plain JavaScript at run time); its stdout. */
async function runExample(marker: string, name: string, url?: string): Promise<string> {
  await using t = url ? undefined : await startTestServer();
  const example = exampleBlock(marker).replace("http://127.0.0.1:8000", url ?? t!.url);
  const file = fileURLToPath(new URL(`../readme-example-${process.pid}-${name}.mjs`, import.meta.url));
  writeFileSync(file, example);
  try {
    return (await run(process.execPath, [file], { timeout: PROCESS_BOUND_MS })).stdout;
  } finally {
    rmSync(file, { force: true });
  }
}

/** The README's TypeScript examples that print what they show: the block holding `marker`, and its output. */
const EXAMPLES: { title: string; marker: string; name: string; output: string }[] = [
  { title: "runs the task dependencies example as written", marker: "dependsOn", name: "dependencies", output: "waiting\ntrue [ { notes: { topic: 'pricing' } }, { notes: { topic: 'rivals' } } ]\n" },
  { title: "runs the recurring tasks example as written", marker: "weekday-digest", name: "schedules", output: "pending weekday-digest true\nsweep 1 true\nnull\ntrue\n" },
  { title: "runs the waiting-for-a-result example as written", marker: "translator-1", name: "wait", output: "completed { text: '[fr] hello' }\n" },
  { title: "runs the waiting-for-several example as written", marker: "summarizer-1", name: "wait-many", output: "[ '3 words', '2 words', '5 words' ]\n" },
  { title: "runs the named locks example as written", marker: "repo/CHANGELOG.md", name: "locks", output: "2 false\nbusy: deployer-1\n" },
  { title: "runs the semaphores example as written", marker: 'name: "llm-api-key"', name: "semaphores", output: "2 0\nfull: 1\n" },
  { title: "runs the shared state example as written", marker: "runs/42/pages", name: "kv", output: "30\nleader: agent-1\n{ step: 'draft' }\n" },
  { title: "runs the webhooks example as written: a receiver that verifies what it gets", marker: "verifyWebhook", name: "webhooks", output: "task.dead_lettered reports no data\n" },
  { title: "runs the deduplicated enqueues example as written", marker: "reindex:42", name: "dedupe", output: "false true true 2\n1 { text: 'hello' } 2\n" },
  { title: "runs the ordering keys example as written", marker: "orderingKey: `account:", name: "ordering", output: "[ { account: 1, op: 'create' }, { account: 2, op: 'create' } ]\nnull\n{ account: 1, op: 'update' }\n" },
  { title: "runs the key concurrency example as written", marker: "keyConcurrency: 2 });", name: "key-concurrency", output: "acme:1 acme:2 globex:1\n4\n" },
  { title: "runs the ephemeral keys example as written: the agent's keys go with its deregistration", marker: 'ephemeralOwner: "worker-7"', name: "ephemeral-keys", output: "[ 'presence/worker-7', 'working-on/ticket-42' ]\npresence/worker-7 here\npresence/worker-7 gone\nnull\n" },
  { title: "runs the counters example as written", marker: "runs/7/tokens", name: "counters", output: "30\n6000 6000 true\nover budget: stop\n" },
  { title: "runs the checkpoint example as written: the retry goes on from the second section", marker: "saveCheckpoint", name: "checkpoint", output: "completed 2 [ 'intro', 'pricing', 'rivals', 'summary' ]\n[ 'intro', 'pricing', 'rivals', 'summary' ]\n" },
  { title: "runs the trace context example as written: the claimed task carries the producer's trace", marker: "propagation.extract(ROOT_CONTEXT, task)", name: "trace", output: "0af7651916cd43dd8448eb211c80319c vendor=one\n" },
  { title: "runs the worker span example as written: the run's span is in the producer's trace", marker: "SpanKind.CONSUMER", name: "trace-worker", output: "completed { traceId: '0af7651916cd43dd8448eb211c80319c' }\n" },
  { title: "runs the client trace context example as written: two enqueues made together carry their own callers' traces", marker: "traceContext: () =>", name: "trace-client", output: "0af7651916cd43dd8448eb211c80319c 4bf92f3577b34da6a3ce929d0e0e4736\n" },
  { title: "runs the progress example as written", marker: "reportProgress", name: "progress", output: "{ step: 'writing', done: 3, of: 3 }\n{ step: 'writing', done: 3, of: 3 } true\n" },
  { title: "runs the run log example as written", marker: "followLog(api", name: "run-log", output: "1 info searching the web\n2 debug model answered { inputTokens: 812, outputTokens: 64 }\n3 warn one source was down: used the cache\n[ 'one source was down: used the cache' ] completed\n" },
];

describe("README", () => {
  it("opens with the install-and-start command and the test command", () => {
    const first = blocks("bash")[0]!;
    expect(first).toContain("npm ci && npm start");
    expect(first).toContain("npm test");
    expect(readFileSync(fileURLToPath(new URL("../.ci/run", import.meta.url)), "utf8")).toMatch(/^npm test$/m);
  });

  it("runs the curl session as written, block by block, even when the reader pauses long enough for leases to expire", async () => {
    // Short leases, and between blocks every lease runs out: a reader who paused.
    await using t = await startTestServer({ leaseMs: 50, leaseSweepMs: 60_000 });
    const port = new URL(t.url).port;
    let stdout = "";
    for (const block of blocks("bash").filter((b) => b.includes("curl"))) {
      const session = block.replaceAll("localhost:8000", `127.0.0.1:${port}`);
      stdout += (await run("bash", ["-euo", "pipefail", "-c", session], { timeout: 20_000 })).stdout;
      await new Promise((resolve) => setTimeout(resolve, 60));
      await t.server.services.tasks.expireLeases();
    }
    expect(stdout).toContain('"status":"ok"');
    expect(stdout).toContain('"summary":"done"');
    expect(stdout).toContain('"type":"task.assigned"');
    expect(stdout).not.toContain('"code"');
    const stats = await t.api.tasks.stats.query();
    expect(stats.totals.completed).toBe(1);
  });

  it("shows /health answering with this build's schema", () => {
    expect(/^# \{"status":"ok",.*"schema":"([^"]+)"/m.exec(README)?.[1]).toBe(shippedSchema());
  });

  it("lists every REST route in the API table", () => {
    const table = README.slice(README.indexOf("## The API"), README.indexOf("## ", README.indexOf("## The API") + 5));
    for (const route of ROUTES) expect(table, `${route.method} ${route.path}`).toContain(`${route.method} ${route.path}`);
  });

  it("says of every error code what it means and whether to retry", () => {
    const section = (heading: string) => README.slice(README.indexOf(heading), README.indexOf("\n## ", README.indexOf(heading) + 5));
    for (const code of Object.keys(ERROR_STATUS)) {
      expect(section("## The API"), code).toContain(`\`${code}\``);
      expect(section("## Guarantees"), code).toContain(`\`${code}\``);
    }
  });

  it("runs the in-process example as written, printing what it shows, in the directory where the server keeps its coordination.db", async () => {
    // A reader who follows the README runs it in the checkout, beside the file of the server they
    // started: a task the curl session left pending there would be the one its claim takes.
    const dir = makeTempDir();
    const server = await startTestServer({}, dir);
    try {
      await server.api.tasks.enqueue.mutate({ queue: "default", payload: { action: "research" }, priority: 5 });
    } finally {
      await server.stop(); // its file stays
    }
    const block = blocks("ts").find((b) => b.includes("openCoordination"))!;
    const shown = /console\.log\(claimed\?\.id === task\.id.*\/\/ (.*)$/m.exec(block)?.[1];
    expect(shown).toBeDefined();
    const example = block.replace(/dbPath: ("[^"]+")/, '$&, logLevel: "warn"');
    const file = fileURLToPath(new URL(`../readme-example-${process.pid}-in-process.mjs`, import.meta.url));
    writeFileSync(file, example);
    try {
      const { stdout } = await run(process.execPath, [file], { timeout: PROCESS_BOUND_MS, cwd: dir });
      expect(stdout.trim()).toBe(shown);
    } finally {
      rmSync(file, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs the Security session as written, against a server with credentials on", async () => {
    await using t = await startTestServer({ adminToken: ADMIN_SECRET, tokenRefreshMs: 100 });
    const port = new URL(t.url).port;
    const session = blocks("sh")
      .find((b) => b.includes("tokens create"))!
      .replaceAll("localhost:8000", `127.0.0.1:${port}`)
      .replaceAll("npx coordination", `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_PATH)}`)
      // Print the status of each curl, to check them below; the revocation may take a refresh to be seen.
      .replaceAll("curl -s ", "curl -s -w ' %{http_code}\\n' ")
      // Asked again until it is (10 s at most), whatever the machine's speed.
      .replace(
        /\ncurl -s -w ' %\{http_code\}\\n' (\S+) (-H "authorization: Bearer \$WORKER")\s+# revoked: 401.*/,
        "\nfor try in $(seq 100); do code=$(curl -s -o /dev/null -w '%{http_code}' $1 $2); [ \"$code\" = 401 ] && break; sleep 0.1; done; echo \" $code\"",
      );
    expect(session).toContain("for try in $(seq 100)");
    const env = { PATH: process.env.PATH!, COORDINATION_DB_PATH: t.dbPath, COORDINATION_ADMIN_TOKEN: ADMIN_SECRET };
    const { stdout } = await run("bash", ["-euo", "pipefail", "-c", session], { timeout: PROCESS_BOUND_MS, env, cwd: t.dir });
    const statuses = [...stdout.matchAll(/ (\d{3})$/gm)].map((m) => m[1]);
    // The first curl's answer goes to /dev/null.
    expect(statuses).toEqual(["200", "403", "403", "401"]);
    expect(stdout).toContain("worker-1");
    expect(stdout).toContain('"leaseOwner":"worker-1"');
    expect(stdout).toMatch(/^read \(token \S+, named "wall screen"\)$/m);
    expect(stdout).toContain('"code":"FORBIDDEN","message":"this credential writes only keys starting with \\"agents/worker-3/\\" or \\"shared/\\"; kv.set names key \\"agents/worker-1/status\\""');
    const own = await fetch(`${t.url}/kv/agents%2Fworker-3%2Fstatus`, { headers: { authorization: `Bearer ${ADMIN_SECRET}` } });
    expect(await own.json()).toMatchObject({ entry: { value: "busy", updatedBy: "worker-3" } });
  });

  it("runs the operator's command lines as written, each against a server holding the tasks it names", async () => {
    await using t = await startTestServer();
    const api = t.api;
    // The tasks the lines name: completed ones to wait for, a delayed one to promote, a pending one to update.
    const completed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const task = await api.tasks.enqueue.mutate({ queue: "done" });
      const run = await api.tasks.claim.mutate({ agentId: "w", queues: ["done"], context: false });
      await api.tasks.complete.mutate({ taskId: task.id, agentId: "w", leaseToken: run!.leaseToken });
      completed.push(task.id);
    }
    const delayed = await api.tasks.enqueue.mutate({ queue: "later", delayMs: 3_600_000 });
    const pending = await api.tasks.enqueue.mutate({ queue: "drafts" });
    const purged = await api.tasks.enqueue.mutate({ queue: "reports" });
    // The agent a line cordons, and the locks lines list and free.
    await api.agents.register.mutate({ agentId: "worker-7" });
    await api.locks.acquire.mutate({ name: "deploy:production", agentId: "deployer-1", leaseMs: 600_000 });
    // The semaphores the lines show and free.
    await api.semaphores.acquire.mutate({ name: "llm-api-key", agentId: "agent-1", limit: 2 });
    await api.semaphores.acquire.mutate({ name: "gpu", agentId: "trainer", limit: 1, leaseMs: 600_000 });
    // A run's log to read: lines by two runs, then its settle (a follow of it ends at once).
    const logged = await api.tasks.enqueue.mutate({ queue: "logged" });
    for (const [agentId, level] of [["w1", "warn"], ["w2", "error"]] as const) {
      const held = await api.tasks.claim.mutate({ agentId, queues: ["logged"], context: false });
      await api.tasks.appendLog.mutate({ taskId: logged.id, agentId, entries: [{ message: "fetching" }, { message: "the page is gone", level, data: { status: 404 } }] });
      if (agentId === "w1") await api.tasks.fail.mutate({ taskId: logged.id, agentId, leaseToken: held!.leaseToken, error: "404", retryAfterMs: 0 });
      else await api.tasks.complete.mutate({ taskId: logged.id, agentId, leaseToken: held!.leaseToken });
    }
    // A memory a line forgets, and one a task of the queue it names recalls.
    const misleading = await api.memory.remember.mutate({ content: "Deploys may skip the canary", queue: "deploys" });
    const taskFor: Record<string, string> = { get: completed[0]!, wait: completed[0]!, promote: delayed.id, update: pending.id, logs: logged.id, recall: completed[1]! };
    const block = blocks("sh").find((b) => b.includes("npx coordination stats"))!;
    const lines = block.split("\n").filter((line) => line.startsWith("npx coordination "));
    expect(lines.length).toBe(45);
    // The file a line reads its payload from.
    const reviewDir = makeTempDir("coordination-readme-");
    const review = join(reviewDir, "review.json");
    writeFileSync(review, '{"pullRequest":812}\n');
    const env = { COORDINATION_URL: t.url };
    try {
      for (const line of lines) {
        // The command without its comment, split as a shell would (quotes kept together, then dropped).
        const words = [...line.replace(/\s+#.*$/, "").matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!).slice(2);
        const args = words
          .filter((word) => word !== "[--any]")
          .flatMap((word) => (word === "ID1" ? completed : word === "ID2" || word === "ID3" ? [] : word === "TASK_ID" ? [taskFor[words[1]!]!] : word === "MEMORY_ID" ? [misleading.id] : [word]))
          // The webhook's receiver: on loopback (port 2: privileged, so nothing a test starts listens there, and not one fetch blocks), never the Internet.
          .map((word) => word.replace("https://hooks.example.com", "http://127.0.0.1:2").replace(/^@review\.json$/, `@${review}`));
        if (words[0] === "events" && words[1] === "tail") {
          // It follows the live log until stopped: it shows an event, then Ctrl-C ends it.
          const tail = new CliProcess({ args, env });
          // Enqueued again until one arrives: the first may come before the stream opened.
          await expect
            .poll(async () => (tail.stdout.includes("task.enqueued") ? tail.stdout : void (await api.tasks.enqueue.mutate({ queue: "tail" }))), { timeout: 20_000, interval: 200 })
            .toContain("task.enqueued");
          tail.kill("SIGINT");
          expect((await tail.waitForExit()).code, line).toBe(0);
          continue;
        }
        if (words[0] === "kv" && words[1] === "watch") {
          // It shows the key, then each new version until stopped: a version written shows, then Ctrl-C ends it.
          const watch = new CliProcess({ args, env });
          // Written again until the watch shows it: the first may come before its first look, which shows it too.
          await expect
            .poll(async () => (watch.stdout.includes('"stage":"full"') ? watch.stdout : void (await api.kv.set.mutate({ key: "deploy/status", value: { stage: "full", percent: 100 } }))), { timeout: 20_000, interval: 200 })
            .toContain('"stage":"full"');
          watch.kill("SIGINT");
          expect((await watch.waitForExit(60_000)).code, line).toBe(0);
          continue;
        }
        // The rest run in this process (runOperatorCommand, what the binary calls): forty process
        // starts were most of this test's time, a second or more each on a loaded machine.
        const { code, stderr } = await runOperator({ args, env });
        expect([code, stderr], line).toEqual([0, ""]);
      }
    } finally {
      await killAllCli();
      rmSync(reviewDir, { recursive: true, force: true });
    }
    // What the lines did, as the server has it.
    expect((await api.tasks.get.query({ taskId: delayed.id })).runAt.getTime()).toBeLessThan(delayed.runAt.getTime());
    const updated = await api.tasks.get.query({ taskId: pending.id });
    expect([updated.priority, updated.runAt.getTime() >= updated.updatedAt.getTime() + 3_600_000]).toEqual([0, true]);
    expect(await api.tasks.get.query({ taskId: purged.id })).toMatchObject({ status: "cancelled", lastError: "bad deploy" });
    expect((await api.queues.rate.query({ queue: "llm-calls" })).maxClaims).toBe(500);
    const cordon = (await api.agents.get.query({ agentId: "worker-7" })).cordon;
    expect([cordon?.reason, cordon!.until!.getTime() - cordon!.cordonedAt.getTime()]).toEqual(["bad deploy", 2 * 3_600_000]);
    expect((await api.schedules.list.query()).items.map((s) => s.id)).toEqual(["digest", "reindex", "sweep"]);
    expect(await api.locks.get.query({ name: "deploy:production" })).toMatchObject({ held: false });
    const [forced] = await api.events.list.query({ types: ["lock.released"], limit: 10 });
    expect(forced?.payload).toMatchObject({ agentId: "deployer-1", forced: true, reason: "deployer hung" });
    expect(await api.semaphores.get.query({ name: "gpu" })).toMatchObject({ held: 0 });
    const [permitEnded] = await api.events.list.query({ types: ["semaphore.released"], limit: 10 });
    expect(permitEnded?.payload).toMatchObject({ name: "gpu", agentId: "trainer", forced: true, reason: "trainer hung" });
    // The key the lines wrote (only if absent, expiring in an hour), watched and deleted.
    expect(await api.kv.get.query({ key: "deploy/status" })).toEqual({ key: "deploy/status", entry: null });
    const [written] = await api.events.list.query({ types: ["kv.set"], limit: 10 });
    expect(written?.payload).toMatchObject({ key: "deploy/status", version: 1, previousVersion: 0, expiresAt: expect.any(String) });
    expect((await api.events.list.query({ types: ["kv.deleted"], limit: 10 })).map((event) => event.payload)).toEqual([expect.objectContaining({ key: "deploy/status" })]);
    // The lesson remembered, handed with the deploys queue's tasks; the misleading memory gone.
    const deploys = await api.memory.recall.query({ queue: "deploys" });
    expect(deploys.map(({ memory }) => [memory.kind, memory.content])).toEqual([["lesson", "Never deploy on Fridays: on-call is thin"]]);
    // The tasks enqueued (the first line's key names one task) and the event published.
    const invoices = (await api.tasks.list.query({ queue: "invoices" })).items;
    expect(invoices.map((task) => [task.payload, task.maxAttempts, task.runAt.getTime() > Date.now() + 3_000_000])).toEqual([
      [{ month: "2026-11" }, 3, false],
      [{}, 5, true],
    ]);
    expect((await api.tasks.list.query({ queue: "review" })).items.map((task) => task.payload)).toEqual([{ pullRequest: 812 }]);
    const [published] = await api.events.list.query({ types: ["deploy.finished"] });
    expect(published).toMatchObject({ source: "ci", payload: { version: "1.4.2" }, target: null });
    expect((await api.webhooks.list.query()).webhooks).toMatchObject([{ url: "http://127.0.0.1:2/coordination", types: ["task.dead_lettered", "agent.offline"], description: "on-call", enabled: true }]);
  }, 600_000);

  it("the desktop MCP configuration works as written, started from another directory (node and the checkout's CLI by its path)", async () => {
    await using t = await startTestServer({ port: 0 });
    const config = JSON.parse(blocks("json").find((b) => b.includes("mcpServers"))!) as { mcpServers: { coordination: { command: string; args: string[]; env: Record<string, string> } } };
    const { command, args, env } = config.mcpServers.coordination;
    expect([command, args[0]]).toEqual(["node", "/path/to/checkout/bin/coordination.js"]);
    const client = new Client({ name: "readme", version: "1.0.0" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI_PATH, ...args.slice(1).map((arg) => arg.replace("http://127.0.0.1:8000", t.url))],
        env: { ...env, PATH: process.env.PATH! },
        // A desktop client's own directory, outside the checkout.
        cwd: t.dir,
        stderr: "pipe",
      }),
    );
    try {
      await t.api.tasks.enqueue.mutate({ queue: "desk" });
      const result = (await client.callTool({ name: "claim_task", arguments: {} })) as { content: Array<{ text: string }> };
      expect(JSON.parse(result.content[0]!.text).leaseOwner).toBe("desktop-agent");
    } finally {
      await client.close();
    }
  });

  for (const example of EXAMPLES) {
    it(example.title, async () => {
      expect(await runExample(example.marker, example.name)).toBe(example.output);
    });
  }

  it("runs the examples one after another against one server, as a reader who follows the README does, with the outputs it shows", async () => {
    // Each example names its own queues and keys: one left on the server by an example before it
    // (a task no one claimed, a lock held) must not change what the next one prints.
    await using t = await startTestServer();
    const inReadmeOrder = [...EXAMPLES].sort((a, b) => README.indexOf(exampleBlock(a.marker)) - README.indexOf(exampleBlock(b.marker)));
    for (const example of inReadmeOrder) expect(await runExample(example.marker, example.name, t.url), example.title).toBe(example.output);
  }, 600_000);

  it("runs the TypeScript example as written (it is plain JavaScript at run time)", async () => {
    await using t = await startTestServer();
    const example = blocks("ts")[0]!
      .replace("http://127.0.0.1:8000", t.url)
      .replace("// later: ", "await new Promise((r) => setTimeout(r, 300));\n");
    // Inside the repository the package resolves itself by name ("coordination" → dist/client).
    const file = fileURLToPath(new URL(`../readme-example-${process.pid}.mjs`, import.meta.url));
    writeFileSync(file, example);
    try {
      const { stdout } = await run(process.execPath, [file], { timeout: PROCESS_BOUND_MS });
      expect(stdout).toMatch(/task\.(enqueued|claimed|completed)/);
    } finally {
      rmSync(file, { force: true });
    }
    const agents = await t.api.agents.list.query({});
    expect(agents.map((a) => a.agentId)).toEqual(["agent-1"]);
    expect((await t.api.tasks.stats.query()).totals.completed).toBe(1);
  });
});
