// Recall's cost a claim as the memory grows: the compiled store and recall driven directly, on one
// thread, over a file of N memories that share the claim's words. Recall must not grow with the
// store (#9); a change to it is timed here at 10,000 and 100,000 before it lands.
//
// usage: node bench/recall-scale.mjs [N] [notes|records]   (after npm run build)
//   notes: N notes and lessons sharing the claim's three words; records: N execution records.
//   → ms a claim, warm (the recall cache kept) and right after a note or delete (the cache dropped)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations } from "../dist/src/db/migrate.js";
import { openDatabase } from "../dist/src/db/open-database.js";
import { statementsFor } from "../dist/src/db/statements.js";
import { MemoryChanges } from "../dist/src/memory/memory-changes.js";
import { MemoryRecall } from "../dist/src/memory/memory-recall.js";
import { MemoryStore } from "../dist/src/memory/memory-store.js";

const N = Number(process.argv[2] ?? 100_000);
const kind = process.argv[3] ?? "notes";
const dir = mkdtempSync(join(tmpdir(), "coordination-recall-scale-"));
try {
  const db = openDatabase({ dbPath: join(dir, "r.db"), busyTimeoutMs: 1000, durability: "normal" });
  applyMigrations(db);
  const memories = new MemoryStore(statementsFor(db));
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < N; i++) {
      memories.insert(
        {
          id: `m${i}`,
          kind: kind === "notes" ? "note" : "execution",
          content: `billing note ${i} about invoice ${i % 97} and refund`,
          agentId: null,
          queue: "billing",
          capability: null,
          taskId: null,
          outcome: kind === "notes" ? null : "completed",
          durationMs: null,
          tags: "[]",
          data: "{}",
          idempotencyKey: null,
        },
        now - (N - i) * 1000,
      );
    }
  })();
  const changes = new MemoryChanges();
  const recall = new MemoryRecall(memories, null, 8 << 20, changes);
  const claim = { id: "t1", queue: "billing", capability: null, payload: { text: "invoice refund" }, earlierRuns: false };
  // Each recall in a read transaction of its own, as the reader thread runs it.
  const once = () => db.transaction(() => recall.recallForTask(claim, 5, { bytes: 8 << 20 }))();
  const time = (invalidate) => {
    once();
    const rounds = 200;
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      if (invalidate) changes.changed();
      once();
    }
    return (performance.now() - started) / rounds;
  };
  console.log(JSON.stringify({ N, kind, warmMsPerClaim: Number(time(false).toFixed(3)), afterChangeMsPerClaim: Number(time(true).toFixed(3)) }));
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
