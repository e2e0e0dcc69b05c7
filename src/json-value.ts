// JSON in inputs and answers, and the bounds that make every stored value
// readable again by every route and transport.
//  - jsonValue: payloads, results, metadata and data are stored as JSON text. superjson (tRPC)
//    would happily deliver a BigInt (JSON.stringify throws: a 500), a Map or Set (stored as {}),
//    NaN (stored as null) or a Date (read back as a string). Only JSON values get through;
//    anything else is a 400 naming where it is.
//  - depth: see json-checks.ts.
import { z } from "zod";
import type { JsonObject, JsonValue } from "./json-types.js";
import { findNonJson, isJsonObject } from "./json-checks.js";

export { assertJsonDepth, findNonJson, isJsonObject, JSON_DEPTH_CEILING, jsonDepth, jsonKind, MAX_TIME_MS, nestsTooDeep, sameJson } from "./json-checks.js";

/**
 * What a stored JSON value may not hold, said in each such field's description: superjson (tRPC's
 * wire format, the typed client's) refuses these keys, so no transport takes them (a 400 naming where).
 */
export const RESERVED_JSON_KEYS = "no object key may be __proto__, constructor or prototype";

/** Any JSON value (object, array, string, finite number, boolean, null): anything else is a 400 naming where it is. */
export const jsonValue = z
  .custom<JsonValue>(() => true)
  .superRefine((value, ctx) => {
    // A field present with the value undefined (superjson carries one; JSON cannot) is no JSON
    // value: left through, a required field (kv.set's value) reached its store as nothing, a 500.
    // The optional fields' .optional() and .default() take undefined before this check runs.
    if (value === undefined) {
      ctx.addIssue({ code: "custom", message: "is required" });
      return;
    }
    const problem = findNonJson(value);
    if (problem) ctx.addIssue({ code: "custom", message: `must be JSON: ${problem}` });
  })
  .meta({ description: "Any JSON value" });

/**
 * jsonValue taking at most `maxBytes` as JSON text (UTF-8): for values that ride on many answers
 * or are kept whole (a run's progress, a key's value). Larger is a 400 saying how large it is.
 */
export const jsonWithin = (maxBytes: number) =>
  jsonValue.superRefine((value, ctx) => {
    // A value that is no JSON was named by jsonValue's own check; it cannot be measured.
    if (value === undefined || findNonJson(value) !== null) return;
    const bytes = Buffer.byteLength(JSON.stringify(value), "utf8");
    if (bytes > maxBytes) ctx.addIssue({ code: "custom", message: `must take at most ${maxBytes} bytes as JSON (it takes ${bytes})` });
  });

/** A JSON object (for metadata). */
export const jsonObject = z
  .custom<JsonObject>(isJsonObject, "must be a JSON object")
  .superRefine((value, ctx) => {
    const problem = findNonJson(value);
    if (problem) ctx.addIssue({ code: "custom", message: `must be JSON: ${problem}` });
  })
  .meta({ description: "A JSON object" });

/** A JSON value in an answer: stored values were checked on the way in, so they are not walked again. */
export const jsonOutput = z.custom<JsonValue>(() => true).meta({ description: "Any JSON value" });
export const jsonObjectOutput = z.custom<JsonObject>(() => true).meta({ description: "A JSON object" });

