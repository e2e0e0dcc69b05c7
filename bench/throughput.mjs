// Side by side: every system of systems.mjs runs the same lifecycle, interleaved (A B C … A B C …)
// for `rounds` rounds, so a noisy neighbour hits all of them alike; the figure kept is each
// system's median round. Returns { systems: { name: { rounds: [...], median } }, ratios }.
import { systems as systemsOf } from "./systems.mjs";
import { round, sleep } from "./lib.mjs";

const median = (values) => {
  const sorted = values.filter((v) => typeof v === "number").sort((a, b) => a - b);
  return sorted.length === 0 ? null : sorted[Math.floor(sorted.length / 2)];
};

export async function throughput({ dir, N, C, rounds, timeoutMs, before, log }) {
  const runs = systemsOf({ before });
  const systems = Object.fromEntries(Object.keys(runs).map((name) => [name, { rounds: [] }]));
  for (let r = 1; r <= rounds; r++) {
    for (const [name, run] of Object.entries(runs)) {
      let result;
      try {
        result = await run({ dir, round: r, N, C, timeoutMs });
      } catch (error) {
        result = { error: error.message.split("\n")[0] };
      }
      systems[name].rounds.push(result);
      log(`round ${r}/${rounds} ${name}: ${JSON.stringify(result)}`);
      await sleep(500); // let the disk and CPU settle
    }
  }
  for (const system of Object.values(systems)) {
    const ok = system.rounds.filter((x) => !x.skipped && !x.error);
    system.skipped = system.rounds.find((x) => x.skipped)?.skipped;
    system.errors = system.rounds.filter((x) => x.error).map((x) => x.error);
    system.median = ok.length === 0 ? null : {
      enqueuePerS: median(ok.map((x) => x.enqueuePerS)),
      processedPerS: median(ok.map((x) => x.processedPerS)),
      completed: Math.min(...ok.map((x) => x.completed)),
      duplicates: Math.max(...ok.map((x) => x.duplicates)),
      lost: ok.some((x) => x.lost === null) ? null : Math.max(...ok.map((x) => x.lost)),
    };
  }
  const m = (name) => systems[name]?.median;
  const ratio = (a, b, field) => (a && b && b[field] ? round(a[field] / b[field], 2) : null);
  const rest = m("ours, REST");
  const ref = m("reference server (node:http + better-sqlite3, events)");
  const inproc = m("ours in-process");
  const inprocNext = m("ours in-process, complete-and-claim");
  const restNext = m("ours, REST with complete-and-claim");
  const restWarm = m("ours, REST, warm server");
  const refWarm = m("reference server, warm");
  const noRecall = m("ours in-process, recall off");
  const bull = m("BullMQ Worker (Redis, appendfsync always)");
  const seed = m("seed stack (FastAPI + aiosqlite)");
  const restBefore = m("ours before, REST");
  const inprocBefore = m("ours before, in-process");
  const ratios = [
    { label: "ours REST / reference server", goal: "≥ 0.9", enqueue: ratio(rest, ref, "enqueuePerS"), processed: ratio(rest, ref, "processedPerS") },
    // Both servers after one run of the same load: steady state, not start-up (systems.mjs).
    { label: "ours REST / reference server, both warm", goal: "", enqueue: ratio(restWarm, refWarm, "enqueuePerS"), processed: ratio(restWarm, refWarm, "processedPerS") },
    { label: "ours in-process / BullMQ Worker", goal: "≥ 1", enqueue: ratio(inproc, bull, "enqueuePerS"), processed: ratio(inproc, bull, "processedPerS") },
    // BullMQ's Worker fetches its next job in the script that completes the last: like for like.
    { label: "ours in-process, complete-and-claim / BullMQ Worker", goal: "≥ 1", enqueue: null, processed: ratio(inprocNext, bull, "processedPerS") },
    // Two requests per task instead of three: not the reference server's pattern, shown beside it.
    { label: "ours REST with complete-and-claim / reference server", goal: "", enqueue: null, processed: ratio(restNext, ref, "processedPerS") },
    { label: "ours REST / seed stack", goal: "", enqueue: ratio(rest, seed, "enqueuePerS"), processed: ratio(rest, seed, "processedPerS") },
    ...(before
      ? [
          { label: "ours REST / ours before", goal: "", enqueue: ratio(rest, restBefore, "enqueuePerS"), processed: ratio(rest, restBefore, "processedPerS") },
          { label: "ours in-process / ours before", goal: "", enqueue: ratio(inproc, inprocBefore, "enqueuePerS"), processed: ratio(inproc, inprocBefore, "processedPerS") },
        ]
      : []),
  ];
  const recallCost = inproc && noRecall?.processedPerS ? round(1 - inproc.processedPerS / noRecall.processedPerS, 2) : null;
  const text = m("ours in-process, text payloads");
  const textNoRecall = m("ours in-process, text payloads, recall off");
  const textRecallCost = text && textNoRecall?.processedPerS ? round(1 - text.processedPerS / textNoRecall.processedPerS, 2) : null;
  return { systems, ratios, recallCost, textRecallCost };
}
