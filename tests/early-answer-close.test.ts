// An answer given before the request's body was read (a bad credential's 401, a refusal) ends the
// connection, instead of the server reading on, and discarding, whatever the client goes on
// sending: a client with no credential could keep a core busy with an endless chunked body.
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { startSecureServer } from "./helpers/secure-server.js";
import type { TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let socket: Socket | undefined;
afterEach(async () => {
  socket?.destroy();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A raw connection to the server (kept in `socket` for afterEach): what it was answered, and whether the server closed it. */
async function rawConnection(url: string) {
  const { hostname, port } = new URL(url);
  socket = connect(Number(port), hostname);
  await new Promise<void>((resolve) => socket!.once("connect", () => resolve()));
  const read = { answer: "", closed: false };
  socket.on("data", (chunk: Buffer) => (read.answer += chunk.toString()));
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
    // Bounded: at most 2,000 chunks (32 MB), one every 5 ms, until the server has closed. It reads
    // on a little after its answer (at most 1 MB or 1 s), so far fewer than all of them go.
    let sent = 0;
    for (; sent < 2000 && !read.closed; sent++) {
      socket!.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await vi.waitFor(() => expect(read.closed).toBe(true), { timeout: 15_000, interval: 25 });
    expect(sent).toBeLessThan(2000);
    expect(read.answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(read.answer).toContain('"code":"UNAUTHORIZED"');
  });
});

describe("a request that does not arrive", () => {
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
