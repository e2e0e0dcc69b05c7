// Helpers shared by the benchmark scripts: child processes that are always cleaned up, free
// loopback ports, waiting for a server to answer, and the lifecycle bookkeeping (duplicates, lost).
import { spawn } from "node:child_process";
import { createServer } from "node:net";

/** Every child we started and that has not exited yet. Killed on any exit of this process. */
const live = new Set();
let hooksInstalled = false;

function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal} received, stopping child processes\n`);
      killAll();
      process.exit(130);
    });
  }
}

export function killAll() {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

/**
 * Starts a child process and keeps the tail of its output. The returned object has
 * `exited` (a promise of { code, signal }), `stdout()`/`stderr()` (tails), `nextLine()`,
 * `ask(line)` (stdin piped) and `stop()`.
 */
export function startChild(command, args, options = {}) {
  installHooks();
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  live.add(child);
  const keep = 256 * 1024;
  let out = "";
  let err = "";
  let partial = "";
  const lineWaiters = [];
  child.stdout.on("data", (chunk) => {
    out = (out + chunk).slice(-keep);
    options.onStdout?.(chunk);
    partial += chunk;
    for (let end = partial.indexOf("\n"); end >= 0; end = partial.indexOf("\n")) {
      const line = partial.slice(0, end);
      partial = partial.slice(end + 1);
      lineWaiters.shift()?.(line);
    }
  });
  child.stderr.on("data", (chunk) => {
    err = (err + chunk).slice(-keep);
  });
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.on("error", (error) => {
      live.delete(child);
      err += `\nspawn error: ${error.message}`;
      resolve({ code: -1, signal: null, error });
    });
  });
  let exitInfo;
  exited.then((info) => (exitInfo = info));
  return {
    pid: child.pid,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    stdout: () => out,
    stderr: () => err,
    /** The next line the child prints (lines printed before this call are not waited for). */
    nextLine: () => new Promise((resolve) => lineWaiters.push(resolve)),
    /** Writes `line` to the child's stdin (started with stdio[0] "pipe") and resolves with its next line. */
    ask(line) {
      const answer = new Promise((resolve) => lineWaiters.push(resolve));
      child.stdin.write(`${line}\n`);
      return answer;
    },
    /** SIGTERM, then SIGKILL after `graceMs`. Resolves with how it ended. */
    async stop(graceMs = 10_000) {
      if (exitInfo) return exitInfo;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const info = await exited;
      clearTimeout(timer);
      return info;
    },
    kill() {
      child.kill("SIGKILL");
    },
  };
}

/**
 * Runs a child to completion within `timeoutMs` and parses the last stdout line as JSON.
 * Throws with the child's stderr when it fails, times out or prints no JSON.
 */
export async function runJsonChild(command, args, { timeoutMs, label, ...options }) {
  const child = startChild(command, args, options);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill();
  }, timeoutMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  if (timedOut) throw new Error(`${label}: timed out after ${Math.round(timeoutMs / 1000)} s\n${tail(child.stderr())}`);
  if (code !== 0) throw new Error(`${label}: exited with ${code ?? signal}\n${tail(child.stderr() || child.stdout())}`);
  const lines = child.stdout().trim().split("\n");
  try {
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    throw new Error(`${label}: no JSON result on stdout\n${tail(child.stdout())}\n${tail(child.stderr())}`);
  }
}

export const tail = (text, lines = 15) => text.trim().split("\n").slice(-lines).join("\n");

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls GET url until it answers 2xx, the child exits, or `timeoutMs` passes. */
export async function waitHealthy(url, child, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (child.exitInfo) {
      throw new Error(`server exited during start-up (${child.exitInfo.code ?? child.exitInfo.signal})\n${tail(child.stderr() || child.stdout())}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.text();
      if (response.ok) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = error.message;
    }
    await sleep(100);
  }
  throw new Error(`server did not become healthy within ${timeoutMs} ms (${last})\n${tail(child.stderr() || child.stdout())}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `worker(i, w)` for i in [0, count) with `concurrency` loops, like the load generator. */
export async function pool(count, concurrency, worker) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (;;) {
        const i = next++;
        if (i >= count) return;
        await worker(i, w);
      }
    }),
  );
}

/** Bookkeeping of one lifecycle run, with the same definitions as lifecycle-load.mjs. */
export class Lifecycle {
  ids = new Set();
  done = new Set();
  duplicates = 0;
  enqueued(id) {
    this.ids.add(id);
  }
  completed(id) {
    if (this.done.has(id)) this.duplicates++;
    this.done.add(id);
  }
  result(N, C, enqueueS, lifeS, extra = {}) {
    return {
      N,
      C,
      enqueuePerS: Math.round(N / enqueueS),
      claimCompletePerS: Math.round(this.done.size / lifeS),
      completed: this.done.size,
      duplicates: this.duplicates,
      lost: [...this.ids].filter((id) => !this.done.has(id)).length,
      enqueueS: round(enqueueS, 3),
      claimCompleteS: round(lifeS, 3),
      ...extra,
    };
  }
}

export const round = (x, digits = 2) => (x == null || !Number.isFinite(x) ? x : Math.round(x * 10 ** digits) / 10 ** digits);

/** Monotonic time in microseconds: the clock V8's CPU profiles use, shared by all processes on Linux. */
export const monoUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * The lifecycle load through any API: enqueue N tasks with C concurrent callers, then C agents
 * claim → complete until nothing is left. `api.claim(agentId)` returns a task or null. With
 * `api.completeAndClaim(settle)` (returns the next task or null), each complete claims the next.
 * `payload(i)` and `result()` make what is enqueued and what a complete reports (default: a number
 * and `{ ok: true }`). `betweenPhases()`, awaited after the last enqueue and before the first claim
 * (outside both timings), lets a caller look at the database as the claim phase finds it. Returns
 * the Lifecycle bookkeeping and the two phase durations in seconds.
 */
export async function runLifecycle(api, N, C, { payload = (i) => ({ i }), result = () => ({ ok: true }), betweenPhases = async () => {} } = {}) {
  const life = new Lifecycle();
  let t = performance.now();
  await pool(N, C, async (i) => {
    const task = await api.enqueue({ queue: "default", payload: payload(i), priority: i % 10 });
    life.enqueued(task.id);
  });
  const enqueueS = (performance.now() - t) / 1000;
  await betweenPhases();
  t = performance.now();
  await Promise.all(
    Array.from({ length: C }, async (_, w) => {
      const agentId = `agent-${w}`;
      if (api.completeAndClaim) {
        // A worker's loop with the combined call: claim once, then each complete claims the next.
        for (let task = await api.claim(agentId); task; ) {
          life.completed(task.id);
          task = await api.completeAndClaim({ taskId: task.id, agentId, leaseToken: task.leaseToken, result: result() });
        }
        return;
      }
      for (;;) {
        const task = await api.claim(agentId);
        if (!task) return;
        life.completed(task.id);
        await api.complete({ taskId: task.id, agentId, leaseToken: task.leaseToken, result: result() });
      }
    }),
  );
  return { life, enqueueS, lifeS: (performance.now() - t) / 1000 };
}

/**
 * Text an agent's task might carry: 8-17 words of a 3,000-word made-up vocabulary, Zipf-distributed
 * as words of natural language are, from a fixed seed (every run and system sees the same texts).
 * Pre-execution recall ranks memories by the words a task shares with them: numbers alone, as
 * `{ i }` payloads give it, leave it almost nothing to match.
 */
export function textMaker(seed = 7) {
  // Park-Miller: 48271 · (2^31 − 1) < 2^53, so every step is exact and the period is 2^31 − 2.
  let state = seed;
  const random = () => (state = (state * 48271) % 2147483647) / 2147483647;
  const syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "xe", "zi", "po", "qu", "se"];
  const vocabulary = Array.from({ length: 3000 }, (_, i) => {
    let word = "";
    for (let k = i + 7; ; k = Math.floor(k / 12)) {
      word += syllables[k % 12];
      if (k < 12) return word;
    }
  });
  const word = () => vocabulary[Math.min(vocabulary.length - 1, Math.floor(Math.exp(random() * Math.log(vocabulary.length))) - 1)];
  return () => Array.from({ length: 8 + Math.floor(random() * 10) }, word).join(" ");
}

/**
 * The text payloads and results of the runs with words for recall to rank (`payload(i)` and
 * `result()` for runLifecycle): task i's instruction and its result come from two makers apart, so
 * they are the same in every run and system whatever order tasks finish in.
 */
export function textPayloads() {
  const instruction = textMaker(7);
  const summary = textMaker(11);
  return { payload: () => ({ instruction: instruction() }), result: () => ({ summary: summary() }) };
}
