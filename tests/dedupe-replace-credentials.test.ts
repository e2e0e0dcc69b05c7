// dedupe.replace changes a waiting task: its payload, its due time, its expiry. That is what
// tasks.update does, an admin's act, and an agent credential cancels only the tasks its agent
// enqueued. Yet any agent credential could replace the payload of any agent's (or an admin's)
// waiting task by enqueuing with its dedupe key (which every task shows): agent w2 turned w1's
// `{ cmd: "safe" }` into its own payload, still named as w1's (enqueuedBy). An agent credential now
// replaces only what its agent enqueued: another's is a 403 naming the task, nothing changed;
// without replace it is answered that task, as before; admins replace any.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CoordinationApi } from "../client/index.js";
import { http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { refusal as refusalOf } from "./helpers/refusal.js";

let t: SecureServer;
let w1: CoordinationApi;
let w2: CoordinationApi;
let w2Secret: string;
beforeAll(async () => {
  t = await startSecureServer();
  w1 = t.as(await t.issue("agent", "w1"));
  w2Secret = await t.issue("agent", "w2");
  w2 = t.as(w2Secret);
});
afterAll(() => t.stop({ removeFiles: true }));

describe("dedupe.replace under agent credentials", () => {
  it("another agent's task is a 403 naming it, over tRPC and REST, one entry refusing a whole batch; nothing changes", async () => {
    const first = await w1.tasks.enqueue.mutate({ queue: "docs", payload: { cmd: "safe" }, delayMs: 60_000, dedupe: { key: "doc-7" } });
    const refused = await refusalOf(w2.tasks.enqueue.mutate({ queue: "docs", payload: { cmd: "forged" }, dedupe: { key: "doc-7", replace: true } }));
    expect(refused).toEqual({
      code: "FORBIDDEN",
      message: `task "${first.id}", which holds dedupe key "doc-7" in queue "docs", was not enqueued by agent "w2": an agent credential replaces only the tasks its agent enqueued (an admin's, any task); without replace, the enqueue is answered that task as it is`,
      details: { taskId: first.id },
    });
    const overRest = await http(t.url, "POST", "/tasks", { token: w2Secret, body: { queue: "docs", payload: { cmd: "forged" }, delay_ms: 0, dedupe: { key: "doc-7", replace: true } } });
    expect([overRest.status, overRest.body.code]).toEqual([403, "FORBIDDEN"]);
    const batch = await refusalOf(
      w2.tasks.enqueueMany.mutate({ tasks: [{ queue: "docs", payload: { other: 1 } }, { queue: "docs", payload: { cmd: "forged" }, dedupe: { key: "doc-7", replace: true } }] }),
    );
    expect(batch.code).toBe("FORBIDDEN");
    expect(batch.message.startsWith(`tasks[1]: task "${first.id}"`)).toBe(true);
    const kept = await t.admin.tasks.get.query({ taskId: first.id });
    expect({ payload: kept.payload, runAt: kept.runAt, replacedAt: kept.replacedAt, duplicates: kept.duplicates, enqueuedBy: kept.enqueuedBy }).toEqual({
      payload: { cmd: "safe" },
      runAt: first.runAt,
      replacedAt: null,
      duplicates: 0,
      enqueuedBy: "w1",
    });
    // The batch's other entry was rolled back with it.
    expect((await t.admin.tasks.list.query({ queue: "docs" })).items.map((task) => task.id)).toEqual([first.id]);
    // An admin's task is no agent's own either.
    const admins = await t.admin.tasks.enqueue.mutate({ queue: "docs", payload: { by: "admin" }, dedupe: { key: "doc-8" } });
    expect((await refusalOf(w1.tasks.enqueue.mutate({ queue: "docs", payload: { by: "w1" }, dedupe: { key: "doc-8", replace: true } }))).code).toBe("FORBIDDEN");
    expect((await t.admin.tasks.get.query({ taskId: admins.id })).payload).toEqual({ by: "admin" });
  });

  it("without replace another's task still answers the enqueue; its own agent and an admin replace", async () => {
    const first = await w1.tasks.enqueue.mutate({ queue: "notes", payload: { text: "v1" }, delayMs: 60_000, dedupe: { key: "note-1" } });
    const duplicate = await w2.tasks.enqueue.mutate({ queue: "notes", payload: { text: "other" }, dedupe: { key: "note-1" } });
    expect({ id: duplicate.id, deduplicated: duplicate.deduplicated, payload: duplicate.payload }).toEqual({ id: first.id, deduplicated: true, payload: { text: "v1" } });
    const own = await w1.tasks.enqueue.mutate({ queue: "notes", payload: { text: "v2" }, dedupe: { key: "note-1", replace: true } });
    expect({ id: own.id, payload: own.payload }).toEqual({ id: first.id, payload: { text: "v2" } });
    const admin = await t.admin.tasks.enqueue.mutate({ queue: "notes", payload: { text: "v3" }, dedupe: { key: "note-1", replace: true } });
    expect({ id: admin.id, payload: admin.payload, enqueuedBy: admin.enqueuedBy }).toEqual({ id: first.id, payload: { text: "v3" }, enqueuedBy: "w1" });
  });
});
