// Requests pipelined on one connection are answered in order (RFC 9112 9.3.2), a malformed one
// among them too: the requests before it were read whole and run, so their answers go out first,
// then its 400, then the connection closes. The server wrote the 400 at once and closed: the
// answers of the requests before it were cut off, and a client reading answers in order took the
// 400 for its first request's, though that request had run (an enqueue stored, a complete done).
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/test-server.js";

/** Writes `bytes` in one write on a new connection; all the server sent, once it closed (or after `ms`). */
function exchange(port: number, bytes: string, ms = 15_000): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    let answer = "";
    let closed = false;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("end", () => (closed = true));
    socket.on("close", () => resolve({ answer, closed }));
    socket.on("error", reject);
    setTimeout(() => socket.destroy(), ms).unref();
  });
}

const statuses = (answer: string) => [...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
/** The body of the answer with status `status` (the first one). */
function bodyOf(answer: string, status: number): any {
  const part = answer.split(/(?=HTTP\/1\.1 \d{3} )/).find((each) => each.startsWith(`HTTP/1.1 ${status} `))!;
  return JSON.parse(part.slice(part.indexOf("\r\n\r\n") + 4));
}

const HOST = "Host: 127.0.0.1\r\n";
const post = (path: string, body: unknown) => {
  const text = JSON.stringify(body);
  return `POST ${path} HTTP/1.1\r\n${HOST}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
};
const MALFORMED = "NOT HTTP AT ALL\r\n\r\n";

describe("pipelined requests with a malformed one among them", () => {
  it("the requests before it are answered, in order, then its 400; the connection closes", async () => {
    await using t = await startTestServer();
    const { answer, closed } = await exchange(t.server.port, post("/tasks", { queue: "piped", payload: { n: 1 } }) + `GET /health HTTP/1.1\r\n${HOST}\r\n` + MALFORMED);
    expect(statuses(answer)).toEqual([200, 200, 400]);
    expect(closed).toBe(true);
    const task = bodyOf(answer, 200);
    expect(task).toMatchObject({ queue: "piped", payload: { n: 1 }, status: "pending" });
    expect(bodyOf(answer, 400)).toMatchObject({ code: "INVALID_INPUT", message: "Malformed HTTP request" });
    // The enqueue the client was answered is the one stored, once.
    const list = await t.api.tasks.list.query({ queue: "piped" });
    expect(list.items.map((item) => item.id)).toEqual([task.id]);
  });

  it("a claim before it hands its task to the client, which settles it with its lease", async () => {
    await using t = await startTestServer();
    const enqueued = await t.api.tasks.enqueue.mutate({ queue: "piped", payload: { n: 2 } });
    const { answer } = await exchange(t.server.port, `GET /tasks/claim/worker-1?queue=piped HTTP/1.1\r\n${HOST}\r\n` + MALFORMED);
    expect(statuses(answer)).toEqual([200, 400]);
    const claimed = bodyOf(answer, 200);
    expect(claimed).toMatchObject({ id: enqueued.id, status: "claimed" });
    // Delivered, not released as undelivered: the lease it carries settles the task.
    const done = await t.api.tasks.complete.mutate({ taskId: enqueued.id, agentId: "worker-1", leaseToken: claimed.leaseToken, result: { ok: true } });
    expect(done.status).toBe("completed");
  });

  it("an error inside the body being read is that request's own: a 400 at once, the connection closed, nothing stored", async () => {
    await using t = await startTestServer();
    // A chunked body whose second chunk's size is no hex number: the request's handler has begun,
    // waiting for its body, when the parser fails on it. Nothing is ahead of it to wait for.
    const broken = `POST /tasks HTTP/1.1\r\n${HOST}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"que\r\nZZ\r\nue":1}\r\n0\r\n\r\n`;
    const { answer, closed } = await exchange(t.server.port, broken);
    expect(statuses(answer)).toEqual([400]);
    expect(closed).toBe(true);
    expect((await t.api.tasks.stats.query({})).totals.pending).toBe(0);
    // The server is unharmed, and its next request on a new connection served.
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });

  it("a long-poll before it is answered when its task comes, then the 400", async () => {
    await using t = await startTestServer();
    const exchanged = exchange(t.server.port, `GET /tasks/claim/worker-1?queue=later&waitMs=20000 HTTP/1.1\r\n${HOST}\r\n` + MALFORMED, 30_000);
    const enqueued = await t.api.tasks.enqueue.mutate({ queue: "later", payload: { n: 3 } });
    const { answer } = await exchanged;
    expect(statuses(answer)).toEqual([200, 400]);
    expect(bodyOf(answer, 200)).toMatchObject({ id: enqueued.id, status: "claimed" });
  });
});
