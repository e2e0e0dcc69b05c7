// Agent credentials scoped to part of the shared state (tokens.create's kvPrefixes): a credential
// writes (kv.set, kv.increment, kv.delete) only keys starting with one of its prefixes, over
// tRPC, REST and MCP alike; a write outside them is a 403 naming the key and the prefixes, and
// changes nothing. Reads are not limited; admins and credentials without prefixes write any key.
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { assertKeyField } from "../src/trpc/app-router.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { runCli } from "./helpers/cli-process.js";
import { http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";

let t: SecureServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const refusedFor = (key: string, path: string) => `this credential writes only keys starting with "agents/w1/" or "shared/"; ${path} names key ${JSON.stringify(key)}`;

/** An agent credential for w1 writing under agents/w1/ and shared/ only: its secret and id. */
async function scoped(s: SecureServer) {
  const issued = await s.admin.tokens.create.mutate({ role: "agent", agentId: "w1", name: "scoped", kvPrefixes: ["agents/w1/", "shared/"] });
  return issued;
}

describe("an agent credential given kvPrefixes", () => {
  it("writes the keys under its prefixes and no other, over tRPC: a 403 naming the key, nothing written, no event", async () => {
    const s = (t = await startSecureServer());
    const { secret, token } = await scoped(s);
    expect(token.kvPrefixes).toEqual(["agents/w1/", "shared/"]);
    const w1 = s.as(secret);
    expect(await w1.tokens.whoami.query()).toMatchObject({ role: "agent", agentId: "w1", kvPrefixes: ["agents/w1/", "shared/"] });
    expect((await w1.kv.set.mutate({ key: "agents/w1/status", value: "busy" })).updatedBy).toBe("w1");
    expect((await w1.kv.increment.mutate({ key: "shared/tokens-spent", by: 10 })).value).toBe(10);
    await s.admin.kv.set.mutate({ key: "agents/w2/status", value: "idle" });
    await s.admin.kv.set.mutate({ key: "agents/w1", value: "not under agents/w1/" });
    const before = await s.admin.events.head.query();
    for (const [call, path, key] of [
      [() => w1.kv.set.mutate({ key: "agents/w2/status", value: "mine now" }), "kv.set", "agents/w2/status"],
      [() => w1.kv.set.mutate({ key: "agents/w1", value: "x" }), "kv.set", "agents/w1"],
      [() => w1.kv.increment.mutate({ key: "budget", by: 1 }), "kv.increment", "budget"],
      [() => w1.kv.delete.mutate({ key: "agents/w2/status" }), "kv.delete", "agents/w2/status"],
    ] as const) {
      await expect(call()).rejects.toMatchObject({ message: refusedFor(key, path), data: { code: "FORBIDDEN", httpStatus: 403 } });
    }
    expect((await s.admin.events.head.query()).head).toBe(before.head);
    expect((await s.admin.kv.get.query({ key: "agents/w2/status" })).entry).toMatchObject({ value: "idle", updatedBy: null });
    expect((await s.admin.kv.get.query({ key: "budget" })).entry).toBeNull();
    // Reads are not limited: it reads another agent's key and lists every key.
    expect((await w1.kv.get.query({ key: "agents/w2/status" })).entry?.value).toBe("idle");
    expect((await w1.kv.list.query({})).items.map((entry) => entry.key)).toEqual(["agents/w1", "agents/w1/status", "agents/w2/status", "shared/tokens-spent"]);
    expect((await w1.kv.delete.mutate({ key: "agents/w1/status" })).deleted).toBe(true);
  });

  it("the same over REST and MCP; admins and agent credentials without prefixes write any key", async () => {
    const s = (t = await startSecureServer());
    const { secret } = await scoped(s);
    const outside = await http(s.url, "PUT", `/kv/${encodeURIComponent("agents/w2/status")}`, { token: secret, body: { value: "x" } });
    expect([outside.status, outside.body.code, outside.body.message]).toEqual([403, "FORBIDDEN", refusedFor("agents/w2/status", "kv.set")]);
    const increment = await http(s.url, "POST", "/kv/budget/increment", { token: secret, body: { by: 1 } });
    expect([increment.status, increment.body.message]).toEqual([403, refusedFor("budget", "kv.increment")]);
    const removal = await http(s.url, "DELETE", "/kv/budget", { token: secret });
    expect([removal.status, removal.body.message]).toEqual([403, refusedFor("budget", "kv.delete")]);
    const inside = await http(s.url, "PUT", `/kv/${encodeURIComponent("shared/plan")}`, { token: secret, body: { value: [1] } });
    expect([inside.status, inside.body.updatedBy]).toEqual([200, "w1"]);

    const mcp = await connectMcp(s.url, { authorization: `Bearer ${secret}` });
    expect(await callTool(mcp, "set_key", { key: "agents/w2/status", value: "x" })).toEqual({ error: { code: "FORBIDDEN", message: refusedFor("agents/w2/status", "kv.set") } });
    expect(await callTool(mcp, "increment_key", { key: "budget" })).toEqual({ error: { code: "FORBIDDEN", message: refusedFor("budget", "kv.increment") } });
    expect(await callTool(mcp, "set_key", { key: "agents/w1/status", value: "here", ephemeral: true })).toMatchObject({ key: "agents/w1/status", ephemeralOwner: "w1" });
    expect((await s.admin.kv.list.query({})).items.map((entry) => [entry.key, entry.updatedBy])).toEqual([
      ["agents/w1/status", "w1"],
      ["shared/plan", "w1"],
    ]);

    const plain = s.as(await s.issue("agent", "w3"));
    expect((await plain.tokens.whoami.query()).kvPrefixes).toBeNull();
    expect((await plain.kv.set.mutate({ key: "budget", value: 5 })).updatedBy).toBe("w3");
    expect((await s.admin.kv.delete.mutate({ key: "budget" })).deleted).toBe(true);
    expect((await s.admin.tokens.whoami.query()).kvPrefixes).toBeNull();
  });

  it("only agent credentials take kvPrefixes: 1 to 20 prefixes, none empty (400 naming the field)", async () => {
    const s = (t = await startSecureServer());
    await expect(s.admin.tokens.create.mutate({ role: "read", kvPrefixes: ["a/"] })).rejects.toMatchObject({ message: "kvPrefixes: is for role agent only (role is read)", data: { httpStatus: 400 } });
    await expect(s.admin.tokens.create.mutate({ role: "admin", kvPrefixes: ["a/"] })).rejects.toMatchObject({ message: "kvPrefixes: is for role agent only (role is admin)" });
    await expect(s.admin.tokens.create.mutate({ role: "agent", agentId: "w", kvPrefixes: [] })).rejects.toMatchObject({ data: { code: "INVALID_INPUT", httpStatus: 400 } });
    await expect(s.admin.tokens.create.mutate({ role: "agent", agentId: "w", kvPrefixes: [""] })).rejects.toMatchObject({ data: { code: "INVALID_INPUT", httpStatus: 400 } });
    const many = Array.from({ length: 21 }, (_, i) => `p${i}/`);
    await expect(s.admin.tokens.create.mutate({ role: "agent", agentId: "w", kvPrefixes: many })).rejects.toMatchObject({ data: { code: "INVALID_INPUT", httpStatus: 400 } });
    const twenty = await s.admin.tokens.create.mutate({ role: "agent", agentId: "w", kvPrefixes: many.slice(0, 20) });
    expect(twenty.token.kvPrefixes).toHaveLength(20);
    // A long list is named in part.
    await expect(s.as(twenty.secret).kv.set.mutate({ key: "q", value: 1 })).rejects.toThrow('this credential writes only keys starting with "p0/" or "p1/" or "p2/" (and 17 more); kv.set names key "q"');
    expect((await s.admin.tokens.list.query()).map((token) => token.kvPrefixes?.length ?? null)).toEqual([20]);
  });

  it("a procedure whose key field the schema could leave out or rewrite after the check does not load", () => {
    // The check reads the raw input: the schema must take nothing but that string, as sent.
    expect(() => assertKeyField("kv.set", "key", [z.strictObject({ key: z.string().min(1) })])).not.toThrow();
    for (const [key, problem] of [
      [undefined, "absent"],
      [z.string().optional(), "optional"],
      [z.string().default("shared/x"), "default"],
      [z.string().transform((value) => value.slice(1)), "pipe"],
      [z.string().trim(), "a string it rewrites"],
      [z.string().normalize(), "a string it rewrites"],
      [z.array(z.string()), "array"],
    ] as const) {
      const input = z.strictObject(key === undefined ? { keys: z.string() } : { key });
      expect(() => assertKeyField("kv.x", "key", [input]), problem).toThrow(`procedure kv.x: access.writesKey names "key", which its input schema must require as a string taken as sent (no optional, default, transform, trim or normalize): it is ${problem}`);
    }
  });

  it("the tokens command issues one (--kv-prefix, as many as wanted), which a running server holds to, and lists what each writes", async () => {
    const s = (t = await startSecureServer({ tokenRefreshMs: 200 }));
    const created = await runCli({ args: ["tokens", "create", "--agent", "w1", "--kv-prefix", "agents/w1/", "--kv-prefix=shared/", "--db", s.dbPath] });
    expect(created.code).toBe(0);
    expect(created.stderr).toMatch(/^issued token \S+ \(role agent, agent w1, writes only keys starting with "agents\/w1\/" "shared\/"\); its secret follows, shown this once\n$/);
    const w1 = s.as(created.stdout.trim());
    await expect(w1.kv.set.mutate({ key: "elsewhere", value: 1 })).rejects.toThrow(refusedFor("elsewhere", "kv.set"));
    expect((await w1.kv.set.mutate({ key: "shared/x", value: 1 })).version).toBeGreaterThan(0);
    await s.issue("read");
    const listed = await runCli({ args: ["tokens", "list", "--db", s.dbPath] });
    const lines = listed.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +ROLE +AGENT +NAME +WRITES KEYS +CREATED +LAST USED +REVOKED$/);
    expect(lines.slice(1).map((line) => line.split(/ {2,}/).slice(1, 5))).toEqual([
      ["agent", "w1", "-", '"agents/w1/" "shared/"'],
      ["read", "-", "-", "-"],
    ]);
    const forRead = await runCli({ args: ["tokens", "create", "--role", "read", "--kv-prefix", "a/", "--db", s.dbPath] });
    expect([forRead.code, forRead.stderr]).toEqual([2, "coordination tokens create: kvPrefixes: is for role agent only (role is read)\n"]);
  });
});
