// The client can send every call the server accepts, alone or batched, however many run at once:
// queries go as POST (no URL limit), a batch stays under the server's maxBodyBytes, and a call
// too big for its share of a batch goes alone.
import { describe, expect, it } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("client batching", () => {
  it("splits 300 concurrent queries and 600 concurrent 2 KB enqueues into batches the server accepts", async () => {
    await using t = await startTestServer();
    const created = await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 300 }, (_, n) => ({ payload: { n } })) });

    const fetched = await Promise.all(created.map((task) => t.api.tasks.get.query({ taskId: task.id })));
    expect(fetched.map((task) => task.id)).toEqual(created.map((task) => task.id));

    const blob = "x".repeat(2048);
    const enqueued = await Promise.all(
      Array.from({ length: 600 }, (_, n) => t.api.tasks.enqueue.mutate({ queue: "bulk", payload: { n, blob } })),
    );
    expect(enqueued.map((task) => (task.payload as { n: number }).n)).toEqual(Array.from({ length: 600 }, (_, n) => n));
    expect(new Set(enqueued.map((task) => task.id)).size).toBe(600);
    const stats = await t.api.tasks.stats.query();
    expect(stats.queues.find((q) => q.queue === "bulk")?.counts.pending).toBe(600);
    expect(stats.totals.pending).toBe(900);
  });

  it("two concurrent 600 KB enqueues both succeed, and so do forty concurrent 30 KB ones", async () => {
    await using t = await startTestServer();
    const big = "y".repeat(600 * 1024);
    const both = await Promise.all([0, 1].map((n) => t.api.tasks.enqueue.mutate({ queue: "big", payload: { n, big } })));
    expect(both.map((task) => (task.payload as { n: number }).n)).toEqual([0, 1]);
    const medium = "z".repeat(30 * 1024);
    const forty = await Promise.all(Array.from({ length: 40 }, (_, n) => t.api.tasks.enqueue.mutate({ queue: "medium", payload: { n, medium } })));
    expect(forty).toHaveLength(40);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(42);
  });

  it("measures a batch in bytes: fifty concurrent enqueues of 18,000 CJK characters (54 KB each) all succeed", async () => {
    await using t = await startTestServer();
    // One UTF-16 unit and three UTF-8 bytes each: counted in characters, fifty of them shared one
    // 2.7 MB batch, and the server refused it whole (413) though it accepts each alone.
    const cjk = "漢".repeat(18_000);
    const enqueued = await Promise.all(Array.from({ length: 50 }, (_, n) => t.api.tasks.enqueue.mutate({ queue: "cjk", payload: { n, cjk } })));
    expect(enqueued.map((task) => (task.payload as { n: number }).n)).toEqual(Array.from({ length: 50 }, (_, n) => n));
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(50);
  });

  it("queries as long as the schema allows: a 2,000-character recall in any script, 100 long patterns", async () => {
    await using t = await startTestServer();
    await t.api.memory.remember.mutate({ content: "Привет мир: how to deploy" });
    const cyrillic = "Привет мир ".repeat(200).slice(0, 2000);
    expect((await t.api.memory.recall.query({ query: cyrillic })).map((m) => m.memory.content)).toEqual(["Привет мир: how to deploy"]);
    const patterns = Array.from({ length: 100 }, (_, i) => `${"segment".repeat(25)}.p${i}.*`);
    expect(await t.api.events.list.query({ types: patterns })).toEqual([]);
    // Over REST, the GET form carries it too (URLs up to 64 KiB), and the POST form any length the schema allows.
    const cjk = "漢字".repeat(1000);
    expect(await rest(t.url, "GET", `/memory/recall?query=${encodeURIComponent(cjk)}`)).toEqual({ status: 200, body: [] });
    expect(await rest(t.url, "POST", "/memory/recall", { query: cjk })).toEqual({ status: 200, body: [] });
    // Past the URL limit: a 431 that says what to do, in the one error shape.
    const tooLong = await rest(t.url, "GET", `/memory/recall?query=${"x".repeat(70_000)}`);
    expect(tooLong).toEqual({ status: 431, body: { code: "HEADERS_TOO_LARGE", message: "URL and headers exceed 65536 bytes; send long input in a POST body" } });
  });
});
