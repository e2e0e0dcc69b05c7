// The client's side of runs' logs against a real server: runWorker's run.log (lines batched, in
// order, sent before the settle, never twice after a lost answer, refused once the lease is over)
// and followLog (a task's lines as they come, until it settles).
import { afterEach, describe, expect, it } from "vitest";
import { createCoordinationClient, followLog, runWorker, type LogLine, type Worker } from "../client/index.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let worker: Worker | undefined;
afterEach(async () => {
  await worker?.stop();
  await t?.stop({ removeFiles: true });
  t = worker = undefined;
});

/** The task.log and task.completed events of the log, as [type, payload], oldest first. */
const logAndSettle = async (server: TestServer) =>
  (await server.api.events.list.query({ types: ["task.log", "task.completed"], limit: 1000 })).map((event) => [event.type, event.payload] as const);

/** A fetch that lets the server answer the first tasks.appendLog, then loses the answer (as a dropped connection does). */
function losingFirstAppend(): typeof fetch {
  let lost = false;
  return async (input, init) => {
    const response = await fetch(input, init);
    if (!lost && String(input instanceof Request ? input.url : input).includes("tasks.appendLog")) {
      lost = true;
      await response.arrayBuffer();
      throw new TypeError("fetch failed");
    }
    return response;
  };
}

/** A model's answer of 16,000 characters, the `i`th. */
const answer = (i: number) => `answer ${i} `.padEnd(16_000, "x");

/**
 * Runs one task whose handler logs `count` answers at once, checks every line was stored in order
 * with no error told, and returns the appends' line ranges and the complete, as the log has them.
 */
async function loggedInOneRun(server: TestServer, queue: string, count: number): Promise<Array<[number, number] | string>> {
  const { api } = server;
  const { id } = await api.tasks.enqueue.mutate({ queue });
  const errors: unknown[] = [];
  let stored: boolean[] = [];
  worker = await runWorker({
    api,
    agentId: "logger",
    queues: [queue],
    waitMs: 200,
    onError: (error) => errors.push(error),
    handler: async (_task, _signal, run) => {
      stored = await Promise.all(Array.from({ length: count }, (_, i) => run.log(answer(i))));
      return null;
    },
  });
  expect((await api.tasks.wait.query({ taskId: id, waitMs: 30_000 })).status).toBe("completed");
  expect(stored).toEqual(Array.from({ length: count }, () => true));
  expect((await api.tasks.log.query({ taskId: id, limit: 1000 })).lines.map((line) => line.message)).toEqual(Array.from({ length: count }, (_, i) => answer(i)));
  expect(errors).toEqual([]);
  const events = await logAndSettle(server);
  return events.map(([type, payload]) => (type === "task.log" ? [(payload as { firstLine: number }).firstLine, (payload as { lastLine: number }).lastLine] : type));
}

