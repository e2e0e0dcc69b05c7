// Crash proofs with real processes: the server killed with SIGKILL in the middle of mixed load,
// three times over one file, then a worker process killed mid-task. What must hold: no
// acknowledged enqueue lost, no task completed twice, no completed task back to pending, every
// orphaned claim back after its lease, a killed worker's task run again and completed once.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import Database from "better-sqlite3";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CliProcess, killAllCli } from "./helpers/cli-process.js";
import { http } from "./helpers/secure-server.js";
import { makeTempDir } from "./helpers/test-server.js";

afterEach(killAllCli);

const SETTINGS = { COORDINATION_PORT: "0", COORDINATION_LEASE_MS: "1000", COORDINATION_LEASE_SWEEP_MS: "100" };
const until = (condition: () => boolean | Promise<boolean>, timeout = 30_000) =>
  vi.waitFor(async () => expect(await condition()).toBe(true), { timeout, interval: 50 });

/** A server process on `db`; resolves with its URL once it listens. */
async function serve(db: string, env: Record<string, string> = {}): Promise<{ cli: CliProcess; url: string }> {
  const cli = new CliProcess({ env: { ...SETTINGS, ...env, COORDINATION_DB_PATH: db } });
  return { cli, url: await cli.waitForUrl() };
}

describe("kill -9 of the server under load", () => {
  it("three times: no acknowledged write lost, no task completed twice, orphaned claims come back", async () => {
    const db = join(makeTempDir(), "crash.db");
    const enqueued = new Set<string>();
    /** Acknowledged completes per task id, across every round. */
    const completions = new Map<string, number>();

    for (let round = 0; round < 3; round++) {
      const { cli, url } = await serve(db);
      let stop = false;
      const producers = Array.from({ length: 8 }, async (_, p) => {
        for (let i = 0; !stop; i++) {
          const answer = await http(url, "POST", "/tasks", { body: { queue: "load", payload: { round, p, i } } }).catch(() => undefined);
          if (answer?.status === 200) enqueued.add(answer.body.id);
        }
      });
      const consumers = Array.from({ length: 8 }, async (_, c) => {
        while (!stop) {
          const claimed = await http(url, "POST", "/tasks/claim", { body: { agentId: `consumer-${c}`, queues: ["load"], context: false } }).catch(() => undefined);
          if (claimed?.status !== 200 || claimed.body === null) continue;
          const task = claimed.body as { id: string; leaseToken: number };
          const done = await http(url, "POST", `/tasks/${task.id}/complete`, { body: { agentId: `consumer-${c}`, leaseToken: task.leaseToken, result: { by: c } } }).catch(() => undefined);
          if (done?.status === 200) completions.set(task.id, (completions.get(task.id) ?? 0) + 1);
        }
      });
      // Under load for a while (enough acknowledged writes to matter), then SIGKILL mid-flight.
      await until(() => enqueued.size >= (round + 1) * 150 && completions.size >= (round + 1) * 50);
      cli.child.kill("SIGKILL");
      await cli.exited;
      stop = true;
      await Promise.all([...producers, ...consumers]);
    }

    // A last server: everything acknowledged is there; drain what is left, orphaned claims included.
    const { url } = await serve(db);
    const byId = new Map<string, { status: string }>();
    for (let cursor: string | undefined; ; ) {
      const page = await http(url, "GET", `/tasks?queue=load&limit=500${cursor ? `&cursor=${cursor}` : ""}`);
      for (const task of page.body.items) byId.set(task.id, task);
      cursor = page.body.nextCursor;
      if (!cursor) break;
    }
    for (const id of enqueued) expect(byId.has(id), `acknowledged enqueue ${id}`).toBe(true);
    for (const [id, count] of completions) {
      expect(count, `task ${id} completed`).toBe(1);
      expect(byId.get(id)?.status, `task ${id}`).toBe("completed");
    }
    // Claims taken before a kill expire (1 s leases) and go back to the queue: all of it drains.
    for (;;) {
      const claimed = await http(url, "POST", "/tasks/claim", { body: { agentId: "drainer", queues: ["load"], waitMs: 1500, context: false } });
      if (claimed.status !== 200 || claimed.body === null) {
        const stats = await http(url, "GET", "/stats/tasks");
        const load = stats.body.queues.find((q: { queue: string }) => q.queue === "load");
        if (load.counts.pending === 0 && load.counts.claimed === 0) break;
        continue;
      }
      const done = await http(url, "POST", `/tasks/${claimed.body.id}/complete`, { body: { agentId: "drainer", leaseToken: claimed.body.leaseToken } });
      expect(done.status).toBe(200);
      expect(completions.has(claimed.body.id), `task ${claimed.body.id} completed twice`).toBe(false);
    }
  }, 120_000);
});

