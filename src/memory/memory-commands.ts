// The pre-execution memory's writes, as the database writer thread runs them: every finished or
// failed run leaves an execution record (inside the write that ended the run), and agents add
// notes and lessons. Searchable at once: the FTS5 index is kept in step by triggers.
import { newId } from "../ids.js";
import { fromJsonText, toJsonText } from "../db/columns.js";
import type { WriteContext } from "../db/writer.js";
import type { TaskRow } from "../tasks/task-store.js";
import { payloadText } from "./fts-query.js";
import { wholeCharacters } from "../whole-characters.js";
import { sameJson, sameStringsAnyOrder } from "../json-checks.js";
import { CoordinationError, notFound } from "../errors.js";
import type { ForgetRequest, Memory, RememberRequest } from "./memory-schemas.js";
import type { MemoryChanges } from "./memory-changes.js";
import { toMemory, type MemoryRow, type MemoryStore } from "./memory-store.js";

export type ExecutionOutcome = "completed" | "failed" | "dead_letter";

/** `text` cut to `max` units, whole characters only (wholeCharacters), with an ellipsis when cut. */
const truncate = (text: string, max = 1000): string => (text.length > max ? `${wholeCharacters(text, max)}…` : text);

/** Inside a write: the execution record of a run that just ended. `run` is the row as it was while claimed. */
export function recordExecution(memories: MemoryStore, ctx: WriteContext, task: TaskRow, outcome: ExecutionOutcome, run: TaskRow = task): void {
  const claimedAt = run.claimedAt == null ? null : Number(run.claimedAt);
  const detail = outcome === "completed" ? `Result: ${truncate(task.result ?? "null")}` : `Error: ${truncate(task.lastError ?? "")}`;
  memories.insert(
    {
      id: newId(),
      kind: "execution",
      content: [
        `Task in queue ${task.queue}${task.capability ? ` needing ${task.capability}` : ""} ${outcome.replace("_", " ")}`,
        `on attempt ${run.attempts} of ${task.maxAttempts} by agent ${run.leaseOwner ?? "unknown"}.`,
        `Payload: ${payloadText(fromJsonText(task.payload))}.`,
        detail,
      ].join(" "),
      agentId: run.leaseOwner,
      queue: task.queue,
      capability: task.capability,
      taskId: task.id,
      outcome,
      durationMs: claimedAt === null ? null : Math.max(0, ctx.now - claimedAt),
      tags: JSON.stringify([task.queue, outcome, ...(task.capability ? [task.capability] : [])]),
      data: JSON.stringify({ attempt: run.attempts }),
      idempotencyKey: null,
    },
    ctx.now,
  );
}

/** `changes`: told, once committed, of every delete and every note (memory-changes.ts). */
export function memoryCommands(memories: MemoryStore, changes: MemoryChanges) {
  return {
    /** Notes another version's server stored without their notes_fts entry (memory.missedNotes found them), indexed; how many. Dropped from the recall cache like any new note. */
    "memory.indexNotes": (ctx: WriteContext, seqs: number[]): number => {
      const indexed = memories.indexNotes(seqs);
      if (indexed > 0) ctx.afterCommit(() => changes.changed());
      return indexed;
    },

    /** One step of the search index's compaction, about `pages` pages; false once there is nothing left to merge. */
    "memory.compactIndex": (_ctx: WriteContext, args: { pages: number }): boolean => memories.compactIndex(args.pages),

    /** Deletes a memory (a note, a lesson or an execution record); MEMORY_NOT_FOUND when there is none. */
    "memory.forget": (ctx: WriteContext, request: ForgetRequest): Memory => {
      const row = memories.deleteById(request.memoryId);
      if (!row) throw notFound("MEMORY_NOT_FOUND", request.memoryId);
      ctx.afterCommit(() => changes.changed());
      return toMemory(row);
    },

    /**
     * Stores a note or lesson. Sent again with its idempotencyKey (its answer lost), the memory that
     * key stored for its agentId, nothing added, while that memory is kept (not forgotten or
     * pruned); asking for another memory under the key is a 409 IDEMPOTENCY_MISMATCH naming the
     * fields that differ.
     */
    "memory.remember": (ctx: WriteContext, request: RememberRequest): Memory => {
      const key = request.idempotencyKey;
      const stored = key === undefined ? undefined : memories.findByKey(request.agentId ?? null, key);
      if (stored !== undefined) {
        const differs = rememberedDifferently(stored, request);
        if (differs.length > 0) {
          throw new CoordinationError("IDEMPOTENCY_MISMATCH", `idempotencyKey "${key}" was used for memory "${stored.id}" with a different ${differs.join(", ")}`, { memoryId: stored.id, differs });
        }
        return toMemory(stored);
      }
      ctx.afterCommit(() => changes.changed());
      return toMemory(
        memories.insert(
          {
            id: newId(),
            kind: request.kind,
            content: request.content,
            agentId: request.agentId ?? null,
            queue: request.queue ?? null,
            capability: request.capability ?? null,
            taskId: request.taskId ?? null,
            outcome: null,
            durationMs: null,
            tags: JSON.stringify(request.tags),
            data: toJsonText(request.data === undefined ? {} : request.data),
            idempotencyKey: key ?? null,
          },
          ctx.now,
        ),
      );
    },
  };
}

/** The fields of a remember that ask for another memory than `stored` (the same key sent with other text, another kind, …). */
function rememberedDifferently(stored: MemoryRow, request: RememberRequest): string[] {
  const differs: string[] = [];
  if (stored.content !== request.content) differs.push("content");
  if (stored.kind !== request.kind) differs.push("kind");
  if (stored.queue !== (request.queue ?? null)) differs.push("queue");
  if (stored.capability !== (request.capability ?? null)) differs.push("capability");
  if (stored.taskId !== (request.taskId ?? null)) differs.push("taskId");
  // Words to find it by, whatever their order: a client building them from a set (a Python set's
  // order changes from one process to the next) sends the same tags in another order when it
  // sends again. Each word as often as before: a word twice weighs more in the index.
  if (!sameStringsAnyOrder(JSON.parse(stored.tags) as string[], request.tags)) differs.push("tags");
  if (!sameJson(fromJsonText(stored.data), request.data === undefined ? {} : request.data)) differs.push("data");
  return differs;
}
