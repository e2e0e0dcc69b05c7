// What recall may reuse between claims. Recall runs on every claim; without these it was a third
// of the in-process claim+complete time (bench/RESULTS.md, 2026-11-29).
//  - Probes of common terms (a queue name, a frequent word): their newest matches change with
//    every memory written, but a claim's context does not need the last second of them. Kept for
//    PROBE_TTL_MS, per term and filter; rare terms are looked up every time (exact).
//  - Memories as handed out (the memory and the room it takes in an answer): written once and
//    never updated, so a memory once read stays good. A delete (an agent's forget, retention)
//    drops the kept probes and rankings (memory-changes.ts): a deleted memory is not found again.
//    The same object goes out with every claim that recalls it, and a structured clone carries a
//    shared object once, so the reader's answers to the event loop shrink too.
//  - The ranking of the common terms' candidates: the same for every task of a queue as long as
//    those terms' candidate lists are the same ones (its key names the lists, which live
//    PROBE_TTL_MS). A claim whose rare words found memories merges them into it rather than
//    score the common candidates again. The scores are those of the first ranking: under a second
//    of recency apart, a millionth at most, so that two candidates scored within a millionth of
//    each other, one kept and one fresh, may come in either order.
//  - Contexts made of common terms only: a first run whose rare words match nothing gets the same
//    memories as every other such task of its queue, under the same key: ranked and read once,
//    shared by the claims of that second.
//  - What recall scores a memory by (seq, queue, outcome, time): never changes either, and a
//    common term's newest matches are mostly the same memories probe after probe, so its probe
//    reads the index alone and the few memories it has not seen yet.
//  - A common term's best notes and lessons (their own index; bm25 where few hold it): they change
//    only when a note is written or a memory deleted, which drops them (memory-changes.ts), and
//    are kept PROBE_TTL_MS at most for another server's notes.
//  - Which terms are common: a term's class changes only as memories are written or pruned, but
//    finding it out by bm25 reads the term's whole doclist (FTS5 counts every row holding it for
//    the inverse document frequency), which grows with the memory. A term once seen common goes
//    straight to its newest-matches probe, whose length confirms it every time: a term pruned
//    below PROBE rows since is found rare there, and scored by bm25 again.
import { setNewest } from "../bounded-map.js";
import type { Memory, MemoryMatch } from "./memory-schemas.js";
import { memoryAnswerBytes, toMemory, type MemoryRow, type ScoringFields } from "./memory-store.js";

/** A memory as recall hands it out, with the room it takes in an answer. */
export interface RankedMemory {
  match: MemoryMatch;
  bytes: number;
}

/** A memory as recall hands it out, before it is scored: kept by seq. */
export interface HandOut {
  seq: number;
  memory: Memory;
  bytes: number;
}

export const handOutOf = (row: MemoryRow): HandOut => ({ seq: row.seq, memory: toMemory(row), bytes: memoryAnswerBytes(row) });

/** A note or lesson a term matches, with its bm25 for that term (lower is better). */
export type NoteMatch = ScoringFields & { bm25: number };

/** A candidate's place in a ranking: its score and, for ties, its time (Unix ms) and seq; whether it is an execution record. */
export interface Scored {
  seq: number;
  createdAt: number;
  score: number;
  record: boolean;
}

/** How stale a common term's candidate list may be, in ms. */
export const PROBE_TTL_MS = 1000;
const MAX_PROBES = 1000;
const MAX_HAND_OUTS = 2000;
const MAX_CONTEXTS = 200;
const MAX_COMMON_RANKINGS = 200;
/** Scoring fields kept: about 100 bytes each. */
const MAX_SCORING = 50_000;
/** Terms remembered as common (a key and a number each); the least recently confirmed go first. */
const MAX_COMMON_TERMS = 20_000;

export class RecallCache {
  private readonly probes = new Map<string, { at: number; rows: ScoringFields[] }>();
  private readonly notes = new Map<string, { at: number; rows: NoteMatch[] }>();
  private readonly handOuts = new Map<number, HandOut>();
  private readonly scoring = new Map<number, ScoringFields>();
  private readonly contexts = new Map<string, readonly RankedMemory[]>();
  private readonly commonRankings = new Map<string, readonly Scored[]>();
  /** A serial per kept candidate list: what the keys of rankings and shared contexts name. */
  private readonly listSerials = new WeakMap<ScoringFields[], number>();
  private nextSerial = 1;
  /** Probe keys (term and filter) whose term had PROBE matches or more when last looked at. */
  private readonly commonTerms = new Set<string>();
  /** The count of memory deletes and notes the kept lists and rankings were read at (memory-changes.ts). */
  private changesSeen = 0;

