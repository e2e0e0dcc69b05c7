// One HTTP port for everything: tRPC over HTTP at /trpc (batching), tRPC subscriptions over
// WebSocket on the same port, the REST routes, GET /openapi.json and GET /health.
// createServer(config) -> { start, stop, url }; only the CLI installs signal handlers.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocketServer } from "ws";
import type { Config } from "../config.js";
import { httpTransport, webSocketTransport } from "../delivery/transports.js";
import { createLogger, type Logger } from "../logger.js";
import { createRestHandler } from "../rest/rest-handler.js";
import { buildOpenApiDocument } from "../rest/openapi-document.js";
import { createCoordination, type Services } from "../services.js";
import { appRouter } from "../trpc/app-router.js";
import { sendJson } from "./http-io.js";

const MAX_HEADER_BYTES = 64 * 1024;

export interface CoordinationServer {
  /** http://host:port once started. */
  readonly url: string;
  readonly port: number;
  readonly services: Services;
  start(): Promise<void>;
  /** Graceful: stop accepting, end long-polls, let requests finish (bounded), close sockets and the database. Idempotent. */
  stop(): Promise<void>;
}

export function createServer(config: Config, log: Logger = createLogger(config.logLevel)): CoordinationServer {
  const coordination = createCoordination(config, log);
  const { services } = coordination;
  const onTrpcError = ({ error, path }: { error: { code: string; cause?: unknown }; path?: string | undefined }) => {
    if (error.code === "INTERNAL_SERVER_ERROR") log.error({ err: error.cause ?? error, path }, "internal error");
  };
  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: "/trpc/",
    maxBodySize: config.maxBodyBytes,
    // A query whose input is too long for a URL may come as a POST (the client sends every query so).
    allowMethodOverride: true,
    createContext: ({ res }) => ({ core: services, transport: httpTransport(res) }),
    onError: onTrpcError,
  });
  const rest = createRestHandler(services, log);
  let openApiJson: string | undefined;

  let inFlight = 0;
  let stopping = false;
  const idle: Array<() => void> = [];

  // 64 KiB of URL and headers (Node reads 16 KiB): a recall query of 2,000 characters of any
  // script is at most 24 KB percent-encoded. Longer still is a 431 with the JSON error body.
  const http = createHttpServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    inFlight++;
    res.on("close", () => {
      inFlight--;
      // finished: the whole response was handed to the connection; false means the client left first.
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.debug({ method: req.method, url: req.url, status: res.statusCode, finished: res.writableFinished, ms }, "request");
      if (inFlight === 0) idle.splice(0).forEach((resolve) => resolve());
    });
    if (stopping) res.setHeader("connection", "close");
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/trpc" || path.startsWith("/trpc/")) return trpc(req, res);
    if (path === "/openapi.json") {
      if (req.method !== "GET") {
        res.setHeader("allow", "GET");
        return sendJson(res, 405, { code: "METHOD_NOT_ALLOWED", message: `/openapi.json answers GET, not ${req.method}` });
      }
      openApiJson ??= JSON.stringify(buildOpenApiDocument(url));
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(openApiJson);
    }
    rest(req, res).catch((error: unknown) => {
      log.error({ err: error }, "request failed");
      if (!res.headersSent) sendJson(res, 500, { code: "INTERNAL", message: "Internal server error" });
    });
  });
  // Node answers a request it cannot parse with a bare status line; say what is wrong, in the one error shape.
  http.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const [status, body] =
      error.code === "HPE_HEADER_OVERFLOW"
        ? [431, { code: "HEADERS_TOO_LARGE", message: `URL and headers exceed ${MAX_HEADER_BYTES} bytes; send long input in a POST body` }]
        : [400, { code: "INVALID_INPUT", message: "Malformed HTTP request" }];
    const text = JSON.stringify(body);
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxBodyBytes });
  const wsHandler = applyWSSHandler({
    wss,
    router: appRouter,
    createContext: ({ res }) => ({ core: services, transport: webSocketTransport(res) }),
    onError: onTrpcError,
    keepAlive: { enabled: true, pingMs: 30_000, pongWaitMs: 10_000 },
  });
  http.on("upgrade", (req, socket, head) => {
    const path = (req.url ?? "/").split("?")[0];
    if (stopping || (path !== "/trpc" && path !== "/")) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });

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
      await new Promise<void>((resolve, reject) => {
        http.once("error", reject);
        http.listen(config.port, config.host, () => {
          http.off("error", reject);
          resolve();
        });
      });
      const address = http.address() as AddressInfo;
      port = address.port;
      url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${port}`;
      log.info(
        { url, dbPath: config.dbPath, migrationsApplied: services.migrationsApplied, durability: config.durability },
        `coordination listening on ${url}`,
      );
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        log.info("shutting down");
        // Long-polls and live streams end now, so in-flight requests can finish quickly.
        coordination.beginShutdown();
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