describe("run.log in runWorker", () => {
  it("lines logged in a tight loop go in appends of at most 100, in order, all stored before the run's complete", async () => {
    t = await startTestServer();
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "logged", payload: { pages: 250 } });
    const stored: Array<Promise<boolean>> = [];
    const errors: unknown[] = [];
    worker = await runWorker({
      api,
      agentId: "logger",
      queues: ["logged"],
      waitMs: 200,
      onError: (error) => errors.push(error),
      handler: async (_task, _signal, run) => {
        for (let page = 1; page <= 250; page++) stored.push(run.log(`page ${page}`, page % 50 === 0 ? { level: "warn", data: { page } } : {}));
        return { pages: 250 };
      },
    });
    const done = await api.tasks.wait.query({ taskId: id, waitMs: 30_000 });
    expect(done.status).toBe("completed");
    expect(await Promise.all(stored)).toEqual(Array.from({ length: 250 }, () => true));
    const log = await api.tasks.log.query({ taskId: id, limit: 1000 });
    expect(log.lines.map((line) => line.message)).toEqual(Array.from({ length: 250 }, (_, i) => `page ${i + 1}`));
    expect(log.lines.filter((line) => line.level === "warn").map((line) => line.data)).toEqual([{ page: 50 }, { page: 100 }, { page: 150 }, { page: 200 }, { page: 250 }]);
    expect(new Set(log.lines.map((line) => `${line.agentId}/${line.attempt}`))).toEqual(new Set(["logger/1"]));
    // Three appends (100, 100, 50 lines), every one before the complete.
    expect(await logAndSettle(t)).toEqual([
      ["task.log", expect.objectContaining({ taskId: id, firstLine: 1, lastLine: 100 })],
      ["task.log", expect.objectContaining({ taskId: id, firstLine: 101, lastLine: 200 })],
      ["task.log", expect.objectContaining({ taskId: id, firstLine: 201, lastLine: 250 })],
      ["task.completed", expect.objectContaining({ taskId: id })],
    ]);
    expect(errors).toEqual([]);
  });

  it("lines logged one at a time, with pauses, over a long run are all stored: a flush that finds nothing waiting does not stop later ones", async () => {
    // A line logged while an append is under way rides on it, and its own flush timer then finds
    // nothing waiting; every line after that must still go (it used to resolve false at the settle).
    t = await startTestServer();
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "paced" });
    const errors: unknown[] = [];
    const stored: boolean[] = [];
    worker = await runWorker({
      api,
      agentId: "logger",
      queues: ["paced"],
      waitMs: 200,
      onError: (error) => errors.push(error),
      handler: async (_task, _signal, run) => {
        stored.push(await run.log("step 1"));
        // Logged as step 1's answer comes back: sent by the append loop still running, its timer left behind.
        stored.push(await run.log("step 2"));
        // That timer fires (it was set first, so before this wait ends) and finds nothing to send.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        stored.push(await run.log("step 3"));
        stored.push(await run.log("step 4"));
        return null;
      },
    });
    expect((await api.tasks.wait.query({ taskId: id, waitMs: 30_000 })).status).toBe("completed");
    expect(stored).toEqual([true, true, true, true]);
    expect((await api.tasks.log.query({ taskId: id })).lines.map((line) => line.message)).toEqual(["step 1", "step 2", "step 3", "step 4"]);
    expect(errors).toEqual([]);
  });

  it("an append whose answer was lost is sent again under its key: its lines are stored once", async () => {
    t = await startTestServer();
    const client = createCoordinationClient({ url: t.url, fetch: losingFirstAppend() });
    try {
      const { id } = await t.api.tasks.enqueue.mutate({ queue: "lossy" });
      worker = await runWorker({
        api: client.api,
        agentId: "logger",
        queues: ["lossy"],
        waitMs: 200,
        onError: () => undefined,
        handler: async (_task, _signal, run) => {
          const sent = await Promise.all([run.log("one"), run.log("two"), run.log("three")]);
          expect(sent).toEqual([true, true, true]);
          return null;
        },
      });
      expect((await t.api.tasks.wait.query({ taskId: id, waitMs: 30_000 })).status).toBe("completed");
      expect((await t.api.tasks.log.query({ taskId: id })).lines.map((line) => [line.line, line.message])).toEqual([
        [1, "one"],
        [2, "two"],
        [3, "three"],
      ]);
      expect((await logAndSettle(t)).filter(([type]) => type === "task.log")).toHaveLength(1);
    } finally {
      await worker?.stop();
      worker = undefined;
      await client.close();
    }
  });

  it("once the run's lease is over its lines are refused: log resolves false and nothing more is stored", async () => {
    t = await startTestServer();
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "cut" });
    let afterLoss: Promise<boolean> | undefined;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    worker = await runWorker({
      api,
      agentId: "logger",
      queues: ["cut"],
      waitMs: 200,
      leaseMs: 1000,
      onError: () => undefined,
      handler: async (_task, signal, run) => {
        expect(await run.log("before the cancel")).toBe(true);
        started();
        // The task is cancelled: the next renewal finds the lease gone and aborts the run.
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        afterLoss = run.log("after the cancel");
        return null;
      },
    });
    await running;
    await api.tasks.cancel.mutate({ taskId: id });
    await expect.poll(() => afterLoss, { timeout: 15_000 }).toBeDefined();
    expect(await afterLoss).toBe(false);
    expect((await api.tasks.log.query({ taskId: id })).lines.map((line) => line.message)).toEqual(["before the cancel"]);
  });

  it("lines that together pass the server's maxBodyBytes go in several appends: every one is stored", async () => {
    // The log keeps them all: the body, not the log's bound, is what this is about.
    t = await startTestServer({ maxTaskLogBytes: 4 * 1024 * 1024 });
    // 80 model answers of 16,000 characters in a second: 1.3 MB, past the default 1 MiB body.
    // 256 KiB an append: 16 lines each, in order, all before the complete.
    expect(await loggedInOneRun(t, "answers", 80)).toEqual([[1, 16], [17, 32], [33, 48], [49, 64], [65, 80], "task.completed"]);
  });

  it("a server whose maxBodyBytes refuses a batch (413) gets it in halves, until each fits: every line is stored, in order", async () => {
    t = await startTestServer({ maxBodyBytes: 65_536 });
    // 12 lines (192 KB) refused, 6 refused, then 3 a time (48 KB).
    expect(await loggedInOneRun(t, "small-bodies", 12)).toEqual([[1, 3], [4, 6], [7, 9], [10, 12], "task.completed"]);
  });

  it("a line the server refuses (too large, not JSON, too deep, not valid text) costs that line alone: the others sent with it are stored", async () => {
    t = await startTestServer({ maxJsonDepth: 4 });
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "mixed" });
    const errors: unknown[] = [];
    let stored: boolean[] = [];
    worker = await runWorker({
      api,
      agentId: "logger",
      queues: ["mixed"],
      waitMs: 200,
      onError: (error) => errors.push(error),
      handler: async (_task, _signal, run) => {
        stored = await Promise.all([
          run.log("one"),
          run.log("too large", { data: "y".repeat(20_000) }),
          run.log("two"),
          run.log("not JSON", { data: { tokens: Number.NaN } }),
          run.log("lone \ud800"),
          run.log("too deep", { data: [[[[[1]]]]] }),
          // A model's JSON output, parsed: the client cannot even send it.
          run.log("unsendable", { data: JSON.parse('{"__proto__": {"admin": true}}') as never }),
          run.log("three", { level: "warn", data: { ok: true } }),
        ]);
        return null;
      },
    });
    expect((await api.tasks.wait.query({ taskId: id, waitMs: 30_000 })).status).toBe("completed");
    expect(stored).toEqual([true, false, true, false, false, false, false, true]);
    expect((await api.tasks.log.query({ taskId: id })).lines.map((line) => [line.line, line.message, line.data])).toEqual([
      [1, "one", null],
      [2, "two", null],
      [3, "three", { ok: true }],
    ]);
    expect((await logAndSettle(t)).map(([type]) => type)).toEqual(["task.log", "task.completed"]);
    // Said to onError, each refusal once: the line the client could not send, those the schema refused, the one too deep.
    expect(errors.map((error) => (error as Error).message)).toEqual([
      expect.stringMatching(/^runWorker: the server refused 1 log line\(s\) of task "[^"]+": tasks\.appendLog: the input cannot be sent: /),
      expect.stringMatching(/^runWorker: the server refused 3 log line\(s\) of task "[^"]+": entries\[1\]\.data: must take at most 16384 bytes as JSON/),
      expect.stringMatching(/^runWorker: the server refused 1 log line\(s\) of task "[^"]+": entries\[2\]\.data: nests deeper than 4 levels/),
    ]);
  });
});

