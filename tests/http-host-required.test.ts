// An HTTP/1.1 request without Host is a 400 (RFC 9112 3.2) in the one error shape, like every
// other refusal: Node's own check answered a bare "400 Bad Request" with no body, which a client
// reading `{ code, message }` could not parse.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exchange } from "./helpers/raw-exchange.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("HTTP/1.1 without Host", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("is a 400 with the error body, and the connection closes", async () => {
    const answer = await exchange(t.server.port, "GET /health HTTP/1.1\r\n\r\n");
    const [head, body] = answer.split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    expect(head!.toLowerCase()).toContain("content-type: application/json");
    expect(JSON.parse(body!)).toEqual({
      code: "INVALID_INPUT",
      message: "An HTTP/1.1 request must carry a Host header",
      details: { issues: [{ path: "input", message: "An HTTP/1.1 request must carry a Host header" }] },
    });
  });

  it("a WebSocket upgrade without Host is the same 400, and opens no socket", async () => {
    const answer = await exchange(t.server.port, "GET /trpc HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    const [head, body] = answer.split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(body!).message).toBe("An HTTP/1.1 request must carry a Host header");
  });

  it("with Host, is served as before", async () => {
    const answer = await exchange(t.server.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  });
});
