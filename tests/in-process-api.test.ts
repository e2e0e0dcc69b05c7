// The seed's in-process API (TaskQueue, EventStream, AgentRegistry) for programs that embed the
// core: same names in camelCase, the server's schemas and rules, CoordinationError with its code.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CoordinationError, openCoordination } from "../src/index.js";
import { makeTempDir } from "./helpers/test-server.js";

const open = () => openCoordination({ settings: { dbPath: join(makeTempDir(), "embedded.db"), logLevel: "silent" } });

describe("openCoordination", () => {
  // DESIGN.md's calls: complete(taskId, agentId, result), fail(taskId, agentId, error, {retry?}),
  // register(agentId, capabilities, metadata?). A string where the options object goes was spread
  // into fields named "0", "1", … and refused.
  it("takes the seed's argument shapes too: complete, fail and register with positional arguments", async () => {
    const coordination = await openCoordination({ settings: { dbPath: join(makeTempDir(), "seed.db"), logLevel: "silent", retryBaseMs: 0, retryMaxMs: 0 } });
    try {
      expect(await coordination.agents.register("seed-agent", ["research"], { team: "a" })).toMatchObject({ agentId: "seed-agent", capabilities: ["research"], metadata: { team: "a" } });
      const first = await coordination.tasks.enqueue({ capability: "research", maxAttempts: 2 });
      const claimed = await coordination.tasks.claim("seed-agent");
      expect(await coordination.tasks.fail(first.id, "seed-agent", "flaky", { leaseToken: claimed!.leaseToken })).toMatchObject({ status: "pending", lastError: "flaky" });
      await coordination.tasks.claim("seed-agent");
      expect(await coordination.tasks.complete(first.id, "seed-agent", { ok: true })).toMatchObject({ status: "completed", result: { ok: true } });
      const second = await coordination.tasks.enqueue({});
      await coordination.tasks.claim("seed-agent");
      expect(await coordination.tasks.fail(second.id, "seed-agent", "poison", { retry: false })).toMatchObject({ status: "dead_letter" });
      await expect(coordination.tasks.complete(second.id, "someone-else", 1)).rejects.toMatchObject({ code: "LEASE_CONFLICT" });
    } finally {
      await coordination.close();
    }
  });

  // A JavaScript caller's positional habit: a number where the options object goes was spread
  // into nothing (claim("agent-1", 5000) claimed without waiting, lock leases kept their default)
  // and a string into fields "0", "1", … that named no argument. Each is refused, naming it, as
  // the server names a field of the wrong type, and as a rejection, never a throw from the call.
  it("refuses options that are no object, naming the argument, where they were ignored or spread into characters", async () => {
    const coordination = await open();
    try {
      const call = (f: () => Promise<unknown>) => {
        const promise = f();
        expect(promise).toBeInstanceOf(Promise);
        return promise.catch((error: unknown) => error);
      };
      expect(await call(() => coordination.tasks.claim("agent-1", 5000 as never))).toMatchObject({ code: "INVALID_INPUT", message: "options: must be an object (got number)" });
      expect(await call(() => coordination.locks.acquire("l", "agent-1", 60_000 as never))).toMatchObject({ code: "INVALID_INPUT", message: "options: must be an object (got number)" });
      expect(await call(() => coordination.events.subscribe("agent-1", ["x.*"], 0 as never))).toMatchObject({ code: "INVALID_INPUT", message: "options: must be an object (got number)" });
      expect(await call(() => coordination.kv.set("k", 1, true as never))).toMatchObject({ code: "INVALID_INPUT", message: "options: must be an object (got boolean)" });
      expect(await call(() => coordination.tasks.update("t", "soon" as never))).toMatchObject({ code: "INVALID_INPUT", message: "change: must be an object (got string)" });
      expect(await call(() => coordination.tasks.complete("t", ["agent-1"] as never))).toMatchObject({ code: "INVALID_INPUT", message: "settle: must be an object (got array)" });
      // The seed's register(agentId, capabilities) with one capability as a string: as over HTTP.
      expect(await call(() => coordination.agents.register("agent-1", "gpu" as never))).toMatchObject({ code: "INVALID_INPUT", message: "capabilities: must be an array (got string)" });
      // Nothing refused was done: no lock taken, no key written, no agent registered.
      expect((await coordination.locks.get("l")).held).toBe(false);
      expect((await coordination.kv.get("k")).entry).toBeNull();
      await expect(coordination.agents.get("agent-1")).rejects.toMatchObject({ code: "AGENT_NOT_FOUND" });
      // null is no options, as undefined is.
      expect(await coordination.tasks.claim("agent-1", null as never)).toBeNull();
    } finally {
      await coordination.close();
    }
  });

  it("types each setting, and throws ConfigError naming every value out of range", async () => {
    // @ts-expect-error leaseMs is a number of milliseconds
    const words = openCoordination({ settings: { leaseMs: "30 seconds" } });
    await expect(words).rejects.toThrow("leaseMs: must be an integer (milliseconds) from 1 to 604800000");
    // @ts-expect-error durability is "full" or "normal"
    await expect(openCoordination({ settings: { durability: 42, leaseMs: 0 } })).rejects.toThrow(/durability: must be one of full, normal[\s\S]*leaseMs/);
  });

  // The YAML file and the environment refuse a setting they do not know; the settings object
  // took one without a word (a JavaScript caller's leaseMS ran with the default lease). And a
  // value JSON cannot spell was shown as JSON spells it: NaN and Infinity as "null".
  it("refuses an unknown setting with the near miss it may mean, and shows NaN as NaN", async () => {
    const dbPath = join(makeTempDir(), "settings.db");
    await expect(openCoordination({ settings: { dbPath, logLevel: "silent", leaseMS: 5000 } as never })).rejects.toThrow(
      "invalid configuration: leaseMS: unknown setting (did you mean leaseMs?)",
    );
    await expect(openCoordination({ settings: { dbPath, logLevel: "silent", bogus: 1 } as never })).rejects.toThrow("bogus: unknown setting; --help lists them all");
    await expect(openCoordination({ settings: { dbPath, logLevel: "silent", leaseMs: Number.NaN } })).rejects.toThrow(/leaseMs: must be an integer \(milliseconds\) from 1 to 604800000 \(got NaN\)$/);
    await expect(openCoordination({ settings: { dbPath, logLevel: "silent", leaseMs: Number.POSITIVE_INFINITY } })).rejects.toThrow(/\(got Infinity\)$/);
    // An undefined setting is one left out, as before.
    const coordination = await openCoordination({ settings: { dbPath, logLevel: "silent", leaseMs: undefined } });
    await coordination.close();
  });

  it("runs the queue, the stream and the registry without HTTP", async () => {
    const coordination = await open();
    try {
      await coordination.agents.register("agent-1", { capabilities: ["research", "summarize"] });
      expect((await coordination.agents.findByCapability("research")).map((a) => a.agentId)).toEqual(["agent-1"]);

      const task = await coordination.tasks.enqueue({ queue: "default", payload: { action: "research" }, priority: 5 });
      const claimed = await coordination.tasks.claim("agent-1");
      expect(claimed).toMatchObject({ id: task.id, leaseOwner: "agent-1", status: "claimed" });
      const done = await coordination.tasks.complete(task.id, { agentId: "agent-1", leaseToken: claimed!.leaseToken, result: { ok: true } });
      expect(done.settledLease).toEqual({ agentId: "agent-1", leaseToken: 1 });
      expect(await coordination.tasks.claim("agent-1", { waitMs: 50 })).toBeNull();

      await coordination.events.subscribe("agent-1", ["task.assigned", "agent.updated"]);
      const published = await coordination.events.publish({ type: "task.assigned", source: "coordinator", payload: { taskId: task.id } });
      const direct = await coordination.events.publish({ type: "note", source: "boss", target: "agent-1" });
      expect((await coordination.events.poll("agent-1")).map((e) => e.seq)).toEqual([published.seq, direct.seq]);
      expect(await coordination.events.poll("agent-1")).toEqual([]);

      const stats = await coordination.tasks.stats();
      expect(stats.totals.completed).toBe(1);
      const [record] = await coordination.memory.recall({ taskId: task.id });
      expect(record!.memory).toMatchObject({ kind: "execution", taskId: task.id });
      expect(await coordination.memory.forget(record!.memory.id)).toEqual(record!.memory);
      await expect(coordination.memory.forget(record!.memory.id)).rejects.toMatchObject({ code: "MEMORY_NOT_FOUND" });
    } finally {
      await coordination.close();
    }
  });

  // The README's A2A paragraph: a card given to agents.register is kept, and GET
  // /agents/{agentId}/card answers it, or one made from the capabilities. In-process the card
  // could be registered but not read back as a card.
  it("reads an agent's A2A card back, its own or one made from its capabilities", async () => {
    const coordination = await open();
    try {
      const card = { name: "Researcher", url: "https://agents.example/researcher", skills: [{ id: "research", name: "Research", description: "Looks things up", tags: ["web"] }] };
      await coordination.agents.register("carded", { card });
      expect(await coordination.agents.card("carded")).toEqual(card);
      expect((await coordination.agents.findByCapability("research")).map((agent) => agent.agentId)).toEqual(["carded"]);
      await coordination.agents.register("plain", ["summarize"]);
      expect(await coordination.agents.card("plain")).toMatchObject({ name: "plain", skills: [{ id: "summarize", name: "summarize", tags: ["summarize"] }] });
      await expect(coordination.agents.card("nobody")).rejects.toMatchObject({ code: "AGENT_NOT_FOUND" });
    } finally {
      await coordination.close();
    }
  });

  // An embedding program asks why its agent is idle, what became of a task, and where the log
  // stands, as the HTTP API answers them (tasks.claimOutlook, tasks.events, events.head).
  it("answers why an agent gets no task, a task's events, and the log's head", async () => {
    const coordination = await open();
    try {
      await coordination.queues.pause("held");
      const task = await coordination.tasks.enqueue({ queue: "held", payload: { n: 1 } });
      await coordination.tasks.enqueue({ queue: "gpu", capability: "cuda" });
      expect(await coordination.tasks.claim("idle", { queues: ["held", "gpu"] })).toBeNull();
      const outlook = await coordination.tasks.claimOutlook("idle", { queues: ["held", "gpu"] });
      expect(outlook).toMatchObject({ claimable: false, paused: ["held"], needCapabilities: [{ capability: "cuda", tasks: 1 }] });
      expect((await coordination.tasks.events(task.id)).map((event) => event.type)).toEqual(["task.enqueued"]);
      await expect(coordination.tasks.events("no-such-task")).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
      const { head, prunedThrough } = await coordination.events.head();
      expect(head).toBe((await coordination.events.list({ limit: 1000 })).at(-1)!.seq);
      expect(prunedThrough).toBe(0);
    } finally {
      await coordination.close();
    }
  });

  it("validates with the server's schemas and throws CoordinationError with the API's codes", async () => {
    const coordination = await open();
    try {
      const invalid = await coordination.tasks.enqueue({ priority: -1 }).catch((e: unknown) => e);
      expect(invalid).toBeInstanceOf(CoordinationError);
      expect(invalid).toMatchObject({ code: "INVALID_INPUT", message: "priority: must be at least 0" });
      await expect(coordination.tasks.get("nope")).rejects.toMatchObject({ code: "TASK_NOT_FOUND", message: 'task "nope" not found' });
      // A Date whose time is NaN, which no transport can carry: said so, not "must be a date (got Date)".
      await expect(coordination.tasks.enqueue({ runAt: new Date("tomorrow") })).rejects.toMatchObject({ code: "INVALID_INPUT", message: "runAt: must be a valid Date (got an Invalid Date, whose time is NaN)" });
      const task = await coordination.tasks.enqueue({});
      await coordination.tasks.claim("a");
      await expect(coordination.tasks.complete(task.id, { agentId: "b" })).rejects.toMatchObject({ code: "LEASE_CONFLICT" });
      await expect(coordination.events.subscription("never")).rejects.toMatchObject({ code: "SUBSCRIPTION_NOT_FOUND" });
    } finally {
      await coordination.close();
    }
  });
});
