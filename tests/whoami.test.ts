// tokens.whoami: who a call's credential is to the server (its role, its agent, its id and name),
// over tRPC, REST and the command line. A script checks it before it acts (an agent token
// configured for the wrong agent claims as that agent); the dashboard before it offers an
// admin's buttons to a read token that every click would refuse.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("tokens.whoami", () => {
  it("on a server with no credential: an admin, no credential required, over tRPC, REST and the command line", async () => {
    t = await startTestServer();
    const open = { credentialsRequired: false, role: "admin", agentId: null, tokenId: null, name: null, kvPrefixes: null };
    expect(await t.api.tokens.whoami.query()).toEqual(open);
    expect(await rest(t.url, "GET", "/tokens/whoami")).toEqual({ status: 200, body: open });
    expect(await runOperator({ args: ["whoami"], env: { COORDINATION_URL: t.url } })).toMatchObject({ code: 0, stdout: "admin: this server requires no credential, and trusts every caller as an admin\n", stderr: "" });
  });

  it("with credentials: each token's role, agent, id and name; the configured admin token by its id; none or a revoked one is a 401", async () => {
    const s = await startSecureServer();
    t = s;
    const agentToken = await s.admin.tokens.create.mutate({ role: "agent", agentId: "planner-1", name: "planner's laptop" });
    const readToken = await s.admin.tokens.create.mutate({ role: "read", name: "grafana" });
    expect(await s.admin.tokens.whoami.query()).toEqual({ credentialsRequired: true, role: "admin", agentId: null, tokenId: "config:adminToken", name: null, kvPrefixes: null });
    expect(await s.as(agentToken.secret).tokens.whoami.query()).toEqual({ credentialsRequired: true, role: "agent", agentId: "planner-1", tokenId: agentToken.token.id, name: "planner's laptop", kvPrefixes: null });
    const asRead = await http(s.url, "GET", "/tokens/whoami", { token: readToken.secret });
    expect([asRead.status, asRead.body]).toEqual([200, { credentialsRequired: true, role: "read", agentId: null, tokenId: readToken.token.id, name: "grafana", kvPrefixes: null }]);
    const anonymous = await http(s.url, "GET", "/tokens/whoami");
    expect([anonymous.status, anonymous.body.code]).toEqual([401, "UNAUTHORIZED"]);
    await s.admin.tokens.revoke.mutate({ tokenId: readToken.token.id });
    const revoked = await http(s.url, "GET", "/tokens/whoami", { token: readToken.secret });
    expect([revoked.status, revoked.body.code]).toEqual([401, "UNAUTHORIZED"]);
    // An unknown field is refused, as everywhere.
    const extra = await http(s.url, "GET", "/tokens/whoami?agentId=planner-1", { token: ADMIN_SECRET });
    expect([extra.status, extra.body.code]).toEqual([400, "INVALID_INPUT"]);

    const env = { COORDINATION_URL: s.url };
    expect(await runOperator({ args: ["whoami", "--token", agentToken.secret], env })).toMatchObject({ code: 0, stdout: `agent planner-1 (token ${agentToken.token.id}, named "planner's laptop")\n`, stderr: "" });
    expect(await runOperator({ args: ["whoami", "--token", ADMIN_SECRET], env })).toMatchObject({ code: 0, stdout: "admin (token config:adminToken)\n", stderr: "" });
    // An empty COORDINATION_TOKEN (a script's unset variable) is none: the shell's admin token stands.
    // So is one of whitespace only (an unset variable quoted with a space, a blank line read from a file), and an empty --token.
    for (const blank of ["", " ", "\n"]) {
      expect(await runOperator({ args: ["whoami"], env: { ...env, COORDINATION_TOKEN: blank, COORDINATION_ADMIN_TOKEN: ADMIN_SECRET } }), JSON.stringify(blank)).toMatchObject({ code: 0, stdout: "admin (token config:adminToken)\n", stderr: "" });
      expect(await runOperator({ args: ["whoami", "--token", blank], env: { ...env, COORDINATION_ADMIN_TOKEN: ADMIN_SECRET } }), JSON.stringify(blank)).toMatchObject({ code: 0, stdout: "admin (token config:adminToken)\n", stderr: "" });
    }
    // A credential scoped to key prefixes says which keys it writes.
    const scoped = await s.admin.tokens.create.mutate({ role: "agent", agentId: "planner-2", kvPrefixes: ["agents/planner-2/", "shared/"] });
    expect(await runOperator({ args: ["whoami", "--token", scoped.secret], env })).toMatchObject({
      code: 0,
      stdout: `agent planner-2 (token ${scoped.token.id}, writes only keys starting with "agents/planner-2/" "shared/")\n`,
      stderr: "",
    });
    const json = await runOperator({ args: ["whoami", "--json", "--token", agentToken.secret], env });
    expect([json.code, JSON.parse(json.stdout)]).toEqual([0, { credentialsRequired: true, role: "agent", agentId: "planner-1", tokenId: agentToken.token.id, name: "planner's laptop", kvPrefixes: null }]);
    const refused = await runOperator({ args: ["whoami", "--token", readToken.secret], env });
    expect([refused.code, refused.stdout]).toEqual([1, ""]);
    expect(refused.stderr).toBe("coordination: UNAUTHORIZED: Unauthorized: send a valid bearer token (Authorization: Bearer <token>) (the server refused the token given)\n");
    const usage = await runOperator({ args: ["whoami", "--queue", "q"], env });
    expect([usage.code, usage.stderr.split("\n")[0]]).toEqual([2, "coordination: whoami does not take --queue (it takes none of its own)"]);
  });
});
