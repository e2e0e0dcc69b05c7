// Type patterns: an exact type, `prefix.*` (any type under prefix, at any depth) or `*`.
// The same rules exist twice on purpose: as SQL (to read the log with its index) and as a
// predicate (to filter live events in memory); tests/events-patterns.test.ts checks both.

export function matchesType(type: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) =>
    pattern === "*" ? true : pattern.endsWith(".*") ? type.startsWith(pattern.slice(0, -1)) : type === pattern,
  );
}

/**
 * matchesType over fixed patterns, in time independent of their number: an exact type is one set
 * lookup, and a prefix (`task.*`: every type starting "task.") can only match at one of the
 * type's dots, so those are looked up, and only at lengths some prefix has. Live filters that
 * test every committed event (a stream, the webhooks) take this: an agent holds up to 1,000
 * patterns, and a write commits up to 1,000 events (tasks.enqueueMany).
 */
export function typeMatcher(patterns: readonly string[]): (type: string) => boolean {
  if (patterns.includes("*")) return () => true;
  const { exact, prefixes } = patternKinds(patterns);
  if (prefixes.size === 0) return (type) => exact.has(type);
  const lengths = new Set([...prefixes].map((prefix) => prefix.length));
  return (type) => exact.has(type) || prefixesOf(type, lengths, (prefix) => prefixes.has(prefix));
}

/**
 * Patterns without `*` by kind: exact types, and prefixes as a type starting with them reads
 * ("task.*" as "task."), each once: what typeMatcher and the parked polls' index look up.
 */
export function patternKinds(patterns: readonly string[]): { exact: Set<string>; prefixes: Set<string> } {
  const exact = new Set<string>();
  const prefixes = new Set<string>();
  for (const pattern of patterns) {
    if (isPrefix(pattern)) prefixes.add(pattern.slice(0, -1));
    else exact.add(pattern);
  }
  return { exact, prefixes };
}

/**
 * Whether `found` holds for one of the prefixes of `type` ending at one of its dots (what a
 * `prefix.*` pattern could be), of a length in `lengths`. The prefix of `pattern` (`pattern`
 * without its `*`) ends with a dot, so `type.startsWith(prefix)` is exactly: `type` has a dot at
 * prefix.length - 1, and its first prefix.length characters are the prefix.
 */
export function prefixesOf(type: string, lengths: { has(length: number): boolean }, found: (prefix: string) => boolean): boolean {
  for (let dot = type.indexOf("."); dot !== -1; dot = type.indexOf(".", dot + 1)) {
    if (lengths.has(dot + 1) && found(type.slice(0, dot + 1))) return true;
  }
  return false;
}

/** Whether a pattern is a prefix (`task.*`), not an exact type or `*`. */
export const isPrefix = (pattern: string): boolean => pattern.endsWith(".*");

/** "task.*" is the range ["task.", "task/") of types: "/" sorts right after ".", so the type index serves it. */
export function prefixRange(pattern: string): [string, string] {
  const prefix = pattern.slice(0, -1);
  return [prefix, `${prefix.slice(0, -1)}/`];
}

/**
 * Past this many exact types, a read passes them as one JSON array: SQLite takes at most 32,766
 * values a statement, and an agent's patterns (stored before their number was bounded:
 * event-commands.ts) once passed it, so every poll of that agent failed. Within the bound they
 * stay values, which the planner seeks by.
 */
const EXACT_AS_LIST = 1000;
/** Past this many prefixes, the same: their ORed ranges make an expression SQLite refuses past a depth of 1,000. */
const PREFIXES_AS_LIST = 100;

/** A WHERE fragment matching `type` against patterns; `params` receive its values in order. */
export function typePatternSql(patterns: readonly string[], params: unknown[]): string {
  if (patterns.includes("*")) return "1";
  const exact = patterns.filter((p) => !isPrefix(p));
  const prefixes = patterns.filter(isPrefix);
  const clauses: string[] = [];
  if (exact.length > EXACT_AS_LIST) {
    clauses.push("type IN (SELECT value FROM json_each(?))");
    params.push(JSON.stringify(exact));
  } else if (exact.length > 0) {
    clauses.push(`type IN (${exact.map(() => "?").join(", ")})`);
    params.push(...exact);
  }
  if (prefixes.length > PREFIXES_AS_LIST) {
    // events.type: json_each has a column named type too.
    clauses.push("EXISTS (SELECT 1 FROM json_each(?) AS p WHERE events.type >= json_extract(p.value, '$[0]') AND events.type < json_extract(p.value, '$[1]'))");
    params.push(JSON.stringify(prefixes.map(prefixRange)));
  } else {
    for (const pattern of prefixes) {
      clauses.push("(type >= ? AND type < ?)");
      params.push(...prefixRange(pattern));
    }
  }
  return clauses.length > 0 ? `(${clauses.join(" OR ")})` : "0";
}

/** Adds patterns to a set, keeping it small: `*` absorbs everything. */
export function mergePatterns(current: readonly string[], added: readonly string[]): string[] {
  const all = [...new Set([...current, ...added])];
  return all.includes("*") ? ["*"] : all.sort();
}
