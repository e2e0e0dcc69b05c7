// The configured admin token has an id (tokens.whoami names it config:adminToken), and an
// operator who fears it leaked reaches for tokens.revoke with it. That answered 404
// TOKEN_NOT_FOUND (the CLI: no token "config:adminToken") for a token that exists and goes on
// working. It is a 400 naming tokenId and saying what ends it (the setting, and a restart); the
// token keeps working, nothing is written.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runCli } from "./helpers/cli-process.js";
import { refusal } from "./helpers/refusal.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";

const WHY =
  "config:adminToken is the configured admin token (COORDINATION_ADMIN_TOKEN), which no revoke ends: change or clear that setting and restart the server (admin tokens issued with tokens create are revoked by their id)";

let t: SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("revoking the configured admin token", () => {
  it("is a 400 saying what ends it, over tRPC, REST and the tokens command; the token keeps working", async () => {
    t = await startSecureServer();
    expect(await refusal(t.admin.tokens.revoke.mutate({ tokenId: "config:adminToken" }))).toEqual({
      code: "INVALID_INPUT",
      message: `tokenId: ${WHY}`,
      details: { issues: [{ path: "tokenId", message: WHY }] },
    });
    const overRest = await http(t.url, "POST", "/tokens/config%3AadminToken/revoke", { token: ADMIN_SECRET });
    expect([overRest.status, overRest.body.code]).toEqual([400, "INVALID_INPUT"]);
    const cli = await runCli({ args: ["tokens", "revoke", "config:adminToken", "--db", t.dbPath] });
    expect(cli).toMatchObject({ code: 2, stdout: "", stderr: `coordination tokens revoke: ${WHY}\n` });
    expect((await t.admin.tokens.whoami.query()).tokenId).toBe("config:adminToken");
    expect(await t.admin.tokens.list.query({ includeRevoked: true })).toEqual([]);
  });
});
