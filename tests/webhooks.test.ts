// Webhooks (webhooks.create / update / rotateSecret / remove / get / list, /webhooks): the server
// POSTs each untargeted event matching a webhook's types to its URL, one request an event, in seq
// order, signed as Standard Webhooks lays out; failed attempts are tried again with backoff, the
// same event first, and a webhook failing for webhookDisableAfterMs is disabled. Real receivers
// on loopback ports, real servers (two on one file for the turns).
import { createHmac } from "node:crypto";
import type { ServerResponse } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { verifyWebhook, WebhookVerificationError } from "../client/index.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { makeTempDir, rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";
import { startReceiver, type Received, type WebhookReceiver } from "./helpers/webhook-receiver.js";

const servers: TestServer[] = [];
const receivers: WebhookReceiver[] = [];
let secure: SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  for (const server of servers.splice(0)) await server.stop({ removeFiles: true });
  for (const receiver of receivers.splice(0)) await receiver.close();
  await secure?.stop({ removeFiles: true });
  secure = undefined;
});

async function server(overrides: Record<string, unknown> = {}, dir?: string): Promise<TestServer> {
  const t = await startTestServer(overrides, dir);
  servers.push(t);
  return t;
}

async function receiver(): Promise<WebhookReceiver> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

/** The events' types and seqs a receiver got, in arrival order. */
const arrivals = (received: readonly Received[]): Array<[string, number]> =>
  received.map((one) => {
    const event = JSON.parse(one.body) as { type: string; seq: number };
    return [event.type, event.seq];
  });

/** The webhook.* events of the log, as [type, payload]. */
async function webhookEvents(t: TestServer): Promise<Array<[string, Record<string, unknown>]>> {
  const events = await t.api.events.list.query({ afterSeq: 0, types: ["webhook.*"], limit: 1000 });
  return events.map((event) => [event.type, event.payload as Record<string, unknown>]);
}

