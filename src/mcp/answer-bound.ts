// An MCP tool's answer goes whole into a model's context. The API bounds an answer by
// maxResponseBytes (8 MiB by default), which suits a program; a model's host refuses or cuts an
// answer far smaller (tens of thousands of tokens), and a cut that falls mid-JSON leaves the model
// nothing it can read. So an answer over mcpMaxAnswerChars is made to fit here, as JSON still: the
// small fields (ids, statuses, leaseToken, times) are kept whole, and the large values share what
// is left: a long string keeps its beginning, then a marker saying how much was cut; a value with
// no room left is a marker alone; a long list keeps its first items and says how many follow.
// A task's payload, result, checkpoint and progress are read whole, in pieces, with
// read_task_value.
import { z } from "zod";
import type { JsonValue } from "../json-types.js";

/** A task's values read_task_value reads. */
export const TASK_VALUE_FIELDS = ["payload", "result", "checkpoint", "progress"] as const;

/** read_task_value's answer: `text` is the value's JSON text from `offset`; `nextOffset` null at its end. */
export const taskValuePieceSchema = z.object({
  taskId: z.string(),
  field: z.enum(TASK_VALUE_FIELDS),
  totalChars: z.number().int(),
  offset: z.number().int(),
  text: z.string(),
  nextOffset: z.number().int().nullable(),
});
export type TaskValuePiece = z.infer<typeof taskValuePieceSchema>;

/** What every cut leaves in the text, for the model to see and grep. */
export const CUT_MARK = "…[cut:";
/** Room kept for a marker when a string keeps its beginning. */
const MARKER_ROOM = 48;
/** Below this, a cut value keeps no beginning: its marker alone takes its place. */
const MIN_PREFIX = 16;

/** An answer's JSON text within `maxChars` (a soft bound: markers may pass it by a little), and how many values were cut. */
export function boundAnswer(text: string, maxChars: number): { text: string; cuts: number } {
  if (text.length <= maxChars) return { text, cuts: 0 };
  const value = JSON.parse(text) as JsonValue;
  const sizes = new Map<object, number>();
  const sizeOf = (node: JsonValue): number => {
    if (node === null || typeof node !== "object") return JSON.stringify(node).length;
    const known = sizes.get(node);
    if (known !== undefined) return known;
    let size = 2;
    if (Array.isArray(node)) {
      for (const item of node) size += sizeOf(item) + 1;
      if (node.length > 0) size -= 1;
    } else {
      const entries = Object.entries(node);
      for (const [key, item] of entries) size += JSON.stringify(key).length + 1 + sizeOf(item) + 1;
      if (entries.length > 0) size -= 1;
    }
    sizes.set(node, size);
    return size;
  };
  let cuts = 0;
  const shrink = (node: JsonValue, room: number): JsonValue => {
    const size = sizeOf(node);
    if (size <= room) return node;
    cuts++;
    if (typeof node === "string") {
      const keep = room - MARKER_ROOM;
      if (keep < MIN_PREFIX) return `${CUT_MARK} a string of ${node.length} characters]`;
      // The JSON text of a string may be longer than the string (escapes): keep by what it costs.
      const prefix = prefixWithin(node, keep);
      return `${prefix}${CUT_MARK} ${node.length - prefix.length} more characters]`;
    }
    if (node === null || typeof node !== "object") return node;
    cuts--;
    if (Array.isArray(node)) return shrinkList(node, room);
    const entries = Object.entries(node);
    const keys = entries.reduce((sum, [key]) => sum + JSON.stringify(key).length + 2, 2);
    const shares = fill(entries.map(([, item]) => sizeOf(item)), room - keys);
    return Object.fromEntries(entries.map(([key, item], i) => [key, shrink(item, shares[i]!)]));
  };
  /** A list's first items, as many as keep a share of `room` worth having, then a marker naming how many follow. */
  const shrinkList = (list: JsonValue[], room: number): JsonValue[] => {
    let kept = list.length;
    let shares = fill(list.map(sizeOf), room - 2 - kept);
    // Items squeezed below a marker's room say nothing: fewer items, each with room to say something.
    while (kept > 1 && Math.min(...shares) < MARKER_ROOM * 2) {
      kept = Math.max(1, Math.floor(kept / 2));
      shares = fill(list.slice(0, kept).map(sizeOf), room - 2 - kept - MARKER_ROOM);
    }
    const out = list.slice(0, kept).map((item, i) => shrink(item, shares[i]!));
    if (kept < list.length) {
      cuts++;
      out.push(`${CUT_MARK} ${list.length - kept} more items]`);
    }
    return out;
  };
  return { text: JSON.stringify(shrink(value, maxChars)), cuts };
}

/**
 * Shares of `room` for values of these sizes: each small one whole, the large ones an equal share
 * of what the small ones leave (water-filling), so one huge value does not cost its neighbours.
 */
function fill(sizes: readonly number[], room: number): number[] {
  const order = sizes.map((size, i) => ({ size, i })).sort((a, b) => a.size - b.size);
  const shares = new Array<number>(sizes.length);
  let left = Math.max(0, room);
  for (const [n, { size, i }] of order.entries()) {
    const share = Math.floor(left / (order.length - n));
    shares[i] = Math.min(size, share);
    left -= shares[i]!;
  }
  return shares;
}

/** The longest beginning of `text` whose JSON text is at most `chars`, never half a surrogate pair. */
export function prefixWithin(text: string, chars: number): string {
  let cost = 0;
  let end = 0;
  while (end < text.length) {
    const code = text.charCodeAt(end);
    const width = code >= 0xd800 && code <= 0xdbff ? 2 : 1;
    const piece = text.slice(end, end + width);
    const pieceCost = JSON.stringify(piece).length - 2;
    if (cost + pieceCost > chars) break;
    cost += pieceCost;
    end += width;
  }
  return text.slice(0, end);
}
