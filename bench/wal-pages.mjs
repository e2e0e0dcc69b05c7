// Where the claim phase's writes go: the pages each group commit appends to the write-ahead log,
// by the table or index they belong to, a task and a commit. A commit's cost grows with its pages
// (two pwrites each, their checksum, the kernel's copy and writeback at fsync, and the checkpoint
// that later writes them again to the database file), so this says which tables and indexes a
// task's claim and complete make the writer pay for.
//
// How: the in-process lifecycle (lib.mjs runLifecycle, the throughput table's load); once every
// task is enqueued, a connection of this script opens a read transaction and keeps it, so no
// checkpoint can move the claim phase's frames out of the log (nor restart it) until the phase
// ended. The frames are then read from the -wal file (a 32-byte header, then per frame a 24-byte
// header, whose second word is non-zero on a commit's last frame, and the page). A page's owner
// comes from SQLite's dbstat table as the held snapshot sees it, or for a page the phase added,
// as the end state does. A page that was freed and reused by another table during the phase
// (a pending-task index page emptied by claims, say) counts for its first owner.
//
// usage: node bench/wal-pages.mjs [N=3000] [C=32] [next]   → a table on stdout (JSON with --json)
// `next`: workers use complete-and-claim (one write a task instead of two).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { loadConfig } from "../dist/src/config.js";
import { createLogger } from "../dist/src/logger.js";
import { createCoordination } from "../dist/src/services.js";
import { round, runLifecycle } from "./lib.mjs";

const args = process.argv.slice(2).filter((a) => a !== "--json");
const json = process.argv.includes("--json");
const N = Number(args[0] ?? 3000);
const C = Number(args[1] ?? 32);
const next = args[2] === "next";

const WAL_HEADER = 32;
const FRAME_HEADER = 24;

/** The frames in the log now that carry its current salts: { page, commit } each, in order; and the salts. */
function framesOf(walPath) {
  const wal = readFileSync(walPath);
  if (wal.length < WAL_HEADER) return { salts: "", frames: [] };
  const pageSize = wal.readUInt32BE(8);
  const salts = [wal.readUInt32BE(16), wal.readUInt32BE(20)];
  const frames = [];
  for (let at = WAL_HEADER; at + FRAME_HEADER + pageSize <= wal.length; at += FRAME_HEADER + pageSize) {
    if (wal.readUInt32BE(at + 8) !== salts[0] || wal.readUInt32BE(at + 12) !== salts[1]) break;
    frames.push({ page: wal.readUInt32BE(at), commit: wal.readUInt32BE(at + 4) !== 0 });
  }
  return { salts: salts.join(":"), frames };
}

const owners = (db) => new Map(db.prepare("SELECT pageno, name FROM dbstat").all().map((row) => [row.pageno, row.name]));

const dir = mkdtempSync(join(tmpdir(), "coordination-wal-pages-"));
try {
  const dbPath = join(dir, "wal-pages.db");
  const coordination = createCoordination(loadConfig({ env: {}, overrides: { dbPath, logLevel: "warn" } }), createLogger("warn"));
  await coordination.start();
  try {
    const held = new Database(dbPath, { readonly: true });
    try {
      report(await measure(coordination, held, dbPath));
    } finally {
      held.close();
    }
  } finally {
    await coordination.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs the lifecycle with the snapshot held from the first claim; the claim phase's frames by owner. */
async function measure(coordination, held, dbPath) {
  const { tasks } = coordination.services;
  let atHold;
  await runLifecycle(
    {
      enqueue: (input) => tasks.enqueue(input),
      claim: async (agentId) => (await tasks.claim({ agentId }))[0] ?? null,
      complete: (input) => tasks.complete(input),
      ...(next ? { completeAndClaim: async (input) => (await tasks.completeAndClaim(input)).next } : {}),
    },
    N,
    C,
    {
      betweenPhases: async () => {
        held.exec("BEGIN");
        const log = framesOf(`${dbPath}-wal`);
        atHold = { owners: owners(held), pages: held.pragma("page_count", { simple: true }), frames: log.frames.length, salts: log.salts };
      },
    },
  );
  const log = framesOf(`${dbPath}-wal`);
  held.exec("COMMIT");
  // A snapshot taken right after a checkpoint that copied the whole log reads none of it, and does
  // not keep the log from being started over: then the phase's first frames are gone.
  if (log.salts !== atHold.salts) throw new Error("the log was started over during the claim phase (a checkpoint had just copied all of it): run again");
  const frames = log.frames.slice(atHold.frames);
  const after = owners(held);
  const commits = frames.filter((frame) => frame.commit).length;
  const byOwner = new Map();
  for (const { page } of frames) {
    const owner = page <= atHold.pages ? (atHold.owners.get(page) ?? "(free when the phase began)") : (after.get(page) ?? "(free at the end)");
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + 1);
  }
  const rows = [...byOwner].sort((a, b) => b[1] - a[1]).map(([owner, count]) => ({ owner, pages: count, perTask: round(count / N, 3), perCommit: round(count / commits, 2) }));
  return { N, C, mode: next ? "complete-and-claim" : "claim, complete", commits, frames: frames.length, pagesPerTask: round(frames.length / N, 2), pagesPerCommit: round(frames.length / commits, 1), tasksPerCommit: round(N / commits, 1), rows };
}

function report(result) {
  if (json) return console.log(JSON.stringify(result));
  console.log(`claim phase (${result.mode}), N=${N}, C=${C}: ${result.commits} commits, ${result.frames} pages; ${result.pagesPerTask} a task, ${result.pagesPerCommit} a commit of ${result.tasksPerCommit} tasks`);
  console.log("| table or index | pages | a task | a commit |\n|---|---:|---:|---:|");
  for (const row of result.rows) console.log(`| ${row.owner} | ${row.pages} | ${row.perTask} | ${row.perCommit} |`);
}
