// What keeps a web page from using the server through its visitor's browser. Three doors:
//  - DNS rebinding: a page on attacker.example re-points its name at 127.0.0.1 and calls the
//    server as same-origin. The Host header still says attacker.example: a server bound to
//    loopback serves only loopback names and the allowedHosts setting (403 otherwise).
//  - Cross-origin calls: a browser names the calling page in Origin (every WebSocket, every
//    CORS request) or at least says cross-site in Sec-Fetch-Site (even an <img> GET). Only the
//    server's own origin and the allowedOrigins setting are served; preflights are answered for
//    those alone, and their responses carry Access-Control-Allow-Origin.
//  - Simple requests: a text/plain POST needs no preflight; REST bodies must be application/json
//    (src/rest/rest-handler.ts) and tRPC refuses other types itself.
// Programs (the typed client, curl, Python) send neither Origin nor Sec-Fetch-Site and are not
// affected.
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import type { Config } from "../config.js";
import type { ErrorBody } from "../errors.js";

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "::1"]);

/** Whether `host` (a bind address or a Host name) is the loopback interface. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  return LOOPBACK_NAMES.has(bare) || bare.endsWith(".localhost") || (isIP(bare) === 4 && bare.startsWith("127."));
}

/** The host name of a Host header, without port or brackets: "[::1]:8000" is "::1". */
function hostName(header: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed) return bracketed[1]!.toLowerCase();
  return header.replace(/:\d+$/, "").toLowerCase();
}

export interface BrowserGuards {
  /** Why this request is refused (403), or undefined when it may go on. */
  refusal(req: IncomingMessage): ErrorBody | undefined;
  /** Answers a CORS preflight (an OPTIONS with Origin); false when the request is not one. */
  preflight(req: IncomingMessage, res: ServerResponse): boolean;
  /** Adds Access-Control-Allow-Origin for an allowed cross-origin caller. */
  decorate(req: IncomingMessage, res: ServerResponse): void;
}

export function browserGuards(config: Config, scheme: "http" | "https"): BrowserGuards {
  const allowedOrigins = new Set(config.allowedOrigins.map((origin) => origin.toLowerCase()));
  const allowedHosts = new Set(config.allowedHosts.map((host) => hostName(host)));
  const boundToLoopback = isLoopback(config.host);

  const hostAllowed = (name: string): boolean => {
    if (allowedHosts.has(name)) return true;
    if (boundToLoopback) return isLoopback(name);
    return allowedHosts.size === 0;
  };
  /** An Origin the server serves: an allowed one, or its own (same-origin, once Host is trusted). */
  const originAllowed = (origin: string, host: string): boolean => allowedOrigins.has(origin.toLowerCase()) || origin.toLowerCase() === `${scheme}://${host.toLowerCase()}`;

  const crossOriginAllowed = (req: IncomingMessage): string | undefined => {
    const origin = req.headers.origin;
    return origin !== undefined && allowedOrigins.has(origin.toLowerCase()) ? origin : undefined;
  };

  return {
    refusal(req) {
      const host = req.headers.host;
      // No Host at all is an HTTP/1.0 request (an HTTP/1.1 one is a 400 before this): no browser
      // sends one (fetch, XHR and WebSockets are HTTP/1.1 or later, with Host), so it cannot be a
      // page's rebinding. Load balancers' health checks send them (HAProxy's `option httpchk`).
      if (host === undefined) return undefined;
      if (!hostAllowed(hostName(host))) {
        return { code: "FORBIDDEN", message: `Host ${JSON.stringify(host)} is not served here (setting allowedHosts)` };
      }
      const origin = req.headers.origin;
      if (origin !== undefined) {
        if (!originAllowed(origin, host)) return { code: "FORBIDDEN", message: `Origin ${JSON.stringify(origin)} is not allowed (setting allowedOrigins)` };
        return undefined;
      }
      const site = req.headers["sec-fetch-site"];
      if (site === "cross-site" || site === "same-site") return { code: "FORBIDDEN", message: "Cross-site requests without an allowed Origin are refused (setting allowedOrigins)" };
      return undefined;
    },
    preflight(req, res) {
      if (req.method !== "OPTIONS" || req.headers.origin === undefined) return false;
      const origin = crossOriginAllowed(req);
      if (origin === undefined) return false;
      res.writeHead(204, {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE",
        "access-control-allow-headers": req.headers["access-control-request-headers"] ?? "authorization, content-type",
        "access-control-max-age": "600",
        vary: "Origin",
      });
      res.end();
      return true;
    },
    decorate(req, res) {
      const origin = crossOriginAllowed(req);
      if (origin === undefined) return;
      res.setHeader("access-control-allow-origin", origin);
      // CORS shows a page only the safelisted headers of an answer: the ones an error's meaning
      // rests on (when to retry, which methods there are, that a credential is wanted) are exposed.
      res.setHeader("access-control-expose-headers", "allow, retry-after, www-authenticate");
      res.setHeader("vary", "Origin");
    },
  };
}
