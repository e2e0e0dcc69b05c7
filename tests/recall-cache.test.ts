// What recall keeps between claims (src/memory/recall-cache.ts) must never change what it ranks:
// a recall with everything kept answers exactly as one that starts cold, also once a term's
// class flips (memories holding it pruned below the probe size). And a term known to be common
// is not scored by bm25 again: bm25 reads the term's whole doclist, which grows with the memory.
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../src/config.js";
import { applyMigrations } from "../src/db/migrate.js";
import { openDatabase } from "../src/db/open-database.js";
import { Statements } from "../src/db/statements.js";
import { MemoryRecall, type RecallSubject } from "../src/memory/memory-recall.js";
import { MemoryStore } from "../src/memory/memory-store.js";
import { PROBE_TTL_MS } from "../src/memory/recall-cache.js";
import { TaskStore } from "../src/tasks/task-store.js";
import { makeTempDir } from "./helpers/test-server.js";
import { MemoryChanges } from "../src/memory/memory-changes.js";

function scratch() {
  const config = loadConfig({ env: {}, overrides: { dbPath: join(makeTempDir("recall-cache-"), "r.db") } });
  const db = openDatabase(config);
  applyMigrations(db);
  const st = new Statements(db);
  const memories = new MemoryStore(st);
  const tasks = new TaskStore(st);
  let now = Date.parse("2026-11-30T00:00:00Z");
  // Filed under no queue by default: notes filed under the task's queue join its context whatever their words.
  const remember = (content: string, queue: string | null = null) =>
    memories.insert({ id: `m-${now}`, kind: "note", content, agentId: null, queue, capability: null, taskId: null, outcome: null, durationMs: null, tags: "[]", data: "{}", idempotencyKey: null }, now++);
  const fresh = () => new MemoryRecall(memories, tasks, config.maxResponseBytes, new MemoryChanges());
  return { db, memories, remember, fresh };
}

