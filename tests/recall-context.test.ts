// What a claim's context is made of, from an outside user's cases: a word is found by itself in
// any case and script (recall looks words up as the index folds them, not as JavaScript does); a
// long prompt's specific words are the ones looked up; a busy queue's execution records leave room
// for the lessons that match; a note filed under a queue or a capability reaches their tasks.
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { MAX_TERMS, matchAny, questionTerms, taskTerms } from "../src/memory/fts-query.js";
import { startTestServer } from "./helpers/test-server.js";

const contents = (context: ReadonlyArray<{ memory: { content: string } }>) => context.map((m) => m.memory.content);

describe("a claim's context", () => {
  it("every letter and digit's word is found by itself, whatever case the index folds it to (real FTS5, the store's tokenizer)", () => {
    const db = new Database(":memory:");
    db.exec(`CREATE VIRTUAL TABLE f USING fts5(c, tokenize = 'porter unicode61')`);
    const insert = db.prepare("INSERT INTO f (rowid, c) VALUES (?, ?)");
    const matches = db.prepare<[string], number>("SELECT rowid FROM f WHERE f MATCH ?").pluck();
    const missed: string[] = [];
    let id = 0;
    // The characters JavaScript changes in lower-casing: where its folding and the index's may differ.
    for (let cp = 0x41; cp <= 0x1ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const char = String.fromCodePoint(cp);
      if (!/[\p{L}\p{N}]/u.test(char) || char.toLowerCase() === char) continue;
      const word = `ab${char}cd`;
      const lower = `ab${char.toLowerCase()}cd`;
      insert.run(++id, `zz ${word} zz`);
      insert.run(++id, `zz ${lower} zz`);
      const alone = questionTerms(word);
      if (alone.length === 0 || !matches.all(matchAny(alone)).includes(id - 1)) missed.push(`U+${cp.toString(16)} ${char}`);
      // Both cases in one question: each is found, also where the index keeps them apart (Ꭰ, ꭰ).
      const both = matches.all(matchAny(questionTerms(`${word} ${lower}`)));
      if (!both.includes(id - 1) || !both.includes(id)) missed.push(`U+${cp.toString(16)} ${char} with ${char.toLowerCase()}`);
    }
    expect(id).toBeGreaterThan(1000);
    expect(missed).toEqual([]);
  });

  it("İSTANBUL and ᏣᎳᎩ (Cherokee capitals) find the note that holds them, by recall and by a claim", async () => {
    await using t = await startTestServer();
    await t.api.memory.remember.mutate({ content: "İSTANBUL deliveries need a customs permit", kind: "lesson" });
    await t.api.memory.remember.mutate({ content: "ᏣᎳᎩ translations go to the language desk", kind: "lesson" });
    expect(contents(await t.api.memory.recall.query({ query: "İSTANBUL" }))).toEqual(["İSTANBUL deliveries need a customs permit"]);
    expect(contents(await t.api.memory.recall.query({ query: "istanbul" }))).toEqual(["İSTANBUL deliveries need a customs permit"]);
    expect(contents(await t.api.memory.recall.query({ query: "ᏣᎳᎩ" }))).toEqual(["ᏣᎳᎩ translations go to the language desk"]);
    await t.api.tasks.enqueue.mutate({ queue: "tr", payload: { city: "İSTANBUL" } });
    expect(contents((await t.api.tasks.claim.mutate({ agentId: "a1" }))!.context)).toEqual(["İSTANBUL deliveries need a customs permit"]);
  });

  it("a long prompt looks up its most specific words, not its first ones; a word in two cases is looked up once", async () => {
    const prompt =
      "please write a short summary of the open items for the team and the customer and then list what is due this week and who owns each of them, say how far along we are, and finally propose the next steps for the narwhal account";
    const words = questionTerms(prompt);
    expect(words).toHaveLength(MAX_TERMS);
    expect(words).toContain("narwhal");
    expect(words).not.toContain("of");
    expect(taskTerms("Reports", null, { title: "reports REPORTS digest" })).toEqual(["Reports", "title", "digest"]);

    await using t = await startTestServer();
    await t.api.memory.remember.mutate({ content: "Narwhal accounts must be escalated to legal first", kind: "lesson" });
    for (let i = 0; i < 5; i++) await t.api.memory.remember.mutate({ content: `team note ${i}: please write to the team` });
    expect(contents(await t.api.memory.recall.query({ query: prompt, limit: 1 }))).toEqual(["Narwhal accounts must be escalated to legal first"]);
    await t.api.tasks.enqueue.mutate({ queue: "llm", payload: { prompt } });
    expect(contents((await t.api.tasks.claim.mutate({ agentId: "a1" }))!.context)).toContain("Narwhal accounts must be escalated to legal first");
  });

  it("a busy queue's execution records, which match a task's words more closely, leave room for the lesson that matches", async () => {
    await using t = await startTestServer({ memoryContextLimit: 5, retryBaseMs: 0 });
    const lesson = "thumbs jobs: webp images must be converted with libvips, never imagemagick";
    await t.api.memory.remember.mutate({ content: lesson, kind: "lesson" });
    for (let i = 0; i < 10; i++) {
      const task = await t.api.tasks.enqueue.mutate({ queue: "thumbs", payload: { format: "webp", image: `img${i}` } });
      await t.api.tasks.claim.mutate({ agentId: "a1", context: false });
      await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: { ok: true } });
    }
    await t.api.tasks.enqueue.mutate({ queue: "thumbs", payload: { format: "webp", image: "new" } });
    const context = (await t.api.tasks.claim.mutate({ agentId: "a2" }))!.context;
    expect(context).toHaveLength(5);
    expect(contents(context)).toContain(lesson);
    expect(context.filter((m) => m.memory.kind === "execution")).toHaveLength(4);

    // A retry's own earlier runs come first and count among the records: the lesson keeps its room.
    const retried = await t.api.tasks.enqueue.mutate({ queue: "thumbs", payload: { format: "webp", image: "bad" }, maxAttempts: 9 });
    for (let attempt = 1; attempt <= 8; attempt++) {
      const claimed = (await t.api.tasks.claim.mutate({ agentId: "a3", waitMs: 10_000 }))!;
      expect(claimed.id).toBe(retried.id);
      expect(contents(claimed.context)).toContain(lesson);
      await t.api.tasks.fail.mutate({ taskId: retried.id, agentId: "a3", error: `attempt ${attempt} failed` });
    }
    // A recall filtered by another queue keeps the task's own runs out too.
    expect(await t.api.memory.recall.query({ taskId: retried.id, queue: "elsewhere" })).toEqual([]);
  });

  // A failed run's outcome weighs less than a completed one's: where other tasks' completed runs
  // matched the retry's words as closely (the same payload), they ranked above its own failures,
  // and the retry was handed their "ok" instead of why it failed before.
  it("a retry's own earlier runs come first even when other tasks' completed runs match its words as closely", async () => {
    await using t = await startTestServer({ memoryContextLimit: 5, retryBaseMs: 0 });
    const payload = { source: "postgres", table: "orders", mode: "full" };
    for (let i = 0; i < 20; i++) {
      const task = await t.api.tasks.enqueue.mutate({ queue: "etl", payload });
      await t.api.tasks.claim.mutate({ agentId: "w", context: false });
      await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "w", result: "postgres orders full ok" });
    }
    const lesson = await t.api.memory.remember.mutate({ content: "postgres replicas lag: read from the primary", kind: "lesson" });
    const retried = await t.api.tasks.enqueue.mutate({ queue: "etl", payload, maxAttempts: 5 });
    for (let attempt = 1; attempt <= 2; attempt++) {
      await t.api.tasks.claim.mutate({ agentId: "w", context: false });
      await t.api.tasks.fail.mutate({ taskId: retried.id, agentId: "w", error: `attempt ${attempt}: connection reset` });
    }
    const claimed = (await t.api.tasks.claim.mutate({ agentId: "w", waitMs: 10_000 }))!;
    expect(claimed.id).toBe(retried.id);
    const own = (context: typeof claimed.context) => context.slice(0, 2).map((m) => [m.memory.taskId, m.memory.outcome]);
    expect(own(claimed.context)).toEqual([[retried.id, "failed"], [retried.id, "failed"]]);
    expect(claimed.context.map((m) => m.memory.id)).toContain(lesson.id);
    // Best first: no memory after them scores higher.
    const scores = claimed.context.map((m) => m.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    // What recall --task shows is the same.
    expect(own(await t.api.memory.recall.query({ taskId: retried.id, limit: 5 }))).toEqual([[retried.id, "failed"], [retried.id, "failed"]]);
  });

  it("a note filed under a queue or a capability is in the context of its tasks whatever their words; not of other queues'", async () => {
    await using t = await startTestServer();
    await t.api.memory.remember.mutate({ content: "Never email customers before 9am local time", kind: "lesson", queue: "outreach" });
    await t.api.memory.remember.mutate({ content: "Invoices over 10k need a second approver", kind: "lesson", capability: "billing" });
    await t.api.tasks.enqueue.mutate({ queue: "outreach", payload: { n: 42 } });
    expect(contents((await t.api.tasks.claim.mutate({ agentId: "a1" }))!.context)).toEqual(["Never email customers before 9am local time"]);
    await t.api.tasks.enqueue.mutate({ queue: "q9", capability: "billing", payload: { n: 1 } });
    expect(contents((await t.api.tasks.claim.mutate({ agentId: "a2", capabilities: ["billing"] }))!.context)).toEqual(["Invoices over 10k need a second approver"]);
    await t.api.tasks.enqueue.mutate({ queue: "q10", payload: { n: 7 } });
    expect((await t.api.tasks.claim.mutate({ agentId: "a3" }))!.context).toEqual([]);
    // A recall filtered by another queue or capability ranks that filter's memories only.
    const outreach = await t.api.tasks.enqueue.mutate({ queue: "outreach", capability: "billing", payload: { n: 43 } });
    expect(await t.api.memory.recall.query({ taskId: outreach.id, queue: "q9" })).toEqual([]);
    expect(await t.api.memory.recall.query({ taskId: outreach.id, capability: "other" })).toEqual([]);
    expect(contents(await t.api.memory.recall.query({ taskId: outreach.id }))).toEqual(["Never email customers before 9am local time", "Invoices over 10k need a second approver"]);
  });
});
