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

/** Whether `value` is a JSON object: an object that is neither null nor an array. */
export const isJsonObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** What kind of value `value` is, as a refusal names what it got: "null", "an array", "an object", "a string", "a number"… */
export const jsonKind = (value: unknown): string => (value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : `a ${typeof value}`);

/** Keys superjson (tRPC's wire format here) refuses to serialize: a value holding one could never be read back over tRPC. */
export const REFUSED_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** What an input holding a key of REFUSED_KEYS is told, after where the key is. */
export const REFUSED_KEY_PROBLEM = "is a key tRPC's wire format (superjson) refuses to carry; rename it";

/** No configuration may allow deeper JSON than this: superjson serializes 1,000 levels safely. */
export const JSON_DEPTH_CEILING = 512;

/** What a value nested deeper than `maxDepth` is told; past the ceiling, that no server's setting takes it either. */
export const nestsTooDeep = (maxDepth: number): string =>
  maxDepth >= JSON_DEPTH_CEILING
    ? `nests deeper than ${JSON_DEPTH_CEILING} levels, more than any server stores (maxJsonDepth is at most ${JSON_DEPTH_CEILING}); flatten it or store it as a string`
    : `nests deeper than ${maxDepth} levels; flatten it or store it as a string`;

/**
 * A container being walked, with where it is: its parent and its key there. Paths are spelled
 * out only for the one reported (pathOf): building one per element cost a string and a frame per
 * item, and a 500,000-number array held the event loop for 150 ms in these checks and their GC.
 */
type Frame = { value: object; parent: Frame | undefined; key: string | number; depth: number };

/** `frame`'s path ("a.b[2]"), then `last` if given; "" at the root. */
function pathOf(frame: Frame | undefined, last?: string | number): string {
  const keys: Array<string | number> = last === undefined ? [] : [last];
  for (let f = frame; f !== undefined && f.parent !== undefined; f = f.parent) keys.push(f.key);
  let path = "";
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i]!;
    path += typeof key === "number" ? `[${key}]` : path === "" ? key : `.${key}`;
  }
  return path;
}

/** Why a value that is no container cannot be stored as JSON, or null; "container" for an object or array. */
function scalarProblem(v: unknown): string | null {
  if (v === null || typeof v === "string" || typeof v === "boolean") return null;
  if (typeof v === "number") return Number.isFinite(v) ? null : `is ${v} (not representable in JSON)`;
  if (typeof v === "object") return "container";
  return `is ${v === undefined ? "undefined" : `a ${typeof v}`} (not representable in JSON)`;
}

/**
 * The first reason `value` cannot be stored as JSON, naming its path, or null. Iterative, so a
 * value nested 100,000 levels deep is reported, not a stack overflow. `depth` counts containers:
 * 1 is 1 level deep, {"a":1} 1, [[1]] 2. Problems are found in document order.
 */
export function findNonJson(value: unknown, maxDepth: number = JSON_DEPTH_CEILING, root = "value"): string | null {
  const at = (path: string) => path || root;
  const top = scalarProblem(value);
  if (top !== "container") return top === null ? null : `${root} ${top}`;
  // Containers to walk, and problems found among their siblings (reported once the containers
  // before them were walked: document order).
  const stack: Array<Frame | string> = [{ value: value as object, parent: undefined, key: "", depth: 0 }];
  while (stack.length > 0) {
    const f = stack.pop()!;
    if (typeof f === "string") return f;
    const v = f.value;
    // The field is named by the caller (zod's issue path); a path 500 levels long would name nothing.
    if (f.depth + 1 > maxDepth) return nestsTooDeep(maxDepth);
    const inner: Frame[] = [];
    let problem: string | undefined;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        const found = scalarProblem(item);
        if (found === null) continue;
        if (found === "container") inner.push({ value: item as object, parent: f, key: i, depth: f.depth + 1 });
        else {
          problem = `${at(pathOf(f, i))} ${found}`;
          break;
        }
      }
    } else {
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        return `${at(pathOf(f))} is a ${v.constructor?.name ?? "non-plain object"} (only plain JSON objects are stored)`;
      }
      for (const key of Object.keys(v)) {
        if (REFUSED_KEYS.has(key)) {
          problem = `${pathOf(f, key)} ${REFUSED_KEY_PROBLEM}`;
          break;
        }
        const item = (v as Record<string, unknown>)[key];
        // A property holding undefined is one left out, as JSON.stringify (which stores the value)
        // has it: TypeScript's optional fields ({ note?: string }) are typed JSON and may hold it.
        if (item === undefined) continue;
        const found = scalarProblem(item);
        if (found === null) continue;
        if (found === "container") inner.push({ value: item as object, parent: f, key, depth: f.depth + 1 });
        else {
          problem = `${at(pathOf(f, key))} ${found}`;
          break;
        }
      }
    }
    if (problem !== undefined) stack.push(problem);
    for (let i = inner.length - 1; i >= 0; i--) stack.push(inner[i]!);
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

