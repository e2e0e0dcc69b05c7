// How recall orders candidates: pure functions over scored memories, apart from the reads and
// caches that find them (memory-recall.ts).
import type { ScoringFields } from "./memory-store.js";
import type { Scored } from "./recall-cache.js";

/** Above any seq (2^47, 140 trillion), below a number's exact range once multiplied by MAX_TERMS hits. */
const SEQ_SPAN = 2 ** 47;

/**
 * The seqs of the `n` candidates with the most hits, most first, then the newest (highest seq).
 * One numeric sort of hits·SEQ_SPAN + seq: a claim ranks hundreds of candidates, and a sort
 * with a comparator function over entry pairs was a tenth of recall's time.
 */
function mostHits(hits: ReadonlyMap<number, { hits: number }>, n: number): number[] {
  const keys = new Float64Array(hits.size);
  let i = 0;
  for (const [seq, hit] of hits) keys[i++] = hit.hits * SEQ_SPAN + seq;
  keys.sort();
  const best: number[] = [];
  for (let j = keys.length - 1; j >= 0 && best.length < n; j--) best.push(keys[j]! % SEQ_SPAN);
  return best;
}

/** Best first: the higher score, then the newer memory, then the higher seq (so no two candidates tie). */
export const byScore = (a: Scored, b: Scored): number => b.score - a.score || b.createdAt - a.createdAt || b.seq - a.seq;

/** The `n` memories matching most of the common terms' lists (the newest first among equals), scored by `score` and sorted. */
export function rankCommon(lists: readonly ScoringFields[][], n: number, score: (row: ScoringFields, hits: number) => Scored): Scored[] {
  const hits = new Map<number, { row: ScoringFields; hits: number }>();
  for (const list of lists) {
    for (const row of list) {
      const hit = hits.get(row.seq);
      if (hit === undefined) hits.set(row.seq, { row, hits: 1 });
      else hit.hits++;
    }
  }
  return mostHits(hits, n)
    .map((seq) => {
      const { row, hits: count } = hits.get(seq)!;
      return score(row, count);
    })
    .sort(byScore);
}

/** `first` and the entries of `second` whose seq is not in `skip`, both sorted by byScore, as one list sorted by it. */
export function mergeRankings(first: readonly Scored[], second: readonly Scored[], skip: ReadonlyMap<number, unknown>): Scored[] {
  const merged: Scored[] = [];
  let i = 0;
  for (const entry of second) {
    if (skip.has(entry.seq)) continue;
    while (i < first.length && byScore(first[i]!, entry) < 0) merged.push(first[i++]!);
    merged.push(entry);
  }
  while (i < first.length) merged.push(first[i++]!);
  return merged;
}

/**
 * `ranked` (best first) with the task's own earlier runs (`own`, by seq) first, in their order,
 * each scored at least as the best of the rest, so the list stays best first. A failed run's
 * outcome weighs less than a completed one's: where other tasks' completed runs matched its words
 * as closely, a retry was handed their "ok" rather than why it failed before.
 */
export function ownRunsFirst(ranked: readonly Scored[], own: ReadonlySet<number>): Scored[] {
  const first: Scored[] = [];
  const rest: Scored[] = [];
  for (const entry of ranked) (own.has(entry.seq) ? first : rest).push(entry);
  const top = rest[0]?.score ?? 0;
  return [...first.map((entry) => (entry.score >= top ? entry : { ...entry, score: top })), ...rest];
}

/**
 * `ranked` (best first) as a claim's context takes it: execution records fill at most `limit`
 * less the notes and lessons ranked (up to half of `limit`, rounded up); the records past that
 * go after everything else. A busy queue's records match a task's words more often and
 * more closely than a lesson does (each holds a payload of the same shape), and five records
 * saying "completed" left no room for the lesson that mattered. The task's own earlier runs rank
 * first (they are the most relevant context there is) and are records too: a retry, when the
 * lesson matters most, keeps room for it.
 */
export function withRoomForNotes(ranked: readonly Scored[], limit: number): Scored[] {
  let notes = 0;
  for (const entry of ranked) if (!entry.record) notes++;
  const records = limit - Math.min(notes, Math.ceil(limit / 2));
  const first: Scored[] = [];
  const after: Scored[] = [];
  let taken = 0;
  for (const entry of ranked) {
    if (entry.record) {
      if (taken >= records) {
        after.push(entry);
        continue;
      }
      taken++;
    }
    first.push(entry);
  }
  return after.length === 0 ? first : [...first, ...after];
}
