// The pre-execution memory on the event loop: notes and lessons go to the writer thread, recall
// to the reader thread (memory-commands.ts, memory-recall.ts). Both share the server's schemas.
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import { assertJsonDepth } from "../json-value.js";
import type { Memory, MemoryMatch, RecallRequest, RememberRequest } from "./memory-schemas.js";

export class MemoryService {
  constructor(
    private readonly config: Pick<Config, "maxJsonDepth" | "maxResponseBytes" | "memoryContextLimit">,
    private readonly db: Database,
  ) {}

  remember(request: RememberRequest): Promise<Memory> {
    assertJsonDepth("data", request.data, this.config.maxJsonDepth);
    return this.db.write("memory.remember", request);
  }

  /** The best `limit` matches, fewer if their answer would pass maxResponseBytes. */
  recall(request: RecallRequest): Promise<MemoryMatch[]> {
    return this.db.read("memory.recall", request);
  }
}
