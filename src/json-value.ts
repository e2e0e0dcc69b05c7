// Schemas shared by every capability's inputs.
//  - jsonValue: payloads, results, metadata and data are stored as JSON text. superjson (tRPC)
//    would happily deliver a BigInt (JSON.stringify throws: a 500), a Map or Set (stored as {}),
//    NaN (stored as null) or a Date (read back as a string). Only JSON values get through;
//    anything else is a 400 naming where it is.
//  - numberInput: numbers arrive as numbers (JSON, superjson) or as strings (query strings).
//    z.coerce would also turn null into 0 (priority: null = the highest priority) and true into 1.
import { z } from "zod";

/** The path and kind of the first value in `value` that JSON cannot represent, or null. */
export function findNonJson(value: unknown, path = ""): string | null {
  if (value === null || typeof value === "string" || typeof value === "boolean") return null;
  if (typeof value === "number") return Number.isFinite(value) ? null : `${path || "value"} is ${value} (not representable in JSON)`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNonJson(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      return `${path || "value"} is a ${(value as object).constructor?.name ?? "non-plain object"} (only plain JSON objects are stored)`;
    }
    for (const [key, inner] of Object.entries(value)) {
      const found = findNonJson(inner, path ? `${path}.${key}` : key);
      if (found) return found;
    }
    return null;
  }
  return `${path || "value"} is ${typeof value === "undefined" ? "undefined" : `a ${typeof value}`} (not representable in JSON)`;
}

/** Any JSON value (object, array, string, finite number, boolean, null). */
export const jsonValue = z.unknown().superRefine((value, ctx) => {
  const problem = value === undefined ? null : findNonJson(value);
  if (problem) ctx.addIssue({ code: "custom", message: `must be JSON: ${problem}` });
});

/** A JSON object (for metadata). */
export const jsonObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const problem = findNonJson(value);
  if (problem) ctx.addIssue({ code: "custom", message: `must be JSON: ${problem}` });
});

const fromQueryString = (v: unknown): unknown => (typeof v === "string" && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v);
const bounded = (schema: z.ZodNumber, min?: number, max?: number): z.ZodNumber =>
  max === undefined ? (min === undefined ? schema : schema.min(min)) : schema.min(min ?? -Number.MAX_VALUE).max(max);

/** A number from JSON, or a decimal string from a query string; nothing else is converted. */
export const numberInput = (min?: number, max?: number) => z.preprocess(fromQueryString, bounded(z.number(), min, max));
/** An integer, the same way. */
export const intInput = (min?: number, max?: number) => z.preprocess(fromQueryString, bounded(z.number().int(), min, max));
