// How many bytes a call's input takes in a request body, to decide whether it may share a batch.
// The body is UTF-8 (a CJK character is 3 bytes and one UTF-16 unit), and superjson adds an
// entry for each Date and each property left undefined. The count stops as soon as it passes
// the limit, so a megabyte payload is not serialized once to be measured and again to be sent.

/** Bytes superjson's meta adds for a value besides its path: `"…":["undefined"],` is 17, rounded up. */
const META_ENTRY_BYTES = 20;

/**
 * The UTF-8 bytes of `input` as the client's request body carries it: its JSON, exact for plain
 * JSON, plus superjson's meta for Dates, undefined properties and non-finite numbers (rounded
 * up). Not counted: the call's envelope in a batch (~35 bytes), which a batch share leaves room
 * for. Once past `limit`, some number above it. Infinity for what cannot be measured (a BigInt, a
 * Map or Set, nesting too deep).
 */
export function encodedBytesUpTo(input: unknown, limit: number): number {
  let total = 0;
  /** Adds `bytes`; true once the count has passed the limit (the walk then unwinds). */
  const add = (bytes: number): boolean => (total += bytes) > limit;
  const visit = (value: unknown, key: string, pathBytes: number): boolean => {
    if (value instanceof Date) {
      if (add(pathBytes + META_ENTRY_BYTES)) return true;
    } else if (value instanceof Map || value instanceof Set) {
      total = Number.POSITIVE_INFINITY;
      return true;
    }
    if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") {
      value = (value as { toJSON: (key: string) => unknown }).toJSON(key);
    }
    switch (typeof value) {
      case "string":
        // Never shorter than its characters: a string past the limit is not serialized at all.
        return value.length > limit ? add(value.length) : add(Buffer.byteLength(JSON.stringify(value)));
      case "number":
        // NaN, ±Infinity and -0 go as strings, with a meta entry saying they are numbers.
        return Number.isFinite(value) && !Object.is(value, -0) ? add(String(value).length) : add(11 + pathBytes + META_ENTRY_BYTES);
      case "boolean":
        return add(value ? 4 : 5);
      case "bigint":
        total = Number.POSITIVE_INFINITY;
        return true;
      case "object": {
        if (value === null) return add(4);
        if (Array.isArray(value)) {
          if (add(2 + Math.max(0, value.length - 1))) return true;
          for (let i = 0; i < value.length; i++) {
            const item: unknown = value[i];
            if (item === undefined || typeof item === "function" || typeof item === "symbol") {
              if (add(4 + (item === undefined ? pathBytes + META_ENTRY_BYTES : 0))) return true;
            } else if (visit(item, String(i), pathBytes + 1 + String(i).length)) return true;
          }
          return false;
        }
        if (add(2)) return true;
        let first = true;
        // for…in, not Object.entries: a wide object is not copied whole to measure its start.
        for (const name in value) {
          if (!Object.hasOwn(value, name)) continue;
          const item: unknown = (value as Record<string, unknown>)[name];
          if (typeof item === "function" || typeof item === "symbol") continue;
          const nameBytes = Buffer.byteLength(JSON.stringify(name));
          if (add(nameBytes + 1 + (first ? 0 : 1))) return true;
          first = false;
          // superjson sends an undefined property as null, with a meta entry saying so.
          if (item === undefined) {
            if (add(4 + pathBytes + nameBytes + META_ENTRY_BYTES)) return true;
          } else if (visit(item, name, pathBytes + nameBytes)) return true;
        }
        return false;
      }
      default:
        // undefined, a function or a symbol at the top: nothing in the body but superjson's marker.
        return add(META_ENTRY_BYTES);
    }
  };
  try {
    visit(input, "", 0);
  } catch {
    // Nesting past the stack's depth: the server refuses it anyway; sent alone, it gets its own answer.
    return Number.POSITIVE_INFINITY;
  }
  return total;
}
