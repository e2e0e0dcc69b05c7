// The memory search index is compacted by the server: FTS5 keeps a segment per commit that wrote
// memories until its own merges fold them, and recall looks every term up in every segment. The
// compaction merges them in steps, each a write of its own, down to one segment a level, without
// changing what recall answers; while other writes arrive it takes one step at a time.
import { afterEach, describe, expect, it, vi } from "vitest";
import { storeLessonAsEarlierVersion } from "./helpers/earlier-versions.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const segments = (server: TestServer) => withDatabase(server, (db) => db.prepare("SELECT count(DISTINCT segid) FROM memories_fts_idx").pluck().get() as number);
const integrity = (server: TestServer) => withDatabase(server, (db) => db.exec("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)"));

/**
 * `n` notes, each written by a commit of its own (sequential writes): a level-0 segment each,
 * until FTS5 merges them. `words` more words each make the segments, and their merge, bigger.
 */
async function rememberOneByOne(server: TestServer, n: number, from = 0, words = 0): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const extra = Array.from({ length: words }, (_, k) => ` w${(i * words + k) % 4000}`).join("");
    await server.api.memory.remember.mutate({ content: `note ${i} about ${["deploys", "schemas", "queues", "leases"][i % 4]} and word${i % 7}${extra}`, tags: [`t${i % 3}`] });
  }
}

const QUERIES = ["deploys", "schemas word3", "leases word6 word1", "note 17", "queues"];
/** Each query's matches, best first, with their scores. */
const recallAll = (server: TestServer) => Promise.all(QUERIES.map((query) => server.api.memory.recall.query({ query, limit: 8 })));

/** The same memories in the same order, scored the same but for recency, which moves a score by about a millionth as time passes. */
function expectSameRecall(now: Awaited<ReturnType<typeof recallAll>>, before: Awaited<ReturnType<typeof recallAll>>): void {
  expect(now.map((matches) => matches.map((m) => m.memory.id))).toEqual(before.map((matches) => matches.map((m) => m.memory.id)));
  now.forEach((matches, q) => matches.forEach((m, i) => expect(Math.abs(m.score - before[q]![i]!.score)).toBeLessThan(1e-5)));
}

