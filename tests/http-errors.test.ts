// HTTP error handling on a real server: every failure is a JSON answer with the right status
// (never a 500 for a client mistake), and an internal error never shows its cause or stack.
import { request } from "node:http";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

const MAX_BODY = 4096;

interface Answer {
  status: number;
  headers: Headers;
  contentType: string | null;
  text: string;
  body: any;
}

async function send(url: string, init: RequestInit & { duplex?: "half" } = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, contentType: response.headers.get("content-type"), text, body };
}

const json = (body: string, contentType = "application/json"): RequestInit => ({ method: "POST", headers: { "content-type": contentType }, body });
/** tRPC's HTTP body for a mutation (superjson envelope). */
const trpcBody = (input: unknown) => JSON.stringify({ json: input });

describe("HTTP errors", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ maxBodyBytes: MAX_BODY });
  });
  afterAll(async () => {
    await t.stop({ removeFiles: true });
  });

  it("answers an unknown route with 404 JSON, on REST and on /trpc", async () => {
    for (const init of [{}, json("{}"), { method: "DELETE" }, json("{broken")]) {
      const answer = await send(`${t.url}/no/such/route`, init);
      expect(answer.status).toBe(404);
      expect(answer.contentType).toBe("application/json");
      expect(answer.body).toEqual({ code: "ROUTE_NOT_FOUND", message: `no route ${init.method ?? "GET"} /no/such/route` });
    }
    const trpc = await send(`${t.url}/trpc/tasks.nope`);
    expect(trpc.status).toBe(404);
    expect(trpc.body.error.json).toMatchObject({ message: 'No procedure found on path "tasks.nope"', data: { code: "ROUTE_NOT_FOUND", httpStatus: 404 } });
    // A path that starts with two slashes is a path, not a host: //[ was a 500 (an invalid host), //tasks a 404 for "/".
    for (const target of ["//[", "//tasks"]) {
      const raw = await new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: Number(new URL(t.url).port), path: target }, (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => (text += chunk.toString()));
          res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on("error", reject);
        req.end();
      });
      expect(raw, target).toEqual({ status: 404, body: { code: "ROUTE_NOT_FOUND", message: `no route GET ${target}` } });
    }
  });

  it("answers a wrong method on a known path with 405 and Allow; a 204 has no content type", async () => {
    for (const [method, path, allow] of [
      // The path is matched first: /tasks/claim, not a task "claim" (GET /tasks/{taskId}).
      ["GET", "/tasks/claim", "POST"],
      ["GET", "/tasks/steal", "POST"],
      ["DELETE", "/memory/recall", "GET, HEAD, POST"],
      ["GET", "/events/subscriptions", "POST"],
      ["PUT", "/tasks", "GET, HEAD, POST"],
      ["DELETE", "/tasks/some-id/complete", "POST"],
      ["POST", "/health", "GET, HEAD"],
      // The seed's claim is a GET that takes a task: no HEAD.
      ["PUT", "/tasks/claim/some-agent", "GET"],
      ["POST", "/metrics", "GET, HEAD"],
      ["DELETE", "/openapi.json", "GET, HEAD"],
    ] as const) {
      const answer = await send(`${t.url}${path}`, { method });
      expect(answer.status, `${method} ${path}`).toBe(405);
      expect(answer.headers.get("allow")).toBe(allow);
      expect(answer.body).toEqual({ code: "METHOD_NOT_ALLOWED", message: `${path} answers ${allow}, not ${method}` });
    }
    const empty = await send(`${t.url}/tasks/claim/nobody-here?queue=none`);
    expect(empty.status).toBe(204);
    expect(empty.contentType).toBeNull();
    expect(empty.text).toBe("");
  });

  it("matches the most specific template segment by segment: a literal before a parameter at the first place they differ", async () => {
    // /agents/capability/{capability} and /agents/{agentId}/card both fit /agents/capability/card;
    // at the second segment the first has a literal: it lists the agents offering "card".
    await rest(t.url, "POST", "/agents", { agentId: "capability", capabilities: ["card"] });
    await rest(t.url, "POST", "/agents", { agentId: "carder", capabilities: ["card"] });
    for (const path of ["/agents/capability/card", "/agents/capability/card/"]) {
      const listed = await rest(t.url, "GET", path);
      expect([listed.status, listed.body.map((a: { agentId: string }) => a.agentId)], path).toEqual([200, ["capability", "carder"]]);
    }
    // The card of an agent named "capability" is agents.card over tRPC.
    expect((await t.api.agents.card.query({ agentId: "capability" })).name).toBe("capability");
  });

  it("answers a malformed JSON body with 400, not 500", async () => {
    const restAnswer = await send(`${t.url}/tasks`, json('{"queue": "a",'));
    expect(restAnswer.status).toBe(400);
    expect(restAnswer.contentType).toBe("application/json");
    expect(restAnswer.body.code).toBe("MALFORMED_JSON");
    expect(restAnswer.body.message).toMatch(/^Malformed JSON body: /);

    const trpc = await send(`${t.url}/trpc/tasks.enqueue`, json('{"json": {'));
    expect(trpc.status).toBe(400);
    expect(trpc.body.error.json.data).toMatchObject({ code: "MALFORMED_JSON", httpStatus: 400 });
  });

  it("answers a JSON body that is not an object with 400", async () => {
    for (const [body, got] of [["[1, 2]", "an array"], ['"text"', "a string"], ["null", "null"], ["42", "a number"]] as const) {
      const answer = await send(`${t.url}/tasks`, json(body));
      expect(answer.status, body).toBe(400);
      const message = `Request body must be a JSON object (got ${got})`;
      expect(answer.body).toEqual({ code: "INVALID_INPUT", message, details: { issues: [{ path: "input", message }] } });
    }
    // Nothing was enqueued by those.
    expect((await send(`${t.url}/tasks`)).body.items).toEqual([]);
  });

  it("answers an endless chunked body with 413 and closes the connection, without reading on", async () => {
    const { port } = new URL(t.url);
    const outcome = await new Promise<{ status: number | undefined; bytesWritten: number }>((resolve, reject) => {
      let bytesWritten = 0;
      let done = false;
      const req = request({ host: "127.0.0.1", port, method: "POST", path: "/tasks", headers: { "content-type": "application/json" } });
      req.on("response", (res) => {
        done = true;
        res.resume();
        resolve({ status: res.statusCode, bytesWritten });
        req.destroy();
      });
      req.on("error", (error) => (done ? undefined : reject(error)));
      const chunk = Buffer.alloc(16 * 1024, "x");
      // Bounded: the test gives up after 20 MB; the server must answer long before.
      const pump = () => {
        while (!done && bytesWritten < 20 * 1024 * 1024) {
          bytesWritten += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        if (!done) req.end();
      };
      req.write("{");
      pump();
    });
    expect(outcome.status).toBe(413);
    expect(outcome.bytesWritten).toBeLessThan(20 * 1024 * 1024);
    expect((await send(`${t.url}/health`, { method: "GET" })).status).toBe(200);
  });

  it("answers a body over maxBodyBytes with 413, on REST (declared or chunked) and on /trpc", async () => {
    const big = JSON.stringify({ payload: "x".repeat(MAX_BODY) });
    const declared = await send(`${t.url}/tasks`, json(big));
    expect(declared.status).toBe(413);
    expect(declared.body).toEqual({ code: "PAYLOAD_TOO_LARGE", message: `Request body exceeds ${MAX_BODY} bytes (the server's maxBodyBytes, COORDINATION_MAX_BODY_BYTES): send less in one request` });

    // No content-length: the size is only known while reading.
    const chunked = await send(`${t.url}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([big]).stream(),
      duplex: "half",
    });
    expect(chunked.status).toBe(413);
    expect(chunked.body.code).toBe("PAYLOAD_TOO_LARGE");

    const trpc = await send(`${t.url}/trpc/tasks.enqueue`, json(trpcBody({ payload: "x".repeat(MAX_BODY) })));
    expect(trpc.status).toBe(413);
    expect(trpc.body.error.json.data).toMatchObject({ code: "PAYLOAD_TOO_LARGE", httpStatus: 413 });
    // Named as on REST: what the limit is, not only the code.
    expect(trpc.body.error.json.message).toBe(`Request body exceeds ${MAX_BODY} bytes (the server's maxBodyBytes, COORDINATION_MAX_BODY_BYTES): send less in one request`);
    const trpcChunked = await send(`${t.url}/trpc/tasks.enqueue`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([trpcBody({ payload: "x".repeat(MAX_BODY) })]).stream(),
      duplex: "half",
    });
    expect(trpcChunked.status).toBe(413);
    expect(trpcChunked.body.error.json.data).toEqual({ code: "PAYLOAD_TOO_LARGE", httpStatus: 413, path: "tasks.enqueue" });

    // Just under the limit is fine, and the server is still serving.
    const fits = await send(`${t.url}/tasks`, json(JSON.stringify({ payload: "x".repeat(MAX_BODY - 100) })));
    expect(fits.status).toBe(200);
  });

  it("answers bad input with 400, one message naming each field once, the same over REST and tRPC", async () => {
    const body = await send(`${t.url}/tasks`, json(JSON.stringify({ priority: -1 })));
    expect(body.status).toBe(400);
    expect(body.body).toEqual({
      code: "INVALID_INPUT",
      message: "priority: must be at least 0",
      details: { issues: [{ path: "priority", message: "must be at least 0" }] },
    });

    const query = await send(`${t.url}/tasks?limit=abc`);
    expect(query.status).toBe(400);
    expect(query.body.message).toBe('limit: must be a number (got "abc")');

    const nested = await send(`${t.url}/tasks/batch`, json(JSON.stringify({ tasks: [{ queue: "ok" }, { queue: "" }] })));
    expect(nested.status).toBe(400);
    expect(nested.body.message).toBe("tasks[1].queue: must be at least 1 character long");

    const missing = await send(`${t.url}/events`, json(JSON.stringify({ type: "a.b" })));
    expect(missing.body.message).toBe("source: is required");

    const trpc = await send(`${t.url}/trpc/tasks.enqueue`, json(trpcBody({ priority: -1 })));
    expect(trpc.status).toBe(400);
    expect(trpc.body.error.json.message).toBe("priority: must be at least 0");
    expect(trpc.body.error.json.data).toEqual({
      code: "INVALID_INPUT",
      httpStatus: 400,
      path: "tasks.enqueue",
      details: { issues: [{ path: "priority", message: "must be at least 0" }] },
    });
  });

  it("names the field of every 400 in details.issues, whichever check refused it", async () => {
    const issuesOf = async (path: string, body?: unknown) => {
      const answer = await send(`${t.url}${path}`, body === undefined ? {} : json(typeof body === "string" ? body : JSON.stringify(body)));
      expect(answer.status, path).toBe(400);
      expect(answer.body.code, path).toBe("INVALID_INPUT");
      return answer.body.details.issues;
    };
    // An unknown field is named by its own path, not "input", at any depth and on both transports.
    expect(await issuesOf("/tasks", { queue: "q", bogus: 1, colour: "red" })).toEqual([
      { path: "bogus", message: "unknown field" },
      { path: "colour", message: "unknown field" },
    ]);
    const claimed = (await send(`${t.url}/tasks`, json(JSON.stringify({ queue: "issues" })))).body;
    await send(`${t.url}/tasks/claim/issues-agent?queue=issues`);
    expect(await issuesOf(`/tasks/${claimed.id}/complete-and-claim`, { agentId: "issues-agent", next: { queues: ["issues"], colour: 1 } })).toEqual([
      { path: "next.colour", message: "unknown field" },
    ]);
    const trpc = await send(`${t.url}/trpc/tasks.enqueue`, json(trpcBody({ queue: "q", bogus: 1 })));
    expect(trpc.body.error.json.message).toBe('unknown field "bogus"');
    expect(trpc.body.error.json.data.details).toEqual({ issues: [{ path: "bogus", message: "unknown field" }] });
    // Checks outside the schemas: the query string, spellings that disagree, the event log's head, nesting.
    expect(await issuesOf("/tasks?queue=a&queue=b")).toEqual([{ path: "queue", message: "given 2 times; give it once" }]);
    expect(await issuesOf("/tasks", { queue: "q", agentId: "a", agent_id: "b" })).toEqual([
      { path: "agentId", message: "agentId (body) and agent_id (body) give different values; give one, or the same in both" },
    ]);
    expect(await issuesOf("/events/issues-agent/ack", { seq: 1_000_000 })).toEqual([
      { path: "seq", message: expect.stringMatching(/^1000000 is beyond the newest event \(\d+\)$/) },
    ]);
    let deep: unknown = 1;
    for (let i = 0; i < 80; i++) deep = [deep];
    expect(await issuesOf("/tasks", { queue: "q", payload: { deep } })).toEqual([
      { path: "payload", message: "nests deeper than 64 levels (the server's maxJsonDepth); flatten it or store it as a string" },
    ]);
  });

  it("takes the client's keys as text: names of Object's own properties, __proto__, snake_case and empty keys are fields like any other", async () => {
    const refused = async (method: string, path: string, body?: unknown) => {
      const answer = await send(`${t.url}${path}`, body === undefined ? { method } : { ...json(JSON.stringify(body)), method });
      expect(answer.status, `${method} ${path}`).toBe(400);
      return answer.body;
    };
    const unknown = (field: string, path = field) => ({ code: "INVALID_INPUT", message: `unknown field ${JSON.stringify(field)}`, details: { issues: [{ path, message: "unknown field" }] } });
    // Looked up as properties, these were 500s (Object.prototype's members taken for schemas).
    for (const key of ["constructor", "toString", "hasOwnProperty", "valueOf"]) {
      expect(await refused("GET", `/health?${key}=1`)).toEqual(unknown(key));
      expect(await refused("GET", `/tasks/claim/proto-agent?${key}=1`)).toEqual(unknown(key));
      expect(await refused("POST", "/tasks", { queue: "proto", [key]: { a: 1 } })).toEqual(unknown(key));
    }
    // __proto__ is a field name too: it sets nothing (priority stays unset) and is named as sent.
    expect(await refused("POST", "/tasks", JSON.parse('{"queue":"proto","__proto__":{"priority":9}}'))).toEqual(unknown("__proto__"));
    expect(await refused("GET", "/tasks/claim/proto-agent?__proto__=1")).toEqual(unknown("__proto__"));
    // Unknown fields keep the client's spelling; an empty key has a path of its own.
    expect(await refused("POST", "/tasks", { queue: "proto", bogus_field: 1 })).toEqual(unknown("bogus_field"));
    expect(await refused("POST", "/tasks", { queue: "proto", "": 1 })).toEqual(unknown("", '[""]'));
    // A key with a dot is quoted: next.a.b would name another path.
    expect((await refused("POST", "/tasks/some-task/complete-and-claim", { agentId: "a", next: { "a.b": 1 } })).details.issues).toEqual([{ path: 'next["a.b"]', message: "unknown field" }]);
    // Nothing of those was stored, nor did the claims register their agent.
    expect((await send(`${t.url}/tasks?queue=proto`)).body.items).toEqual([]);
    expect((await send(`${t.url}/agents/proto-agent`)).status).toBe(404);
  });

  it("refuses what it cannot read exactly: bad escapes in the query string, empty path segments", async () => {
    const bad = "malformed percent-encoding in the query string";
    for (const [path, field] of [
      ["/tasks?queue=%ED%A0%80&limit=5", "queue"],
      ["/tasks/claim/escape-agent?capabilities=%C3%28", "capabilities"],
      ["/memory/recall?query=%E0%A4%A", "query"],
    ] as const) {
      const answer = await send(`${t.url}${path}`);
      expect(answer.status, path).toBe(400);
      expect(answer.body).toEqual({ code: "INVALID_INPUT", message: `${field}: ${bad}`, details: { issues: [{ path: field, message: bad }] } });
    }
    // The claim above did not run: its agent was not registered with a mangled capability.
    expect((await send(`${t.url}/agents/escape-agent`)).status).toBe(404);
    // A % that starts no escape is the text it is, as before.
    expect((await send(`${t.url}/memory/recall?query=100%&limit=1`)).status).toBe(200);
    expect((await send(`${t.url}/tasks?queue=50%25%20off`)).status).toBe(200);
    // A body that is not UTF-8 is refused too, over REST and tRPC, and nothing is stored.
    for (const [path, body] of [
      ["/tasks", Buffer.concat([Buffer.from('{"queue":"bytes-'), Buffer.from([0xff]), Buffer.from('"}')])],
      ["/trpc/tasks.enqueue", Buffer.concat([Buffer.from('{"json":{"queue":"bytes-'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')])],
    ] as const) {
      const refused = await send(`${t.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
      expect(refused.status, path).toBe(400);
      const error = path.startsWith("/trpc") ? refused.body.error.json.data : refused.body;
      expect(error, path).toMatchObject({ code: "INVALID_INPUT", details: { issues: [{ path: "input", message: "Request body is not valid UTF-8 text" }] } });
    }
    // Every other way into tRPC: a body without a declared length, one asking for a stream (both
    // read by tRPC's own handler, which decoded the bad bytes as U+FFFD), a query's input in the URL.
    const notUtf8 = { code: "INVALID_INPUT", httpStatus: 400, details: { issues: [{ path: "input", message: "Request body is not valid UTF-8 text" }] } };
    const badBody = () => Buffer.concat([Buffer.from('{"json":{"queue":"bytes-'), Buffer.from([0xff]), Buffer.from('"}}')]);
    const chunked = await send(`${t.url}/trpc/tasks.enqueue`, { method: "POST", headers: { "content-type": "application/json" }, body: new Blob([badBody()]).stream(), duplex: "half" });
    expect([chunked.status, chunked.body.error.json.data]).toEqual([400, { ...notUtf8, path: "tasks.enqueue" }]);
    const streaming = await send(`${t.url}/trpc/tasks.enqueue?batch=1`, { method: "POST", headers: { "content-type": "application/json", "trpc-accept": "application/jsonl" }, body: badBody() });
    expect([streaming.status, streaming.body[0].error.json.data]).toEqual([400, { ...notUtf8, path: "tasks.enqueue" }]);
    const badQuery = { code: "INVALID_INPUT", httpStatus: 400, details: { issues: [{ path: "input", message: "malformed percent-encoding in the query string" }] } };
    const get = await send(`${t.url}/trpc/tasks.list?input=${encodeURIComponent('{"json":{"queue":"bytes-')}%FF${encodeURIComponent('"}}')}`);
    expect([get.status, get.body.error.json.data]).toEqual([400, { ...badQuery, path: "tasks.list" }]);
    const getBatch = await send(`${t.url}/trpc/tasks.list,tasks.stats?batch=1&input=%E0%A4%A`);
    expect([getBatch.status, getBatch.body.map((item: { error: { json: { data: unknown } } }) => item.error.json.data)]).toEqual([
      400,
      [{ ...badQuery, path: "tasks.list" }, { ...badQuery, path: "tasks.stats" }],
    ]);
    // A body that is not JSON is tRPC's to refuse, as it came: its 415 names the type sent.
    const plain = await send(`${t.url}/trpc/tasks.enqueue`, { method: "POST", headers: { "content-type": "text/plain" }, body: badBody() });
    expect([plain.status, plain.body.error.json.data.code, plain.body.error.json.message]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE", 'Unsupported content-type "text/plain']);
    // tRPC would read these as a stream or as form data, inputs no procedure takes (its schema then named a stream's methods).
    for (const [type, body] of [["application/octet-stream", badBody()], ["multipart/form-data; boundary=x", "--x\r\ncontent-disposition: form-data; name=queue\r\n\r\nq\r\n--x--\r\n"]] as const) {
      const refused = await send(`${t.url}/trpc/tasks.enqueue`, { method: "POST", headers: { "content-type": type }, body });
      const media = type.split(";")[0];
      expect([refused.status, refused.body.error.json.data.code, refused.body.error.json.message]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE", `Unsupported content-type "${media}": every procedure takes application/json`]);
    }
    // UTF-8 through the same ways is taken as sent.
    const good = await send(`${t.url}/trpc/tasks.enqueue`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([trpcBody({ queue: "chunked-ü" })]).stream(),
      duplex: "half",
    });
    expect([good.status, good.body.result.data.json.queue]).toEqual([200, "chunked-ü"]);
    const listed = await send(`${t.url}/trpc/tasks.list?input=${encodeURIComponent(trpcBody({ queue: "chunked-ü" }))}`);
    expect(listed.body.result.data.json.items.map((task: { queue: string }) => task.queue)).toEqual(["chunked-ü"]);
    expect((await send(`${t.url}/tasks`)).body.items.filter((task: { queue: string }) => task.queue.startsWith("bytes-"))).toEqual([]);
    // An empty segment is an empty parameter, not a shorter path; one trailing slash is the same path.
    for (const [method, path, param] of [
      ["GET", "/tasks//events", "taskId"],
      ["POST", "/tasks//heartbeat", "taskId"],
      ["GET", "/agents//card", "agentId"],
    ] as const) {
      const answer = await send(`${t.url}${path}`, method === "POST" ? json(JSON.stringify({ agentId: "a" })) : {});
      expect(answer.status, path).toBe(400);
      expect(answer.body.details.issues, path).toEqual([{ path: param, message: "must be at least 1 character long" }]);
    }
    expect((await send(`${t.url}/tasks/?queue=nothing-here`)).body).toEqual({ items: [], nextCursor: null });
  });

  it("says one thing per field, in words: the type when it is wrong, the tighter bound, the forms a union accepts", async () => {
    const message = async (path: string, body: unknown) => (await send(`${t.url}${path}`, json(JSON.stringify(body)))).body.message;
    expect(await message("/tasks", { queue: [] })).toBe("queue: must be a string (got array)");
    expect(await message("/tasks", { queue: "q", priority: 1e20 })).toBe("priority: must be at most 1000000");
    expect(await message("/tasks", { queue: "q", priority: 1.5 })).toBe("priority: must be an integer");
    expect(await message("/tasks", { queue: "q", runAt: null })).toBe("runAt: must be a date, a string or a number (got null)");
    expect(await message("/events/words-agent/ack", { seq: 1e20 })).toBe("seq: must be at most 9007199254740991");
    // An id of spaces only names nothing anyone could name back.
    expect(await message("/tasks/claim", { agentId: "   " })).toBe("agentId: must not be blank");
    expect(await message("/tasks", { queue: " " })).toBe("queue: must not be blank");
  });

  it("decodes percent-encoded path parameters, and answers a malformed encoding with 400", async () => {
    const agentId = "worker 1/ü";
    const path = encodeURIComponent(agentId);
    expect(path).toBe("worker%201%2F%C3%BC");
    expect((await send(`${t.url}/agents`, json(JSON.stringify({ agentId, capabilities: ["gpu"] })))).status).toBe(200);
    const agent = await send(`${t.url}/agents/${path}`);
    expect(agent.status).toBe(200);
    expect(agent.body).toMatchObject({ agentId, capabilities: ["gpu"] });

    // A task only this agent may take, claimed over the seed's REST route.
    const task = await send(`${t.url}/tasks`, json(JSON.stringify({ queue: "encoded", agentId })));
    expect(task.body.targetAgentId).toBe(agentId);
    const claimed = await send(`${t.url}/tasks/claim/${path}?queue=encoded`);
    expect(claimed.status).toBe(200);
    expect(claimed.body).toMatchObject({ id: task.body.id, leaseOwner: agentId, status: "claimed" });

    const malformed = await send(`${t.url}/tasks/%E0%A4%A`);
    expect(malformed.status).toBe(400);
    expect(malformed.body).toEqual({
      code: "INVALID_INPUT",
      message: "taskId: malformed percent-encoding in the path",
      details: { issues: [{ path: "taskId", message: "malformed percent-encoding in the path" }] },
    });
  });

  it("accepts application/json with a charset; any other body type is a 415", async () => {
    const withCharset = await send(`${t.url}/tasks`, json(JSON.stringify({ queue: "charset" }), "application/json; charset=utf-8"));
    expect(withCharset.status).toBe(200);
    expect(withCharset.body).toMatchObject({ queue: "charset", status: "pending" });

    const trpc = await send(`${t.url}/trpc/tasks.enqueue`, json(trpcBody({ queue: "charset-trpc" }), "application/json; charset=utf-8"));
    expect(trpc.status).toBe(200);
    expect(trpc.body.result.data.json).toMatchObject({ queue: "charset-trpc" });

    // What curl -d sends without -H 'content-type: application/json', and what a web page can send anywhere.
    for (const type of ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]) {
      const refused = await send(`${t.url}/tasks`, json(JSON.stringify({ queue: "refused" }), type));
      expect(refused.status, type).toBe(415);
      expect(refused.body).toEqual({ code: "UNSUPPORTED_MEDIA_TYPE", message: `Request body must be application/json (got ${type.split(";")[0]})` });
    }
    expect((await send(`${t.url}/tasks?queue=refused`)).body.items).toEqual([]);
  });

  it("a compressed body, or one declared in a charset other than UTF-8, is a 415 saying so, on REST, tRPC and MCP; nothing stored", async () => {
    const body = JSON.stringify({ queue: "compressed" });
    const gzip = { "content-type": "application/json", "content-encoding": "gzip" };
    const latin1 = { "content-type": "application/json; charset=latin1" };
    const gzipSentence = 'Content-Encoding "gzip" is not supported: send the body uncompressed';
    const latin1Sentence = 'charset "latin1" is not supported: bodies are UTF-8';
    // The body is plain JSON: before, the header was ignored and the task stored.
    for (const [headers, message] of [[gzip, gzipSentence], [latin1, latin1Sentence]] as const) {
      const rest = await send(`${t.url}/tasks`, { method: "POST", headers, body });
      expect([rest.status, rest.body]).toEqual([415, { code: "UNSUPPORTED_MEDIA_TYPE", message }]);
      const trpc = await send(`${t.url}/trpc/tasks.enqueue`, { method: "POST", headers, body: trpcBody({ queue: "compressed" }) });
      expect([trpc.status, trpc.body.error.json.data.code, trpc.body.error.json.message]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE", message]);
      const mcp = await send(`${t.url}/mcp`, { method: "POST", headers: { ...headers, accept: "application/json, text/event-stream" }, body: "{}" });
      expect([mcp.status, mcp.body.error.message]).toEqual([415, message]);
    }
    expect((await send(`${t.url}/tasks?queue=compressed`)).body.items).toEqual([]);
    // identity is no encoding; "utf8" and a quoted "UTF-8" are UTF-8.
    const passing: Array<Record<string, string>> = [{ "content-type": "application/json", "content-encoding": "identity" }, { "content-type": 'application/json; charset="UTF-8"' }, { "content-type": "application/json;charset=utf8" }];
    for (const headers of passing) {
      expect((await send(`${t.url}/tasks`, { method: "POST", headers, body })).status).toBe(200);
    }
  });

  it("a body in a transfer coding other than chunked (Transfer-Encoding: gzip, chunked) is a 415 saying so, on REST, tRPC and MCP; nothing stored", async () => {
    // node:http sends the header as given and frames the body in chunks, as a client would.
    const post = (path: string, codings: string, body: string) =>
      new Promise<{ status: number; body: any }>((resolve, reject) => {
        const { hostname, port } = new URL(t.url);
        const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", "transfer-encoding": codings };
        const req = request({ host: hostname, port, path, method: "POST", headers }, (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk)).on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on("error", reject);
        req.end(body);
      });
    // The body is plain JSON: before, the coding was ignored and the task stored, its bytes read as
    // what they were not declared to be (real gzip bytes were "not valid UTF-8").
    for (const codings of ["gzip, chunked", "x-custom, chunked"]) {
      const message = `Transfer-Encoding "${codings}" is not supported: send the body chunked or with a Content-Length, uncompressed`;
      const restAnswer = await post("/tasks", codings, JSON.stringify({ queue: "transfer-coded" }));
      expect(restAnswer).toEqual({ status: 415, body: { code: "UNSUPPORTED_MEDIA_TYPE", message } });
      const trpc = await post("/trpc/tasks.enqueue", codings, trpcBody({ queue: "transfer-coded" }));
      expect([trpc.status, trpc.body.error.json.data.code, trpc.body.error.json.message]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE", message]);
      const mcp = await post("/mcp", codings, "{}");
      expect([mcp.status, mcp.body.error.message]).toEqual([415, message]);
    }
    expect((await send(`${t.url}/tasks?queue=transfer-coded`)).body.items).toEqual([]);
    // chunked alone is the framing every streaming client uses.
    expect((await post("/tasks", "chunked", JSON.stringify({ queue: "transfer-coded" }))).status).toBe(200);
  });

  it("accepts a POST with an empty body on a route that needs no body fields", async () => {
    const enqueued = await send(`${t.url}/tasks`, { method: "POST" });
    expect(enqueued.status).toBe(200);
    expect(enqueued.body).toMatchObject({ queue: "default", payload: {}, priority: 5, status: "pending" });

    const cancelled = await send(`${t.url}/tasks/${enqueued.body.id}/cancel`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ id: enqueued.body.id, status: "cancelled" });
  });
});

describe("internal errors", () => {
  it("answer 500 with a generic message: no cause, no SQL, no stack", async () => {
    await using t = await startTestServer();
    // A real failure under the server: another connection drops the table it writes to.
    const other = new Database(t.dbPath);
    other.exec(`DROP TABLE "tasks"`);
    other.close();

    const restAnswer = await send(`${t.url}/tasks`, json("{}"));
    expect(restAnswer.status).toBe(500);
    expect(restAnswer.body).toEqual({ code: "INTERNAL", message: "Internal server error" });

    const read = await send(`${t.url}/tasks/some-id`);
    expect(read.status).toBe(500);
    expect(read.body.message).toBe("Internal server error");

    const trpc = await send(`${t.url}/trpc/tasks.enqueue`, json(trpcBody({})));
    expect(trpc.status).toBe(500);
    expect(trpc.body.error.json).toEqual({
      message: "Internal server error",
      code: -32603,
      data: { code: "INTERNAL", httpStatus: 500, path: "tasks.enqueue" },
    });

    for (const answer of [restAnswer, read, trpc]) {
      expect(answer.text).not.toMatch(/no such table|sqlite|stack|\bat .+:\d+:\d+/i);
    }
    // The server itself is still up.
    expect((await send(`${t.url}/health`)).status).toBe(200);
  });
});
