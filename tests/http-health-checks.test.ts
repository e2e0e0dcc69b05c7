// What load balancers and proxies send, answered as HTTP says rather than refused or dropped:
// HAProxy's `option httpchk` sends `OPTIONS / HTTP/1.0` with no Host by default, and a server
// it marks down for a 403 or 405 is taken out of rotation. HTTP/1.0 makes Host optional (RFC
// 1945), OPTIONS asks what a path serves (RFC 9110 9.3.7), and CONNECT (a tunnel) gets an answer
// rather than a connection closed with none.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exchange as rawExchange, parseAnswer } from "./helpers/raw-exchange.js";
import { startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** One raw exchange, parsed: what fetch cannot send (no Host, HTTP/1.0, CONNECT). */
const exchange = async (port: number, request: string) => parseAnswer(await rawExchange(port, request));

describe("health checks and proxies' requests", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop({ removeFiles: true });
  });

  it("an HTTP/1.0 request without Host is served (no browser sends one)", async () => {
    const answer = await exchange(t.server.port, "GET /health HTTP/1.0\r\n\r\n");
    expect(answer.status).toMatch(/^HTTP\/1\.1 200 /);
    expect(JSON.parse(answer.body).status).toBe("ok");
  });

  it("an HTTP/1.0 request naming a Host not served is still refused", async () => {
    const answer = await exchange(t.server.port, "GET /health HTTP/1.0\r\nHost: attacker.example\r\n\r\n");
    expect(answer.status).toMatch(/^HTTP\/1\.1 403 /);
    expect(JSON.parse(answer.body)).toEqual({ code: "FORBIDDEN", message: 'Host "attacker.example" is not served here (setting allowedHosts)' });
  });

  it("HAProxy's default check, OPTIONS / HTTP/1.0, is a 204 naming what / serves", async () => {
    const answer = await exchange(t.server.port, "OPTIONS / HTTP/1.0\r\n\r\n");
    expect(answer.status).toMatch(/^HTTP\/1\.1 204 /);
    expect(answer.headers.allow).toBe("GET, HEAD, OPTIONS");
    expect(answer.body).toBe("");
  });

  it.each([
    ["/tasks", "GET, HEAD, POST, OPTIONS"],
    ["/health", "GET, HEAD, OPTIONS"],
    ["/metrics", "GET, HEAD, OPTIONS"],
    ["/openapi.json", "GET, HEAD, OPTIONS"],
  ])("OPTIONS %s is a 204 with Allow %s", async (path, allow) => {
    const response = await fetch(`${t.url}${path}`, { method: "OPTIONS" });
    expect([response.status, response.headers.get("allow"), await response.text()]).toEqual([204, allow, ""]);
  });

  it("another method a path does not serve is still a 405 with Allow", async () => {
    const response = await fetch(`${t.url}/`, { method: "PUT" });
    expect([response.status, response.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
    expect(await response.json()).toEqual({ code: "METHOD_NOT_ALLOWED", message: "/ answers GET, HEAD, not PUT" });
  });

  it("CONNECT is a 405 in the error shape, and the connection closes", async () => {
    const answer = await exchange(t.server.port, "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n");
    expect(answer.status).toMatch(/^HTTP\/1\.1 405 /);
    expect(answer.headers.connection).toBe("close");
    expect(JSON.parse(answer.body)).toEqual({ code: "METHOD_NOT_ALLOWED", message: "CONNECT is not served: this server is no proxy (127.0.0.1:443)" });
    // The server is unharmed.
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });
});

describe("with credentials enforced", () => {
  let t: SecureServer;
  beforeAll(async () => {
    t = await startSecureServer();
  });
  afterAll(async () => {
    await t?.stop({ removeFiles: true });
  });

  it("an HTTP/1.0 request without Host still needs a credential where any request does", async () => {
    const answer = await exchange(t.server.port, "GET /tasks HTTP/1.0\r\n\r\n");
    expect(answer.status).toMatch(/^HTTP\/1\.1 401 /);
    expect((await exchange(t.server.port, "GET /health HTTP/1.0\r\n\r\n")).status).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("OPTIONS on a route that needs a credential tells an anonymous caller nothing", async () => {
    const response = await fetch(`${t.url}/tasks`, { method: "OPTIONS" });
    expect([response.status, response.headers.get("allow")]).toEqual([401, null]);
    const open = await fetch(`${t.url}/health`, { method: "OPTIONS" });
    expect([open.status, open.headers.get("allow")]).toEqual([204, "GET, HEAD, OPTIONS"]);
  });
});
