// A task row's variable-size texts, as SQL reads their size: one expression for every bound that
// weighs task rows (an answer's byte budget, a hold's chunk, a bulk requeue's page), so a text
// column added to tasks is counted by all of them at once. octet_length reads the size from the
// record header, never the text itself (or its overflow pages).

/** SQL: the bytes of a task row's texts (payload, result, errorHistory, lastError, dependsOn, progress, backoff). */
export const TASK_TEXT_BYTES =
  `(octet_length(payload) + IFNULL(octet_length(result), 0) + octet_length(errorHistory) + IFNULL(octet_length(lastError), 0)` +
  ` + IFNULL(octet_length(dependsOn), 0) + IFNULL(octet_length(progress), 0) + IFNULL(octet_length(backoff), 0))`;
