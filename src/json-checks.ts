// Checks on JSON values that need no schema library: the bounds that make every stored value
// readable again by every route and transport, and meaning-equality. Shared by the schemas
// (json-value.ts) and the database threads, which load no zod (it takes 160 ms to import).
//  - keys: superjson refuses to serialize an object with a key __proto__, constructor or
//    prototype (it throws: a prototype pollution guard), so a value holding one, taken in over
//    REST, failed every tRPC answer carrying it with a 500 (a claim, a whole page of a list).
//  - depth: superjson serializes recursively and overflows the stack at about 1,200 levels, and
//    JSON.stringify at about 4,000. A value stored deeper could be written but never read back:
//    a 500 after the commit. The schema stops anything deeper than JSON_DEPTH_CEILING (without
//    recursing itself); services hold stored values to the configured maxJsonDepth (assertJsonDepth).
import { invalidField } from "./errors.js";

/** Keys superjson (tRPC's wire format here) refuses to serialize: a value holding one could never be read back over tRPC. */
export const REFUSED_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** What an input holding a key of REFUSED_KEYS is told, after where the key is. */
export const REFUSED_KEY_PROBLEM = "is a key tRPC's wire format (superjson) refuses to carry; rename it";

/** No configuration may allow deeper JSON than this: superjson serializes 1,000 levels safely. */
export const JSON_DEPTH_CEILING = 512;

type Frame = { value: unknown; path: string; depth: number };

/**
 * The first reason `value` cannot be stored as JSON, naming its path, or null. Iterative, so a
 * value nested 100,000 levels deep is reported, not a stack overflow. `depth` counts containers:
 * 1 is 1 level deep, {"a":1} 1, [[1]] 2.
 */
export function findNonJson(value: unknown, maxDepth: number = JSON_DEPTH_CEILING, root = "value"): string | null {
  const stack: Frame[] = [{ value, path: "", depth: 0 }];
  const at = (path: string) => path || root;
  while (stack.length > 0) {
    const { value: v, path, depth } = stack.pop()!;
    if (v === null || typeof v === "string" || typeof v === "boolean") continue;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) return `${at(path)} is ${v} (not representable in JSON)`;
      continue;
    }
    if (typeof v !== "object") return `${at(path)} is ${v === undefined ? "undefined" : `a ${typeof v}`} (not representable in JSON)`;
    // The field is named by the caller (zod's issue path); a path 500 levels long would name nothing.
    if (depth + 1 > maxDepth) return `nests deeper than ${maxDepth} levels`;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: `${path}[${i}]`, depth: depth + 1 });
      continue;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      return `${at(path)} is a ${(v as object).constructor?.name ?? "non-plain object"} (only plain JSON objects are stored)`;
    }
    const entries = Object.entries(v);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, inner] = entries[i]!;
      const keyPath = path ? `${path}.${key}` : key;
      if (REFUSED_KEYS.has(key)) return `${keyPath} ${REFUSED_KEY_PROBLEM}`;
      // A property holding undefined is one left out, as JSON.stringify (which stores the value)
      // has it: TypeScript's optional fields ({ note?: string }) are typed JSON and may hold it.
      if (inner === undefined) continue;
      stack.push({ value: inner, path: keyPath, depth: depth + 1 });
    }
  }
  return null;
}

/** How many containers deep `value` nests, counting no further than `stopAbove` + 1. Iterative. */
export function jsonDepth(value: unknown, stopAbove: number): number {
  let max = 0;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    const inner = depth + 1;
    if (inner > max) max = inner;
    if (max > stopAbove) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === "object") stack.push({ value: child, depth: inner });
    }
  }
  return max;
}

/** Where `value` holds a key of REFUSED_KEYS ("a.b[2].constructor"), at any depth, or null. Iterative. */
export function findRefusedKey(value: unknown): string | null {
  const stack: Array<{ value: unknown; path: string }> = [{ value, path: "" }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push({ value: v[i], path: `${path}[${i}]` });
      continue;
    }
    for (const key of Object.keys(v)) {
      const keyPath = path ? `${path}.${key}` : key;
      if (REFUSED_KEYS.has(key)) return keyPath;
      stack.push({ value: (v as Record<string, unknown>)[key], path: keyPath });
    }
  }
  return null;
}

/**
 * findRefusedKey for a call's input, inside its fields: a key of the input itself is a field
 * name, which its schema refuses as an unknown field when it is not one (named as sent).
 */
export function findRefusedKeyInFields(input: unknown): string | null {
  if (input === null || typeof input !== "object" || Array.isArray(input)) return findRefusedKey(input);
  for (const field of Object.keys(input)) {
    const inner = findRefusedKey((input as Record<string, unknown>)[field]);
    if (inner !== null) return inner.startsWith("[") ? `${field}${inner}` : `${field}.${inner}`;
  }
  return null;
}

/** Whether `value` holds a key of REFUSED_KEYS at any depth. */
export const hasRefusedKey = (value: unknown): boolean => findRefusedKey(value) !== null;

/**
 * Services call this on every JSON value they store: deeper than the configured maxJsonDepth is
 * INVALID_INPUT (400) naming the field, before anything is written.
 */
export function assertJsonDepth(field: string, value: unknown, maxDepth: number): void {
  if (jsonDepth(value, maxDepth) > maxDepth) {
    throw invalidField(field, `nests deeper than ${maxDepth} levels (the server's maxJsonDepth); flatten it or store it as a string`, { field, maxDepth });
  }
}

/**
 * Whether two JSON values mean the same: equal scalars, arrays equal item by item, objects with
 * the same keys in any order (a key holding undefined is one left out, as stored). Iterative
 * (stored values are depth-bounded, inputs may not be).
 */
export function sameJson(a: unknown, b: unknown): boolean {
  const stack: Array<[unknown, unknown]> = [[a, b]];
  while (stack.length > 0) {
    const [x, y] = stack.pop()!;
    if (x === y) continue;
    if (x === null || y === null || typeof x !== "object" || typeof y !== "object") return false;
    if (Array.isArray(x) !== Array.isArray(y)) return false;
    if (Array.isArray(x)) {
      const ys = y as unknown[];
      if (x.length !== ys.length) return false;
      for (let i = 0; i < x.length; i++) stack.push([x[i], ys[i]]);
      continue;
    }
    const xs = x as Record<string, unknown>;
    const ys = y as Record<string, unknown>;
    const keys = definedKeys(xs);
    if (keys.length !== definedKeys(ys).length) return false;
    for (const key of keys) {
      if (ys[key] === undefined || !Object.hasOwn(ys, key)) return false;
      stack.push([xs[key], ys[key]]);
    }
  }
  return true;
}

/** The keys of `object` whose values are not undefined: those JSON keeps. */
const definedKeys = (object: Record<string, unknown>): string[] => Object.keys(object).filter((key) => object[key] !== undefined);

/**
 * The latest time any route or transport can carry: 9999-12-31T23:59:59.999Z. JavaScript Dates
 * reach year 275760, but ISO strings past year 9999 need a sign and six digits that most
 * clients cannot parse (Python's datetime stops at 9999), and past 8.64e15 a Date is invalid.
 */
export const MAX_TIME_MS = 253_402_300_799_999;
