// Event fan-out benchmark: publish -> WebSocket delivery latency (p50/p99) and deliveries per
// second with many live subscribers, each on its own WebSocket connection.
//
//   npm run build && node bench/event-fanout.mjs [--subscribers 100] [--latency-events 200] [--burst-events 2000] [--durability full|normal]
//
// The server runs in a child process (as in production, it does not share an event loop with
// the clients); the subscribers and the publisher run in this process. Loopback only.
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createCoordinationClient } from "../dist/client/index.js";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

if (process.argv[2] === "--serve") {
  const { createServer, loadConfig } = await import("../dist/src/index.js");
  const config = loadConfig({ env: {}, overrides: { port: 0, dbPath: process.argv[3], logLevel: "silent", durability: process.argv[4] } });
  const server = createServer(config);
  await server.start();
  process.send({ url: server.url });
  process.on("message", async (msg) => {
    if (msg === "stop") {
      await server.stop();
      process.exit(0);
    }
  });
} else {
  await main();
}

async function main() {
  const subscribers = Number(option("subscribers", 100));
  const latencyEvents = Number(option("latency-events", 200));
  const burstEvents = Number(option("burst-events", 2000));
  const durability = option("durability", "full");
  const dir = mkdtempSync(join(tmpdir(), "coordination-fanout-"));
  const child = fork(new URL(import.meta.url).pathname, ["--serve", join(dir, "bench.db"), durability], { stdio: "inherit" });
  const { url } = await new Promise((resolve) => child.once("message", resolve));

  const publisher = createCoordinationClient({ url });
  const clients = Array.from({ length: subscribers }, () => createCoordinationClient({ url }));
  /** event key (payload.k) -> publish start time; latencies per phase; per subscriber: received count. */
  const sentAt = new Map();
  let latencies = [];
  const received = new Array(subscribers).fill(0);
  let expected = 0;
  let onProgress = () => {};
  let started = 0;
  const subscriptions = clients.map((client, i) =>
    client.api.events.onEvent.subscribe(
      { types: ["bench.*"] },
      {
        onStarted: () => started++,
        onData: ({ data }) => {
          const t0 = sentAt.get(data.payload.k);
          if (t0 !== undefined) latencies.push(performance.now() - t0);
          received[i]++;
          onProgress();
        },
        onError: (error) => console.error("subscriber", i, error.message),
      },
    ),
  );
  while (started < subscribers) await new Promise((r) => setTimeout(r, 20));
  const allReceived = () =>
    new Promise((resolve) => {
      onProgress = () => received.every((n) => n >= expected) && resolve();
      onProgress();
    });

  // 1. Latency: one event at a time, waiting until every subscriber has it before the next.
  for (let i = 0; i < latencyEvents; i++) {
    expected++;
    const done = allReceived();
    sentAt.set(`l${i}`, performance.now());
    await publisher.api.events.publish.mutate({ type: "bench.latency", source: "bench", payload: { k: `l${i}` } });
    await done;
  }
  const quiet = latencies;

  // 2. Throughput: a burst from 8 concurrent publishers; deliveries per second until all have all.
  latencies = [];
  const burstStart = performance.now();
  expected += burstEvents;
  const burstDone = allReceived();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < burstEvents) {
        const k = `b${next++}`;
        sentAt.set(k, performance.now());
        await publisher.api.events.publish.mutate({ type: "bench.burst", source: "bench", payload: { k } });
      }
    }),
  );
  const publishedMs = performance.now() - burstStart;
  await burstDone;
  const burstMs = performance.now() - burstStart;

  const summary = (samples) => {
    const sorted = [...samples].sort((a, b) => a - b);
    const pct = (p) => +sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))].toFixed(2);
    return { samples: sorted.length, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), maxMs: pct(100) };
  };
  console.log(
    JSON.stringify(
      {
        subscribers,
        durability,
        // One event in flight at a time: publish call -> onData at each subscriber.
        latency: { events: latencyEvents, ...summary(quiet) },
        burst: {
          events: burstEvents,
          deliveries: burstEvents * subscribers,
          publishMs: Math.round(publishedMs),
          allDeliveredMs: Math.round(burstMs),
          publishesPerSec: Math.round(burstEvents / (publishedMs / 1000)),
          deliveriesPerSec: Math.round((burstEvents * subscribers) / (burstMs / 1000)),
          // The same measure under the burst's load (includes queueing behind earlier events).
          latency: summary(latencies),
        },
      },
      null,
      2,
    ),
  );

  for (const s of subscriptions) s.unsubscribe();
  await Promise.all([publisher, ...clients].map((c) => c.close()));
  child.send("stop");
  await new Promise((resolve) => child.once("exit", resolve));
  rmSync(dir, { recursive: true, force: true });
}
