// Two server processes on one file, workers and a live stream spread over both, and one server
// killed -9 in the middle of the run. crash-recovery.test.ts kills the only server; here the
// other one carries on at once, so what is checked is what the README promises a client of
// several servers: every task settles once, a key's line and a queue's limit hold across the
// servers and the crash (both counted in each claim's own write on the file), every lease a
// task gets has a larger fencing token than the one before it, attempts count the runs that were
// not given back, and a live stream on the dead server resumes on the other from its last event
// id with no gap and no repeat. The verdict is read from the event log (commit order), never
// from timing.
import Database from "better-sqlite3";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, runWorker, type Worker } from "../client/index.js";
import { CliProcess, killAllCli } from "./helpers/cli-process.js";
import { collectEvents, range } from "./helpers/event-collector.js";
import { makeTempDir } from "./helpers/test-server.js";

afterEach(killAllCli);

const PLAIN = 120;
const KEYED = 120;
const LIMITED = 60;
const KEYS = 6;
const LIMIT = 2;
const NEWS = 60;

interface LogRow {
  seq: number;
  type: string;
  payload: string;
}

describe("two servers on one file, one killed -9 under load", () => {
  it("every task settles once; key lines, queue limits and fencing hold across the crash; a live stream resumes on the other server", async () => {
    const db = join(makeTempDir(), "failover.db");
    // Short leases, so a lease the crash orphaned comes back within the test; a busyTimeoutMs of
    // 1 s keeps the shared-file grace (2 × busyTimeoutMs) short too.
    const env = { COORDINATION_PORT: "0", COORDINATION_DB_PATH: db, COORDINATION_LEASE_MS: "2000", COORDINATION_LEASE_SWEEP_MS: "100", COORDINATION_BUSY_TIMEOUT_MS: "1000", COORDINATION_LOG_LEVEL: "warn" };
    const doomed = new CliProcess({ env: { ...env, COORDINATION_LOG_LEVEL: "info" } });
    const survivor = new CliProcess({ env: { ...env, COORDINATION_LOG_LEVEL: "info" } });
    const [doomedUrl, survivorUrl] = await Promise.all([doomed.waitForUrl(), survivor.waitForUrl()]);

    const admin = createCoordinationClient({ url: [survivorUrl] });
    const viaDoomed = createCoordinationClient({ url: [doomedUrl, survivorUrl] });
    const viaSurvivor = createCoordinationClient({ url: [survivorUrl, doomedUrl] });
    const workers: Worker[] = [];
    try {
      await admin.api.queues.setLimit.mutate({ queue: "limited", maxLeased: LIMIT });
      const tasks = [
        ...range(1, PLAIN).map((i) => ({ queue: "plain", payload: { i } })),
        // Every third key shares its line two at a time; the others run one at a time.
        ...range(1, KEYED).map((i) => ({ queue: "keyed", payload: { i }, orderingKey: `k${i % KEYS}`, ...(i % KEYS % 3 === 0 ? { keyConcurrency: 2 } : {}) })),
        ...range(1, LIMITED).map((i) => ({ queue: "limited", payload: { i } })),
        // Room for leases lost to a slow machine: a dead letter would be no verdict on the crash.
      ].map((task) => ({ ...task, maxAttempts: 20 }));
      for (let from = 0; from < tasks.length; from += 100) await admin.api.tasks.enqueueMany.mutate({ tasks: tasks.slice(from, from + 100) });

      // The stream listens through the server that dies; the news goes through the other.
      const stream = collectEvents(viaDoomed.api, { types: ["news.*"] });
      await stream.started;

      // Past the first third, runs wait for the kill: it lands with leases held through both
      // servers, however fast the machine runs the rest.
      let started = 0;
      let killed!: () => void;
      const afterKill = new Promise<void>((resolve) => (killed = resolve));
      for (const [client, agentId] of [
        [viaDoomed, "worker-a"],
        [viaSurvivor, "worker-b"],
      ] as const) {
        workers.push(
          await runWorker({
            api: client.api,
            agentId,
            queues: ["plain", "keyed", "limited"],
            concurrency: 4,
            waitMs: 500,
            heartbeatMs: 500,
            onError: () => undefined,
            handler: async (task) => {
              if (++started > tasks.length / 3) await afterKill;
              await new Promise((resolve) => setTimeout(resolve, 5));
              return task.payload;
            },
          }),
        );
      }

      const file = new Database(db, { readonly: true });
      try {
        const settled = () => file.prepare("SELECT count(*) FROM tasks WHERE status IN ('completed', 'dead_letter', 'cancelled')").pluck().get() as number;
        let published = 0;
        const publish = async (until: number) => {
          for (; published < until; published++) await admin.api.events.publish.mutate({ type: "news.item", source: "desk", payload: { i: published + 1 }, idempotencyKey: `news-${published + 1}` });
        };
        await publish(NEWS / 2);
        await vi.waitFor(() => expect(started).toBeGreaterThan(tasks.length / 3 + 4), { timeout: 60_000, interval: 20 });
        doomed.kill("SIGKILL");
        await doomed.waitForExit();
        killed();
        await publish(NEWS);

        await vi.waitFor(() => expect(settled()).toBe(tasks.length), { timeout: 90_000, interval: 100 });
        await vi.waitFor(() => expect(stream.events.length).toBeGreaterThanOrEqual(NEWS), { timeout: 30_000, interval: 50 });
        expect(stream.events.map((event) => (event.payload as { i: number }).i)).toEqual(range(1, NEWS));
        expect(stream.errors).toEqual([]);
        stream.unsubscribe();

        const rows = file.prepare("SELECT id, queue, orderingKey, keyConcurrency, status, attempts FROM tasks").all() as Array<{ id: string; queue: string; orderingKey: string | null; keyConcurrency: number; status: string; attempts: number }>;
        expect(rows.filter((row) => row.status !== "completed")).toEqual([]);
        const byId = new Map(rows.map((row) => [row.id, row]));
        const log = file.prepare("SELECT seq, type, payload FROM events WHERE type LIKE 'task.%' ORDER BY seq").all() as LogRow[];

        // Replay the log in commit order: what each key and the limited queue held at every point.
        const holding = new Map<string, number>();
        const leasedInKey = new Map<string, number>();
        let leasedLimited = 0;
        const problems: string[] = [];
        const claims = new Map<string, number>();
        const givenBack = new Map<string, number>();
        const completes = new Map<string, number>();
        const lastToken = new Map<string, number>();
        const end = (taskId: string) => {
          if (!holding.delete(taskId)) return;
          const task = byId.get(taskId)!;
          if (task.orderingKey !== null) leasedInKey.set(task.orderingKey, leasedInKey.get(task.orderingKey)! - 1);
          if (task.queue === "limited") leasedLimited--;
        };
        for (const event of log) {
          const payload = JSON.parse(event.payload) as { taskId: string; leaseToken?: number };
          const task = byId.get(payload.taskId);
          if (task === undefined) continue;
          const count = (map: Map<string, number>) => map.set(task.id, (map.get(task.id) ?? 0) + 1);
          switch (event.type) {
            case "task.claimed": {
              if (holding.has(task.id)) problems.push(`seq ${event.seq}: ${task.id} claimed while leased`);
              if (payload.leaseToken! <= (lastToken.get(task.id) ?? 0)) problems.push(`seq ${event.seq}: ${task.id} leased with token ${payload.leaseToken}, not above ${lastToken.get(task.id)}`);
              lastToken.set(task.id, payload.leaseToken!);
              holding.set(task.id, payload.leaseToken!);
              count(claims);
              if (task.orderingKey !== null) {
                const leased = (leasedInKey.get(task.orderingKey) ?? 0) + 1;
                leasedInKey.set(task.orderingKey, leased);
                if (leased > task.keyConcurrency) problems.push(`seq ${event.seq}: ${leased} of key ${task.orderingKey} leased (keyConcurrency ${task.keyConcurrency})`);
              }
              if (task.queue === "limited" && ++leasedLimited > LIMIT) problems.push(`seq ${event.seq}: ${leasedLimited} of the limited queue leased`);
              break;
            }
            case "task.completed":
              count(completes);
              end(task.id);
              break;
            case "task.released":
              count(givenBack);
              end(task.id);
              break;
            case "task.failed":
            case "task.lease_expired":
            case "task.dead_lettered":
            case "task.cancelled":
              end(task.id);
              break;
          }
        }
        for (const task of rows) {
          if (completes.get(task.id) !== 1) problems.push(`${task.id} completed ${completes.get(task.id) ?? 0} times`);
          // Attempts count the runs not given back (a release, or a claim whose answer never arrived, is not charged).
          const runs = (claims.get(task.id) ?? 0) - (givenBack.get(task.id) ?? 0);
          if (task.attempts !== runs) problems.push(`${task.id}: attempts ${task.attempts}, runs charged ${runs}`);
        }
        expect(problems).toEqual([]);
        // The survivor took over: the doomed server's stream and workers went on through it.
        expect((await admin.api.health.query()).status).toBe("ok");
      } finally {
        file.close();
      }
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
      await Promise.all([admin.close(), viaDoomed.close(), viaSurvivor.close()]);
    }
  });
});
