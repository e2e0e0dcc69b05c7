// The batch-size measure of a call's input (client/encoded-size.ts): UTF-8 bytes, exact for
// plain JSON, superjson's additions counted, and a large input not serialized to be measured.
import superjson from "superjson";
import { afterEach, describe, expect, it, vi } from "vitest";
import { encodedBytesUpTo } from "../client/encoded-size.js";
import { seededRandom } from "./helpers/seeded-random.js";


/** Characters of every UTF-8 length, JSON escapes and a lone surrogate. */
const ALPHABET = ["a", "Z", "7", " ", '"', "\\", "\n", "\u0000", "\u001f", "é", "ж", "漢", "😀", "\ud800", "\udfff", "\u2028"];

function jsonValue(next: () => number, depth: number): unknown {
  const kind = Math.floor(next() * (depth > 3 ? 4 : 6));
  const text = () => Array.from({ length: Math.floor(next() * 12) }, () => ALPHABET[Math.floor(next() * ALPHABET.length)]).join("");
  switch (kind) {
    case 0:
      return text();
    case 1:
      return [0, -0.5, 1e21, 123456789, -7, 3.14159, 2 ** 53, 5e-324][Math.floor(next() * 8)];
    case 2:
      return next() < 0.5 ? null : next() < 0.5;
    case 3:
      return Math.floor(next() * 1e6);
    case 4:
      return Array.from({ length: Math.floor(next() * 5) }, () => jsonValue(next, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: Math.floor(next() * 5) }, () => [text(), jsonValue(next, depth + 1)]));
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("encodedBytesUpTo", () => {
  it("is the UTF-8 length of the JSON for plain JSON values, escapes and lone surrogates included", () => {
    const next = seededRandom(7);
    for (let n = 0; n < 2000; n++) {
      const value = jsonValue(next, 0);
      expect(encodedBytesUpTo(value, Number.POSITIVE_INFINITY)).toBe(Buffer.byteLength(JSON.stringify(value)));
    }
    // A CJK character is one UTF-16 unit and three bytes: 18,000 of them take 54,002 bytes.
    expect(encodedBytesUpTo("漢".repeat(18_000), Number.POSITIVE_INFINITY)).toBe(54_002);
  });

  it("counts what superjson adds for Dates, undefined properties and non-finite numbers, up to a call's envelope", () => {
    const inputs: unknown[] = [
      { since: new Date(0), limit: undefined, agentId: undefined },
      { a: new Date(), b: undefined, c: [1, undefined, new Date(0)], d: Number.NaN, e: -0, f: Number.NEGATIVE_INFINITY },
      Array.from({ length: 30 }, () => ({ at: new Date(), note: undefined })),
      { deep: { deeper: { deepest: { when: new Date(), none: undefined } } } },
    ];
    for (const input of inputs) {
      const sent = Buffer.byteLength(JSON.stringify(superjson.serialize(input)));
      // `{"json":…,"meta":{"values":…,"v":1}}` is the envelope the measure leaves to the batch share's room.
      expect(encodedBytesUpTo(input, Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(sent - 35);
    }
  });

  it("stops once past the limit: a megabyte string or object is not serialized to be measured", () => {
    const stringify = vi.spyOn(JSON, "stringify");
    const limit = 18_874;
    expect(encodedBytesUpTo({ payload: { text: "x".repeat(1024 * 1024) } }, limit)).toBeGreaterThan(limit);
    const wide = Object.fromEntries(Array.from({ length: 100_000 }, (_, n) => [`key${n}`, "value"]));
    expect(encodedBytesUpTo({ payload: wide }, limit)).toBeGreaterThan(limit);
    // Only keys and short strings were serialized, and only as many as it took to pass the limit.
    expect(Math.max(...stringify.mock.calls.map(([value]) => (typeof value === "string" ? value.length : Number.POSITIVE_INFINITY)))).toBeLessThan(10);
    expect(stringify.mock.calls.length).toBeLessThan(2 * (limit / 14));
  });

  it("is Infinity for what cannot be measured, so the call goes alone and gets its own answer", () => {
    expect(encodedBytesUpTo({ n: 10n }, 1000)).toBe(Number.POSITIVE_INFINITY);
    expect(encodedBytesUpTo({ m: new Map([[1, 2]]) }, 1000)).toBe(Number.POSITIVE_INFINITY);
    expect(encodedBytesUpTo({ s: new Set([1]) }, 1000)).toBe(Number.POSITIVE_INFINITY);
    let deep: unknown = 1;
    for (let n = 0; n < 100_000; n++) deep = [deep];
    expect(encodedBytesUpTo(deep, Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(encodedBytesUpTo(cycle, 1000)).toBeGreaterThan(1000);
  });
});
