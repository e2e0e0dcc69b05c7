// The worker rides out a server restart: 200 tasks, concurrency 4, the server killed -9 in the
// middle of the run and restarted 3 s later on the same file and port. Settles and renewals are
// retried while their leases may be valid, and claims whose answers died with the server are
// adopted: every task runs once, none is lost, and no lease is waited out (30 s leases; a lease
// waited out would show as a task.lease_expired event and a second attempt).
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, runWorker } from "../client/index.js";
import { CliProcess, killAllCli } from "./helpers/cli-process.js";
import { makeTempDir, rest } from "./helpers/test-server.js";

afterEach(killAllCli);

const TASKS = 200;

describe("runWorker across a server crash", () => {
  it("kill -9 and a restart 3 s later: 0 duplicates, 0 lost, no lease waited out", async () => {
    const dir = makeTempDir();
    const env = (port: string) => ({
      COORDINATION_PORT: port,
      COORDINATION_DB_PATH: join(dir, "c.db"),
      COORDINATION_LOG_LEVEL: "warn",
      COORDINATION_LEASE_MS: "30000",
      COORDINATION_MEMORY_CONTEXT_LIMIT: "0",
    });
    const first = new CliProcess({ env: { ...env("0"), COORDINATION_LOG_LEVEL: "info" } });
    const url = await first.waitForUrl();
    const port = new URL(url).port;
    await rest(url, "POST", "/tasks/batch", { tasks: Array.from({ length: TASKS }, (_, n) => ({ queue: "work", payload: { n } })) });

    const { api, close } = createCoordinationClient({ url });
    const runs = new Map<number, number>();
    const worker = await runWorker({
      api,
      agentId: "survivor",
      queues: ["work"],
      concurrency: 4,
      waitMs: 1000,
      heartbeatMs: 1000,
      handler: async (task) => {
        const n = (task.payload as { n: number }).n;
        runs.set(n, (runs.get(n) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 15));
        return { n };
      },
    });
    try {
      await vi.waitFor(() => expect(runs.size).toBeGreaterThanOrEqual(TASKS / 4), { timeout: 30_000, interval: 5 });
      first.kill("SIGKILL");
      await first.waitForExit();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const second = new CliProcess({ env: { ...env(port), COORDINATION_LOG_LEVEL: "info" } });
      expect(await second.waitForUrl()).toBe(url);

      await vi.waitFor(
        async () => expect((await rest(url, "GET", "/stats/tasks")).body.totals).toMatchObject({ completed: TASKS, pending: 0, claimed: 0 }),
        { timeout: 60_000, interval: 200 },
      );
      const duplicates = [...runs.values()].filter((count) => count > 1).length;
      expect({ ran: runs.size, duplicates }).toEqual({ ran: TASKS, duplicates: 0 });
      expect((await rest(url, "GET", "/events?types=task.lease_expired,task.released&limit=1000")).body).toEqual([]);
      const tasks = (await rest(url, "GET", "/tasks?queue=work&limit=500")).body.items as Array<{ attempts: number; result: unknown; payload: unknown }>;
      expect(tasks.filter((task) => task.attempts !== 1)).toEqual([]);
      for (const task of tasks) expect(task.result).toEqual(task.payload);
    } finally {
      await worker.stop();
      await close();
    }
  }, 120_000);
});
