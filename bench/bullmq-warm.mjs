// BullMQ's Worker warm: the shared driver (../shared/bench/peers/bullmq.mjs, unchanged) run twice
// in this one process, each time on a queue of its own, like "ours in-process, warm": the second
// run finds V8's code for BullMQ and ioredis compiled. Each import of the driver with a query of
// its own is a new module instance, so the driver runs again; both print their JSON line, and
// the bench reads the last one (runJsonChild).
//
// usage (from the project root): node bench/bullmq-warm.mjs REDIS_PORT N C
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { SHARED } from "./systems.mjs";

const [port, n, c] = process.argv.slice(2);
process.argv = [process.argv[0], process.argv[1], port, n, c, "bullmq warm", "worker"];
const driver = pathToFileURL(resolve(SHARED, "peers/bullmq.mjs")).href;
for (const run of [1, 2]) await import(`${driver}?run=${run}`);
