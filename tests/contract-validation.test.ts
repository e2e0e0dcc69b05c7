// One validation, both transports: REST never changes what tRPC accepts, unknown fields are
// named, the seed's snake_case and singular names are read (and must agree with the camelCase
// ones), ids are valid Unicode, idempotency keys compare meaning. Raw tRPC requests send what
// the typed client's types would refuse, as any other client can.
import { request } from "node:http";
import { describe, expect, it } from "vitest";
import { undocumentedFields } from "./helpers/schema-docs.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

/** A tRPC mutation as raw HTTP, its input as given (the typed client would not compile these). */
async function trpcMutation(t: TestServer, path: string, input: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${t.url}/trpc/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ json: input }) });
  const body = (await response.json()) as { result?: { data: { json: unknown } }; error?: { json: { message: string; data: unknown } } };
  return { status: response.status, body: body.error ? { message: body.error.json.message, ...(body.error.json.data as object) } : body.result!.data.json };
}

async function claimedTask(t: TestServer, agentId = "a1"): Promise<string> {
  const task = await t.api.tasks.enqueue.mutate({ queue: agentId });
  await t.api.tasks.claim.mutate({ agentId, queues: [agentId] });
  return task.id;
}

describe("one validation over tRPC and REST", () => {
  it("a read with no input at all reads as an empty object, as REST does: lists answer, a missing field is named; a write with none stores nothing", async () => {
    await using t = await startTestServer();
    await t.api.agents.register.mutate({ agentId: "listed" });
    for (const path of ["agents.list", "tasks.list", "events.list"]) {
      const viaGet = await fetch(`${t.url}/trpc/${path}`);
      expect(viaGet.status, `GET ${path}`).toBe(200);
      const viaPost = await fetch(`${t.url}/trpc/${path}`, { method: "POST", headers: { "content-type": "application/json" } });
      expect(viaPost.status, `empty POST ${path}`).toBe(200);
    }
    const agents = (await (await fetch(`${t.url}/trpc/agents.list`)).json()) as { result: { data: { json: Array<{ agentId: string }> } } };
    expect(agents.result.data.json.map((agent) => agent.agentId)).toEqual(["listed"]);
    const missing = (await (await fetch(`${t.url}/trpc/tasks.get`)).json()) as { error: { json: { message: string } } };
    expect(missing.error.json.message).toMatch(/^taskId: /);
    expect((await rest(t.url, "GET", "/agents")).status).toBe(200);
    // A write's body without superjson's envelope reads as no input: refused, never an enqueue of {}.
    const unwrapped = await fetch(`${t.url}/trpc/tasks.enqueue`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ queue: "q" }) });
    expect(unwrapped.status).toBe(400);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(0);
  });

  it('REST never alters tRPC: retry "false", "no" or "0" is a 400 on both, before and after any REST call', async () => {
    await using t = await startTestServer();
    for (const retry of ["false", "no", "0"]) {
      const viaRest = await rest(t.url, "POST", `/tasks/${await claimedTask(t)}/fail`, { error: "e", retry });
      expect(viaRest.status, `REST retry=${retry}`).toBe(400);
      expect(viaRest.body.message).toBe("retry: must be a boolean (got string)");
      const viaTrpc = await trpcMutation(t, "tasks.fail", { taskId: await claimedTask(t), error: "e", retry });
      expect(viaTrpc.status, `tRPC retry=${retry}`).toBe(400);
      expect(viaTrpc.body.message).toBe("retry: must be a boolean (got string)");
    }
    // true/false as JSON booleans on both; the task dead-letters at once when retry is false.
    const id = await claimedTask(t);
    expect((await rest(t.url, "POST", `/tasks/${id}/fail`, { error: "e", retry: false })).body).toMatchObject({ status: "dead_letter" });
    // In a query string, booleans are their text: true and false only.
    await t.api.tasks.enqueue.mutate({ queue: "q" });
    expect((await rest(t.url, "GET", "/tasks/claim/a2?queue=q&context=false")).body.context).toEqual([]);
    expect((await rest(t.url, "GET", "/tasks/claim/a2?queue=q&context=no")).body.message).toBe('context: must be true or false (got "no")');
  });

  it("unknown fields are a 400 naming them; targetAgentId is taken (agentId is its alias) and both must agree", async () => {
    await using t = await startTestServer();
    const targeted = await rest(t.url, "POST", "/tasks", { queue: "t", targetAgentId: "bob" });
    expect(targeted.body.targetAgentId).toBe("bob");
    expect((await rest(t.url, "GET", "/tasks/claim/alice?queue=t")).status).toBe(204);
    expect((await rest(t.url, "GET", "/tasks/claim/bob?queue=t")).body.id).toBe(targeted.body.id);
    expect((await rest(t.url, "POST", "/tasks", { queue: "t", agentId: "bob" })).body.targetAgentId).toBe("bob");
    expect((await rest(t.url, "POST", "/tasks", { targetAgentId: "bob", agentId: "bob" })).status).toBe(200);
    expect((await rest(t.url, "POST", "/tasks", { targetAgentId: "bob", agentId: "carol" })).body.message).toBe(
      'agentId: must agree with targetAgentId ("bob"); agentId is its alias',
    );
    for (const answer of [await rest(t.url, "POST", "/tasks", { delay: 5 }), await trpcMutation(t, "tasks.enqueue", { delay: 5 })]) {
      expect(answer.status).toBe(400);
      expect(answer.body.message).toBe('unknown field "delay"');
    }
    expect((await rest(t.url, "GET", "/tasks?queue=t&colour=red")).body.message).toBe('unknown field "colour"');
    expect((await rest(t.url, "POST", "/events", { type: "a.b", source: "s", targets: ["x"] })).body.message).toBe('unknown field "targets"');
  });

  it("REST reads the snake_case spelling of every multi-word field; two spellings that disagree are a 400", async () => {
    await using t = await startTestServer();
    const task = await rest(t.url, "POST", "/tasks", {
      queue: "snake",
      max_attempts: 7,
      run_at: "2030-01-01T00:00:00Z",
      idempotency_key: "k-1",
      target_agent_id: "py-agent",
    });
    expect(task.body).toMatchObject({ maxAttempts: 7, runAt: "2030-01-01T00:00:00.000Z", idempotencyKey: "k-1", targetAgentId: "py-agent" });
    expect((await rest(t.url, "POST", "/tasks", { max_attempts: 2, maxAttempts: 2 })).status).toBe(200);
    const disagree = await rest(t.url, "POST", "/tasks", { max_attempts: 2, maxAttempts: 3 });
    expect(disagree.status).toBe(400);
    expect(disagree.body.message).toBe("maxAttempts: max_attempts (body) and maxAttempts (body) give different values; give one, or the same in both");
    // Inside a batch's items too: they are enqueue's fields.
    const batch = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "snake-batch", max_attempts: 4, idempotency_key: "kb-1" }, { queue: "snake-batch", delay_ms: 60_000 }] });
    expect([batch.status, batch.body[0].maxAttempts, batch.body[0].idempotencyKey, Date.parse(batch.body[1].runAt) > Date.now() + 50_000]).toEqual([200, 4, "kb-1", true]);
    const batchDisagree = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ max_attempts: 2, maxAttempts: 3 }] });
    expect([batchDisagree.status, batchDisagree.body.message]).toEqual([400, "tasks[0]: two spellings of maxAttempts give different values; give one, or the same in both"]);

    await rest(t.url, "POST", "/tasks", { queue: "snake-now" });
    const claimed = await rest(t.url, "POST", "/tasks/claim", { agent_id: "py", queues: ["snake-now"], lease_ms: 60_000, wait_ms: 0 });
    expect(claimed.body).toMatchObject({ leaseOwner: "py" });
    expect(claimed.body.leaseExpiresAt).toBeDefined();
    const settled = await rest(t.url, "POST", `/tasks/${claimed.body.id}/complete`, { agent_id: "py", lease_token: claimed.body.leaseToken });
    expect(settled.body.settledLease).toEqual({ agentId: "py", leaseToken: claimed.body.leaseToken });
    // In the path too: the seed's route names its parameter agent_id.
    expect((await rest(t.url, "GET", "/tasks/claim/py?agentId=other")).body.message).toBe(
      "agentId: agent_id (path) and agentId (query) give different values; give one, or the same in both",
    );
  });

  it("the seed's claim route takes queue/capability, and queues/capabilities like tRPC", async () => {
    await using t = await startTestServer();
    await t.api.agents.register.mutate({ agentId: "w", capabilities: [] });
    const gpu = await t.api.tasks.enqueue.mutate({ queue: "render", capability: "gpu" });
    const plain = await t.api.tasks.enqueue.mutate({ queue: "mail" });
    expect((await rest(t.url, "GET", "/tasks/claim/w?queue=render,mail&capability=gpu")).body.id).toBe(gpu.id);
    expect((await rest(t.url, "GET", "/tasks/claim/w?queues=mail&queues=render")).body.id).toBe(plain.id);
    expect((await rest(t.url, "GET", "/tasks/claim/w?queue=a&queues=b")).body.message).toBe("queues: queue (query) and queues (query) give different values; give one, or the same in both");
    // URLSearchParams (and Python's requests) send the comma of a joined list as %2C: still a list.
    const mail = await t.api.tasks.enqueue.mutate({ queue: "mail" });
    expect((await rest(t.url, "GET", `/tasks/claim/w?${new URLSearchParams({ queues: "render,mail" })}`)).body.id).toBe(mail.id);
    // A name that holds a comma goes in a JSON body.
    const comma = await t.api.tasks.enqueue.mutate({ queue: "a,b" });
    expect((await rest(t.url, "POST", "/tasks/claim", { agentId: "w", queues: ["a,b"] })).body.id).toBe(comma.id);
  });

  it("ids and names that are not valid Unicode (a lone surrogate) are a 400, over both transports", async () => {
    await using t = await startTestServer();
    const lone = "w\ud800";
    const viaRest = await rest(t.url, "POST", "/agents", { agentId: lone, capabilities: [] });
    expect(viaRest).toEqual({
      status: 400,
      body: { code: "INVALID_INPUT", message: "agentId: must be valid Unicode text (it has a lone surrogate)", details: { issues: [{ path: "agentId", message: "must be valid Unicode text (it has a lone surrogate)" }] } },
    });
    await expect(t.api.tasks.enqueue.mutate({ queue: `q\udc00` })).rejects.toMatchObject({ data: { code: "INVALID_INPUT" } });
    await expect(t.api.tasks.claim.mutate({ agentId: lone })).rejects.toMatchObject({ data: { code: "INVALID_INPUT" } });
    expect(await t.api.agents.list.query({})).toEqual([]);
  });

  it('ids and names "." and "..", which no URL path can carry, are a 400 naming the field, over both transports', async () => {
    await using t = await startTestServer();
    const problem = 'must not be "." or "..": a URL path cannot carry it (clients resolve it as a dot segment, even written %2e)';
    for (const id of [".", ".."]) {
      expect(await rest(t.url, "POST", "/agents", { agentId: id, capabilities: [] })).toEqual({
        status: 400,
        body: { code: "INVALID_INPUT", message: `agentId: ${problem}`, details: { issues: [{ path: "agentId", message: problem }] } },
      });
      expect((await rest(t.url, "POST", "/tasks", { queue: "q", targetAgentId: id })).body.message).toBe(`targetAgentId: ${problem}`);
      await expect(t.api.agents.register.mutate({ agentId: id, capabilities: [] })).rejects.toMatchObject({ data: { code: "INVALID_INPUT" }, message: `agentId: ${problem}` });
      await expect(t.api.tasks.enqueue.mutate({ queue: id })).rejects.toMatchObject({ message: `queue: ${problem}` });
      await expect(t.api.tasks.enqueue.mutate({ capability: id })).rejects.toMatchObject({ message: `capability: ${problem}` });
    }
    // Names that only hold dots are names like any other.
    expect((await rest(t.url, "POST", "/agents", { agentId: "...", capabilities: [] })).status).toBe(200);
    expect((await rest(t.url, "GET", "/agents/...")).body.agentId).toBe("...");
    expect((await t.api.agents.list.query({})).map((a) => a.agentId)).toEqual(["..."]);
    expect(await t.api.tasks.list.query({})).toMatchObject({ items: [] });
  });

  it('an agent "." that an earlier version stored can still be found, filtered by and removed over tRPC', async () => {
    await using t = await startTestServer();
    const now = Date.now();
    withDatabase(t, (db) => db.prepare(`INSERT INTO agents (id, registeredAt, lastHeartbeatAt, updatedAt) VALUES ('.', ?, ?, ?)`).run(now, now, now));
    expect(await t.api.agents.get.query({ agentId: "." })).toMatchObject({ agentId: "." });
    expect(await t.api.tasks.list.query({ queue: ".", agentId: "..", capability: "." })).toMatchObject({ items: [] });
    expect(await t.api.agents.list.query({ capability: "." })).toEqual([]);
    await t.api.agents.deregister.mutate({ agentId: "." });
    expect(await t.api.agents.list.query({})).toEqual([]);
  });

  it("an idempotency key compares the task's meaning: the same payload with its keys in another order is the same task", async () => {
    await using t = await startTestServer();
    const first = await rest(t.url, "POST", "/tasks", { payload: { a: 1, b: { c: [1, 2], d: null } }, idempotencyKey: "K" });
    const again = await rest(t.url, "POST", "/tasks", { idempotencyKey: "K", payload: { b: { d: null, c: [1, 2] }, a: 1 } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const different = await rest(t.url, "POST", "/tasks", { payload: { a: 1, b: { c: [2, 1], d: null } }, idempotencyKey: "K" });
    expect(different.status).toBe(409);
    expect(different.body.code).toBe("IDEMPOTENCY_MISMATCH");
  });

  // A BullMQ port writes runAt = now + delay: its retry, some ms later, was a 409 for a different
  // runAt, and the delay ran on the client's clock.
  it("delayMs: not claimable for that long by the server's clock; a retried enqueue with a key is the same task; runAt and delayMs together are a 400", async () => {
    await using t = await startTestServer();
    const before = Date.now();
    const first = await rest(t.url, "POST", "/tasks", { queue: "later", payload: { n: 1 }, idempotencyKey: "delay-1", delay_ms: 60_000 });
    expect(first.status).toBe(200);
    const runAt = Date.parse(first.body.runAt);
    expect(runAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(runAt).toBeLessThanOrEqual(Date.now() + 60_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const again = await t.api.tasks.enqueue.mutate({ queue: "later", payload: { n: 1 }, idempotencyKey: "delay-1", delayMs: 60_000 });
    expect([again.id, again.runAt.getTime()]).toEqual([first.body.id, runAt]);
    expect(await t.api.tasks.claim.mutate({ agentId: "w", queues: ["later"] })).toBeNull();
    const both = await rest(t.url, "POST", "/tasks", { runAt: Date.now(), delayMs: 5 });
    expect([both.status, both.body.details.issues[0].path, both.body.details.issues[0].message]).toEqual([400, "delayMs", "give runAt or delayMs, not both"]);
    const due = await t.api.tasks.enqueue.mutate({ queue: "now", delayMs: 0 });
    expect((await t.api.tasks.claim.mutate({ agentId: "w", queues: ["now"] }))?.id).toBe(due.id);
  });

  it("an idempotency key compares what the client sent, not the server's defaults; a key twice in one batch names the batch's task", async () => {
    await using t = await startTestServer({ maxAttempts: 3 });
    // Enqueued where the default was 5 (another process's setting, or this one's before a restart).
    const first = await rest(t.url, "POST", "/tasks", { payload: { n: 1 }, idempotencyKey: "M", maxAttempts: 5 });
    const again = await rest(t.url, "POST", "/tasks", { payload: { n: 1 }, idempotencyKey: "M" });
    expect([again.status, again.body.id, again.body.maxAttempts]).toEqual([200, first.body.id, 5]);
    const changed = await rest(t.url, "POST", "/tasks", { payload: { n: 1 }, idempotencyKey: "M", maxAttempts: 4 });
    expect([changed.status, changed.body.message]).toEqual([409, `idempotencyKey "M" was used for task "${first.body.id}" with a different maxAttempts`]);

    // runAt: left out, the time it was stored, and not compared; sent, compared like any field.
    const at = "2031-01-01T00:00:00.000Z";
    const scheduled = await rest(t.url, "POST", "/tasks", { payload: { n: 2 }, idempotencyKey: "R", runAt: at });
    for (const retry of [{ runAt: at }, {}]) {
      const same = await rest(t.url, "POST", "/tasks", { payload: { n: 2 }, idempotencyKey: "R", ...retry });
      expect([same.status, same.body.id, same.body.runAt]).toEqual([200, scheduled.body.id, at]);
    }
    const moved = await rest(t.url, "POST", "/tasks", { payload: { n: 2 }, idempotencyKey: "R", runAt: "2031-01-01T00:00:00.001Z", priority: 1 });
    expect([moved.status, moved.body.message]).toEqual([409, `idempotencyKey "R" was used for task "${scheduled.body.id}" with a different priority, runAt`]);
    // The same in details, for a client that reads fields rather than sentences.
    expect(moved.body.details).toEqual({ taskId: scheduled.body.id, differs: ["priority", "runAt"] });
    // Once claimed, runAt is the next run's (a retry's backoff moved it): the same request is still the same task.
    const due = new Date(Date.now() - 1000).toISOString();
    const retried = await rest(t.url, "POST", "/tasks", { queue: "r", payload: { n: 3 }, idempotencyKey: "D", runAt: due });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "w", queues: ["r"] });
    await t.api.tasks.fail.mutate({ taskId: claimed!.id, agentId: "w", error: "again" });
    const afterRetry = await rest(t.url, "POST", "/tasks", { queue: "r", payload: { n: 3 }, idempotencyKey: "D", runAt: due });
    expect([afterRetry.status, afterRetry.body.id, afterRetry.body.runAt === due]).toEqual([200, retried.body.id, false]);
    // The API's defaults for what is left out are what the key was used with: a bare retry is another request.
    const bare = await rest(t.url, "POST", "/tasks", { idempotencyKey: "R" });
    expect([bare.status, bare.body.message]).toEqual([409, `idempotencyKey "R" was used for task "${scheduled.body.id}" with a different payload`]);

    const batch = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ payload: 1, idempotencyKey: "B" }, { payload: 2, idempotencyKey: "B" }] });
    expect([batch.status, batch.body.message]).toEqual([409, `idempotencyKey "B" is also tasks[0]'s in this batch, with a different payload`]);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(3);
  });
});

