// What a web page can do through its visitor's browser, on a server with no credentials on
// loopback (the default): each case worked before. Browsers' own headers (Origin, Host,
// Sec-Fetch-Site) are sent by hand, as a browser would send them.
import { request } from "node:http";
import WebSocket from "ws";
import { afterEach, describe, expect, it } from "vitest";
import { http } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A request with a Host header of our choosing (fetch will not send one). */
function withHost(url: string, path: string, host: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers: { host } }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** How a WebSocket upgrade from `origin` ends: "open", or the refusing status. */
function upgradeFrom(url: string, origin: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace("http", "ws")}/trpc`, { origin });
    socket.on("open", () => {
      socket.close();
      resolve("open");
    });
    socket.on("unexpected-response", (_req, res) => resolve(String(res.statusCode)));
    socket.on("error", () => undefined);
  });
}

describe("browsers", () => {
  it("a cross-origin text/plain POST is refused; without Origin it is still not JSON", async () => {
    t = await startTestServer();
    const page = await http(t.url, "POST", "/tasks", { body: '{"queue":"q"}', headers: { "content-type": "text/plain", origin: "http://evil.example" } });
    expect(page.status).toBe(403);
    expect(page.body).toEqual({ code: "FORBIDDEN", message: 'Origin "http://evil.example" is not allowed (setting allowedOrigins)' });
    const plain = await http(t.url, "POST", "/tasks", { body: '{"queue":"q"}', headers: { "content-type": "text/plain" } });
    expect(plain.status).toBe(415);
    expect((await t.api.tasks.list.query({})).items).toEqual([]);
  });

  it("DNS rebinding: a Host that is not loopback is refused on a loopback server", async () => {
    t = await startTestServer();
    expect(await withHost(t.url, "/tasks", "attacker.example:8000")).toEqual({
      status: 403,
      body: { code: "FORBIDDEN", message: 'Host "attacker.example:8000" is not served here (setting allowedHosts)' },
    });
    for (const host of ["localhost:8000", "127.0.0.1", "[::1]:8000"]) expect((await withHost(t.url, "/health", host)).status, host).toBe(200);
  });

  it("allowedHosts names the others", async () => {
    t = await startTestServer({ allowedHosts: ["coord.internal"] });
    expect((await withHost(t.url, "/health", "coord.internal:8000")).status).toBe(200);
    expect((await withHost(t.url, "/health", "other.internal")).status).toBe(403);
  });

  it("a WebSocket from another origin is refused at the upgrade; the server's own origin is served", async () => {
    t = await startTestServer();
    expect(await upgradeFrom(t.url, "http://evil.example")).toBe("403");
    expect(await upgradeFrom(t.url, t.url)).toBe("open");
  });

  it("a cross-site request without Origin (an <img> GET) is refused", async () => {
    t = await startTestServer();
    await t.api.events.publish.mutate({ type: "note", source: "ops", target: "agent-C" });
    const img = await http(t.url, "GET", "/events/agent-C", { headers: { "sec-fetch-site": "cross-site" } });
    expect(img.status).toBe(403);
    expect((await t.api.events.poll.mutate({ agentId: "agent-C" })).map((e) => e.type)).toEqual(["note"]);
  });

  it("allowedOrigins: CORS preflight and responses for those origins, nothing for others", async () => {
    t = await startTestServer({ allowedOrigins: ["https://app.example.com"] });
    const preflight = await fetch(`${t.url}/tasks`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(preflight.headers.get("access-control-allow-headers")).toBe("authorization, content-type");
    const call = await http(t.url, "POST", "/tasks", { body: { queue: "q" }, headers: { origin: "https://app.example.com" } });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    // The headers an error's meaning rests on are the page's to read, as CORS hides them unless
    // exposed: Allow of a 405, Retry-After of a 429 or 503, the Bearer challenge of a 401.
    const refused = await http(t.url, "PUT", "/tasks", { headers: { origin: "https://app.example.com" } });
    expect([refused.status, refused.headers.get("allow")]).toEqual([405, "GET, HEAD, POST"]);
    expect(refused.headers.get("access-control-expose-headers")).toBe("allow, retry-after, www-authenticate");
    const other = await fetch(`${t.url}/tasks`, { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    expect(other.status).toBe(403);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    expect(await upgradeFrom(t.url, "https://app.example.com")).toBe("open");
  });
});
