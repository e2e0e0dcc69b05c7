// Answers that list many rows (polls, lists, claimMany, recall) are bounded in bytes as well as
// in count: 560 events of 1 MB each make a 560 MB answer that no transport can carry (V8's
// longest string is 512 MB), so it failed after the cursor had moved. Rows are read lazily
// (better-sqlite3's iterate) and reading stops at the budget, so an oversized page is never
// even loaded. The first row is always taken: each row is at most a request body's size, and
// a page must make progress.

/**
 * A text's size in UTF-8, as it goes out in an answer: its length counts UTF-16 units, a third of
 * the bytes of CJK text (answers of 24 MiB passed an 8 MiB budget).
 */
export const utf8Bytes = (text: string): number => Buffer.byteLength(text, "utf8");

/** What JSON writes for each character that is not itself: `"` and `\` as two, control characters as two (\n) or six (\u0001). */
const ESCAPED = /["\\\u0000-\u001f]/g;
const SHORT_ESCAPES = new Set(["\"", "\\", "\b", "\f", "\n", "\r", "\t"]);

/**
 * Plain text's size in UTF-8 as a JSON string carries it (quotes left out): what a text column
 * (a name, a status) weighs in an answer. Its UTF-8 length alone let a list of agents whose status
 * was 100 control characters go out at twice maxResponseBytes. (JSON text columns, stored
 * escaped already, are weighed by utf8Bytes.)
 */
export function jsonTextBytes(text: string): number {
  let bytes = utf8Bytes(text);
  for (const [char] of text.matchAll(ESCAPED)) bytes += SHORT_ESCAPES.has(char) ? 1 : 5;
  return bytes;
}

/** A nullable column's text in UTF-8 bytes; null takes no room (it goes out as a bare null, counted in an item's fixed part). */
export const columnBytes = (text: string | null): number => (text === null ? 0 : utf8Bytes(text));

/**
 * Takes rows in order while their running size stays within `budget`, and always the first that
 * has a size (a page must make progress), unless `fitOnly`: for what an answer carries beside what
 * was asked for (a claimed task's context), where nothing past the budget need go.
 * `truncated` says it stopped for the budget (more rows were there), not for lack of rows.
 */
export function withinBudget<T>(rows: Iterable<T>, sizeOf: (row: T) => number, budget: number, fitOnly = false): { rows: T[]; truncated: boolean } {
  const taken: T[] = [];
  let used = 0;
  for (const row of rows) {
    const size = sizeOf(row);
    used += size;
    // "The first" is the first that weighs anything: a row that takes no room in the answer (a
    // steal's victim dead-lettered, not handed out) does not make the answer progress.
    // Leaving the loop early closes a better-sqlite3 iterator: the rest is never read.
    if ((used > size || fitOnly) && used > budget) return { rows: taken, truncated: true };
    taken.push(row);
  }
  return { rows: taken, truncated: false };
}
