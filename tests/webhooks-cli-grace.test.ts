// `coordination webhooks rotate-secret ID --grace 0s`: its help says "0s: stops at once" and its
// refusal says "from 0s to 7d"; the old secret must stop signing at once, as graceMs 0 does.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("webhooks rotate-secret --grace", () => {
  it("takes 0s (and 0): the old secret stops signing at once", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const { webhook } = await t.api.webhooks.create.mutate({ url: "http://127.0.0.1:2/hooks", types: ["never.sent"] });
    // A grace first, so the zero below has an old secret to end.
    expect((await runOperator({ args: ["webhooks", "rotate-secret", webhook.id, "--grace", "1h"], env })).code).toBe(0);
    for (const zero of ["0s", "0"]) {
      const rotated = await runOperator({ args: ["webhooks", "rotate-secret", webhook.id, "--grace", zero], env });
      expect([rotated.code, rotated.stderr]).toEqual([0, ""]);
      expect(rotated.stdout).toMatch(/\n {2}the old one no longer signs\n$/);
      expect((await t.api.webhooks.get.query({ id: webhook.id })).previousSecretUntil).toBeNull();
    }
    // Past the bound, or not a length of time, still a usage error naming the range.
    for (const bad of ["8d", "soon", "-1s"]) {
      const refused = await runOperator({ args: ["webhooks", "rotate-secret", webhook.id, "--grace", bad], env });
      expect([refused.code, refused.stderr.split("\n")[0]]).toEqual([2, `coordination: --grace must be a length of time from 0s to 7d, such as 1h or 24h (got "${bad}")`]);
    }
  });
});
