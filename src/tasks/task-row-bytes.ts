// A task row's variable-size texts and what they weigh: one list of columns for every bound that
// weighs task rows (an answer's byte budget, a hold's chunk, a bulk requeue's page), in SQL and in
// JavaScript alike, so a text column added to tasks is counted by all of them at once. The names
// count as much as the JSON: an id, a queue, a capability, a target agent and a lease owner of 200
// characters each and an idempotency key of 500 made a task's answer 3.9 kB where a fixed 600 bytes
// were counted, and a page of 100 such tasks passed a 64 KiB maxResponseBytes six times over.
// octet_length reads the size from the record header, never the text itself (or its overflow pages).
import { columnBytes } from "../db/answer-budget.js";

/** The task columns of variable size an answer carries (JSON texts, names, keys), null or text. */
const TASK_TEXT_COLUMNS = [
  "payload",
  "result",
  // Twice: each entry's time is stored as 13 digits and goes out as an ISO string, over tRPC with
  // its path again in superjson's meta ("items.12.errorHistory.3.at"), ~55 bytes more; no entry is
  // stored in fewer.
  "errorHistory",
  "errorHistory",
  "lastError",
  "dependsOn",
  "progress",
  "checkpoint",
  "backoff",
  "id",
  "queue",
  "capability",
  "targetAgentId",
  "leaseOwner",
  "idempotencyKey",
  // As enqueuedBy: the enqueuing agent's id ('' for none, which goes out as null).
  "idempotencyScope",
  "scheduleId",
  "dedupeKey",
  "orderingKey",
  "traceparent",
  // Twice: JSON writes its `"` and `\` in two bytes each, and it may hold 512 of them (printable
  // ASCII, nothing that escapes longer): a page of claimed tasks whose tracestate was quotes went
  // out 8% past maxResponseBytes over tRPC.
  "tracestate",
  "tracestate",
  // Baggage octets need no escape in JSON (no '"' nor '\\'): counted once.
  "baggage",
] as const;

/** A row holding those columns (TaskRow, task-store.ts). */
export type TaskTexts = { readonly [column in (typeof TASK_TEXT_COLUMNS)[number]]: string | null };

/** SQL: the bytes of a task row's texts, in UTF-8 (each column of TASK_TEXT_COLUMNS, null as 0). */
export const TASK_TEXT_BYTES = `(${TASK_TEXT_COLUMNS.map((column) => `IFNULL(octet_length(${column}), 0)`).join(" + ")})`;

/** The same sum, in JavaScript, of a row already read. */
export function taskTextBytes(row: TaskTexts): number {
  let bytes = 0;
  for (const column of TASK_TEXT_COLUMNS) bytes += columnBytes(row[column]);
  return bytes;
}
