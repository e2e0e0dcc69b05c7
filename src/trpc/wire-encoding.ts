// superjson on tRPC's wire, its serialize made cheap for what the procedures answer. superjson's
// walker is generic: at every node it copies the path and the chain of parents, lists the entries
// and tries every registered transformation; under claim+complete load over tRPC it was 29% of
// the event loop (bench/RESULTS.md, 2026-11-30), for answers that are plain objects, arrays,
// strings, numbers, booleans, null and Dates (tasks, memories, events). serializeAnswer writes
// what superjson.serialize writes for such values, in one walk: the same `json`, the same
// `meta.values` (each Date or undefined by its escaped path, in the same order) and `meta.v`.
// Anything else gives the value to superjson itself: a Map, Set, BigInt, RegExp, Error, URL or
// class instance, NaN, ±Infinity, -0, an invalid Date, an array with holes or named properties,
// an object reached twice (superjson records referential equalities), a key superjson refuses
// (__proto__, constructor, prototype: it throws). Two differences remain, neither reachable by an
// answer: a getter is read when its key's turn comes (superjson reads an object's values before
// it walks any), and a value nested past superjson's own stack (about 1,250 objects deep) is
// written where superjson threw; stored values nest 512 levels at most (json-checks.ts).
// Deserializing stays superjson's, after one check: an input holding one of those keys is refused
// (400) as REST refuses it, where superjson's copy would drop a __proto__ key without a word.
import superjson from "superjson";
import { invalidField } from "../errors.js";
import { findRefusedKeyInFields, REFUSED_KEY_PROBLEM } from "../json-checks.js";

type SuperJsonResult = ReturnType<typeof superjson.serialize>;
/** What meta.values holds for a node: its type, as superjson names it. */
type Annotation = ["Date"] | ["undefined"];

/** Thrown inside the walk when a value is not one this encoder writes exactly as superjson. */
const NOT_PLAIN = Symbol("not plain");

/** superjson.serialize(value), the same output, cheaply for plain data (see the header). */
export function serializeAnswer(value: unknown): SuperJsonResult {
  return plainAnswer(value) ?? superjson.serialize(value);
}

/** superjson.serialize(value) when the value is plain data (see the header), else undefined. */
export function plainAnswer(value: unknown): SuperJsonResult | undefined {
  const walk = new PlainWalk();
  let json: SuperJsonResult["json"];
  try {
    json = walk.encode(value) as SuperJsonResult["json"];
  } catch (error) {
    if (error === NOT_PLAIN) return undefined;
    throw error;
  }
  return walk.annotations === undefined ? { json } : { json, meta: { values: walk.annotations, v: 1 } };
}

/**
 * What meta.values holds beneath a node: a leaf's type, or, for an object or array, the
 * annotations of its children by escaped path, flattened level by level as superjson's walker
 * does (the key order of each level's object, integer-like keys first, is part of the output).
 */
type Annotations = Annotation | Record<string, Annotation>;

class PlainWalk {
  /** The annotations of the value encode last returned; undefined when it has none. */
  annotations: Annotations | undefined;
  private readonly seen = new Set<object>();

  /** The JSON for `value`; its annotations are left in `annotations`. */
  encode(value: unknown): unknown {
    this.annotations = undefined;
    switch (typeof value) {
      case "string":
      case "boolean":
        return value;
      case "number":
        // NaN, ±Infinity and -0 are annotated "number" by superjson.
        if (!Number.isFinite(value) || Object.is(value, -0)) throw NOT_PLAIN;
        return value;
      case "undefined":
        this.annotations = ["undefined"];
        return null;
      case "object": {
        if (value === null) return null;
        if (this.seen.has(value)) throw NOT_PLAIN;
        this.seen.add(value);
        if (value instanceof Date) {
          if (Number.isNaN(value.getTime())) throw NOT_PLAIN;
          this.annotations = ["Date"];
          return value.toISOString();
        }
        if (Array.isArray(value)) {
          // superjson walks an array's own entries: a hole is skipped, a named property (a match's
          // `groups`) walked too. Only an array of its indexes alone is written here.
          if (Object.keys(value).length !== value.length) throw NOT_PLAIN;
          const out: unknown[] = new Array(value.length);
          let inner: Record<string, Annotation> | undefined;
          for (let i = 0; i < value.length; i++) {
            if (!Object.hasOwn(value, i)) throw NOT_PLAIN;
            out[i] = this.encode(value[i]);
            if (this.annotations !== undefined) inner = nest(inner, String(i), this.annotations);
          }
          this.annotations = inner;
          return out;
        }
        const proto: unknown = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) throw NOT_PLAIN;
        const out: Record<string, unknown> = {};
        let inner: Record<string, Annotation> | undefined;
        for (const key of Object.keys(value)) {
          if (key === "__proto__" || key === "constructor" || key === "prototype") throw NOT_PLAIN;
          out[key] = this.encode((value as Record<string, unknown>)[key]);
          if (this.annotations !== undefined) inner = nest(inner, escapeKey(key), this.annotations);
        }
        this.annotations = inner;
        return out;
      }
      default:
        // bigint, symbol, function.
        throw NOT_PLAIN;
    }
  }
}

/** Adds a child's annotations under its escaped key to its parent's, as superjson's walker does. */
function nest(inner: Record<string, Annotation> | undefined, key: string, child: Annotations): Record<string, Annotation> {
  const into = inner ?? {};
  if (Array.isArray(child)) into[key] = child;
  else for (const path in child) into[`${key}.${path}`] = child[path]!;
  return into;
}

/** superjson's path escaping: a backslash doubled, a dot preceded by a backslash. */
function escapeKey(key: string): string {
  if (!key.includes("\\") && !key.includes(".")) return key;
  return key.replace(/\\/g, "\\\\").replace(/\./g, "\\.");
}

/**
 * superjson.deserialize(value) for a call's input ({ json, meta }); INVALID_INPUT (400) naming
 * where the input holds a key superjson refuses to carry: its copy of the input would drop a
 * __proto__ key, and no answer holding one could be serialized.
 */
export function deserializeInput(value: unknown): unknown {
  const refused = findRefusedKeyInFields((value as { json?: unknown } | null | undefined)?.json);
  if (refused !== null) throw invalidField(refused, REFUSED_KEY_PROBLEM);
  return superjson.deserialize(value as SuperJsonResult);
}

/** The transformer of the tRPC router: answers written by serializeAnswer, inputs read by deserializeInput. */
export const wireTransformer = {
  serialize: serializeAnswer,
  deserialize: deserializeInput,
};