describe("run.log's own checks", () => {
  it("counts a message's characters as the server does (an emoji is one), and says what is wrong with a line it does not send", async () => {
    t = await startTestServer();
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "checked" });
    const errors: string[] = [];
    let sent: boolean[] = [];
    worker = await runWorker({
      api,
      agentId: "logger",
      queues: ["checked"],
      waitMs: 200,
      onError: (error) => errors.push(error instanceof Error ? error.message : String(error)),
      handler: async (_task, _signal, run) => {
        sent = await Promise.all([run.log("😀".repeat(16_384)), run.log("x".repeat(16_385)), run.log(""), run.log("ok", { level: "fatal" as "info" })]);
        return null;
      },
    });
    expect((await api.tasks.wait.query({ taskId: id, waitMs: 30_000 })).status).toBe("completed");
    expect(sent).toEqual([true, false, false, false]);
    expect((await api.tasks.log.query({ taskId: id })).lines.map((line) => line.message)).toEqual(["😀".repeat(16_384)]);
    expect(errors).toEqual([
      `runWorker: a log line of task "${id}" was not sent: its message is longer than 16384 characters: split it, or put the rest in data`,
      `runWorker: a log line of task "${id}" was not sent: its message must be text of 1 to 16384 characters (got an empty one)`,
      `runWorker: a log line of task "${id}" was not sent: its level must be one of debug, info, warn, error (got "fatal")`,
    ]);
  });
});

