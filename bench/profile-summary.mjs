// Summarises a V8 .cpuprofile (node --cpu-prof) over a time window: self time by area, the top
// functions by self time, and the inclusive time of our own functions (dist/src).
//
// better-sqlite3's native calls do not appear as frames of their own: the time SQLite spends in a
// statement (and in the fsync of a COMMIT) is self time of the JS function that called it. So:
//  - self time of a *Store method in dist/src ≈ time inside its SQL statement;
//  - self time of better-sqlite3's `sqliteTransaction` ≈ BEGIN IMMEDIATE/COMMIT (incl. fsync)
//    when it is the outermost transaction, SAVEPOINT/RELEASE when nested.
//
// usage: node bench/profile-summary.mjs FILE.cpuprofile [fromUs toUs]   (monotonic µs, as process.hrtime)
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const OURS = "/dist/src/";

function shortUrl(url) {
  if (!url) return "";
  const ours = url.indexOf(OURS);
  if (ours >= 0) return url.slice(ours + 1);
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) return url.slice(nm + "/node_modules/".length);
  return url.replace(/^file:\/\//, "");
}

function packageOf(url) {
  const nm = url.lastIndexOf("/node_modules/");
  if (nm < 0) return null;
  const parts = url.slice(nm + "/node_modules/".length).split("/");
  return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
}

const SPECIAL = new Set(["(idle)", "(garbage collector)", "(program)", "(root)"]);

/** For a frame without a url (a native function such as writev, or code made by `new Function`, e.g. zod's
 * generated parsers), the nearest caller that has one: its time belongs to that caller's area. */
function callerWithUrl(node, parentOf) {
  for (let p = parentOf.get(node.id); p; p = parentOf.get(p.id)) if (p.callFrame.url) return p;
  return null;
}

function area(node, parentOf) {
  const { functionName, url } = node.callFrame;
  if (functionName === "(idle)") return "idle (event loop waiting for I/O)";
  if (functionName === "(garbage collector)") return "garbage collector";
  if (functionName === "(program)") return "V8/native, no JS frame ((program))";
  if (!url && !SPECIAL.has(functionName)) {
    const caller = callerWithUrl(node, parentOf);
    if (caller) return area(caller, parentOf);
  }
  if (functionName === "sqliteTransaction") {
    let nested = false;
    for (let p = parentOf.get(node.id); p; p = parentOf.get(p.id)) if (p.callFrame.functionName === "sqliteTransaction") nested = true;
    return nested ? "SQLite SAVEPOINT/RELEASE (nested tx per write)" : "SQLite BEGIN IMMEDIATE/COMMIT (incl. fsync)";
  }
  if (url.includes(OURS)) {
    if (/-store\.js$/.test(url)) return "our stores: SQL statements (native SQLite inside)";
    return "our code (dist/src), other";
  }
  const pkg = packageOf(url);
  if (pkg) return pkg === "better-sqlite3" ? "better-sqlite3 JS wrappers" : pkg;
  if (url.startsWith("node:")) {
    if (/http|_http|net|stream|undici|fetch/.test(url)) return "node core: http/net/streams";
    return "node core: other";
  }
  return url ? "other" : "native (no url)";
}

const frameKey = (node) => `${node.callFrame.functionName || "(anonymous)"} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
function key(node, parentOf) {
  const { functionName, url } = node.callFrame;
  if (url || SPECIAL.has(functionName)) return frameKey(node);
  const caller = callerWithUrl(node, parentOf);
  return `${functionName || "(anonymous)"} [native or generated, called from ${caller ? frameKey(caller) : "?"}]`;
}

/** { windowMs, samples, areas[], topSelf[], topOursInclusive[] } for samples in [fromUs, toUs]. */
export function summarizeProfile(profile, { fromUs = -Infinity, toUs = Infinity, top = 15, intervalUs = 1000 } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);

  // Count samples per leaf node inside the window, weighting each by its interval.
  const weight = new Map();
  let t = profile.startTime;
  let total = 0;
  let samples = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if (t < fromUs || t > toUs) continue;
    const dt = profile.timeDeltas[i + 1] ?? 0; // time until the next sample is taken
    const w = Math.max(0, Math.min(dt, 100_000)) || 1000;
    weight.set(profile.samples[i], (weight.get(profile.samples[i]) ?? 0) + w);
    total += w;
    samples++;
  }

  const areas = new Map();
  const self = new Map();
  const inclusive = new Map();
  for (const [id, w] of weight) {
    const node = byId.get(id);
    const a = area(node, parentOf);
    areas.set(a, (areas.get(a) ?? 0) + w);
    const k = key(node, parentOf);
    self.set(k, (self.get(k) ?? 0) + w);
    const seen = new Set();
    for (let p = node; p; p = parentOf.get(p.id)) {
      if (!p.callFrame.url.includes(OURS)) continue;
      const pk = frameKey(p);
      if (seen.has(pk)) continue;
      seen.add(pk);
      inclusive.set(pk, (inclusive.get(pk) ?? 0) + w);
    }
  }
  const rows = (map, n) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), pct: Math.round((1000 * us) / total) / 10 }));
  const busy = total - (areas.get("idle (event loop waiting for I/O)") ?? 0);
  const spanUs = Math.min(toUs, profile.endTime) - Math.max(fromUs, profile.startTime);
  return {
    windowMs: Math.round(total / 1000),
    // Fewer samples than the window allows means the profiler thread itself waited for a CPU.
    samplesOfExpectedPct: Math.round((1000 * samples * intervalUs) / spanUs) / 10,
    busyPct: Math.round((1000 * busy) / total) / 10,
    samples,
    areas: rows(areas, 30),
    topSelf: rows(self, top),
    topOursInclusive: rows(inclusive, top),
  };
}

export function formatSummary(summary, title) {
  const table = (rows, header) => [`| ${header} | ms | % of window |`, "|---|---:|---:|", ...rows.map((r) => `| ${r.name.replace(/\|/g, "\\|")} | ${r.ms} | ${r.pct} |`)].join("\n");
  return [
    `${title}: ${summary.samples} samples over ${summary.windowMs} ms (${summary.samplesOfExpectedPct}% of the samples a 1 ms interval would give; ` +
      `fewer means CPU contention); the thread was busy ${summary.busyPct}% of it.`,
    "",
    "Self time by area:",
    "",
    table(summary.areas, "area"),
    "",
    "Top functions by self time:",
    "",
    table(summary.topSelf, "function (file:line)"),
    "",
    "Our functions (dist/src) by inclusive time:",
    "",
    table(summary.topOursInclusive, "function (file:line)"),
  ].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, from, to] = process.argv.slice(2);
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const summary = summarizeProfile(profile, { fromUs: from ? Number(from) : -Infinity, toUs: to ? Number(to) : Infinity, top: 20 });
  console.log(formatSummary(summary, file));
}