describe("kill -9 of the server while an auto-ack poll's answer is on its way", () => {
  it("the batch is the agent's next poll through another server once its hold ran out: each message once", async () => {
    const db = join(makeTempDir(), "poll-crash.db");
    // leaseMs is how long a take waits for its answer's confirmation.
    const env = { COORDINATION_LEASE_MS: "1000", COORDINATION_LEASE_SWEEP_MS: "100" };
    const first = await serve(db, env);
    // 120 direct messages of 64 KB: an answer of ~7.7 MB, more than the kernel takes from a
    // server for a client that reads nothing, so its answer cannot be handed over whole.
    const text = "x".repeat(64 * 1024);
    for (let i = 0; i < 120; i++) {
      expect((await http(first.url, "POST", "/events", { body: { type: "work.item", source: "producer", target: "mailbox-agent", payload: { i, text } } })).status).toBe(200);
    }
    const { hostname, port } = new URL(first.url);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.pause();
    socket.on("error", () => undefined);
    socket.write(`GET /events/mailbox-agent?limit=1000 HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`);
    // The take committed (the cursor moved past the batch, held until confirmed), the answer not
    // confirmed: the moment a server dies with an answer on its way.
    const file = new Database(db, { readonly: true });
    try {
      await until(() => (file.prepare("SELECT mailboxCursor FROM subscriptions WHERE agentId = 'mailbox-agent'").pluck().get() as number | undefined ?? 0) > 0);
      expect(file.prepare("SELECT count(*) FROM poll_takes").pluck().get()).toBe(1);
      first.cli.kill("SIGKILL");
      await first.cli.waitForExit();
      socket.destroy();

      // The agent goes on through the next server at once: newer messages come meanwhile.
      const second = await serve(db, env);
      for (let i = 120; i < 123; i++) {
        expect((await http(second.url, "POST", "/events", { body: { type: "work.item", source: "producer", target: "mailbox-agent", payload: { i, text: "" } } })).status).toBe(200);
      }
      const seen: number[] = [];
      await until(async () => {
        const polled = await http(second.url, "GET", "/events/mailbox-agent?limit=1000");
        for (const event of polled.body) seen.push(event.payload.i);
        return seen.length >= 123;
      });
      // Each message once: the lost batch came back whole (when its hold ran out, leaseMs after
      // the take), and what the agent had read since did not come again.
      expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: 123 }, (_, i) => i));
      expect((await http(second.url, "GET", "/events/mailbox-agent?limit=1000")).body).toEqual([]);
      await until(() => file.prepare("SELECT count(*) FROM poll_takes").pluck().get() === 0);
    } finally {
      file.close();
    }
  }, 120_000);
});

describe("kill -9 of a worker process mid-task", () => {
  it("its task is claimed again after the lease and completed once", async () => {
    // A 4 s lease, renewed every third of it: after the kill, seconds of it are left to see it held
    // however slowly the machine runs the next steps.
    const { url } = await serve(join(makeTempDir(), "worker-crash.db"), { COORDINATION_LEASE_MS: "4000" });
    const task = (await http(url, "POST", "/tasks", { body: { queue: "crash", payload: { job: 1 } } })).body as { id: string };
    const script = fileURLToPath(new URL("./helpers/worker-process.mjs", import.meta.url));
    const worker = spawn(process.execPath, [script, url, "doomed-worker"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    worker.stdout!.on("data", (chunk) => (out += chunk));
    await until(() => out.includes(`running ${task.id}`));
    worker.kill("SIGKILL");
    await new Promise((resolve) => worker.once("exit", resolve));
    const held = (await http(url, "GET", `/tasks/${task.id}`)).body;
    expect([held.status, held.leaseOwner]).toEqual(["claimed", "doomed-worker"]);
    // After the lease (4 s) runs out with no heartbeat, another agent gets it.
    const again = await http(url, "POST", "/tasks/claim", { body: { agentId: "rescuer", queues: ["crash"], waitMs: 10_000 } });
    expect([again.status, again.body.id, again.body.attempts]).toEqual([200, task.id, 2]);
    const done = await http(url, "POST", `/tasks/${task.id}/complete`, { body: { agentId: "rescuer", leaseToken: again.body.leaseToken, result: { ok: true } } });
    expect([done.status, done.body.status, done.body.settledLease.agentId]).toEqual([200, "completed", "rescuer"]);
    // The dead worker's lease can settle nothing now.
    const late = await http(url, "POST", `/tasks/${task.id}/complete`, { body: { agentId: "doomed-worker", leaseToken: held.leaseToken } });
    expect(late.body.code).toBe("LEASE_CONFLICT");
  }, 60_000);
});
