// Long-polling claimers that find nothing: COUNT claims with waitMs, each on its own connection,
// held until SIGTERM (or their wait ends). Prints { parked, answered } at the end.
// usage: node bench/responsiveness/parkers.mjs BASE_URL COUNT WAIT_MS
import { Agent, request } from "node:http";

const [base, countArg, waitArg] = process.argv.slice(2);
const count = Number(countArg);
const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
const open = new Set();
let answered = 0;
const claims = Array.from(
  { length: count },
  (_, i) =>
    new Promise((resolve) => {
      const body = JSON.stringify({ agentId: `parked-${i}`, queues: ["nothing-here"], waitMs: Number(waitArg) });
      const req = request(`${base}/tasks/claim`, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on("end", () => {
          answered++;
          resolve();
        });
      });
      req.on("error", () => resolve());
      req.on("close", () => open.delete(req));
      open.add(req);
      req.end(body);
    }),
);
process.once("SIGTERM", () => {
  for (const req of open) req.destroy();
});
await Promise.all(claims);
console.log(JSON.stringify({ parked: count, answered }));
