// A HeldLease settling through a server that accepts the connection and never answers (a hung
// server), while the garbage collector runs every 50 ms: prints how the settle ended and after
// how long. Run by tests/lease-deadline.test.ts with --expose-gc (a timer that a combined abort
// signal alone refers to can be collected before it fires on Node 20).
// usage: node --expose-gc tests/helpers/lease-under-gc.mjs
import net from "node:net";
import { createCoordinationClient } from "../../dist/client/index.js";
import { HeldLease, momentNow } from "../../dist/client/lease-calls.js";

const hung = net.createServer(() => undefined); // accepts, reads nothing, answers nothing
await new Promise((resolve) => hung.listen(0, "127.0.0.1", resolve));
const client = createCoordinationClient({ url: `http://127.0.0.1:${hung.address().port}` });
const now = new Date();
const task = { id: "t1", leaseToken: 1, leaseExpiresAt: new Date(now.getTime() + 300), updatedAt: now };
const lease = new HeldLease(client.api, task, "a1", 300, () => undefined, momentNow());
const collector = setInterval(() => globalThis.gc(), 50);
const started = Date.now();
const outcome = await lease.settle((signal) => client.api.tasks.complete.mutate({ taskId: "t1", agentId: "a1", leaseToken: 1 }, { signal }));
clearInterval(collector);
console.log(JSON.stringify({ kind: outcome.kind, afterMs: Date.now() - started }));
hung.close();
process.exit(0);