describe("memory index compaction", () => {
  it("merges the index down to one segment a level, then finds it compact and writes nothing more; recall answers the same", async () => {
    t = await startTestServer({ memoryIndexCompactMs: 0 });
    const memory = t.server.services.memory;
    await rememberOneByOne(t, 40);
    const before = segments(t);
    // FTS5's own merges leave several segments after 40 commits of one note each.
    expect(before).toBeGreaterThanOrEqual(4);
    const recalledBefore = await recallAll(t);

    expect(await memory.compactIndex()).toBeGreaterThanOrEqual(1);
    const after = segments(t);
    expect(after).toBeLessThan(before);
    // The run went on until a step found nothing left to merge: the next one does not even ask.
    const sent = t.server.services.db.sent.get("memory.compactIndex");
    expect(await memory.compactIndex()).toBe(0);
    expect(t.server.services.db.sent.get("memory.compactIndex")).toBe(sent);
    // Something else was written since (no memory): the next run asks once, and finds it compact.
    await t.api.events.publish.mutate({ type: "unrelated", source: "s" });
    expect(await memory.compactIndex()).toBe(0);
    expect(t.server.services.db.sent.get("memory.compactIndex")).toBe(sent! + 1);
    expect(segments(t)).toBe(after);

    integrity(t);
    expectSameRecall(await recallAll(t), recalledBefore);
    expect(recalledBefore.every((matches) => matches.length > 0)).toBe(true);

    // Memories written since: the next run merges again.
    await rememberOneByOne(t, 12, 40);
    const grown = segments(t);
    expect(grown).toBeGreaterThan(after);
    expect(await memory.compactIndex()).toBeGreaterThanOrEqual(1);
    expect(segments(t)).toBeLessThan(grown);
    integrity(t);
  });

  it("takes one step a run while other writes arrive, and finishes on a later run", async () => {
    t = await startTestServer({ memoryIndexCompactMs: 0 });
    const memory = t.server.services.memory;
    await rememberOneByOne(t, 40, 0, 300);
    const before = segments(t);
    // Steps of one page: the merge takes many. A write sent while the first step runs ends the run after it.
    const running = memory.compactIndex(1);
    // Sent at once, in this turn (over HTTP it could arrive after a second step began).
    await memory.remember({ content: "written while the index compacts", kind: "note", tags: [] });
    expect(await running).toBe(1);
    const afterOneStep = segments(t);
    expect(afterOneStep).toBeGreaterThan(1);
    // Nothing else is written now: the next run goes on to the end.
    const steps = await memory.compactIndex(1);
    expect(steps).toBeGreaterThan(1);
    expect(segments(t)).toBeLessThan(before);
    expect(await memory.compactIndex(1)).toBe(0);
    integrity(t);
    expect((await t.api.memory.recall.query({ query: "compacts" })).map((m) => m.memory.content)).toEqual(["written while the index compacts"]);
  });

  it("stops between steps once shutdown begins", async () => {
    t = await startTestServer({ memoryIndexCompactMs: 0 });
    const memory = t.server.services.memory;
    await rememberOneByOne(t, 40, 0, 300);
    const stop = new AbortController();
    // The first step is sent at once; shutdown begins while it runs: no second step follows.
    const running = memory.compactIndex(1, stop.signal);
    stop.abort();
    expect(await running).toBe(1);
    expect(t.server.services.db.sent.get("memory.compactIndex")).toBe(1);
    expect(await memory.compactIndex(1, stop.signal)).toBe(0);
    expect(t.server.services.db.sent.get("memory.compactIndex")).toBe(1);
  });

  it("runs on its own every memoryIndexCompactMs, and on an idle server writes nothing at all", async () => {
    t = await startTestServer({ memoryIndexCompactMs: 50 });
    await rememberOneByOne(t, 40);
    const server = t;
    // 40 one-page segments merge into one.
    await vi.waitFor(() => expect(segments(server)).toBe(1), { timeout: 30_000 });
    integrity(server);
    // Compact, with every note indexed: the job's runs look (on the reader) and write nothing,
    // not even an empty transaction (it takes the file's write lock, which other servers share).
    await vi.waitFor(() => expect(t!.server.services.jobs.memoryIndex.runs).toBeGreaterThan(2), { timeout: 15_000 });
    // The job's own writes. The server's other jobs may write meanwhile (an agent's health
    // changing on a slow run): each such write may have added a segment, so the job's next run
    // takes one compaction step to see that it did not. None other, none of the job's.
    const { db } = t.server.services;
    const job = t.server.services.jobs.memoryIndex;
    const [compactions, indexings] = [() => db.sent.get("memory.compactIndex") ?? 0, () => db.sent.get("memory.indexNotes") ?? 0];
    const others = () => db.writesSent - compactions() - indexings();
    // The window opens once the job is compact as of every write sent: a run that began after a
    // look found none sent since (the job's own steps included). A write sent just before the
    // window would otherwise cost a step inside it, counted against no write of the window
    // (a full run under load saw 1 step with no other write in the window).
    await vi.waitFor(
      async () => {
        const [sent, runs] = [db.writesSent, job.runs];
        await vi.waitFor(() => expect(job.runs).toBeGreaterThan(runs + 1), { timeout: 15_000 });
        expect(db.writesSent).toBe(sent);
      },
      { timeout: 30_000 },
    );
    const before = { compactions: compactions(), indexings: indexings(), others: others(), runs: job.runs };
    await vi.waitFor(() => expect(t!.server.services.jobs.memoryIndex.runs).toBeGreaterThan(before.runs + 5), { timeout: 15_000 });
    expect(indexings()).toBe(before.indexings);
    expect(compactions() - before.compactions).toBeLessThanOrEqual(others() - before.others);
  });

  it("indexes the notes a server of an earlier version stored without their notes_fts entry, a megabyte of text a write", async () => {
    t = await startTestServer({ memoryIndexCompactMs: 0 });
    const content = (i: number) => `lesson ${i} on the harbor ${"x".repeat(100_000)}`;
    // Stored the way a version before notes_fts did: memories and memories_fts only.
    withDatabase(t, (db) => {
      for (let i = 0; i < 25; i++) storeLessonAsEarlierVersion(db, `old-${i}`, content(i), 0);
    });
    await t.api.memory.remember.mutate({ content: "a lesson of this version about the harbor", kind: "lesson" });
    const sent = () => t!.server.services.db.sent.get("memory.indexNotes") ?? 0;
    expect(await t.server.services.memory.indexMissedNotes()).toBe(25);
    // 100 KB each: ten fit in a megabyte, so three writes.
    expect(sent()).toBe(3);
    const indexed = withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM notes_fts_docsize`).pluck().get());
    expect(indexed).toBe(26);
    // Looked through: the next run finds nothing and writes nothing.
    expect(await t.server.services.memory.indexMissedNotes()).toBe(0);
    expect(sent()).toBe(3);
  });
});
