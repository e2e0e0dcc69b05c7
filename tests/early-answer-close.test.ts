// An answer given before the request's body was read (a bad credential's 401, a refusal) ends the
// connection, instead of the server reading on, and discarding, whatever the client goes on
// sending: a client with no credential could keep a core busy with an endless chunked body.
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ADMIN_SECRET, startSecureServer } from "./helpers/secure-server.js";
import type { TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let socket: Socket | undefined;
afterEach(async () => {
  socket?.destroy();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/**
 * A raw connection to the server (kept in `socket` for afterEach): what it was answered, and
 * whether the server ended it. Half-open allowed: the client's side stays open when the server's
 * ends, so only the server can have closed the connection.
 */
async function rawConnection(url: string) {
  const { hostname, port } = new URL(url);
  socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
  await new Promise<void>((resolve) => socket!.once("connect", () => resolve()));
  const read = { answer: "", closed: false };
  socket.on("data", (chunk: Buffer) => (read.answer += chunk.toString()));
  socket.on("end", () => (read.closed = true));
  socket.on("close", () => (read.closed = true));
  socket.on("error", () => undefined);
  return { hostname, port, read };
}

describe("an answer before the body was read", () => {
  it("a 401 to a request still streaming its chunked body closes the connection; the server reads no more of it", async () => {
    t = await startSecureServer();
    const { hostname, port, read } = await rawConnection(t.url);
    socket!.write(`POST /tasks HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer not-a-token\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`);
    const chunk = `${(16 * 1024).toString(16)}\r\n${"x".repeat(16 * 1024)}\r\n`;
    // Bounded: at most 2,000 chunks (32 MB), one every 5 ms, until the server has closed: it does so
    // after its answer, so far fewer than all of them go.
    let sent = 0;
    for (; sent < 2000 && !read.closed; sent++) {
      socket!.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await vi.waitFor(() => expect(read.closed).toBe(true), { timeout: 15_000, interval: 25 });
    expect(sent).toBeLessThan(2000);
    expect(read.answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(read.answer.toLowerCase()).toContain("\r\nconnection: close\r\n");
    expect(read.answer).toContain('"code":"UNAUTHORIZED"');
  });

  it("a request sent after a body answered early is never run: the connection ends with that answer", async () => {
    const s = await startSecureServer();
    t = s;
    const { hostname, port, read } = await rawConnection(t.url);
    socket!.write(`POST /tasks HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer not-a-token\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    await vi.waitFor(() => expect(read.answer).toMatch(/^HTTP\/1\.1 401 /), { timeout: 15_000, interval: 25 });
    // The body's end, then a request with a credential, on the same connection.
    const body = JSON.stringify({ queue: "piped" });
    socket!.write(`0\r\n\r\nPOST /tasks HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer ${ADMIN_SECRET}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    await vi.waitFor(() => expect(read.closed).toBe(true), { timeout: 15_000, interval: 25 });
    expect(read.answer.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect((await s.admin.tasks.stats.query({ queue: "piped" })).queues).toEqual([]);
  });
});

describe("a request that does not arrive", () => {
  it("a connection that sends nothing is closed after headersTimeoutMs, freeing its slot", async () => {
    t = await startSecureServer({ headersTimeoutMs: 1000, maxConnections: 2 });
    const { read } = await rawConnection(t.url);
    await vi.waitFor(() => expect(read.closed).toBe(true), { timeout: 15_000, interval: 25 });
    expect(read.answer).toMatch(/^(HTTP\/1\.1 408 [\s\S]*"code":"REQUEST_TIMEOUT"[\s\S]*)?$/);
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });

  it("headers trickled a line at a time past headersTimeoutMs get a 408 and the connection closes, freeing its slot", async () => {
    t = await startSecureServer({ headersTimeoutMs: 1000, maxConnections: 2 });
    const { hostname, port, read } = await rawConnection(t.url);
    socket!.write(`GET /health HTTP/1.1\r\nhost: ${hostname}:${port}\r\n`);
    // A header line every 200 ms, never the blank line that ends them (bounded: 200 lines).
    for (let line = 0; line < 200 && !read.closed; line++) {
      socket!.write(`x-slow-${line}: 1\r\n`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await vi.waitFor(() => expect(read.closed).toBe(true), { timeout: 15_000, interval: 25 });
    expect(read.answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(read.answer).toContain('"code":"REQUEST_TIMEOUT"');
    // Its slot is free again: a request is served.
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });
});