/** Where `value` holds a key of REFUSED_KEYS ("a.b[2].constructor"), at any depth, or null. Iterative; walks containers only. */
export function findRefusedKey(value: unknown): string | null {
  if (value === null || typeof value !== "object") return null;
  const stack: Frame[] = [{ value, parent: undefined, key: "", depth: 0 }];
  while (stack.length > 0) {
    const f = stack.pop()!;
    const v = f.value;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        const item: unknown = v[i];
        if (item !== null && typeof item === "object") stack.push({ value: item, parent: f, key: i, depth: 0 });
      }
      continue;
    }
    const keys = Object.keys(v);
    for (const key of keys) if (REFUSED_KEYS.has(key)) return pathOf(f, key);
    for (let i = keys.length - 1; i >= 0; i--) {
      const item = (v as Record<string, unknown>)[keys[i]!];
      if (item !== null && typeof item === "object") stack.push({ value: item, parent: f, key: keys[i]!, depth: 0 });
    }
  }
  return null;
}

/** The most containers a plain walk enters before findCycle looks the careful way. */
const TREE_WALK_BUDGET = 100_000;

/**
 * Whether a walk of `value` as a tree ends having entered at most `budget` containers. A cycle
 * never ends (the budget stops it); an object shared many times may take exponentially long (so
 * may this: the budget stops it too). Either way findCycle then looks the careful way.
 */
function walksAsTree(value: object, budget: number): boolean {
  const stack: object[] = [value];
  let entered = 1;
  while (stack.length > 0) {
    const v = stack.pop()!;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child === null || typeof child !== "object") continue;
      if (++entered > budget) return false;
      stack.push(child);
    }
  }
  return true;
}

/**
 * Where `value` refers back to a container it is inside of (a cycle): that place's path, and the
 * path of the container (null: `value` itself), or null when there is none. Only an in-process
 * caller's input can hold one (every transport reads a tree); the walks above assume a tree and
 * went round a cycle until memory ran out. A container reached twice without a cycle (one list
 * under two keys) is walked once: it is JSON written twice. Iterative, linear in the containers.
 */
export function findCycle(value: unknown): { at: string; to: string | null } | null {
  if (value === null || typeof value !== "object") return null;
  // Nearly every input is a small tree, which a plain walk finishes: then none has a cycle. The
  // walk below, with its map and set of every container, took six to ten times as long (0.65 µs
  // a small call, 1 ms an input of a thousand objects), on every in-process call.
  if (walksAsTree(value, TREE_WALK_BUDGET)) return null;
  // The containers on the way from `value` to the one being walked, and those walked whole.
  const open = new Map<object, Frame>();
  const done = new Set<object>();
  const stack: Array<Frame | { leave: object }> = [{ value, parent: undefined, key: "", depth: 0 }];
  while (stack.length > 0) {
    const f = stack.pop()!;
    if ("leave" in f) {
      open.delete(f.leave);
      done.add(f.leave);
      continue;
    }
    if (done.has(f.value)) continue;
    open.set(f.value, f);
    stack.push({ leave: f.value });
    const entries: Array<[string | number, unknown]> = Array.isArray(f.value) ? f.value.map((item, i) => [i, item]) : Object.entries(f.value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, item] = entries[i]!;
      if (item === null || typeof item !== "object" || done.has(item)) continue;
      const container = open.get(item);
      if (container !== undefined) return { at: pathOf(f, key), to: container.parent === undefined ? null : pathOf(container) };
      stack.push({ value: item, parent: f, key, depth: 0 });
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

/** Whether two lists hold the same strings, each as many times, in any order (a task's dependsOn, a memory's tags). */
export function sameStringsAnyOrder(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((item, i) => item === y[i]);
}
