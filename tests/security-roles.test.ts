// Who may call what, for every procedure the router has: the expected access is written out
// here, and the list must be the router's own, so a new procedure cannot be forgotten. Each
// procedure is called over tRPC's HTTP transport (the WebSocket-only subscription over its own)
// with no credential, a read, an agent and an admin credential.
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appRouter } from "../src/trpc/app-router.js";
import type { Meta } from "../src/trpc/meta.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { startTestServer } from "./helpers/test-server.js";

type Need = "open" | "read" | "agent" | "admin";
const EXPECTED: Record<string, Need> = {
  health: "open",
  "tasks.enqueue": "agent", "tasks.enqueueMany": "agent", "tasks.claim": "agent", "tasks.claimNext": "agent", "tasks.claimMany": "agent",
  "tasks.heartbeat": "agent", "tasks.complete": "agent", "tasks.completeAndClaim": "agent", "tasks.fail": "agent", "tasks.release": "agent", "tasks.steal": "agent",
  "tasks.cancel": "agent", "tasks.requeue": "admin", "tasks.promote": "admin", "tasks.update": "admin", "tasks.requeueMany": "admin", "tasks.cancelMany": "agent",
  "tasks.get": "read", "tasks.wait": "read", "tasks.waitMany": "read", "tasks.list": "read", "tasks.stats": "read", "tasks.events": "read", "tasks.claimOutlook": "read",
  "tasks.appendLog": "agent", "tasks.log": "read",
  "events.publish": "agent", "events.subscribe": "agent", "events.unsubscribe": "agent", "events.subscription": "agent", "events.poll": "agent", "events.ack": "agent",
  "events.list": "read", "events.head": "read", "events.onEvent": "read",
  "agents.register": "agent", "agents.heartbeat": "agent", "agents.deregister": "agent", "agents.cordon": "admin", "agents.uncordon": "admin",
  "agents.get": "read", "agents.list": "read", "agents.findByCapability": "read", "agents.card": "read",
  "memory.remember": "agent", "memory.recall": "read", "memory.forget": "admin",
  "tokens.create": "admin", "tokens.list": "admin", "tokens.revoke": "admin", "tokens.whoami": "read",
  "queues.pause": "admin", "queues.resume": "admin", "queues.status": "read", "queues.paused": "read",
  "queues.setLimit": "admin", "queues.removeLimit": "admin", "queues.limit": "read", "queues.limits": "read",
  "queues.setRate": "admin", "queues.removeRate": "admin", "queues.rate": "read", "queues.rates": "read",
  "locks.acquire": "agent", "locks.renew": "agent", "locks.release": "agent", "locks.forceRelease": "admin", "locks.get": "read", "locks.list": "read",
  "semaphores.acquire": "agent", "semaphores.renew": "agent", "semaphores.release": "agent", "semaphores.forceRelease": "admin", "semaphores.get": "read", "semaphores.list": "read",
  "kv.set": "agent", "kv.get": "read", "kv.increment": "agent", "kv.delete": "agent", "kv.list": "read",
  "webhooks.create": "admin", "webhooks.update": "admin", "webhooks.rotateSecret": "admin", "webhooks.remove": "admin", "webhooks.get": "admin", "webhooks.list": "admin",
  "schedules.set": "admin", "schedules.remove": "admin", "schedules.pause": "admin", "schedules.resume": "admin", "schedules.trigger": "admin", "schedules.get": "read", "schedules.list": "read",
};
const ALLOWED: Record<Need, string[]> = { open: ["none", "read", "agent", "admin"], read: ["read", "agent", "admin"], agent: ["agent", "admin"], admin: ["admin"] };

const procedures = appRouter._def.procedures as unknown as Record<string, { _def: { type: string; meta?: Meta } }>;

let t: SecureServer;
const tokens: Record<string, string | undefined> = { none: undefined, admin: ADMIN_SECRET };
beforeAll(async () => {
  t = await startSecureServer();
  tokens.read = await t.issue("read");
  tokens.agent = await t.issue("agent", "matrix-agent");
});
afterAll(() => t.stop({ removeFiles: true }));

