// One HTTP port for everything: tRPC over HTTP at /trpc (batching), tRPC subscriptions over
// WebSocket on the same port, the REST routes, GET /openapi.json and GET /health; HTTPS and WSS
// when tlsCert and tlsKey are set. Every request passes the browser guards (browser-guards.ts)
// and carries its caller (src/auth/) into the procedures, which decide what it may do.
// createServer(config) -> { start, stop, url }; only the CLI installs signal handlers.
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, ServerResponse, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocketServer, type WebSocket } from "ws";
import { unauthorized } from "../auth/access.js";
import { OPEN_CALLERS } from "../auth/credentials.js";
import { bearerSecret } from "../auth/token-secret.js";
import { ConfigError, envName, type Config } from "../config.js";
import { httpTransport, longPolls, SocketCalls, webSocketTransport } from "../delivery/transports.js";
import { CoordinationError, ERROR_STATUS, errorHeaders, shuttingDown } from "../errors.js";
import { failureOf, toErrorBody } from "../trpc/error-shape.js";
import type { Context } from "../trpc/context.js";
import { createTrpcFastPath } from "../trpc/http-fast-path.js";
import { createLogger, type Logger } from "../logger.js";
import { createRestHandler } from "../rest/rest-handler.js";
import { buildOpenApiDocument } from "../rest/openapi-document.js";
import { PerKeyLimit } from "../per-key-limit.js";
import { createCoordination, type Coordination, type Services } from "../services.js";
import { appRouter } from "../trpc/app-router.js";
import { browserGuards, isLoopback } from "./browser-guards.js";
import { createMcpEndpoint } from "../mcp/mcp-endpoint.js";
import { createDashboardHandler } from "./dashboard-files.js";
import { rawJsonResponse, sendJson, sendMethodNotAllowed, sendUnauthorized } from "./http-io.js";

const MAX_HEADER_BYTES = 64 * 1024;

/**
 * WebSocket close codes of ours (4000–4999 are the application's): 4401, the connection carried
 * no valid credential, or its credential was revoked; reconnect with a valid token.
 */
export const WS_CLOSE_UNAUTHORIZED = 4401;

/** Listening on a non-loopback address with no credentials, without --insecure. */
export class InsecureBindError extends Error {
  override name = "InsecureBindError";
}

/** The port or address could not be listened on: a sentence naming the setting to change. */
export class ListenError extends Error {
  override name = "ListenError";
}

/** Why `host:port` cannot be listened on, as a sentence naming the setting (the error itself when it is none of these). */
function listenError(error: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `cannot listen on ${host}:${port}`;
  switch (error.code) {
    case "EADDRINUSE":
      return new ListenError(`${where}: the port is in use (another server on it?); choose another with --port or COORDINATION_PORT`, { cause: error });
    case "EACCES":
      return new ListenError(`${where}: permission denied (ports below 1024 need privileges); choose another with --port or COORDINATION_PORT`, { cause: error });
    case "EADDRNOTAVAIL":
      return new ListenError(`${where}: the address is not one of this machine's; fix --host or COORDINATION_HOST`, { cause: error });
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_FAIL":
      return new ListenError(`${where}: the host name does not resolve; fix --host or COORDINATION_HOST`, { cause: error });
    default:
      return error;
  }
}

