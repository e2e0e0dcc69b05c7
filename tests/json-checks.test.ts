// The JSON checks every stored value passes (json-checks.ts): they name the first problem in
// document order, by its path, and walk containers only: a scalar costs no allocation, so a
// value of 500,000 numbers is checked without a frame or a path string each.
import { describe, expect, it } from "vitest";
import { findCycle, findNonJson, findRefusedKey, findRefusedKeyInFields, jsonDepth } from "../src/json-checks.js";

describe("findNonJson", () => {
  it("names the first problem in document order, by its path", () => {
    expect(findNonJson([{ a: [1, Number.NaN] }, Infinity], 64, "payload")).toBe("[0].a[1] is NaN (not representable in JSON)");
    expect(findNonJson({ a: 1, b: { c: [undefined] }, d: () => 1 }, 64, "payload")).toBe("b.c[0] is undefined (not representable in JSON)");
    expect(findNonJson({ a: { b: new Map() } }, 64, "payload")).toBe("a.b is a Map (only plain JSON objects are stored)");
    expect(findNonJson({ list: [{ ok: 1 }, { constructor: 1 }] }, 64, "payload")).toBe("list[1].constructor is a key tRPC's wire format (superjson) refuses to carry; rename it");
    expect(findNonJson(Infinity, 64, "payload")).toBe("payload is Infinity (not representable in JSON)");
    expect(findNonJson([1n], 64, "payload")).toBe("[0] is a bigint (not representable in JSON)");
  });

  it("passes plain JSON, however wide, and a property holding undefined; counts depth by containers", () => {
    expect(findNonJson(new Array(500_000).fill(0), 64)).toBeNull();
    expect(findNonJson({ a: "x", b: [true, null, { c: 1.5 }], d: undefined }, 64)).toBeNull();
    expect(findNonJson([[1]], 2)).toBeNull();
    expect(findNonJson([[[1]]], 2)).toBe("nests deeper than 2 levels; flatten it or store it as a string");
    let deep: unknown = 1;
    for (let i = 0; i < 600; i++) deep = [deep];
    expect(findNonJson(deep)).toBe("nests deeper than 512 levels, more than any server stores (maxJsonDepth is at most 512); flatten it or store it as a string");
  });
});

describe("findRefusedKey", () => {
  it("finds the first refused key in document order, at any depth", () => {
    expect(findRefusedKey([{ a: { constructor: 1 } }, { prototype: 1 }])).toBe("[0].a.constructor");
    expect(findRefusedKey({ a: [0, 1, { b: [{ c: 1 }, JSON.parse('{"__proto__": 1}')] }] })).toBe("a[2].b[1].__proto__");
    expect(findRefusedKey({ a: [1, 2, 3], b: "constructor" })).toBeNull();
    expect(findRefusedKey(new Array(500_000).fill(0))).toBeNull();
    expect(findRefusedKeyInFields({ payload: [{ prototype: 1 }] })).toBe("payload[0].prototype");
  });

  it("jsonDepth stops counting past its bound", () => {
    expect(jsonDepth({ a: [{ b: 1 }] }, 10)).toBe(3);
    expect(jsonDepth([[[[[1]]]]], 2)).toBe(3);
  });
});

describe("findCycle", () => {
  it("finds a cycle past the plain walk's budget, in a tree of any size, and passes a tree and one shared many times", () => {
    // A tree of 150,000 objects (past the plain walk's 100,000): no cycle, found the careful way.
    const wide = { items: Array.from({ length: 150_000 }, (_, i) => ({ i })) };
    expect(findCycle(wide)).toBeNull();
    // The same with one item pointing back at the list it is in.
    const last = wide.items[149_999] as Record<string, unknown>;
    last.back = wide.items;
    expect(findCycle(wide)).toEqual({ at: "items[149999].back", to: "items" });
    // Small ones: at once by the plain walk, or the careful way for a cycle.
    expect(findCycle({ a: [{ b: 1 }, { c: [2, 3] }] })).toBeNull();
    const node: Record<string, unknown> = { children: [] };
    (node.children as unknown[]).push({ parent: node });
    expect(findCycle({ payload: node })).toEqual({ at: "payload.children[0].parent", to: "payload" });
    // One object under two keys at each of 40 levels: 2^40 paths, each container walked once.
    let shared: Record<string, unknown> = { leaf: true };
    for (let level = 0; level < 40; level++) shared = { a: shared, b: shared };
    expect(findCycle(shared)).toBeNull();
  });

  it("names where a cycle points back, at any depth, and finds none in a tree or a shared container", () => {
    const self: Record<string, unknown> = { n: 1 };
    self["me"] = self;
    expect(findCycle(self)).toEqual({ at: "me", to: null });
    const list: unknown[] = [1, 2];
    list.push({ back: list });
    expect(findCycle({ a: { list } })).toEqual({ at: "a.list[2].back", to: "a.list" });
    // A long chain: iterative, whatever its depth.
    const root: Record<string, unknown> = {};
    let at = root;
    for (let i = 0; i < 100_000; i++) at = (at["next"] = { i }) as Record<string, unknown>;
    expect(findCycle(root)).toBeNull();
    at["next"] = root;
    expect(findCycle(root)?.to).toBeNull();
    // Shared, not cyclic: leaves and containers reached twice, deep and shallow.
    const leaf = { x: 1 };
    const shared = { leaf, list: [leaf, leaf] };
    expect(findCycle({ a: shared, b: [shared, { c: shared }], d: leaf })).toBeNull();
    expect(findCycle([[], {}, [[]], null, 1, "s"])).toBeNull();
    expect(findCycle(null)).toBeNull();
    expect(findCycle("text")).toBeNull();
  });
});
