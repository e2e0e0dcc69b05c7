// The dashboard in a real browser (Debian's Chromium, driven by playwright-core) against a real
// server: it loads, shows a task enqueued through the API within a second, requeues a dead
// letter, follows the live tail, survives a server restart, and asks for a token when
// credentials are on. Skipped, saying so, where no Chromium is installed (.ci/run installs it).
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCoordinationClient } from "../client/index.js";
import { loadConfig } from "../src/config.js";
import { createServer } from "../src/server/create-server.js";
import { CLI_PATH } from "./helpers/cli-process.js";
import { ADMIN_SECRET, startSecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const run = promisify(execFile);

const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) => path && existsSync(path));
if (!CHROMIUM) console.warn("dashboard browser tests skipped: no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)");

let browser: Browser;
beforeAll(async () => {
  if (CHROMIUM) browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
});

/** A cell's text once it equals `expected` (Playwright's polling, bounded generously). */
const cellText = (page: Page, selector: string) => page.locator(selector).first();

/**
 * A page script: the page's first WebSocket tells its close to its listeners only once the test
 * calls `window.releaseFirstClose()` (`window.firstCloseTold` then says it was told). A string
 * to evaluate: the tests compile without the DOM's types.
 */
const HOLD_FIRST_CLOSE = `{
  const Native = window.WebSocket;
  let opened = 0;
  let release;
  const held = new Promise((resolve) => (release = resolve));
  window.releaseFirstClose = () => release();
  window.firstCloseTold = false;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.first = opened++ === 0;
    }
    addEventListener(type, listener, options) {
      if (type !== "close") return super.addEventListener(type, listener, options);
      super.addEventListener("close", (event) => {
        const tell = () => {
          listener.call(this, event);
          window.firstCloseTold = this.first;
        };
        this.first ? held.then(tell) : tell();
      }, options);
    }
  };
}`;

/** Lets the held close go (HOLD_FIRST_CLOSE); resolves once a task queued after its listeners ran: the page has drawn what they changed. */
async function releaseFirstClose(page: Page): Promise<void> {
  await page.evaluate("window.releaseFirstClose()");
  await expect.poll(() => page.evaluate<boolean>("new Promise((told) => setTimeout(() => told(window.firstCloseTold)))"), { timeout: 10_000 }).toBe(true);
}