/** A server made by createServer: start() listens, stop() drains and closes. */
export interface CoordinationServer {
  /** http://host:port once started. */
  readonly url: string;
  readonly port: number;
  readonly services: Services;
  start(): Promise<void>;
  /** Graceful: stop accepting, end long-polls, let requests finish (bounded), close sockets and the database. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The HTTP server (tRPC, REST, WebSocket, MCP, dashboard, /health, /metrics) over the database
 * `config.dbPath`, which is checked, migrated and opened here (a file it cannot use throws);
 * nothing listens before start(), which rejects with a ListenError saying what to fix when the
 * address cannot be used. Config comes from loadConfig (throws ConfigError).
 */
export function createServer(config: Config, log: Logger = createLogger(config.logLevel)): CoordinationServer {
  // Read before the database threads start: a file that went away since the configuration was
  // checked fails here with nothing to stop.
  const tls = config.tlsCert === "" ? undefined : { cert: readTlsFile(config.tlsCert, "tlsCert"), key: readTlsFile(config.tlsKey, "tlsKey") };
  const coordination = createCoordination(config, log);
  try {
    return serverOver(coordination, config, log, tls);
  } catch (error) {
    // Whatever fails while the server is put together: its threads must not keep the process
    // alive, with no server to stop them.
    void coordination.close().catch(() => undefined);
    throw error;
  }
}

/** A TLS file's bytes; one it cannot read is a configuration error naming the setting (the CLI exits 2). */
function readTlsFile(path: string, setting: "tlsCert" | "tlsKey"): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError([`${envName(setting)} = ${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`]);
  }
}

/**
 * Whether a tRPC request carries one call: a batch of several ("/trpc/a,b?batch=1") holds calls the
 * client made in the same tick, from any number of traces, and its trace headers are the HTTP
 * request's, so no one call's (an instrumented client sets them from whichever context sent it).
 */
const oneCall = (url: string | undefined): boolean => !/,|%2c/i.test((url ?? "").split("?")[0]!);

