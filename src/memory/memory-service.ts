// The pre-execution memory on the event loop: notes and lessons go to the writer thread, recall
// to the reader thread (memory-commands.ts, memory-recall.ts). Both share the server's schemas.
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import type { Logger } from "../logger.js";
import { assertJsonDepth } from "../json-value.js";
import type { ForgetRequest, Memory, MemoryMatch, RecallRequest, RememberRequest } from "./memory-schemas.js";

/** Pages (4 KiB) one compaction step merges: about 15 ms of the writer's time here, what a write arriving meanwhile may wait. */
const COMPACTION_STEP_PAGES = 200;
/** Notes one read looks at for a missing notes_fts entry (a key lookup each: 100,000 took 63 ms here). */
const MISSED_NOTES_WINDOW = 5000;
/** The text one write indexes at most (at least one note): tokenizing 5,000 notes of 20,000 characters held the writer 5 s. */
const MISSED_NOTES_BYTES = 1024 * 1024;

export class MemoryService {
  /** db.writesSent when a compaction step last found nothing to merge. */
  private compactAsOf = -1;
  /** Every note up to this seq is in notes_fts (indexMissedNotes). */
  private notesIndexedThrough = 0;

  constructor(
    private readonly config: Pick<Config, "maxJsonDepth" | "maxResponseBytes" | "memoryContextLimit">,
    private readonly db: Database,
    private readonly log?: Logger,
  ) {}

  /**
   * Indexes the notes and lessons a server of an earlier version sharing the file stored without
   * their notes_fts entry (its store knew no notes_fts: migration notes_index), so recall finds
   * them by their words; those of this version's store are indexed as they are stored. Looks
   * from where the last run stopped: all notes once after start-up, then the new ones, on the
   * reader; writes only when some are missing (an idle server writes nothing), a megabyte of
   * text a write at most. Run before each compaction (the memoryIndexCompactMs job). Resolves
   * with how many it indexed.
   */
  async indexMissedNotes(stop?: AbortSignal): Promise<number> {
    let indexed = 0;
    while (stop?.aborted !== true) {
      const found = await this.db.read("memory.missedNotes", { afterSeq: this.notesIndexedThrough, window: MISSED_NOTES_WINDOW, budgetBytes: MISSED_NOTES_BYTES });
      if (found.seqs.length > 0) indexed += await this.db.write("memory.indexNotes", found.seqs);
      this.notesIndexedThrough = found.throughSeq;
      if (!found.more) break;
    }
    if (indexed > 0) this.log?.info({ indexed }, "indexed notes stored without their search entry, by a server of an earlier version on this file");
    return indexed;
  }

  remember(request: RememberRequest): Promise<Memory> {
    assertJsonDepth("data", request.data, this.config.maxJsonDepth);
    return this.db.write("memory.remember", request);
  }

  /**
   * Deletes a memory, with its search-index entry; the memory as it was. MEMORY_NOT_FOUND (404)
   * when there is none. Recall stops finding it at once by its rarer words; a claim's context
   * made of common words may still hold it for up to a second (recall-cache.ts, PROBE_TTL_MS).
   */
  forget(request: ForgetRequest): Promise<Memory> {
    return this.db.write("memory.forget", request);
  }

  /** The best `limit` matches, fewer if their answer would pass maxResponseBytes. */
  recall(request: RecallRequest): Promise<MemoryMatch[]> {
    return this.db.read("memory.recall", request);
  }

  /**
   * Compacts the search index (the memoryIndexCompactMs job): merges its segments in steps of
   * about `stepPages` pages, each a write of its own, so other writes take turns with it. While
   * nothing else is written it goes on until no level holds two segments; while other writes
   * arrive, one step a run. Nothing at all when nothing was written since the index was found
   * compact. Stops between steps once `stop` is aborted (shutdown). Resolves with the steps that
   * merged something. Only this process's writes count as "written since": memories another
   * server process writes on the same file are merged by that process's own job.
   */
  async compactIndex(stepPages = COMPACTION_STEP_PAGES, stop?: AbortSignal): Promise<number> {
    if (this.compactAsOf === this.db.writesSent) return 0;
    let merged = 0;
    while (stop?.aborted !== true) {
      const sentBefore = this.db.writesSent;
      if (!(await this.db.write("memory.compactIndex", { pages: stepPages }))) {
        // Compact as of this step; a write sent meanwhile may have added a segment.
        this.compactAsOf = sentBefore + 1;
        return merged;
      }
      merged++;
      if (this.db.writesSent !== sentBefore + 1) return merged;
    }
    return merged;
  }
}
