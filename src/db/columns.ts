// Conversions between column values and wire values, shared by every store. Raw SQL returns
// times as integer ms and Prisma returns Dates; both go through toDate.
import type { JsonObject, JsonValue } from "../json-types.js";
import { hasRefusedKey, JSON_DEPTH_CEILING, jsonDepth, REFUSED_KEYS } from "../json-checks.js";

export const toDate = (value: number | bigint | Date): Date => (value instanceof Date ? value : new Date(Number(value)));
export const toDateOrNull = (value: number | bigint | Date | null): Date | null => (value == null ? null : toDate(value));

/** JSON text for a column. `undefined` (absent) is stored as null JSON. */
export const toJsonText = (value: unknown): string => JSON.stringify(value ?? null);

/**
 * What a stored value reads back as when no transport could carry it: nested deeper than
 * JSON_DEPTH_CEILING, which only a database written before inputs were depth-bounded can hold.
 * Answering with it keeps every read, poll and live stream working; a task whose payload is this
 * is dead-lettered at claim time (TaskService), since no agent can run it.
 */
export const UNDELIVERABLE_VALUE = Object.freeze({
  undeliverable: `stored value nests deeper than ${JSON_DEPTH_CEILING} levels and cannot be delivered`,
});

const REFUSED_KEY_LIST = [...REFUSED_KEYS];

/**
 * What a stored value reads back as when it holds a key tRPC's wire format refuses (REFUSED_KEYS),
 * which only a database written before inputs refused those keys can hold. Like
 * UNDELIVERABLE_VALUE on every route: a task whose payload is this is dead-lettered at claim time.
 */
export const REFUSED_KEY_VALUE = Object.freeze({
  undeliverable: `stored value holds a key tRPC's wire format refuses (${REFUSED_KEY_LIST.join(", ")}) and cannot be delivered`,
});

/** Why a value read back cannot be delivered, if it is one of the markers above; else null. */
export function undeliverableReason(value: unknown): string | null {
  if (value === UNDELIVERABLE_VALUE) return "it nests too deep for any transport";
  if (value === REFUSED_KEY_VALUE) return `it holds a key tRPC's wire format refuses (${REFUSED_KEY_LIST.join(", ")})`;
  return null;
}

export const fromJsonText = (text: string | null): JsonValue => {
  if (text == null) return null;
  const value = JSON.parse(text) as JsonValue;
  // Every level takes two characters, so only a long text can be too deep: short ones cost nothing.
  if (text.length > 2 * JSON_DEPTH_CEILING && jsonDepth(value, JSON_DEPTH_CEILING) > JSON_DEPTH_CEILING) return UNDELIVERABLE_VALUE;
  // A refused key is spelled out in the text, or escaped (\u0063onstructor): only then is the value walked.
  if (mayHoldRefusedKey(text) && hasRefusedKey(value)) return REFUSED_KEY_VALUE;
  return value;
};

const mayHoldRefusedKey = (text: string): boolean => text.includes("\\u") || REFUSED_KEY_LIST.some((key) => text.includes(key));

/** A JSON object column (metadata): written only from validated JSON objects. */
export const fromJsonObjectText = (text: string): JsonObject => fromJsonText(text) as JsonObject;
