// Type patterns exist twice (SQL for reading the log, a predicate for live events): these tests
// prove both give the same answer, and that direct messages reach their target only.
import { describe, expect, it, vi } from "vitest";
import { matchesType, mergePatterns } from "../src/events/type-patterns.js";
import { collectEvents } from "./helpers/event-collector.js";
import { startTestServer } from "./helpers/test-server.js";

/** Types chosen to sit on both sides of every prefix boundary ("task" vs "task." vs "taskx", "-" < "." < "/"). */
const TYPES = [
  "task",
  "task.claimed",
  "task.a.b",
  "task.a",
  "taskx.claimed",
  "tasks.claimed",
  "task-x.claimed",
  "task_x.claimed",
  "task:1.done",
  "Task.claimed",
  "ta.sk",
  "build.finished",
  "build.finished.late",
];

const PATTERN_SETS: string[][] = [
  ["task.*"],
  ["*"],
  ["task"],
  ["task.a.*"],
  ["build.finished"],
  ["task.a.*", "build.*"],
  ["Task.*", "ta.sk"],
  ["task:1.*", "task-x.*"],
];

describe("type patterns", () => {
  it("matchesType: prefix.* matches any depth below the prefix but not the prefix itself nor a longer word; * matches all", () => {
    expect(matchesType("task.claimed", ["task.*"])).toBe(true);
    expect(matchesType("task.a.b", ["task.*"])).toBe(true);
    expect(matchesType("task", ["task.*"])).toBe(false);
    expect(matchesType("taskx.claimed", ["task.*"])).toBe(false);
    expect(matchesType("Task.claimed", ["task.*"])).toBe(false);
    for (const type of TYPES) expect(matchesType(type, ["*"])).toBe(true);
    expect(matchesType("task", ["task"])).toBe(true);
    expect(matchesType("task.claimed", ["task"])).toBe(false);
    expect(matchesType("anything", [])).toBe(false);
  });

  it("mergePatterns: keeps a sorted set, and * absorbs everything", () => {
    expect(mergePatterns(["task.*"], ["build.*", "task.*"])).toEqual(["build.*", "task.*"]);
    expect(mergePatterns(["task.*"], ["*"])).toEqual(["*"]);
  });

  it("the SQL (poll, list, stream backfill) and matchesType (live stream) select exactly the same events", async () => {
    await using t = await startTestServer();
    const { api } = t;
    // Subscribe before publishing: each subscription's cursor starts at the head (0).
    for (const [i, types] of PATTERN_SETS.entries()) await api.events.subscribe.mutate({ agentId: `p${i}`, types });
    const live = PATTERN_SETS.map((types) => collectEvents(api, { types: [...types, "zz.*"] }));
    await Promise.all(live.map((c) => c.started));

    const published: Array<{ seq: number; type: string }> = [];
    for (const type of TYPES) published.push(await api.events.publish.mutate({ type, source: "test" }));
    const sentinel = await api.events.publish.mutate({ type: "zz.sentinel", source: "test" });
    published.push(sentinel);
    const expectedFor = (types: string[]) => published.filter((e) => matchesType(e.type, types)).map((e) => e.type);

    // Hand-checked expectations for the interesting sets, so the oracle itself is verified too.
    expect(expectedFor(["task.*"])).toEqual(["task.claimed", "task.a.b", "task.a"]);
    expect(expectedFor(["*"])).toEqual([...TYPES, "zz.sentinel"]);
    expect(expectedFor(["task.a.*"])).toEqual(["task.a.b"]);
    expect(expectedFor(["task:1.*", "task-x.*"])).toEqual(["task-x.claimed", "task:1.done"]);

    for (const [i, types] of PATTERN_SETS.entries()) {
      const polled = await api.events.poll.mutate({ agentId: `p${i}`, limit: 1000 });
      expect(polled.map((e) => e.type), `poll ${types.join(",")}`).toEqual(expectedFor(types));
      const listed = await api.events.list.query({ afterSeq: 0, types, limit: 1000 });
      expect(listed.map((e) => e.type), `list ${types.join(",")}`).toEqual(expectedFor(types));
      const backfill = collectEvents(api, { types: [...types, "zz.*"], lastEventId: "0" });
      await vi.waitFor(() => expect(backfill.seqs()).toContain(sentinel.seq), { timeout: 30_000, interval: 10 });
      expect(backfill.events.map((e) => e.type), `backfill ${types.join(",")}`).toEqual(expectedFor([...types, "zz.*"]));
      backfill.unsubscribe();
    }

    // The live streams filter in memory; each also follows zz.* so it ends on the sentinel.
    for (const [i, types] of PATTERN_SETS.entries()) {
      const stream = live[i]!;
      await vi.waitFor(() => expect(stream.seqs().at(-1)).toBe(sentinel.seq), { timeout: 30_000, interval: 10 });
      expect(stream.events.map((e) => e.type), `live ${types.join(",")}`).toEqual(expectedFor([...types, "zz.*"]));
      stream.unsubscribe();
    }
  });

  it("rejects malformed patterns and types with BAD_REQUEST", async () => {
    await using t = await startTestServer();
    for (const types of [["task*"], ["*.claimed"], ["task..x"], ["task.*.x"]]) {
      await expect(t.api.events.subscribe.mutate({ agentId: "a", types })).rejects.toMatchObject({ data: { code: "INVALID_INPUT" } });
    }
    await expect(t.api.events.publish.mutate({ type: "task.*", source: "x" })).rejects.toMatchObject({ data: { code: "INVALID_INPUT" } });
  });
});

