// Type patterns: an exact type, `prefix.*` (any type under prefix, at any depth) or `*`.
// The same rules exist twice on purpose: as SQL (to read the log with its index) and as a
// predicate (to filter live events in memory); tests/events-patterns.test.ts checks both.

export function matchesType(type: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) =>
    pattern === "*" ? true : pattern.endsWith(".*") ? type.startsWith(pattern.slice(0, -1)) : type === pattern,
  );
}

/** Whether a pattern is a prefix (`task.*`), not an exact type or `*`. */
export const isPrefix = (pattern: string): boolean => pattern.endsWith(".*");

/** "task.*" is the range ["task.", "task/") of types: "/" sorts right after ".", so the type index serves it. */
export function prefixRange(pattern: string): [string, string] {
  const prefix = pattern.slice(0, -1);
  return [prefix, `${prefix.slice(0, -1)}/`];
}

/** A WHERE fragment matching `type` against patterns; `params` receive its values in order. */
export function typePatternSql(patterns: readonly string[], params: unknown[]): string {
  if (patterns.includes("*")) return "1";
  const exact = patterns.filter((p) => !p.endsWith(".*"));
  const clauses: string[] = [];
  if (exact.length > 0) {
    clauses.push(`type IN (${exact.map(() => "?").join(", ")})`);
    params.push(...exact);
  }
  for (const pattern of patterns.filter(isPrefix)) {
    clauses.push("(type >= ? AND type < ?)");
    params.push(...prefixRange(pattern));
  }
  return clauses.length > 0 ? `(${clauses.join(" OR ")})` : "0";
}

/** Adds patterns to a set, keeping it small: `*` absorbs everything. */
export function mergePatterns(current: readonly string[], added: readonly string[]): string[] {
  const all = [...new Set([...current, ...added])];
  return all.includes("*") ? ["*"] : all.sort();
}
