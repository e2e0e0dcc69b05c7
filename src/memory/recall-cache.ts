// What recall may reuse between claims. Recall runs on every claim; without these it was a third
// of the in-process claim+complete time (bench/RESULTS.md, 2026-11-29).
//  - Probes of common terms (a queue name, a frequent word): their newest matches change with
//    every memory written, but a claim's context does not need the last second of them. Kept for
//    PROBE_TTL_MS, per term and filter; rare terms are looked up every time (bm25, exact).
//  - Memory rows: written once and never updated, so a row once read stays good. Retention deletes
//    old ones (src/retention/): a pruned row can come back from a probe at most PROBE_TTL_MS old.
import type { MemoryRow, ScoringFields } from "./memory-store.js";

/** How stale a common term's candidate list may be, in ms. */
export const PROBE_TTL_MS = 1000;
const MAX_PROBES = 1000;
const MAX_ROWS = 2000;

export class RecallCache {
  private readonly probes = new Map<string, { at: number; rows: ScoringFields[] }>();
  private readonly rows = new Map<number, MemoryRow>();

  /** A common term's candidates probed less than PROBE_TTL_MS before `now`, or undefined. */
  probe(key: string, now: number): ScoringFields[] | undefined {
    const hit = this.probes.get(key);
    if (hit === undefined) return undefined;
    if (now - hit.at < PROBE_TTL_MS) return hit.rows;
    this.probes.delete(key);
    return undefined;
  }

  keepProbe(key: string, now: number, rows: ScoringFields[]): void {
    if (this.probes.size >= MAX_PROBES) this.probes.delete(this.probes.keys().next().value!);
    this.probes.set(key, { at: now, rows });
  }

  row(seq: number): MemoryRow | undefined {
    return this.rows.get(seq);
  }

  keepRow(row: MemoryRow): void {
    // Least recently kept first out: a Map iterates in insertion order.
    if (this.rows.size >= MAX_ROWS) this.rows.delete(this.rows.keys().next().value!);
    this.rows.set(row.seq, row);
  }
}
