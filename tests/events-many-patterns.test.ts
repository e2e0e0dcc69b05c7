// An agent's subscription is bounded (a thousand patterns), and reads of any subscription stay
// within SQLite's limits: one of 33,000 types (stored before the bound) or of six hundred
// prefixes read as their types made every poll and live stream of that agent a 500 ("too many
// SQL variables", then "Expression tree is too large").
import { describe, expect, it } from "vitest";
import { MAX_SUBSCRIPTION_PATTERNS } from "../src/events/event-commands.js";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("subscriptions with many patterns", () => {
  it("holds at most MAX_SUBSCRIPTION_PATTERNS: the call past it is a 400 naming types, and changes nothing", async () => {
    await using t = await startTestServer();
    for (let call = 0; call < MAX_SUBSCRIPTION_PATTERNS / 100; call++) {
      const types = Array.from({ length: 100 }, (_, i) => `p${call * 100 + i}.*`);
      expect((await rest(t.url, "POST", "/events/subscriptions", { agentId: "many", types })).status).toBe(200);
    }
    const refused = await rest(t.url, "POST", "/events/subscriptions", { agentId: "many", types: ["one.more"] });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: "INVALID_INPUT", message: expect.stringMatching(/^types: an agent's subscription holds at most 1000 patterns, and these would make it 1001/) });
    expect((await t.api.events.subscription.query({ agentId: "many" })).types).toHaveLength(MAX_SUBSCRIPTION_PATTERNS);
    // Patterns already there are no new ones.
    expect((await rest(t.url, "POST", "/events/subscriptions", { agentId: "many", types: ["p5.*"] })).status).toBe(200);
  });

  it("an agent whose stored subscription is far larger (from before the bound) polls and streams its events", async () => {
    await using t = await startTestServer();
    // A log of 600 prefixes of 64 types each, and an agent subscribed to all of them, and to 33,000 exact types.
    withDatabase(t, (db) => {
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 38399)
         INSERT INTO events (type, source, payload, target, createdAt) SELECT 'pfx' || (i / 64) || '.t' || (i % 64), 'old', '{}', NULL, 0 FROM n`,
      ).run();
      const types = [...Array.from({ length: 600 }, (_, k) => `pfx${k}.*`), ...Array.from({ length: 33_000 }, (_, k) => `e${k}.z`)].sort();
      db.prepare(`INSERT INTO subscriptions (agentId, types, cursor, mailboxCursor, createdAt, updatedAt) VALUES ('legacy', ?, 0, 0, 0, 0)`).run(JSON.stringify(types));
      db.prepare(`INSERT INTO subscriptions (agentId, types, cursor, mailboxCursor, createdAt, updatedAt) VALUES ('exact', ?, 0, 0, 0, 0)`).run(JSON.stringify(Array.from({ length: 33_000 }, (_, k) => `e${k}.z`).sort()));
    });
    const far = await rest(t.url, "GET", "/events/legacy?limit=3&ack=manual");
    expect(far).toMatchObject({ status: 200, body: [{ seq: 1, type: "pfx0.t0" }, { seq: 2 }, { seq: 3 }] });
    await t.api.events.ack.mutate({ agentId: "legacy", seq: 38_000 });
    const near = await rest(t.url, "GET", "/events/legacy?limit=2&ack=auto");
    expect(near).toMatchObject({ status: 200, body: [{ seq: 38_001, type: "pfx593.t48" }, { seq: 38_002 }] });
    // Only exact types, none of them in the log yet: nothing, then the one published.
    expect(await rest(t.url, "GET", "/events/exact?ack=manual")).toMatchObject({ status: 200, body: [] });
    const published = await t.api.events.publish.mutate({ type: "e17.z", source: "test" });
    expect((await rest(t.url, "GET", "/events/exact?ack=manual")).body.map((e: { seq: number }) => e.seq)).toEqual([published.seq]);
    // A live stream of the agent's subscription from the start.
    const seen: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const subscription = t.api.events.onEvent.subscribe(
        { agentId: "legacy", lastEventId: "0" },
        {
          onData: ({ data }) => {
            seen.push(data.seq);
            if (seen.length === 3) {
              subscription.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    expect(seen).toEqual([1, 2, 3]);
  });
});
