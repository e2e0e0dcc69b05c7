// `coordination schedules set` refusals name the option the operator typed, as every other
// command's do (FLAG_OF_FIELD): the server names a schedule's task fields "task.priority",
// "task.ttlMs", "task.queue", which no operator typed. `coordination schedules` lists them all.
import { afterEach, describe, expect, it } from "vitest";
import { runOperator } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("schedules set refusals", () => {
  it("name --priority, --ttl and --queue, not task.priority, task.ttlMs and task.queue", async () => {
    t = await startTestServer();
    const run = (...args: string[]) => runOperator({ args: ["schedules", "set", "nightly", "--every", "1m", ...args, "--url", t!.url] });
    const priority = await run("--priority", "2000000");
    expect(priority.code).toBe(2);
    expect(priority.stderr).toBe("coordination: INVALID_INPUT: --priority: must be at most 1000000\n");
    const ttl = await run("--ttl", "100000d");
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toMatch(/^coordination: INVALID_INPUT: --ttl: must be at most \d+\n$/);
    const queue = await run("--queue", "");
    expect(queue.code).toBe(2);
    expect(queue.stderr).toBe("coordination: INVALID_INPUT: --queue: must be at least 1 character long\n");
    // Nothing was set by the refused calls.
    expect((await t.api.schedules.list.query({})).items).toEqual([]);
  });
});

describe("schedules list", () => {
  it("lists every schedule, over as many pages as their answers take (large payloads cut a page below 1,000)", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    // About 20 KB each: three to a page of 64 KiB.
    for (let i = 0; i < 8; i++) await t.api.schedules.set.mutate({ scheduleId: `s${i}`, everyMs: 3_600_000, task: { queue: "big", payload: { text: "x".repeat(20_000) } } });
    expect((await t.api.schedules.list.query({ limit: 1000 })).nextCursor).not.toBeNull();
    const listed = await runOperator({ args: ["schedules", "--url", t.url] });
    expect([listed.code, listed.stderr]).toEqual([0, ""]);
    expect(listed.stdout.split("\n").filter((line) => /^s\d /.test(line)).map((line) => line.split(" ")[0])).toEqual(["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"]);
    const json = JSON.parse((await runOperator({ args: ["schedules", "--json", "--url", t.url] })).stdout);
    expect([json.items.length, json.nextCursor]).toEqual([8, null]);
  });
});