function serverOver(coordination: Coordination, config: Config, log: Logger, tls: { cert: Buffer; key: Buffer } | undefined): CoordinationServer {
  const { services } = coordination;
  const onTrpcError = ({ error, path }: { error: { code: string; cause?: unknown }; path?: string | undefined }) => {
    if (error.code !== "INTERNAL_SERVER_ERROR") return;
    // ws reports a client breaking the protocol (a message past maxPayload, a bad frame) as an
    // error of the socket it then closes (1009, 1002), and tRPC passes that on as internal: it is
    // the client's, so a warning without a stack, not an internal error.
    const { code, message } = (error.cause ?? {}) as { code?: unknown; message?: unknown };
    if (typeof code === "string" && code.startsWith("WS_ERR_")) return void log.warn({ code, reason: message }, "WebSocket closed: the client broke the protocol or sent a message past maxBodyBytes");
    // A refusal of ours (a 4xx) thrown where tRPC expects none (a WebSocket's createContext refusing a
    // credential): tRPC calls anything but its own errors internal. The refusal was answered
    // (the socket closed 4401) and authentication failures are logged where they are decided.
    if (error.cause instanceof CoordinationError && ERROR_STATUS[error.cause.code] < 500) return;
    log.error({ err: failureOf(error), path }, "internal error");
  };
  const { credentials } = services;
  const createContext = async (req: IncomingMessage, res: ServerResponse): Promise<Context> => ({
    core: services,
    transport: httpTransport(res),
    caller: await credentials.authenticate(bearerSecret(req.headers.authorization), req.socket.remoteAddress),
    traceCarrier: oneCall(req.url) ? req.headers : undefined,
  });
  const guards = browserGuards(config, tls ? "https" : "http");
  const trpcAdapter = createHTTPHandler({
    router: appRouter,
    basePath: "/trpc/",
    maxBodySize: config.maxBodyBytes,
    maxBatchSize: config.maxBatchCalls,
    // A query whose input is too long for a URL may come as a POST (the client sends every query so).
    allowMethodOverride: true,
    createContext: ({ req, res }) => createContext(req, res),
    onError: onTrpcError,
    // Retry-After for the errors where retrying makes sense (a full disk, a held lock, shutdown),
    // and the bearer challenge on a 401, as the REST routes answer.
    responseMeta: ({ errors }) => ({ headers: errorHeaders(errors.map((error) => toErrorBody(error).code)) }),
  });
  // The typed client's calls skip tRPC's adapter and middleware chain; the rest goes to it (http-fast-path.ts).
  const trpc = createTrpcFastPath({
    maxBodyBytes: config.maxBodyBytes,
    maxBatchCalls: config.maxBatchCalls,
    createContext,
    onError: (error, body, path) => {
      if (body.code === "INTERNAL") log.error({ err: failureOf(error), path }, "internal error");
    },
    fallback: (req, res) => void trpcAdapter(req, res),
  });
  const rest = createRestHandler(services, log);
  const dashboard = createDashboardHandler();
  const mcp = createMcpEndpoint(services);
  const openApiJson = new Map<boolean, string>();

  let inFlight = 0;
  /**
   * Each connection's requests as HTTP/1.1 pipelining needs them: how many have not had their
   * answers go out, its latest (whether Node read it whole tells a later request's parse error
   * from its own), and the refusal of what it sent next (clientError), written once the answers
   * before it went out.
   */
  const pipelines = new WeakMap<Socket, { unanswered: number; latest: IncomingMessage; refusal: (() => void) | undefined }>();
  let stopping = false;
  const idle: Array<() => void> = [];

  // 64 KiB of URL and headers (Node reads 16 KiB): a recall query of 2,000 characters of any
  // script is at most 24 KB percent-encoded. Longer still is a 431 with the JSON error body.
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    // A connection over maxConnections was answered 429 already, one closing after an early
    // answer is on its way out: nothing more it sends is served.
    if (refused.has(req.socket) || lingering.has(req.socket)) return void req.socket.destroy();
    const started = process.hrtime.bigint();
    inFlight++;
    let pipeline = pipelines.get(req.socket);
    if (pipeline === undefined) pipelines.set(req.socket, (pipeline = { unanswered: 0, latest: req, refusal: undefined }));
    pipeline.unanswered++;
    pipeline.latest = req;
    res.on("close", () => {
      inFlight--;
      const refusal = --pipeline.unanswered === 0 ? pipeline.refusal : undefined;
      if (refusal) {
        pipeline.refusal = undefined;
        refusal();
      }
      // finished: the whole response was handed to the connection; false means the client left
      // first (Node finishes a response whose connection failed mid-body too: transports.ts).
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // No status line went out (the client left, or never sent its whole body, before one did):
      // Node's statusCode is then its default 200, which no one was answered.
      const status = res.headersSent ? res.statusCode : null;
      services.metrics.observeResponse(status);
      const finished = res.writableFinished && !req.socket.errored;
      const line = { method: req.method, url: req.url, status, finished, ms: Math.round(ms), ...requestIdOf(req) };
      // Long-polls (they said so when they parked) and MCP's notification streams wait by design.
      if (ms > config.slowRequestMs && !longPolls.has(res) && !(req.method === "GET" && (req.url ?? "").split("?")[0] === "/mcp")) log.info(line, "slow request");
      else log.debug(line, "request");
      if (inFlight === 0) idle.splice(0).forEach((resolve) => resolve());
    });
    if (stopping) res.setHeader("connection", "close");
    // HTTP/1.1 requires Host (RFC 9112 3.2): a 400, in the one error shape. Node's own check
    // (requireHostHeader, off below) answered a bare status line with no body.
    if (req.httpVersion === "1.1" && req.headers.host === undefined) {
      res.setHeader("connection", "close");
      return sendJson(res, 400, hostRequired);
    }
    const refusal = guards.refusal(req);
    if (refusal) return sendJson(res, 403, refusal);
    if (guards.preflight(req, res)) return;
    guards.decorate(req, res);
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/trpc" || path.startsWith("/trpc/")) return void trpc(req, res).catch((error: unknown) => fail(res, error));
    if (path === "/openapi.json") return void serveOpenApi(req, res).catch((error: unknown) => fail(res, error));
    if (path === "/metrics") return void serveMetrics(req, res).catch((error: unknown) => fail(res, error));
    if (path === "/mcp") return void mcp.handle(req, res).catch((error: unknown) => fail(res, error));
    if (dashboard(req, res, path)) return;
    rest(req, res).catch((error: unknown) => fail(res, error));
  };
  const fail = (res: ServerResponse, error: unknown) => {
    log.error({ err: error }, "request failed");
    if (!res.headersSent) sendJson(res, 500, { code: "INTERNAL", message: "Internal server error" });
  };
  /**
   * For the GET-only routes outside the procedures (/openapi.json, /metrics): false after
   * answering 401 when credentials are enforced, the route is not public by its setting, and the
   * request carries no valid credential, or else 405 for another method.
   */
  const mayGet = async (req: IncomingMessage, res: ServerResponse, path: string, isPublic: boolean): Promise<boolean> => {
    // The credential first, as on every route: without one, not even which methods there are.
    if (credentials.enforced && !isPublic && (await credentials.authenticate(bearerSecret(req.headers.authorization), req.socket.remoteAddress)).kind === "anonymous") {
      sendUnauthorized(res);
      return false;
    }
    // HEAD: the GET's answer without its body (Node sends none for a HEAD), as HTTP asks of a GET resource.
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendMethodNotAllowed(req, res, path, ["GET", "HEAD"]);
      return false;
    }
    return true;
  };
  /** The document declares the bearer scheme exactly when credentials are enforced; it needs one itself unless publicDocs. */
  const serveOpenApi = async (req: IncomingMessage, res: ServerResponse) => {
    if (!(await mayGet(req, res, "/openapi.json", config.publicDocs))) return;
    const enforced = credentials.enforced;
    let text = openApiJson.get(enforced);
    if (text === undefined) openApiJson.set(enforced, (text = JSON.stringify(buildOpenApiDocument({ bearer: enforced }))));
    res.writeHead(200, { "content-type": "application/json" });
    res.end(text);
  };
  /** Prometheus text; with credentials enforced, any valid token may scrape unless publicMetrics. */
  const serveMetrics = async (req: IncomingMessage, res: ServerResponse) => {
    if (!(await mayGet(req, res, "/metrics", config.publicMetrics))) return;
    const text = await services.metrics.render();
    res.writeHead(200, { "content-type": services.metrics.contentType });
    res.end(text);
  };
  // Node's own timeouts are a minute for the headers and five for a request, checked every 30 s:
  // 40 clients trickling a header line every 5 s held every slot of a 40-connection server for
  // over a minute (a trial). Ours are settings, checked often enough to keep them.
  const timeouts = {
    headersTimeout: Math.min(config.headersTimeoutMs, config.requestTimeoutMs),
    requestTimeout: config.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(config.headersTimeoutMs / 4))),
  };
  const http = tls
    ? createHttpsServer({ ...tls, maxHeaderSize: MAX_HEADER_BYTES, requireHostHeader: false, ServerResponse: EarlyAnswerClosing, handshakeTimeout: config.headersTimeoutMs, ...timeouts }, handle)
    : createHttpServer({ maxHeaderSize: MAX_HEADER_BYTES, requireHostHeader: false, ServerResponse: EarlyAnswerClosing, ...timeouts }, handle);

  // Open connections are bounded (maxConnections): one more is answered 429 (plain HTTP; under
  // TLS it is dropped, having no handshake yet) and destroyed, before anything it sends is
  // served, so a client that opens sockets without end cannot exhaust file descriptors. Counted
  // on the raw TCP connection, ahead of Node's own listener.
  let connections = 0;
  const refused = new WeakSet<Socket>();
  /** Connections given back to the HTTP parser after an upgrade they offered was not taken (serveWithoutUpgrade). */
  const reparsed = new WeakSet<Socket>();
  const tooManyConnections = rawJsonResponse(429, { code: "LIMIT_EXCEEDED", message: `The server has ${config.maxConnections} connections open (setting maxConnections); retry later` });
  http.prependListener("connection", (socket: Socket) => {
    // A connection handed back to the HTTP parser after an upgrade it did not take was counted when it opened.
    if (reparsed.has(socket)) return;
    if (connections >= config.maxConnections) {
      refused.add(socket);
      if (tls) return void socket.destroy();
      socket.end(tooManyConnections, () => socket.destroy());
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    connections++;
    // Node's checks answer a connection that sends nothing in time with a 408 too; should one
    // not (a connection its checks do not see), it is closed at twice headersTimeoutMs.
    const silent = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, 2 * config.headersTimeoutMs);
    silent.unref();
    socket.once("close", () => {
      connections--;
      clearTimeout(silent);
    });
  });

  // Node answers a request it cannot parse with a bare status line; say what is wrong, in the one error shape.
  // Requests pipelined ahead of it on the connection were read whole and run: their answers go
  // out first, in order (RFC 9112 9.3.2), then this one, and the connection closes. Written at
  // once, it cut theirs off, and a client reading answers in order took the 400 for its first
  // request's, which had run (an enqueue stored, a claim taken back as undelivered).
  http.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    // Only a request after those being answered waits for them: an error inside the body of the
    // one being read (a bad chunk size, the client gone mid-body: HPE_INVALID_EOF_STATE) is that
    // request's own, whose handler waits for a body that never comes, and a failed connection (a
    // reset) has no one to answer. Deferred, neither ended: the connection stayed open, and the
    // request was never counted or logged. They are refused at once, as before.
    const pipeline = pipelines.get(socket);
    if (isRequestRefusal(error) && pipeline !== undefined && pipeline.unanswered > 0 && pipeline.latest.complete) {
      // Node reports the parser's error again for each later chunk: the first is the one answered.
      pipeline.refusal ??= () => refuseRequest(error, socket);
      return;
    }
    refuseRequest(error, socket);
  });
  const refuseRequest = (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const [status, body] =
      error.code === "HPE_HEADER_OVERFLOW"
        ? [431, { code: "HEADERS_TOO_LARGE", message: `URL and headers exceed ${MAX_HEADER_BYTES} bytes; send long input in a POST body` }]
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, { code: "REQUEST_TIMEOUT", message: "The request was not received in time" }]
          : [400, { code: "INVALID_INPUT", message: "Malformed HTTP request", details: { issues: [{ path: "input", message: "Malformed HTTP request" }] } }];
    // Sent, then destroyed: end() alone half-closes, and a client that never closes its side (one
    // that never finished a request either) kept its connection, and its maxConnections slot.
    // Destroyed once the answer is flushed (at once, a TLS write would be dropped), or a second
    // later whatever the client does.
    socket.end(rawJsonResponse(status, body), () => socket.destroy());
    setTimeout(() => socket.destroy(), 1000).unref();
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxBodyBytes });
  /** Open WebSockets' calls in progress by the token they authenticated with: each socket is closed when it is revoked, once its calls were answered. */
  const socketsByToken = new Map<string, Set<SocketCalls>>();
  /**
   * WebSockets that said they would send connectionParams (the credential) and have not yet: a
   * socket that never does is closed 4401 after wsAuthTimeoutMs, or it would hold a connection,
   * unauthenticated, for as long as it answers pings.
   */
  const awaitingCredentials = new WeakMap<WebSocket, NodeJS.Timeout>();
  wss.on("connection", (socket: WebSocket, req: IncomingMessage) => {
    if (!new URLSearchParams((req.url ?? "").split("?")[1] ?? "").has("connectionParams")) return;
    const timer = setTimeout(() => socket.close(WS_CLOSE_UNAUTHORIZED, `no connectionParams within ${config.wsAuthTimeoutMs} ms`), config.wsAuthTimeoutMs);
    timer.unref();
    awaitingCredentials.set(socket, timer);
    socket.once("close", () => clearTimeout(timer));
  });
  const unlistenRevoked = credentials.onRevoked((tokenId) => {
    const reason = tokenId === OPEN_CALLERS ? "credentials are now required" : "credential revoked";
    for (const calls of socketsByToken.get(tokenId) ?? []) calls.closeWhenAnswered(WS_CLOSE_UNAUTHORIZED, reason, config.shutdownTimeoutMs);
  });
  // One credential's live streams, over all its sockets: a read token opened 20,000 (200 sockets
  // of 100) and every event's fan-out held /health for seconds (a trial).
  const streamsByCredential = new PerKeyLimit(config.maxSubscriptionsPerCredential, () => "too many live subscriptions under this credential", "maxSubscriptionsPerCredential");
  const wsHandler = applyWSSHandler({
    wss,
    router: appRouter,
    maxBatchSize: config.maxBatchCalls,
    // Runs once per connection, before any call on it: with the client's connectionParams when
    // it sends them (the typed client does, with its token), else at once.
    createContext: async ({ req, res, info }) => {
      clearTimeout(awaitingCredentials.get(res));
      const token = info.connectionParams?.["token"];
      const caller = await credentials.authenticate(token ?? bearerSecret(req.headers.authorization), req.socket.remoteAddress);
      if (caller.kind === "anonymous") {
        res.close(WS_CLOSE_UNAUTHORIZED, "unauthorized");
        throw unauthorized();
      }
      // Kept by credential, to be closed when it is revoked; open callers as one group, closed
      // when credentials become enforced.
      const calls = new SocketCalls(res, { maxCalls: config.maxBatchCalls, maxQueuedBytes: config.subscriptionBufferBytes });
      if (caller.kind === "token") {
        const { tokenId } = caller;
        res.on("message", () => credentials.noteUse(tokenId));
      }
      const group = credentials.revocationKey(caller);
      if (group !== undefined) {
        const sockets = socketsByToken.get(group) ?? new Set();
        socketsByToken.set(group, sockets.add(calls));
        res.once("close", () => {
          sockets.delete(calls);
          if (sockets.size === 0) socketsByToken.delete(group);
        });
      }
      const streams = new PerKeyLimit(config.maxSubscriptionsPerSocket, () => "too many live subscriptions on this WebSocket", "maxSubscriptionsPerSocket");
      const credentialKey = caller.kind === "token" ? `token:${caller.tokenId}` : caller.kind;
      return { core: services, transport: webSocketTransport(res, streams, calls, () => streamsByCredential.acquire(credentialKey)), caller };
    },
    onError: onTrpcError,
    keepAlive: { enabled: true, pingMs: 30_000, pongWaitMs: 10_000 },
  });
  // Node hands every request with an Upgrade header here, whatever protocol it offers (Node 20
  // has no way to take only WebSockets). One that offers anything else (`curl --http2` and Java's
  // HttpClient offer h2c on http:// URLs) is an HTTP/1.1 request all the same: it is parsed again
  // without the offer and served as any other, as RFC 9110 7.8 lets a server ignore an Upgrade
  // (and the seed's uvicorn does). Answered here, each such call was a bare 404 and never ran.
  http.on("upgrade", (req, socket, head) => {
    if (refused.has(socket as Socket)) return void socket.destroy();
    if (!asksForWebSocket(req)) return void serveWithoutUpgrade(req, socket as Socket, head);
    const path = (req.url ?? "/").split("?")[0];
    if (stopping) return void socket.end(rawJsonResponse(503, { code: "SHUTTING_DOWN", message: shuttingDown().message }));
    if (path !== "/trpc" && path !== "/") {
      return void socket.end(rawJsonResponse(404, { code: "ROUTE_NOT_FOUND", message: `no WebSocket at ${path}: tRPC subscriptions are served at /trpc` }));
    }
    // Without Host, as any HTTP/1.1 request (Node's own check is off: see requireHostHeader).
    if (req.headers.host === undefined) return void socket.end(rawJsonResponse(400, hostRequired));
    // A browser always sends Origin on a WebSocket: a page from another origin is refused here.
    const refusal = guards.refusal(req);
    if (refusal) return void socket.end(rawJsonResponse(403, refusal));
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });

  // CONNECT asks for a tunnel (a proxy's method): Node hands it here, and with no listener closed
  // the connection with no answer at all, which a client reports as a network failure.
  http.on("connect", (req, socket) => {
    if (refused.has(socket as Socket)) return void socket.destroy();
    socket.end(rawJsonResponse(405, { code: "METHOD_NOT_ALLOWED", message: `CONNECT is not served: this server is no proxy (${req.url ?? ""})` }));
  });

  /**
   * Gives a request that offered an upgrade back to Node's HTTP parser, its head written again
   * without the offer (Upgrade, HTTP2-Settings and their Connection tokens) ahead of the bytes
   * read after it, as a connection of its own: Node parses it, its body and any request behind
   * it as it parses every request, on the same socket.
   */
  const serveWithoutUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.unshift(Buffer.concat([Buffer.from(headWithoutUpgrade(req), "latin1"), head]));
    reparsed.add(socket);
    // Under TLS, Node's HTTP parser listens for the secured connection (the raw one is TLS's).
    http.emit(tls ? "secureConnection" : "connection", socket);
  };

  let url = "";
  let port = 0;
  let stopped: Promise<void> | undefined;

  return {
    get url() {
      return url;
    },
    get port() {
      return port;
    },
    services,
    async start() {
      // The database threads first: nothing is served before they answer.
      await coordination.start();
      if (!credentials.enforced && !isLoopback(config.host)) {
        if (!config.insecure) {
          throw new InsecureBindError(
            `refusing to listen on ${config.host} with no credentials: anyone who reaches the port would control every agent. ` +
              "Set COORDINATION_ADMIN_TOKEN (or issue tokens with `coordination tokens create`), or pass --insecure to accept that",
          );
        }
        log.warn({ host: config.host }, "listening on a non-loopback address with no credentials (--insecure): anyone who reaches the port controls every agent");
      }
      await new Promise<void>((resolve, reject) => {
        const failed = (error: NodeJS.ErrnoException) => reject(listenError(error, config.host, config.port));
        http.once("error", failed);
        http.listen(config.port, config.host, () => {
          http.off("error", failed);
          resolve();
        });
      });
      const address = http.address() as AddressInfo;
      port = address.port;
      url = `${tls ? "https" : "http"}://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${port}`;
      log.info(
        { url, dbPath: config.dbPath, migrationsApplied: services.migrationsApplied, durability: config.durability, credentials: credentials.enforced ? "enforced" : "none" },
        `coordination listening on ${url}`,
      );
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        unlistenRevoked();
        log.info("shutting down");
        // Long-polls and live streams end now, so in-flight requests can finish quickly.
        coordination.beginShutdown();
        // MCP tool calls under way are answered like any request in flight; only then do their
        // sessions end (closing them first dropped the answers: a client waited out its timeout).
        // Their notification streams end now: they would hold the drain until its timeout.
        mcp.endStreams();
        const closed = new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeIdleConnections();
        // Tell tRPC clients to reconnect (to a new server), then close their sockets.
        wsHandler.broadcastReconnectNotification();
        for (const client of wss.clients) client.close(1012, "server shutting down");
        if (inFlight > 0) {
          const drained = new Promise<void>((resolve) => idle.push(resolve));
          const timeout = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs).unref());
          await Promise.race([drained, timeout]);
        }
        await mcp.close();
        http.closeAllConnections();
        for (const client of wss.clients) client.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        await closed;
        await coordination.close();
        log.info("stopped");
      })();
      return stopped;
    },
  };
}

