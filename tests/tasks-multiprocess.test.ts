// Two server processes on one database file: the claim stays atomic across processes
// (BEGIN IMMEDIATE + busy_timeout), and no request sees an error.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { CliProcess, killAllCli } from "./helpers/cli-process.js";
import { makeTempDir, rest } from "./helpers/test-server.js";

afterEach(killAllCli);

interface Server {
  url: string;
  cli: CliProcess;
}

/** Real server processes (the CLI) on the same database file. */
async function startMany(count: number, env: Record<string, string>): Promise<Server[]> {
  const start = async () => {
    const cli = new CliProcess({ env: { COORDINATION_PORT: "0", ...env } });
    return { url: await cli.waitForUrl(), cli };
  };
  const servers: Server[] = [];
  for (let i = 0; i < count; i++) servers.push(await start());
  return servers;
}
const startTwo = async (env: Record<string, string>) => (await startMany(2, env)) as [Server, Server];

describe("server processes on one database file", () => {
  it("three processes claim concurrently: no task claimed twice, none lost, no error surfaced", async () => {
    const dir = makeTempDir();
    const env = { COORDINATION_DB_PATH: join(dir, "shared.db"), COORDINATION_LOG_LEVEL: "info", COORDINATION_MEMORY_CONTEXT_LIMIT: "0" };
    const servers = await startMany(3, env);
    const [a, b, c] = servers as [Server, Server, Server];

    const total = 300;
    // Enqueue through every process at once, so their writes contend too.
    await Promise.all(
      servers.map((server, s) =>
        rest(server.url, "POST", "/tasks/batch", { tasks: Array.from({ length: total / 3 }, (_, i) => ({ payload: { s, i } })) }),
      ),
    );

    const claims: Array<{ id: string; by: string }> = [];
    const errors: string[] = [];
    const claimer = async (server: Server, agent: string) => {
      for (;;) {
        const claim = await rest(server.url, "GET", `/tasks/claim/${agent}`);
        if (claim.status === 204) return;
        if (claim.status !== 200) return void errors.push(`claim ${claim.status} ${JSON.stringify(claim.body)}`);
        claims.push({ id: claim.body.id, by: agent });
        const done = await rest(server.url, "POST", `/tasks/${claim.body.id}/complete`, { agentId: agent });
        if (done.status !== 200) errors.push(`complete ${done.status} ${JSON.stringify(done.body)}`);
      }
    };
    await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => claimer(a, `a-${i}`)),
      ...Array.from({ length: 8 }, (_, i) => claimer(b, `b-${i}`)),
      ...Array.from({ length: 8 }, (_, i) => claimer(c, `c-${i}`)),
    ]);

    expect(errors).toEqual([]);
    expect(claims).toHaveLength(total);
    expect(new Set(claims.map((c) => c.id)).size).toBe(total);
    // Every process did real work.
    for (const prefix of ["a-", "b-", "c-"]) expect(claims.filter((claim) => claim.by.startsWith(prefix)).length, prefix).toBeGreaterThan(0);

    const db = new Database(join(dir, "shared.db"), { readonly: true });
    try {
      const counts = db.prepare(`SELECT status, COUNT(*) AS n FROM tasks GROUP BY status`).all();
      expect(counts).toEqual([{ status: "completed", n: total }]);
      const claimedEvents = db.prepare(`SELECT COUNT(*) FROM events WHERE type = 'task.claimed'`).pluck().get();
      expect(claimedEvents).toBe(total);
    } finally {
      db.close();
    }
    // No error was logged by either process.
    for (const server of servers) expect(server.cli.logLines().filter((line) => Number(line.level) >= 50)).toEqual([]);
  });

  it("a task enqueued through one process wakes a long-poll claim waiting on the other", async () => {
    const dir = makeTempDir();
    const env = { COORDINATION_DB_PATH: join(dir, "shared.db"), COORDINATION_CROSS_PROCESS_POLL_MS: "50" };
    const [a, b] = await startTwo(env);
    const waiting = rest(b.url, "GET", "/tasks/claim/waiter?waitMs=10000");
    const task = await rest(a.url, "POST", "/tasks", { payload: { from: "a" } });
    const claimed = await waiting;
    expect(claimed.status).toBe(200);
    expect(claimed.body.id).toBe(task.body.id);
  });

  it("an agent deregistered through one process and claiming through the other is registered again", async () => {
    const dir = makeTempDir();
    const [a, b] = await startTwo({ COORDINATION_DB_PATH: join(dir, "shared.db") });
    await rest(a.url, "POST", "/tasks/batch", { tasks: [{ payload: 1 }, { payload: 2 }] });
    // Back to back: a remembers it saw x less than a second ago.
    const first = await rest(a.url, "POST", "/tasks/claim", { agentId: "x" });
    expect((await rest(a.url, "POST", `/tasks/${first.body.id}/complete`, { agentId: "x" })).status).toBe(200);
    expect((await rest(b.url, "DELETE", "/agents/x")).status).toBe(200);
    const held = await rest(a.url, "POST", "/tasks/claim", { agentId: "x", leaseMs: 600_000 });
    expect(held.body.payload).toBe(2);
    expect((await rest(b.url, "GET", "/agents/x")).status).toBe(200);
    // Known again, so offline release and stealing reach its task (x is healthy: nothing to steal yet; unknown was a 404).
    const stolen = await rest(b.url, "POST", "/tasks/steal", { agentId: "y", fromAgentId: "x" });
    expect([stolen.status, stolen.body]).toEqual([200, []]);
  });
});
