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
// Deserializing stays superjson's, after two checks (deserializeInput): an input holding one of
// those keys is refused (400) as REST refuses it, where superjson's copy would drop a __proto__
// key without a word; and an input is read as the tree its `json` is, never as a graph.
import superjson from "superjson";
import { invalidField } from "../errors.js";
import { findRefusedKey, jsonKind, REFUSED_KEY_PROBLEM } from "../json-checks.js";

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
 * superjson.deserialize(value) for a call's input ({ json, meta }), read as the JSON tree its
 * `json` is. INVALID_INPUT (400) naming the path:
 *  - where the input holds a key superjson refuses to carry (a field of the input itself too:
 *    superjson's copy would drop a __proto__ field, and the schema would never see it), since no
 *    answer holding one could be serialized;
 *  - where meta.referentialEqualities makes the input refer to itself (a cycle);
 *  - where the body is not superjson's form, or its meta cannot be applied (an unknown type).
 * Any other referential equality is left out (withoutSharedReferences).
 */
export function deserializeInput(value: unknown): unknown {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalidField("input", `must be superjson's wire form, {"json": …, "meta": …} (got ${jsonKind(value)})`);
  const { json, meta } = value as { json?: unknown; meta?: unknown };
  // Fields of the input too (not findRefusedKeyInFields, which leaves them to the schema): superjson's copy drops a __proto__ field before any schema sees it.
  const refused = findRefusedKey(json);
  if (refused !== null) throw invalidField(refused, REFUSED_KEY_PROBLEM);
  const tree = withoutSharedReferences(value, json, meta);
  assertAnnotationsLinear(meta);
  try {
    return superjson.deserialize(tree as SuperJsonResult);
  } catch (error) {
    // superjson overflows its stack on a class or custom type it has no registration for, and on annotations nested too deep.
    const why = error instanceof RangeError ? "it overflowed superjson's stack (a class or custom type no input takes, or annotations nested too deep)" : error instanceof Error ? error.message : String(error);
    throw invalidField("meta", `superjson could not read the input by it: ${why}`);
  }
}

/** Path segments superjson may walk for meta.values, per segment they spell, before they are refused (see assertAnnotationsLinear). */
export const ANNOTATION_WORK_PER_SEGMENT = 4;
/** …and beyond that, this many whatever they spell. */
export const ANNOTATION_WORK_SLACK = 4096;

/**
 * INVALID_INPUT when meta.values would cost superjson's deserialize more than linear time in
 * their size. superjson walks the annotation tree copying the whole path so far at each node
 * ([...origin, ...key]) and walks each node's path again from the root to set it (setDeep, which
 * goes on through places `json` does not have): a key of K segments over M children costs K × M.
 * From a body of 350 KB (a key of 32,000 segments over 25,000 children) it held the event loop
 * 19 s, with or without anything at those places in `json`; a string where a tree goes made it
 * recurse until its stack ran out, on 44 bytes. superjson writes each annotated value's path in
 * full (a record of paths, each to [type]; children only under a Map, Set or class, which no
 * input takes), so what it walks then is about what the keys spell: a tree that makes it walk
 * more than ANNOTATION_WORK_PER_SEGMENT times that (and a slack) is refused. Iterative, and
 * stops as soon as the bound is passed: linear in the annotations' size.
 */
function assertAnnotationsLinear(meta: unknown): void {
  if (meta === null || typeof meta !== "object" || !("values" in meta)) return;
  const stack: Array<{ tree: unknown; depth: number }> = [{ tree: (meta as { values: unknown }).values, depth: 0 }];
  /** Every record of keys met, and whether a Map or Set is made anywhere: see pathsUnderOthers. */
  const records: object[] = [];
  let collections = false;
  // Segments the keys spell (and one a node), and segments superjson's traverse would copy and walk.
  let spelled = 0;
  let work = 0;
  const refuse = (why: string) => invalidField("meta.values", `${why}: send them as superjson writes them (each annotated value's path in full, to its type)`);
  /** Each child of `record`, `depth` segments below the root: its path is copied (depth + the key's segments). */
  const children = (record: unknown, depth: number) => {
    if (!record) return;
    if (typeof record === "string") throw refuse("holds a string where superjson reads a tree, which it would walk until its stack ran out");
    if (typeof record !== "object") return;
    records.push(record);
    for (const [key, child] of Object.entries(record)) {
      const segments = segmentsOf(key);
      spelled += segments + 1;
      work += depth + segments;
      stack.push({ tree: child, depth: depth + segments });
    }
  };
  while (stack.length > 0) {
    const { tree, depth } = stack.pop()!;
    if (Array.isArray(tree)) {
      // [type, children]: the node is set by its path from the root (setDeep), after its children.
      work += depth;
      if (tree[0] === "map" || tree[0] === "set") collections = true;
      children(tree[1], depth);
    } else children(tree, depth);
    if (work > ANNOTATION_WORK_PER_SEGMENT * spelled + ANNOTATION_WORK_SLACK) {
      throw refuse(`nest so that superjson would walk more than ${ANNOTATION_WORK_PER_SEGMENT} path segments for each they spell`);
    }
  }
  // setDeep steps into a Map or Set by counting its members from the first (getNthKey): a key that
  // goes through one made already costs its index, and keys of a record are read in order, after
  // the subtrees of those before them. 40,000 keys through one Set of 40,000 members (978 KB) held
  // the event loop ~3 s within the bound above. superjson's client writes a Map's or Set's members
  // as its children (read before it is made), and a record's keys never one under another: a key
  // reaches a node made before it only under another key of some record of the tree.
  if (collections) {
    const legacy = (((meta as { v?: unknown }).v ?? 0) as number) < 1;
    for (const record of records) {
      if (keyUnderAnother(Object.keys(record), legacy)) throw refuse("holds a key under another key of its record, which superjson never writes (a Map's or Set's members are its children)");
    }
  }
}

/** Whether one of `keys` (superjson paths) names a place under another's: a trie of their segments, linear in their length. */
function keyUnderAnother(keys: readonly string[], legacy: boolean): boolean {
  type Node = { end: boolean; next: Map<string, Node> };
  const root: Node = { end: false, next: new Map() };
  for (const key of keys) {
    let node = root;
    for (const segment of pathSegments(key, legacy)) {
      if (node.end) return true;
      let next = node.next.get(segment);
      if (next === undefined) node.next.set(segment, (next = { end: false, next: new Map() }));
      node = next;
    }
    if (node.end || node.next.size > 0) return true;
    node.end = true;
  }
  return false;
}

/** superjson's parsePath (escaped dots; escaped backslashes unless `legacy`); a path it would refuse is read leniently (superjson refuses it later). */
function pathSegments(path: string, legacy: boolean): string[] {
  const segments: string[] = [];
  let segment = "";
  for (let i = 0; i < path.length; i++) {
    const char = path[i]!;
    if (char === "\\" && path[i + 1] === ".") {
      segment += ".";
      i++;
    } else if (char === "\\" && !legacy && path[i + 1] === "\\") {
      segment += "\\";
      i++;
    } else if (char === ".") {
      segments.push(segment);
      segment = "";
    } else segment += char;
  }
  segments.push(segment);
  return segments;
}

/** How many segments superjson's parsePath makes of a path: one more than its dots (an escaped one counted too: an upper bound). */
function segmentsOf(path: string): number {
  let n = 1;
  for (let at = path.indexOf("."); at !== -1; at = path.indexOf(".", at + 1)) n++;
  return n;
}

/**
 * The input without meta.referentialEqualities; INVALID_INPUT where they make it a cycle or
 * fill a place in. superjson writes an object met twice in full at each place in `json`, and
 * lists the places (the first, then the others) for deserialize to make them one object again;
 * where an object sits inside itself, `json` has null there. An input is JSON, so sharing adds
 * nothing to it, and from a crafted body it turned the input into a graph: a cycle kept the input
 * checks (findRefusedKey) walking until the server ran out of memory, on one request and before
 * the caller was authenticated; objects shared level on level make 2^n nodes of a body of n.
 * Refused rather than read as the null `json` has there:
 *  - a cycle: a place of the object inside another place of it (every cycle a client can write
 *    shows so: below the first place of any object on it, the object comes again);
 *  - a place superjson's `dedupe` option left null for the equality to fill in.
 * Equalities crafted otherwise (a cycle across two objects' lists) are left out with the rest:
 * the input is what `json` says.
 */
function withoutSharedReferences(value: object, json: unknown, meta: unknown): unknown {
  if (meta === null || typeof meta !== "object" || !("referentialEqualities" in meta)) return value;
  const { referentialEqualities: equalities, ...rest } = meta as { referentialEqualities: unknown };
  // superjson's forms: { first place: [other places] }, or [[places equal to the whole input]] with that map after it.
  const [toRoot, byFirst] = Array.isArray(equalities) ? [equalities[0] as unknown, equalities[1] as unknown] : [undefined, equalities];
  if (Array.isArray(toRoot) && toRoot.length > 0) throw invalidField(String(toRoot[0]), "refers back to the whole input (a cycle, meta.referentialEqualities): an input must be JSON");
  if (byFirst !== null && typeof byFirst === "object") {
    for (const [first, others] of Object.entries(byFirst)) {
      if (!Array.isArray(others)) continue;
      const places = [first, ...others.map(String)];
      const cycle = placeInsideAnother(places);
      if (cycle) throw invalidField(cycle.inner, `refers back to ${cycle.outer} (a cycle, meta.referentialEqualities): an input must be JSON`);
      const firstValue = atPath(json, first);
      const filled = firstValue !== null && firstValue !== undefined ? places.slice(1).find((place) => atPath(json, place) === null) : undefined;
      if (filled !== undefined) {
        throw invalidField(filled, `is null, to be filled in from ${first} by meta.referentialEqualities (superjson's dedupe option): send inputs without dedupe`);
      }
    }
  }
  return { ...value, meta: rest };
}

/** A node of placeInsideAnother's trie: the place that ends here, if one does, and the keys below. */
interface PlaceNode {
  place?: string;
  below: Map<string, PlaceNode>;
}

/**
 * Two places of one object where one is the other or inside it, or undefined. The places go into
 * a trie by their keys: a place that passes one or ends above one is inside it or holds it.
 * Linear in the paths' length, whatever a crafted body holds (a path of 100,000 dots too).
 */
function placeInsideAnother(places: readonly string[]): { inner: string; outer: string } | undefined {
  const root: PlaceNode = { below: new Map() };
  for (const place of places) {
    let node = root;
    for (const key of pathKeys(place)) {
      if (node.place !== undefined) return { inner: place, outer: node.place };
      let next = node.below.get(key);
      if (next === undefined) node.below.set(key, (next = { below: new Map() }));
      node = next;
    }
    if (node.place !== undefined) return { inner: place, outer: node.place };
    if (node.below.size > 0) return { inner: firstPlaceBelow(node), outer: place };
    node.place = place;
  }
  return undefined;
}

/** A place that ends below `node` (there is one: only a place's keys make nodes). */
function firstPlaceBelow(node: PlaceNode): string {
  while (node.place === undefined) node = node.below.values().next().value!;
  return node.place;
}

/** A superjson path's keys: split at the dots no backslash escapes, "\\." and "\\\\" unescaped. */
function pathKeys(path: string): string[] {
  const keys: string[] = [];
  let key = "";
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c === "\\" && i + 1 < path.length) key += path[++i];
    else if (c === ".") {
      keys.push(key);
      key = "";
    } else key += c;
  }
  keys.push(key);
  return keys;
}

/** The value at a superjson path in `json` (keys, or indexes into arrays), undefined where there is none. */
function atPath(json: unknown, path: string): unknown {
  let node = json;
  for (const key of pathKeys(path)) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The transformer of the tRPC router: answers written by serializeAnswer, inputs read by deserializeInput. */
export const wireTransformer = {
  serialize: serializeAnswer,
  deserialize: deserializeInput,
};
