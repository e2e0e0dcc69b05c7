// Pre-execution recall, as the database reader thread runs it: ranks memories for a task and/or
// free text by FTS5 bm25 relevance blended with recency and outcome (weights below). Off the write
// path: the writer hands a claim's tasks over as it leases them, and their context is recalled
// here while the writer commits (src/db/thread/recall-relay.ts).
import { withinBudget } from "../db/answer-budget.js";
import { toDate } from "../db/columns.js";
import { notFound } from "../errors.js";
import type { Task } from "../tasks/task-schemas.js";
import { toTask, type TaskStore } from "../tasks/task-store.js";
import { matchAny, questionTerms, quoteTerm, taskTerms, union } from "./fts-query.js";
import type { MemoryChanges } from "./memory-changes.js";
import type { MemoryMatch, RecallRequest } from "./memory-schemas.js";
import type { MemoryFilter, MemoryRow, MemoryStore, ScoringFields } from "./memory-store.js";
import { handOutOf, RecallCache, type HandOut, type RankedMemory, type Scored } from "./recall-cache.js";
import { byScore, mergeRankings, ownRunsFirst, rankCommon, withRoomForNotes } from "./recall-ranking.js";

/**
 * What recall needs of a task: its words (queue, capability, payload), its id (for its earlier
 * runs' records), and whether it ran before. A claim's tasks cross from the writer to the reader
 * as these, not as whole tasks: a structured clone costs by the field, and a task has 21 and six
 * dates (recall-relay.ts).
 */
export interface RecallSubject {
  id: string;
  queue: string;
  capability: string | null;
  payload: unknown;
  earlierRuns: boolean;
}

/** The subject of recall for `task`. A retry or a requeue has earlier runs: their records are then its first context. */
export const recallSubject = (task: Task): RecallSubject => ({
  id: task.id,
  queue: task.queue,
  capability: task.capability,
  payload: task.payload,
  earlierRuns: task.attempts > 1 || task.errorHistory.length > 0 || task.status !== "claimed",
});

/** How much each signal counts; they add up to 1, so scores stay in [0, 1]. */
const WEIGHTS = { relevance: 0.55, recency: 0.2, outcome: 0.1, sameQueue: 0.15 } as const;
/** A memory loses half its recency weight every week. */
const RECENCY_HALF_LIFE_MS = 7 * 24 * 3_600_000;
/** Failures are worth recalling (what went wrong last time), a little less than successes. */
const OUTCOME_WEIGHT: Record<string, number> = { completed: 1, failed: 0.6, dead_letter: 0.6 };
/** Candidates ranked per signal: at least this many, or as many as the recall asks for. */
const CANDIDATES = 50;
/** A common term's notes and lessons taken, best bm25 first (recall's limit is at most 100). */
const NOTES_PER_TERM = 100;
/** The most notes holding one term that bm25 ranks (it reads each of them: ~0.5 µs a note). */
const NOTES_RANKED = 256;
const NO_NOTES: ReadonlyMap<number, { row: ScoringFields; relevance: number }> = new Map();
/** The relevance of a note filed under a claimed task's queue or capability: as a memory holding every common word of it. */
const FILED_RELEVANCE = 0.5;
/** A term with at least this many matches is "common": not worth a bm25 pass over all of them. */
const PROBE = 64;
/** What stands for the bm25 of the claim's sole rare match: any negative number (relevance is bm25 over the best one's, so 1). */
const SOLE_MATCH_BM25 = -1;


export class MemoryRecall {
  private readonly cache = new RecallCache();

  constructor(
    private readonly memories: MemoryStore,
    private readonly tasks: TaskStore,
    private readonly maxResponseBytes: number,
    /** Deletes and notes since the cache was filled: it is dropped then (memory-changes.ts). */
    private readonly changes: MemoryChanges,
  ) {}

  /** The best `limit` matches, fewer if their answer would pass maxResponseBytes. */
  recall(request: RecallRequest): MemoryMatch[] {
    const filter: MemoryFilter = { queue: request.queue, capability: request.capability };
    const budget = { bytes: this.maxResponseBytes, fitOnly: false };
    if (request.taskId !== undefined) {
      const row = this.tasks.findById(request.taskId);
      if (!row) throw notFound("TASK_NOT_FOUND", request.taskId);
      return this.rank(recallSubject(toTask(row)), request.query, filter, request.limit, budget);
    }
    return this.rank(null, request.query, filter, request.limit, budget);
  }