describe("webhooks", () => {
  it("POSTs each untargeted event of its types, in seq order, signed so the receiver can verify it", async () => {
    const t = await server();
    const r = await receiver();
    await t.api.events.publish.mutate({ type: "build.finished", source: "ci", payload: { before: true } });
    const { webhook, secret } = await t.api.webhooks.create.mutate({ url: r.url, types: ["build.*", "deploy.done"], description: "CI to chat" });
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(webhook).toMatchObject({ url: r.url, types: ["build.*", "deploy.done"], description: "CI to chat", enabled: true, disabledReason: null, failures: 0, delivered: 0, gaps: 0, createdBy: null });
    // Published after its creation only (no fromSeq): not the build.finished before it.
    const sent = [];
    sent.push(await t.api.events.publish.mutate({ type: "build.started", source: "ci", payload: { n: 1 } }));
    await t.api.events.publish.mutate({ type: "test.passed", source: "ci" });
    await t.api.events.publish.mutate({ type: "build.finished", source: "ci", target: "agent-1", payload: { direct: true } });
    sent.push(await t.api.events.publish.mutate({ type: "deploy.done", source: "cd", payload: { version: "1.2.3" } }));
    sent.push(await t.api.events.publish.mutate({ type: "build.finished", source: "ci", payload: { n: 2 } }));
    const got = await r.waitFor(3);
    expect(arrivals(got)).toEqual(sent.map((event) => [event.type, event.seq]));

    const first = got[0]!;
    expect(first.path).toBe("/hooks/coordination");
    expect(first.headers["content-type"]).toBe("application/json");
    expect(first.headers["webhook-id"]).toBe(`evt_${sent[0]!.seq}_${sent[0]!.createdAt.getTime()}`);
    expect(first.headers["coordination-webhook-id"]).toBe(webhook.id);
    expect(first.headers["coordination-event-type"]).toBe("build.started");
    expect(first.headers["coordination-event-seq"]).toBe(String(sent[0]!.seq));
    expect(JSON.parse(first.body)).toEqual({ seq: sent[0]!.seq, type: "build.started", source: "ci", payload: { n: 1 }, target: null, createdAt: sent[0]!.createdAt.toISOString() });
    // The signature, by hand as the spec lays it out, and by the client's verifier.
    const timestamp = String(first.headers["webhook-timestamp"]);
    expect(Math.abs(Number(timestamp) * 1000 - Date.now())).toBeLessThan(60_000);
    const key = Buffer.from(secret.slice("whsec_".length), "base64");
    const expected = createHmac("sha256", key).update(`${first.headers["webhook-id"]}.${timestamp}.${first.body}`).digest("base64");
    expect(first.headers["webhook-signature"]).toBe(`v1,${expected}`);
    const verified = await verifyWebhook(secret, first.headers, first.body);
    expect(verified).toEqual({ id: first.headers["webhook-id"], timestamp: new Date(Number(timestamp) * 1000), event: sent[0] });
    // Another secret, a changed body, an old or missing timestamp: refused.
    const other = (await t.api.webhooks.create.mutate({ url: r.url, types: ["nothing.here"] })).secret;
    await expect(verifyWebhook(other, first.headers, first.body)).rejects.toThrow(WebhookVerificationError);
    await expect(verifyWebhook(secret, first.headers, first.body.replace('"n":1', '"n":2'))).rejects.toThrow(/no webhook-signature matches/);
    await expect(verifyWebhook(secret, first.headers, first.body, { now: () => Date.now() + 10 * 60_000 })).rejects.toThrow(/more than 300000 ms from now/);
    await expect(verifyWebhook(secret, { "webhook-id": "x" }, first.body)).rejects.toThrow(/missing webhook-id, webhook-timestamp or webhook-signature/);
    // Header names in any case, in a plain object too.
    const upper = Object.fromEntries(Object.entries(first.headers).map(([name, value]) => [name.replace(/(^|-)w/g, (m) => m.toUpperCase()), value]));
    expect((await verifyWebhook(secret, upper, first.body)).event.seq).toBe(sent[0]!.seq);
    await expect(verifyWebhook("whsec_***", first.headers, first.body)).rejects.toThrow(WebhookVerificationError);
    // A fetch Headers and bytes do as well as node's headers and text.
    const asHeaders = new Headers(Object.entries(first.headers).map(([name, value]) => [name, String(value)]));
    expect((await verifyWebhook([other, secret], asHeaders, new TextEncoder().encode(first.body))).event.seq).toBe(sent[0]!.seq);

    await vi.waitFor(async () => expect((await t.api.webhooks.get.query({ id: webhook.id })).delivered).toBe(3), { timeout: 20_000 });
    const after = await t.api.webhooks.get.query({ id: webhook.id });
    expect(after).toMatchObject({ delivered: 3, failures: 0, lastStatus: 200, lastError: null, lastDeliveredAt: expect.any(Date) });
    expect(after.cursor).toBeGreaterThanOrEqual(sent[2]!.seq);
    expect(JSON.stringify(await t.api.webhooks.list.query())).not.toContain(secret);
    expect(r.received).toHaveLength(3);
  });

  it("fromSeq delivers the retained events after it first; one beyond the head or behind the retained log is refused", async () => {
    const t = await server();
    const r = await receiver();
    const old = [];
    for (let i = 0; i < 3; i++) old.push(await t.api.events.publish.mutate({ type: "job.done", source: "x", payload: { i } }));
    const { webhook } = await t.api.webhooks.create.mutate({ url: r.url, types: ["job.*"], fromSeq: old[0]!.seq });
    expect(webhook.cursor).toBe(old[0]!.seq);
    const fresh = await t.api.events.publish.mutate({ type: "job.done", source: "x", payload: { i: 3 } });
    expect(arrivals(await r.waitFor(3))).toEqual([...old.slice(1), fresh].map((event) => [event.type, event.seq]));
    const beyond = await rest(t.url, "POST", "/webhooks", { url: r.url, types: ["*"], fromSeq: fresh.seq + 100 });
    expect(beyond.status).toBe(400);
    const head = (await t.api.events.list.query({ afterSeq: 0, limit: 1000 })).at(-1)!.seq;
    expect(beyond.body).toMatchObject({ code: "INVALID_INPUT", message: `fromSeq: ${fresh.seq + 100} is beyond the newest event (${head})` });
  });

  it("bad input is a 400 naming the field: URLs it cannot send to, patterns, unknown fields", async () => {
    const t = await server();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ url: "ftp://example.com/x", types: ["*"] }, "url: must be an http or https URL, not ftp:"],
      [{ url: "not a url", types: ["*"] }, "url: must be an absolute URL (http://… or https://…)"],
      [{ url: "http://user:pw@127.0.0.1/x", types: ["*"] }, "url: must not carry a user name or password"],
      [{ url: "http://127.0.0.1/x#frag", types: ["*"] }, "url: must not have a fragment"],
      [{ url: "http://127.0.0.1/x", types: [] }, "types"],
      [{ url: "http://127.0.0.1/x", types: ["bad pattern"] }, "types[0]: must be an exact type, prefix.* or *"],
      [{ url: "http://127.0.0.1/x", types: ["*"], secret: "mine" }, "secret"],
      [{ url: "http://127.0.0.1:0/x", types: ["*"] }, "url: must not name port 0"],
      [{ url: "http://127.0.0.1/a b", types: ["*"] }, "url: must not hold spaces or other whitespace"],
      // fetch refuses these ports (the Fetch standard's blocked ports): every delivery would fail with "bad port".
      [{ url: "http://127.0.0.1:6667/x", types: ["*"] }, "url: must not name port 6667: fetch never sends there"],
      [{ url: "https://127.0.0.1:25/x", types: ["*"] }, "url: must not name port 25: fetch never sends there"],
      [{ url: "http://127.0.0.1:9/x", types: ["*"] }, "url: must not name port 9: fetch never sends there"],
      // Parsed as http://hooks/coordination: a host taken from what was written as the path.
      [{ url: "http:///hooks/coordination", types: ["*"] }, "url: must be written http://HOST/… with the host right after the two slashes (as written it would send to hooks)"],
      [{ url: "https:/127.0.0.1/x", types: ["*"] }, "url: must be written https://HOST/…"],
      [{ url: "http:127.0.0.1/x", types: ["*"] }, "url: must be written http://HOST/…"],
      // Whitespace around it (a pasted URL): said as such, not as a host "not right after the two slashes".
      [{ url: " http://127.0.0.1/x", types: ["*"] }, "url: must not hold spaces or other whitespace"],
      [{ url: "\thttp://127.0.0.1/x", types: ["*"] }, "url: must not hold spaces or other whitespace"],
    ];
    for (const [body, message] of cases) {
      const answer = await rest(t.url, "POST", "/webhooks", body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.code).toBe("INVALID_INPUT");
      expect(answer.body.message).toContain(message);
    }
    expect(await rest(t.url, "GET", "/webhooks/nope")).toMatchObject({ status: 404, body: { code: "WEBHOOK_NOT_FOUND", message: 'webhook "nope" not found' } });
    expect(await rest(t.url, "PATCH", "/webhooks/nope", { enabled: false })).toMatchObject({ status: 404, body: { code: "WEBHOOK_NOT_FOUND" } });
    expect(await rest(t.url, "DELETE", "/webhooks/nope")).toEqual({ status: 200, body: { removed: false } });
    const { webhook } = await t.api.webhooks.create.mutate({ url: "http://127.0.0.1:2/x", types: ["never"] });
    expect(await rest(t.url, "PATCH", `/webhooks/${webhook.id}`, {})).toMatchObject({ status: 400, body: { message: "names nothing to change: give url, types, description, enabled or cursor" } });
    expect(await rest(t.url, "PATCH", `/webhooks/${webhook.id}`, { reason: "x", description: "d" })).toMatchObject({ status: 400, body: { message: "reason: goes with enabled false (it is why the webhook is disabled)" } });
    await t.api.webhooks.remove.mutate({ id: webhook.id });
    expect((await t.api.webhooks.list.query()).webhooks).toEqual([]);
  });

  it("a failed attempt is tried again with backoff, the same event first: none overtakes another", async () => {
    const t = await server({ webhookMaxBackoffMs: 50 });
    const r = await receiver();
    let refusals = 3;
    r.answer = (response) => {
      if (refusals-- > 0) response.writeHead(500).end("model provider down");
      else response.writeHead(204).end();
    };
    const { webhook } = await t.api.webhooks.create.mutate({ url: r.url, types: ["step.*"] });
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await t.api.events.publish.mutate({ type: "step.done", source: "x", payload: { i } }));
    const got = await r.waitFor(6);
    // Three refusals of the first event, then each event once, in order.
    expect(arrivals(got)).toEqual([sent[0], sent[0], sent[0], ...sent].map((event) => [event!.type, event!.seq]));
    // Every attempt of one event carries its one id.
    expect(new Set(got.slice(0, 4).map((one) => one.headers["webhook-id"])).size).toBe(1);
    await vi.waitFor(async () => expect((await t.api.webhooks.get.query({ id: webhook.id })).delivered).toBe(3), { timeout: 20_000 });
    expect(await t.api.webhooks.get.query({ id: webhook.id })).toMatchObject({ failures: 0, failingSince: null, lastError: null, lastStatus: 204 });
    const recovered = (await webhookEvents(t)).filter(([type]) => type === "webhook.recovered");
    expect(recovered).toEqual([["webhook.recovered", { webhookId: webhook.id, seq: sent[0]!.seq, failedAttempts: 3, failingSince: expect.any(String) }]]);
  });

  it("records why an attempt failed: an error status, a redirect (not followed), no answer in time, a refused connection", async () => {
    const t = await server({ webhookMaxBackoffMs: 60_000, webhookTimeoutMs: 300 });
    const r = await receiver();
    const failure = async (answer: WebhookReceiver["answer"], url = r.url) => {
      r.answer = answer;
      const { webhook } = await t.api.webhooks.create.mutate({ url, types: ["probe"] });
      await t.api.events.publish.mutate({ type: "probe", source: "x" });
      return vi.waitFor(
        async () => {
          const now = await t.api.webhooks.get.query({ id: webhook.id });
          if (now.failures === 0) throw new Error("no failure yet");
          await t.api.webhooks.remove.mutate({ id: webhook.id });
          return now;
        },
        { timeout: 20_000, interval: 20 },
      );
    };
    expect(await failure(503)).toMatchObject({ failures: 1, lastStatus: 503, lastError: "HTTP 503: refused with 503", delivered: 0, failingSince: expect.any(Date) });
    // Its answer's first 200 characters: an emoji across the cut is left out whole, not halved (a
    // lone surrogate came back from the database as three replacement characters).
    const emojiAtTheCut = await failure((response) => response.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end(`${"a".repeat(199)}😀 and more`));
    expect(emojiAtTheCut).toMatchObject({ lastStatus: 500, lastError: `HTTP 500: ${"a".repeat(199)}` });
    // Where it pointed, by its origin alone: a redirect's path and query may carry the receiver's secret.
    const redirected = await failure((response) => response.writeHead(308, { location: "https://127.0.0.1:1/hooks?token=receiver-secret" }).end());
    expect(redirected).toMatchObject({ lastStatus: 308, lastError: "HTTP 308: redirected to https://127.0.0.1:1/… (path not shown), not followed (give the webhook its final URL)" });
    const hung = await failure(() => undefined);
    expect(hung).toMatchObject({ lastStatus: null, lastError: "no answer within webhookTimeoutMs (300 ms)" });
    // The retry waits its backoff (1 s, within 20%) from the failure.
    expect(hung.nextAttemptAt.getTime() - hung.lastAttemptAt!.getTime()).toBeGreaterThanOrEqual(800 - 1);
    const closed = await receiver();
    const closedUrl = closed.url;
    await closed.close();
    const refused = await failure(200, closedUrl);
    expect(refused).toMatchObject({ lastStatus: null, lastError: expect.stringMatching(/^no answer: .*ECONNREFUSED/) });
  });

  it("a webhook failing for webhookDisableAfterMs is disabled; enabled again, it goes on from the event it stopped at", async () => {
    const t = await server({ webhookMaxBackoffMs: 20, webhookDisableAfterMs: 300 });
    const r = await receiver();
    r.answer = 500;
    const { webhook } = await t.api.webhooks.create.mutate({ url: r.url, types: ["order.*"] });
    const first = await t.api.events.publish.mutate({ type: "order.placed", source: "shop" });
    await vi.waitFor(async () => expect((await t.api.webhooks.get.query({ id: webhook.id })).enabled).toBe(false), { timeout: 20_000, interval: 50 });
    const disabled = await t.api.webhooks.get.query({ id: webhook.id });
    expect(disabled.disabledReason).toMatch(new RegExp(`^failing since .* \\(\\d+ attempts on event ${first.seq}\\): HTTP 500: refused with 500$`));
    expect(disabled.cursor).toBe(webhook.cursor);
    expect(webhook.cursor).toBe(first.seq - 1);
    const attempts = r.received.length;
    const second = await t.api.events.publish.mutate({ type: "order.paid", source: "shop" });
    // Disabled, it sends nothing (the job looks every leaseSweepMs: give it a few).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(r.received).toHaveLength(attempts);
    expect((await webhookEvents(t)).find(([type]) => type === "webhook.disabled")).toEqual([
      "webhook.disabled",
      // The receiver's answer stays out of the event (any reader sees events): its disabledReason has it, for an admin.
      { webhookId: webhook.id, reason: disabled.disabledReason!.replace(": HTTP 500: refused with 500", ""), by: null, cursor: webhook.cursor, failed: true },
    ]);

    r.answer = 200;
    const enabled = await t.api.webhooks.update.mutate({ id: webhook.id, enabled: true });
    expect(enabled).toMatchObject({ enabled: true, disabledReason: null, failures: 0, failingSince: null });
    const got = await r.waitFor(attempts + 2);
    expect(arrivals(got.slice(attempts))).toEqual([
      ["order.placed", first.seq],
      ["order.paid", second.seq],
    ]);
    // An operator's disable, with a reason.
    const off = await t.api.webhooks.update.mutate({ id: webhook.id, enabled: false, reason: "receiver migrating" });
    expect(off).toMatchObject({ enabled: false, disabledReason: "receiver migrating" });
    // Its cursor: past the last event delivered, at the head of the log when nothing after it matched.
    expect(off.cursor).toBeGreaterThanOrEqual(second.seq);
    expect((await webhookEvents(t)).filter(([type]) => type === "webhook.disabled").at(-1)).toEqual(["webhook.disabled", { webhookId: webhook.id, reason: "receiver migrating", by: null, cursor: off.cursor }]);
    // Disabled already, a new reason replaces the old one (the answer said ok and kept the old); the same one changes nothing.
    const disabledEvents = async () => (await webhookEvents(t)).filter(([type]) => type === "webhook.disabled").length;
    const before = await disabledEvents();
    expect(await t.api.webhooks.update.mutate({ id: webhook.id, enabled: false, reason: "receiver retired" })).toMatchObject({ enabled: false, disabledReason: "receiver retired" });
    expect(await t.api.webhooks.update.mutate({ id: webhook.id, enabled: false, reason: "receiver retired" })).toMatchObject({ disabledReason: "receiver retired" });
    expect(await disabledEvents()).toBe(before + 1);
  });

  it("a rotation within an earlier one's grace keeps that old secret signing until its own grace ends; at most 8 old secrets sign at once", async () => {
    const t = await server();
    const r = await receiver();
    const { webhook, secret: first } = await t.api.webhooks.create.mutate({ url: r.url, types: ["a.*"] });
    const signatures = (received: Received) => String(received.headers["webhook-signature"]).split(" ").length;
    const second = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 3_600_000 });
    // Half an hour: it must still sign at the checks below however slow the machine (a minute
    // could end before the eighth rotation on a busy one, and that check would fail).
    const third = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 1_800_000 });
    // When the last old one stops: the first old secret's hour, not the second's half hour.
    expect(third.webhook.previousSecretUntil).toEqual(second.webhook.previousSecretUntil);
    await t.api.events.publish.mutate({ type: "a.one", source: "x" });
    const [one] = await r.waitFor(1);
    // The second rotation dropped the first old secret: a receiver still on it, within the hour
    // it was promised, failed every request.
    expect(signatures(one!)).toBe(3);
    for (const secret of [first, second.secret, third.secret]) expect((await verifyWebhook(secret, one!.headers, one!.body)).event.type).toBe("a.one");

    // A grace that ended: that old secret signs no more; the earlier ones still do.
    const fourth = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 1 });
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(fourth.webhook.updatedAt.getTime() + 1), { timeout: 10_000 });
    await t.api.events.publish.mutate({ type: "a.two", source: "x" });
    const [, two] = await r.waitFor(2);
    expect(signatures(two!)).toBe(3);
    await expect(verifyWebhook(third.secret, two!.headers, two!.body)).rejects.toThrow(WebhookVerificationError);
    for (const secret of [first, second.secret, fourth.secret]) expect((await verifyWebhook(secret, two!.headers, two!.body)).event.type).toBe("a.two");

    // Two sign now (first, second); six more rotations with a grace make eight, the most.
    for (let i = 0; i < 6; i++) await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 3_600_000 });
    const refused = await rest(t.url, "POST", `/webhooks/${webhook.id}/rotate-secret`, { graceMs: 60_000 });
    expect(refused).toMatchObject({ status: 409, body: { code: "INVALID_STATE" } });
    expect(refused.body.message).toMatch(/^8 secrets of earlier rotations still sign this webhook's requests, the most it keeps: rotate with graceMs 0 \(every old secret stops at once\) or after \S+Z, when the first one's grace ends$/);
    // No grace (a leak): every old secret stops at once.
    const leaked = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 0 });
    expect(leaked.webhook.previousSecretUntil).toBeNull();
    await t.api.events.publish.mutate({ type: "a.three", source: "x" });
    const [, , three] = await r.waitFor(3);
    expect(signatures(three!)).toBe(1);
    expect((await verifyWebhook(leaked.secret, three!.headers, three!.body)).event.type).toBe("a.three");
  });

  it("an old secret stops signing when its grace ends, even within a delivery that began before", async () => {
    const t = await server({ webhookTimeoutMs: 60_000 });
    const r = await receiver();
    const { webhook, secret: old } = await t.api.webhooks.create.mutate({ url: r.url, types: ["a.*"] });
    // The first request is held open past the grace's end: the same turn sends the next ones after it.
    let held: ServerResponse | undefined;
    r.answer = (response) => {
      held = response;
    };
    // Disabled while they are published, the three go in one turn once it is enabled.
    await t.api.webhooks.update.mutate({ id: webhook.id, enabled: false });
    const rotated = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 3000 });
    const graceEnds = rotated.webhook.previousSecretUntil!.getTime();
    for (const n of [1, 2, 3]) await t.api.events.publish.mutate({ type: `a.n${n}`, source: "x" });
    await t.api.webhooks.update.mutate({ id: webhook.id, enabled: true });
    await r.waitFor(1);
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(graceEnds), { timeout: 10_000 });
    r.answer = 200;
    held!.writeHead(200).end("ok");
    const [, two, three] = await r.waitFor(3);
    for (const later of [two!, three!]) {
      expect(String(later.headers["webhook-signature"]).split(" ")).toHaveLength(1);
      await expect(verifyWebhook(old, later.headers, later.body)).rejects.toThrow(WebhookVerificationError);
      await verifyWebhook(rotated.secret, later.headers, later.body);
    }
  });

  it("an older server on the file (one column for the old secret) and this one sign with each other's old secrets through their grace", async () => {
    const t = await server();
    const r = await receiver();
    const { webhook, secret: first } = await t.api.webhooks.create.mutate({ url: r.url, types: ["a.*"] });
    const legacy = () => withDatabase(t, (db) => db.prepare(`SELECT previousSecret, previousSecretUntil FROM webhooks WHERE id = ?`).get(webhook.id));
    // This version's rotation keeps the columns an older server reads: it signs with the old secret too.
    const second = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 3_600_000 });
    expect(legacy()).toEqual({ previousSecret: first, previousSecretUntil: second.webhook.previousSecretUntil!.getTime() });

    // An older server's rotation, as that version writes it: its old secret into the one column,
    // the list it does not know left as it was.
    const olderRotates = (secret: string, previousSecret: string | null, until: number | null) =>
      withDatabase(t, (db) =>
        db.prepare(`UPDATE webhooks SET secret = ?, previousSecret = ?, previousSecretUntil = ?, updatedAt = ?, turnOwner = NULL WHERE id = ?`).run(secret, previousSecret, until, Date.now(), webhook.id),
      );
    const third = "whsec_" + Buffer.alloc(24, 3).toString("base64");
    const thirdUntil = Date.now() + 2 * 3_600_000;
    olderRotates(third, second.secret, thirdUntil);
    expect((await t.api.webhooks.get.query({ id: webhook.id })).previousSecretUntil).toEqual(new Date(thirdUntil));
    await t.api.events.publish.mutate({ type: "a.one", source: "x" });
    const [one] = await r.waitFor(1);
    expect(String(one!.headers["webhook-signature"]).split(" ")).toHaveLength(3);
    for (const secret of [first, second.secret, third]) expect((await verifyWebhook(secret, one!.headers, one!.body)).event.type).toBe("a.one");
    // This version's next rotation keeps the older server's old secret in its list.
    const fourth = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 3_600_000 });
    await t.api.events.publish.mutate({ type: "a.two", source: "x" });
    const [, two] = await r.waitFor(2);
    expect(String(two!.headers["webhook-signature"]).split(" ")).toHaveLength(4);
    for (const secret of [first, second.secret, third, fourth.secret]) expect((await verifyWebhook(secret, two!.headers, two!.body)).event.type).toBe("a.two");

    // The older server's rotation with no grace (a leak) stops every old secret, here too.
    const fifth = "whsec_" + Buffer.alloc(24, 5).toString("base64");
    olderRotates(fifth, null, null);
    expect((await t.api.webhooks.get.query({ id: webhook.id })).previousSecretUntil).toBeNull();
    await t.api.events.publish.mutate({ type: "a.three", source: "x" });
    const [, , three] = await r.waitFor(3);
    expect(String(three!.headers["webhook-signature"]).split(" ")).toHaveLength(1);
    expect((await verifyWebhook(fifth, three!.headers, three!.body)).event.type).toBe("a.three");
    // And this version's: nothing old left for an older server to sign with.
    await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 3_600_000 });
    await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 0 });
    expect(legacy()).toEqual({ previousSecret: null, previousSecretUntil: null });
  });

  it("update changes where and what it sends from its cursor on; rotateSecret signs with both secrets through the grace; remove stops it", async () => {
    const t = await server();
    const a = await receiver();
    const b = await receiver();
    const { webhook, secret } = await t.api.webhooks.create.mutate({ url: a.url, types: ["a.*"] });
    const one = await t.api.events.publish.mutate({ type: "a.one", source: "x" });
    await a.waitFor(1);
    const updated = await t.api.webhooks.update.mutate({ id: webhook.id, url: b.url, types: ["b.*"], description: "moved" });
    expect(updated).toMatchObject({ url: b.url, types: ["b.*"], description: "moved" });
    await t.api.events.publish.mutate({ type: "a.two", source: "x" });
    const two = await t.api.events.publish.mutate({ type: "b.two", source: "x" });
    expect(arrivals(await b.waitFor(1))).toEqual([["b.two", two.seq]]);
    expect(arrivals(a.received)).toEqual([["a.one", one.seq]]);
    expect((await t.api.webhooks.update.mutate({ id: webhook.id, description: null })).description).toBeNull();

    // An hour: the old secret must still sign at the delivery below however slow the machine.
    const rotated = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 3_600_000 });
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.webhook.previousSecretUntil).toEqual(new Date(rotated.webhook.updatedAt.getTime() + 3_600_000));
    await t.api.events.publish.mutate({ type: "b.three", source: "x" });
    const [, three] = await b.waitFor(2);
    expect(String(three!.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    expect((await verifyWebhook(rotated.secret, three!.headers, three!.body)).event.type).toBe("b.three");
    expect((await verifyWebhook(secret, three!.headers, three!.body)).event.type).toBe("b.three");
    // No grace: the old secret stops at once.
    const again = await t.api.webhooks.rotateSecret.mutate({ id: webhook.id, graceMs: 0 });
    expect(again.webhook.previousSecretUntil).toBeNull();
    await t.api.events.publish.mutate({ type: "b.four", source: "x" });
    const [, , four] = await b.waitFor(3);
    expect(String(four!.headers["webhook-signature"]).split(" ")).toHaveLength(1);
    await expect(verifyWebhook(rotated.secret, four!.headers, four!.body)).rejects.toThrow(WebhookVerificationError);
    expect((await verifyWebhook(again.secret, four!.headers, four!.body)).event.type).toBe("b.four");

    expect(await t.api.webhooks.remove.mutate({ id: webhook.id })).toEqual({ removed: true });
    await t.api.events.publish.mutate({ type: "b.five", source: "x" });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(b.received).toHaveLength(3);
    expect((await webhookEvents(t)).map(([type]) => type)).toEqual(["webhook.created", "webhook.updated", "webhook.updated", "webhook.secret_rotated", "webhook.secret_rotated", "webhook.removed"]);
    // A rotation is in the log (never its secrets): when the old ones stop, by whom.
    expect((await webhookEvents(t)).filter(([type]) => type === "webhook.secret_rotated").map(([, payload]) => payload)).toEqual([
      { webhookId: webhook.id, previousSecretUntil: rotated.webhook.previousSecretUntil!.toISOString(), by: null },
      { webhookId: webhook.id, previousSecretUntil: null, by: null },
    ]);
  });

  it("two servers on one file deliver each event once, in order: one holds a webhook's turn at a time", async () => {
    const dir = makeTempDir();
    const one = await server({}, dir);
    const two = await server({}, dir);
    const r = await receiver();
    await one.api.webhooks.create.mutate({ url: r.url, types: ["tick"] });
    const sent = [];
    for (let i = 0; i < 40; i++) sent.push(await (i % 2 === 0 ? one : two).api.events.publish.mutate({ type: "tick", source: "x", payload: { i } }));
    await r.waitFor(40);
    // Both servers look every second and at each event; give them time to send a duplicate if they would.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(arrivals(r.received)).toEqual(sent.map((event) => ["tick", event.seq]));
  });

  it("a server stopped mid-delivery leaves the event to the next: it arrives after the restart, with the same id", async () => {
    const dir = makeTempDir();
    const first = await server({ webhookTimeoutMs: 60_000 }, dir);
    const r = await receiver();
    r.answer = () => undefined; // hangs: the server is stopped while it waits
    await first.api.webhooks.create.mutate({ url: r.url, types: ["tick"] });
    const event = await first.api.events.publish.mutate({ type: "tick", source: "x" });
    const [hung] = await r.waitFor(1);
    await first.stop();
    servers.splice(servers.indexOf(first), 1);
    // The stop abandoned the request: not the receiver's failure, and its turn given up for the next server at once.
    expect(withDatabase(first, (db) => db.prepare("SELECT failures, lastError, turnOwner, turnUntil FROM webhooks").get())).toEqual({ failures: 0, lastError: null, turnOwner: null, turnUntil: null });
    r.answer = 200;
    await server({}, dir);
    const [, again] = await r.waitFor(2);
    expect(again!.headers["webhook-id"]).toBe(hung!.headers["webhook-id"]);
    expect(JSON.parse(again!.body).seq).toBe(event.seq);
  });

  it("only an admin may manage webhooks; nobody may publish webhook.* events but the server", async () => {
    secure = await startSecureServer();
    const r = await receiver();
    const agent = await secure.issue("agent", "worker-1");
    const reader = await secure.issue("read");
    for (const token of [agent, reader]) {
      expect((await http(secure.url, "POST", "/webhooks", { token, body: { url: r.url, types: ["*"] } })).status).toBe(403);
      expect((await http(secure.url, "GET", "/webhooks", { token })).status).toBe(403);
    }
    const created = await http(secure.url, "POST", "/webhooks", { token: ADMIN_SECRET, body: { url: r.url, types: ["*"] } });
    expect(created.status).toBe(200);
    expect(created.body.webhook.createdBy).toBe("config:adminToken");
    // A rotation says which credential made it.
    const rotated = await http(secure.url, "POST", `/webhooks/${created.body.webhook.id}/rotate-secret`, { token: ADMIN_SECRET, body: {} });
    expect(rotated.status).toBe(200);
    const log = await http(secure.url, "GET", "/events?types=webhook.secret_rotated", { token: ADMIN_SECRET });
    expect(log.body).toMatchObject([{ type: "webhook.secret_rotated", payload: { webhookId: created.body.webhook.id, previousSecretUntil: rotated.body.webhook.previousSecretUntil, by: "config:adminToken" } }]);
    expect(JSON.stringify(log.body)).not.toContain("whsec_");
    expect((await http(secure.url, "GET", `/webhooks/${created.body.webhook.id}`, { token: agent })).status).toBe(403);
    const forged = await http(secure.url, "POST", "/events", { token: agent, body: { type: "webhook.disabled", source: "worker-1", payload: {} } });
    expect(forged.status).toBe(403);
    expect(forged.body.message).toContain("webhook.* and kv.* are the server's own events");
  });

  it("the command line adds, shows, disables, enables, rotates and removes webhooks", async () => {
    const t = await server({ webhookMaxBackoffMs: 20 });
    const r = await receiver();
    r.answer = 502;
    const env = { COORDINATION_URL: t.url };
    const added = await runOperator({ args: ["webhooks", "add", r.url, "--types", "deploy.*, alert", "--description", "ops channel", "--json"], env });
    expect(added.code).toBe(0);
    const { webhook, secret } = JSON.parse(added.stdout) as { webhook: { id: string }; secret: string };
    expect(secret).toMatch(/^whsec_/);
    const text = await runOperator({ args: ["webhooks", "add", r.url, "--types", "*"], env });
    expect(text.stdout).toMatch(/^webhook \S+: http:\/\/127\.0\.0\.1:\d+\/hooks\/coordination\n  types: \*\n  delivering; 0 delivered, at seq \d+\n  signing secret \(shown once, keep it\): whsec_\S+\n$/);
    await runOperator({ args: ["webhooks", "remove", text.stdout.split(/[ :]/)[1]!], env });
    await t.api.events.publish.mutate({ type: "deploy.started", source: "cd" });
    await vi.waitFor(async () => expect((await t.api.webhooks.get.query({ id: webhook.id })).failures).toBeGreaterThan(0), { timeout: 20_000 });
    const got = await runOperator({ args: ["webhooks", "get", webhook.id], env });
    expect(got.stdout).toMatch(new RegExp(`^webhook ${webhook.id}: ${r.url.replaceAll(".", "\\.")}\n  types: deploy\\.\\*, alert; ops channel\n  failing: \\d+ attempts since .*Z, next .*Z; 0 delivered, at seq \\d+\n  last error: HTTP 502: refused with 502\n$`));
    const listed = await runOperator({ args: ["webhooks"], env });
    expect(listed.stdout.split("\n")[0]).toMatch(/^ID\s+URL\s+TYPES\s+STATE\s+DELIVERED\s+AT SEQ\s+LAST ERROR$/);
    expect(listed.stdout).toContain("HTTP 502: refused with 502");
    const disabled = await runOperator({ args: ["webhooks", "disable", webhook.id, "--reason", "receiver down"], env });
    expect(disabled.stdout).toContain("  disabled: receiver down; 0 delivered");
    r.answer = 200;
    expect((await runOperator({ args: ["webhooks", "enable", webhook.id], env })).stdout).toContain("\n  delivering; 0 delivered");
    await vi.waitFor(async () => expect((await t.api.webhooks.get.query({ id: webhook.id })).delivered).toBe(1), { timeout: 20_000 });
    const rotated = await runOperator({ args: ["webhooks", "rotate-secret", webhook.id, "--grace", "1h"], env });
    expect(rotated.stdout).toMatch(new RegExp(`^webhook ${webhook.id}: new signing secret \\(shown once, keep it\\): whsec_\\S+\n  old secrets sign too, the last until .*Z\n$`));
    expect(await runOperator({ args: ["webhooks", "remove", webhook.id], env })).toMatchObject({ code: 0, stdout: `webhook ${webhook.id} removed\n` });
    expect(await runOperator({ args: ["webhooks", "remove", webhook.id], env })).toMatchObject({ code: 0, stdout: `no webhook ${webhook.id}: nothing changed\n` });
    expect(await runOperator({ args: ["webhooks", "get", webhook.id], env })).toMatchObject({ code: 1 });
    const noTypes = await runOperator({ args: ["webhooks", "add", r.url], env });
    expect([noTypes.code, noTypes.stderr.split("\n")[0]]).toEqual([2, "coordination: webhooks add needs --types: the events to send, such as 'task.dead_lettered,build.*' or '*'"]);
    expect((await runOperator({ args: ["webhooks", "disable", webhook.id, "--grace", "1h"], env })).code).toBe(2);
  });

  it("a new URL, or enable on a failing webhook, is tried at once, its failures forgotten", async () => {
    const t = await server({ webhookMaxBackoffMs: 600_000 });
    const down = await receiver();
    const up = await receiver();
    down.answer = 500;
    const { webhook } = await t.api.webhooks.create.mutate({ url: down.url, types: ["ping"] });
    const ping = await t.api.events.publish.mutate({ type: "ping", source: "x" });
    await down.waitFor(1);
    // Its backoff now runs about a second: a second failure would put it at two, and so on (here, up to ten minutes).
    await vi.waitFor(async () => expect((await t.api.webhooks.get.query({ id: webhook.id })).failures).toBe(1), { timeout: 20_000 });
    const moved = await t.api.webhooks.update.mutate({ id: webhook.id, url: up.url });
    expect(moved).toMatchObject({ failures: 0, failingSince: null });
    expect(arrivals(await up.waitFor(1))).toEqual([["ping", ping.seq]]);
  });

  it("fromSeq 0 is every retained event, however much of the log was pruned", async () => {
    const t = await server({ eventRetentionCount: 3 });
    const r = await receiver();
    const sent = [];
    for (let i = 0; i < 6; i++) sent.push(await t.api.events.publish.mutate({ type: "old", source: "x", payload: { i } }));
    await t.server.services.jobs.eventPruner.runNow();
    const retained = (await t.api.events.list.query({ afterSeq: 0, limit: 100 })).map((event) => event.seq);
    expect(retained).toEqual(sent.slice(3).map((event) => event.seq));
    const { webhook } = await t.api.webhooks.create.mutate({ url: r.url, types: ["old"], fromSeq: 0 });
    expect(webhook.cursor).toBe(sent[2]!.seq);
    expect(arrivals(await r.waitFor(3))).toEqual(sent.slice(3).map((event) => ["old", event.seq]));
    expect((await t.api.webhooks.get.query({ id: webhook.id })).gaps).toBe(0);
    const behind = await rest(t.url, "POST", "/webhooks", { url: r.url, types: ["old"], fromSeq: 1 });
    expect([behind.status, behind.body.code]).toEqual([412, "EVENTS_PRUNED"]);
  });

  it("an operator's change mid-delivery, with two servers on one file: no other server sends while the old request is open", async () => {
    const dir = makeTempDir();
    const one = await server({ webhookTimeoutMs: 60_000 }, dir);
    const two = await server({ webhookTimeoutMs: 60_000 }, dir);
    const r = await receiver();
    let open = 0;
    let mostOpen = 0;
    const held: Array<() => void> = [];
    r.answer = (response) => {
      mostOpen = Math.max(mostOpen, ++open);
      // The first request hangs until the test lets it go; the rest answer at once.
      const finish = () => {
        open--;
        response.writeHead(200).end();
      };
      if (r.received.length === 1) held.push(finish);
      else finish();
    };
    const { webhook } = await one.api.webhooks.create.mutate({ url: r.url, types: ["tick"] });
    const first = await one.api.events.publish.mutate({ type: "tick", source: "x" });
    await r.waitFor(1);
    // Changed while the first request is open: the other server must not take the webhook meanwhile.
    await two.api.webhooks.update.mutate({ id: webhook.id, types: ["tick", "tock"] });
    const second = await two.api.events.publish.mutate({ type: "tick", source: "x" });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(r.received).toHaveLength(1);
    held.shift()!();
    await vi.waitFor(async () => expect((await one.api.webhooks.get.query({ id: webhook.id })).cursor).toBeGreaterThanOrEqual(second.seq), { timeout: 20_000 });
    // The first event again (its delivery was not recorded: the change ended that turn), then the second, one at a time.
    expect(arrivals(r.received)).toEqual([
      ["tick", first.seq],
      ["tick", first.seq],
      ["tick", second.seq],
    ]);
    expect(mostOpen).toBe(1);
  });

  it("disabling a webhook abandons its request under way at once, not at webhookTimeoutMs", async () => {
    const t = await server({ webhookTimeoutMs: 60_000 });
    const r = await receiver();
    let closedAt = 0;
    r.answer = (response) => response.on("close", () => (closedAt = Date.now()));
    const { webhook } = await t.api.webhooks.create.mutate({ url: r.url, types: ["slow"] });
    await t.api.events.publish.mutate({ type: "slow", source: "x" });
    await r.waitFor(1);
    const disabledAt = Date.now();
    await t.api.webhooks.update.mutate({ id: webhook.id, enabled: false });
    await vi.waitFor(() => expect(closedAt).toBeGreaterThan(0), { timeout: 20_000 });
    // Well before the 60 s the receiver had to answer: the change aborted it.
    expect(closedAt - disabledAt).toBeLessThan(30_000);
    expect(await t.api.webhooks.get.query({ id: webhook.id })).toMatchObject({ enabled: false, failures: 0, lastError: null, delivered: 0 });
  });

  it("a change of nothing, or of the description alone, leaves a delivery under way alone; new types on a caught-up webhook start at the head", async () => {
    const t = await server({ webhookTimeoutMs: 60_000 });
    const r = await receiver();
    const held: Array<() => void> = [];
    r.answer = (response) => void held.push(() => response.writeHead(200).end());
    const { webhook } = await t.api.webhooks.create.mutate({ url: r.url, types: ["tick"] });
    const tick = await t.api.events.publish.mutate({ type: "tick", source: "x" });
    await r.waitFor(1);
    const same = await t.api.webhooks.update.mutate({ id: webhook.id, enabled: true, url: r.url, types: ["tick"] });
    expect(same.updatedAt).toEqual(webhook.updatedAt);
    await t.api.webhooks.update.mutate({ id: webhook.id, description: "ticks" });
    held.shift()!();
    await vi.waitFor(async () => expect((await t.api.webhooks.get.query({ id: webhook.id })).delivered).toBe(1), { timeout: 20_000 });
    expect(arrivals(r.received)).toEqual([["tick", tick.seq]]);
    // Events it never matched pile up behind its cursor; given their type now, it does not replay them.
    r.answer = 200;
    for (let i = 0; i < 5; i++) await t.api.events.publish.mutate({ type: "tock", source: "x" });
    await t.api.webhooks.update.mutate({ id: webhook.id, types: ["tick", "tock"] });
    const tock = await t.api.events.publish.mutate({ type: "tock", source: "x" });
    await r.waitFor(2);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(arrivals(r.received)).toEqual([
      ["tick", tick.seq],
      ["tock", tock.seq],
    ]);
  });

  it("keeps each type pattern once; the same patterns in another order, or one given twice, are no change", async () => {
    const t = await server();
    const { webhook } = await t.api.webhooks.create.mutate({ url: (await receiver()).url, types: ["task.*", "agent.*", "task.*"] });
    expect(webhook.types).toEqual(["task.*", "agent.*"]);
    const reordered = await t.api.webhooks.update.mutate({ id: webhook.id, types: ["agent.*", "task.*", "agent.*"] });
    expect([reordered.types, reordered.updatedAt]).toEqual([["task.*", "agent.*"], webhook.updatedAt]);
    // A pattern twice on a webhook of an older server (stored as sent) is no change either.
    withDatabase(t, (db) => db.prepare("UPDATE webhooks SET types = ? WHERE id = ?").run(JSON.stringify(["task.*", "task.*", "agent.*"]), webhook.id));
    expect((await t.api.webhooks.update.mutate({ id: webhook.id, types: ["agent.*", "task.*"] })).updatedAt).toEqual(webhook.updatedAt);
    const changed = await t.api.webhooks.update.mutate({ id: webhook.id, types: ["task.*"] });
    expect(changed.types).toEqual(["task.*"]);
    expect((await webhookEvents(t)).map(([type, payload]) => [type, payload.types])).toEqual([
      ["webhook.created", ["task.*", "agent.*"]],
      ["webhook.updated", ["task.*"]],
    ]);
  });
});
