// Builds a procedure's input from a REST request: path parameters, query string and JSON body,
// merged into one object that the procedure's own schema then validates, exactly as over tRPC.
// This is the one place where REST differs from tRPC, and it only changes spelling and text:
//  - query-string and path values are text: each is turned into the type its field expects
//    (a decimal integer, true/false, a list from repeated or comma-separated values, none of
//    them empty); anything else stays text and fails validation with a message naming the field;
//  - the seed's clients write snake_case: `max_attempts` is read as `maxAttempts`, and a route's
//    aliases (the seed's `queue` for `queues`) as their field. Two spellings of one field that
//    disagree are a 400 naming both.
// JSON bodies are taken as they are: JSON already has numbers and booleans.
import type { z } from "zod";
import { invalidField } from "../errors.js";
import { sameJson } from "../json-value.js";
import { wholeReadAsOther } from "../whole-digits.js";
import type { Route } from "./routes.js";

type Kind = "number" | "boolean" | "null" | "array" | "text" | "number-or-text";

interface ZodDef {
  type: string;
  innerType?: z.ZodType;
  element?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  shape?: Record<string, z.ZodType>;
}
const defOf = (schema: z.ZodType): ZodDef => (schema as unknown as { _zod: { def: ZodDef } })._zod.def;

/** Through optional, default, nullable and pipes, to the schema that decides the type. */
function unwrap(schema: z.ZodType): z.ZodType {
  for (let current = schema; ; ) {
    const def = defOf(current);
    const inner = def.type === "pipe" ? def.in : def.innerType;
    if (inner === undefined || !["optional", "default", "prefault", "nullable", "pipe", "readonly", "nonoptional"].includes(def.type)) return current;
    current = inner;
  }
}

/** The fields of an object input schema. */
export function inputShape(schema: z.ZodType | undefined): Record<string, z.ZodType> {
  if (schema === undefined) return {};
  return defOf(unwrap(schema)).shape ?? {};
}

function kindOf(schema: z.ZodType): Kind {
  const def = defOf(unwrap(schema));
  if (def.type === "number" || def.type === "int") return "number";
  if (def.type === "boolean") return "boolean";
  // A field that takes only null (tasks.update's checkpoint: null clears it): `?checkpoint=null`.
  if (def.type === "null") return "null";
  if (def.type === "array") return "array";
  if (def.type === "union" && def.options?.some((option) => defOf(unwrap(option)).type === "number")) return "number-or-text";
  return "text";
}

/**
 * A number as text: decimal, with a fraction and an exponent as JSON writes them (and as Python's
 * str() writes a float below 1e-4 or from 1e16: `load=5e-05`). A sign and leading zeros are taken.
 */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** One field's query-string values as the type its schema expects. */
function fromText(values: string[], kind: Kind, field: string): unknown {
  if (kind === "array") {
    const items = values.flatMap((value) => value.split(","));
    // `types=` or `a,,b` (a client joining an empty list) must not read as a narrower filter, or
    // as none: every item is named, or the parameter is left out.
    if (items.includes("")) throw invalidField(field, `has an empty item (got ${JSON.stringify(values.join(","))}): name each value, or leave ${field} out`);
    return items;
  }
  if (values.length > 1) throw invalidField(field, `given ${values.length} times; give it once`);
  const value = values[0]!;
  // 1e400 is Infinity, no number a field takes: refused below as text that is not a number.
  if ((kind === "number" || kind === "number-or-text") && DECIMAL.test(value) && Number.isFinite(Number(value))) {
    const number = Number(value);
    // Whole digits past 2^53 read as another number (9007199254740993 as …992): a kv.increment's
    // `by` would add what nobody sent. A body's JSON cannot be told apart; the query's text can.
    const other = wholeReadAsOther(value, number);
    if (other === undefined) return number;
    // A field that also takes text judges the digits as the text they are.
    if (kind === "number-or-text") return value;
    throw invalidField(field, `is past 2^53, where a number does not hold every whole number (got ${JSON.stringify(value)}, which would be read as ${other})`);
  }
  if (kind === "boolean" && (value === "true" || value === "false")) return value === "true";
  if (kind === "null" && value === "null") return null;
  // Every query value is text: "(got string)" would say nothing; the text itself does.
  if (kind === "number") throw invalidField(field, `must be a number (got ${JSON.stringify(value)})`);
  if (kind === "boolean") throw invalidField(field, `must be true or false (got ${JSON.stringify(value)})`);
  if (kind === "null") throw invalidField(field, `must be null (got ${JSON.stringify(value)})`);
  return value;
}

