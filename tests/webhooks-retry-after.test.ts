// A receiver that answers 429 (too many requests) or 503 (down for maintenance) with Retry-After
// says when to come back: asked sooner, it answers the same, and a sender that ignores it adds to
// the load it is shedding. Its wait is taken (up to webhookMaxBackoffMs) when longer than the
// backoff; on any other status the header is no instruction.
import { afterEach, describe, expect, it, vi } from "vitest";
import { retryAfterOf } from "../src/webhooks/webhook-deliverer.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";
import { startReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

let t: TestServer | undefined;
let r: WebhookReceiver | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  await r?.close();
  t = r = undefined;
});

describe("a receiver's Retry-After", () => {
  it("reads delay-seconds and HTTP-dates; anything else is none", () => {
    const now = Date.parse("2026-12-07T06:00:00Z");
    expect(retryAfterOf("120", now)).toBe(120_000);
    expect(retryAfterOf(" 0 ", now)).toBe(0);
    expect(retryAfterOf("Mon, 07 Dec 2026 06:01:30 GMT", now)).toBe(90_000);
    expect(retryAfterOf("Mon, 07 Dec 2026 05:00:00 GMT", now)).toBe(0);
    for (const header of [null, "", "-5", "1.5", "soon", "1e3", "99999999999"]) expect(retryAfterOf(header, now)).toBeUndefined();
  });

  it("on a 429 or 503 the next attempt waits for it, up to webhookMaxBackoffMs; on a 500 it is no instruction", async () => {
    t = await startTestServer({ webhookMaxBackoffMs: 120_000 });
    r = await startReceiver();
    const cases: Array<[status: number, retryAfter: string, atLeastMs: number, underMs: number]> = [
      [429, "30", 30_000, 120_000],
      [503, "3600", 120_000, 180_000],
      [500, "3600", 0, 120_000],
    ];
    for (const [status, retryAfter, atLeastMs, underMs] of cases) {
      r.answer = (response) => response.writeHead(status, { "retry-after": retryAfter }).end("busy");
      const { webhook } = await t.api.webhooks.create.mutate({ url: r.url, types: [`case.${status}`] });
      await t.api.events.publish.mutate({ type: `case.${status}`, source: "s" });
      await vi.waitFor(async () => expect((await t!.api.webhooks.get.query({ id: webhook.id })).failures).toBe(1), { timeout: 20_000, interval: 20 });
      const failed = await t.api.webhooks.get.query({ id: webhook.id });
      const waitMs = failed.nextAttemptAt.getTime() - failed.lastAttemptAt!.getTime();
      expect([status, waitMs >= atLeastMs, waitMs < underMs]).toEqual([status, true, true]);
      expect(failed.lastError).toBe(`HTTP ${status}: busy`);
      await t.api.webhooks.remove.mutate({ id: webhook.id });
    }
  });
});
