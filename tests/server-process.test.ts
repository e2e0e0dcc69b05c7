// The server as a process, the way `npx coordination` runs it: bin/coordination.js over the
// compiled dist/, in a temporary working directory, on a loopback port. Graceful shutdown on
// SIGTERM/SIGINT: exit code 0, long-polls answered, WebSockets closed, the database complete.
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, rmSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { CliProcess, killAllCli } from "./helpers/cli-process.js";
import { makeTempDir, rest } from "./helpers/test-server.js";

let dir: string;
beforeEach(() => {
  dir = makeTempDir("coordination-process-");
});
afterEach(async () => {
  await killAllCli();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A stop that waits for nothing takes well under a second; one that waited out the shutdown's
 * bound, or a long-poll, takes a minute here. The tests tell them apart by PROMPT_STOP_MS, far from
 * both, so a loaded machine's slow exit is not taken for a hung one.
 */
const PROMPT_STOP_MS = 30_000;

async function startCli(env: Record<string, string> = {}): Promise<{ cli: CliProcess; url: string }> {
  const cli = new CliProcess({ env: { COORDINATION_PORT: "0", COORDINATION_SHUTDOWN_TIMEOUT_MS: "60000", COORDINATION_MAX_WAIT_MS: "60000", ...env }, cwd: dir });
  return { cli, url: await cli.waitForUrl() };
}

/** A GET whose response we wait for separately; resolves `sent` once the request left for the server. */
function startGet(url: string): { sent: Promise<void>; response: Promise<{ status: number; body: string; ms: number }> } {
  const started = Date.now();
  let markSent!: () => void;
  const sent = new Promise<void>((resolve) => (markSent = resolve));
  const response = new Promise<{ status: number; body: string; ms: number }>((resolve, reject) => {
    const req = httpRequest(url, { method: "GET", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, ms: Date.now() - started }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.on("finish", () => markSent());
    req.end();
  });
  return { sent, response };
}

describe("the coordination process", () => {
  it("serves /health from its working directory's coordination.db and stops cleanly on SIGTERM", async () => {
    const { cli, url } = await startCli();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await rest(url, "GET", "/health");
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "ok", db: "ok" });
    const dbPath = join(dir, "coordination.db");
    expect(existsSync(dbPath)).toBe(true);

    const enqueued = await rest(url, "POST", "/tasks", { queue: "durable", payload: { written: "before SIGTERM" } });
    expect(enqueued.status).toBe(200);

    const signalledAt = Date.now();
    cli.kill("SIGTERM");
    const exit = await cli.waitForExit();
    expect(exit.code).toBe(0);
    expect(exit.signal).toBeNull();
    expect(Date.now() - signalledAt).toBeLessThan(PROMPT_STOP_MS);
    expect(cli.logLines().map((line) => line.msg)).toEqual(expect.arrayContaining(["signal received", "shutting down", "stopped"]));
    expect(exit.stderr).toBe("");

    // The WAL was folded into the main file: the .db alone holds everything.
    const wal = `${dbPath}-wal`;
    expect(!existsSync(wal) || statSync(wal).size === 0).toBe(true);
    const copy = join(dir, "copy.db");
    copyFileSync(dbPath, copy);
    for (const path of [dbPath, copy]) {
      const db = new Database(path, { readonly: true });
      try {
        expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
        expect(db.pragma("foreign_key_check")).toEqual([]);
        const row = db.prepare<[string], { queue: string; payload: string; status: string }>(`SELECT queue, payload, status FROM tasks WHERE id = ?`).get(enqueued.body.id);
        expect(row).toEqual({ queue: "durable", payload: JSON.stringify({ written: "before SIGTERM" }), status: "pending" });
      } finally {
        db.close();
      }
    }
  });

  it("answers a long-poll claim in flight with 503 SHUTTING_DOWN and exits 0 well before the poll would end", async () => {
    const { cli, url } = await startCli();
    const claim = startGet(`${url}/tasks/claim/a1?waitMs=60000`);
    await claim.sent;
    // The claim went out first; once a later request has been answered, the server has read it too.
    expect((await rest(url, "GET", "/health")).status).toBe(200);
    let answered = false;
    void claim.response.then(() => (answered = true));
    await Promise.resolve();
    expect(answered).toBe(false); // still long-polling (nothing to claim)

    const signalledAt = Date.now();
    cli.kill("SIGTERM");
    const response = await claim.response;
    expect(response.status).toBe(503);
    expect(JSON.parse(response.body)).toMatchObject({ code: "SHUTTING_DOWN" });
    const exit = await cli.waitForExit();
    expect(exit.code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(PROMPT_STOP_MS);
    expect(response.ms).toBeLessThan(5000);
  });

  it("shuts down gracefully on a SIGTERM sent the moment the start-up line appears", async () => {
    // A supervisor may signal as soon as it sees the server is up. The handlers used to be
    // installed only after that line was written, so such a signal killed the process outright
    // (exit by signal, no graceful stop) about one time in six. A few rounds make that visible.
    for (let round = 0; round < 3; round++) {
      const cli = new CliProcess({ env: { COORDINATION_PORT: "0", COORDINATION_DB_PATH: join(dir, `round-${round}.db`) }, cwd: dir });
      await cli.waitForUrl();
      cli.kill("SIGTERM");
      const exit = await cli.waitForExit();
      expect({ round, code: exit.code, signal: exit.signal }).toEqual({ round, code: 0, signal: null });
      expect(cli.logLines().map((line) => line.msg)).toContain("stopped");
    }
  });

  it("closes WebSocket clients with 1012 and exits 0 on SIGINT", async () => {
    const { cli, url } = await startCli();
    const socket = new WebSocket(`${url.replace("http", "ws")}/trpc`);
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
    const signalledAt = Date.now();
    cli.kill("SIGINT");
    expect(await closed).toBe(1012);
    expect((await cli.waitForExit()).code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(PROMPT_STOP_MS);
  });

  it("exits 1 when its port is taken, saying so", async () => {
    const holder = createNetServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()));
    try {
      const port = (holder.address() as AddressInfo).port;
      const cli = new CliProcess({ env: { COORDINATION_PORT: String(port) }, cwd: dir });
      const exit = await cli.waitForExit();
      expect(exit.code).toBe(1);
      const sentence = `cannot listen on 127.0.0.1:${port}: the port is in use (another server on it?); choose another with --port or COORDINATION_PORT`;
      expect(cli.stderr).toBe(`coordination: ${sentence}\n`);
      const lines = cli.logLines();
      const fatal = lines.findIndex((line) => line.level === 60);
      expect(lines[fatal]).toMatchObject({ msg: `failed to start: ${sentence}`, code: "EADDRINUSE" });
      // Why it failed comes first, then what stopping what had started logs.
      expect(lines.slice(fatal + 1).map((line) => line.msg)).toContain("stopped");
      expect(lines.slice(0, fatal).map((line) => line.msg)).not.toContain("stopped");
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  it("exits 1 when its address is not this machine's, naming the setting", async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address.
    const cli = new CliProcess({ env: { COORDINATION_HOST: "192.0.2.1", COORDINATION_PORT: "0", COORDINATION_INSECURE: "true" }, cwd: dir });
    const exit = await cli.waitForExit();
    expect(exit.code).toBe(1);
    expect(cli.stderr).toBe("coordination: cannot listen on 192.0.2.1:0: the address is not one of this machine's; fix --host or COORDINATION_HOST\n");
  });

  it("started by npm start, stops cleanly when a supervisor's SIGTERM to npm kills npm's shell before it reaches the server", async () => {
    // npm passes the signal to the shell it ran the script with, which dies without passing it on:
    // the server was left running, re-parented, holding its port and its file.
    const root = fileURLToPath(new URL("..", import.meta.url));
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("COORDINATION_") && !key.startsWith("npm_")));
    const npm = spawn("npm", ["start", "--silent"], { cwd: root, env: { ...env, COORDINATION_PORT: "0", COORDINATION_DB_PATH: join(dir, "npm.db") }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    npm.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    npm.stderr!.resume();
    // 'close' waits for the pipes, which the server holds too: it comes once the server exited.
    const closed = new Promise<void>((resolve) => npm.on("close", () => resolve()));
    try {
      const lines = () => stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as { msg?: string; url?: string });
      await expect.poll(() => lines().find((line) => line.msg?.startsWith("coordination listening"))?.url, { timeout: 30_000, interval: 100 }).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const url = lines().find((line) => line.msg?.startsWith("coordination listening"))!.url!;
      const enqueued = await rest(url, "POST", "/tasks", { queue: "npm", payload: { kept: true } });
      expect(enqueued.status).toBe(200);
      npm.kill("SIGTERM");
      await closed;
      expect(lines().map((line) => line.msg)).toContain("the npm process that started the server exited; stopping");
      expect(lines().at(-1)?.msg).toBe("stopped");
      await expect(fetch(`${url}/health`)).rejects.toThrow();
      const db = new Database(join(dir, "npm.db"), { readonly: true });
      try {
        expect(db.prepare(`SELECT payload FROM tasks WHERE id = ?`).pluck().get(enqueued.body.id)).toBe('{"kept":true}');
      } finally {
        db.close();
      }
    } finally {
      npm.kill("SIGKILL");
    }
  }, 60_000);
});