  /**
   * The context handed out with a claimed task: its best `limit` memories, fewer if they would
   * not fit in `budget.bytes` (what is left of the claim's answer; used up as memories are taken),
   * none if the best does not: the task is what the claim is for, and its context may not carry
   * the answer past maxResponseBytes.
   */
  recallForTask(task: RecallSubject, limit: number, budget: RecallBudget): MemoryMatch[] {
    return this.rank(task, undefined, {}, limit, budget);
  }

  /**
   * Ranks memories for a task and/or free text. Recall runs on every claim, so its cost must not
   * grow with the number of memories. FTS5's bm25 scores every row a query matches, and a word
   * like the queue name matches nearly all of them. So each term is first probed for its newest
   * PROBE matches (bounded work, and cached for common terms: recall-cache.ts): a term with fewer
   * is rare and is ranked by bm25 (its doclist is short); common terms only contribute recent
   * candidates, scored by how many terms they match.
   */
  private rank(task: RecallSubject | null, query: string | undefined, filter: MemoryFilter, limit: number, budget: RecallBudget): MemoryMatch[] {
    this.cache.sync(this.changes.seen);
    const asked = query === undefined ? [] : questionTerms(query);
    // A question with no word in it ("'", "?") asks for nothing: it matches nothing, rather than
    // being read as no question and answered with the newest memories, each scored as a match.
    if (task === null && asked.length === 0 && query !== undefined && query.trim() !== "") return [];
    const ofTask = task ? taskTerms(task.queue, task.capability, task.payload) : [];
    const terms = asked.length === 0 ? ofTask : union(asked, ofTask);
    const now = Date.now();
    const unfiltered = isUnfiltered(filter);
    const { lists, rare, rareScores } = this.termSignals(terms, filter, now);
    const commonLists = lists.filter((list) => list !== undefined);
    // A claim's common terms rank their candidates the same way for every task of its queue (and
    // capability: its filed notes) while those terms' candidate lists are the same ones (recall-cache.ts).
    // A recall may ask for more than CANDIDATES (limit up to 100): then every signal ranks as many.
    const wanted = Math.max(CANDIDATES, limit);
    const listsKey = task !== null && query === undefined && unfiltered && commonLists.length > 0 ? this.cache.listsKey(`${task.queue}\u0000${task.capability ?? "\u0001"}\u0000${wanted}`, commonLists) : undefined;
    // A claim's context made of common terms only (its rare words matched nothing, it is a first
    // run) is the same for all of them: the memories handed out, not only their ranking.
    const sharedKey = listsKey !== undefined && rareScores.size === 0 && rare.length === 0 && !task!.earlierRuns ? `${listsKey}\u0000${limit}` : undefined;
    const shared = sharedKey === undefined ? undefined : this.cache.context(sharedKey);
    if (shared !== undefined) return inBudget(shared, budget);

    const withRelevance = terms.length > 0 || task !== null;
    // No question and no task asks for the newest memories (the README's promise): ranked by
    // time alone. Weighed by outcome as well, older completed runs came before newer failures.
    const outcomeWeight = withRelevance ? WEIGHTS.outcome : 0;
    const max = (withRelevance ? WEIGHTS.relevance : 0) + WEIGHTS.recency + outcomeWeight + (task ? WEIGHTS.sameQueue : 0);
    const scored = (row: ScoringFields, relevance: number): Scored => {
      const createdAt = toDate(row.createdAt).getTime();
      const recency = 0.5 ** ((now - createdAt) / RECENCY_HALF_LIFE_MS);
      const outcome = row.outcome === null ? 1 : (OUTCOME_WEIGHT[row.outcome] ?? 0.5);
      const sameQueue = task && row.queue === task.queue ? 1 : 0;
      const raw =
        (withRelevance ? WEIGHTS.relevance * relevance : 0) + WEIGHTS.recency * recency + outcomeWeight * outcome + (task ? WEIGHTS.sameQueue * sameQueue : 0);
      return { seq: row.seq, createdAt, score: Math.round((raw / max) * 1e6) / 1e6, record: row.outcome !== null };
    };

    // The claim's own candidates by seq with their relevance; a later signal about a memory
    // replaces an earlier one. Rare-term matches rank above common-only ones: relevance in
    // (0.5, 1] by bm25, else [0, 0.5] (the common terms' candidates, ranked apart below).
    const candidates = new Map<number, { row: ScoringFields; relevance: number }>();
    /** Full rows read while ranking: those handed out need not be read again. */
    const fullRows = new Map<number, MemoryRow>();
    const candidate = (row: MemoryRow, relevance: number) => {
      fullRows.set(row.seq, row);
      candidates.set(row.seq, { row, relevance });
    };
    if (rareScores.size > 0) {
      const matches = [...rareScores.entries()].sort(([seqA, a], [seqB, b]) => a - b || seqB - seqA).slice(0, wanted);
      const top = Math.max(-matches[0]![1], Number.EPSILON);
      // Scored by their cheap fields; only the memories handed out are read in full (below).
      const scoring = this.scoringFields(matches.map(([seq]) => seq));
      for (const [seq, bm25] of matches) {
        const row = scoring.get(seq);
        // Pruned between the index read and this one: not a candidate any more.
        if (row !== undefined) candidates.set(seq, { row, relevance: 0.5 + (0.5 * -bm25) / top });
      }
    }
    if (rare.length > 0) {
      const rows = this.memories.search(matchAny(rare), filter, wanted);
      const top = Math.max(...rows.map((r) => -r.bm25), Number.EPSILON);
      for (const row of rows) candidate(row, 0.5 + (0.5 * -row.bm25) / top);
    }
    if (terms.length === 0 && !task) {
      for (const row of this.memories.recent(filter, wanted)) candidate(row, 0);
    }
    // Earlier runs of the same task are the most relevant context there is (a first run has none):
    // they go first (ownRunsFirst), whatever the outcome weighs against other tasks' runs.
    let ownRuns: Set<number> | undefined;
    if (task?.earlierRuns) {
      for (const row of this.memories.byTask(task.id, 10)) {
        if (!withinFilter(row, filter)) continue;
        candidate(row, 1);
        (ownRuns ??= new Set()).add(row.seq);
      }
    }
    // Notes and lessons filed under the task's queue or capability are about its tasks, whatever
    // their words: as relevant as a memory holding every common word of the task. (Not for a
    // recall filtered by queue or capability, which ranks that filter's memories by their words.)
    if (task !== null && isUnfiltered(filter)) {
      for (const row of this.filedNotes(task, now)) {
        const prior = candidates.get(row.seq);
        if (prior === undefined || prior.relevance < FILED_RELEVANCE) candidates.set(row.seq, { row, relevance: FILED_RELEVANCE });
      }
    }
    // Notes and lessons holding the common words, from their own index and ranked by bm25 where few
    // hold a word (notesFor): a common word's newest matches alone let newer records crowd out the
    // lesson that mattered.
    if (commonLists.length > 0) {
      const common = commonLists.length === terms.length ? terms : terms.filter((_, at) => lists[at] !== undefined);
      for (const [seq, note] of this.notesFor(common, filter, now)) {
        const prior = candidates.get(seq);
        if (prior === undefined || prior.relevance < note.relevance) candidates.set(seq, note);
      }
    }
    const ranked = [...candidates.values()].map(({ row, relevance }) => scored(row, relevance)).sort(byScore);

    let common: readonly Scored[] = [];
    if (commonLists.length > 0) {
      const kept = listsKey === undefined ? undefined : this.cache.commonRanking(listsKey);
      common = kept ?? rankCommon(commonLists, wanted, (row, hits) => scored(row, (0.5 * hits) / commonLists.length));
      if (kept === undefined && listsKey !== undefined) this.cache.keepCommonRanking(listsKey, common);
    }
    // The two rankings merged, as one sort of all candidates would order them (byScore orders
    // any two apart); a memory found by a stronger signal is not also ranked as a common one.
    const merged = ranked.length === 0 ? common : mergeRankings(ranked, common, candidates);
    const best = task === null ? merged : withRoomForNotes(ownRuns === undefined ? merged : ownRunsFirst(merged, ownRuns), limit);

    // Only the memories handed out are loaded in full, best first, while they fit the budget. A
    // candidate from a probe up to PROBE_TTL_MS old may have been pruned since: the next one
    // takes its place.
    const handedOut: RankedMemory[] = [];
    for (let next = 0; handedOut.length < limit && next < best.length; ) {
      const batch = best.slice(next, next + limit - handedOut.length);
      next += batch.length;
      const full = this.handOuts(batch.map((b) => b.seq), fullRows);
      for (const { seq, score } of batch) {
        const handOut = full.get(seq);
        if (handOut !== undefined) handedOut.push({ match: { memory: handOut.memory, score }, bytes: handOut.bytes });
      }
    }
    if (sharedKey !== undefined) this.cache.keepContext(sharedKey, handedOut);
    return inBudget(handedOut, budget);
  }

