// Small HTTP helpers shared by the server and the REST layer.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { unauthorized } from "../auth/access.js";
import { invalidField } from "../errors.js";

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/**
 * A method `path` does not serve: 405 with Allow, as RFC 9110 15.5.6 asks. OPTIONS, which asks
 * what a path serves (load balancers' health checks send it: HAProxy's `option httpchk` by
 * default), is answered instead: 204 with the same Allow, OPTIONS included. A CORS preflight
 * never gets here (browser-guards.ts answers it).
 */
export function sendMethodNotAllowed(req: IncomingMessage, res: ServerResponse, path: string, allow: readonly string[]): void {
  if (req.method === "OPTIONS") {
    res.writeHead(204, { allow: [...allow, "OPTIONS"].join(", ") });
    return void res.end();
  }
  res.setHeader("allow", allow.join(", "));
  sendJson(res, 405, { code: "METHOD_NOT_ALLOWED", message: `${path} answers ${allow.join(", ")}, not ${req.method}` });
}

/** The 401 of routes outside the procedures (/openapi.json, /metrics, /mcp): the bearer challenge and the one error shape. */
export function sendUnauthorized(res: ServerResponse): void {
  res.setHeader("www-authenticate", "Bearer");
  sendJson(res, 401, { code: "UNAUTHORIZED", message: unauthorized().message });
}

/**
 * A whole HTTP/1.1 response with a JSON body, as text for a raw socket, where no ServerResponse
 * exists (a request Node could not parse, a refused upgrade, a connection over the limit). The
 * connection closes after it.
 */
export function rawJsonResponse(status: number, body: unknown): string {
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`;
}

/** A body's bytes as text: the bytes must be UTF-8 (a BOM is kept, and is not JSON). */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** `bytes` as text, or undefined when they are not UTF-8 (never U+FFFD in place of the bad ones). */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Reads a request body up to `limit` bytes. Past the limit it answers "too-large" at once and
 * reads no further: the 413 goes out with `connection: close` (see sendTooLarge), so a client
 * streaming an endless chunked body cannot keep the server reading. Bytes that are not UTF-8 are
 * "not-utf8", never text with U+FFFD in their place (a request must not run on text its client
 * never sent); a client that left while sending is "gone" (there is no one to answer).
 */
export function readBody(req: IncomingMessage, limit: number): Promise<{ kind: "ok"; text: string } | { kind: "too-large" } | { kind: "not-utf8" } | { kind: "gone" }> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ kind: "too-large" });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off("data", onData);
      req.pause();
      resolve({ kind: "too-large" });
    };
    req.on("data", onData);
    req.on("end", () => {
      const text = decodeUtf8(Buffer.concat(chunks));
      // The listeners stay on the request as long as it lives (a long-poll's): not the bytes.
      chunks.length = 0;
      resolve(text === undefined ? { kind: "not-utf8" } : { kind: "ok", text });
    });
    req.on("error", () => resolve({ kind: "gone" }));
    // A connection closed mid-body may end the request with no error event at all.
    req.on("close", () => {
      if (!req.complete) resolve({ kind: "gone" });
    });
  });
}

/** The request's media type, lower-cased, without parameters ("application/json"; "" when none). */
export const mediaTypeOf = (req: IncomingMessage): string => (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();

/**
 * Why a request's body cannot be read as it is declared, or undefined: a Content-Encoding (the
 * server reads no compressed body: gzip bytes would be refused as "not UTF-8", or worse, read),
 * a transfer coding other than chunked (Node's parser frames the chunks and hands over the bytes
 * still coded, as gzip or whatever "x-custom" means: the same), or a charset other than UTF-8
 * (the bytes would be read as text the client did not mean).
 */
export function unreadableBody(req: IncomingMessage): string | undefined {
  const encoding = (req.headers["content-encoding"] ?? "").trim().toLowerCase();
  if (encoding !== "" && encoding !== "identity") return `Content-Encoding "${encoding}" is not supported: send the body uncompressed`;
  // Node accepts a request only when chunked is the last coding (RFC 9112 6.3), and joins repeated headers with ", ".
  const transfer = (req.headers["transfer-encoding"] ?? "").trim().toLowerCase();
  if (transfer !== "" && transfer.split(",").some((coding) => coding.trim() !== "chunked")) {
    return `Transfer-Encoding "${transfer}" is not supported: send the body chunked or with a Content-Length, uncompressed`;
  }
  const charset = /;\s*charset\s*=\s*"?([^";]*)"?/i.exec(req.headers["content-type"] ?? "")?.[1]?.trim().toLowerCase();
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") return `charset "${charset}" is not supported: bodies are UTF-8`;
  return undefined;
}

/** The sentence for a body past maxBodyBytes, on every transport (REST, tRPC, MCP): the limit, the setting that raises it, what to do. */
export const bodyTooLarge = (maxBodyBytes: number): string => `Request body exceeds ${maxBodyBytes} bytes (the server's maxBodyBytes, COORDINATION_MAX_BODY_BYTES): send less in one request`;

/** The sentence for a body that is not UTF-8. */
export const NOT_UTF8 = "Request body is not valid UTF-8 text";

/**
 * A query string's escapes must be UTF-8, as a path's must: URLSearchParams would turn the bytes
 * of a bad one into U+FFFD and the request would run with text the client never sent (a claim
 * with capability "\uFFFD\uFFFD\uFFFD", a search for it). A `%` that starts no escape stays a
 * `%`, as URLSearchParams keeps it (`?query=100%`).
 */
export function assertQueryEncoding(search: string): void {
  if (!search.includes("%")) return;
  for (const pair of search.slice(1).split("&")) {
    if (!pair.includes("%")) continue;
    const [rawName = "", ...rest] = pair.split("=");
    if (!isUtf8(rawName) || !isUtf8(rest.join("="))) {
      throw invalidField(new URLSearchParams(`${rawName}=`).keys().next().value ?? rawName, "malformed percent-encoding in the query string");
    }
  }
}

/** A `%` that starts no escape: kept as the text it is, as URLSearchParams keeps it. */
const LONE_PERCENT = /%(?![0-9A-Fa-f]{2})/g;

/**
 * Whether the bytes a form-encoded component's escapes stand for are UTF-8 (what URLSearchParams
 * decodes, without its U+FFFD). decodeURIComponent refuses exactly those (truncated, overlong,
 * surrogates, stray continuation bytes), in native code: a query string may be 64 KB.
 */
function isUtf8(component: string): boolean {
  if (!component.includes("%")) return true;
  try {
    decodeURIComponent(component.replace(LONE_PERCENT, "%25"));
    return true;
  } catch {
    return false;
  }
}
