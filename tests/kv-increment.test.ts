// Counters in shared state (kv.increment): a number added to in one write, kept within min and
// max, exactly once per idempotencyKey for 24 hours. Each case is one agent teams met: a page count
// that lost updates to concurrent read-modify-writes, a token budget overspent by two agents that
// both read "room left", an increment sent again after its answer was lost that counted twice, a
// per-hour failure counter that never reset.
import { afterEach, describe, expect, it, vi } from "vitest";
import { killAllCli, runCli } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("kv.increment", () => {
  it("adds every concurrent increment exactly once, each a version of its own with a kv.set event saying what it added", async () => {
    t = await startTestServer();
    const api = t.api;
    // An absent key counts as 0: the first increment creates it.
    const written = await Promise.all(Array.from({ length: 40 }, (_, i) => api.kv.increment.mutate({ key: "runs/7/pages", by: i % 2 === 0 ? 1 : 2, agentId: `agent-${i % 4}` })));
    expect(new Set(written.map((entry) => entry.version)).size).toBe(40);
    expect(written.map((entry) => entry.value).sort((a, b) => Number(a) - Number(b)).at(-1)).toBe(60);
    const read = await api.kv.get.query({ key: "runs/7/pages" });
    expect([read.entry?.value, read.entry?.version]).toEqual([60, Math.max(...written.map((entry) => entry.version))]);
    const events = await api.events.list.query({ types: ["kv.set"], limit: 100 });
    expect(events.length).toBe(40);
    expect(events.reduce((sum, event) => sum + (event.payload as { incrementedBy: number }).incrementedBy, 0)).toBe(60);
    expect(events[0]!.payload).toEqual({ key: "runs/7/pages", version: expect.any(Number), previousVersion: 0, updatedBy: expect.stringMatching(/^agent-/), incrementedBy: expect.any(Number) });
    // by 1 by default (the answer's value typed a number); negative subtracts; fractions add as numbers do.
    const one: number = (await api.kv.increment.mutate({ key: "runs/7/pages" })).value;
    expect(one).toBe(61);
    expect((await api.kv.increment.mutate({ key: "runs/7/pages", by: -1.5 })).value).toBe(59.5);
  });

  it("refuses an increment past max or min with OUT_OF_RANGE, writing nothing: two agents cannot overspend a budget", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.kv.increment.mutate({ key: "budget", by: 7000, max: 10_000 });
    // Two agents each ask for 2,000 and 2,500 more at once: both fit (9,500). Then one more asks 1,000: it would pass.
    await Promise.all([api.kv.increment.mutate({ key: "budget", by: 2000, max: 10_000 }), api.kv.increment.mutate({ key: "budget", by: 500, max: 10_000 })]);
    const before = (await api.kv.get.query({ key: "budget" })).entry!;
    const refused = await rest(t.url, "POST", `/kv/budget/increment`, { by: 1000, max: 10_000 });
    expect([refused.status, refused.body.code, refused.body.message]).toEqual([409, "OUT_OF_RANGE", 'key "budget" is 9500: adding 1000 would make it 10500, past its max 10000; nothing was written']);
    expect(refused.body.details).toMatchObject({ key: "budget", value: 9500, by: 1000, min: null, max: 10_000, entry: { value: 9500, version: before.version } });
    expect((await api.kv.get.query({ key: "budget" })).entry?.version).toBe(before.version);
    // Exactly to the bound is allowed; min bounds a decrement the same way.
    expect((await api.kv.increment.mutate({ key: "budget", by: 500, max: 10_000 })).value).toBe(10_000);
    await api.kv.increment.mutate({ key: "stock", by: 2, min: 0 });
    const below = await rest(t.url, "POST", `/kv/stock/increment`, { by: -3, min: 0 });
    expect([below.status, below.body.code, below.body.message]).toEqual([409, "OUT_OF_RANGE", 'key "stock" is 2: adding -3 would make it -1, past its min 0; nothing was written']);
    // A bound stops what moves past it, not what moves back: a refund lands on a budget already over a max lowered since.
    expect((await api.kv.increment.mutate({ key: "budget", by: -200, max: 5000 })).value).toBe(9800);
    const further = await rest(t.url, "POST", `/kv/budget/increment`, { by: 1, max: 5000 });
    expect([further.status, further.body.code]).toEqual([409, "OUT_OF_RANGE"]);
    expect((await api.kv.increment.mutate({ key: "stock", by: 5, min: 10 })).value).toBe(7);
  });

  it("refuses a key holding anything but a number, min above max, and a sum no number holds, naming what is wrong", async () => {
    t = await startTestServer();
    await t.api.kv.set.mutate({ key: "plan", value: { step: "draft" } });
    const notNumber = await rest(t.url, "POST", `/kv/plan/increment`, {});
    expect([notNumber.status, notNumber.body.code, notNumber.body.message]).toEqual([409, "INVALID_STATE", 'key "plan" holds an object, not a number: an increment adds to a number (kv.set it to one, or delete it)']);
    await t.api.kv.set.mutate({ key: "text", value: "7" });
    expect((await rest(t.url, "POST", `/kv/text/increment`, {})).body.message).toMatch(/^key "text" holds a string, not a number/);
    const bounds = await rest(t.url, "POST", `/kv/n/increment`, { min: 5, max: 1 });
    expect([bounds.status, bounds.body.message]).toEqual([400, "max: is below min (5)"]);
    const notNumberBy = await rest(t.url, "POST", `/kv/n/increment`, { by: "1" });
    expect([notNumberBy.status, notNumberBy.body.message]).toEqual([400, expect.stringMatching(/^by: /)]);
    // Past what a number holds, or past the whole numbers it counts exactly (2^53 + 1 is 2^53): refused as past a bound, nothing written.
    await t.api.kv.increment.mutate({ key: "huge", by: 1.7e308 });
    const past = await rest(t.url, "POST", `/kv/huge/increment`, { by: 1.7e308 });
    expect([past.status, past.body.code, past.body.message]).toEqual([409, "OUT_OF_RANGE", 'key "huge" is 1.7e+308: adding 1.7e+308 would be past the largest number JSON holds; nothing was written']);
    expect((await t.api.kv.get.query({ key: "huge" })).entry?.value).toBe(1.7e308);
    const count = await t.api.kv.increment.mutate({ key: "count", by: 2 ** 53 });
    for (const [key, by] of [["count", 1], ["huge", 0.5]] as const) {
      const inexact = await rest(t.url, "POST", `/kv/${key}/increment`, { by });
      expect([inexact.status, inexact.body.code]).toEqual([409, "OUT_OF_RANGE"]);
    }
    expect((await rest(t.url, "POST", `/kv/count/increment`, { by: 1 })).body.message).toBe('key "count" is 9007199254740992: adding 1 would not be counted: a number holds 9007199254740992 + 1 as 9007199254740992; nothing was written');
    // Nothing written for them: the versions stand.
    expect((await t.api.kv.get.query({ key: "count" })).entry?.version).toBe(count.version);
    // Fractions that do change the number are counted as numbers add.
    expect((await t.api.kv.increment.mutate({ key: "fraction", by: 0.1 })).value).toBe(0.1);
    expect((await t.api.kv.increment.mutate({ key: "fraction", by: 0.2 })).value).toBe(0.30000000000000004);
  });

  it("refuses a fraction added to a whole number past 2^53, where no number holds a fraction: 2^53 + 1.5 is not 2^53 + 2", async () => {
    t = await startTestServer();
    const count = await t.api.kv.increment.mutate({ key: "count", by: 2 ** 53 });
    for (const by of [1.5, -1.5, 2.5]) {
      const inexact = await rest(t.url, "POST", `/kv/count/increment`, { by });
      expect([by, inexact.status, inexact.body.code]).toEqual([by, 409, "OUT_OF_RANGE"]);
      expect(inexact.body.message).toMatch(/would not be counted/);
    }
    expect((await t.api.kv.get.query({ key: "count" })).entry).toMatchObject({ value: 2 ** 53, version: count.version });
    // Whole numbers past 2^53 that a number holds exactly still add; fractions below it still count as numbers add.
    expect((await t.api.kv.increment.mutate({ key: "count", by: 2 })).value).toBe(2 ** 53 + 2);
    expect((await t.api.kv.increment.mutate({ key: "small", by: 2 ** 51 })).value).toBe(2 ** 51);
    expect((await t.api.kv.increment.mutate({ key: "small", by: 0.5 })).value).toBe(2 ** 51 + 0.5);
  });

  it("answers an increment sent again with its idempotencyKey with the entry it wrote, whatever came since, for 24 hours", async () => {
    t = await startTestServer({ leaseSweepMs: 50 });
    const api = t.api;
    const first = await api.kv.increment.mutate({ key: "tokens", by: 1200, max: 10_000, agentId: "a1", idempotencyKey: "step-1" });
    await api.kv.increment.mutate({ key: "tokens", by: 300, agentId: "a2" });
    // Its answer was lost: sent again after another agent's write, it is not added twice.
    const resent = await api.kv.increment.mutate({ key: "tokens", by: 1200, max: 10_000, agentId: "a1", idempotencyKey: "step-1" });
    expect(resent).toEqual(first);
    expect((await api.kv.get.query({ key: "tokens" })).entry?.value).toBe(1500);
    // Another writer's key of the same name is its own increment.
    expect((await api.kv.increment.mutate({ key: "tokens", by: 1, agentId: "a2", idempotencyKey: "step-1" })).value).toBe(1501);
    // Sent with another amount: a 409 naming what differs.
    const mismatch = await rest(t.url, "POST", `/kv/tokens/increment`, { by: 999, max: 10_000, agentId: "a1", idempotencyKey: "step-1" });
    expect([mismatch.status, mismatch.body.code, mismatch.body.details]).toEqual([409, "IDEMPOTENCY_MISMATCH", { key: "tokens", differs: ["by"] }]);
    // A refused increment is not remembered: sent again once there is room, it is added.
    await rest(t.url, "POST", `/kv/tokens/increment`, { by: 9000, max: 10_000, agentId: "a1", idempotencyKey: "step-2" }).then((r) => expect(r.body.code).toBe("OUT_OF_RANGE"));
    await api.kv.increment.mutate({ key: "tokens", by: -1501 });
    expect((await api.kv.increment.mutate({ key: "tokens", by: 9000, max: 10_000, agentId: "a1", idempotencyKey: "step-2" })).value).toBe(9000);
    // Kept 24 hours: the expiry job forgets it after, and the same key adds again.
    withDatabase(t, (db) => db.prepare(`UPDATE kv_increments SET at = at - ? WHERE idempotencyKey = 'step-1' AND writer = 'a1'`).run(24 * 3_600_000 + 1));
    await vi.waitFor(() => expect(withDatabase(t!, (db) => db.prepare(`SELECT COUNT(*) AS n FROM kv_increments WHERE writer = 'a1' AND idempotencyKey = 'step-1'`).get())).toEqual({ n: 0 }), { timeout: 15_000, interval: 20 });
    expect((await api.kv.increment.mutate({ key: "tokens", by: 1000, max: 10_000, agentId: "a1", idempotencyKey: "step-1" })).value).toBe(10_000);
  });

  it("gives a key it creates ttlMs, keeps an existing key's expiry, and starts a new count once the window ended", async () => {
    t = await startTestServer({ leaseSweepMs: 50 });
    const api = t.api;
    const created = await api.kv.increment.mutate({ key: "failures/hour", ttlMs: 60_000 });
    expect(created.expiresAt!.getTime() - created.updatedAt.getTime()).toBe(60_000);
    const again = await api.kv.increment.mutate({ key: "failures/hour", ttlMs: 60_000 });
    expect([again.value, again.expiresAt]).toEqual([2, created.expiresAt]);
    // The window ends (its expiry moved to the past by hand): the next increment counts from 0, with a window of its own.
    withDatabase(t, (db) => db.prepare(`UPDATE kv SET expiresAt = ? WHERE key = 'failures/hour'`).run(Date.now() - 1));
    const fresh = await api.kv.increment.mutate({ key: "failures/hour", ttlMs: 60_000 });
    expect([fresh.value, fresh.expiresAt!.getTime() - fresh.updatedAt.getTime()]).toEqual([1, 60_000]);
    const expired = await api.events.list.query({ types: ["kv.expired"], limit: 10 });
    expect(expired.map((event) => (event.payload as { key: string }).key)).toEqual(["failures/hour"]);
    // Without ttlMs, a key it creates never expires.
    expect((await api.kv.increment.mutate({ key: "forever" })).expiresAt).toBeNull();
  });

  it("coordination kv increment adds, and exits 3 past --max with nothing written", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const added = await runCli({ args: ["kv", "increment", "runs/7/tokens", "--by", "1500", "--max", "2000"], env });
    expect([added.code, added.stdout]).toEqual([0, expect.stringMatching(/^key runs\/7\/tokens: 1500 \(version \d+, never expires\)\n$/)]);
    const past = await runCli({ args: ["kv", "increment", "runs/7/tokens", "--by", "1500", "--max", "2000"], env });
    expect([past.code, past.stderr]).toEqual([3, 'coordination: OUT_OF_RANGE: key "runs/7/tokens" is 1500: adding 1500 would make it 3000, past its max 2000; nothing was written\n']);
    const back = await runCli({ args: ["kv", "increment", "runs/7/tokens", "--by", "-500", "--json"], env });
    expect([back.code, JSON.parse(back.stdout).value]).toEqual([0, 1000]);
    const bad = await runCli({ args: ["kv", "increment", "runs/7/tokens", "--by", "lots"], env });
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining("--by must be a number (such as 5, -2 or 0.5)")]);
    // Digits past 2^53 would be read as another number (…993 as …992): refused, not sent rounded.
    const rounded = await runCli({ args: ["kv", "increment", "runs/7/tokens", "--by", "9007199254740993"], env });
    expect([rounded.code, rounded.stderr]).toEqual([2, expect.stringContaining("--by 9007199254740993 is past 2^53, where a number does not hold every whole number: it would be read as 9007199254740992")]);
    const crossed = await runCli({ args: ["kv", "increment", "runs/7/tokens", "--min", "5", "--max", "1"], env });
    expect([crossed.code, crossed.stderr]).toEqual([2, expect.stringContaining("--max (1) is below --min (5): no number is both")]);
    // Counted apart from sets in /metrics.
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^coordination_kv_writes_total\{kind="incremented"\} 2$/m);
  });

  it("increment_key through MCP: a budget spent is a tool error with code OUT_OF_RANGE and the key as it is", async () => {
    t = await startTestServer();
    const client = await connectMcp(t.url, { "x-agent-id": "planner" });
    const spent = await callTool(client, "increment_key", { key: "budget", by: 800, max: 1000, idempotencyKey: "s1" });
    expect([spent.value, spent.updatedBy]).toEqual([800, "planner"]);
    expect(await callTool(client, "increment_key", { key: "budget", by: 800, max: 1000, idempotencyKey: "s1" })).toEqual(spent);
    const over = await callTool(client, "increment_key", { key: "budget", by: 300, max: 1000 });
    expect(over.error).toMatchObject({ code: "OUT_OF_RANGE", details: { value: 800, entry: { value: 800 } } });
  });
});