  /**
   * What a claim's terms say, in two passes: first what the cache settles (a common term's fresh
   * probe, or a term known to be common whose probe confirms it), then a look at the index for
   * the rest. Gives each common term's candidate list at the term's place, the rare terms to rank
   * by bm25 (filtered recall), and the rare matches' bm25 by seq, summed over terms (a claim).
   */
  private termSignals(terms: readonly string[], filter: MemoryFilter, now: number): { lists: Array<ScoringFields[] | undefined>; rare: string[]; rareScores: Map<number, number> } {
    const rare: string[] = [];
    const unfiltered = isUnfiltered(filter);
    // Each common term's candidate list, at the term's place: the lists keep the terms' order.
    const lists: Array<ScoringFields[] | undefined> = [];
    /** A term whose candidates were probed: common with PROBE of them, else rare (none: no use to bm25 either). */
    const probed = (at: number, term: string, candidates: ScoringFields[]) => {
      if (candidates.length >= PROBE) lists[at] = candidates;
      else if (candidates.length > 0) rare.push(term);
    };
    // Unfiltered (a claim's context), the terms neither probed recently nor known to be common
    // are looked up in the index (below); a term known to be common skips bm25, which reads its
    // whole doclist (recall-cache.ts), and its probe's length confirms it is still common.
    const toLookUp: Array<{ term: string; at: number }> = [];
    for (const [at, term] of terms.entries()) {
      const key = probeKey(term, filter);
      const kept = this.cache.probe(key, now);
      if (kept !== undefined) {
        lists[at] = kept;
        continue;
      }
      // Filtered (an explicit recall by queue or capability: never a claim's), bounded as a
      // claim's within the filter: a term with PROBE matches in it is common there (its newest
      // PROBE rank), one with fewer is ranked by bm25 within it. Not exact past PROBE: bm25 over
      // a queue's every record (its name is in each) would hold the reader, and the claims'
      // context it serves, for as long. Either may read the term's whole doclist; a claim's
      // recall, unfiltered, never does.
      if (!unfiltered) {
        probed(at, term, this.probe(term, filter, now));
        continue;
      }
      if (this.cache.isCommon(key)) {
        const candidates = this.probe(term, filter, now);
        if (candidates.length >= PROBE) {
          lists[at] = candidates;
          continue;
        }
        this.cache.forgetCommon(key);
      }
      toLookUp.push({ term, at });
    }
    // A rare term's matches come with their bm25 from one look at the index; their sum over terms,
    // in the terms' order, is the bm25 of the OR query (see termMatches). A term with PROBE
    // matches is common: its candidates come from its probe, which remembers it as common. But
    // bm25 reads every match's size, and a claim's relevance is bm25 over the best candidate's:
    // a sole match ranks 1 whatever its bm25. So a claim with one term to look up (an id or a
    // number beside its queue's common words) looks it up without bm25, and scores it only if it
    // has more than one match.
    const rareScores = new Map<number, number>();
    const addScores = (matches: ReadonlyArray<{ seq: number; bm25: number }>) => {
      for (const { seq, bm25 } of matches) rareScores.set(seq, (rareScores.get(seq) ?? 0) + bm25);
    };
    if (toLookUp.length === 1) {
      const { term, at } = toLookUp[0]!;
      const seqs = this.memories.newestMatchSeqs(quoteTerm(term), PROBE);
      if (seqs.length >= PROBE) probed(at, term, this.probe(term, filter, now, seqs));
      else if (seqs.length === 1) rareScores.set(seqs[0]!, SOLE_MATCH_BM25);
      else if (seqs.length > 1) addScores(this.memories.termMatches(quoteTerm(term), PROBE));
    } else {
      for (const { term, at } of toLookUp) {
        const matches = this.memories.termMatches(quoteTerm(term), PROBE);
        if (matches.length >= PROBE) probed(at, term, this.probe(term, filter, now));
        else addScores(matches);
      }
    }
    return { lists, rare, rareScores };
  }

