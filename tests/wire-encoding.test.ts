// The tRPC answers' encoder writes what superjson.serialize writes: the same JSON text, for plain
// values and any other (what it does not write itself, superjson does); and it writes plain data
// (tasks, memories, events) itself. A typed client decodes both alike. (Getters and values nested
// past superjson's stack are the exceptions wire-encoding.ts names.)
import fc from "fast-check";
import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { plainAnswer, serializeAnswer } from "../src/trpc/wire-encoding.js";

/** superjson's output, or the error it throws, as text. */
function superjsonText(value: unknown): string {
  try {
    return JSON.stringify(superjson.serialize(value));
  } catch (error) {
    return `throws ${(error as Error).message}`;
  }
}

function oursText(value: unknown): string {
  try {
    return JSON.stringify(serializeAnswer(value));
  } catch (error) {
    return `throws ${(error as Error).message}`;
  }
}

/** Keys that need superjson's path escaping, look like array indexes, or that superjson refuses. */
const key = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 6 }) },
  { weight: 2, arbitrary: fc.constantFrom("a.b", "a\\b", "a\\.b", ".", "\\", "", "0", "10", "2", "createdAt") },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "prototype") },
);

const validDate = fc.date({ min: new Date(0), max: new Date(4_102_444_800_000), noInvalidDate: true });

/** Plain data: what the procedures answer. */
const plain = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.string({ maxLength: 8 }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    validDate,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(key.filter((k) => k !== "__proto__" && k !== "constructor" && k !== "prototype"), tie("value"), { maxKeys: 4 }),
  ),
})).value;

/** Anything superjson has a rule for, and some it refuses. */
const anything = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    plain,
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 10n, new Date(Number.NaN), /x+/g, new URL("http://example.com/a")),
    fc.array(tie("value"), { maxLength: 3 }).map((items) => new Set(items)),
    fc.array(fc.tuple(fc.string({ maxLength: 3 }), tie("value")), { maxLength: 3 }).map((entries) => new Map(entries)),
    fc.string({ maxLength: 5 }).map((message) => new Error(message)),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(key, tie("value"), { maxKeys: 4 }),
  ),
})).value;

describe("tRPC answers' encoding", () => {
  it("writes plain data itself, exactly as superjson does", () => {
    fc.assert(
      fc.property(plain, (value) => {
        const ours = plainAnswer(value);
        expect(ours).toBeDefined();
        expect(JSON.stringify(ours)).toBe(superjsonText(value));
      }),
      { numRuns: 2000 },
    );
  });

  it("writes any value as superjson does, or throws what it throws", () => {
    fc.assert(
      fc.property(anything, (value) => {
        expect(oursText(value)).toBe(superjsonText(value));
      }),
      { numRuns: 2000 },
    );
  });

  it("answers like the procedures' (dates, nulls, nested payloads, escaped keys) take the plain path, and decode to the same values", () => {
    const at = new Date("2026-11-30T12:00:00.123Z");
    // Every Date its own object: one reached twice is a referential equality superjson records.
    const memory = { id: "m1", content: "Task in queue q completed", tags: ["q"], data: { attempt: 1 }, createdAt: new Date(at.getTime() - 9), durationMs: null };
    const task = {
      id: "t1",
      payload: { "a.b": { "c\\d": [1, "x", null, { deep: true }] }, list: [] },
      runAt: at,
      leaseExpiresAt: null,
      claimedAt: new Date(at.getTime() + 1),
      errorHistory: [{ attempt: 1, error: "boom", at: new Date(at.getTime() + 2) }],
      context: [{ memory, score: 0.5 }, { memory: { ...memory, id: "m2", tags: ["q"], data: { attempt: 2 }, createdAt: new Date(at.getTime() - 5) }, score: 0.25 }],
      missing: undefined,
    };
    const ours = plainAnswer(task);
    expect(JSON.stringify(ours)).toBe(JSON.stringify(superjson.serialize(task)));
    expect(ours!.meta).toEqual({
      values: {
        runAt: ["Date"],
        claimedAt: ["Date"],
        "errorHistory.0.at": ["Date"],
        "context.0.memory.createdAt": ["Date"],
        "context.1.memory.createdAt": ["Date"],
        missing: ["undefined"],
      },
      v: 1,
    });
    expect(superjson.deserialize(ours!)).toEqual(task);
    // A root Date, undefined, or nothing to annotate.
    expect(JSON.stringify(plainAnswer(at))).toBe(JSON.stringify(superjson.serialize(at)));
    expect(JSON.stringify(plainAnswer(undefined))).toBe(JSON.stringify(superjson.serialize(undefined)));
    expect(plainAnswer({ ok: true, n: [1, 2] })).toEqual({ json: { ok: true, n: [1, 2] } });
  });

  it("leaves to superjson what it would write differently: an object reached twice, an array with holes, a refused key", () => {
    const shared = { at: new Date(0) };
    const withConstructor = Object.assign([1], { constructor: 1 });
    for (const value of [
      { a: shared, b: shared },
      [shared, shared],
      { a: shared.at, b: shared.at },
      [1, , 3],
      JSON.parse('{"__proto__": {"x": 1}}') as unknown,
      // Arrays with named properties: superjson walks them too (a match's groups is undefined).
      { m: "abc".match(/b/) },
      Object.assign([1], { when: new Date(0) }),
      withConstructor,
    ]) {
      expect(plainAnswer(value)).toBeUndefined();
      expect(oursText(value)).toBe(superjsonText(value));
    }
    expect(JSON.stringify(serializeAnswer({ a: shared, b: shared }))).toContain("referentialEqualities");
  });

  it("an index inherited from a polluted Array.prototype is a hole, as superjson has it", () => {
    const polluted = Array.prototype as unknown as Record<number, unknown>;
    polluted[1] = new Date(0);
    try {
      const value = [1, , 3];
      expect(plainAnswer(value)).toBeUndefined();
      expect(oursText(value)).toBe(superjsonText(value));
    } finally {
      delete polluted[1];
    }
  });
});
