// A request that offers to switch protocols (Upgrade) is an HTTP/1.1 request all the same: `curl
// --http2` on an http:// URL, and Java's HttpClient by default, send `Upgrade: h2c` with their
// first request. Node hands every such request to the WebSocket upgrade listener, which answered
// each one a bare 404 with no body: the client's call never ran. The server ignores an upgrade it
// does not speak, as RFC 9110 7.8 allows and the seed's uvicorn does, and answers the request.
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/test-server.js";

/**
 * Sends each of `requests` in turn on one raw connection, the next once the answer before it is
 * in; all the server answered, once it closes or after `ms`.
 */
function exchange(url: string, requests: string[], ms = 10_000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let sent = 0;
    const socket = connect(Number(port), hostname, () => socket.write(requests[sent++]!));
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("utf8");
      // A WebSocket taken: its handshake is all there is to read.
      if (/^HTTP\/1\.1 101 [^]*\r\n\r\n/.test(answer)) return void socket.destroy();
      const complete = bodies(answer, true).length;
      if (complete < sent) return;
      if (sent < requests.length) socket.write(requests[sent++]!);
      else socket.destroy();
    });
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
    setTimeout(() => socket.destroy(), ms).unref();
  });
}

/** The JSON bodies in a raw answer, in order (`whole`: only those received whole, by their content-length). */
function bodies(answer: string, whole = false): any[] {
  const parts = answer.split(/HTTP\/1\.1 (?=\d{3} )/).slice(1);
  const complete = parts.filter((part) => {
    const length = /\r\ncontent-length: (\d+)\r\n/i.exec(part);
    const start = part.indexOf("\r\n\r\n");
    return length !== null && start >= 0 && Buffer.byteLength(part.slice(start + 4)) >= Number(length[1]);
  });
  return (whole ? complete : parts).map((part) => JSON.parse(part.slice(part.indexOf("\r\n\r\n") + 4)));
}
const statuses = (answer: string) => [...answer.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => Number(match[1]));

describe("a request offering an upgrade the server does not speak", () => {
  it("is answered as the HTTP/1.1 request it is: curl --http2's h2c offer, with a body, pipelined", async () => {
    await using t = await startTestServer();
    const h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    const health = await exchange(t.url, [`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n${h2c}\r\n`]);
    expect(statuses(health)).toEqual([200]);
    expect(bodies(health)[0]).toMatchObject({ status: "ok", db: "ok" });

    // A body sent with the offer (one part with the head, the rest in the same write) is the request's.
    const body = JSON.stringify({ queue: "upgraded", payload: { n: 1 } });
    const enqueue = `POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n${h2c}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    // And the connection goes on serving HTTP/1.1: a second request on it is answered too.
    const both = await exchange(t.url, [enqueue, `GET /tasks?queue=upgraded HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`]);
    expect(statuses(both)).toEqual([200, 200]);
    const [task, list] = bodies(both);
    expect(task).toMatchObject({ queue: "upgraded", payload: { n: 1 }, status: "pending" });
    expect(list.items.map((item: { id: string }) => item.id)).toEqual([task.id]);

    // The REST rules still hold for it: an unknown route is the usual 404 in the one error shape.
    const unknown = await exchange(t.url, [`GET /no/such HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`]);
    expect([statuses(unknown), bodies(unknown)]).toEqual([[404], [{ code: "ROUTE_NOT_FOUND", message: "no route GET /no/such" }]]);
  });

  it("a WebSocket asked for where none is served is a 404 in the one error shape; /trpc still upgrades", async () => {
    await using t = await startTestServer();
    const ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const elsewhere = await exchange(t.url, [`GET /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n${ws}\r\n`]);
    expect(statuses(elsewhere)).toEqual([404]);
    expect(bodies(elsewhere)[0]).toEqual({ code: "ROUTE_NOT_FOUND", message: "no WebSocket at /tasks: tRPC subscriptions are served at /trpc" });
    const trpc = await exchange(t.url, [`GET /trpc HTTP/1.1\r\nHost: 127.0.0.1\r\n${ws}\r\n`]);
    expect(trpc).toMatch(/^HTTP\/1\.1 101 /);
  });
});
