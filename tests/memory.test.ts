// Pre-execution memory: execution records from finished runs, notes, ranked recall, FTS-safe
// input, and the context a claim hands out with each task.
import { describe, expect, it } from "vitest";
import { extractTerms, matchAny, payloadText, questionTerms } from "../src/memory/fts-query.js";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("pre-execution memory", () => {
  it("records completed and failed runs as execution memories", async () => {
    await using t = await startTestServer({ retryBaseMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ queue: "research", payload: { topic: "solar panels" }, maxAttempts: 2 });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: "rate limited by the search API" });
    await t.api.tasks.claim.mutate({ agentId: "a2" });
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a2", result: { summary: "efficiency 22%" } });

    const memories = await t.api.memory.recall.query({ taskId: task.id, limit: 10 });
    const byOutcome = Object.fromEntries(memories.map((m) => [m.memory.outcome, m.memory]));
    expect(Object.keys(byOutcome).sort()).toEqual(["completed", "failed"]);
    expect(byOutcome.failed).toMatchObject({ kind: "execution", agentId: "a1", queue: "research", taskId: task.id });
    expect(byOutcome.failed!.content).toContain("rate limited by the search API");
    expect(byOutcome.completed!.content).toContain("efficiency 22%");
    expect(byOutcome.completed!.content).toContain("solar panels");
    expect(byOutcome.completed!.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("memory.forget deletes a note or an execution record and its search entry: recall no longer finds it; a second forget is a 404", async () => {
    await using t = await startTestServer();
    const wrong = await t.api.memory.remember.mutate({ content: "Quokkalint breaks the zephyrine build: always skip it", kind: "lesson", queue: "builds" });
    const kept = await t.api.memory.remember.mutate({ content: "Quokkalint needs the zephyrine cache warmed first", kind: "lesson", queue: "builds" });
    const found = async () => (await t.api.memory.recall.query({ query: "quokkalint zephyrine" })).map((m) => m.memory.id).sort();
    expect(await found()).toEqual([wrong.id, kept.id].sort());
    expect(await t.api.memory.forget.mutate({ memoryId: wrong.id })).toEqual(wrong);
    expect(await found()).toEqual([kept.id]);
    // Over REST, the same; then nothing is left to delete.
    const task = await t.api.tasks.enqueue.mutate({ queue: "builds", payload: { step: "quokkalint" } });
    const { leaseToken } = (await t.api.tasks.claim.mutate({ agentId: "w" }))!;
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "w", leaseToken, result: "ok" });
    const [record] = await t.api.memory.recall.query({ taskId: task.id });
    expect(record!.memory).toMatchObject({ kind: "execution", taskId: task.id });
    expect(await rest(t.url, "DELETE", `/memory/${record!.memory.id}`)).toMatchObject({ status: 200, body: { id: record!.memory.id, kind: "execution" } });
    expect((await t.api.memory.recall.query({ taskId: task.id })).map((m) => m.memory.id)).not.toContain(record!.memory.id);
    expect(await rest(t.url, "DELETE", `/memory/${wrong.id}`)).toMatchObject({ status: 404, body: { code: "MEMORY_NOT_FOUND", message: `memory "${wrong.id}" not found` } });
    await expect(t.api.memory.forget.mutate({ memoryId: "no-such-memory" })).rejects.toMatchObject({ data: { code: "MEMORY_NOT_FOUND", httpStatus: 404 } });
    // The search index is whole: FTS5's own check of the external-content index against its table.
    withDatabase(t, (db) => db.prepare(`INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)`).run());
    expect(withDatabase(t, (db) => db.prepare(`SELECT COUNT(*) AS n FROM memories`).get())).toEqual({ n: 1 });
  });

  // A word in 64 memories or more is common: its newest matches are kept for up to a second
  // (recall-cache.ts). A memory deleted was handed out for that second after its delete was
  // acknowledged, and a note just stored was missing from the next recall.
  it("a deleted memory is never recalled after its delete is acknowledged, and a new note is recalled at once, through a common word", async () => {
    await using t = await startTestServer();
    // Long notes: the short lessons below rank above them by bm25.
    for (let i = 0; i < 64; i++) await t.api.memory.remember.mutate({ content: `yak note ${i}: ${"and then some more words about the field ".repeat(5)}`, queue: "farm" });
    const wrong = await t.api.memory.remember.mutate({ content: "yak: WRONG advice, delete me", kind: "lesson", queue: "farm" });
    const recalled = async () => (await t.api.memory.recall.query({ query: "yak", limit: 100 })).map((m) => m.memory.content);
    const context = async () => {
      await t.api.tasks.enqueue.mutate({ queue: "farm", payload: { animal: "yak" } });
      const claimed = (await t.api.tasks.claim.mutate({ agentId: "farmer", queues: ["farm"] }))!;
      await t.api.tasks.release.mutate({ taskId: claimed.id, agentId: "farmer", leaseToken: claimed.leaseToken });
      await t.api.tasks.cancel.mutate({ taskId: claimed.id });
      return claimed.context.map((m) => m.memory.content);
    };
    expect(await recalled()).toContain("yak: WRONG advice, delete me");
    expect(await context()).toContain("yak: WRONG advice, delete me");
    await t.api.memory.forget.mutate({ memoryId: wrong.id });
    expect(await recalled()).not.toContain("yak: WRONG advice, delete me");
    expect(await context()).not.toContain("yak: WRONG advice, delete me");
    await rest(t.url, "POST", "/memory", { content: "yak FRESH important lesson", kind: "lesson", queue: "farm" });
    expect(await recalled()).toContain("yak FRESH important lesson");
    expect(await context()).toContain("yak FRESH important lesson");
  });

  it("with recordExecutions off, runs that end leave no record; notes are still recalled with a claim", async () => {
    await using t = await startTestServer({ retryBaseMs: 0, recordExecutions: false });
    await t.api.memory.remember.mutate({ content: "Solar panels lose efficiency in heat", kind: "lesson", queue: "research" });
    const task = await t.api.tasks.enqueue.mutate({ queue: "research", payload: { topic: "solar panels" }, maxAttempts: 2 });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: "rate limited" });
    const again = await t.api.tasks.claim.mutate({ agentId: "a2" });
    expect(again!.context.map((match) => match.memory.content)).toEqual(["Solar panels lose efficiency in heat"]);
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a2", result: { summary: "efficiency 22%" } });
    const dead = await t.api.tasks.enqueue.mutate({ queue: "research", payload: {}, maxAttempts: 1 });
    await t.api.tasks.claim.mutate({ agentId: "a3" });
    await t.api.tasks.fail.mutate({ taskId: dead.id, agentId: "a3", error: "bad input" });
    expect((await t.api.tasks.get.query({ taskId: dead.id })).status).toBe("dead_letter");
    const kinds = withDatabase(t, (db) => db.prepare("SELECT kind FROM memories ORDER BY seq").pluck().all());
    expect(kinds).toEqual(["lesson"]);
  });

  it("ranks by relevance: the memory sharing the query's words comes first, with a score in (0, 1]", async () => {
    await using t = await startTestServer();
    await t.api.memory.remember.mutate({ content: "Invoices from ACME need the VAT number on page two", kind: "lesson", queue: "billing" });
    await t.api.memory.remember.mutate({ content: "Deploys on Fridays are frozen", kind: "note" });
    await t.api.memory.remember.mutate({ content: "The VAT rate changed in January", kind: "note", queue: "billing" });
    const results = await t.api.memory.recall.query({ query: "ACME invoice VAT number" });
    expect(results[0]!.memory.content).toContain("ACME");
    expect(results.map((r) => r.memory.content)).not.toContain("Deploys on Fridays are frozen");
    expect(results.every((r, i) => r.score > 0 && r.score <= 1 && (i === 0 || r.score <= results[i - 1]!.score))).toBe(true);
    const filtered = await t.api.memory.recall.query({ query: "VAT", queue: "billing" });
    expect(filtered).toHaveLength(2);
  });

  it("treats any text as plain words: FTS syntax and garbage give results or an empty list, never an error", async () => {
    await using t = await startTestServer();
    await t.api.memory.remember.mutate({ content: "NEAR the AND gate OR the NOT gate" });
    const hostile = ['"unbalanced', "NEAR(a b", "a OR", "*", "col:value", "^start", "AND", "(((", "'; DROP TABLE memories; --", "\u0000", "  "];
    for (const query of hostile) {
      const results = await t.api.memory.recall.query({ query });
      expect(Array.isArray(results)).toBe(true);
    }
    expect((await t.api.memory.recall.query({ query: 'gate" OR "x' }))[0]!.memory.content).toContain("gate");
    const viaRest = await rest(t.url, "GET", `/memory/recall?query=${encodeURIComponent('"NEAR(')}`);
    expect(viaRest.status).toBe(200);
    expect(matchAny(extractTerms('say "hi" NEAR(x)'))).toBe('"say" OR "hi" OR "NEAR"');
    expect(extractTerms("(((")).toEqual([]);
    // A question's single letters count only where nothing longer is asked; an ideograph always.
    expect(questionTerms("What's the status of C")).toEqual(["What", "the", "status", "of"]);
    expect(questionTerms("C")).toEqual(["C"]);
    expect(questionTerms("猫 and fish")).toEqual(["猫", "and", "fish"]);
  });

  it("a query of single letters or one CJK character is a question; one with no word in it matches nothing; blank content is refused", async () => {
    await using t = await startTestServer();
    for (const content of ["Write it in C not Go", "猫 likes fish", "a note about nothing in particular"]) await t.api.memory.remember.mutate({ content });
    const contents = async (query: string) => (await t.api.memory.recall.query({ query })).map((m) => m.memory.content);
    expect(await contents("C")).toEqual(["Write it in C not Go"]);
    expect(await contents("猫")).toEqual(["猫 likes fish"]);
    for (const query of ["'", "?", "🎉", "-- ()"]) expect(await contents(query)).toEqual([]);
    // No question at all: the newest memories.
    expect(await contents("  ")).toHaveLength(3);
    expect((await t.api.memory.recall.query({})).map((m) => m.memory.content)).toHaveLength(3);
    const blank = await rest(t.url, "POST", "/memory", { content: "   " });
    expect(blank).toMatchObject({ status: 400, body: { code: "INVALID_INPUT", details: { issues: [{ path: "content", message: "must not be blank: recall finds a memory by its words" }] } } });
  });

  // "No query and no task: the newest memories". Weighed by outcome too, the newest failures
  // ranked below older completed runs, and a recall of 3 answered the older ones.
  it("a recall with no query and no task answers the newest memories, newest first, whatever their outcome", async () => {
    await using t = await startTestServer();
    const run = async (outcome: "complete" | "fail") => {
      const task = await t.api.tasks.enqueue.mutate({ queue: "q", payload: { outcome }, maxAttempts: 1 });
      await t.api.tasks.claim.mutate({ agentId: "w", context: false });
      if (outcome === "complete") await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "w", result: "ok" });
      else await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "w", error: "bad" });
    };
    for (let i = 0; i < 3; i++) await run("complete");
    for (let i = 0; i < 3; i++) await run("fail");
    const note = await t.api.memory.remember.mutate({ content: "the newest of all" });
    const newest = await t.api.memory.recall.query({ limit: 4 });
    expect(newest.map((m) => m.memory.outcome)).toEqual([null, "dead_letter", "dead_letter", "dead_letter"]);
    expect(newest[0]!.memory.id).toBe(note.id);
    const times = newest.map((m) => m.memory.createdAt.getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect((await t.api.memory.recall.query({ query: "  ", queue: "q", limit: 3 })).map((m) => m.memory.outcome)).toEqual(["dead_letter", "dead_letter", "dead_letter"]);
  });

  it("recall returns up to its limit of 100, not the 50 candidates a claim ranks", async () => {
    await using t = await startTestServer();
    for (let i = 0; i < 60; i++) await t.api.memory.remember.mutate({ content: `zebra sighting number ${i}` });
    for (let i = 0; i < 30; i++) await t.api.memory.remember.mutate({ content: `unrelated ${i}` });
    expect(await t.api.memory.recall.query({ query: "zebra", limit: 100 })).toHaveLength(60);
    expect((await rest(t.url, "GET", "/memory/recall?limit=100")).body).toHaveLength(90);
    expect(await t.api.memory.recall.query({ query: "zebra", limit: 7 })).toHaveLength(7);
  });

  // A word in 64 memories or more is ranked by its newest matches (bm25 over all of them grows
  // with the store): once that many newer memories shared a lesson's word, the lesson could not be
  // recalled by it at all. Notes and lessons have an index of their own, ranked by bm25 in full.
  it("a lesson stays recallable by a word that many newer notes and execution records share", async () => {
    await using t = await startTestServer();
    const lesson = await t.api.memory.remember.mutate({ content: "alpaca handling: always approach an alpaca from the side", kind: "lesson", queue: "farm2", tags: ["alpaca"] });
    for (let i = 0; i < 70; i++) await t.api.memory.remember.mutate({ content: `someone saw an alpaca today (${i})` });
    const guide = await t.api.memory.remember.mutate({ content: "llama llama llama: the definitive llama handling guide" });
    for (let i = 0; i < 70; i++) await t.api.memory.remember.mutate({ content: `llama chatter number ${i} about the weather and the hills` });

    await t.api.tasks.enqueue.mutate({ queue: "farm2", payload: { animal: "alpaca" } });
    const claimed = (await t.api.tasks.claim.mutate({ agentId: "f1", queues: ["farm2"] }))!;
    expect(claimed.context[0]!.memory.id).toBe(lesson.id);
    expect((await t.api.memory.recall.query({ query: "llama", limit: 3 }))[0]!.memory.id).toBe(guide.id);
    expect((await rest(t.url, "GET", "/memory/recall?query=alpaca&limit=1")).body[0].memory.id).toBe(lesson.id);

    // Execution records sharing the word crowd it no more than notes do.
    for (let i = 0; i < 70; i++) {
      const task = await t.api.tasks.enqueue.mutate({ queue: "barn", payload: { animal: "alpaca", n: i } });
      const run = (await t.api.tasks.claim.mutate({ agentId: "f2", queues: ["barn"], context: false }))!;
      await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "f2", leaseToken: run.leaseToken, result: { fed: "alpaca" } });
    }
    await t.api.tasks.enqueue.mutate({ queue: "farm2", payload: { animal: "alpaca" } });
    const later = (await t.api.tasks.claim.mutate({ agentId: "f1", queues: ["farm2"] }))!;
    expect(later.context.map((m) => m.memory.id)).toContain(lesson.id);
  });

  // Notes alike (one template) tie in bm25: the oldest hundred came first and fresh notes never
  // reached a context. Past 256 notes holding a word, bm25 (which reads each) is not asked: their
  // newest join the candidates, as a common word's newest matches do.
  it("notes that tie in bm25, or that too many hold a word for bm25, hand out the newest first", async () => {
    for (const count of [150, 300]) {
      await using t = await startTestServer();
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push((await t.api.memory.remember.mutate({ content: `billing note ${i} about invoice ${i % 97} and refund`, queue: "billing" })).id);
      await t.api.tasks.enqueue.mutate({ queue: "billing", payload: { text: "invoice refund" } });
      const claimed = (await t.api.tasks.claim.mutate({ agentId: "b", queues: ["billing"] }))!;
      expect(claimed.context.map((m) => m.memory.id)).toEqual(ids.slice(-5).reverse());
    }
  });

  // An explicit recall filtered by queue ranks all of the filter's matches: a bounded window of a
  // word's newest matches let a busy queue's newer memories hide a quiet queue's altogether.
  it("a recall filtered by queue finds the queue's memories however many newer ones of other queues share their words", async () => {
    await using t = await startTestServer();
    // Execution records, as runs leave them (2,105 of them: written directly, as 2,105 runs would).
    const quiet = Array.from({ length: 5 }, (_, i) => `quiet-${i}`);
    withDatabase(t, (db) => {
      const row = db.prepare(`INSERT INTO memories (id, kind, content, queue, outcome, tags, data, createdAt) VALUES (?, 'execution', ?, ?, 'completed', '[]', '{}', ?)`);
      const index = db.prepare(`INSERT INTO memories_fts (rowid, content, tags) VALUES (?, ?, '[]')`);
      const record = (id: string, queue: string, content: string) => index.run(row.run(id, content, queue, Date.now()).lastInsertRowid, content);
      db.transaction(() => {
        quiet.forEach((id, i) => record(id, "tenant-b", `customer acme order b${i} refund policy`));
        for (let i = 0; i < 2100; i++) record(`busy-${i}`, "tenant-a", `customer acme order a${i} refund policy`);
      })();
    });
    const found = await t.api.memory.recall.query({ query: "acme refund policy", queue: "tenant-b", limit: 10 });
    expect(found.map((m) => m.memory.id).sort()).toEqual([...quiet].sort());
  });

  it("hands each claimed task the memories of prior runs (and none when context: false)", async () => {
    await using t = await startTestServer({ memoryContextLimit: 3 });
    await t.api.memory.remember.mutate({ content: "Scraping example.com needs a user agent header", kind: "lesson", queue: "scrape" });
    const first = await t.api.tasks.enqueue.mutate({ queue: "scrape", payload: { url: "https://example.com/a" } });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.complete.mutate({ taskId: first.id, agentId: "a1", result: { pages: 3 } });

    await t.api.tasks.enqueue.mutate({ queue: "scrape", payload: { url: "https://example.com/b" } });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a2" });
    expect(claimed!.context.length).toBeGreaterThanOrEqual(2);
    expect(claimed!.context.length).toBeLessThanOrEqual(3);
    const contents = claimed!.context.map((c) => c.memory.content);
    expect(contents.some((c) => c.includes("user agent header"))).toBe(true);
    expect(contents.some((c) => c.includes('"pages":3'))).toBe(true);

    await t.api.tasks.enqueue.mutate({ queue: "scrape", payload: { url: "https://example.com/c" } });
    expect((await t.api.tasks.claim.mutate({ agentId: "a3", context: false }))!.context).toEqual([]);
  });

  it("claims whose words are all common share one ranking, which a memory matching a rarer word of the next task does not hide", async () => {
    await using t = await startTestServer({ memoryContextLimit: 3 });
    const { memory } = t.server.services;
    // Many memories share the queue's words: those words are common (recall-cache.ts).
    await Promise.all(Array.from({ length: 200 }, (_, i) => memory.remember({ content: `reports queue digest number ${i}`, kind: "note", queue: "reports", tags: [] })));
    await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "reports", payload: { digest: "reports" } }, { queue: "reports", payload: { digest: "reports" } }] });
    const a = await t.api.tasks.claim.mutate({ agentId: "a1" });
    const b = await t.api.tasks.claim.mutate({ agentId: "a2" });
    // Nothing but common words: the same three memories, with the same scores (to six places: a
    // ranking shared for PROBE_TTL_MS is ranked anew after it, and recency moves by a hair).
    expect(b!.context.map((match) => match.memory)).toEqual(a!.context.map((match) => match.memory));
    b!.context.forEach((match, i) => expect(match.score).toBeCloseTo(a!.context[i]!.score, 6));
    expect(a!.context).toHaveLength(3);

    // A memory with a rare word, then a task with that word: ranked anew, the memory first.
    await t.api.memory.remember.mutate({ content: "The walrus digest needs the archive password", kind: "lesson", queue: "reports" });
    await t.api.tasks.enqueue.mutate({ queue: "reports", payload: { digest: "walrus reports" } });
    const c = await t.api.tasks.claim.mutate({ agentId: "a3" });
    expect(c!.context[0]!.memory.content).toBe("The walrus digest needs the archive password");
  });

  it("finds the one relevant memory among thousands sharing common words, in bounded time", async () => {
    await using t = await startTestServer({ memoryContextLimit: 3 });
    const { memory } = t.server.services;
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) =>
        memory.remember({ content: `Task in queue default completed: research topic report number ${i}`, kind: "note", queue: "default", tags: [] }),
      ),
    );
    await memory.remember({ content: "Research on zebra migration needs the 2024 satellite data", kind: "lesson", queue: "default", tags: [] });
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) => memory.remember({ content: `default research topic report ${i}`, kind: "note", tags: [] })),
    );

    await t.api.tasks.enqueue.mutate({ payload: { action: "research", topic: "zebra migration report" } });
    const started = performance.now();
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1" });
    console.info(`claim with recall over 4,001 memories took ${(performance.now() - started).toFixed(1)} ms`);
    expect(claimed!.context[0]!.memory.content).toContain("zebra migration");
    expect(claimed!.context).toHaveLength(3);
  });

  it("reads at most a bounded prefix of a huge payload, visiting only that prefix", async () => {
    // Counting the items read, not the time taken: the verdict must not depend on machine speed.
    let read = 0;
    const items = new Proxy(new Array(400_000).fill(0), {
      get: (target, key, receiver) => {
        if (typeof key === "string" && /^\d+$/.test(key)) read++;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const huge = { items, note: "never reached" };
    const text = payloadText(huge);
    expect(read).toBeLessThan(2000);
    expect(text.length).toBeLessThanOrEqual(2000);
    expect(text.startsWith("items 0 0 0")).toBe(true);
    expect(payloadText({ a: "x", b: { c: 2 } })).toBe("a x b c 2");

    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: { items: new Array(100_000).fill(0) } });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1" });
    const done = await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1" });
    expect(claimed!.id).toBe(task.id);
    expect(done.status).toBe("completed");
  });

  // An execution record cuts its task's payload and result to a length: cut in the middle of a
  // pair of surrogates (an emoji), the half left over was stored as replacement characters.
  it("an execution record cut inside an emoji of its payload, result or error keeps whole characters", async () => {
    const rocket = "\u{1F680}";
    // "k " and 1,997 letters, then the rocket across 2,000 units.
    expect(payloadText({ k: `${"y".repeat(1997)}${rocket}` }).isWellFormed()).toBe(true);
    expect(payloadText({ k: `${"y".repeat(2001)}` }).length).toBe(2000);
    await using t = await startTestServer({ retryBaseMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ queue: "emoji", payload: { k: `${"y".repeat(1997)}${rocket}` }, maxAttempts: 2 });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    // The error and the result (as JSON text, after its quote) have the rocket across 1,000 units.
    await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "a1", error: `${"e".repeat(999)}${rocket}` });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: `${"r".repeat(998)}${rocket}` });
    const records = await t.api.memory.recall.query({ taskId: task.id });
    expect(records.map((m) => m.memory.outcome).sort()).toEqual(["completed", "failed"]);
    for (const { memory } of records) {
      expect(memory.content).not.toContain("\uFFFD");
      expect(memory.content.isWellFormed()).toBe(true);
    }
  });

  it("validates remember input and answers recall for an unknown task with 404", async () => {
    await using t = await startTestServer();
    const empty = await rest(t.url, "POST", "/memory", { content: "" });
    expect(empty.status).toBe(400);
    expect(empty.body.message).toContain("content");
    expect((await rest(t.url, "GET", "/memory/recall?taskId=nope")).status).toBe(404);
    const saved = await rest(t.url, "POST", "/memory", { content: "remember me", tags: ["x"], data: { k: 1 } });
    expect(saved.body).toMatchObject({ kind: "note", content: "remember me", tags: ["x"], data: { k: 1 } });
  });
});
