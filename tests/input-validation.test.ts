// Values that JSON cannot hold, and numbers that are not numbers, are 400s naming the field:
// never a 500, never silently stored as something else.
import { describe, expect, it, vi } from "vitest";
import { runWorker } from "../client/index.js";
import { findNonJson } from "../src/json-value.js";
import { rest, startTestServer } from "./helpers/test-server.js";

const badRequest = { data: { code: "INVALID_INPUT", httpStatus: 400 } };

describe("input validation", () => {
  it("rejects non-JSON values that superjson would carry (BigInt, Map, Set, Date, NaN) with 400 naming the path", async () => {
    await using t = await startTestServer();
    const cases: Array<[unknown, string]> = [
      [{ big: 10n }, "big is a bigint"],
      [{ nested: { m: new Map([["a", 1]]) } }, "nested.m is a Map"],
      [{ list: [1, new Set([2])] }, "list[1] is a Set"],
      [{ when: new Date(0) }, "when is a Date"],
      [{ ratio: Number.NaN }, "ratio is NaN"],
      [{ ratio: Number.POSITIVE_INFINITY }, "ratio is Infinity"],
    ];
    // The client's types refuse these values already (payload is JsonValue); an untyped client can still send them.
    for (const [payload, message] of cases) {
      const error = await t.api.tasks.enqueue.mutate({ payload: payload as never }).catch((e: unknown) => e);
      expect(error).toMatchObject(badRequest);
      expect((error as Error).message).toContain(`payload: must be JSON: ${message}`);
    }
    await expect(t.api.events.publish.mutate({ type: "x", source: "s", payload: { n: 1n } as never })).rejects.toMatchObject(badRequest);
    await expect(t.api.agents.register.mutate({ agentId: "a", capabilities: [], metadata: { n: 1n } as never })).rejects.toMatchObject(badRequest);
    await expect(t.api.memory.remember.mutate({ content: "c", data: new Map() as never })).rejects.toMatchObject(badRequest);
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    await expect(t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: { n: 1n } as never })).rejects.toMatchObject(badRequest);
    expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed");
    expect((await t.api.tasks.list.query({})).items).toHaveLength(1);
  });

  it("does not read null or booleans as numbers", async () => {
    await using t = await startTestServer();
    const nullPriority = await rest(t.url, "POST", "/tasks", { payload: {}, priority: null });
    expect(nullPriority.status).toBe(400);
    expect(nullPriority.body.message).toContain("priority");
    expect((await rest(t.url, "POST", "/tasks", { payload: {}, maxAttempts: true })).status).toBe(400);
    // A JSON body carries numbers as numbers: "3" is text there, as it is over tRPC. Query strings are text, read by type.
    expect((await rest(t.url, "POST", "/tasks", { payload: {}, priority: "3" })).body.message).toBe("priority: must be a number (got string)");
    expect((await rest(t.url, "GET", "/tasks?limit=2")).status).toBe(200);
  });

  it("refuses a claim from an empty list of queues (it claimed from every queue), on every transport", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ queue: "unrelated" });
    const message = "queues: must name at least one queue; leave it out to claim from any queue";
    await expect(t.api.tasks.claim.mutate({ agentId: "x", queues: [] })).rejects.toMatchObject({ ...badRequest, message });
    await expect(t.api.tasks.claimMany.mutate({ agentId: "x", queues: [], limit: 2 })).rejects.toMatchObject(badRequest);
    const viaRest = await rest(t.url, "POST", "/tasks/claim", { agentId: "x", queues: [] });
    expect([viaRest.status, viaRest.body.message]).toEqual([400, message]);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(1);
    await expect(runWorker({ api: t.api, agentId: "w", queues: [], handler: async () => null })).rejects.toThrow("runWorker: queues is empty");
  });

  it("runWorker refuses numbers it could only misuse, before it registers its agent", async () => {
    await using t = await startTestServer();
    // Before: concurrency 0 or -1 started a worker that never claimed; Infinity threw after the
    // agent was registered and its heartbeat timer started; waitMs -5 was refused by the server on
    // every claim; NaN threw a setMaxListeners RangeError that named no option.
    const bad = [
      ["concurrency", 0],
      ["concurrency", -1],
      ["concurrency", Number.NaN],
      ["concurrency", Number.POSITIVE_INFINITY],
      ["concurrency", 1.5],
      ["waitMs", -5],
      ["heartbeatMs", 0],
      ["stopTimeoutMs", -1],
      ["taskTimeoutMs", 0],
      ["leaseMs", Number.NaN],
      // Past 2^31 - 1 ms a Node timer fires at once (TimeoutOverflowWarning): every task timed out
      // as it began, heartbeats went back to back, stop() aborted its handlers at once.
      ["taskTimeoutMs", 3e9],
      ["heartbeatMs", 3e9],
      ["stopTimeoutMs", 3e9],
    ] as const;
    const refusals: string[] = [];
    for (const [name, value] of bad) {
      const error = await runWorker({ api: t.api, agentId: `bad-${name}`, [name]: value, handler: async () => null }).then(
        async (worker) => (await worker.stop(), undefined),
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(TypeError);
      refusals.push((error as TypeError).message);
    }
    expect(refusals).toEqual([
      "runWorker: concurrency must be a whole number of at least 1; got 0",
      "runWorker: concurrency must be a whole number of at least 1; got -1",
      "runWorker: concurrency must be a whole number of at least 1; got NaN",
      "runWorker: concurrency must be a whole number of at least 1; got Infinity",
      "runWorker: concurrency must be a whole number of at least 1; got 1.5",
      "runWorker: waitMs must be a finite number of at least 0; got -5",
      "runWorker: heartbeatMs must be a finite number of at least 1; got 0",
      "runWorker: stopTimeoutMs must be a finite number of at least 0; got -1",
      "runWorker: taskTimeoutMs must be a finite number of at least 1; got 0",
      "runWorker: leaseMs must be a finite number of at least 1; got NaN",
      "runWorker: taskTimeoutMs must be at most 2147483647 (a timer holds no longer: about 24.8 days); got 3000000000",
      "runWorker: heartbeatMs must be at most 2147483647 (a timer holds no longer: about 24.8 days); got 3000000000",
      "runWorker: stopTimeoutMs must be at most 2147483647 (a timer holds no longer: about 24.8 days); got 3000000000",
    ]);
    expect((await t.api.agents.list.query({})).filter((agent) => agent.agentId.startsWith("bad-"))).toEqual([]);
  });

  // A client joining an empty list writes `types=`: read as no item, it filtered everything out
  // (GET /events answered []), or nothing (DELETE of no types removed none), with a 200.
  it("refuses a query-string list with an empty item, naming the parameter", async () => {
    await using t = await startTestServer();
    await t.api.events.subscribe.mutate({ agentId: "u5", types: ["task.*"] });
    await t.api.tasks.enqueue.mutate({ queue: "zz" });
    for (const path of ["/events?types=", "/events?types=task.enqueued,,task.claimed", "/tasks/claim/ar2?capabilities=,&queue=zz", "/events?types=task.enqueued&types="]) {
      const answer = await rest(t.url, "GET", path);
      expect(answer.status).toBe(400);
      expect(answer.body.code).toBe("INVALID_INPUT");
      expect(answer.body.message).toMatch(/^(types|capabilities): has an empty item/);
    }
    expect(await rest(t.url, "DELETE", "/events/subscriptions/u5?types=")).toMatchObject({ status: 400, body: { details: { issues: [{ path: "types" }] } } });
    expect((await rest(t.url, "GET", "/events?types=task.enqueued")).body).toHaveLength(1);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(1);
  });

  // One bound for what an agent offers: a claim or a steal can name everything an agent registered.
  it("bounds capabilities at 200 alike when registering (card skills included), claiming and stealing", async () => {
    await using t = await startTestServer();
    const many = (n: number, prefix = "c") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    await t.api.agents.register.mutate({ agentId: "wide", capabilities: many(200) });
    const task = await t.api.tasks.enqueue.mutate({ capability: "c199" });
    const viaRest = await rest(t.url, "POST", "/tasks/claim", { agentId: "wide", capabilities: many(200) });
    expect([viaRest.status, viaRest.body?.id]).toEqual([200, task.id]);
    expect(await t.api.tasks.steal.mutate({ agentId: "wide", capabilities: many(200) })).toEqual([]);
    const tooMany = "capabilities: must have at most 200 items";
    await expect(t.api.tasks.claim.mutate({ agentId: "wide", capabilities: many(201) })).rejects.toMatchObject({ ...badRequest, message: tooMany });
    await expect(t.api.tasks.steal.mutate({ agentId: "wide", capabilities: many(201) })).rejects.toMatchObject({ ...badRequest, message: tooMany });
    await expect(t.api.agents.register.mutate({ agentId: "wide", capabilities: many(201) })).rejects.toMatchObject({ ...badRequest, message: tooMany });
    const card = { name: "wide", skills: many(100, "s").map((id) => ({ id, name: id })) };
    await expect(t.api.agents.register.mutate({ agentId: "carded", capabilities: many(150), card })).rejects.toMatchObject({
      ...badRequest,
      message: "card.skills: with capabilities, 250 distinct capabilities; an agent offers at most 200",
    });
    await expect(t.api.agents.get.query({ agentId: "carded" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
    // Skills that repeat capabilities count once.
    expect((await t.api.agents.register.mutate({ agentId: "carded", capabilities: many(150, "s"), card })).capabilities).toHaveLength(150);
  });

  it("answers an out-of-range list cursor with 400, not a database error", async () => {
    await using t = await startTestServer();
    const huge = await rest(t.url, "GET", "/tasks?cursor=99999999999999999999");
    expect(huge.status).toBe(400);
    expect(huge.body.message).toContain("cursor");
  });

  it("findNonJson accepts exactly the JSON values", () => {
    expect(findNonJson({ a: [1, "x", true, null, { b: 2.5 }] })).toBeNull();
    expect(findNonJson(Object.create(null))).toBeNull();
    expect(findNonJson([undefined])).toBe("[0] is undefined (not representable in JSON)");
    expect(findNonJson(() => 1)).toBe("value is a function (not representable in JSON)");
    expect(findNonJson({ a: undefined, b: { c: undefined } })).toBeNull();
  });

  // TypeScript lets an optional field ({ note?: string }) hold undefined in a value typed JSON: it
  // is a field left out, as JSON.stringify has it, and never a refusal the compiler let through
  // (a worker's result refused that way ran the task again, then dead-lettered it).
  it("takes an object property holding undefined as left out, on enqueue, complete and publish", async () => {
    await using t = await startTestServer();
    type Job = { url: string; retries?: number };
    const job: Job = { url: "u", retries: undefined };
    const task = await t.api.tasks.enqueue.mutate({ payload: job, idempotencyKey: "job-u" });
    expect(JSON.stringify((await t.api.tasks.get.query({ taskId: task.id })).payload)).toBe(`{"url":"u"}`);
    expect((await t.api.tasks.enqueue.mutate({ payload: job, idempotencyKey: "job-u" })).id).toBe(task.id);
    expect((await t.api.tasks.enqueue.mutate({ payload: { url: "u" }, idempotencyKey: "job-u" })).id).toBe(task.id);

    type Result = { summary: string; note?: string };
    const worker = await runWorker({ api: t.api, agentId: "w", handler: async (): Promise<Result> => ({ summary: "done", note: undefined }) });
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 10_000 });
    await worker.stop();
    const done = await t.api.tasks.get.query({ taskId: task.id });
    expect([JSON.stringify(done.result), done.attempts]).toEqual([`{"summary":"done"}`, 1]);

    const noted: { a: number; b?: number } = { a: 1, b: undefined };
    const event = await t.api.events.publish.mutate({ type: "job.noted", source: "s", payload: noted });
    expect(JSON.stringify((await t.api.events.list.query({ afterSeq: event.seq - 1, types: ["job.noted"] }))[0]!.payload)).toBe(`{"a":1}`);
    // In an array, undefined has no JSON meaning (JSON.stringify writes null): still refused.
    await expect(t.api.tasks.enqueue.mutate({ payload: [1, undefined] as never })).rejects.toMatchObject({ ...badRequest, message: "payload: must be JSON: [1] is undefined (not representable in JSON)" });
  });
});
