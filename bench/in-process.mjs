// (e) Our core without any transport: createCoordination (the same services, Writer with group
// commit, event log, memory) driven in-process by C concurrent async loops, the same enqueue and
// claim → complete work as the REST load. Sits between the raw SQLite ceiling and the servers:
// what is lost here is service logic + extra writes; what is lost on top of it is HTTP/tRPC/REST.
//
// usage: node bench/in-process.mjs DBFILE N C [--context LIMIT] [--next] [--text] [--no-records] [--warm] [--ordering-keys K]
//                                 [--heartbeat plain|checkpoint]
//   → prints one JSON line
// --context: memoryContextLimit (0 turns pre-execution recall off).
// --next: workers use complete-and-claim (each complete claims the next task in the same write).
// --text: payloads and results are text (lib.mjs textMaker), not numbers: what recall has to rank.
// --no-records: recordExecutions off (runs that end write no execution record).
// --warm: the lifecycle runs twice in this process and the second is measured: V8 has compiled
//   the hot code, and recall finds the first run's execution records (the same payloads), as it
//   does on a server that has been running a while. A first run's claims find nothing to recall.
// --ordering-keys: task i is enqueued with orderingKey "key-(i mod K)": with K ≥ N every task has a
//   key of its own (what a key's line costs its task), with K < C at most K tasks run at once.
// --key-concurrency W: with --ordering-keys, each task's keyConcurrency (W of a key run at once:
//   with K × W < C, at most K × W tasks run at once).
// --heartbeat: each run renews its lease once before its complete: plain, or saving a checkpoint
//   of ~200 bytes (what a save costs a run beside a heartbeat's own write).
import { parseArgs } from "node:util";
import { loadConfig } from "../dist/src/config.js";
import { createLogger } from "../dist/src/logger.js";
import { createCoordination } from "../dist/src/services.js";
import { runLifecycle, textPayloads } from "./lib.mjs";

const { positionals, values: flags } = parseArgs({
  allowPositionals: true,
  options: {
    context: { type: "string" },
    next: { type: "boolean" },
    text: { type: "boolean" },
    "no-records": { type: "boolean" },
    warm: { type: "boolean" },
    "ordering-keys": { type: "string" },
    "key-concurrency": { type: "string" },
    heartbeat: { type: "string" },
  },
});
const [dbPath, nArg, cArg] = positionals;
const N = Number(nArg ?? 3000);
const C = Number(cArg ?? 32);
const overrides = {
  dbPath,
  logLevel: "warn",
  ...(flags.context === undefined ? {} : { memoryContextLimit: Number(flags.context) }),
  ...(flags["no-records"] ? { recordExecutions: false } : {}),
};
const config = loadConfig({ env: {}, overrides });
const coordination = createCoordination(config, createLogger("warn"));
await coordination.start();
const { tasks } = coordination.services;
const orderingKeys = flags["ordering-keys"] === undefined ? 0 : Number(flags["ordering-keys"]);
if (!Number.isSafeInteger(orderingKeys) || orderingKeys < 0) throw new Error(`--ordering-keys: ${flags["ordering-keys"]} is not a count of keys (a whole number; 0: no key)`);
const keyConcurrency = flags["key-concurrency"] === undefined ? undefined : Number(flags["key-concurrency"]);
if (keyConcurrency !== undefined && (orderingKeys === 0 || !Number.isSafeInteger(keyConcurrency) || keyConcurrency < 1)) throw new Error(`--key-concurrency: ${flags["key-concurrency"]} is not a count of tasks (a whole number, 1 or more, with --ordering-keys)`);
const keyed = keyConcurrency === undefined ? {} : { keyConcurrency };
// The lifecycle's payloads carry { i }, or text whose index the key cannot be read from: a counter then.
let enqueued = 0;
const heartbeat = flags.heartbeat;
if (heartbeat !== undefined && heartbeat !== "plain" && heartbeat !== "checkpoint") throw new Error(`--heartbeat: ${heartbeat} is neither plain nor checkpoint`);
/** A checkpoint a run might save: where it got, and what it has done so far. */
const checkpointOf = (taskId) => ({ taskId, step: 3, of: 5, done: ["fetched the sources", "read them", "drafted the outline"], cursor: "p4" });
/** The run's one renewal before its complete, as --heartbeat asks. */
const renew = heartbeat === undefined ? async () => undefined : (input) => tasks.heartbeat({ taskId: input.taskId, agentId: input.agentId, leaseToken: input.leaseToken, ...(heartbeat === "checkpoint" ? { checkpoint: checkpointOf(input.taskId) } : {}) });
const api = {
  enqueue: (input) => tasks.enqueue(orderingKeys === 0 ? input : { ...input, orderingKey: `key-${enqueued++ % orderingKeys}`, ...keyed }),
  claim: async (agentId) => (await tasks.claim({ agentId }))[0] ?? null,
  complete: async (input) => {
    await renew(input);
    return tasks.complete(input);
  },
  ...(flags.next ? { completeAndClaim: async (input) => (await tasks.completeAndClaim(input)).next } : {}),
};
// Each run makes its payloads afresh, so a warm run's tasks carry the first run's texts again.
const lifecycle = () => runLifecycle(api, N, C, flags.text ? textPayloads() : {});
try {
  if (flags.warm) await lifecycle();
  const { life, enqueueS, lifeS } = await lifecycle();
  const settings = { memoryContextLimit: config.memoryContextLimit, recordExecutions: config.recordExecutions, payloads: flags.text ? "text" : "number", warm: flags.warm === true, orderingKeys, keyConcurrency: keyConcurrency ?? 1, heartbeat: heartbeat ?? "none" };
  console.log(JSON.stringify(life.result(N, C, enqueueS, lifeS, settings)));
} finally {
  await coordination.close();
}
