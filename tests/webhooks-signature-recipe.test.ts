// The README's words on a webhook's signature are a recipe a receiver in any language follows by
// hand (no Standard Webhooks library, no verifyWebhook): they must say what the HMAC is keyed
// with, and a signature made as they say must match a real delivery's.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "./helpers/test-server.js";
import { startReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

const README = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8").replace(/\s+/g, " ");

let t: TestServer | undefined;
let r: WebhookReceiver | undefined;
afterEach(async () => {
  await r?.close();
  await t?.stop({ removeFiles: true });
  t = r = undefined;
});

describe("the README's webhook signature recipe", () => {
  it("says the HMAC's key is the secret's base64 after whsec_, decoded, and a signature so made matches", async () => {
    // The secret as answered is "whsec_" and base64: keyed with that text as it is, the HMAC never
    // matches, so the recipe must say how the key is made.
    expect(README).toContain("`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` keyed with the secret's bytes (its base64 after `whsec_`, decoded)");
    t = await startTestServer();
    r = await startReceiver();
    const { secret } = await t.api.webhooks.create.mutate({ url: r.url, types: ["build.*"] });
    await t.api.events.publish.mutate({ type: "build.done", source: "ci", payload: { note: "héllo ✓" } });
    const [got] = await r.waitFor(1);
    const signed = `${String(got!.headers["webhook-id"])}.${String(got!.headers["webhook-timestamp"])}.${got!.body}`;
    const asTheReadmeSays = createHmac("sha256", Buffer.from(secret.slice("whsec_".length), "base64")).update(signed).digest("base64");
    expect(String(got!.headers["webhook-signature"]).split(" ")).toContain(`v1,${asTheReadmeSays}`);
    // The other reading, the secret's text as the key, does not match: why the README says it.
    const withTheText = createHmac("sha256", secret).update(signed).digest("base64");
    expect(String(got!.headers["webhook-signature"]).split(" ")).not.toContain(`v1,${withTheText}`);
  });
});
