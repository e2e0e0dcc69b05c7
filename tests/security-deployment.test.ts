// How the server may be deployed: never open on a network by accident, TLS without a proxy, and
// an OpenAPI document that says what the server enforces.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import WebSocket from "ws";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { createServer, type CoordinationServer } from "../src/server/create-server.js";
import { killAllCli, runCli } from "./helpers/cli-process.js";
import { ADMIN_SECRET, http, startSecureServer } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let raw: CoordinationServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  await raw?.stop();
  t = raw = undefined;
});

const serverWith = (overrides: Record<string, unknown>) =>
  createServer(loadConfig({ env: {}, overrides: { port: 0, dbPath: join(makeTempDir(), "c.db"), logLevel: "silent", ...overrides } }));

describe("binding", () => {
  it("refuses a non-loopback address with no credentials, unless --insecure", async () => {
    raw = serverWith({ host: "0.0.0.0" });
    await expect(raw.start()).rejects.toThrow(
      "refusing to listen on 0.0.0.0 with no credentials: anyone who reaches the port would control every agent. Set COORDINATION_ADMIN_TOKEN (or issue tokens with `coordination tokens create`), or pass --insecure to accept that",
    );
    await raw.stop();
    raw = serverWith({ host: "0.0.0.0", adminToken: ADMIN_SECRET });
    await raw.start();
    await raw.stop();
    raw = serverWith({ host: "0.0.0.0", insecure: true });
    await raw.start();
    expect((await fetch(`http://127.0.0.1:${raw.port}/health`)).status).toBe(200);
  });

  it("the command exits 2 with that sentence", async () => {
    const dir = makeTempDir();
    const exit = await runCli({ args: ["--host", "0.0.0.0", "--port", "0", "--db", join(dir, "c.db")] });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toContain("coordination: refusing to listen on 0.0.0.0 with no credentials");
  });
});