const task = (words: string): RecallSubject => ({ id: "t-1", queue: "default", payload: { words }, capability: null, earlierRuns: false });
const ranked = (recall: MemoryRecall, words: string) => recall.recallForTask(task(words), 5, { bytes: 1_000_000, fitOnly: true }).map((m) => [m.memory.content, m.score]);

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("recall cache", () => {
  it("ranks as a cold recall does, before and after a common term's memories are pruned below the probe size", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse("2026-11-30T01:00:00Z"));
    const { db, remember, fresh } = scratch();
    for (let i = 0; i < 100; i++) remember(`walrus sighting number ${i}`);
    remember("zebra crossing near the walrus pier");
    for (let i = 0; i < 50; i++) remember(`unrelated harbour log ${i}`);

    const warm = fresh();
    expect(ranked(warm, "walrus zebra")).toEqual(ranked(fresh(), "walrus zebra"));
    vi.setSystemTime(Date.now() + PROBE_TTL_MS + 1);
    expect(ranked(warm, "walrus zebra")).toEqual(ranked(fresh(), "walrus zebra"));

    // Walrus memories pruned to a handful: the term is rare now, and bm25 ranks its memories first.
    db.prepare("DELETE FROM memories WHERE content LIKE 'walrus sighting number %' AND content NOT LIKE '% 1'").run();
    vi.setSystemTime(Date.now() + PROBE_TTL_MS + 1);
    const after = ranked(warm, "walrus zebra");
    expect(after).toEqual(ranked(fresh(), "walrus zebra"));
    expect(after.map(([content]) => content)).toEqual(["zebra crossing near the walrus pier", "walrus sighting number 1"]);
  });

  it("a candidate pruned since its probe was cached gives its place to the next one", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse("2026-11-30T01:00:00Z"));
    const { db, remember, fresh } = scratch();
    // Walrus memories in two queues: a task of each queue ranks its own queue's first.
    for (let i = 0; i < 100; i++) remember(`walrus sighting number ${i}`, i % 2 === 0 ? "north" : "south");
    const recall = fresh();
    const inQueue = (queue: string) =>
      recall.recallForTask({ ...task("walrus"), queue }, 5, { bytes: 1_000_000, fitOnly: true }).map((m) => m.memory.content);
    expect(inQueue("north")).toEqual([98, 96, 94, 92, 90].map((i) => `walrus sighting number ${i}`));
    // South's newest goes, while the probe of "walrus" (which holds it) is still fresh.
    db.prepare("DELETE FROM memories WHERE content = 'walrus sighting number 99'").run();
    expect(inQueue("south")).toEqual([97, 95, 93, 91, 89].map((i) => `walrus sighting number ${i}`));
  });

  it("asks bm25 about a common term once; later probes confirm it from the index alone", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse("2026-11-30T01:00:00Z"));
    const { memories, remember, fresh } = scratch();
    for (let i = 0; i < 100; i++) remember(`walrus sighting number ${i}`);
    const scored = vi.spyOn(memories, "termMatches");
    const recall = fresh();
    const walrusScorings = () => scored.mock.calls.filter(([term]) => term === '"walrus"').length;

    ranked(recall, "walrus");
    expect(walrusScorings()).toBe(1);
    for (let i = 0; i < 3; i++) {
      // Past the probe's freshness each time: the term is probed again, not scored again.
      vi.setSystemTime(Date.now() + PROBE_TTL_MS + 1);
      remember(`walrus sighting number ${100 + i}`);
      ranked(recall, "walrus");
    }
    expect(walrusScorings()).toBe(1);
    expect(ranked(recall, "walrus")).toEqual(ranked(fresh(), "walrus"));
  });

  it("merges a claim's rare matches and earlier runs into its queue's kept ranking as a cold recall ranks them all", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse("2026-11-30T01:00:00Z"));
    const { memories, remember, fresh } = scratch();
    // "walrus" and "harbour" common, with different newest memories; the newest also hold a rare word.
    for (let i = 0; i < 100; i++) remember(`walrus sighting number ${i}`);
    for (let i = 0; i < 80; i++) remember(`harbour log ${i}${i % 30 === 0 ? " okapi walrus" : ""}`, i % 2 === 0 ? "default" : "other");
    for (let i = 0; i < 3; i++) remember(`harbour log zebra ${i}`);
    memories.insert({ id: "m-run", kind: "execution", content: "earlier run of t-1", agentId: null, queue: "default", capability: null, taskId: "t-1", outcome: "failed", durationMs: 5, tags: "[]", data: "{}", idempotencyKey: null }, Date.now());
    const recall = fresh();
    const subject = (words: string, earlierRuns = false): RecallSubject => ({ ...task(words), earlierRuns });
    const rank = (on: MemoryRecall, s: RecallSubject) => on.recallForTask(s, 8, { bytes: 1_000_000, fitOnly: true }).map((m) => [m.memory.content, m.score]);

    // The first claim ranks the common terms' candidates and keeps the ranking; the later ones merge into it.
    const common = rank(recall, subject("walrus harbour"));
    expect(common).toEqual(rank(fresh(), subject("walrus harbour")));
    for (const s of [subject("walrus harbour zebra"), subject("walrus harbour okapi zebra"), subject("walrus harbour", true), subject("walrus harbour okapi", true)]) {
      const warm = rank(recall, s);
      expect(warm).toEqual(rank(fresh(), s));
      expect(warm).not.toEqual(common);
    }
    // The rare word's memories, also the newest common candidates, are handed out once, ranked by the rare word.
    const withZebra = rank(recall, subject("walrus harbour zebra")).map(([content]) => content);
    expect(withZebra.slice(0, 3)).toEqual([2, 1, 0].map((i) => `harbour log zebra ${i}`));
    expect(new Set(withZebra).size).toBe(withZebra.length);
  });

  it("scores a claim's one rare word by bm25 only when it has more than one match, and ranks as if it always did", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse("2026-11-30T01:00:00Z"));
    const { memories, remember, fresh } = scratch();
    for (let i = 0; i < 100; i++) remember(`walrus sighting number ${i}`);
    remember("zebra crossing near the walrus pier");
    remember("okapi tracks by the okapi pool, no walrus");
    remember("okapi seen near the walrus pier");
    const scored = vi.spyOn(memories, "termMatches");
    const recall = fresh();
    // A task of queue "walrus" (a common word) with the payload's words: nothing else to look up.
    const rank = (words: string) => recall.recallForTask({ ...task(""), queue: "walrus", payload: words }, 5, { bytes: 1_000_000, fitOnly: true }).map((m) => [m.memory.content, m.score]);
    rank("");
    const scoredWords = () => scored.mock.calls.map(([term]) => term);

    // "zebra" is the only word to look up and matches one memory: first, with no bm25 read. With
    // a second word to look up ("quokka", in no memory), bm25 scores it: the same answer.
    scored.mockClear();
    const sole = rank("zebra");
    expect(scoredWords()).toEqual([]);
    expect(sole[0]![0]).toBe("zebra crossing near the walrus pier");
    expect(rank("zebra quokka")).toEqual(sole);
    expect(scoredWords()).toEqual(['"zebra"', '"quokka"']);

    // "okapi" matches two memories: bm25 ranks them (the one saying it twice first, though older), as with a second word.
    scored.mockClear();
    const two = rank("okapi");
    expect(scoredWords()).toEqual(['"okapi"']);
    expect(two.slice(0, 2).map(([content]) => content)).toEqual(["okapi tracks by the okapi pool, no walrus", "okapi seen near the walrus pier"]);
    expect(two[0]![1]).toBeGreaterThan(two[1]![1] as number);
    expect(rank("okapi quokka")).toEqual(two);
  });
});
