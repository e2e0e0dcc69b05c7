// A property over random interleavings of claims (REST and tRPC, long-polling or not), client
// disconnects and commits: every task ends pending and uncharged, or claimed by an agent whose
// answer the server handed over whole; never claimed by nobody. And an answer a client read in
// full is never taken back. The server's request log says, per request, whether its response
// was handed over (`finished`): the only thing a server can know, and what compensation acts on.
import http from "node:http";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { createServer, type CoordinationServer } from "../src/server/create-server.js";
import { makeTempDir, rest } from "./helpers/test-server.js";

interface ClaimPlan {
  transport: "rest" | "trpc";
  waitMs: 0 | 300;
  startDelayMs: number;
  /** Destroy the connection this long after sending; null reads the whole answer. */
  disconnectAfterMs: number | null;
}

interface ClaimOutcome {
  agentId: string;
  requestTag: string;
  /** The task id in an answer read in full, or null (nothing claimed, or never read). */
  received: string | null;
}

const plan = fc.record({
  tasks: fc.integer({ min: 1, max: 6 }),
  enqueueDelayMs: fc.integer({ min: 0, max: 25 }),
  oneBatch: fc.boolean(),
  claims: fc.array(
    fc.record({
      transport: fc.constantFrom("rest" as const, "trpc" as const),
      waitMs: fc.constantFrom(0 as const, 300 as const),
      startDelayMs: fc.integer({ min: 0, max: 20 }),
      disconnectAfterMs: fc.option(fc.integer({ min: 0, max: 30 }), { nil: null }),
    }),
    { minLength: 1, maxLength: 8 },
  ),
});

let server: CoordinationServer;
const logLines: Array<Record<string, unknown>> = [];
let runNumber = 0;

beforeAll(async () => {
  const dir = makeTempDir();
  const config = loadConfig({ env: {}, overrides: { port: 0, dbPath: join(dir, "c.db"), crossProcessPollMs: 10_000, memoryContextLimit: 0 } });
  const log = pino({ level: "debug" }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  server = createServer(config, log);
  await server.start();
});
afterAll(() => server.stop());

/** One claim over a real connection, destroyed on plan or read to its end. */
function claim(queue: string, agentId: string, requestTag: string, p: ClaimPlan): Promise<ClaimOutcome> {
  const { port } = new URL(server.url);
  const rest = p.transport === "rest";
  const body = rest ? undefined : JSON.stringify({ json: { agentId, queues: [queue], waitMs: p.waitMs } });
  // Tagged by X-Request-Id, which the request's log line carries: a tag in the URL would be an
  // unknown field to the REST route (a 400) and keep tRPC calls off their fast path.
  const path = rest ? `/tasks/claim/${agentId}?queue=${queue}&waitMs=${p.waitMs}` : `/trpc/tasks.claim`;
  return new Promise((resolve) => {
    const outcome: ClaimOutcome = { agentId, requestTag, received: null };
    const headers = { "x-request-id": requestTag, ...(body ? { "content-type": "application/json" } : {}) };
    const req = http.request({ host: "127.0.0.1", port, path, method: rest ? "GET" : "POST", headers, agent: false });
    const timer = p.disconnectAfterMs === null ? undefined : setTimeout(() => req.destroy(), p.disconnectAfterMs);
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        clearTimeout(timer);
        if (res.statusCode === 200) {
          const parsed = JSON.parse(text) as { id?: string; result?: { data: { json: { id: string } | null } } };
          outcome.received = rest ? (parsed.id ?? null) : (parsed.result?.data.json?.id ?? null);
        }
        resolve(outcome);
      });
      res.on("error", () => resolve(outcome));
    });
    req.on("error", () => resolve(outcome));
    req.on("close", () => setTimeout(() => resolve(outcome), 0));
    req.end(body);
  });
}

const requestLogged = (tag: string) => logLines.find((line) => line.msg === "request" && line.requestId === tag);

describe("delivery confirmation, as a property", () => {
  it("for random interleavings of claims, disconnects and commits, no task is ever claimed by nobody", async () => {
    await fc.assert(
      fc.asyncProperty(plan, async ({ tasks, enqueueDelayMs, oneBatch, claims }) => {
        const run = ++runNumber;
        const queue = `q${run}`;
        const claiming = claims.map(async (p, i) => {
          await new Promise((resolve) => setTimeout(resolve, p.startDelayMs));
          return claim(queue, `a${run}-${i}`, `${run}-${i}`, p);
        });
        await new Promise((resolve) => setTimeout(resolve, enqueueDelayMs));
        const payloads = Array.from({ length: tasks }, (_, n) => ({ queue, payload: { n } }));
        if (oneBatch) await rest(server.url, "POST", "/tasks/batch", { tasks: payloads });
        else await Promise.all(payloads.map((task) => rest(server.url, "POST", "/tasks", task)));
        const outcomes = await Promise.all(claiming);

        // A request destroyed before it was sent never reaches the server; one that did is logged
        // when its connection ends, and compensated once its claim's answer is back from the
        // writer. Read until that has settled.
        type Item = { id: string; status: string; attempts: number; leaseOwner: string | null };
        const read = async () => (await rest(server.url, "GET", `/tasks?queue=${queue}&limit=100`)).body.items as Item[];
        const holders = (list: Item[]) => list.flatMap((task) => (task.status === "claimed" ? [task.leaseOwner!] : [])).sort();
        let items = await read();
        for (;;) {
          for (const agentId of holders(items)) {
            const tag = outcomes.find((o) => o.agentId === agentId)!.requestTag;
            while (!requestLogged(tag)) await new Promise((resolve) => setTimeout(resolve, 5));
          }
          // A claim the read shows committed may not be answered on the event loop yet (the
          // writer posts its answers after the commit): until it is, its delivery is undecided and
          // it has no compensation for drain() to wait for. Wait for every claim sent so far to
          // be answered, and one macrotask for its call to reach confirm(); then drain.
          await server.services.db.handOutsSettled();
          await new Promise((resolve) => setImmediate(resolve));
          await server.services.deliveries.drain();
          const again = await read();
          const settled = JSON.stringify(holders(again)) === JSON.stringify(holders(items));
          items = again;
          if (settled) break;
        }
        expect(items).toHaveLength(tasks);
        for (const task of items) {
          if (task.status === "pending") {
            expect(task.attempts).toBe(0);
            continue;
          }
          expect(task.status).toBe("claimed");
          const holder = outcomes.find((o) => o.agentId === task.leaseOwner)!;
          const line = requestLogged(holder.requestTag)!;
          // Claimed only by an agent whose answer the server handed over whole.
          expect({ task: task.id, finished: line.finished, status: line.status }).toEqual({ task: task.id, finished: true, status: 200 });
        }
        // An answer read in full is never taken back.
        for (const outcome of outcomes.filter((o) => o.received !== null)) {
          expect(items.find((task) => task.id === outcome.received)).toMatchObject({ status: "claimed", leaseOwner: outcome.agentId });
        }
      }),
      { numRuns: 25 },
    );
    // The claims reached their routes: none was refused as a malformed request, and REST claims
    // answered tasks too (a tag in the URL once made every one of them a 400).
    const tagged = logLines.filter((line) => line.msg === "request" && typeof line.requestId === "string");
    expect(tagged.filter((line) => line.status === 400)).toEqual([]);
    expect(tagged.some((line) => String(line.url).startsWith("/tasks/claim/") && line.status === 200)).toBe(true);
  });
});