/** The HTTP status of calling `path` with an empty input as `role`. */
async function statusOf(path: string, role: string): Promise<number> {
  const token = tokens[role];
  const response = await fetch(`${t.url}/trpc/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify({ json: {} }),
  });
  await response.text();
  return response.status;
}

/** Whether a live subscription opens for `role` (its first message is data or a 403). */
async function subscriptionOpens(role: string): Promise<"opens" | "refused" | "closed 4401"> {
  const token = tokens[role];
  const socket = new WebSocket(`${t.url.replace("http", "ws")}/trpc`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return await new Promise((resolve) => {
    socket.on("open", () => socket.send(JSON.stringify({ id: 1, method: "subscription", params: { path: "events.onEvent", input: { json: {} } } })));
    socket.on("message", (data) => {
      if (String(data) === "PING") return socket.send("PONG");
      const message = JSON.parse(String(data));
      if (message.id !== 1) return;
      resolve(message.error ? "refused" : "opens");
      socket.close();
    });
    socket.on("close", (code) => resolve(code === 4401 ? "closed 4401" : "refused"));
  });
}

describe("the role matrix", () => {
  it("covers every procedure of the router, and each declares its access", () => {
    expect(Object.keys(procedures).sort()).toEqual(Object.keys(EXPECTED).sort());
    for (const [path, procedure] of Object.entries(procedures)) expect(procedure._def.meta?.access?.role, path).toBe(EXPECTED[path]);
  });

  it("the procedures that write a key of the shared state, and those only, hold it to an agent credential's kvPrefixes (writesKey)", () => {
    const writesKey = Object.entries(procedures).flatMap(([path, procedure]) => (procedure._def.meta?.access?.writesKey === undefined ? [] : [[path, procedure._def.meta.access.writesKey]]));
    expect(writesKey.sort()).toEqual([["kv.delete", "key"], ["kv.increment", "key"], ["kv.set", "key"]]);
  });

  for (const [path, need] of Object.entries(EXPECTED)) {
    if (path === "events.onEvent") continue;
    it(`${path}: ${ALLOWED[need].join(", ")}`, async () => {
      for (const role of ["none", "read", "agent", "admin"]) {
        const status = await statusOf(path, role);
        if (ALLOWED[need].includes(role)) expect([401, 403], `${path} as ${role}`).not.toContain(status);
        else expect(status, `${path} as ${role}`).toBe(role === "none" ? 401 : 403);
      }
    });
  }

  it("events.onEvent: read, agent, admin (WebSocket; no credential closes with 4401)", async () => {
    expect(await subscriptionOpens("none")).toBe("closed 4401");
    for (const role of ["read", "agent", "admin"]) expect(await subscriptionOpens(role), role).toBe("opens");
  });
});

describe("a caller without a credential", () => {
  /** Status and error code of a raw HTTP call (the body sent as written), with the admin token or none. */
  async function call(method: string, path: string, body: string | undefined, token?: string): Promise<[number, string | undefined]> {
    const answer = await http(t.url, method, path, { ...(body === undefined ? {} : { body }), ...(token === undefined ? {} : { token }) });
    type Refusal = { code?: string; error?: { json?: { data?: { code?: string } } } };
    // REST's error, or tRPC's (the first call's, for a batch).
    const one = (Array.isArray(answer.body) ? answer.body[0] : answer.body) as Refusal;
    return [answer.status, one.code ?? one.error?.json?.data?.code];
  }
  const malformed: Array<[string, string, string | undefined]> = [
    ["POST", "/trpc/tasks.enqueue", "{not json"],
    ["POST", "/trpc/tasks.enqueue", '{"json":{"payload":{"__proto__":{"x":1}}}}'],
    ["POST", "/trpc/tasks.enqueue", '{"json":{},"meta":{"values":{"x":["custom","Nope"]}}}'],
    ["POST", "/trpc/tasks.enqueue,tasks.claim?batch=1", "{not json"],
    ["GET", `/trpc/tasks.get?input=${encodeURIComponent("{not json")}`, undefined],
    ["POST", "/tasks", "{not json"],
  ];

  it("is answered 401 before its input is read, over tRPC as over REST; with a credential, the input's 400", async () => {
    for (const [method, path, body] of malformed) {
      expect(await call(method, path, body), `${method} ${path} ${body} without a token`).toEqual([401, "UNAUTHORIZED"]);
      const [status] = await call(method, path, body, ADMIN_SECRET);
      expect(status, `${method} ${path} ${body} as admin`).toBe(400);
    }
  });

  it("is answered 401 for a route, method or procedure that does not exist too; with a credential, the 404 or 405", async () => {
    const absent: Array<[string, string, string | undefined, number]> = [
      ["DELETE", "/tasks", "{", 405],
      ["PUT", "/tokens", "{", 405],
      ["GET", "/tokens/x/revoke", undefined, 405],
      ["POST", "/metrics", undefined, 405],
      ["GET", "/nope", undefined, 404],
      ["GET", "//tasks", undefined, 404],
      ["POST", "/trpc/tokens.nope", "{}", 404],
      ["GET", "/trpc", undefined, 404],
      // Batched beside the open health: it let the others through, to be told apart.
      ["POST", "/trpc/health,nosuch.proc?batch=1", "{}", 207],
    ];
    for (const [method, path, body, status] of absent) {
      expect(await call(method, path, body), `${method} ${path} without a token`).toEqual([401, "UNAUTHORIZED"]);
      expect((await call(method, path, body, ADMIN_SECRET))[0], `${method} ${path} as admin`).toBe(status);
    }
    // A path read as a path: not a host named "tasks".
    const response = await fetch(`${t.url}//tasks`, { headers: { authorization: `Bearer ${ADMIN_SECRET}` } });
    expect(await response.json()).toEqual({ code: "ROUTE_NOT_FOUND", message: "no route GET //tasks" });
    // Nor does batching with health tell a mutation from a query (a 400 for mixing the two).
    expect(await call("POST", "/trpc/health,tokens.create?batch=1", "{}")).toEqual([401, "UNAUTHORIZED"]);
    expect(await call("POST", "/trpc/health,tasks.list?batch=1", "{}")).toEqual([401, "UNAUTHORIZED"]);
    // Health is open: its wrong method is a 405 for anyone.
    expect(await call("POST", "/health", undefined)).toEqual([405, "METHOD_NOT_ALLOWED"]);
  });

  it("still gets the 400 of a malformed input to an open procedure (health)", async () => {
    expect((await call("GET", `/trpc/health?input=${encodeURIComponent("{not json")}`, undefined))[0]).toBe(400);
    expect((await call("GET", "/trpc/health", undefined))[0]).toBe(200);
  });
});


// One anonymous POST /tokens {"role":"read"} closed an open server to every caller, with no
// admin left to manage it through the API: recovery needed a shell on its machine.
describe("an open server's first credential issued through it", () => {
  it("must be an admin token: an agent or read token is a 400 naming role, and the server stays open", async () => {
    await using t = await startTestServer();
    for (const body of [{ role: "read", name: "r" }, { role: "agent", agentId: "w1" }]) {
      const refused = await http(t.url, "POST", "/tokens", { body });
      expect([refused.status, refused.body.code, refused.body.details.issues[0].path]).toEqual([400, "INVALID_INPUT", "role"]);
      expect(refused.body.message).toContain('it must be an admin token (role "admin")');
    }
    expect((await http(t.url, "GET", "/agents")).status).toBe(200);
    const admin = await http(t.url, "POST", "/tokens", { body: { role: "admin", name: "first" } });
    expect(admin.status).toBe(200);
    expect((await http(t.url, "GET", "/agents")).status).toBe(401);
    const reader = await http(t.url, "POST", "/tokens", { body: { role: "read" }, token: admin.body.secret });
    expect(reader.status).toBe(200);
    expect((await http(t.url, "GET", "/agents", { token: reader.body.secret })).status).toBe(200);
  });
});