describe("followLog", () => {
  it("yields a task's lines as they come, each once and in order, and returns once it settled", async () => {
    t = await startTestServer();
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "followed" });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const seen: LogLine[] = [];
    const following = (async () => {
      for await (const line of followLog(api, { taskId: id, waitMs: 10_000 })) {
        seen.push(line);
        if (line.message === "step 2") release();
      }
    })();
    worker = await runWorker({
      api,
      agentId: "stepper",
      queues: ["followed"],
      waitMs: 200,
      handler: async (_task, _signal, run) => {
        await run.log("step 1");
        await run.log("step 2");
        // The follower has read both before the run goes on.
        await gate;
        await run.log("step 3", { level: "error" });
        return "done";
      },
    });
    await following;
    expect(seen.map((line) => [line.line, line.message, line.level])).toEqual([
      [1, "step 1", "info"],
      [2, "step 2", "info"],
      [3, "step 3", "error"],
    ]);
    expect((await api.tasks.get.query({ taskId: id })).status).toBe("completed");

    // From a line on, by level, and stopped by its signal while the task still runs.
    const { id: open } = await api.tasks.enqueue.mutate({ queue: "idle" });
    const task = await api.tasks.claim.mutate({ agentId: "holder", queues: ["idle"], context: false });
    await api.tasks.appendLog.mutate({ taskId: open, agentId: "holder", leaseToken: task!.leaseToken, entries: [{ message: "a", level: "debug" }, { message: "b", level: "warn" }, { message: "c", level: "warn" }] });
    const stop = new AbortController();
    const warned: string[] = [];
    for await (const line of followLog(api, { taskId: open, after: 2, level: "warn", waitMs: 10_000, signal: stop.signal })) {
      warned.push(line.message);
      stop.abort();
    }
    expect(warned).toEqual(["c"]);
    await expect(async () => {
      for await (const _ of followLog(api, { taskId: "no-such-task" })) void _;
    }).rejects.toMatchObject({ data: { code: "TASK_NOT_FOUND" } });
  });

  it("tells onDropped of the lines the log dropped before it read them", async () => {
    t = await startTestServer({ maxTaskLogBytes: 65_536 });
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "fast" });
    const task = await api.tasks.claim.mutate({ agentId: "writer", queues: ["fast"], context: false });
    // Ten lines of 10,000 characters: six fit, the first four are dropped before any reader came.
    await api.tasks.appendLog.mutate({ taskId: id, agentId: "writer", leaseToken: task!.leaseToken, entries: Array.from({ length: 10 }, (_, i) => ({ message: `${i + 1}`.padEnd(10_000, ".") })) });
    const gaps: Array<[number, number]> = [];
    const stop = new AbortController();
    const seen: number[] = [];
    for await (const line of followLog(api, { taskId: id, signal: stop.signal, onDropped: (first, last) => gaps.push([first, last]) })) {
      seen.push(line.line);
      if (line.line === 10) stop.abort();
    }
    expect(gaps).toEqual([[1, 4]]);
    expect(seen).toEqual([5, 6, 7, 8, 9, 10]);
  });

  it("tells onRetry how long reads have gone unanswered; what it throws ends the follow", async () => {
    t = await startTestServer();
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "away" });
    const outages: number[] = [];
    const given = new Error("the server stayed away");
    // A client of its own: the test server's is closed with it, and a closed client's follow ends at once.
    const client = createCoordinationClient({ url: t.url });
    const following = (async () => {
      for await (const _ of followLog(client.api, {
        taskId: id,
        waitMs: 60_000,
        onRetry: (_error, outageMs) => {
          outages.push(outageMs);
          if (outages.length === 3) throw given;
        },
      }))
        void _;
    })();
    // Its end is taken at once: it may come while the server is still stopping (three refused
    // reads are quick), before the expectation below, and a rejection no one took fails the run.
    const ended = following.then(
      () => "ended without an error",
      (error: unknown) => error,
    );
    // The follow is parked; the server goes away under it, and stays away.
    await expect.poll(async () => Number(/^coordination_long_polls_parked\{kind="follow"\} (\d+)$/m.exec(await (await fetch(`${t!.url}/metrics`)).text())?.[1]), { timeout: 15_000 }).toBe(1);
    await t.stop({ removeFiles: true });
    t = undefined;
    expect(await ended).toBe(given);
    await client.close();
    expect(outages[0]).toBe(0);
    expect(outages[1]!).toBeGreaterThanOrEqual(outages[0]!);
    expect(outages[2]!).toBeGreaterThan(outages[1]!);
  });
});