describe.skipIf(!CHROMIUM)("the dashboard in Chromium", () => {
  it("shows tasks as they are enqueued, requeues a dead letter, follows the live tail, and survives a server restart", async () => {
    let t: TestServer = await startTestServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    // Nothing the page asks for is missing (a browser asks for /favicon.ico unless the page names an icon).
    const missing: string[] = [];
    page.on("response", (response) => void (response.status() === 404 && missing.push(response.url())));
    try {
      await page.goto(t.url);
      await expect.poll(() => page.locator('[data-testid="connection"]').textContent(), { timeout: 10_000 }).toBe("live");

      // A task enqueued through the API shows without a reload (the queues poll every second).
      await t.api.tasks.enqueue.mutate({ queue: "visible", payload: { n: 1 } });
      await expect.poll(() => cellText(page, '[data-queue="visible"] [data-state="pending"]').textContent(), { timeout: 30_000, interval: 50 }).toBe("1");
      // A delayed one is pending, and scheduled.
      await t.api.tasks.enqueue.mutate({ queue: "later", payload: {}, delayMs: 3_600_000 });
      await expect.poll(() => cellText(page, '[data-queue="later"] [data-state="scheduled"]').textContent(), { timeout: 30_000, interval: 50 }).toBe("1");
      expect(await cellText(page, '[data-queue="later"] [data-state="pending"]').textContent()).toBe("1");

      // The queue paused from the page: marked, its tasks no longer handed out; then resumed.
      const visible = page.locator('[data-queue="visible"]');
      await visible.getByRole("button", { name: "Pause" }).click();
      await expect.poll(() => visible.getAttribute("data-paused"), { timeout: 10_000 }).toBe("true");
      await visible.getByText("paused", { exact: true }).waitFor({ timeout: 10_000 });
      expect(await t.api.queues.status.query({ queue: "visible" })).toMatchObject({ paused: true, reason: "paused from the dashboard" });
      expect(await t.api.tasks.claim.mutate({ agentId: "agent-y", queues: ["visible"] })).toBeNull();
      await visible.getByRole("button", { name: "Resume" }).click();
      await expect.poll(() => visible.getAttribute("data-paused"), { timeout: 10_000 }).toBe("false");
      expect((await t.api.queues.status.query({ queue: "visible" })).paused).toBe(false);

      // An agent cordoned from the page: marked, handed nothing; then uncordoned.
      const agentRow = page.locator('[data-agent="agent-y"]');
      await agentRow.getByRole("button", { name: "Cordon" }).click();
      await expect.poll(() => agentRow.getAttribute("data-cordoned"), { timeout: 10_000 }).toBe("true");
      await agentRow.getByText("cordoned", { exact: true }).waitFor({ timeout: 10_000 });
      expect((await t.api.agents.get.query({ agentId: "agent-y" })).cordon).toMatchObject({ reason: "cordoned from the dashboard", automatic: false });
      expect(await t.api.tasks.claim.mutate({ agentId: "agent-y", queues: ["visible"] })).toBeNull();
      await agentRow.getByRole("button", { name: "Uncordon" }).click();
      await expect.poll(() => agentRow.getAttribute("data-cordoned"), { timeout: 10_000 }).toBe("false");
      expect((await t.api.agents.get.query({ agentId: "agent-y" })).cordon).toBeNull();

      // A named lock held by a stuck agent shows with its holder and fencing token; freed from the page.
      await page.locator('[data-testid="locks-none"]').waitFor({ timeout: 10_000 });
      const held = await t.api.locks.acquire.mutate({ name: "repo/src/a.ts", agentId: "stuck-agent", leaseMs: 600_000 });
      const lockRow = page.locator('[data-lock="repo/src/a.ts"]');
      await expect.poll(() => lockRow.getAttribute("data-holder"), { timeout: 10_000 }).toBe("stuck-agent");
      expect(await lockRow.locator("td.num").textContent()).toBe(String(held.lock.fencingToken));
      await lockRow.getByRole("button", { name: "Force release" }).click();
      await page.locator('[data-testid="locks-none"]').waitFor({ timeout: 10_000 });
      await page.getByText("released repo/src/a.ts (held by stuck-agent)").waitFor({ timeout: 10_000 });
      expect(await t.api.locks.get.query({ name: "repo/src/a.ts" })).toMatchObject({ held: false });
      const [forced] = await t.api.events.list.query({ types: ["lock.released"], limit: 10 });
      expect(forced?.payload).toMatchObject({ agentId: "stuck-agent", forced: true, reason: "released from the dashboard" });

      // A semaphore's permits show with their holders, tokens and limit; one freed from the page.
      await page.locator('[data-testid="permits-none"]').waitFor({ timeout: 10_000 });
      const stuck = await t.api.semaphores.acquire.mutate({ name: "gpu", agentId: "stuck-agent", limit: 2, leaseMs: 600_000 });
      await t.api.semaphores.acquire.mutate({ name: "gpu", agentId: "trainer", limit: 2, leaseMs: 600_000 });
      const permitRow = page.locator(`[data-semaphore="gpu"][data-token="${stuck.permit!.fencingToken}"]`);
      await expect.poll(() => permitRow.getAttribute("data-holder"), { timeout: 10_000 }).toBe("stuck-agent");
      expect(await permitRow.locator("td.num").allTextContents()).toEqual([String(stuck.permit!.fencingToken), "2"]);
      await permitRow.getByRole("button", { name: "Force release" }).click();
      await page.getByText("released stuck-agent's permit of gpu").waitFor({ timeout: 10_000 });
      await expect.poll(() => permitRow.count(), { timeout: 10_000 }).toBe(0);
      expect((await t.api.semaphores.get.query({ name: "gpu" })).permits.map((permit) => permit.holder)).toEqual(["trainer"]);
      const [permitForced] = await t.api.events.list.query({ types: ["semaphore.released"], limit: 10 });
      expect(permitForced?.payload).toMatchObject({ agentId: "stuck-agent", forced: true, reason: "released from the dashboard" });

      // A webhook whose receiver is down shows as failing, with its error; disabled and enabled from the page.
      await page.locator('[data-testid="webhooks-none"]').waitFor({ timeout: 10_000 });
      const { webhook } = await t.api.webhooks.create.mutate({ url: "http://127.0.0.1:2/hooks", types: ["dash.ping"], description: "nobody listens" });
      await t.api.events.publish.mutate({ type: "dash.ping", source: "test" });
      const hookRow = page.locator(`[data-webhook="${webhook.id}"]`);
      await expect.poll(() => hookRow.getAttribute("data-failing"), { timeout: 15_000 }).toBe("true");
      // Port 2: privileged (no test binds it) and not one fetch blocks, so the connection is refused.
      expect(await hookRow.locator("td").nth(5).textContent()).toMatch(/^no answer: connect ECONNREFUSED /);
      await hookRow.getByRole("button", { name: "Disable" }).click();
      await expect.poll(() => hookRow.getAttribute("data-enabled"), { timeout: 10_000 }).toBe("false");
      await page.getByText("disabled the webhook to 127.0.0.1:2").waitFor({ timeout: 10_000 });
      expect(await t.api.webhooks.get.query({ id: webhook.id })).toMatchObject({ enabled: false, disabledReason: "disabled from the dashboard" });
      await hookRow.getByRole("button", { name: "Enable" }).click();
      await expect.poll(() => hookRow.getAttribute("data-enabled"), { timeout: 10_000 }).toBe("true");
      await t.api.webhooks.remove.mutate({ id: webhook.id });

      // Shared state's keys show with their versions, values, writers and the agent whose life one is
      // tied to; one deleted from the page, at the version shown.
      await page.locator('[data-testid="keys-none"]').waitFor({ timeout: 10_000 });
      const leader = await t.api.kv.set.mutate({ key: "runs/42/leader", value: { agent: "stuck-agent" }, agentId: "stuck-agent", ttlMs: 600_000, ephemeral: true });
      await t.api.kv.set.mutate({ key: "runs/42/plan", value: { step: "x".repeat(200) } });
      const keyRow = page.locator('[data-key="runs/42/leader"]');
      await expect.poll(() => keyRow.getAttribute("data-version"), { timeout: 10_000 }).toBe(String(leader.version));
      expect(await keyRow.locator("td").allTextContents()).toEqual(["runs/42/leader", String(leader.version), '{"agent":"stuck-agent"}', "stuck-agent", expect.any(String), expect.any(String), "stuck-agent", "Delete"]);
      await page.locator('[data-key="runs/42/plan"]').waitFor({ timeout: 10_000 });
      expect((await page.locator('[data-key="runs/42/plan"] code').textContent())!.length).toBe(120);
      expect(await page.locator('[data-key="runs/42/plan"] td').nth(6).textContent()).toBe("-");
      await keyRow.getByRole("button", { name: "Delete" }).click();
      await page.getByText("deleted runs/42/leader").waitFor({ timeout: 10_000 });
      await expect.poll(() => keyRow.count(), { timeout: 10_000 }).toBe(0);
      expect((await t.api.kv.list.query({ prefix: "runs/42/" })).items.map((entry) => entry.key)).toEqual(["runs/42/plan"]);
      // A key of 500 characters and a value of 3,000 without a space wrap in their cells: the page keeps its width.
      const width = await page.evaluate<number>("document.documentElement.scrollWidth");
      await t.api.kv.set.mutate({ key: "k".repeat(500), value: "x".repeat(3_000) });
      await page.locator(`[data-key="${"k".repeat(500)}"]`).waitFor({ timeout: 10_000 });
      expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(width);

      // A dead letter, requeued from the page.
      const dead = await t.api.tasks.enqueue.mutate({ queue: "doomed", maxAttempts: 1 });
      await t.api.tasks.claim.mutate({ agentId: "agent-x", queues: ["doomed"] });
      await t.api.tasks.fail.mutate({ taskId: dead.id, agentId: "agent-x", error: "it broke" });
      const row = page.locator(`[data-testid="dead-letters"] [data-task="${dead.id}"]`);
      await row.getByText("it broke").waitFor({ timeout: 10_000 });
      await row.getByRole("button", { name: "Requeue" }).click();
      await expect.poll(async () => (await t.api.tasks.get.query({ taskId: dead.id })).status, { timeout: 10_000 }).toBe("pending");
      await row.waitFor({ state: "detached", timeout: 10_000 });

      // The live tail shows a published event.
      await t.api.events.publish.mutate({ type: "demo.hello", source: "test", payload: { hi: 1 } });
      await page.locator('[data-testid="tail"]').getByText("demo.hello").waitFor({ timeout: 10_000 });

      // The task's page: its payload, events and status.
      await page.goto(`${t.url}/#/task/${dead.id}`);
      await page.locator('[data-field="status"]').getByText("pending").waitFor({ timeout: 10_000 });
      await page.getByText("task.dead_lettered").waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-field="progress"]').textContent()).toBe("-");
      expect(await page.locator('[data-field="checkpoint"]').textContent()).toBe("-");
      expect(await page.locator('[data-field="trace"]').textContent()).toBe("none");
      expect(await page.locator('[data-field="enqueuedBy"]').textContent()).toBe("-");
      expect(await page.locator('[data-field="baggage"]').textContent()).toBe("-");
      expect(await page.locator('[data-field="backoff"]').textContent()).toBe("the server's");
      expect(await page.locator('[data-field="expiresAt"]').count()).toBe(0);
      expect(await page.locator('[data-field="maxRunMs"]').count()).toBe(0);
      // A dead letter whose runs saved a checkpoint they keep failing on: requeued from the beginning from its page.
      const poisoned = await t.api.tasks.enqueue.mutate({ queue: "poisoned", maxAttempts: 1 });
      const poisonedLease = (await t.api.tasks.claim.mutate({ agentId: "agent-x", queues: ["poisoned"] }))!;
      await t.api.tasks.heartbeat.mutate({ taskId: poisoned.id, agentId: "agent-x", leaseToken: poisonedLease.leaseToken, checkpoint: { page: 7 } });
      await t.api.tasks.fail.mutate({ taskId: poisoned.id, agentId: "agent-x", error: "page 7 crashes the parser" });
      await page.goto(`${t.url}/#/task/${poisoned.id}`);
      await page.locator('[data-field="checkpoint"]').getByText(/^\{"page":7\} \(saved /).waitFor({ timeout: 10_000 });
      await page.getByRole("button", { name: "Requeue from the beginning" }).click();
      await expect.poll(async () => (await t.api.tasks.get.query({ taskId: poisoned.id })).checkpoint, { timeout: 10_000 }).toBeNull();
      expect((await t.api.tasks.get.query({ taskId: poisoned.id })).status).toBe("pending");
      await page.locator('[data-field="checkpoint"]').getByText("-", { exact: true }).waitFor({ timeout: 10_000 });
      expect(await page.getByRole("button", { name: "Clear checkpoint" }).count()).toBe(0);
      expect(await page.locator('[data-field="dedupe"]').count()).toBe(0);
      expect(await page.locator('[data-field="orderingKey"]').count()).toBe(0);
      // A task that answered a later enqueue of its dedupe key says so, and when one replaced its payload.
      const debounced = await t.api.tasks.enqueue.mutate({ queue: "docs", payload: { v: 1 }, dedupe: { key: "doc-7", replace: true } });
      const replacing = await t.api.tasks.enqueue.mutate({ queue: "docs", payload: { v: 2 }, dedupe: { key: "doc-7", replace: true } });
      await page.goto(`${t.url}/#/task/${debounced.id}`);
      await page.locator('[data-field="status"]').getByText("pending").waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-field="dedupe"]').textContent()).toBe(
        `key "doc-7", 1 later enqueue answered with this task, its payload last replaced at ${await page.evaluate((ms) => new Date(ms).toLocaleString(), replacing.replacedAt!.getTime())}`,
      );
      // A task behind another of its ordering key says it waits for its turn.
      await t.api.tasks.enqueue.mutate({ queue: "ledger", orderingKey: "account:1" });
      const behind = await t.api.tasks.enqueue.mutate({ queue: "ledger", orderingKey: "account:1" });
      await page.goto(`${t.url}/#/task/${behind.id}`);
      await page.locator('[data-field="status"]').getByText("waiting").waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-field="orderingKey"]').textContent()).toBe('key "account:1": waits for its turn, after the tasks of its key enqueued before it');
      // One of a key's share (keyConcurrency) says how many of its key run at once.
      const shared = [];
      for (let i = 0; i < 3; i++) shared.push(await t.api.tasks.enqueue.mutate({ queue: "summaries", orderingKey: "tenant:acme", keyConcurrency: 2 }));
      await page.goto(`${t.url}/#/task/${shared[2]!.id}`);
      // The page before showed a waiting task too: wait for this one's key, not its status.
      await page.locator('[data-field="orderingKey"]').getByText('key "tenant:acme"').waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-field="orderingKey"]').textContent()).toBe('key "tenant:acme", 2 at a time: waits for its turn, until fewer than 2 tasks of its key are pending or claimed and those enqueued before it have started');
      // A key of 500 characters without a space wraps in its cell: the page keeps its width.
      const pageWidth = await page.evaluate<number>("document.documentElement.scrollWidth");
      const longKey = await t.api.tasks.enqueue.mutate({ queue: "ledger", orderingKey: "k".repeat(500), dedupe: { key: "d".repeat(500) } });
      await page.goto(`${t.url}/#/task/${longKey.id}`);
      await page.locator('[data-field="orderingKey"]').waitFor({ timeout: 10_000 });
      expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(pageWidth);
      // A running task's page follows the progress its holder reports (the page polls).
      const running = await t.api.tasks.enqueue.mutate({ queue: "long", backoff: { type: "fixed", delayMs: 90_000, jitter: 0.25 }, ttlMs: 3_600_000, maxRunMs: 600_000, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", baggage: "tenant=acme,user=42" });
      const lease = (await t.api.tasks.claim.mutate({ agentId: "agent-x", queues: ["long"] }))!;
      await page.goto(`${t.url}/#/task/${running.id}`);
      await page.locator('[data-field="status"]').getByText("claimed").waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-field="backoff"]').textContent()).toBe("fixed 90s, jitter 25%");
      expect(await page.locator('[data-field="expiresAt"]').textContent()).toBe(`no run starts after ${await page.evaluate((ms) => new Date(ms).toLocaleString(), running.expiresAt!.getTime())}`);
      // The trace a tracing UI finds it by.
      expect(await page.locator('[data-field="trace"]').textContent()).toBe("trace 0af7651916cd43dd8448eb211c80319c (parent span b7ad6b7169203331, sampled)");
      expect(await page.locator('[data-field="baggage"]').textContent()).toBe("tenant=acme,user=42");
      expect(await page.locator('[data-field="maxRunMs"]').textContent()).toBe(`10m (this run until ${await page.evaluate((ms) => new Date(ms).toLocaleString(), lease.runDeadlineAt!.getTime())})`);
      await t.api.tasks.heartbeat.mutate({ taskId: running.id, agentId: "agent-x", leaseToken: lease.leaseToken, progress: { step: "drafting", done: 2, of: 5 }, checkpoint: ["intro", "pricing"] });
      await page.locator('[data-field="progress"]').getByText(/^\{"step":"drafting","done":2,"of":5\} \(\d+ (s|min|h|days) ago, at .+\)$/).waitFor({ timeout: 10_000 });
      await page.locator('[data-field="checkpoint"]').getByText(/^\["intro","pricing"\] \(saved \d+ (s|min|h|days) ago, at .+\)$/).waitFor({ timeout: 10_000 });
      await page.goto(t.url);

      // Restart the server on the same port and file: the page reconnects by itself.
      const port = t.server.port;
      await t.stop();
      await expect.poll(() => page.locator('[data-testid="connection"]').textContent(), { timeout: 10_000 }).toBe("reconnecting…");
      const restarted = createServer(loadConfig({ env: {}, overrides: { port, dbPath: t.dbPath, logLevel: "silent" } }));
      await restarted.start();
      t = { ...t, stop: () => restarted.stop() } as TestServer;
      await expect.poll(() => page.locator('[data-testid="connection"]').textContent(), { timeout: 15_000 }).toBe("live");
      await restarted.services.tasks.enqueue({ queue: "after-restart", payload: {}, priority: 5, maxAttempts: 3 } as never);
      await expect.poll(() => cellText(page, '[data-queue="after-restart"] [data-state="pending"]').textContent(), { timeout: 10_000 }).toBe("1");
      await restarted.services.events.publish({ type: "demo.again", source: "test", payload: {} });
      await page.locator('[data-testid="tail"]').getByText("demo.again").waitFor({ timeout: 15_000 });
      if (process.env.DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });
      expect(errors).toEqual([]);
      expect(missing).toEqual([]);
      // Headless Chromium asks for no icon, but a desktop browser asks for /favicon.ico unless the page names one.
      expect(await page.locator('link[rel="icon"]').getAttribute("href")).toMatch(/^data:image\/svg\+xml,/);
    } finally {
      await page.close();
      await t.stop();
    }
  });

  it("lists the schedules with their next runs, pauses and resumes one; a run's page names its schedule", async () => {
    await using t = await startTestServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      await page.goto(t.url);
      await expect.poll(() => page.locator('[data-testid="connection"]').textContent(), { timeout: 10_000 }).toBe("live");
      // No schedule: no section.
      expect(await page.locator('[data-testid="schedules"]').count()).toBe(0);
      const { schedule } = await t.api.schedules.set.mutate({ scheduleId: "digest", cron: "0 9 * * MON-FRI", timezone: "Europe/Paris", task: { queue: "reports" } });
      await t.api.schedules.set.mutate({ scheduleId: "sweep", everyMs: 600_000 });
      const row = page.locator('[data-schedule="digest"]');
      await row.getByText("0 9 * * MON-FRI (Europe/Paris)").waitFor({ timeout: 10_000 });
      expect(await row.locator("td").allTextContents()).toEqual(["digest", "0 9 * * MON-FRI (Europe/Paris)", "reports", expect.stringMatching(/\d/), "0", "-", "PauseRun now"]);
      expect(await row.locator('[data-field="next-run"]').getAttribute("data-at")).toBe(schedule.nextRunAt!.toISOString());
      await page.locator('[data-schedule="sweep"]').getByText("every 10m").waitFor({ timeout: 10_000 });
      await row.getByRole("button", { name: "Pause" }).click();
      await expect.poll(() => row.getAttribute("data-paused"), { timeout: 10_000 }).toBe("true");
      expect(await row.locator('[data-field="next-run"]').textContent()).toBe("paused");
      expect((await t.api.schedules.get.query({ scheduleId: "digest" })).paused).toBe(true);
      await row.getByRole("button", { name: "Resume" }).click();
      await expect.poll(() => row.getAttribute("data-paused"), { timeout: 10_000 }).toBe("false");
      const resumed = await t.api.schedules.get.query({ scheduleId: "digest" });
      // The next run links to its task's page, which names the schedule.
      await row.locator('[data-field="next-run"] a').click();
      await page.locator('[data-field="status"]').getByText("pending").waitFor({ timeout: 10_000 });
      expect(page.url()).toBe(`${t.url}/#/task/${resumed.nextTaskId}`);
      expect(await page.locator('[data-field="schedule"]').textContent()).toBe("a run of schedule digest");
      // A run that runs holds a schedule with overlap "skip" back; one with its maxRuns claimed has ended.
      await t.api.schedules.set.mutate({ scheduleId: "once", everyMs: 600_000, startAt: new Date(0), maxRuns: 1, task: { queue: "once" } });
      await t.api.schedules.set.mutate({ scheduleId: "serial", everyMs: 600_000, startAt: new Date(0), overlap: "skip", task: { queue: "serial" } });
      await t.api.tasks.claim.mutate({ agentId: "a", queues: ["once"], context: false });
      await t.api.tasks.claim.mutate({ agentId: "a", queues: ["serial"], context: false });
      await page.goto(t.url);
      const cell = (id: string) => page.locator(`[data-schedule="${id}"] [data-field="next-run"]`);
      await expect.poll(() => cell("once").textContent(), { timeout: 10_000 }).toBe("ended");
      expect(await page.locator('[data-schedule="once"] button').count()).toBe(0);
      await expect.poll(() => cell("serial").textContent(), { timeout: 10_000 }).toMatch(/^\d.* at the earliest, once the last run settles$/);
      // Run now: the pending run falls due at once; a waiting or ended schedule offers no such button.
      expect(await page.locator('[data-schedule="serial"]').getByRole("button", { name: "Run now" }).count()).toBe(0);
      const sweep = await t.api.schedules.get.query({ scheduleId: "sweep" });
      await page.locator('[data-schedule="sweep"]').getByRole("button", { name: "Run now" }).click();
      await page.getByText(`sweep: task ${sweep.nextTaskId} is due now`).waitFor({ timeout: 10_000 });
      expect((await t.api.tasks.claim.mutate({ agentId: "a", queues: ["default"], context: false }))?.id).toBe(sweep.nextTaskId);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it("a task's page gives a task that waits to run another priority, and runs a delayed one now", async () => {
    await using t = await startTestServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      const task = await t.api.tasks.enqueue.mutate({ queue: "later", delayMs: 3_600_000 });
      await page.goto(`${t.url}/#/task/${task.id}`);
      const controls = page.locator('[data-testid="not-run-yet"]');
      await controls.getByRole("button", { name: "Run now" }).waitFor({ timeout: 10_000 });
      // A task that waits may be cancelled, not requeued (the server would refuse it).
      expect([await page.getByRole("button", { name: "Requeue" }).count(), await page.getByRole("button", { name: "Cancel" }).count()]).toEqual([0, 1]);
      await controls.getByRole("spinbutton").fill("1");
      await controls.getByRole("button", { name: "Set priority" }).click();
      await page.getByText("priority 1").waitFor({ timeout: 10_000 });
      expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ priority: 1, runAt: task.runAt });
      await controls.getByRole("button", { name: "Run now" }).click();
      await page.getByText("due now").waitFor({ timeout: 10_000 });
      // Due now: the button is gone, the task is claimable.
      await expect.poll(() => controls.getByRole("button", { name: "Run now" }).count(), { timeout: 10_000 }).toBe(0);
      expect((await t.api.tasks.claim.mutate({ agentId: "a", queues: ["later"], context: false }))?.id).toBe(task.id);
      // Claimed: nothing left to change.
      await expect.poll(() => controls.count(), { timeout: 10_000 }).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  // A link cut short in a chat or a mail ends in half an escape: decodeURIComponent threw while the
  // page drew, and the page stayed on what it showed before, with an error in the console only.
  it("a task link whose escapes are broken opens the task's page, saying no such task, not an error", async () => {
    await using t = await startTestServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      await page.goto(`${t.url}/#/task/%E0%A4%A`);
      await page.getByText('task "%E0%A4%A" not found').waitFor({ timeout: 10_000 });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  // The chart reads the newest 5,000 events on opening: with fewer retained, from the oldest kept
  // (a start behind the retained log was refused, and the chart stayed at zero, saying nothing).
  it("follows the restored log after the server's database is restored from a backup, its chart and tail as live as before", async () => {
    let t: TestServer = await startTestServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "kept" }, { queue: "kept" }] });
      const copy = join(t.dir, "copy.db");
      await run(process.execPath, [CLI_PATH, "backup", copy, "--db", t.dbPath]);
      // Written after the backup: gone with the restore, their seqs given again.
      await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 10 }, () => ({ queue: "lost" })) });
      await page.goto(t.url);
      const charted = async () => (await page.locator('svg[aria-label="enqueued and completed per 10 s"] rect title').allTextContents()).reduce((sum, text) => sum + Number(text), 0);
      await expect.poll(charted, { timeout: 10_000 }).toBe(12);
      await t.api.events.publish.mutate({ type: "before.restore", source: "test", payload: {} });
      await page.locator('[data-testid="tail"]').getByText("before.restore").waitFor({ timeout: 10_000 });

      // The README's restore: stop the server, put the copy in place of the file (its -wal and -shm deleted), start it.
      const port = t.server.port;
      await t.stop();
      copyFileSync(copy, t.dbPath);
      for (const file of [`${t.dbPath}-wal`, `${t.dbPath}-shm`]) rmSync(file, { force: true });
      const restored = createServer(loadConfig({ env: {}, overrides: { port, dbPath: t.dbPath, logLevel: "silent" } }));
      await restored.start();
      t = { ...t, stop: () => restored.stop() } as TestServer;
      await expect.poll(() => page.locator('[data-testid="connection"]').textContent(), { timeout: 15_000 }).toBe("live");

      // The restored log's new events show, in the tail and the chart, and no section is left with an error.
      const api = createCoordinationClient({ url: t.url });
      try {
        await api.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "after" }, { queue: "after" }, { queue: "after" }] });
        await api.api.events.publish.mutate({ type: "after.restore", source: "test", payload: {} });
      } finally {
        await api.close();
      }
      await page.locator('[data-testid="tail"]').getByText("after.restore").waitFor({ timeout: 15_000 });
      // The chart reads the restored log anew: its 2 enqueues kept and the 3 since (the 10 lost are no more).
      await expect.poll(charted, { timeout: 15_000 }).toBe(5);
      await expect.poll(() => page.locator("p.error").allTextContents(), { timeout: 10_000 }).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await t.stop();
    }
  });

  it("charts each 10 s of the clock in one bar: a bar's count stays as the page's clock moves on", async () => {
    await using t = await startTestServer();
    // Two enqueues a few ms apart within one 10 s of the clock (the chart counts by event time).
    let times: number[] = [];
    while (times.length !== 2 || times[0] === times[1] || Math.floor(times[0]! / 10_000) !== Math.floor(times[1]! / 10_000)) {
      const { head } = await t.api.events.head.query();
      await t.api.tasks.enqueue.mutate({});
      await new Promise((resolve) => setTimeout(resolve, 5)); // apart: the loop checks that they are
      await t.api.tasks.enqueue.mutate({});
      times = (await t.api.events.list.query({ afterSeq: head, types: ["task.enqueued"], limit: 2 })).map((event) => event.createdAt.getTime());
    }
    const page = await browser.newPage();
    try {
      // The page's clock 150 s after the second: 5 minutes before it is then a bar's edge if bars
      // were counted back from the page's now, splitting the two into two bars of 1.
      await page.clock.setFixedTime(times[1]! + 150_000);
      await page.goto(t.url);
      const enqueuedBars = page.locator('svg[aria-label="enqueued and completed per 10 s"] rect[x$="1"] title');
      await expect.poll(async () => (await enqueuedBars.allTextContents()).filter((text) => text !== "0"), { timeout: 10_000 }).toEqual(["2"]);
    } finally {
      await page.close();
    }
  });

  it("charts throughput when fewer events are retained than it reads on opening", async () => {
    const t = await startTestServer({ eventRetentionCount: 100, eventPruneMs: 3_600_000 });
    const page = await browser.newPage();
    try {
      for (let i = 0; i < 11; i++) await Promise.all(Array.from({ length: 500 }, () => t.server.services.events.publish({ type: "noise.x", source: "test", payload: {} })));
      await t.server.services.jobs.eventPruner.runNow();
      const { head, prunedThrough } = await t.api.events.head.query();
      expect([head, prunedThrough]).toEqual([5500, 5400]);
      await page.goto(t.url);
      await expect.poll(() => page.locator('[data-testid="connection"]').textContent(), { timeout: 10_000 }).toBe("live");
      const bars = page.locator('svg[aria-label="enqueued and completed per 10 s"] rect title');
      const charted = async () => (await bars.allTextContents()).reduce((sum, text) => sum + Number(text), 0);
      // The stream opens after the page does: enqueue until the chart counts one, then three more.
      let enqueued = 0;
      await expect.poll(async () => (await t.api.tasks.enqueue.mutate({}), enqueued++, await charted()), { timeout: 15_000, interval: 200 }).toBeGreaterThan(0);
      // Every one of those is charted first: one still on its way on a busy machine was counted
      // as one of the three (the chart read 6 where 5 were due).
      await expect.poll(charted, { timeout: 10_000 }).toBe(enqueued);
      await t.api.tasks.enqueueMany.mutate({ tasks: [{}, {}, {}] });
      await expect.poll(charted, { timeout: 10_000 }).toBe(enqueued + 3);
      expect(await page.locator("section", { hasText: "Throughput" }).locator("p.error").count()).toBe(0);
    } finally {
      await page.close();
      await t.stop();
    }
  });

  it("asks for a token when credentials are on; a read token sees, and is offered no button it may not use; an admin token is", async () => {
    const t = await startSecureServer();
    const page = await browser.newPage();
    try {
      const reader = await t.issue("read");
      const dead = await t.admin.tasks.enqueue.mutate({ queue: "q", maxAttempts: 1 });
      await t.admin.tasks.claim.mutate({ agentId: "a", queues: ["q"] });
      await t.admin.tasks.fail.mutate({ taskId: dead.id, agentId: "a", error: "nope" });
      await page.goto(t.url);
      await page.getByText("This server needs a token").waitFor({ timeout: 10_000 });
      await page.getByLabel("token").fill(reader);
      await page.getByRole("button", { name: "Open" }).click();
      const row = page.locator(`[data-testid="dead-letters"] [data-task="${dead.id}"]`);
      await row.waitFor({ timeout: 10_000 });
      // The server said who the token is (tokens.whoami): the page says read-only, and offers no act of an admin's.
      await page.locator('[data-testid="role"]').getByText("read-only").waitFor({ timeout: 10_000 });
      expect(await row.getByRole("button").count()).toBe(0);
      expect(await page.locator('[data-testid="queues"]').getByRole("button").count()).toBe(0);
      // Webhooks are an admin's: a read token is told so, with no error.
      await page.locator('[data-testid="webhooks-admin"]').waitFor({ timeout: 10_000 });
      await page.goto(`${t.url}/#/task/${dead.id}`);
      await page.locator('[data-field="status"]').getByText("dead_letter").waitFor({ timeout: 10_000 });
      expect(await page.getByRole("button", { name: "Requeue" }).count()).toBe(0);
      // A delayed task's page says when it falls due, with no button to make it due now.
      const delayed = await t.admin.tasks.enqueue.mutate({ queue: "later", delayMs: 3_600_000 });
      await page.goto(`${t.url}/#/task/${delayed.id}`);
      await page.locator('[data-field="dueAt"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-testid="not-run-yet"]').getByRole("button").count()).toBe(0);
      // A task an agent enqueued under its credential names that agent.
      const asked = await t.as(await t.issue("agent", "planner")).tasks.enqueue.mutate({ queue: "asked" });
      await page.goto(`${t.url}/#/task/${asked.id}`);
      await page.locator('[data-field="enqueuedBy"]').getByText("planner", { exact: true }).waitFor({ timeout: 10_000 });
      await page.goto(t.url);
      // An admin's token: the buttons, and no role line.
      await page.getByRole("button", { name: "Forget token" }).click();
      await page.getByLabel("token").fill(ADMIN_SECRET);
      await page.getByRole("button", { name: "Open" }).click();
      await row.getByRole("button", { name: "Requeue" }).waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-testid="role"]').count()).toBe(0);

      // An error of 300 characters with no space keeps the row's buttons on the page, and the page from scrolling sideways.
      await page.setViewportSize({ width: 1400, height: 1000 });
      const long = await t.admin.tasks.enqueue.mutate({ queue: "q", maxAttempts: 1 });
      await t.admin.tasks.claim.mutate({ agentId: "a", queues: ["q"] });
      await t.admin.tasks.fail.mutate({ taskId: long.id, agentId: "a", error: "E".repeat(300) });
      const longRow = page.locator(`[data-testid="dead-letters"] [data-task="${long.id}"]`);
      await longRow.waitFor({ timeout: 10_000 });
      const button = (await longRow.getByRole("button", { name: "Cancel" }).boundingBox())!;
      expect(button.x + button.width).toBeLessThanOrEqual(1400);
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(1400);

      // With more agents than it shows, the page says so.
      for (let n = 0; n < 101; n++) await t.admin.agents.register.mutate({ agentId: `agent-${String(n).padStart(3, "0")}` });
      await page.locator('[data-testid="agents-more"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-testid="agents"] tbody tr').count()).toBe(100);
      expect((await t.admin.tasks.get.query({ taskId: dead.id })).status).toBe("dead_letter");
      expect(ADMIN_SECRET).not.toBe(reader);
    } finally {
      await page.close();
      await t.stop({ removeFiles: true });
    }
  });
  it("an agent token given kvPrefixes is offered Delete only on the keys it writes", async () => {
    const t = await startSecureServer();
    const page = await browser.newPage();
    try {
      const { secret } = await t.admin.tokens.create.mutate({ role: "agent", agentId: "w1", kvPrefixes: ["agents/w1/"] });
      await t.admin.kv.set.mutate({ key: "agents/w1/status", value: "busy" });
      await t.admin.kv.set.mutate({ key: "agents/w2/status", value: "idle" });
      await page.goto(t.url);
      await page.getByText("This server needs a token").waitFor({ timeout: 10_000 });
      await page.getByLabel("token").fill(secret);
      await page.getByRole("button", { name: "Open" }).click();
      // Once the server said who the token is, its own key has the button, another agent's none.
      await page.locator('[data-testid="role"]').waitFor({ timeout: 10_000 });
      await page.locator('[data-key="agents/w1/status"]').getByRole("button", { name: "Delete" }).waitFor({ timeout: 10_000 });
      await page.locator('[data-key="agents/w2/status"] td').first().waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-key="agents/w2/status"]').getByRole("button").count()).toBe(0);
    } finally {
      await page.close();
      await t.stop({ removeFiles: true });
    }
  });

  it("a whoami that failed once (a proxy's error, the server restarting) is asked again: a read token is not left with an admin's buttons", async () => {
    const t = await startSecureServer();
    const page = await browser.newPage();
    try {
      const reader = await t.issue("read");
      await t.admin.tasks.enqueue.mutate({ queue: "held" });
      // The browser kept the token (a page opened again): the page's first tokens.whoami (batched
      // with other reads) never reaches the server; later ones do.
      await page.goto(t.url);
      // A string to evaluate: the tests compile without the DOM's types.
      await page.evaluate(`localStorage.setItem("coordination.token", ${JSON.stringify(reader)})`);
      let refused = 0;
      await page.route(/\/trpc\/[^?]*tokens\.whoami/, async (route) => {
        if (refused++ === 0) await route.abort("connectionreset");
        else await route.continue();
      });
      await page.reload();
      await page.locator('[data-queue="held"]').waitFor({ timeout: 10_000 });
      await page.locator('[data-testid="role"]').getByText("read-only").waitFor({ timeout: 15_000 });
      expect(refused).toBeGreaterThanOrEqual(2);
      expect(await page.locator('[data-testid="queues"]').getByRole("button").count()).toBe(0);
    } finally {
      await page.close();
      await t.stop({ removeFiles: true });
    }
  });
  it("says live once the token's socket is open, whatever the socket opened before the token does afterwards", async () => {
    const t = await startSecureServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      // The first socket the page opens (before it has a token) has its close held back until the
      // test lets it go.
      await page.addInitScript(HOLD_FIRST_CLOSE);
      await page.goto(t.url);
      await page.getByText("This server needs a token").waitFor({ timeout: 10_000 });
      await page.getByLabel("token").fill(await t.issue("read"));
      await page.getByRole("button", { name: "Open" }).click();
      await page.locator('[data-testid="connection"]').getByText("live").waitFor({ timeout: 10_000 });
      await page.locator('[data-testid="role"]').getByText("read-only").waitFor({ timeout: 10_000 });
      // The old socket's close arrives now: the page it belonged to is gone, and the header stays live.
      await releaseFirstClose(page);
      expect(await page.locator('[data-testid="connection"]').textContent()).toBe("live");
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await t.stop({ removeFiles: true });
    }
  });
  it("stays live when the socket a restart replaced tells its close after its successor opened (a rolling restart behind one address)", async () => {
    let t: TestServer = await startTestServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      await page.addInitScript(HOLD_FIRST_CLOSE);
      await page.goto(t.url);
      await page.locator('[data-testid="connection"]').getByText("live").waitFor({ timeout: 10_000 });
      // The server stops: it asks its sockets to reconnect, then closes them; the page's socket
      // has its close held back, as a socket's close can come late. The client opens another
      // socket, which reaches the server that took the address (here: the same port, the same file).
      const port = t.server.port;
      await t.stop();
      const successor = createServer(loadConfig({ env: {}, overrides: { port, dbPath: t.dbPath, logLevel: "silent" } }));
      await successor.start();
      t = { ...t, stop: () => successor.stop() } as TestServer;
      await page.locator('[data-testid="connection"]').getByText("live").waitFor({ timeout: 15_000 });
      // The replaced socket's close arrives now: the header stays live, and live events come.
      await releaseFirstClose(page);
      expect(await page.locator('[data-testid="connection"]').textContent()).toBe("live");
      await successor.services.events.publish({ type: "demo.after-handover", source: "test", payload: {} });
      await page.locator('[data-testid="tail"]').getByText("demo.after-handover").waitFor({ timeout: 15_000 });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await t.stop();
    }
  });
  it("a task's page shows its log, oldest first, levels marked, its new lines as they come, a long message wrapped on the page", async () => {
    await using t = await startTestServer();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      await page.setViewportSize({ width: 1280, height: 900 });
      const { id } = await t.api.tasks.enqueue.mutate({ queue: "logs" });
      const lease = (await t.api.tasks.claim.mutate({ agentId: "agent-1", queues: ["logs"], context: false }))!;
      await t.api.tasks.appendLog.mutate({
        taskId: id,
        agentId: "agent-1",
        leaseToken: lease.leaseToken,
        entries: [
          { message: "fetching the page" },
          { message: "model answered", level: "debug", data: { tokens: { in: 812, out: 64 } } },
          { message: "retrying\nwith a longer timeout", level: "warn" },
        ],
      });
      const written = (await t.api.tasks.log.query({ taskId: id })).lines;
      const at = await Promise.all(written.map((line) => page.evaluate((ms) => new Date(ms).toLocaleTimeString(), line.at.getTime())));
      await page.goto(`${t.url}/#/task/${id}`);
      const rows = page.locator('[data-testid="log"] tbody tr');
      await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(3);
      // Oldest first: line, time, level, agent, run, message (and the data, compact).
      expect(await rows.nth(0).locator("td").allTextContents()).toEqual(["1", at[0], "info", "agent-1", "1", "fetching the page"]);
      expect(await rows.nth(1).locator("td").allTextContents()).toEqual(["2", at[1], "debug", "agent-1", "1", 'model answered{"tokens":{"in":812,"out":64}}']);
      expect(await rows.nth(1).locator("code").textContent()).toBe('{"tokens":{"in":812,"out":64}}');
      expect(await rows.nth(2).locator("td").allTextContents()).toEqual(["3", at[2], "warn", "agent-1", "1", "retrying\nwith a longer timeout"]);
      // The newline is kept on screen (innerText is the text as rendered).
      expect(await rows.nth(2).locator(".log-message").innerText()).toBe("retrying\nwith a longer timeout");
      expect(await page.evaluate<string[]>(`[...document.querySelectorAll('[data-testid="log"] tbody tr')].map((tr) => tr.dataset.level)`)).toEqual(["info", "debug", "warn"]);
      expect(await page.locator('[data-testid="log-dropped"]').count()).toBe(0);
      expect(await page.locator('[data-testid="log-earlier"]').count()).toBe(0);
      // Warn and error lines are marked in colour; info is not.
      const levelColor = (line: number) => page.evaluate<string>(`getComputedStyle(document.querySelector('[data-line="${line}"] td.log-level')).color`);
      const rowBackground = (line: number) => page.evaluate<string>(`getComputedStyle(document.querySelector('[data-line="${line}"]')).backgroundColor`);
      expect([await levelColor(3), await rowBackground(3)]).toEqual(["rgb(183, 121, 31)", "rgb(255, 247, 230)"]);
      expect([await levelColor(1), await rowBackground(1)]).toEqual(["rgb(29, 35, 48)", "rgba(0, 0, 0, 0)"]);

      // A line the run adds while the page is open shows without a reload, marked as an error.
      await t.api.tasks.appendLog.mutate({ taskId: id, agentId: "agent-1", entries: [{ message: "gave up: 429 Too Many Requests", level: "error", data: { retryAfterS: 30 } }] });
      const errorRow = page.locator('[data-testid="log"] [data-line="4"]');
      await errorRow.waitFor({ timeout: 10_000 });
      const [fourth] = (await t.api.tasks.log.query({ taskId: id, after: 3 })).lines;
      expect(await errorRow.locator("td").allTextContents()).toEqual([
        "4",
        await page.evaluate((ms) => new Date(ms).toLocaleTimeString(), fourth!.at.getTime()),
        "error",
        "agent-1",
        "1",
        'gave up: 429 Too Many Requests{"retryAfterS":30}',
      ]);
      expect([await levelColor(4), await rowBackground(4)]).toEqual(["rgb(194, 53, 43)", "rgb(253, 236, 234)"]);

      // The longest message, with no space, wraps in its cell: neither the page nor the log's box scrolls sideways.
      await t.api.tasks.appendLog.mutate({ taskId: id, agentId: "agent-1", entries: [{ message: "x".repeat(16_384) }] });
      const longRow = page.locator('[data-testid="log"] [data-line="5"]');
      await longRow.waitFor({ timeout: 10_000 });
      expect(await longRow.locator(".log-message").textContent()).toBe("x".repeat(16_384));
      expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(1280);
      expect(await page.evaluate<boolean>("(b => b.scrollWidth <= b.clientWidth)(document.querySelector('.log'))")).toBe(true);
      expect(await rows.count()).toBe(5);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it("a task's long log: the last 200 lines, earlier ones on demand, the dropped ones counted, a level filter; a read token sees it", async () => {
    await using t = await startSecureServer({ maxTaskLogBytes: 65_536 });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      const { id } = await t.admin.tasks.enqueue.mutate({ queue: "logs" });
      await t.admin.tasks.claim.mutate({ agentId: "agent-1", queues: ["logs"], context: false });
      // 450 lines of about 170 bytes each: the log keeps its newest 64 KiB, the oldest go.
      const level = (n: number) => (n === 445 ? "error" : n % 100 === 0 ? "warn" : "info");
      const message = (n: number) => `step ${n} ${"-".repeat(90)}`;
      for (let first = 1; first <= 450; first += 100) {
        const numbers = Array.from({ length: Math.min(100, 451 - first) }, (_, i) => first + i);
        await t.admin.tasks.appendLog.mutate({ taskId: id, agentId: "agent-1", entries: numbers.map((n) => ({ message: message(n), level: level(n) })) });
      }
      const { dropped } = await t.admin.tasks.log.query({ taskId: id, limit: 1 });
      expect(dropped).toBeGreaterThan(50);
      expect(dropped).toBeLessThan(250);

      await page.goto(t.url);
      await page.getByText("This server needs a token").waitFor({ timeout: 10_000 });
      await page.getByLabel("token").fill(await t.issue("read"));
      await page.getByRole("button", { name: "Open" }).click();
      await page.locator('[data-testid="connection"]').getByText("live").waitFor({ timeout: 10_000 });
      await page.goto(`${t.url}/#/task/${id}`);
      const shown = () => page.evaluate<number[]>(`[...document.querySelectorAll('[data-testid="log"] tbody tr')].map((tr) => Number(tr.dataset.line))`);
      const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i);
      // The last 200 lines, the rest said.
      await expect.poll(shown, { timeout: 10_000 }).toEqual(range(251, 450));
      expect(await page.locator('[data-testid="log-dropped"]').textContent()).toBe(`${dropped} older lines dropped`);
      expect(await page.locator('[data-testid="log-earlier"] span').textContent()).toBe(`lines ${dropped + 1} to 250 not shown`);
      expect(await page.locator('[data-line="251"] td').nth(5).textContent()).toBe(message(251));
      // Earlier lines on demand: back to the oldest kept, and nothing earlier to offer.
      await page.getByRole("button", { name: "Show earlier lines" }).click();
      await expect.poll(shown, { timeout: 10_000 }).toEqual(range(dropped + 1, 450));
      expect(await page.locator('[data-testid="log-earlier"]').count()).toBe(0);

      // Warn and error only: those of the kept lines, and the new ones at that level as they come.
      await page.getByLabel("log level").selectOption("warn");
      await expect.poll(shown, { timeout: 10_000 }).toEqual([100, 200, 300, 400, 445]);
      expect(await page.evaluate<string[]>(`[...document.querySelectorAll('[data-testid="log"] tbody tr')].map((tr) => tr.dataset.level)`)).toEqual(["warn", "warn", "warn", "warn", "error"]);
      await t.admin.tasks.appendLog.mutate({ taskId: id, agentId: "agent-1", entries: [{ message: "quiet", level: "debug" }, { message: "gave up", level: "error" }] });
      await expect.poll(shown, { timeout: 10_000 }).toEqual([100, 200, 300, 400, 445, 452]);
      // All levels again: the last 200 lines.
      await page.getByLabel("log level").selectOption("");
      await expect.poll(shown, { timeout: 10_000 }).toEqual(range(253, 452));
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it("shows as many agents as fit in one answer when their metadata is large, and says there are more", async () => {
    await using t = await startTestServer({ maxResponseBytes: 256 * 1024 });
    const blob = "x".repeat(60 * 1024); // four agents fit in an answer
    for (let n = 0; n < 10; n++) await t.api.agents.register.mutate({ agentId: `agent-${n}`, metadata: { blob } });
    const page = await browser.newPage();
    try {
      await page.goto(t.url);
      await page.locator('[data-testid="agents-more"]').getByText("The first 4 agents by id").waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-testid="agents"] tbody tr').count()).toBe(4);
    } finally {
      await page.close();
    }
  });

  it("dates a dead letter and a heartbeat of another day, where a time of day alone would read as today's", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ queue: "old", maxAttempts: 1 });
    const lease = (await t.api.tasks.claim.mutate({ agentId: "gone-agent", queues: ["old"] }))!;
    const dead = await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "gone-agent", leaseToken: lease.leaseToken, error: "boom" });
    const [agent] = await t.api.agents.list.query({});
    const page = await browser.newPage();
    try {
      // The operator looks two days later (the page's clock; the server keeps its own).
      await page.clock.setFixedTime(dead.finishedAt!.getTime() + 2 * 86_400_000);
      await page.goto(t.url);
      const deadSince = page.locator(`[data-testid="dead-letters"] [data-task="${task.id}"] td`).nth(4);
      await expect.poll(() => deadSince.textContent(), { timeout: 10_000 }).toBe(await page.evaluate((ms) => new Date(ms).toLocaleString(), dead.finishedAt!.getTime()));
      const lastHeartbeat = page.locator('[data-agent="gone-agent"] td').nth(5);
      await expect.poll(() => lastHeartbeat.textContent(), { timeout: 10_000 }).toBe(await page.evaluate((ms) => new Date(ms).toLocaleString(), agent!.lastHeartbeatAt.getTime()));
    } finally {
      await page.close();
    }
  });

  it("says an agent holds more tasks than the ten it links", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 12 }, (_, n) => ({ queue: "busy", payload: { n } })) });
    expect(await t.api.tasks.claimMany.mutate({ agentId: "holder", queues: ["busy"], limit: 12 })).toHaveLength(12);
    const page = await browser.newPage();
    try {
      await page.goto(t.url);
      const holds = page.locator('[data-agent="holder"] [data-field="holds"]');
      await expect.poll(() => holds.locator("a").count(), { timeout: 10_000 }).toBe(10);
      await expect.poll(() => holds.textContent(), { timeout: 10_000 }).toContain("and more");
    } finally {
      await page.close();
    }
  });
});
