// Polling the event stream: order, cursor and limit (auto ack), at-least-once manual ack,
// long-polling woken by a publish, and the REST routes of the event stream.
import { TRPCClientError } from "@trpc/client";
import { describe, expect, it, vi } from "vitest";
import { range } from "./helpers/event-collector.js";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("events.poll: an auto-ack batch held until its answer is confirmed", () => {
  const setup = async () => {
    const t = await startTestServer({ leaseMs: 60_000 });
    const holds = () => withDatabase(t, (file) => file.prepare("SELECT count(*) FROM poll_takes").pluck().get() as number);
    /** The hold's time runs out (the clock of the file's rows, moved as a long wait would). */
    const runOut = () => withDatabase(t, (file) => file.prepare("UPDATE poll_takes SET expiresAt = 1").run());
    const send = (i: number) => t.api.events.publish.mutate({ type: "work.item", source: "p", target: "h1", payload: { i } });
    /** Takes a batch as a server that then died would have: held, never confirmed. */
    const takeAndDie = () => t.server.services.db.write("events.take", { agentId: "h1", limit: 100, hold: { owner: "a-server-that-died", holdMs: 60_000 } });
    return { t, holds, runOut, send, takeAndDie };
  };
  const seen = (batch: ReadonlyArray<{ payload: unknown }>) => batch.map((event) => (event.payload as { i: number }).i);

  it("a delivered answer (REST, tRPC) leaves no hold; in process none is taken", async () => {
    const { t, holds, send } = await setup();
    await using _ = t;
    for (const i of [1, 2, 3]) await send(i);
    expect(seen((await rest(t.url, "GET", "/events/h1?limit=2")).body)).toEqual([1, 2]);
    expect(seen(await t.api.events.poll.mutate({ agentId: "h1" }))).toEqual([3]);
    await vi.waitFor(() => expect(holds()).toBe(0), { timeout: 15_000, interval: 20 });
    await send(4);
    expect(seen(await t.server.services.events.poll({ agentId: "h1", ack: "auto", limit: 100, waitMs: 0 }))).toEqual([4]);
    expect(holds()).toBe(0);
  });

  it("a batch lost with its server is the agent's next poll once its hold runs out, and only that batch: what it read since does not come again", async () => {
    const { t, holds, runOut, send, takeAndDie } = await setup();
    await using _ = t;
    for (const i of [1, 2]) await send(i);
    expect(seen((await takeAndDie()).batch)).toEqual([1, 2]);
    // The agent goes on meanwhile: its cursors are past the lost batch.
    for (const i of [3, 4, 5, 6]) await send(i);
    expect(seen(await t.api.events.poll.mutate({ agentId: "h1", limit: 3 }))).toEqual([3, 4, 5]);
    runOut();
    expect(seen(await t.api.events.poll.mutate({ agentId: "h1", limit: 1 }))).toEqual([1]);
    expect(seen(await t.api.events.poll.mutate({ agentId: "h1" }))).toEqual([2]);
    expect(seen(await t.api.events.poll.mutate({ agentId: "h1" }))).toEqual([6]);
    expect(await t.api.events.poll.mutate({ agentId: "h1" })).toEqual([]);
    await vi.waitFor(() => expect(holds()).toBe(0), { timeout: 15_000, interval: 20 });
  });

  it("the server sending an answer renews its hold: another server's take does not count the batch lost", async () => {
    const { t, holds, runOut, send } = await setup();
    await using _ = t;
    const { events, deliveries, db } = t.server.services;
    await send(1);
    // An answer on its way (a tRPC batch holding a long-poll, a slow reader): not decided yet.
    const delivery = deliveries.create("a slow answer");
    expect(seen(await events.poll({ agentId: "h1", ack: "auto", limit: 100, waitMs: 0 }, { delivery }))).toEqual([1]);
    expect(holds()).toBe(1);
    runOut();
    await events.renewHolds(Date.now() + 60_000);
    expect((await db.write("events.take", { agentId: "h1", limit: 100, hold: { owner: "another-server", holdMs: 60_000 } })).batch).toEqual([]);
    delivery.delivered();
    await vi.waitFor(() => expect(holds()).toBe(0), { timeout: 15_000, interval: 20 });
  });

  it("a lost batch is read again as it was taken: with the patterns it had, and without what an ack inside it covered", async () => {
    const { t, runOut, send, takeAndDie } = await setup();
    await using _ = t;
    // A mailbox-only agent with a row (it subscribed once, then dropped its patterns).
    await t.api.events.subscribe.mutate({ agentId: "h1", types: ["x.*"] });
    await t.api.events.unsubscribe.mutate({ agentId: "h1" });
    await t.api.events.publish.mutate({ type: "news.item", source: "p", payload: { i: 100 } });
    for (const i of [1, 2, 3]) await send(i);
    const lost = await takeAndDie();
    expect(seen(lost.batch)).toEqual([1, 2, 3]);
    // Patterns added after the loss do not reach into it; an ack through its second event shrinks it.
    await t.api.events.subscribe.mutate({ agentId: "h1", types: ["news.*"] });
    await t.api.events.ack.mutate({ agentId: "h1", seq: lost.batch[1]!.seq });
    runOut();
    expect(seen(await t.api.events.poll.mutate({ agentId: "h1" }))).toEqual([3]);
    expect(await t.api.events.poll.mutate({ agentId: "h1" })).toEqual([]);
  });

  it("a hold lasts at least four runs of the job that renews it; a confirm whose write failed is retried by that job", async () => {
    const t = await startTestServer({ leaseMs: 500, leaseSweepMs: 1000 });
    await using _ = t;
    const { events, deliveries, db } = t.server.services;
    await t.api.events.publish.mutate({ type: "work.item", source: "p", target: "h1", payload: { i: 1 } });
    // The first confirm fails, as it would behind another process's lock or on a full disk.
    const write = db.write.bind(db);
    let refused = 0;
    (db as { write: typeof db.write }).write = ((name: string, args: unknown) =>
      name === "events.confirmTakes" && refused++ === 0 ? Promise.reject(new Error("SQLITE_BUSY (injected)")) : write(name as never, args as never)) as typeof db.write;
    const delivery = deliveries.create("an answer whose confirm fails");
    const asked = Date.now();
    expect(seen(await events.poll({ agentId: "h1", ack: "auto", limit: 100, waitMs: 0 }, { delivery }))).toEqual([1]);
    const expiresAt = withDatabase(t, (file) => file.prepare("SELECT expiresAt FROM poll_takes").pluck().get() as number);
    expect(expiresAt).toBeGreaterThanOrEqual(asked + 4000);
    delivery.delivered();
    await delivery.whenSettled();
    expect(refused).toBe(1);
    // Still held, and renewed (the batch arrived: no take may count it lost); the job confirms it.
    expect(withDatabase(t, (file) => file.prepare("SELECT count(*) FROM poll_takes").pluck().get())).toBe(1);
    await events.renewHolds(Date.now() + 4000);
    expect(withDatabase(t, (file) => file.prepare("SELECT count(*) FROM poll_takes").pluck().get())).toBe(0);
    expect(await t.api.events.poll.mutate({ agentId: "h1" })).toEqual([]);
  });

  it("an answer that did not arrive makes its batch the next poll's; an ack through it drops a lost batch", async () => {
    const { t, holds, runOut, send, takeAndDie } = await setup();
    await using _ = t;
    const { events, deliveries } = t.server.services;
    await send(1);
    const delivery = deliveries.create("a lost answer");
    expect(seen(await events.poll({ agentId: "h1", ack: "auto", limit: 100, waitMs: 0 }, { delivery }))).toEqual([1]);
    delivery.undelivered();
    await delivery.whenSettled();
    expect(seen(await t.api.events.poll.mutate({ agentId: "h1" }))).toEqual([1]);
    await send(2);
    const lost = await takeAndDie();
    runOut();
    await t.api.events.ack.mutate({ agentId: "h1", seq: lost.batch[0]!.seq });
    expect(await t.api.events.poll.mutate({ agentId: "h1" })).toEqual([]);
    await vi.waitFor(() => expect(holds()).toBe(0), { timeout: 15_000, interval: 20 });
  });
});