const camelCase = (key: string): string => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * The field of `shape` a client's key names: itself, a route alias, or its camelCase spelling.
 * A key that names no field keeps the client's spelling, so the strict schema's 400 names it as
 * sent. Keys are the client's text: only own properties count (`constructor` or `__proto__` name
 * no field), and objects built from them have no prototype.
 */
function fieldOf(key: string, shape: Record<string, z.ZodType>, aliases: Record<string, string> | undefined): string {
  if (aliases !== undefined && Object.hasOwn(aliases, key)) return aliases[key]!;
  if (Object.hasOwn(shape, key)) return key;
  const camel = camelCase(key);
  return Object.hasOwn(shape, camel) ? camel : key;
}

const schemaOf = (shape: Record<string, z.ZodType>, field: string): z.ZodType | undefined => (Object.hasOwn(shape, field) ? shape[field] : undefined);

/**
 * An options object in the body (complete-and-claim's `next`, enqueue's `backoff`) in the
 * snake_case the seed's clients write, like the top-level fields, at any depth. Only fields whose
 * schema is an object with named fields: JSON values (payload, result, metadata) are the
 * client's own data and are kept as sent.
 */
function optionsSpelling(schema: z.ZodType | undefined, value: unknown, field: string): unknown {
  if (schema === undefined || value === null || typeof value !== "object") return value;
  // A list of such objects (enqueueMany's tasks): each item spelled as a body is.
  if (Array.isArray(value)) {
    const element = defOf(unwrap(schema)).element;
    return element === undefined ? value : value.map((item, i) => optionsSpelling(element, item, `${field}[${i}]`));
  }
  const shape = defOf(unwrap(schema)).shape;
  if (shape === undefined) return value;
  const spelled: Record<string, unknown> = Object.create(null);
  for (const [key, inner] of Object.entries(value)) {
    const name = fieldOf(key, shape, undefined);
    if (Object.hasOwn(spelled, name) && !sameJson(spelled[name], inner)) {
      throw invalidField(field, `two spellings of ${name} give different values; give one, or the same in both`);
    }
    // Nested options too (enqueueMany's tasks[i].backoff); a JSON value's schema has no shape.
    spelled[name] = optionsSpelling(schemaOf(shape, name), inner, `${field}.${name}`);
  }
  return spelled;
}

/**
 * Each key of the query string with its values, in the order keys first come: one pass.
 * URLSearchParams.getAll scans every pair, so a getAll per key was quadratic in the pairs: a
 * 60 KB query of 16,000 distinct keys (each an unknown field, refused only after) held the event
 * loop 0.9 s.
 */
function queryValues(query: URLSearchParams): Map<string, string[]> {
  const grouped = new Map<string, string[]>();
  for (const [key, value] of query) {
    const values = grouped.get(key);
    if (values === undefined) grouped.set(key, [value]);
    else values.push(value);
  }
  return grouped;
}

/**
 * The procedure input for a request. `params` are the matched (already decoded) path
 * parameters, `query` the query string, `body` the parsed JSON object or undefined.
 */
export function buildInput(route: Route, params: Record<string, string>, query: URLSearchParams, body: Record<string, unknown> | undefined): Record<string, unknown> {
  const shape = inputShape(route.input);
  const input: Record<string, unknown> = Object.create(null);
  /** Where each field came from, as the client spelled it: for the message when two disagree. */
  const spelledAs: Record<string, string> = Object.create(null);
  const put = (key: string, value: unknown, from: "path" | "query" | "body") => {
    const field = fieldOf(key, shape, route.aliases);
    if (Object.hasOwn(input, field) && !sameJson(input[field], value)) {
      throw invalidField(field, `${spelledAs[field]} and ${key} (${from}) give different values; give one, or the same in both`);
    }
    input[field] = value;
    spelledAs[field] ??= `${key} (${from})`;
  };
  const fieldSchema = (key: string) => schemaOf(shape, fieldOf(key, shape, route.aliases));
  const typed = (key: string, values: string[]) => {
    const schema = fieldSchema(key);
    // An unknown field stays as it is: the strict schema names it in its 400.
    return schema === undefined ? (values.length === 1 ? values[0] : values) : fromText(values, kindOf(schema), key);
  };

  for (const [key, value] of Object.entries(params)) put(key, typed(key, [value]), "path");
  for (const [key, values] of queryValues(query)) put(key, typed(key, values), "query");
  for (const [key, value] of Object.entries(body ?? {})) put(key, optionsSpelling(fieldSchema(key), value, key), "body");
  return input;
}