/** Whether a request with an Upgrade header asks for a WebSocket (RFC 6455 4.1: the token is case-insensitive). */
function asksForWebSocket(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? "").split(",").some((protocol) => protocol.trim().toLowerCase() === "websocket");
}

/** Headers of an upgrade offer, hop-by-hop: they go when the offer is ignored (RFC 9110 7.6.1, 7.8; RFC 7540 3.2.1). */
const UPGRADE_HEADERS = new Set(["upgrade", "http2-settings"]);

/**
 * The request line and headers of `req` as it was sent, less its upgrade offer. Node reads header
 * bytes as latin1 and refuses CR and LF in them: written back as latin1, they are the bytes sent.
 */
function headWithoutUpgrade(req: IncomingMessage): string {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (UPGRADE_HEADERS.has(lower)) continue;
    if (lower === "connection") {
      const kept = value.split(",").map((token) => token.trim()).filter((token) => token !== "" && !UPGRADE_HEADERS.has(token.toLowerCase()));
      if (kept.length > 0) lines.push(`${name}: ${kept.join(", ")}`);
      continue;
    }
    lines.push(`${name}: ${value}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** The refusal of an HTTP/1.1 request (or WebSocket upgrade) without Host (RFC 9112 3.2). */
const HOST_REQUIRED_MESSAGE = "An HTTP/1.1 request must carry a Host header";
/** Whether Node's clientError is one the client is answered for (an unparsable request, one too slow): its parser's errors and its request timeout. */
const isRequestRefusal = (error: NodeJS.ErrnoException): boolean => (error.code ?? "").startsWith("HPE_") || error.code === "ERR_HTTP_REQUEST_TIMEOUT";

const hostRequired = { code: "INVALID_INPUT", message: HOST_REQUIRED_MESSAGE, details: { issues: [{ path: "input", message: HOST_REQUIRED_MESSAGE }] } };

/** Connections being closed after an answer given before their request's body was all read: no request on them is run any more. */
const lingering = new WeakSet<Socket>();

/**
 * A response that ends its connection when it is answered before its request's body was all read
 * (a 401, a guard's refusal, a route that takes no body): it says `connection: close`, and the
 * connection closes after it by a lingering close. Kept alive, Node read the rest of the body to
 * reuse the connection, however long a client went on streaming it (10 GB behind a bad token, in
 * a trial), and ran a request sent after it. Decided as the head is written: every answer's head
 * goes through writeHead (res.end without it calls it too).
 */
class EarlyAnswerClosing extends ServerResponse<IncomingMessage> {}
const nodeWriteHead = ServerResponse.prototype.writeHead as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
// Assigned, not declared: writeHead's overloads cannot be restated by an override.
EarlyAnswerClosing.prototype.writeHead = function (this: EarlyAnswerClosing, ...args: unknown[]) {
  const socket = this.req.socket;
  if (!this.req.complete && !lingering.has(socket)) {
    this.shouldKeepAlive = false;
    lingering.add(socket);
    // Node ends a connection: close answer with destroySoon, which closes with the body's bytes
    // unread: the kernel then resets the connection, and the client may lose the answer.
    socket.destroySoon = () => lingeringClose(socket);
  }
  return nodeWriteHead.apply(this, args);
} as ServerResponse["writeHead"];

/** How long, and how many more bytes, a connection closing after an early answer reads on (and drops). */
const LINGER_MS = 500;
const LINGER_BYTES = 1024 * 1024;

/**
 * Closes a connection whose answer went out before its request's body was all read: the server
 * stops writing (FIN after the answer) and reads on, dropping what comes, for at most LINGER_MS or
 * LINGER_BYTES, then closes (a "lingering close", as HTTP servers do), so that the client is not
 * reset before it has read its answer.
 */
function lingeringClose(socket: Socket): void {
  if (socket.destroyed) return;
  socket.end();
  const readBefore = socket.bytesRead;
  // Node's parser reads the socket natively, with no data events: its count is looked at.
  const watch = setInterval(() => {
    if (socket.bytesRead - readBefore > LINGER_BYTES) socket.destroy();
  }, 25);
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  watch.unref();
  timer.unref();
  socket.once("close", () => {
    clearInterval(watch);
    clearTimeout(timer);
  });
}

/**
 * The client's X-Request-Id, for its request's log line: a caller can find its own request in
 * the server's log. Only a short printable one, so a client cannot write what it likes there.
 */
function requestIdOf(req: IncomingMessage): { requestId?: string } {
  const id = req.headers["x-request-id"];
  return typeof id === "string" && id.length <= 200 && /^[\x21-\x7e]+$/.test(id) ? { requestId: id } : {};
}
