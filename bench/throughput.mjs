// Side by side: every system of systems.mjs runs the same lifecycle, interleaved (A B C … A B C …)
// for `rounds` rounds, so a noisy neighbour hits all of them alike; the figure kept is each
// system's median round. Recall's cost, the difference between two in-process runs of a few
// seconds each, moves by more from round to round on a shared machine than the goal allows (0.02
// to 0.34 in three rounds): it is measured over `recallRounds` rounds of those two systems run in
// pairs, the main rounds' and more of their own. Returns { systems: { name: { rounds: [...], median } },
// ratios, recall }.
import { systems as systemsOf } from "./systems.mjs";
import { round, sleep } from "./lib.mjs";

const median = (values) => {
  const sorted = values.filter((v) => typeof v === "number").sort((a, b) => a - b);
  return sorted.length === 0 ? null : sorted[Math.floor(sorted.length / 2)];
};

/** The two systems whose ratio is recall's cost, with pre-execution recall on and off. */
const RECALL_PAIR = ["ours in-process", "ours in-process, recall off"];

export async function throughput({ dir, N, C, rounds, recallRounds = rounds, timeoutMs, before, log }) {
  const runs = systemsOf({ before });
  const systems = Object.fromEntries(Object.keys(runs).map((name) => [name, { rounds: [] }]));
  const runOnce = async (name, r, of) => {
    let result;
    try {
      result = await runs[name]({ dir, round: r, N, C, timeoutMs });
    } catch (error) {
      result = { error: error.message.split("\n")[0] };
    }
    log(`round ${r}/${of} ${name}: ${JSON.stringify(result)}`);
    await sleep(500); // let the disk and CPU settle
    return result;
  };
  for (let r = 1; r <= rounds; r++) {
    for (const name of Object.keys(runs)) systems[name].rounds.push(await runOnce(name, r, rounds));
  }
  // Recall's cost: the main rounds' pairs, then more pairs of those two systems alone.
  const pairs = Array.from({ length: rounds }, (_, i) => RECALL_PAIR.map((name) => systems[name]?.rounds[i]));
  for (let r = rounds + 1; r <= recallRounds && RECALL_PAIR.every((name) => runs[name]); r++) {
    const pair = [];
    for (const name of RECALL_PAIR) pair.push(await runOnce(name, r, recallRounds));
    pairs.push(pair);
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
  const inprocNoRecords = m("ours in-process, execution records off");
  const restNext = m("ours, REST with complete-and-claim");
  const restWarm = m("ours, REST, warm server");
  const refWarm = m("reference server, warm");
  const refThread = m("reference server, statements on a thread");
  const refThreadWarm = m("reference server, statements on a thread, warm");
  const bull = m("BullMQ Worker (Redis, appendfsync always)");
  const inprocWarm = m("ours in-process, warm");
  const inprocWarmNoRecall = m("ours in-process, recall off, warm");
  const bullWarm = m("BullMQ Worker, warm");
  const seed = m("seed stack (FastAPI + aiosqlite)");
  const restBefore = m("ours before, REST");
  const inprocBefore = m("ours before, in-process");
  const ratios = [
    { label: "ours REST / reference server", goal: "≥ 0.9", enqueue: ratio(rest, ref, "enqueuePerS"), processed: ratio(rest, ref, "processedPerS") },
    // Both servers after one run of the same load: steady state, not start-up (systems.mjs).
    { label: "ours REST / reference server, both warm", goal: "", enqueue: ratio(restWarm, refWarm, "enqueuePerS"), processed: ratio(restWarm, refWarm, "processedPerS") },
    // What the design alone costs (bench/reference-threaded.mjs): the reference server with its statements on a thread.
    { label: "reference server, statements on a thread / reference server", goal: "", enqueue: ratio(refThread, ref, "enqueuePerS"), processed: ratio(refThread, ref, "processedPerS") },
    { label: "the same, both warm", goal: "", enqueue: ratio(refThreadWarm, refWarm, "enqueuePerS"), processed: ratio(refThreadWarm, refWarm, "processedPerS") },
    // What ours costs beyond the design: the work the product does per request that the reference does not.
    { label: "ours REST / reference server, statements on a thread", goal: "", enqueue: ratio(rest, refThread, "enqueuePerS"), processed: ratio(rest, refThread, "processedPerS") },
    { label: "ours in-process / BullMQ Worker", goal: "≥ 1", enqueue: ratio(inproc, bull, "enqueuePerS"), processed: ratio(inproc, bull, "processedPerS") },
    // Both a second run in their process (in-process.mjs --warm, bullmq-warm.mjs): steady state.
    { label: "ours in-process / BullMQ Worker, both warm", goal: "", enqueue: ratio(inprocWarm, bullWarm, "enqueuePerS"), processed: ratio(inprocWarm, bullWarm, "processedPerS") },
    // BullMQ's Worker fetches its next job in the script that completes the last: like for like.
    { label: "ours in-process, complete-and-claim / BullMQ Worker", goal: "≥ 1", enqueue: null, processed: ratio(inprocNext, bull, "processedPerS") },
    // Not the default: what writing an execution record per run costs (config recordExecutions).
    { label: "ours in-process, execution records off / BullMQ Worker", goal: "", enqueue: null, processed: ratio(inprocNoRecords, bull, "processedPerS") },
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
  const recall = recallOf(pairs);
  const text = m("ours in-process, text payloads");
  const textNoRecall = m("ours in-process, text payloads, recall off");
  const costOf = (on, off) => (on && off?.processedPerS ? round(1 - on.processedPerS / off.processedPerS, 2) : null);
  return {
    systems,
    ratios,
    recallCost: recall.cost,
    recall,
    textRecallCost: costOf(text, textNoRecall),
    // Warm, recall finds the first run's records: what it costs when there is something to recall.
    warmRecallCost: costOf(inprocWarm, inprocWarmNoRecall),
  };
}

/**
 * Recall's cost over rounds run in pairs [on, off]: 1 − median(on) / median(off), claim+complete/s
 * of the rounds where both ran (the figure kept, as for the other ratios); each pair's own
 * 1 − on / off, and their median (the paired estimate, beside it).
 */
function recallOf(pairs) {
  const ok = pairs.filter((pair) => pair.every((x) => typeof x?.processedPerS === "number"));
  if (ok.length === 0) return { cost: null, pairs: 0, byRound: [] };
  const on = median(ok.map(([x]) => x.processedPerS));
  const off = median(ok.map(([, x]) => x.processedPerS));
  const byRound = ok.map(([a, b]) => round(1 - a.processedPerS / b.processedPerS, 2));
  return { cost: round(1 - on / off, 2), pairs: ok.length, on, off, byRound, pairedMedian: median(byRound) };
}