describe("OpenAPI", () => {
  it("declares the bearer scheme exactly when credentials are enforced", async () => {
    t = await startTestServer();
    const open = (await http(t.url, "GET", "/openapi.json")).body;
    expect(open.components?.securitySchemes).toBeUndefined();
    expect(open.security).toBeUndefined();
    expect(Object.keys(open.paths["/tasks"].post.responses)).not.toContain("401");
    await t.stop({ removeFiles: true });

    t = await startSecureServer();
    const secured = (await http(t.url, "GET", "/openapi.json")).body;
    expect(secured.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(secured.security).toEqual([{ bearer: [] }]);
    expect(secured.paths["/health"].get.security).toEqual([]);
    expect(Object.keys(secured.paths["/tasks"].post.responses)).toEqual(expect.arrayContaining(["401", "403"]));
    expect(secured.paths["/tokens"].post).toBeDefined();
  });

  it("publicDocs false: the document needs a credential too", async () => {
    t = await startSecureServer({ publicDocs: false });
    expect((await http(t.url, "GET", "/openapi.json")).status).toBe(401);
    expect((await http(t.url, "GET", "/openapi.json", { token: ADMIN_SECRET })).status).toBe(200);
  });
});

describe("TLS", () => {
  it("serves HTTPS and WSS with the given certificate; the bearer token crosses encrypted", async () => {
    const dir = makeTempDir();
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { stdio: "ignore" });
    t = await startSecureServer({ tlsCert: cert, tlsKey: key });
    expect(t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = readFileSync(cert);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${t!.url}/tasks`, { ca, headers: { authorization: `Bearer ${ADMIN_SECRET}` } }, (res) => {
        let body = "";
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).items).toEqual([]);
    // A request Node refuses before any handler (headers past 64 KiB) still gets its answer over
    // TLS: destroyed at once after the write, the socket dropped the encrypted 431.
    const tooLong = await new Promise<string>((resolve) => {
      const { port } = new URL(t!.url);
      const raw = tlsConnect({ port: Number(port), host: "127.0.0.1", ca }, () => raw.write(`GET /tasks?q=${"x".repeat(70_000)} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`));
      let text = "";
      raw.on("data", (chunk) => (text += chunk));
      raw.on("error", () => undefined);
      raw.on("close", () => resolve(text));
    });
    expect(tooLong).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(JSON.parse(tooLong.slice(tooLong.indexOf("\r\n\r\n") + 4)).code).toBe("HEADERS_TOO_LARGE");
    const socket = new WebSocket(`${t.url.replace("https", "wss")}/trpc`, { ca, headers: { authorization: `Bearer ${ADMIN_SECRET}` } });
    const first = await new Promise<string>((resolve, reject) => {
      socket.on("open", () => socket.send(JSON.stringify({ id: 1, method: "query", params: { path: "tasks.stats", input: { json: {} } } })));
      socket.on("message", (data) => resolve(String(data)));
      socket.on("error", reject);
    });
    expect(JSON.parse(first).result.data.json.queues).toEqual([]);
    socket.close();
    // The typed client (here under the operator's CLI, a process of its own) trusts what Node
    // trusts: the certificate through NODE_EXTRA_CA_CERTS, and nothing without it.
    const env = { COORDINATION_URL: t.url, COORDINATION_TOKEN: ADMIN_SECRET };
    const trusted = await runCli({ args: ["stats", "--json"], env: { ...env, NODE_EXTRA_CA_CERTS: cert } });
    expect([trusted.code, JSON.parse(trusted.stdout).queues]).toEqual([0, []]);
    const untrusted = await runCli({ args: ["stats", "--json"], env });
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/^coordination: cannot reach the server at https:\/\/127\.0\.0\.1:\d+ \(self[- ]signed certificate\)/);
    // A change sent to it was never sent (the certificate is checked first): nothing was done.
    const untrustedChange = await runCli({ args: ["queues", "pause", "q"], env });
    expect([untrustedChange.code, untrustedChange.stderr]).toEqual([1, expect.stringMatching(/^coordination: cannot reach the server at https:\/\/127\.0\.0\.1:\d+ \(self[- ]signed certificate\)/)]);
    // Without a URL, the server's own settings say where it is, HTTPS included.
    const bySettings = await runCli({
      args: ["stats", "--json"],
      env: { COORDINATION_PORT: new URL(t.url).port, COORDINATION_TLS_CERT: cert, COORDINATION_TLS_KEY: key, COORDINATION_ADMIN_TOKEN: ADMIN_SECRET, NODE_EXTRA_CA_CERTS: cert },
      cwd: dir,
    });
    expect([bySettings.code, bySettings.stderr, JSON.parse(bySettings.stdout || "{}").queues]).toEqual([0, "", []]);
  });

  it("a key that is not PEM, or not the certificate's, is a configuration error: the server exits 2 at once, naming both", async () => {
    const dir = makeTempDir();
    const [cert, key, otherKey, garbage] = ["cert.pem", "key.pem", "other-key.pem", "garbage.pem"].map((name) => join(dir, name));
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key!, "-out", cert!, "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
    execFileSync("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", otherKey!], { stdio: "ignore" });
    writeFileSync(garbage!, "garbage\n");
    // It used to start its database threads, fail on the key, and hang there with no server to stop them.
    for (const [badKey, reason] of [[garbage!, /DECODER routines::unsupported|no start line|bad base64/], [otherKey!, /key values mismatch/]] as const) {
      const exit = await runCli({ args: ["--tls-cert", cert!, "--tls-key", badKey, "--port", "0", "--db", join(dir, "c.db")] }, 20_000);
      expect(exit.code).toBe(2);
      expect(exit.stderr).toMatch(/--tls-cert = .*cert\.pem with --tls-key = .*\.pem: not a PEM certificate and its private key \(/);
      expect(exit.stderr).toMatch(reason);
    }
  });

  it("a certificate without its key is a configuration error naming both", () => {
    const dir = makeTempDir();
    expect(() => loadConfig({ env: {}, overrides: { dbPath: join(dir, "c.db"), tlsCert: join(dir, "missing.pem") } })).toThrow(
      /tlsCert = .*missing\.pem needs COORDINATION_TLS_KEY too: TLS takes a certificate and its key/,
    );
  });
});
