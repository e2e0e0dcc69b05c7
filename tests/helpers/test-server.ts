// A real server on a loopback port 0, over a fresh SQLite file in its own temp folder, with a
// real tRPC client (HTTP + WebSocket). Use with `await using` or call stop().
import { mkdtempSync, rmSync } from "node:fs";
import BetterSqlite3 from "better-sqlite3";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCoordinationClient, type CoordinationApi } from "../../client/index.js";
import { loadConfig, type Config, type SettingName } from "../../src/config.js";
import { createServer, type CoordinationServer } from "../../src/server/create-server.js";

export interface TestServer extends AsyncDisposable {
  server: CoordinationServer;
  url: string;
  api: CoordinationApi;
  config: Config;
  dir: string;
  dbPath: string;
  /** Stops the server and closes the client; keeps the database file unless `removeFiles`. */
  stop(options?: { removeFiles?: boolean }): Promise<void>;
}

export function makeTempDir(prefix = "coordination-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startTestServer(overrides: Partial<Record<SettingName, unknown>> = {}, dir = makeTempDir()): Promise<TestServer> {
  const dbPath = join(dir, "coordination.db");
  const config = loadConfig({ env: {}, overrides: { port: 0, dbPath, logLevel: "silent", ...overrides } });
  const server = createServer(config);
  await server.start();
  const client = createCoordinationClient({ url: server.url });
  let stopped = false;
  const stop = async (options: { removeFiles?: boolean } = {}) => {
    if (!stopped) {
      stopped = true;
      await client.close();
      await server.stop();
    }
    if (options.removeFiles) rmSync(dir, { recursive: true, force: true });
  };
  return { server, url: server.url, api: client.api, config, dir, dbPath, stop, [Symbol.asyncDispose]: () => stop({ removeFiles: true }) };
}

/**
 * A test server whose background `job` (the lease sweeper, the expiry job) runs only when a test
 * asks (`runNow`, or the service call it makes): what happens before it is the calls' own.
 */
export async function startTestServerWithout(job: keyof CoordinationServer["services"]["jobs"], overrides: Partial<Record<SettingName, unknown>> = {}): Promise<TestServer> {
  const server = await startTestServer(overrides);
  await server.server.services.jobs[job].stop();
  return server;
}

/** A plain HTTP call, as curl or Python would make it. */
export async function rest(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/**
 * Runs `use` on a connection of the test's own to the server's database file (WAL: it works
 * beside the server's threads), closed afterwards. For setting up states no API call makes.
 */
export function withDatabase<T>(t: { dbPath: string }, use: (db: import("better-sqlite3").Database) => T): T {
  const db = new BetterSqlite3(t.dbPath, { timeout: 5000 });
  try {
    return use(db);
  } finally {
    db.close();
  }
}
