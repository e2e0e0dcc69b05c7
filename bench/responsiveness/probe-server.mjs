// Our server in a process of its own, watching its own event loop (perf_hooks
// monitorEventLoopDelay) and CPU. Commands on stdin, one JSON answer per line on stdout:
//   "reset"  → starts a new measurement window;
//   "quiet"  → starts a new window with the delay monitor off (its 5 ms timer costs CPU of its own);
//   "report" → { loopDelayMs: {p50, p99, max}, cpuPctOfCore, rssMiB, parkedClaims, windowS }.
// usage: node bench/responsiveness/probe-server.mjs ROOT PORT DBFILE [SETTINGS_JSON]   (prints "ready" when up)
// ROOT: the built checkout to run (this one, or an earlier version measured beside it).
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [root, port, dbPath, settings] = process.argv.slice(2);
const { loadConfig } = await import(pathToFileURL(`${root}/dist/src/config.js`).href);
const { createServer } = await import(pathToFileURL(`${root}/dist/src/server/create-server.js`).href);
const config = loadConfig({ env: {}, overrides: { host: "127.0.0.1", port: Number(port), dbPath, logLevel: "warn", ...JSON.parse(settings ?? "{}") } });
const server = createServer(config);
await server.start();

const loop = monitorEventLoopDelay({ resolution: 5 });
let window = { cpu: process.cpuUsage(), at: performance.now() };
const reset = (monitor = true) => {
  loop.reset();
  if (monitor) loop.enable();
  else loop.disable();
  window = { cpu: process.cpuUsage(), at: performance.now() };
};
reset();
const ms = (ns) => Math.round(ns / 1e4) / 100;

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "reset" || line === "quiet") {
    reset(line === "reset");
    console.log(JSON.stringify({ ok: true }));
  } else if (line === "report") {
    const cpu = process.cpuUsage(window.cpu);
    const wallUs = (performance.now() - window.at) * 1000;
    console.log(
      JSON.stringify({
        loopDelayMs: { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) },
        cpuPctOfCore: Math.round((1000 * (cpu.user + cpu.system)) / wallUs) / 10,
        rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
        // Versions before the event-woken waiters cannot tell.
        parkedClaims: server.services.waiters?.claims.size ?? null,
        windowS: Math.round(wallUs / 1e5) / 10,
      }),
    );
  }
});
process.once("SIGTERM", () => void server.stop().then(() => process.exit(0)));
console.log("ready");