describe("targeted events", () => {
  it("reach only their target's poll and stream, never another subscriber even with *", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "alice", types: ["*"] });
    await api.events.subscribe.mutate({ agentId: "bob", types: ["*"] });
    const anonymous = collectEvents(api, { types: ["*"] });
    const aliceLive = collectEvents(api, { agentId: "alice" });
    const bobLive = collectEvents(api, { agentId: "bob", types: ["*"] });
    await Promise.all([anonymous.started, aliceLive.started, bobLive.started]);

    const broadcast = await api.events.publish.mutate({ type: "chat.hello", source: "carol" });
    const toAlice = await api.events.publish.mutate({ type: "chat.dm", source: "carol", target: "alice", payload: { text: "hi" } });
    const toDave = await api.events.publish.mutate({ type: "chat.dm", source: "carol", target: "dave" });
    const end = await api.events.publish.mutate({ type: "chat.bye", source: "carol" });
    expect(toAlice.target).toBe("alice");

    expect((await api.events.poll.mutate({ agentId: "alice" })).map((e) => e.seq)).toEqual([broadcast.seq, toAlice.seq, end.seq]);
    expect((await api.events.poll.mutate({ agentId: "bob" })).map((e) => e.seq)).toEqual([broadcast.seq, end.seq]);

    for (const c of [anonymous, aliceLive, bobLive]) {
      await vi.waitFor(() => expect(c.seqs().at(-1)).toBe(end.seq), { timeout: 30_000, interval: 10 });
    }
    expect(aliceLive.seqs()).toEqual([broadcast.seq, toAlice.seq, end.seq]);
    expect(aliceLive.events[1]!.payload).toEqual({ text: "hi" });
    expect(bobLive.seqs()).toEqual([broadcast.seq, end.seq]);
    expect(anonymous.seqs()).toEqual([broadcast.seq, end.seq]);

    // The history (audit) shows the whole log, direct messages included.
    expect((await api.events.list.query({ afterSeq: 0 })).map((e) => e.seq)).toEqual([broadcast.seq, toAlice.seq, toDave.seq, end.seq]);
    for (const c of [anonymous, aliceLive, bobLive]) c.unsubscribe();
  });
});