describe("events.poll", () => {
  it("returns matching events in seq order, respects limit, and advances the cursor past them (auto ack)", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "w", types: ["job.*"] });
    // Published concurrently (one HTTP batch, one group commit), then put in seq order.
    const published = (
      await Promise.all(
        range(1, 10).map((i) => api.events.publish.mutate({ type: i % 3 === 0 ? "other.noise" : `job.n${i}`, source: "t", payload: { i } })),
      )
    ).sort((a, b) => a.seq - b.seq);
    expect(published.map((e) => e.seq)).toEqual(range(1, 10));
    const jobs = published.filter((e) => e.type.startsWith("job."));
    const jobSeqs = jobs.map((e) => e.seq);
    expect(jobSeqs).toHaveLength(7);

    const first = await api.events.poll.mutate({ agentId: "w", limit: 4 });
    expect(first.map((e) => e.seq)).toEqual(jobSeqs.slice(0, 4));
    expect((await api.events.subscription.query({ agentId: "w" })).cursor).toBe(jobSeqs[3]);
    const second = await api.events.poll.mutate({ agentId: "w", limit: 4 });
    expect(second.map((e) => e.seq)).toEqual(jobSeqs.slice(4));
    expect(second.map((e) => e.payload)).toEqual(jobs.slice(4).map((e) => e.payload));
    expect(await api.events.poll.mutate({ agentId: "w" })).toEqual([]);
    // Nothing left that matches: the cursor skipped to the head, past the trailing noise.
    expect((await api.events.subscription.query({ agentId: "w" })).cursor).toBe(published.at(-1)!.seq);

    const newer = await api.events.publish.mutate({ type: "job.late", source: "t" });
    expect((await api.events.poll.mutate({ agentId: "w" })).map((e) => e.seq)).toEqual([newer.seq]);
  });

  it("hands each event to exactly one of several concurrent auto-ack polls of the same agent", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "shared", types: ["*"] });
    const published = await Promise.all(range(1, 20).map((i) => api.events.publish.mutate({ type: "job.x", source: "t", payload: i })));
    const batches = await Promise.all(range(1, 4).map(() => api.events.poll.mutate({ agentId: "shared", limit: 5 })));
    const seen = batches.flat().map((e) => e.seq);
    expect(seen.sort((a, b) => a - b)).toEqual(published.map((e) => e.seq).sort((a, b) => a - b));
    for (const batch of batches) expect(batch).toHaveLength(5);
  });

  it("manual ack: the batch comes back until acked, ack never rewinds, ack beyond the head is BAD_REQUEST", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "m", types: ["job.*"] });
    const seqs: number[] = [];
    for (const i of range(1, 5)) seqs.push((await api.events.publish.mutate({ type: "job.x", source: "t", payload: i })).seq);

    const batch = await api.events.poll.mutate({ agentId: "m", limit: 3, ack: "manual" });
    expect(batch.map((e) => e.seq)).toEqual(seqs.slice(0, 3));
    // The consumer crashed before acking: the same batch again.
    const again = await api.events.poll.mutate({ agentId: "m", limit: 3, ack: "manual" });
    expect(again.map((e) => e.seq)).toEqual(seqs.slice(0, 3));

    expect((await api.events.ack.mutate({ agentId: "m", seq: seqs[1]! })).cursor).toBe(seqs[1]);
    expect((await api.events.poll.mutate({ agentId: "m", limit: 3, ack: "manual" })).map((e) => e.seq)).toEqual(seqs.slice(2));
    // A late or repeated ack of an older seq leaves the cursor where it is.
    expect((await api.events.ack.mutate({ agentId: "m", seq: seqs[0]! })).cursor).toBe(seqs[1]);
    expect((await api.events.ack.mutate({ agentId: "m", seq: seqs[4]! })).cursor).toBe(seqs[4]);
    expect(await api.events.poll.mutate({ agentId: "m", ack: "manual" })).toEqual([]);

    const beyond = await api.events.ack.mutate({ agentId: "m", seq: seqs[4]! + 1 }).catch((e: unknown) => e);
    expect(beyond).toBeInstanceOf(TRPCClientError);
    expect(beyond).toMatchObject({ data: { code: "INVALID_INPUT" } });
    expect((await api.events.subscription.query({ agentId: "m" })).cursor).toBe(seqs[4]);
    // Every agent has a mailbox: acknowledging for one never seen records its position.
    expect(await api.events.ack.mutate({ agentId: "ghost", seq: 1 })).toMatchObject({ agentId: "ghost", types: [], cursor: 1, mailboxCursor: 1 });
  });

  it("long-poll: a waiting poll returns the event well under a second after it is published", async () => {
    // crossProcessPollMs is long, so only the publish's own wake-up can end the wait early.
    await using t = await startTestServer({ crossProcessPollMs: 5000 });
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "lp", types: ["job.*"] });
    const polling = api.events.poll.mutate({ agentId: "lp", waitMs: 5000 });
    await vi.waitFor(() => expect(t.server.services.events.waitingPolls).toBe(1), { timeout: 30_000, interval: 5 });

    const startedAt = performance.now();
    let returnedAt = 0;
    const timedPoll = polling.then((events) => ((returnedAt = performance.now()), events));
    const published = await api.events.publish.mutate({ type: "job.ready", source: "t" });
    const events = await timedPoll;
    const latencyMs = returnedAt - startedAt;
    expect(events.map((e) => e.seq)).toEqual([published.seq]);
    // crossProcessPollMs is 5 s: returning well before it can only be the publish's own wake-up.
    // (The bound is generous on purpose: how fast is the benchmark's business, not this test's.)
    expect(latencyMs).toBeLessThan(4000);
    expect(t.server.services.events.waitingPolls).toBe(0);
  });

  it("long-poll: returns an empty batch when nothing arrives before waitMs", async () => {
    await using t = await startTestServer();
    await t.api.events.subscribe.mutate({ agentId: "idle", types: ["job.*"] });
    await t.api.events.publish.mutate({ type: "other.x", source: "t" });
    const startedAt = performance.now();
    expect(await t.api.events.poll.mutate({ agentId: "idle", waitMs: 300 })).toEqual([]);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(290);
  });
});