  /**
   * The notes and lessons matching the common `terms`, each with its relevance: in (0, 0.75],
   * half by how many of the terms it holds (as a common term's candidates, which rank in [0, 0.5])
   * and a quarter by its bm25 summed over the terms (as an OR query would), over the best one's.
   * Each term's best NOTES_PER_TERM come from its own lookup, kept in the cache until a note or a
   * delete (and a second at most); a term that more than NOTES_RANKED notes hold adds its newest,
   * unranked.
   */
  private notesFor(terms: readonly string[], filter: MemoryFilter, now: number): ReadonlyMap<number, { row: ScoringFields; relevance: number }> {
    const found = new Map<number, { row: ScoringFields; bm25: number; hits: number }>();
    for (const term of terms) {
      const key = probeKey(term, filter);
      let notes = this.cache.notesOf(key, now);
      if (notes === undefined) {
        // bm25 reads every note holding the term. A claim's recall (unfiltered) ranks them only
        // where few do: past NOTES_RANKED, their newest PROBE join the candidates unranked, as a
        // common term's newest matches do. An explicit recall by queue or capability ranks all
        // of the filter's, as it ranks its rare terms (exact, not on the claim path).
        const seqs = isUnfiltered(filter) ? this.memories.noteSeqs(quoteTerm(term), NOTES_RANKED + 1) : undefined;
        if (seqs === undefined || (seqs.length > 0 && seqs.length <= NOTES_RANKED)) notes = this.memories.notesMatching(quoteTerm(term), filter, NOTES_PER_TERM);
        else notes = this.withScoringFields(seqs.slice(0, PROBE)).map((row) => ({ ...row, bm25: 0 }));
        this.cache.keepNotes(key, now, notes);
      }
      for (const note of notes) {
        const seen = found.get(note.seq);
        if (seen === undefined) found.set(note.seq, { row: note, bm25: note.bm25, hits: 1 });
        else {
          seen.bm25 += note.bm25;
          seen.hits += 1;
        }
      }
    }
    if (found.size === 0) return NO_NOTES;
    let top = Number.EPSILON;
    for (const { bm25 } of found.values()) top = Math.max(top, -bm25);
    const relevant = new Map<number, { row: ScoringFields; relevance: number }>();
    for (const [seq, { row, bm25, hits }] of found) relevant.set(seq, { row, relevance: (0.5 * hits) / terms.length + (0.25 * -bm25) / top });
    return relevant;
  }

