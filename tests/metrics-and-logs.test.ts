// /metrics moves with the work, and the log says, at info, what an operator acts on.
import { createServer as createHttpServer } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { join } from "node:path";
import { pino } from "pino";
import { WebSocket } from "ws";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient } from "../client/index.js";
import { loadConfig } from "../src/config.js";
import { createServer, type CoordinationServer } from "../src/server/create-server.js";
import { readBody } from "../src/server/http-io.js";
import { collectEvents } from "./helpers/event-collector.js";
import { ADMIN_SECRET, http } from "./helpers/secure-server.js";
import { makeTempDir } from "./helpers/test-server.js";
import { startReceiver } from "./helpers/webhook-receiver.js";

let server: CoordinationServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const until = (condition: () => boolean | Promise<boolean>) => vi.waitFor(async () => expect(await condition()).toBe(true), { timeout: 15_000, interval: 20 });

/** A server whose log lines are kept (at `level` and above); returns it and the lines. */
async function logged(overrides: Record<string, unknown> = {}, level = "info") {
  const lines: Array<Record<string, any>> = [];
  const log = pino({ level }, new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  server = createServer(loadConfig({ env: {}, overrides: { port: 0, dbPath: join(makeTempDir(), "c.db"), ...overrides } }), log);
  await server.start();
  const client = createCoordinationClient({ url: server.url, ...(overrides.adminToken ? { token: String(overrides.adminToken) } : {}) });
  return { url: server.url, api: client.api, client, lines };
}

/** POSTs body in two halves pauseMs apart over a raw socket; resolves to the response's status. */
async function pausedPost(url: string, path: string, token: string, body: string, pauseMs: number): Promise<number> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const answer = new Promise<number>((resolve, reject) => {
    let text = "";
    socket.on("data", (chunk) => {
      text += String(chunk);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (status) resolve(Number(status[1]));
    });
    socket.once("error", reject);
  });
  const half = Math.floor(body.length / 2);
  socket.write(`POST ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
  await new Promise((resolve) => setTimeout(resolve, pauseMs));
  socket.write(body.slice(half));
  const status = await answer;
  socket.destroy();
  return status;
}

/** The value of one sample of the exposition text; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = line.slice(name.length).split(" ")[0]!;
    if (wanted.every((pair) => labelText.includes(pair))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

describe("/metrics", () => {
  it("counts, gauges and histograms follow the work", async () => {
    const started = performance.now();
    const { url, api, client } = await logged();
    const scrape = async () => (await http(url, "GET", "/metrics")).body as string;
    const before = await scrape();
    expect(sample(before, "coordination_task_transitions_total", { queue: "m", transition: "enqueued" })).toBeUndefined();
    expect(sample(before, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);

    await api.tasks.enqueueMany.mutate({ tasks: [{ queue: "m" }, { queue: "m" }, { queue: "m" }] });
    const first = (await api.tasks.claim.mutate({ agentId: "a", queues: ["m"] }))!;
    const second = (await api.tasks.claim.mutate({ agentId: "a", queues: ["m"] }))!;
    await api.tasks.complete.mutate({ taskId: first.id, agentId: "a" });
    await api.tasks.fail.mutate({ taskId: second.id, agentId: "a", error: "no", retry: false });
    const parked = api.tasks.claim.mutate({ agentId: "p", queues: ["empty"], waitMs: 10_000 });
    const stream = collectEvents(api, { types: ["nothing.*"] });
    await stream.started;
    await until(async () => sample(await scrape(), "coordination_long_polls_parked", { kind: "claim" }) === 1);

    // Task counts in a scrape may be up to a second old (counting reads every task): wait for them.
    let text = "";
    /** When the scrape that gave `text` was sent. */
    let textSent = 0;
    await until(async () => {
      textSent = performance.now();
      return sample((text = await scrape()), "coordination_tasks", { queue: "m", state: "dead_letter" }) === 1;
    });
    const transitions = (transition: string) => sample(text, "coordination_task_transitions_total", { queue: "m", transition });
    expect(["enqueued", "claimed", "completed", "failed", "dead_lettered"].map(transitions)).toEqual([3, 2, 1, 1, 1]);
    const tasks = (state: string) => sample(text, "coordination_tasks", { queue: "m", state });
    expect(["pending", "claimed", "completed", "dead_letter"].map(tasks)).toEqual([1, 0, 1, 1]);
    expect(sample(text, "coordination_oldest_pending_age_seconds", { queue: "m" })).toBeGreaterThanOrEqual(0);
    expect(sample(text, "coordination_tasks_scheduled", { queue: "m" })).toBe(0);
    expect(sample(text, "coordination_task_wait_seconds_count", { queue: "m" })).toBe(2);
    expect(sample(text, "coordination_task_run_seconds_count", { queue: "m", outcome: "completed" })).toBe(1);
    expect(sample(text, "coordination_commit_batch_writes_count")).toBeGreaterThanOrEqual(5);
    expect(sample(text, "coordination_commit_seconds_count")).toBeGreaterThanOrEqual(5);
    expect(sample(text, "coordination_agents", { health: "healthy" })).toBe(2);
    expect(sample(text, "coordination_live_subscribers")).toBe(1);
    expect(sample(text, "coordination_live_subscriber_lag_events", { aggregate: "max" })).toBe(0);
    expect(sample(text, "coordination_event_log_seq", { position: "head" })).toBeGreaterThanOrEqual(10);

    // How long each thread was not idle, in seconds: every group commit ran while the writer was
    // busy, so its busy time covers their sum (1 ms for rounding), and no thread can have been
    // busy longer than it has existed (the threads started with the server, the event loop with
    // this process) or between two scrapes longer than the time between them.
    const busy = (scraped: string, thread: string) => sample(scraped, "coordination_thread_busy_seconds_total", { thread })!;
    const commitTime = (scraped: string) => sample(scraped, "coordination_commit_seconds_sum")!;
    const threads = ["event_loop", "writer", "reader"];
    expect(busy(text, "writer")).toBeGreaterThanOrEqual(commitTime(text) - 0.001);
    for (const thread of threads) expect(busy(text, thread)).toBeGreaterThan(0);
    for (const thread of ["writer", "reader"]) expect(busy(text, thread)).toBeLessThanOrEqual((performance.now() - started) / 1000);
    expect(busy(text, "event_loop")).toBeLessThanOrEqual(performance.now() / 1000);

    await api.tasks.enqueue.mutate({ queue: "empty" });
    await parked;
    const later = await scrape();
    // From before the first scrape was sent (its own handling after the count was read included).
    const elapsed = (performance.now() - textSent) / 1000;
    expect(commitTime(later)).toBeGreaterThan(commitTime(text));
    expect(busy(later, "writer")).toBeGreaterThanOrEqual(commitTime(later) - 0.001);
    for (const thread of threads) {
      expect(busy(later, thread)).toBeGreaterThanOrEqual(busy(text, thread));
      expect(busy(later, thread) - busy(text, thread)).toBeLessThanOrEqual(elapsed + 0.001);
    }
    stream.unsubscribe();
    await client.close();
  });

  it("counts HTTP responses by status, and says whether writes are failing", async () => {
    const { url } = await logged();
    const scrape = async () => (await http(url, "GET", "/metrics")).body as string;
    const before = await scrape();
    const count = (text: string, status: number) => sample(text, "coordination_http_responses_total", { status: String(status) }) ?? 0;
    for (let i = 0; i < 3; i++) expect((await http(url, "GET", "/tasks/no-such-task")).status).toBe(404);
    expect((await http(url, "POST", "/tasks", { body: { queue: 5 } })).status).toBe(400);
    expect((await http(url, "GET", "/health")).status).toBe(200);
    const after = await scrape();
    expect([count(after, 404) - count(before, 404), count(after, 400) - count(before, 400)]).toEqual([3, 1]);
    // The scrape before this one is counted once it closed: /health and it, at least.
    expect(count(after, 200) - count(before, 200)).toBeGreaterThanOrEqual(2);
    for (const code of ["DISK_FULL", "READ_ONLY", "IO_ERROR", "DATABASE_REPLACED"]) expect(sample(after, "coordination_database_writes_failing", { code })).toBe(0);
  });

  it("a request whose client left before any answer is counted and logged with no status, not as the 200 Node presumes", async () => {
    const { url, lines } = await logged({}, "debug");
    const scrape = async () => (await http(url, "GET", "/metrics")).body as string;
    const before = await scrape();
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    // Half of the body it announced, then gone, once the server took the request (its 100 Continue says so).
    const taken = new Promise<void>((resolve) => socket.once("data", () => resolve()));
    socket.write(`POST /tasks HTTP/1.1\r\nhost: ${hostname}:${port}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: 40\r\n\r\n{"queue":"half`);
    await taken;
    socket.destroy();
    await until(() => lines.some((line) => line.url === "/tasks" && line.finished === false));
    expect(lines.find((line) => line.url === "/tasks")).toMatchObject({ method: "POST", status: null, finished: false });
    const after = await scrape();
    expect(sample(after, "coordination_http_responses_total", { status: "none" })! - (sample(before, "coordination_http_responses_total", { status: "none" }) ?? 0)).toBe(1);
  });

  it("gives the first maxMetricsQueues queues a label each and counts the rest in one overflow series", async () => {
    const { url, api, client } = await logged({ maxMetricsQueues: 2 });
    const scrape = async () => (await http(url, "GET", "/metrics")).body as string;
    const queues = Array.from({ length: 500 }, (_, i) => `q${i}`);
    await api.tasks.enqueueMany.mutate({ tasks: queues.map((queue) => ({ queue })) });
    for (const queue of ["q0", "q7", "q8"]) {
      const task = (await api.tasks.claim.mutate({ agentId: "a", queues: [queue] }))!;
      await api.tasks.complete.mutate({ taskId: task.id, agentId: "a" });
    }
    let text = "";
    await until(async () => sample((text = await scrape()), "coordination_tasks", { queue_overflow: "true", state: "completed" }) === 2);

    // Every queue label in the exposition is one of the first two queues seen.
    const queueLabels = new Set([...text.matchAll(/[{,]queue="([^"]*)"/g)].map((match) => match[1]));
    expect([...queueLabels].sort()).toEqual(["q0", "q1"]);
    const overflow = { queue_overflow: "true" };
    const transitions = (labels: Record<string, string>, transition: string) => sample(text, "coordination_task_transitions_total", { ...labels, transition });
    expect([transitions({ queue: "q0" }, "enqueued"), transitions({ queue: "q1" }, "enqueued"), transitions(overflow, "enqueued")]).toEqual([1, 1, 498]);
    expect([transitions({ queue: "q0" }, "completed"), transitions(overflow, "completed")]).toEqual([1, 2]);
    expect(sample(text, "coordination_tasks", { ...overflow, state: "pending" })).toBe(496);
    expect(sample(text, "coordination_tasks", { queue: "q1", state: "pending" })).toBe(1);
    expect(sample(text, "coordination_task_wait_seconds_count", overflow)).toBe(2);
    expect(sample(text, "coordination_task_run_seconds_count", { ...overflow, outcome: "completed" })).toBe(2);
    expect(sample(text, "coordination_oldest_pending_age_seconds", overflow)).toBeGreaterThanOrEqual(0);
    // An overflow sample never also names a queue.
    expect(text.split("\n").filter((line) => line.includes("queue_overflow") && line.includes('queue="'))).toEqual([]);
    await client.close();
  });

  it("a client that leaves while sending its body is no server error: nothing logged above info, the server carries on", async () => {
    const { url, api, lines } = await logged();
    const { hostname, port } = new URL(url);
    for (const path of ["/tasks", "/trpc/tasks.enqueue", "/mcp"]) {
      // A body declared 1,000 bytes long, 10 of them sent, then the connection closed.
      const socket = connect(Number(port), hostname);
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      socket.write(`POST ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{"queue":"`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
    }
    await until(async () => (await api.health.query()).status === "ok");
    expect((await api.tasks.list.query({})).items).toEqual([]);
    expect(lines.filter((line) => line.level > 30).map((line) => line.msg)).toEqual([]);
    // Reading such a body ends ("gone"), rather than waiting forever for bytes that will not come.
    const reads: string[] = [];
    const bare = createHttpServer((req, res) => void readBody(req, 1_000_000).then((read) => (reads.push(read.kind), res.end())));
    await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", () => resolve()));
    const socket = connect((bare.address() as AddressInfo).port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write('POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{"queue":"');
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await until(() => reads.length === 1);
    expect(reads).toEqual(["gone"]);
    bare.close();
  });

  it("with credentials on, scraping needs a token unless publicMetrics", async () => {
    const { url, client } = await logged({ adminToken: ADMIN_SECRET });
    expect((await http(url, "GET", "/metrics")).status).toBe(401);
    expect((await http(url, "GET", "/metrics", { token: ADMIN_SECRET })).status).toBe(200);
    await client.close();
  });
});

describe("operator logs", () => {
  it("a WebSocket message past maxBodyBytes closes that socket with 1009 and logs a warning, not an internal error", async () => {
    const { url, client, lines } = await logged({ maxBodyBytes: 4096 });
    const socket = new WebSocket(`${url.replace(/^http/, "ws")}/trpc`);
    await new Promise<void>((resolve, reject) => socket.once("open", () => resolve()).once("error", reject));
    const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
    socket.send("x".repeat(10_000));
    expect(await closed).toBe(1009);
    await until(() => lines.some((line) => line.msg.startsWith("WebSocket closed")));
    expect(lines.filter((line) => line.level >= 40).map((line) => [line.level, line.msg, line.code])).toEqual([
      [40, "WebSocket closed: the client broke the protocol or sent a message past maxBodyBytes", "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"],
    ]);
    // The server goes on: the next call is answered.
    expect(await client.api.tasks.stats.query({})).toMatchObject({ queues: [] });
    await client.close();
  });

  it("retention that removed rows says so at info: how many of each class, and the limit that removed them", async () => {
    const { api, lines } = await logged({ settledTaskRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const task = await api.tasks.enqueue.mutate({ queue: "r" });
    await api.tasks.cancel.mutate({ taskId: task.id });
    expect(await server!.services.retention.prune(Date.now() + 120_000)).toBe(1);
    const line = lines.find((l) => l.msg.startsWith("retention removed"))!;
    expect([line.level, line.msg, line.removed]).toEqual([30, "retention removed 1 rows past their age or count limits", { settledTasks: { rows: 1, maxAgeMs: 60_000, maxCount: null } }]);
    // A run that removed nothing says nothing.
    const before = lines.length;
    expect(await server!.services.retention.prune()).toBe(0);
    expect(lines.slice(before).filter((l) => l.msg.startsWith("retention"))).toEqual([]);
  });

  it("the event log's pruning that removed events says so at info, with its limits", async () => {
    const { api, lines } = await logged({ eventRetentionCount: 3, eventRetentionMs: 0, eventPruneMs: 3_600_000 });
    for (let i = 0; i < 5; i++) await api.events.publish.mutate({ type: "log.item", source: "t" });
    // Five published, three kept.
    const removed = await server!.services.events.prune();
    expect(removed).toBeGreaterThan(0);
    const line = lines.find((l) => l.msg.startsWith("event log pruned"))!;
    expect([line.level, line.msg, line.removed, line.eventRetentionCount, line.eventRetentionMs]).toEqual([30, `event log pruned: ${removed} events past their age or count limits`, removed, 3, 0]);
    const before = lines.length;
    expect(await server!.services.events.prune()).toBe(0);
    expect(lines.slice(before).filter((l) => l.msg.startsWith("event log pruned"))).toEqual([]);
  });

  it("a revoked token's secret presented again is named in the failed-authentication line, with the address it came from", async () => {
    const { url, api, lines } = await logged({ adminToken: ADMIN_SECRET });
    const issued = await api.tokens.create.mutate({ role: "agent", agentId: "stolen" });
    await api.tokens.revoke.mutate({ tokenId: issued.token.id });
    // The line comes at once for a first failure, then once a second at most: tried until one says it.
    await until(async () => {
      await http(url, "GET", "/tasks", { token: issued.secret });
      return lines.some((line) => line.msg.startsWith("authentication failed") && Array.isArray(line.revokedTokenIds));
    });
    const line = lines.find((l) => l.msg.startsWith("authentication failed") && Array.isArray(l.revokedTokenIds))!;
    expect([line.revokedTokenIds, line.from]).toEqual([[issued.token.id], [expect.stringMatching(/127\.0\.0\.1$/)]]);
  });

  it("an agent quarantined, and its cordon lapsed: one info line each; an operator's cordon: its call's line", async () => {
    const { api, lines } = await logged({ quarantineAfterFailures: 2, quarantineMs: 1000, agentHealthCheckMs: 60_000 });
    await api.tasks.enqueueMany.mutate({ tasks: [{ maxAttempts: 1 }, { maxAttempts: 1 }] });
    for (let i = 0; i < 2; i++) {
      const run = (await api.tasks.claim.mutate({ agentId: "broken", context: false }))!;
      await api.tasks.fail.mutate({ taskId: run.id, agentId: "broken", leaseToken: run.leaseToken, error: "no API key" });
    }
    await until(() => lines.some((line) => line.msg.startsWith("agent quarantined")));
    const quarantined = lines.find((line) => line.msg.startsWith("agent quarantined"))!;
    expect([quarantined.level, quarantined.agentId, quarantined.failures, quarantined.automatic]).toEqual([30, "broken", 2, true]);
    // Lifted by the health monitor once its second passed (run here, not waited for).
    await until(async () => (await api.agents.get.query({ agentId: "broken" })).cordon === null);
    await server!.services.jobs.healthMonitor.runNow();
    const lapsed = lines.filter((line) => line.msg.startsWith("agent's cordon lapsed"));
    expect(lapsed.map((line) => [line.level, line.agentId, line.lapsed, line.automatic])).toEqual([[30, "broken", true, true]]);
    await api.agents.cordon.mutate({ agentId: "broken", reason: "look at it" });
    await api.agents.uncordon.mutate({ agentId: "broken" });
    expect(lines.filter((line) => /^agent (cordoned|uncordoned)$/.test(line.msg)).map((line) => [line.msg, line.agentId])).toEqual([
      ["agent cordoned", "broken"],
      ["agent uncordoned", "broken"],
    ]);
    expect(lines.filter((line) => line.msg.startsWith("agent quarantined") || line.msg.startsWith("agent's cordon lapsed"))).toHaveLength(2);
  });

  it("a named lock whose lease ran out: one info line, or one for a flood of them; an operator's force-release: its call's line; a lock acquire parked: its gauge", async () => {
    const { api, lines, url } = await logged({ leaseSweepMs: 60_000 });
    await server!.services.jobs.lockExpiry.stop();
    await api.locks.acquire.mutate({ name: "one", agentId: "gone", leaseMs: 1 });
    await until(async () => !(await api.locks.get.query({ name: "one" })).held);
    await server!.services.locks.expire();
    const expired = lines.filter((line) => line.msg.startsWith("lock expired"));
    expect(expired.map((line) => [line.level, line.lock, line.agentId, line.fencingToken])).toEqual([[30, "one", "gone", 1]]);
    // The lock's name is not written as `name`, the logger's own field (a JSON line would hold the key twice).
    expect(expired[0]!.name).toBeUndefined();
    for (let i = 0; i < 12; i++) await api.locks.acquire.mutate({ name: `many-${String(i).padStart(2, "0")}`, agentId: "gone", leaseMs: 1 });
    await until(async () => (await api.locks.list.query({})).items.length === 0);
    await server!.services.locks.expire();
    const flood = lines.filter((line) => line.msg.startsWith("locks expired"));
    expect(flood.map((line) => [line.msg, line.count, line.names.length])).toEqual([["locks expired: 12 leases not renewed; the locks are free", 12, 10]]);
    expect(lines.filter((line) => line.msg.startsWith("lock expired"))).toHaveLength(1);

    await api.locks.acquire.mutate({ name: "held", agentId: "a" });
    const parked = api.locks.acquire.mutate({ name: "held", agentId: "b", waitMs: 20_000 });
    await until(async () => sample(await (await fetch(`${url}/metrics`)).text(), "coordination_long_polls_parked", { kind: "lock" }) === 1);
    expect(sample(await (await fetch(`${url}/metrics`)).text(), "coordination_locks_held")).toBe(1);
    await api.locks.forceRelease.mutate({ name: "held", reason: "stuck" });
    expect((await parked).acquired).toBe(true);
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(["acquired", "released", "force_released", "expired"].map((transition) => sample(text, "coordination_lock_transitions_total", { transition }))).toEqual([15, undefined, 1, 13]);
    expect(lines.filter((line) => line.msg === "lock released by an operator").map((line) => [line.lock, line.agentId, line.reason])).toEqual([["held", "a", "stuck"]]);
  });

  it("a webhook: a line when its deliveries start failing, one when they work again, one when it is disabled, the operator's; its states and attempts: their metrics; never its URL's path or secret", async () => {
    const { api, lines, url } = await logged({ webhookMaxBackoffMs: 20, webhookDisableAfterMs: 600_000 }, "debug");
    const receiver = await startReceiver();
    try {
      let refusals = 3;
      receiver.answer = (response) => void response.writeHead(refusals-- > 0 ? 500 : 200).end();
      const secretPath = `${receiver.url}?token=receiver-secret`;
      const { webhook, secret } = await api.webhooks.create.mutate({ url: secretPath, types: ["ping"] });
      await api.events.publish.mutate({ type: "ping", source: "x" });
      await until(async () => (await api.webhooks.get.query({ id: webhook.id })).delivered === 1);
      const host = new URL(receiver.url).host;
      const mine = lines.filter((line) => line.webhookId === webhook.id);
      expect(mine.map((line) => [line.level, line.msg])).toEqual([
        [30, "webhook created"],
        [40, "webhook delivery failing; tried again with backoff, logged again when it works"],
        [20, "webhook delivery failed again"],
        [20, "webhook delivery failed again"],
        [30, "webhook delivering again"],
      ]);
      expect(mine[1]).toMatchObject({ host, status: 500, error: "HTTP 500", failures: 1, retryAt: expect.any(String) });
      expect(mine[4]).toMatchObject({ host, failedAttempts: 3 });
      const text = await (await fetch(`${url}/metrics`)).text();
      expect([sample(text, "coordination_webhook_deliveries_total", { outcome: "delivered" }), sample(text, "coordination_webhook_deliveries_total", { outcome: "failed" })]).toEqual([1, 3]);
      expect(["delivering", "failing", "disabled"].map((state) => sample(text, "coordination_webhooks", { state }))).toEqual([1, 0, 0]);
      await api.webhooks.update.mutate({ id: webhook.id, enabled: false, reason: "moving" });
      expect(sample(await (await fetch(`${url}/metrics`)).text(), "coordination_webhooks", { state: "disabled" })).toBe(1);
      expect(lines.find((line) => line.msg === "webhook changed by an operator")).toMatchObject({ webhookId: webhook.id, host, enabled: false, changed: ["enabled", "reason"] });
      await api.webhooks.remove.mutate({ id: webhook.id });
      expect(lines.find((line) => line.msg === "webhook removed")).toMatchObject({ webhookId: webhook.id });
      const all = JSON.stringify(lines);
      expect(all).not.toContain("receiver-secret");
      expect(all).not.toContain("/hooks/coordination");
      expect(all).not.toContain(secret.slice("whsec_".length));
    } finally {
      await receiver.close();
    }
  });

  it("a webhook failing for webhookDisableAfterMs: an error line, and the disabled gauge", async () => {
    const { api, lines, url } = await logged({ webhookMaxBackoffMs: 20, webhookDisableAfterMs: 200 });
    const receiver = await startReceiver();
    try {
      receiver.answer = 503;
      const { webhook } = await api.webhooks.create.mutate({ url: receiver.url, types: ["ping"] });
      await api.events.publish.mutate({ type: "ping", source: "x" });
      await until(async () => !(await api.webhooks.get.query({ id: webhook.id })).enabled);
      expect(lines.filter((line) => line.level === 50 && line.webhookId === webhook.id).map((line) => [line.msg, line.error])).toEqual([
        ["webhook disabled: its deliveries failed for webhookDisableAfterMs; webhooks.update with enabled true starts it again", "HTTP 503: refused with 503"],
      ]);
      expect(sample(await (await fetch(`${url}/metrics`)).text(), "coordination_webhooks", { state: "disabled" })).toBe(1);
    } finally {
      await receiver.close();
    }
  });

  it("a semaphore permit whose lease ran out: one info line, or one for a flood of them; an operator's force-release: its call's line; permits held, transitions and parked acquires: their metrics", async () => {
    const { api, lines, url } = await logged({ leaseSweepMs: 60_000 });
    await server!.services.jobs.semaphoreExpiry.stop();
    await api.semaphores.acquire.mutate({ name: "one", agentId: "gone", limit: 3, leaseMs: 1 });
    await until(async () => (await api.semaphores.get.query({ name: "one" })).held === 0);
    await server!.services.semaphores.expire();
    const expired = lines.filter((line) => line.msg.startsWith("semaphore permit expired"));
    expect(expired.map((line) => [line.level, line.semaphore, line.agentId, line.fencingToken, line.name])).toEqual([[30, "one", "gone", 1, undefined]]);
    for (let i = 0; i < 12; i++) await api.semaphores.acquire.mutate({ name: `many-${String(i).padStart(2, "0")}`, agentId: "gone", limit: 20, leaseMs: 1 });
    await until(async () => (await api.semaphores.list.query({})).items.length === 0);
    await server!.services.semaphores.expire();
    const flood = lines.filter((line) => line.msg.startsWith("semaphore permits expired"));
    expect(flood.map((line) => [line.msg, line.count, line.names.length])).toEqual([["semaphore permits expired: 12 leases not renewed; the permits are free", 12, 10]]);
    expect(lines.filter((line) => line.msg.startsWith("semaphore permit expired"))).toHaveLength(1);

    await api.semaphores.acquire.mutate({ name: "held", agentId: "a", limit: 1 });
    const parked = api.semaphores.acquire.mutate({ name: "held", agentId: "b", limit: 1, waitMs: 20_000 });
    await until(async () => sample(await (await fetch(`${url}/metrics`)).text(), "coordination_long_polls_parked", { kind: "semaphore" }) === 1);
    expect(sample(await (await fetch(`${url}/metrics`)).text(), "coordination_semaphore_permits_held")).toBe(1);
    await api.semaphores.forceRelease.mutate({ name: "held", reason: "stuck" });
    expect((await parked).acquired).toBe(true);
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(["acquired", "released", "force_released", "expired"].map((transition) => sample(text, "coordination_semaphore_transitions_total", { transition }))).toEqual([15, undefined, 1, 13]);
    expect(sample(text, "coordination_semaphore_permits_held")).toBe(1);
    expect(lines.filter((line) => line.msg === "semaphore permits released by an operator").map((line) => [line.semaphore, line.released, line.reason])).toEqual([["held", 1, "stuck"]]);
  });

  it("a lease expiry, a dead letter, an agent going stale and offline, a failed authentication, a slow request: one info line each", async () => {
    const { url, api, client, lines } = await logged({ adminToken: ADMIN_SECRET, leaseSweepMs: 20, agentStaleMs: 100, agentOfflineMs: 2500, agentStartupGraceMs: 0, agentHealthCheckMs: 20, slowRequestMs: 50 });
    await api.tasks.enqueue.mutate({ queue: "l", maxAttempts: 1, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
    await api.tasks.claim.mutate({ agentId: "sleepy", queues: ["l"], leaseMs: 1 });
    await until(() => lines.some((line) => line.msg.startsWith("task dead-lettered")));
    // A dead letter's line names its task's trace: an operator goes from the log to what the run did.
    expect(lines.find((line) => line.msg.startsWith("task dead-lettered"))!.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    // One with attempts left goes back to its queue; the last attempt's expiry says it does not.
    await api.tasks.enqueue.mutate({ queue: "l2", maxAttempts: 2 });
    await api.tasks.claim.mutate({ agentId: "sleepy", queues: ["l2"], leaseMs: 1 });
    await until(() => lines.some((line) => line.msg === "lease expired: the task goes back to its queue"));
    const messages = () => lines.filter((line) => line.level === 30).map((line) => line.msg as string);
    await until(() => messages().some((msg) => msg.startsWith("agent offline")));
    expect(messages()).toEqual(
      expect.arrayContaining([
        "lease expired: the task goes back to its queue",
        "lease expired on the task's last attempt: it is dead-lettered",
        "task dead-lettered: it will not run again unless requeued",
        "agent stale: no heartbeat for agentStaleMs",
        "agent offline: its tasks were released",
      ]),
    );
    const expiry = lines.find((line) => line.msg.startsWith("lease expired"))!;
    expect([expiry.msg, expiry.queue, expiry.agentId]).toEqual(["lease expired on the task's last attempt: it is dead-lettered", "l", "sleepy"]);
    // A run that reached its task's maxRunMs says so, whether it goes back or is dead-lettered; so do the metrics.
    await api.tasks.enqueue.mutate({ queue: "t1", maxRunMs: 1, maxAttempts: 2 });
    await api.tasks.enqueue.mutate({ queue: "t2", maxRunMs: 1, maxAttempts: 1 });
    for (const queue of ["t1", "t2"]) await api.tasks.claim.mutate({ agentId: "looping", queues: [queue], leaseMs: 60_000 });
    await until(() => lines.filter((line) => line.msg.startsWith("run timed out")).length === 2);
    expect(lines.filter((line) => line.msg.startsWith("run timed out")).map((line) => [line.msg, line.queue, line.timedOut, line.maxRunMs])).toEqual([
      ["run timed out (its task's maxRunMs): the task goes back to its queue", "t1", true, 1],
      ["run timed out (its task's maxRunMs) on the task's last attempt: it is dead-lettered", "t2", true, 1],
    ]);
    // Many of one reason in one commit (one agent's runs of one limit, claimed together) are one line.
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 12 }, () => ({ queue: "t3", maxRunMs: 1 })) });
    expect(await api.tasks.claimMany.mutate({ agentId: "looping", queues: ["t3"], limit: 12, leaseMs: 60_000 })).toHaveLength(12);
    await until(() => lines.some((line) => line.msg.startsWith("runs timed out")));
    expect(lines.filter((line) => line.msg.startsWith("runs timed out")).map((line) => [line.msg, line.count, line.reason])).toEqual([
      ["runs timed out (their tasks' maxRunMs): 12 tasks go back to their queues", 12, "its run reached its time limit (maxRunMs 1 ms; held by looping)"],
    ]);
    const metrics = (await http(url, "GET", "/metrics", { token: ADMIN_SECRET })).body as string;
    expect(metrics).toMatch(/^coordination_task_transitions_total\{queue="t1",transition="timed_out"\} 1$/m);
    expect(metrics).not.toMatch(/queue="t1",transition="lease_expired"/);
    await http(url, "GET", "/tasks", { token: "wrong" });
    const failed = lines.filter((line) => line.msg.startsWith("authentication failed"));
    expect(failed).toHaveLength(1);
    // From where: after a compromise, an operator asks whether (and from where) a secret is still tried.
    expect([failed[0]!.failures, failed[0]!.from]).toEqual([1, [expect.stringMatching(/127\.0\.0\.1$/)]]);
    expect(failed[0]!.revokedTokenIds).toBeUndefined();
    // A WebSocket refused for its token is a refusal, not an internal error (it logged one, with a stack).
    const refused = createCoordinationClient({ url, token: "wrong" });
    const stream = collectEvents(refused.api, {});
    await until(() => stream.errors.length === 1);
    await refused.close();
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    // A request is slow by construction, whatever the machine's speed: its client pauses 300 ms
    // in the middle of its body, 250 ms more than the threshold the server's clock must see
    // (it starts once the headers are read). A fast 401 was under 1 ms on a fast machine.
    const status = await pausedPost(url, "/tasks", ADMIN_SECRET, JSON.stringify({ queue: "slow" }), 300);
    expect(status).toBe(200);
    await until(() => lines.some((line) => line.msg === "slow request" && line.url === "/tasks" && line.method === "POST"));
    // A long-poll that parked waits by design: not a slow request, however long it took.
    await http(url, "POST", "/tasks/claim", { token: ADMIN_SECRET, body: { agentId: "poller", queues: ["none"], waitMs: 300 } });
    await http(url, "GET", "/health");
    expect(lines.filter((line) => line.msg === "slow request" && line.url === "/tasks/claim")).toEqual([]);
    await client.close();
  });
});
