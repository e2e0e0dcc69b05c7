// An MCP tool's answer goes whole into a model's context. The API bounds an answer by
// maxResponseBytes (8 MiB by default), which suits a program; a model's host refuses or cuts an
// answer far smaller (tens of thousands of tokens), and a cut that falls mid-JSON leaves the model
// nothing it can read. So an answer over mcpMaxAnswerChars is made to fit here, as JSON still: the
// small fields (ids, statuses, leaseToken, times) are kept whole, and the large values share what
// is left: a long string keeps its beginning, then a marker saying how much was cut; a value with
// no room left is a marker alone; a long list keeps its first items and says how many follow, and
// an object of more keys than fit keeps its first entries and names how many keys follow.
// A task's payload, result, checkpoint and progress are read whole, in pieces, with
// read_task_value, a shared key's value with read_key_value, an event's payload with
// read_event_value.
import { z } from "zod";
import { invalidField } from "../errors.js";
import type { JsonValue } from "../json-types.js";

/** What every piece of a value answers (pieceOf): its JSON text from `offset`; `nextOffset` null at its end. */
const pieceFields = { totalChars: z.number().int(), offset: z.number().int(), text: z.string(), nextOffset: z.number().int().nullable() };

/** A task's values read_task_value reads. */
export const TASK_VALUE_FIELDS = ["payload", "result", "checkpoint", "progress"] as const;

/** read_task_value's answer: `text` is the value's JSON text from `offset`; `nextOffset` null at its end. */
export const taskValuePieceSchema = z.object({ taskId: z.string(), field: z.enum(TASK_VALUE_FIELDS), ...pieceFields });
export type TaskValuePiece = z.infer<typeof taskValuePieceSchema>;

/** read_key_value's answer: as read_task_value's, with the version the piece is of (null: the key is absent). */
export const keyValuePieceSchema = z.object({ key: z.string(), version: z.number().int().nullable(), ...pieceFields });
export type KeyValuePiece = z.infer<typeof keyValuePieceSchema>;

/** read_event_value's answer: an event's payload, a piece at a time. */
export const eventValuePieceSchema = z.object({ seq: z.number().int(), type: z.string(), ...pieceFields });
export type EventValuePiece = z.infer<typeof eventValuePieceSchema>;

/**
 * The piece of `whole` (a value's JSON text) from `offset`, at most `chars` characters as JSON
 * text, and where the next starts (null at the end). Throws INVALID_INPUT naming `offset` past
 * the end. `what` names the value in that error ("the payload").
 */
export function pieceOf(whole: string, offset: number, chars: number, what: string): { totalChars: number; offset: number; text: string; nextOffset: number | null } {
  if (offset > whole.length) throw invalidField("offset", `is past the end of ${what}'s ${whole.length} characters of JSON`);
  const rest = whole.slice(offset);
  const within = prefixWithin(rest, chars);
  // At least one character (a whole pair of surrogates): a '"' or '\\' costs 2 as JSON text, a
  // lone surrogate 6, so a small length took nothing, and nextOffset, the same offset again,
  // sent a reader round for good.
  const text = within !== "" || rest === "" ? within : rest.slice(0, rest.codePointAt(0)! > 0xffff ? 2 : 1);
  const end = offset + text.length;
  return { totalChars: whole.length, offset, text, nextOffset: end < whole.length ? end : null };
}

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
    if (typeof node === "string") {
      cuts++;
      const keep = room - MARKER_ROOM;
      if (keep < MIN_PREFIX) return `${CUT_MARK} a string of ${node.length} characters]`;
      // The JSON text of a string may be longer than the string (escapes): keep by what it costs.
      const prefix = prefixWithin(node, keep);
      return `${prefix}${CUT_MARK} ${node.length - prefix.length} more characters]`;
    }
    // A number, boolean or null is kept whole: nothing of it is cut, so nothing is counted.
    if (node === null || typeof node !== "object") return node;
    if (Array.isArray(node)) return shrinkEntries(node.map((item): [string | null, JsonValue] => [null, item]), room).map(([, item]) => item);
    return Object.fromEntries(shrinkEntries(Object.entries(node), room));
  };
  /**
   * A list's items (key null) or an object's entries: each a share of `room`; past what shares can
   * hold, the first ones, as many as keep a share worth having, then a marker naming how many
   * follow (an item of a list; a key of an object, whose keys cost room too and are never cut).
   */
  const shrinkEntries = (entries: Array<[string | null, JsonValue]>, room: number): Array<[string | null, JsonValue]> => {
    const keyCost = entries.map(([key]) => (key === null ? 1 : JSON.stringify(key).length + 2));
    const itemSizes = entries.map(([, item]) => sizeOf(item));
    let kept = entries.length;
    let keysOf = 2 + keyCost.reduce((sum, cost) => sum + cost, 0);
    const sharesOf = (count: number) => fill(itemSizes.slice(0, count), room - keysOf - (count < entries.length ? MARKER_ROOM : 0));
    let shares = sharesOf(kept);
    // An entry squeezed below its size and below a marker's room says nothing (and a number or a
    // key cannot be squeezed at all): fewer entries, each with room to say something or whole.
    // Compared in a loop: Math.min(...shares) overflows the stack on a list of 100,000s.
    const squeezed = () => shares.some((share, i) => share < itemSizes[i]! && share < MARKER_ROOM * 2);
    while (kept > 1 && squeezed()) {
      const next = Math.max(1, Math.floor(kept / 2));
      for (let i = next; i < kept; i++) keysOf -= keyCost[i]!;
      kept = next;
      shares = sharesOf(kept);
    }
    const out = entries.slice(0, kept).map(([key, item], i): [string | null, JsonValue] => [key, shrink(item, shares[i]!)]);
    if (kept < entries.length) {
      cuts++;
      const marker = `${CUT_MARK} ${entries.length - kept} more ${entries[0]![0] === null ? "items" : "keys"}]`;
      out.push(entries[0]![0] === null ? [null, marker] : [marker, null]);
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