  /**
   * The newest notes and lessons filed under `task`'s queue and under its capability (CANDIDATES
   * of each), kept as a term's notes are: until a note or a delete, a second at most.
   */
  private filedNotes(task: RecallSubject, now: number): ScoringFields[] {
    const filed = (field: "queue" | "capability", value: string): ScoringFields[] => {
      const key = `\u0001${field}\u0000${value}`;
      let notes = this.cache.notesOf(key, now);
      if (notes === undefined) {
        notes = this.memories.notesFiledUnder(field, value, CANDIDATES).map((row) => ({ ...row, bm25: 0 }));
        this.cache.keepNotes(key, now, notes);
      }
      return notes;
    };
    const byQueue = filed("queue", task.queue);
    return task.capability === null ? byQueue : [...byQueue, ...filed("capability", task.capability)];
  }

  /**
   * A term's newest PROBE candidates; a common term's come from the cache when fresh. `seqs`:
   * unfiltered, the term's newest PROBE matches when they were just read.
   */
  private probe(term: string, filter: MemoryFilter, now: number, seqs?: readonly number[]): ScoringFields[] {
    const key = probeKey(term, filter);
    const cached = this.cache.probe(key, now);
    if (cached) return cached;
    const found = isUnfiltered(filter)
      ? this.withScoringFields(seqs ?? this.memories.newestMatchSeqs(quoteTerm(term), PROBE))
      : this.memories.newestMatches(quoteTerm(term), filter, PROBE);
    if (found.length === PROBE) this.cache.keepProbe(key, now, found);
    return found;
  }