describe("event REST routes", () => {
  it("publish, subscribe, poll (limit, ack, waitMs), ack, list and unsubscribe over plain HTTP", async () => {
    await using t = await startTestServer();
    const subscribed = await rest(t.url, "POST", "/events/subscriptions", { agentId: "r1", types: ["rest.*", "other.x"] });
    expect(subscribed.status).toBe(200);
    expect(subscribed.body).toMatchObject({ agentId: "r1", types: ["other.x", "rest.*"], cursor: 0 });

    const one = await rest(t.url, "POST", "/events", { type: "rest.ping", source: "curl", payload: { n: 1 } });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ seq: 1, type: "rest.ping", source: "curl", payload: { n: 1 }, target: null });
    expect(Date.parse(one.body.createdAt)).not.toBeNaN();
    const two = await rest(t.url, "POST", "/events", { type: "rest.pong", source: "curl" });
    expect(two.body).toMatchObject({ seq: 2, payload: {} });

    const manual = await rest(t.url, "GET", "/events/r1?limit=1&ack=manual");
    expect(manual.status).toBe(200);
    expect(manual.body.map((e: { seq: number }) => e.seq)).toEqual([1]);
    expect((await rest(t.url, "GET", "/events/r1?limit=1&ack=manual")).body.map((e: { seq: number }) => e.seq)).toEqual([1]);
    const acked = await rest(t.url, "POST", "/events/r1/ack", { seq: 1 });
    expect(acked.status).toBe(200);
    expect(acked.body.cursor).toBe(1);
    expect((await rest(t.url, "POST", "/events/r1/ack", { seq: 99 })).status).toBe(400);

    const auto = await rest(t.url, "GET", "/events/r1?waitMs=0");
    expect(auto.body.map((e: { seq: number }) => e.seq)).toEqual([2]);
    const waited = await rest(t.url, "GET", "/events/r1?waitMs=200");
    expect(waited).toEqual({ status: 200, body: [] });
    expect((await rest(t.url, "GET", "/events/r1?limit=0")).status).toBe(400);

    const listed = await rest(t.url, "GET", "/events?afterSeq=1&types=rest.*");
    expect(listed.status).toBe(200);
    expect(listed.body.map((e: { type: string }) => e.type)).toEqual(["rest.pong"]);
    expect((await rest(t.url, "GET", "/events/subscriptions/r1")).body.cursor).toBe(2);

    const narrowed = await rest(t.url, "DELETE", "/events/subscriptions/r1?types=other.x");
    expect(narrowed.status).toBe(200);
    expect(narrowed.body.types).toEqual(["rest.*"]);
    const dropped = await rest(t.url, "DELETE", "/events/subscriptions/r1");
    expect(dropped.status).toBe(200);
    expect(dropped.body.types).toEqual([]);
    // Without patterns the agent still has its mailbox: polling answers [], never 404.
    expect(await rest(t.url, "GET", "/events/r1")).toEqual({ status: 200, body: [] });
    // Dropping them again: a 404 that says there are none, not that the agent is unknown (its GET answers).
    expect(await rest(t.url, "DELETE", "/events/subscriptions/r1")).toMatchObject({
      status: 404,
      body: { code: "SUBSCRIPTION_NOT_FOUND", message: 'agent "r1" is subscribed to no event types, so there are none to drop (its cursors are kept: GET /events/subscriptions/r1); call events.subscribe to add some' },
    });
    expect((await rest(t.url, "GET", "/events/subscriptions/r1")).body).toMatchObject({ agentId: "r1", types: [], cursor: 2 });
    // An agent that only acked (it never subscribed) has cursors and no patterns alike.
    expect((await rest(t.url, "POST", "/events/ghost/ack", { seq: 1 })).status).toBe(200);
    expect((await rest(t.url, "GET", "/events/subscriptions/ghost")).body).toMatchObject({ agentId: "ghost", types: [], cursor: 1 });
    expect((await rest(t.url, "DELETE", "/events/subscriptions/ghost")).body.message).toContain('agent "ghost" is subscribed to no event types');
  });

  it("answers [] for polling an agent nobody has heard of, 400 for a malformed event", async () => {
    await using t = await startTestServer();
    expect(await rest(t.url, "GET", "/events/nobody")).toEqual({ status: 200, body: [] });
    // Nothing was consumed, so nothing was recorded for it.
    expect((await rest(t.url, "GET", "/events/subscriptions/nobody")).status).toBe(404);
    expect((await rest(t.url, "POST", "/events", { type: "bad type", source: "x" })).status).toBe(400);
    expect((await rest(t.url, "POST", "/events", { type: "ok.type" })).status).toBe(400);
  });
});
