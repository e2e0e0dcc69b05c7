// All SQL of the pre-execution memory: the memories table and its FTS5 index (memories_fts,
// created in the migration SQL). bm25() is FTS5's relevance: lower (more negative) is better.
import { columnBytes, jsonTextBytes, utf8Bytes } from "../db/answer-budget.js";
import { fromJsonText, toDate } from "../db/columns.js";
import { placeholders, type Statements } from "../db/statements.js";
import type { Memory } from "./memory-schemas.js";

export interface MemoryRow {
  seq: number;
  id: string;
  kind: string;
  content: string;
  agentId: string | null;
  queue: string | null;
  capability: string | null;
  taskId: string | null;
  outcome: string | null;
  durationMs: number | null;
  tags: string;
  data: string;
  createdAt: number | Date;
  /** memory.remember's idempotencyKey (its agentId's own); null: stored without one. */
  idempotencyKey: string | null;
}

export type ScoringFields = Pick<MemoryRow, "seq" | "queue" | "outcome" | "createdAt">;

export type NewMemory = Omit<MemoryRow, "seq" | "createdAt">;

export interface MemoryFilter {
  queue?: string | undefined;
  capability?: string | undefined;
}

/** A nullable plain-text column as a JSON string carries it (escapes counted); null takes no room. */
const nullableTextBytes = (text: string | null): number => (text === null ? 0 : jsonTextBytes(text));

/**
 * About how many bytes a memory takes in an answer: its texts (content, JSON, names) and a fixed
 * part (field names, score, time). Content and names are plain text, which JSON writes escaped (a
 * control character in six bytes): weighed by their UTF-8 alone, a recall of such notes went out
 * at five times maxResponseBytes. Data and tags are stored as JSON text, escaped already.
 */
export const memoryAnswerBytes = (row: MemoryRow): number =>
  jsonTextBytes(row.content) +
  utf8Bytes(row.data) +
  utf8Bytes(row.tags) +
  jsonTextBytes(row.id) +
  utf8Bytes(row.kind) +
  nullableTextBytes(row.agentId) +
  nullableTextBytes(row.queue) +
  nullableTextBytes(row.capability) +
  nullableTextBytes(row.taskId) +
  columnBytes(row.outcome) +
  300;

export const toMemory = (row: MemoryRow): Memory => ({
  id: row.id,
  kind: row.kind as Memory["kind"],
  content: row.content,
  agentId: row.agentId,
  queue: row.queue,
  capability: row.capability,
  taskId: row.taskId,
  outcome: row.outcome,
  durationMs: row.durationMs,
  tags: JSON.parse(row.tags) as string[],
  data: fromJsonText(row.data),
  createdAt: toDate(row.createdAt),
});

function filterSql(filter: MemoryFilter, params: unknown[]): string {
  let sql = "";
  if (filter.queue !== undefined) {
    sql += " AND m.queue = ?";
    params.push(filter.queue);
  }
  if (filter.capability !== undefined) {
    sql += " AND m.capability = ?";
    params.push(filter.capability);
  }
  return sql;
}

export class MemoryStore {
  constructor(private readonly st: Statements) {}

