// With credentials on, an agent is its credential: every attack that worked by claiming to be
// another agent (or by knowing its lease) is refused. Each case is one that worked on the server
// before credentials existed.
import { afterEach, describe, expect, it } from "vitest";
import { TRPCClientError } from "../client/index.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";

/** The domain code of a rejected typed-client call. */
async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    if (error instanceof TRPCClientError) return (error.data as { code: string }).code;
    throw error;
  }
  throw new Error("the call succeeded");
}

let t: SecureServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

async function threeAgents() {
  t = await startSecureServer();
  const [a, b, c] = await Promise.all(["agent-A", "agent-B", "agent-C"].map((id) => t!.issue("agent", id)));
  return { t, tokens: { a: a!, b: b!, c: c! }, A: t.as(a!), B: t.as(b!), C: t.as(c!) };
}

describe("credentials carry the agent's identity", () => {
  it("refuses every call but /health without a valid token, saying nothing more", async () => {
    t = await startSecureServer();
    expect((await http(t.url, "GET", "/health")).status).toBe(200);
    for (const token of [undefined, "wrong", `${ADMIN_SECRET}x`]) {
      const answer = await http(t.url, "GET", "/tasks", token === undefined ? {} : { token });
      expect(answer.status).toBe(401);
      expect(answer.body).toEqual({ code: "UNAUTHORIZED", message: "Unauthorized: send a valid bearer token (Authorization: Bearer <token>)" });
      expect(answer.headers.get("www-authenticate")).toBe("Bearer");
    }
    // Nothing of the request is read first: malformed JSON from nobody is a 401, not a 400.
    expect((await http(t.url, "POST", "/tasks", { body: "{not json" })).status).toBe(401);
    const trpc = await fetch(`${t.url}/trpc/tasks.stats`);
    expect(trpc.status).toBe(401);
    expect((await fetch(`${t.url}/trpc/health`)).status).toBe(200);
  });

  it("a settle without agentId settles as the credential's agent: no forged result", async () => {
    const { t, A, B, tokens } = await threeAgents();
    const task = await t.admin.tasks.enqueue.mutate({ queue: "q", payload: { n: 1 } });
    const claimed = (await A.tasks.claim.mutate({ agentId: "agent-A", queues: ["q"] }))!;
    expect(claimed.leaseOwner).toBe("agent-A");
    // Before: a complete with no agentId settled whoever held the lease, with the forger's result.
    expect(await codeOf(B.tasks.complete.mutate({ taskId: task.id, result: { forged: true } }))).toBe("LEASE_CONFLICT");
    const rest = await http(t.url, "POST", `/tasks/${task.id}/complete`, { token: tokens.b, body: { result: { forged: true } } });
    expect(rest.status).toBe(409);
    expect(rest.body.code).toBe("LEASE_CONFLICT");
    // Knowing the fencing token (GET /tasks/{id} shows it) does not help either.
    const seen = await B.tasks.get.query({ taskId: task.id });
    expect(await codeOf(B.tasks.fail.mutate({ taskId: task.id, leaseToken: seen.leaseToken, error: "sabotage", retry: false }))).toBe("LEASE_CONFLICT");
    const done = await A.tasks.complete.mutate({ taskId: task.id, result: { real: true } });
    expect(done.result).toEqual({ real: true });
    expect(done.settledLease).toEqual({ agentId: "agent-A", leaseToken: claimed.leaseToken });
  });

  it("naming another agent is a 403 on every route that acts as one", async () => {
    const { t, A, B, tokens } = await threeAgents();
    const task = await t.admin.tasks.enqueue.mutate({ queue: "q" });
    const claimed = (await A.tasks.claim.mutate({ agentId: "agent-A", queues: ["q"], leaseMs: 60_000 }))!;
    const asA = { agentId: "agent-A", taskId: task.id, leaseToken: claimed.leaseToken };
    expect(await codeOf(B.tasks.heartbeat.mutate({ ...asA, leaseMs: 3_600_000 }))).toBe("FORBIDDEN");
    expect(await codeOf(B.tasks.release.mutate(asA))).toBe("FORBIDDEN");
    expect(await codeOf(B.tasks.complete.mutate(asA))).toBe("FORBIDDEN");
    expect(await codeOf(B.agents.deregister.mutate({ agentId: "agent-A" }))).toBe("FORBIDDEN");
    expect(await codeOf(B.agents.register.mutate({ agentId: "agent-A", capabilities: ["x"] }))).toBe("FORBIDDEN");
    // As itself (over REST with no agentId, the seed's way, or naming itself): B holds no lease.
    const asItself = { token: tokens.b, body: { leaseToken: claimed.leaseToken } };
    expect((await http(t.url, "POST", `/tasks/${task.id}/heartbeat`, asItself)).body.code).toBe("LEASE_CONFLICT");
    expect((await http(t.url, "POST", `/tasks/${task.id}/release`, asItself)).body.code).toBe("LEASE_CONFLICT");
    expect(await codeOf(B.tasks.heartbeat.mutate({ agentId: "agent-B", taskId: task.id, leaseToken: claimed.leaseToken }))).toBe("LEASE_CONFLICT");
    // Cancelling a task is an operator's act, or its enqueuer's (an admin enqueued this one).
    expect(await codeOf(B.tasks.cancel.mutate({ taskId: task.id }))).toBe("FORBIDDEN");
    const rest = await http(t.url, "DELETE", "/agents/agent-A", { token: tokens.b });
    expect(rest.status).toBe(403);
    expect(rest.body).toEqual({ code: "FORBIDDEN", message: 'this credential acts as agent "agent-B"; agentId "agent-A" names another agent' });
    // The seed's claim route names the agent in the path.
    expect((await http(t.url, "GET", "/tasks/claim/agent-A?queue=q", { token: tokens.b })).status).toBe(403);
    // No name at all (null, a number) is a malformed request, a 400 naming the field, not another agent's.
    expect(await http(t.url, "POST", "/events", { token: tokens.b, body: { type: "n.x", source: null } })).toMatchObject({ status: 400, body: { code: "INVALID_INPUT", message: "source: must be a string (got null)" } });
    expect(await http(t.url, "POST", "/tasks/claim", { token: tokens.b, body: { agentId: 5 } })).toMatchObject({ status: 400, body: { code: "INVALID_INPUT", message: "agentId: must be a string (got number)" } });
    // A's lease is untouched.
    const after = await t.admin.tasks.get.query({ taskId: task.id });
    expect([after.status, after.leaseOwner, after.leaseToken]).toEqual(["claimed", "agent-A", claimed.leaseToken]);
    expect(after.leaseExpiresAt!.getTime()).toBe(claimed.leaseExpiresAt!.getTime());
  });

  it("an enqueue's idempotencyKey is its agent's own: another agent using it first neither decides nor learns what the first gets", async () => {
    const { t, A, B } = await threeAgents();
    // B goes first with A's key (keys show in GET /tasks), asking for a task that never runs.
    const squat = await B.tasks.enqueue.mutate({ queue: "billing", payload: { invoice: 42 }, idempotencyKey: "invoice-42", runAt: new Date("2099-01-01T00:00:00Z"), maxAttempts: 1 });
    const mine = await A.tasks.enqueue.mutate({ queue: "billing", payload: { invoice: 42 }, idempotencyKey: "invoice-42" });
    expect(mine.id).not.toBe(squat.id);
    expect(mine.runAt.getTime()).toBeLessThanOrEqual(Date.now());
    // A's own repeat is A's task; B's is B's; a different payload from B under the key is B's own conflict, not A's.
    expect((await A.tasks.enqueue.mutate({ queue: "billing", payload: { invoice: 42 }, idempotencyKey: "invoice-42" })).id).toBe(mine.id);
    expect((await B.tasks.enqueueMany.mutate({ tasks: [{ queue: "billing", payload: { invoice: 42 }, idempotencyKey: "invoice-42" }] }))[0]!.id).toBe(squat.id);
    expect((await A.tasks.enqueueMany.mutate({ tasks: [{ queue: "billing", payload: { invoice: 42 }, idempotencyKey: "invoice-42" }] }))[0]!.id).toBe(mine.id);
    // Admins (and an open server, and in-process callers) share one space of their own.
    const byAdmin = await t.admin.tasks.enqueue.mutate({ queue: "billing", payload: { invoice: 42 }, idempotencyKey: "invoice-42" });
    expect([byAdmin.id === mine.id, byAdmin.id === squat.id]).toEqual([false, false]);
    expect((await t.admin.tasks.enqueue.mutate({ queue: "billing", payload: { invoice: 42 }, idempotencyKey: "invoice-42" })).id).toBe(byAdmin.id);
    // A key in the shared space (an admin's, or stored before keys were scoped: an enqueue sent
    // again across the upgrade) is found by an agent that has none of its own.
    const shared = await t.admin.tasks.enqueue.mutate({ queue: "billing", payload: { invoice: 7 }, idempotencyKey: "invoice-7" });
    expect((await A.tasks.enqueue.mutate({ queue: "billing", payload: { invoice: 7 }, idempotencyKey: "invoice-7" })).id).toBe(shared.id);
  });

  it("a task targeted at one agent is claimed by that agent only", async () => {
    const { t, A, B } = await threeAgents();
    const task = await t.admin.tasks.enqueue.mutate({ queue: "q", targetAgentId: "agent-A" });
    expect(await codeOf(B.tasks.claim.mutate({ agentId: "agent-A", queues: ["q"] }))).toBe("FORBIDDEN");
    expect(await B.tasks.claim.mutate({ agentId: "agent-B", queues: ["q"] })).toBeNull();
    expect((await A.tasks.claim.mutate({ agentId: "agent-A", queues: ["q"] }))!.id).toBe(task.id);
  });

  it("an agent polls, acks and reads only its own mailbox and subscription", async () => {
    const { t, B, C, tokens } = await threeAgents();
    await C.events.subscribe.mutate({ agentId: "agent-C", types: ["job.*"] });
    await t.admin.events.publish.mutate({ type: "job.done", source: "ops" });
    const direct = await t.admin.events.publish.mutate({ type: "note", source: "ops", target: "agent-C", payload: { secret: 42 } });
    const toB = await t.admin.events.publish.mutate({ type: "note", source: "ops", target: "agent-B" });
    // Before: GET /events/agent-C consumed C's events, direct messages included.
    expect((await http(t.url, "GET", "/events/agent-C", { token: tokens.b })).status).toBe(403);
    expect((await http(t.url, "POST", "/events/agent-C/ack", { token: tokens.b, body: { seq: direct.seq } })).status).toBe(403);
    expect(await codeOf(B.events.subscription.query({ agentId: "agent-C" }))).toBe("FORBIDDEN");
    expect((await C.events.poll.mutate({ agentId: "agent-C" })).map((e) => e.type)).toEqual(["job.done", "note"]);
    // The history shows each agent its own direct messages only; a read credential none; the admin all.
    const bSees = (await B.events.list.query({})).map((e) => e.seq);
    expect(bSees).toContain(toB.seq);
    expect(bSees).not.toContain(direct.seq);
    const reader = t.as(await t.issue("read"));
    expect((await reader.events.list.query({})).filter((e) => e.target !== null)).toEqual([]);
    expect((await t.admin.events.list.query({})).map((e) => e.seq)).toEqual(expect.arrayContaining([direct.seq, toB.seq]));
    const restList = await http(t.url, "GET", "/events", { token: tokens.b });
    expect(restList.body.map((e: { target: string | null }) => e.target)).not.toContain("agent-C");
  });

  it("a task's history shows direct messages about it to their target only, as the log does", async () => {
    const { t, B, C, tokens } = await threeAgents();
    const task = await t.admin.tasks.enqueue.mutate({ queue: "q" });
    // Only an admin may publish task.* events; one about this task, addressed to agent-C.
    const direct = await t.admin.events.publish.mutate({ type: "task.note", source: "ops", target: "agent-C", payload: { taskId: task.id, secret: "s3cret" } });
    const seqsOf = (events: Array<{ seq: number }>) => events.map((e) => e.seq);
    expect(seqsOf(await C.tasks.events.query({ taskId: task.id }))).toContain(direct.seq);
    expect(seqsOf(await B.tasks.events.query({ taskId: task.id }))).not.toContain(direct.seq);
    const reader = t.as(await t.issue("read"));
    expect(seqsOf(await reader.tasks.events.query({ taskId: task.id }))).not.toContain(direct.seq);
    expect(seqsOf(await t.admin.tasks.events.query({ taskId: task.id }))).toContain(direct.seq);
    const rest = await http(t.url, "GET", `/tasks/${task.id}/events`, { token: tokens.b });
    expect(rest.status).toBe(200);
    expect(JSON.stringify(rest.body)).not.toContain("s3cret");
    // The task's own events are everyone's.
    expect((await B.tasks.events.query({ taskId: task.id })).map((e) => e.type)).toEqual(["task.enqueued"]);
  });

  it("an agent cannot publish as the server, nor as another agent", async () => {
    const { t, B, tokens } = await threeAgents();
    expect(await codeOf(B.events.publish.mutate({ type: "task.completed", source: "agent-B" }))).toBe("FORBIDDEN");
    expect(await codeOf(B.events.publish.mutate({ type: "agent.offline", source: "agent-B" }))).toBe("FORBIDDEN");
    expect(await codeOf(B.events.publish.mutate({ type: "build.done", source: "coordination" }))).toBe("FORBIDDEN");
    const rest = await http(t.url, "POST", "/events", { token: tokens.b, body: { type: "task.completed", source: "coordination", payload: {} } });
    expect(rest.status).toBe(403);
    // Its own events carry its own name, filled in when left out.
    const own = await B.events.publish.mutate({ type: "build.done" } as { type: string; source: string });
    expect(own.source).toBe("agent-B");
    // No token can be issued for the server's own name.
    expect(await codeOf(t.admin.tokens.create.mutate({ role: "agent", agentId: "coordination" }))).toBe("INVALID_INPUT");
  });

  it("a read credential reads, and changes nothing", async () => {
    t = await startSecureServer();
    const reader = t.as(await t.issue("read"));
    const task = await t.admin.tasks.enqueue.mutate({ queue: "q" });
    expect((await reader.tasks.get.query({ taskId: task.id })).id).toBe(task.id);
    expect((await reader.tasks.stats.query()).queues.map((q) => [q.queue, q.counts.pending])).toEqual([["q", 1]]);
    const refused = await http(t.url, "POST", "/tasks", { token: await t.issue("read"), body: { queue: "q" } });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ code: "FORBIDDEN", message: "a read credential may not call tasks.enqueue (it needs admin or agent)" });
  });
});
