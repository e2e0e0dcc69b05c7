// Many claimers at once: every task handed out exactly once and completed exactly once;
// idempotent enqueue under concurrency; a failed write never takes another's with it.
import { describe, expect, it } from "vitest";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("concurrency", () => {
  it("32 concurrent HTTP claimers drain 600 tasks: each completed exactly once, none left", async () => {
    await using t = await startTestServer({ memoryContextLimit: 0 });
    const total = 600;
    for (let i = 0; i < total; i += 300) {
      await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 300 }, (_, j) => ({ payload: { n: i + j } })) });
    }
    const completedBy = new Map<string, string>();
    const duplicates: string[] = [];
    const errors: string[] = [];
    const claimer = async (agent: string) => {
      for (;;) {
        const claim = await rest(t.url, "GET", `/tasks/claim/${agent}`);
        if (claim.status === 204) return;
        if (claim.status !== 200) {
          errors.push(`claim ${claim.status}`);
          return;
        }
        const id = claim.body.id as string;
        if (completedBy.has(id)) duplicates.push(id);
        completedBy.set(id, agent);
        const done = await rest(t.url, "POST", `/tasks/${id}/complete`, { agentId: agent, result: { by: agent } });
        if (done.status !== 200) errors.push(`complete ${done.status}`);
      }
    };
    await Promise.all(Array.from({ length: 32 }, (_, i) => claimer(`agent-${i}`)));

    expect(errors).toEqual([]);
    expect(duplicates).toEqual([]);
    expect(completedBy.size).toBe(total);
    const stats = await t.api.tasks.stats.query();
    expect(stats.totals).toEqual({ waiting: 0, pending: 0, claimed: 0, completed: total, dead_letter: 0, cancelled: 0 });
    // The event log agrees: one claim and one completion per task.
    const eventsOf = (type: string) => withDatabase(t, (db) => db.prepare(`SELECT payload FROM events WHERE type = ?`).pluck().all(type) as string[]).map((p) => JSON.parse(p) as unknown);
    const claimedEvents = eventsOf("task.claimed");
    const completedEvents = eventsOf("task.completed") as Array<{ taskId: string }>;
    expect(claimedEvents).toHaveLength(total);
    expect(new Set(completedEvents.map((e) => e.taskId)).size).toBe(total);
  });

  it("20 concurrent identical enqueues with one idempotency key create one task", async () => {
    await using t = await startTestServer();
    const request = { queue: "q", payload: { report: 42 }, priority: 3, idempotencyKey: "report-42" };
    const results = await Promise.all([
      ...Array.from({ length: 10 }, () => t.api.tasks.enqueue.mutate(request)),
      ...Array.from({ length: 10 }, () => rest(t.url, "POST", "/tasks", request).then((r) => r.body as { id: string })),
    ]);
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    const page = await t.api.tasks.list.query({ queue: "q" });
    expect(page.items).toHaveLength(1);
    expect(withDatabase(t, (db) => db.prepare(`SELECT COUNT(*) FROM events WHERE type = 'task.enqueued'`).pluck().get())).toBe(1);

    // Reusing the key for a different task is a conflict, not a silent dedupe.
    await expect(t.api.tasks.enqueue.mutate({ ...request, priority: 1 })).rejects.toMatchObject({
      data: { code: "IDEMPOTENCY_MISMATCH" },
    });
  });

  it("a rolled-back operation never takes another request's write with it", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ payload: { original: true }, idempotencyKey: "taken" });
    // enqueueMany is all-or-nothing: its second task reuses a key for a different task, so it
    // rolls back after inserting the first one. 30 unrelated enqueues race with it in the same
    // group commits; each must survive.
    const doomed = t.api.tasks.enqueueMany.mutate({
      tasks: [{ payload: { doomed: "first" } }, { payload: { different: true }, idempotencyKey: "taken" }],
    });
    const bystanders = Array.from({ length: 30 }, (_, i) => t.api.tasks.enqueue.mutate({ payload: { bystander: i } }));
    const [doomedResult, ...bystanderResults] = await Promise.allSettled([doomed, ...bystanders]);
    expect(doomedResult?.status).toBe("rejected");
    expect(bystanderResults.every((r) => r.status === "fulfilled")).toBe(true);

    const all = await t.api.tasks.list.query({ limit: 500 });
    const payloads = all.items.map((task) => task.payload as Record<string, unknown>);
    expect(payloads.filter((p) => "bystander" in p)).toHaveLength(30);
    expect(payloads.filter((p) => "doomed" in p)).toHaveLength(0);
    expect(all.items).toHaveLength(31);
  });
});
