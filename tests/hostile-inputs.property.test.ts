// Hostile input to every route and procedure the router has (generated from it: a new one is
// covered without touching this file): wrong types, lone surrogates, huge and deep values,
// prototype keys, injection text, absurd numbers, in paths, query strings and bodies, over REST
// and over tRPC. Every answer must be a 4xx (or, for a read with nothing invalid in it, a 2xx),
// never a 5xx; the server stays up; the stored data is byte for byte what it was.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inputShape } from "../src/rest/rest-input.js";
import { ROUTES, type Route } from "../src/rest/routes.js";
import { appRouter } from "../src/trpc/app-router.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

const RUNS = 25;

let t: TestServer;
let before: string;

/** A digest of every stored row, table by table. */
const snapshot = () =>
  withDatabase(t, (db) => {
    const tables = db.prepare<[], string>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'memories_fts%' AND name NOT LIKE 'notes_fts%' AND name <> '_prisma_migrations' ORDER BY name`).pluck().all();
    const hash = createHash("sha256");
    for (const table of tables) hash.update(table).update(JSON.stringify(db.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).all()));
    return hash.digest("hex");
  });

beforeAll(async () => {
  // Nothing the server does with time may change the rows while the file runs (41 s with both
  // cores busy, against 8 s quiet): no lease runs out, and agent-1 never turns stale (30 s by
  // default: its health, and an agent.stale event, changed the digest on a loaded full run).
  t = await startTestServer({ leaseMs: 3_600_000, agentStaleMs: 86_400_000, agentOfflineMs: 172_800_000 });
  // Something of everything, so that reads and settles meet real rows.
  await t.api.agents.register.mutate({ agentId: "agent-1", capabilities: ["x"] });
  await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", payload: { a: 1 } }, { queue: "q", capability: "x" }] });
  await t.api.tasks.claim.mutate({ agentId: "agent-1", queues: ["q"] });
  await t.api.events.subscribe.mutate({ agentId: "agent-1", types: ["*"] });
  await t.api.events.publish.mutate({ type: "note", source: "s", target: "agent-1" });
  await t.api.memory.remember.mutate({ content: "a lesson", kind: "lesson" });
  before = snapshot();
});
afterAll(() => t.stop({ removeFiles: true }));

const hostileText = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary", maxLength: 50 }),
  fc.constantFrom("", " ", "\u0000", "\ud800", "\udfff x", "a".repeat(70_000), "../../etc/passwd", "'; DROP TABLE tasks;--", "%00%zz", "*", "task.*", "__proto__", "constructor", "😀".repeat(300), "1e309", "-0", "true", "null"),
);
const hostileNumber = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-1, 0, -0, 0.5, 2 ** 53, 2 ** 63, 1e308, -1e308, 8_640_000_000_000_001));
const deep = fc.integer({ min: 60, max: 3000 }).map((depth) => {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
});
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(hostileText, hostileNumber, fc.boolean(), fc.constant(null), fc.anything({ maxDepth: 3 }), deep, fc.constant({ __proto__: { polluted: true } }), fc.constant(Array(5000).fill("x")));

/** A value that is still there once JSON carries it: `undefined` (which fc.anything makes) is dropped with its key. */
const sentValue = hostileValue.filter((value) => JSON.stringify(value) !== undefined);

/** A hostile input for a procedure's fields. `invalid`: also a field no schema has, so a mutation can never pass. */
function inputFor(fields: string[], invalid: boolean): fc.Arbitrary<Record<string, unknown>> {
  const known = fc.record(Object.fromEntries(fields.map((field) => [field, hostileValue])), { requiredKeys: [] });
  return invalid ? known.chain((input) => sentValue.map((extra) => ({ ...input, ["__hostile"]: extra }))) : known;
}

/** Percent-encodes a path segment; a lone surrogate goes as the bytes a careless client would send (%ED%A0%80). */
const encodeSegment = (text: string): string =>
  [...text].map((char) => (char.isWellFormed() ? encodeURIComponent(char) : "%ED%A0%80")).join("");

const asText = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value) ?? "undefined");

const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { type: string; inputs: unknown[] } }>).filter(([, p]) => p._def.type !== "subscription");

describe("hostile input never gets a 5xx and changes nothing", () => {
  it("covers every procedure and REST route", () => {
    expect(procedures.length).toBeGreaterThanOrEqual(30);
    expect(ROUTES.length).toBeGreaterThanOrEqual(30);
  });

  for (const [path, procedure] of procedures) {
    it(`tRPC ${path}`, async () => {
      const fields = Object.keys(inputShape(procedure._def.inputs[0] as never));
      const isRead = procedure._def.type === "query";
      await fc.assert(
        fc.asyncProperty(fc.boolean(), fc.boolean(), async (rawBody, readAsIs) => {
          const input = fc.sample(inputFor(fields, !(isRead && readAsIs)), 1)[0];
          const body = rawBody ? asText(input) : JSON.stringify({ json: input });
          const response = await fetch(`${t.url}/trpc/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
          await response.text();
          if (isRead) expect(response.status, body.slice(0, 200)).toBeLessThan(500);
          else expect(response.status, body.slice(0, 200)).toBeGreaterThanOrEqual(400);
          expect(response.status, body.slice(0, 200)).toBeLessThan(500);
        }),
        { numRuns: RUNS },
      );
    });
  }

  for (const route of ROUTES) {
    it(`REST ${route.method} ${route.path}`, async () => {
      const params = route.segments.flatMap((s) => (typeof s === "string" ? [] : [s.param]));
      const fields = Object.keys(inputShape(route.input));
      const isRead = route.type === "query";
      await fc.assert(
        fc.asyncProperty(fc.array(hostileText, { minLength: params.length, maxLength: params.length }), fc.boolean(), async (paramValues, readAsIs) => {
          const input = fc.sample(inputFor(fields, !(isRead && readAsIs)), 1)[0]!;
          let i = 0;
          const url = new URL(`${t.url}${route.segments.map((s) => `/${typeof s === "string" ? s : encodeSegment(paramValues[i++]!.slice(0, 2000))}`).join("")}`);
          const init: RequestInit = { method: route.method };
          if (route.method === "POST") {
            init.headers = { "content-type": "application/json" };
            init.body = JSON.stringify(input);
          } else {
            for (const [key, value] of Object.entries(input)) url.searchParams.append(key, asText(value).slice(0, 2000));
          }
          const response = await fetch(url, init);
          await response.text();
          const what = `${route.method} ${url.pathname.slice(0, 100)} ${String(init.body ?? url.search).slice(0, 200)}`;
          if (!isRead) expect(response.status, what).toBeGreaterThanOrEqual(400);
          expect(response.status, what).toBeLessThan(500);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it("afterwards: the server is up and the stored data is unchanged", async () => {
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
    expect(snapshot()).toBe(before);
  });
});