describe("the OpenAPI document", () => {
  it("lists every status each route can answer, and no security scheme", async () => {
    await using t = await startTestServer();
    const doc = (await rest(t.url, "GET", "/openapi.json")).body;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components.securitySchemes).toBeUndefined();
    expect(doc.security).toBeUndefined();
    const statuses = (method: string, path: string) => Object.keys(doc.paths[path][method].responses).sort();
    // 403: a Host or Origin the server does not serve; 429: a long-poll past maxParkedPerAgent.
    // 413 and 415 on every route, whatever its method: a GET or DELETE may carry a JSON body too.
    expect(statuses("get", "/tasks/claim/{agent_id}")).toEqual(["200", "204", "400", "403", "413", "415", "429", "500", "503"]);
    expect(statuses("post", "/tasks/{taskId}/complete")).toEqual(["200", "400", "403", "404", "409", "413", "415", "500", "503"]);
    expect(statuses("get", "/events/{agentId}")).toEqual(["200", "400", "403", "412", "413", "415", "429", "500", "503"]);
    expect(statuses("get", "/agents")).toEqual(["200", "400", "403", "413", "415", "500", "503"]);
    for (const [path, operations] of Object.entries<Record<string, { responses: Record<string, unknown> }>>(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) expect(Object.keys(operation.responses), `${method} ${path}`).toEqual(expect.arrayContaining(["400", "413", "415"]));
    }
    const bodyOnGet = (type: string, body: string) =>
      new Promise<{ status: number; code: string }>((resolve, reject) => {
        const req = request(`${t.url}/agents`, { method: "GET", headers: { "content-type": type, "content-length": Buffer.byteLength(body) } }, (res) => {
          let text = "";
          res.on("data", (chunk) => (text += chunk));
          res.on("end", () => resolve({ status: res.statusCode!, code: JSON.parse(text).code }));
        });
        req.on("error", reject);
        req.end(body);
      });
    expect(await bodyOnGet("text/plain", "hello")).toEqual({ status: 415, code: "UNSUPPORTED_MEDIA_TYPE" });
    expect(await bodyOnGet("application/json", "{")).toEqual({ status: 400, code: "MALFORMED_JSON" });
    // Every database fault is named: a write's 503 may also be a full disk or a read-only file.
    expect(doc.paths["/tasks/{taskId}/complete"].post.responses["503"].description).toBe("SHUTTING_DOWN, IO_ERROR, DATABASE_LOCKED, DATABASE_REPLACED, DISK_FULL, READ_ONLY");
    expect(doc.paths["/agents"].get.responses["503"].description).toBe("SHUTTING_DOWN, IO_ERROR, DATABASE_LOCKED, DATABASE_REPLACED");
    expect(doc.info.description).toContain("405 METHOD_NOT_ALLOWED");
    expect(doc.paths["/tasks/claim/{agent_id}"].get.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toContain("path:agent_id");
    expect(doc.components.schemas.Task.properties.runAt).toMatchObject({ type: "string", format: "date-time" });
    expect(doc.paths["/memory/recall"].post.requestBody).toBeDefined();
  });

  it("says what the server accepts: strict bodies, list parameters, bounds the schemas check in words", async () => {
    await using t = await startTestServer();
    const doc = (await rest(t.url, "GET", "/openapi.json")).body;
    const resolve = (schema: any) => (schema.$ref ? doc.components.schemas[schema.$ref.split("/").pop()] : schema);
    const loose: string[] = [];
    const lists: string[] = [];
    for (const [path, operations] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, operation] of Object.entries<any>(operations)) {
        const body = operation.requestBody?.content?.["application/json"]?.schema;
        // Every input is a strict object: an unknown field is a 400, so the document says none is allowed.
        if (body && resolve(body).additionalProperties !== false) loose.push(`${method} ${path}`);
        for (const parameter of operation.parameters ?? []) {
          if (parameter.in !== "query" || parameter.schema.type !== "array") continue;
          lists.push(`${method} ${path} ${parameter.name}`);
          expect([parameter.style, parameter.explode, parameter.description]).toEqual(["form", true, expect.stringContaining("separate values by commas (encoded as %2C or not;")]);
        }
      }
    }
    expect(loose).toEqual([]);
    expect(lists).toContain("get /tasks/claim/{agent_id} queues");
    // The seed's names for them, which the route takes, are documented parameters too.
    expect(lists).toEqual(expect.arrayContaining(["get /tasks/claim/{agent_id} queue", "get /tasks/claim/{agent_id} capability"]));
    const seedName = doc.paths["/tasks/claim/{agent_id}"].get.parameters.find((p: { name: string }) => p.name === "queue");
    expect(seedName.description).toMatch(/^The seed's name for queues: the same values/);
    const body = (method: string, path: string) => resolve(doc.paths[path][method].requestBody.content["application/json"].schema);
    expect(body("post", "/tasks").properties.runAt.anyOf).toEqual([
      { type: "string", format: "date-time", description: "With an offset (Z or ±hh:mm)" },
      { type: "integer", minimum: 0, maximum: 253402300799999, description: "Unix ms" },
    ]);
    expect(body("post", "/tasks/claim").properties.queues.minItems).toBe(1);
    // The three keys no transport takes are said where a REST-only client reads: each JSON field's description.
    for (const [method, path, field] of [["post", "/tasks", "payload"], ["post", "/events", "payload"], ["post", "/agents", "metadata"], ["post", "/memory", "data"]] as const) {
      expect(body(method, path).properties[field].description).toContain("no object key may be __proto__, constructor or prototype");
    }
    expect(body("post", "/tokens").properties.name.default).toBeUndefined();
    expect((await t.api.tokens.create.mutate({ role: "admin" })).token.name).toBe("");
  });

  it("documents each error a route answers: its status among the responses, its code in that status's description", async () => {
    await using t = await startTestServer({ maxEphemeralKeysPerAgent: 1 });
    const doc = (await rest(t.url, "GET", "/openapi.json")).body;
    const answered: Array<[string, string, { status: number; body: any }]> = [];
    const send = async (method: string, path: string, template: string, body: unknown) => answered.push([method, template, await rest(t.url, method, path, body)]);
    // A key tied to an agent's life past maxEphemeralKeysPerAgent; a write's key sent again with another value.
    await send("PUT", "/kv/first", "/kv/{key}", { value: 1, ephemeral: true, agentId: "a1" });
    await send("PUT", "/kv/second", "/kv/{key}", { value: 1, ephemeral: true, agentId: "a1" });
    await send("PUT", "/kv/k", "/kv/{key}", { value: 1, idempotencyKey: "write-1" });
    await send("PUT", "/kv/k", "/kv/{key}", { value: 2, idempotencyKey: "write-1" });
    // A remember's key sent again with another content.
    await send("POST", "/memory", "/memory", { content: "one", idempotencyKey: "note-1" });
    await send("POST", "/memory", "/memory", { content: "two", idempotencyKey: "note-1" });
    const refusals = answered.filter(([, , answer]) => answer.status >= 400).map(([method, template, answer]) => `${method} ${template} ${answer.status} ${answer.body.code}`);
    expect(refusals).toEqual(["PUT /kv/{key} 429 LIMIT_EXCEEDED", "PUT /kv/{key} 409 IDEMPOTENCY_MISMATCH", "POST /memory 409 IDEMPOTENCY_MISMATCH"]);
    const undocumented = answered
      .filter(([method, template, answer]) => !doc.paths[template][method.toLowerCase()].responses[String(answer.status)]?.description.split(", ").includes(answer.body.code ?? "OK"))
      .map(([method, template, answer]) => `${method} ${template} ${answer.status} ${answer.body.code ?? ""}`);
    expect(undocumented).toEqual([]);
  });

  it("marks a request body required exactly where an empty one is refused for a missing body field", async () => {
    await using t = await startTestServer();
    const doc = (await rest(t.url, "GET", "/openapi.json")).body;
    const wrong: string[] = [];
    for (const [template, operations] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, operation] of Object.entries<any>(operations)) {
        if (operation.requestBody === undefined) continue;
        const inPath = new Set((operation.parameters ?? []).filter((p: { in: string }) => p.in === "path").map((p: { name: string }) => p.name));
        // Path parameters any route takes as text: validation answers before any lookup.
        const answer = await rest(t.url, method.toUpperCase(), template.replace(/\{(\w+)\}/g, "some-name"));
        const bodyFieldNamed = answer.status === 400 && answer.body.details.issues.some((issue: { path: string }) => !inPath.has(issue.path.split(/[.[]/)[0]));
        if (bodyFieldNamed !== operation.requestBody.required) wrong.push(`${method} ${template}: documented ${operation.requestBody.required}, answered ${answer.status} ${answer.body?.message ?? ""}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("documents every input: each parameter and request-body field of every route has a description", async () => {
    await using t = await startTestServer();
    const doc = (await rest(t.url, "GET", "/openapi.json")).body;
    const undocumented: string[] = [];
    let fields = 0;
    for (const [path, operations] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, operation] of Object.entries<any>(operations)) {
        for (const parameter of operation.parameters ?? []) {
          fields++;
          if (!parameter.description && !parameter.schema?.description) undocumented.push(`${method} ${path} ${parameter.in}:${parameter.name}`);
        }
        const body = operation.requestBody?.content?.["application/json"]?.schema;
        if (body) fields += undocumentedFields(body, `${method} ${path} body`, undocumented);
      }
    }
    expect(undocumented).toEqual([]);
    expect(fields).toBeGreaterThan(100);
    expect(doc.paths["/tasks/{taskId}/fail"].post.requestBody.content["application/json"].schema.properties.retry.description).toBe(
      "true: run again after a backoff while attempts remain; false: dead-letter at once",
    );
  });
});