  /** The scoring fields of `seqs`, in their order: from the cache where it has them; pruned seqs are left out. */
  private withScoringFields(seqs: readonly number[]): ScoringFields[] {
    const scoring = this.scoringFields(seqs);
    const found: ScoringFields[] = [];
    for (const seq of seqs) {
      const fields = scoring.get(seq);
      if (fields !== undefined) found.push(fields);
    }
    return found;
  }

  /** Scoring fields by seq, from the cache where possible (memories never change once written); pruned seqs are left out. */
  private scoringFields(seqs: readonly number[]): Map<number, ScoringFields> {
    return readThrough(seqs, (seq) => this.cache.scoringFields(seq), (missing) => this.memories.scoringBySeqs(missing), (fields) => this.cache.keepScoringFields(fields));
  }

  /**
   * Memories as handed out, by seq: from the cache where possible (memories never change once
   * written), else from `rows` (read already), else read; pruned seqs are left out.
   */
  private handOuts(seqs: readonly number[], rows: ReadonlyMap<number, MemoryRow>): Map<number, HandOut> {
    return readThrough(
      seqs,
      (seq) => this.cache.handOut(seq),
      (missing) => [...missing.flatMap((seq) => rows.get(seq) ?? []), ...this.memories.bySeqs(missing.filter((seq) => !rows.has(seq)))].map(handOutOf),
      (handOut) => this.cache.keepHandOut(handOut),
    );
  }
}

/** What `cached` has of `seqs`, and the rest read in one go and kept; by seq. Seqs read back missing are left out. */
function readThrough<T extends { seq: number }>(seqs: readonly number[], cached: (seq: number) => T | undefined, read: (missing: number[]) => T[], keep: (row: T) => void): Map<number, T> {
  const found = new Map<number, T>();
  const missing: number[] = [];
  for (const seq of seqs) {
    const row = cached(seq);
    if (row) found.set(seq, row);
    else missing.push(seq);
  }
  for (const row of read(missing)) {
    keep(row);
    found.set(row.seq, row);
  }
  return found;
}

/**
 * What is left of an answer's room for memories, in bytes (used up as they are taken); `fitOnly`:
 * a claim's context, which takes only memories that fit (a recall always answers its best one).
 */
export interface RecallBudget {
  bytes: number;
  fitOnly: boolean;
}

/** The ranked memories that fit what is left of the answer's budget (the first always, unless fitOnly), the budget used up by them. */
function inBudget(ranked: readonly RankedMemory[], budget: RecallBudget): MemoryMatch[] {
  const taken = withinBudget(ranked, (r) => r.bytes, budget.bytes, budget.fitOnly).rows;
  for (const r of taken) budget.bytes -= r.bytes;
  return taken.map((r) => r.match);
}

/** Whether `row` is of the filter's queue and capability (those it names). */
const withinFilter = (row: MemoryRow, filter: MemoryFilter): boolean =>
  (filter.queue === undefined || row.queue === filter.queue) && (filter.capability === undefined || row.capability === filter.capability);

/** A recall over every memory: a claim's, or one that names no queue or capability. */
const isUnfiltered = (filter: MemoryFilter): boolean => filter.queue === undefined && filter.capability === undefined;

const probeKey = (term: string, filter: MemoryFilter): string => `${term}\u0000${filter.queue ?? ""}\u0000${filter.capability ?? ""}`;

export function recallQueries(recall: MemoryRecall) {
  return {
    "memory.recall": (request: RecallRequest): MemoryMatch[] => recall.recall(request),
    /**
     * The context of each claimed task: its best `limit` memories, within what is left of the
     * claim's answer after its tasks (`budgetBytes`, used up in order).
     */
    "memory.recallForTasks": (args: { tasks: RecallSubject[]; limit: number; budgetBytes: number }): MemoryMatch[][] => {
      const budget = { bytes: args.budgetBytes, fitOnly: true };
      return args.tasks.map((task) => (budget.bytes > 0 ? recall.recallForTask(task, args.limit, budget) : []));
    },
  };
}