  /**
   * Appends a memory and indexes it for full-text search in the same transaction: searchable as
   * soon as the write commits. (Updates and deletes are kept in step by triggers; see the
   * migration memory_fts_insert_in_store for why inserts are not.)
   */
  insert(memory: NewMemory, now: number): MemoryRow {
    const { lastInsertRowid } = this.st
      .get(
        `INSERT INTO memories (id, kind, content, agentId, queue, capability, taskId, outcome, durationMs, tags, data, createdAt, idempotencyKey)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(memory.id, memory.kind, memory.content, memory.agentId, memory.queue, memory.capability, memory.taskId,
        memory.outcome, memory.durationMs, memory.tags, memory.data, now, memory.idempotencyKey);
    const seq = Number(lastInsertRowid);
    this.st.get(`INSERT INTO memories_fts (rowid, content, tags) VALUES (?, ?, ?)`).run(seq, memory.content, memory.tags);
    // Notes and lessons have an index of their own too (migration notes_fts): never an execution record's write.
    if (memory.kind !== "execution") this.indexNote(seq, memory.content, memory.tags);
    // Every column named, in the table's order: a row read back has the same hidden class (taskRowWith says why).
    return {
      seq,
      id: memory.id,
      kind: memory.kind,
      content: memory.content,
      agentId: memory.agentId,
      queue: memory.queue,
      capability: memory.capability,
      taskId: memory.taskId,
      outcome: memory.outcome,
      durationMs: memory.durationMs,
      tags: memory.tags,
      data: memory.data,
      createdAt: now,
      idempotencyKey: memory.idempotencyKey,
    };
  }

  /** The memory `agentId` (null: none) stored with `idempotencyKey`, if it is still kept (memories_idempotency_idx). */
  findByKey(agentId: string | null, idempotencyKey: string): MemoryRow | undefined {
    return this.st.get<[string | null, string], MemoryRow>(`SELECT * FROM memories WHERE agentId IS ? AND idempotencyKey = ?`).get(agentId, idempotencyKey);
  }

  /**
   * Deletes the memory with this id; the row as it was, or undefined when there is none. The
   * search index loses it in the same write (the delete trigger of the migration init).
   */
  deleteById(id: string): MemoryRow | undefined {
    return this.st.get<[string], MemoryRow>(`DELETE FROM memories WHERE id = ? RETURNING *`).get(id);
  }

  private indexNote(seq: number, content: string, tags: string): void {
    this.st.get(`INSERT INTO notes_fts (rowid, content, tags) VALUES (?, ?, ?)`).run(seq, content, tags);
  }

  /**
   * The notes and lessons after `afterSeq` that notes_fts lacks: stored by a server of an earlier
   * version sharing the file, whose store knew no notes_fts. Looks at the next `window` notes at
   * most, and takes missed ones up to `budgetBytes` of text (at least one): indexing tokenizes it
   * all on the writer. Reads the notes' own index (memories_notes_idx), FTS5's table of the rows
   * notes_fts holds (notes_fts_docsize, one per rowid: a key lookup) and each row's header for its
   * size (octet_length reads no overflow page). Returns their seqs, the seq it looked through (the
   * next `afterSeq`) and whether more notes may follow. A read: nothing is written for none.
   */
  missedNotes(afterSeq: number, window: number, budgetBytes: number): { seqs: number[]; throughSeq: number; more: boolean } {
    const rows = this.st
      .get<[number, number], { seq: number; missed: number; bytes: number }>(
        `SELECT seq, NOT EXISTS (SELECT 1 FROM notes_fts_docsize AS d WHERE d.id = m.seq) AS missed, octet_length(content) + octet_length(tags) AS bytes
         FROM memories AS m WHERE kind <> 'execution' AND seq > ? ORDER BY seq LIMIT CAST(? AS INTEGER)`,
      )
      .all(afterSeq, window);
    const seqs: number[] = [];
    let bytes = 0;
    for (const [i, row] of rows.entries()) {
      if (!row.missed) continue;
      if (seqs.length > 0 && bytes + row.bytes > budgetBytes) return { seqs, throughSeq: rows[i - 1]!.seq, more: true };
      seqs.push(row.seq);
      bytes += row.bytes;
    }
    return { seqs, throughSeq: rows.at(-1)?.seq ?? afterSeq, more: rows.length === window };
  }

  /** Indexes in notes_fts the notes of `seqs` it still lacks (missedNotes found them); how many. */
  indexNotes(seqs: readonly number[]): number {
    if (seqs.length === 0) return 0;
    const missed = this.st
      .get<number[], { seq: number; content: string; tags: string }>(
        `SELECT seq, content, tags FROM memories AS m WHERE seq IN (${placeholders(seqs.length)}) AND kind <> 'execution'
           AND NOT EXISTS (SELECT 1 FROM notes_fts_docsize AS d WHERE d.id = m.seq)`,
      )
      .all(...seqs);
    for (const note of missed) this.indexNote(note.seq, note.content, note.tags);
    return missed.length;
  }

  /**
   * One step of the index's compaction: merges about `pages` pages (4 KiB each) of the FTS5
   * index's segments, on the level holding the most (two or more: the 'usermerge' setting of the
   * migration memory_fts_usermerge); a merge left unfinished goes on at the next step. True if it
   * merged anything, false once no level holds two segments. Recall looks a term up in every
   * segment, so fewer segments make it cheaper; the merges that run as memories are written
   * (FTS5's 'automerge', a setting apart from 'usermerge', left at 4) leave up to three a level.
   */
  compactIndex(pages: number): boolean {
    const before = this.totalChanges();
    this.st.get<[number]>(`INSERT INTO memories_fts (memories_fts, rank) VALUES ('merge', ?)`).run(pages);
    // The command itself counts one change; a merge also writes the index's own rows.
    return this.totalChanges() - before > 1;
  }

  private totalChanges(): number {
    return this.st.get<[], number>(`SELECT total_changes()`).pluck().get()!;
  }

  /**
   * Full-text candidates, best bm25 first. `match` must come from matchAny. bm25 has to score
   * every row the query matches, so callers pass only rare terms (see MemoryService.rank).
   */
  search(match: string, filter: MemoryFilter, limit: number): Array<MemoryRow & { bm25: number }> {
    const params: unknown[] = [match];
    const where = filterSql(filter, params);
    params.push(limit);
    return this.st
      .get<unknown[], MemoryRow & { bm25: number }>(
        `SELECT m.*, bm25(memories_fts) AS bm25 FROM memories_fts JOIN memories m ON m.seq = memories_fts.rowid
         WHERE memories_fts MATCH ?${where} ORDER BY bm25 LIMIT CAST(? AS INTEGER)`,
      )
      .all(...params);
  }

  /**
   * Notes and lessons matching one quoted term, best bm25 first, the newer first among equals
   * (over the notes' own index: execution records neither compete nor add to the cost). bm25 reads
   * every match: callers pass only terms few notes hold (see noteSeqs).
   */
  notesMatching(term: string, filter: MemoryFilter, limit: number): Array<ScoringFields & { bm25: number }> {
    const params: unknown[] = [term];
    const where = filterSql(filter, params);
    params.push(limit);
    return this.st
      .get<unknown[], ScoringFields & { bm25: number }>(
        `SELECT m.seq, m.queue, m.outcome, m.createdAt, bm25(notes_fts) AS bm25 FROM notes_fts JOIN memories m ON m.seq = notes_fts.rowid
         WHERE notes_fts MATCH ?${where} ORDER BY bm25, m.seq DESC LIMIT CAST(? AS INTEGER)`,
      )
      .all(...params);
  }

  /**
   * The newest notes and lessons filed under `value` as their queue or capability (memory.remember's
   * fields), newest first, whatever their words: what a claim of that queue or capability is told
   * (partial indexes memories_notes_queue_idx and memories_notes_capability_idx).
   */
  notesFiledUnder(field: "queue" | "capability", value: string, limit: number): ScoringFields[] {
    return this.st
      .get<[string, number], ScoringFields>(
        `SELECT seq, queue, outcome, createdAt FROM memories WHERE ${field} = ? AND kind <> 'execution' ORDER BY seq DESC LIMIT CAST(? AS INTEGER)`,
      )
      .all(value, limit);
  }

  /** The seqs of the newest notes and lessons matching one quoted term, newest first: the index alone. */
  noteSeqs(term: string, limit: number): number[] {
    return this.st
      .get<[string, number], number>(`SELECT rowid FROM notes_fts WHERE notes_fts MATCH ? ORDER BY rowid DESC LIMIT CAST(? AS INTEGER)`)
      .pluck()
      .all(term, limit);
  }

  /**
   * The newest rows within `filter` matching one quoted term. FTS5 walks the term's doclist newest
   * first and stops at the limit: unfiltered, the same cost however common the term; filtered
   * (an explicit recall by queue or capability, never a claim's), until `limit` rows of the
   * filter were found, so a filter holding few of a common term's matches walks the doclist.
   */
  newestMatches(term: string, filter: MemoryFilter, limit: number): ScoringFields[] {
    const params: unknown[] = [term];
    const where = filterSql(filter, params);
    params.push(limit);
    return this.st
      .get<unknown[], ScoringFields>(
        `SELECT m.seq, m.queue, m.outcome, m.createdAt FROM memories_fts JOIN memories m ON m.seq = memories_fts.rowid
         WHERE memories_fts MATCH ?${where} ORDER BY memories_fts.rowid DESC LIMIT CAST(? AS INTEGER)`,
      )
      .all(...params);
  }

  /**
   * A term's newest matches and their bm25, read from the index alone (no join). bm25 adds up
   * over the terms of an OR query, so terms scored apart rank exactly as the query would.
   */
  termMatches(term: string, limit: number): Array<{ seq: number; bm25: number }> {
    return this.st
      .get<[string, number], { seq: number; bm25: number }>(
        `SELECT rowid AS seq, bm25(memories_fts) AS bm25 FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT CAST(? AS INTEGER)`,
      )
      .all(term, limit);
  }

  /**
   * The seqs of the newest rows matching one quoted term, newest first: the index alone, no row
   * read (recall scores from fields it keeps: recall-cache.ts).
   */
  newestMatchSeqs(term: string, limit: number): number[] {
    return this.st
      .get<[string, number], number>(`SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT CAST(? AS INTEGER)`)
      .pluck()
      .all(term, limit);
  }

  /** What recall scores a memory by, for these seqs (any order; pruned ones are left out). */
  scoringBySeqs(seqs: readonly number[]): ScoringFields[] {
    if (seqs.length === 0) return [];
    return this.st.get<unknown[], ScoringFields>(`SELECT seq, queue, outcome, createdAt FROM memories WHERE seq IN (${placeholders(seqs.length)})`).all(...seqs);
  }

  bySeqs(seqs: readonly number[]): MemoryRow[] {
    if (seqs.length === 0) return [];
    return this.st.get<unknown[], MemoryRow>(`SELECT * FROM memories WHERE seq IN (${placeholders(seqs.length)})`).all(...seqs);
  }

  recent(filter: MemoryFilter, limit: number): MemoryRow[] {
    const params: unknown[] = [];
    const where = filterSql(filter, params);
    params.push(limit);
    return this.st.get<unknown[], MemoryRow>(`SELECT m.* FROM memories m WHERE 1${where} ORDER BY m.seq DESC LIMIT CAST(? AS INTEGER)`).all(...params);
  }

  byTask(taskId: string, limit: number): MemoryRow[] {
    return this.st.get<[string, number], MemoryRow>(`SELECT * FROM memories WHERE taskId = ? ORDER BY seq DESC LIMIT CAST(? AS INTEGER)`).all(taskId, limit);
  }

  /**
   * Retention: deletes up to `limit` memories of `kinds` created before `before` (or, with
   * `belowSeq`, below that seq), oldest first, from `fromSeq` (below it, the caller knows none of
   * `kinds` is left to prune: `floor` of an earlier batch). Walks the primary key from `fromSeq`
   * to the first row created after `before`, as the event pruner does, so it reads no more than it
   * deletes plus the kept kinds among them: from 0, the kept kinds' every old row (a million notes
   * kept for good, under old execution records, took 0.4 s of the writer a run), from the floor,
   * those written since the last run. The FTS rows go with them (the delete trigger). Gives how
   * many went, and the floor for the next batch: no row of `kinds` below it is left to prune
   * (seqs only grow, so none comes back below it).
   */
  prune(kinds: readonly string[], bound: { before: number } | { belowSeq: number }, limit: number, fromSeq = 0): { done: number; floor: number } {
    const end =
      "before" in bound
        ? (this.st.get<[number, number], number>(`SELECT seq FROM memories WHERE seq >= ? AND createdAt >= ? ORDER BY seq LIMIT 1`).pluck().get(fromSeq, bound.before) ??
          Number.MAX_SAFE_INTEGER)
        : bound.belowSeq;
    const seqs = this.st
      .get<unknown[], number>(
        `DELETE FROM memories WHERE seq IN (SELECT seq FROM memories WHERE seq >= ? AND seq < ? AND kind IN (${kinds.map(() => "?").join(", ")}) ORDER BY seq LIMIT CAST(? AS INTEGER)) RETURNING seq`,
      )
      .pluck()
      .all(fromSeq, end, ...kinds, limit);
    // A full batch may have left more below `end`: the next one starts after its last row.
    const floor = seqs.length >= limit ? Math.max(...seqs) + 1 : end === Number.MAX_SAFE_INTEGER ? this.nextSeq(fromSeq) : end;
    return { done: seqs.length, floor };
  }

  /** The seq the next memory written will have at least: past every row there is (`atLeast` when there is none past it). */
  private nextSeq(atLeast: number): number {
    const last = this.st.get<[], number | null>(`SELECT max(seq) FROM memories`).pluck().get() ?? null;
    return Math.max(atLeast, last === null ? 0 : last + 1);
  }

  /** The seq of the `keep`-th newest memory of `kinds` (older ones are beyond a count retention); null when fewer are kept. */
  keepFromSeq(kinds: readonly string[], keep: number): number | null {
    const seq = this.st
      .get<unknown[], number>(`SELECT seq FROM memories WHERE kind IN (${kinds.map(() => "?").join(", ")}) ORDER BY seq DESC LIMIT 1 OFFSET CAST(? AS INTEGER)`)
      .pluck()
      .get(...kinds, keep - 1);
    return seq ?? null;
  }
}