  /**
   * Drops what memories written or deleted since it was read make wrong (`changes`: the count
   * the reads in progress see): the lists of newest matches and of notes, and the rankings and
   * shared contexts made of them (a new note is the newest match of its words, and may rank
   * first among the notes). Memories by seq and their scoring fields stay good: a deleted one is
   * no longer found by a fresh look at the index, so no one asks for it.
   */
  sync(changes: number): void {
    if (changes === this.changesSeen) return;
    this.changesSeen = changes;
    this.notes.clear();
    this.probes.clear();
    this.contexts.clear();
    this.commonRankings.clear();
  }

  /** A common term's candidates probed less than PROBE_TTL_MS before `now`, or undefined. */
  probe(key: string, now: number): ScoringFields[] | undefined {
    return fresh(this.probes, key, now);
  }

  /**
   * A common term's best notes and lessons by bm25, looked up less than PROBE_TTL_MS before
   * `now` (another server's notes within that), and since the last note or delete here (sync).
   */
  notesOf(key: string, now: number): NoteMatch[] | undefined {
    return fresh(this.notes, key, now);
  }

  keepNotes(key: string, now: number, rows: NoteMatch[]): void {
    setNewest(this.notes, key, { at: now, rows }, MAX_PROBES);
  }

  /** Keeps a common term's full candidate list (PROBE rows), which also confirms the term common. */
  keepProbe(key: string, now: number, rows: ScoringFields[]): void {
    setNewest(this.probes, key, { at: now, rows }, MAX_PROBES);
    this.listSerials.set(rows, this.nextSerial++);
    this.markCommon(key);
  }

  /** Whether the term (probe key) had PROBE matches or more when last looked at; its probe confirms it. */
  isCommon(key: string): boolean {
    return this.commonTerms.has(key);
  }

  markCommon(key: string): void {
    // Re-inserted: a Set iterates in insertion order, so the first is the least recently confirmed.
    this.commonTerms.delete(key);
    if (this.commonTerms.size >= MAX_COMMON_TERMS) this.commonTerms.delete(this.commonTerms.values().next().value!);
    this.commonTerms.add(key);
  }

  /** The term's probe came back short of PROBE rows: memories holding it were pruned. */
  forgetCommon(key: string): void {
    this.commonTerms.delete(key);
  }

  /** The key of a ranking of these kept candidate lists for a task of `queue`; undefined if one of them is not kept. */
  listsKey(queue: string, lists: readonly ScoringFields[][]): string | undefined {
    const serials: number[] = [];
    for (const list of lists) {
      const serial = this.listSerials.get(list);
      // A list not kept (a filtered probe shorter than PROBE) is not shared.
      if (serial === undefined) return undefined;
      serials.push(serial);
    }
    return `${queue}\u0000${serials.join(",")}`;
  }

  context(key: string): readonly RankedMemory[] | undefined {
    return this.contexts.get(key);
  }

  keepContext(key: string, ranked: readonly RankedMemory[]): void {
    setNewest(this.contexts, key, ranked, MAX_CONTEXTS);
  }

  commonRanking(key: string): readonly Scored[] | undefined {
    return this.commonRankings.get(key);
  }

  keepCommonRanking(key: string, ranked: readonly Scored[]): void {
    setNewest(this.commonRankings, key, ranked, MAX_COMMON_RANKINGS);
  }

  handOut(seq: number): HandOut | undefined {
    return this.handOuts.get(seq);
  }

  scoringFields(seq: number): ScoringFields | undefined {
    return this.scoring.get(seq);
  }

  keepScoringFields(fields: ScoringFields): void {
    // Oldest kept first out: the newest memories are the ones probes keep finding.
    setNewest(this.scoring, fields.seq, { seq: fields.seq, queue: fields.queue, outcome: fields.outcome, createdAt: fields.createdAt }, MAX_SCORING);
  }

  keepHandOut(handOut: HandOut): void {
    setNewest(this.handOuts, handOut.seq, handOut, MAX_HAND_OUTS);
  }
}

/** What `kept` holds for `key` from less than PROBE_TTL_MS before `now`; an older entry is dropped. */
function fresh<T>(kept: Map<string, { at: number; rows: T }>, key: string, now: number): T | undefined {
  const hit = kept.get(key);
  if (hit === undefined) return undefined;
  if (now - hit.at < PROBE_TTL_MS) return hit.rows;
  kept.delete(key);
  return undefined;
}
