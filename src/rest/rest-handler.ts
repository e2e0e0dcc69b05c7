// The REST layer: the seed's routes and the rest of the API, each served by its tRPC procedure
// through a server-side caller, so both transports run the same validation, rules and errors.
// A small adapter of our own rather than trpc-to-openapi: that library coerced by mutating the
// shared zod schemas (one REST call changed what tRPC accepted), answered malformed JSON with
// 500, passed no abort signal, left path parameters encoded and overflowed on deep JSON; our
// wrapper had grown to fight all of it. Here the request is read, turned into the input
// (rest-input.ts) and answered in one place; errors take the one shape of src/errors.ts.
import type { IncomingMessage, ServerResponse } from "node:http";
import { TRPCError } from "@trpc/server";
import { unauthorized } from "../auth/access.js";
import { bearerSecret } from "../auth/token-secret.js";
import { httpTransport } from "../delivery/transports.js";
import { errorHeaders, invalidField, ERROR_STATUS, type ErrorBody } from "../errors.js";
import { JSON_DEPTH_CEILING, jsonDepth, jsonKind, nestsTooDeep } from "../json-value.js";
import type { Logger } from "../logger.js";
import { assertQueryEncoding, bodyTooLarge, mediaTypeOf, NOT_UTF8, readBody, sendJson, sendMethodNotAllowed, unreadableBody } from "../server/http-io.js";
import type { Services } from "../services.js";
import { failureOf, toErrorBody } from "../trpc/error-shape.js";
import type { Context } from "../trpc/context.js";
import { buildInput } from "./rest-input.js";
import { matchRoute, notFoundHint, type Route, type RouteMatch } from "./routes.js";

/** A body field may hold a JSON value at JSON_DEPTH_CEILING inside a few levels of its own (tasks[i].payload). */
const MAX_FIELD_DEPTH = JSON_DEPTH_CEILING + 4;

export function createRestHandler(services: Services, log: Logger) {
  /** Answers with the one error shape; INTERNAL is logged, never detailed to the client. */
  const fail = (res: ServerResponse, error: unknown, route?: Route) => {
    const body: ErrorBody = toErrorBody(error);
    if (body.code === "INTERNAL") log.error({ err: failureOf(error), path: route?.procedure }, "internal error");
    for (const [name, value] of Object.entries(errorHeaders([body.code]))) res.setHeader(name, value);
    sendJson(res, ERROR_STATUS[body.code], body);
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = requestUrl(req.url ?? "/");
    const match = routeFor(req.method ?? "GET", url.pathname);
    const matched = match.kind === "found" ? match.route : undefined;
    // Watching the response from the start: a client that leaves while its body is read is gone too.
    const transport = httpTransport(res);
    try {
      // Who is calling, before anything of the request is read: a caller without a valid
      // credential learns nothing about what it sent (not even that its JSON was malformed), nor
      // which routes and methods there are, but for the open ones (health).
      const caller = await services.credentials.authenticate(bearerSecret(req.headers.authorization), req.socket.remoteAddress);
      const open = match.kind === "found" ? match.route.access.role === "open" : match.kind === "method-not-allowed" && match.open;
      if (caller.kind === "anonymous" && !open) throw unauthorized();
      if (match.kind === "not-found") {
        const meant = notFoundHint(req.method ?? "GET", url.pathname);
        const hint = meant === undefined ? "" : `: a name or key holding "/" is one path segment, with each / written %2F (${req.method} ${meant})`;
        return sendJson(res, 404, { code: "ROUTE_NOT_FOUND", message: `no route ${req.method} ${url.pathname}${hint}` });
      }
      if (match.kind === "method-not-allowed") {
        return sendMethodNotAllowed(req, res, url.pathname, match.allow);
      }
      const { route } = match;
      const body = await readJsonBody(req, services.config.maxBodyBytes);
      // The client left while sending: no one to answer.
      if (body === "gone") return;
      if (body === "too-large") {
        // Closed after the answer: the rest of an oversized body is never read.
        res.setHeader("connection", "close");
        return sendJson(res, 413, { code: "PAYLOAD_TOO_LARGE", message: bodyTooLarge(services.config.maxBodyBytes) });
      }
      assertQueryEncoding(url.search);
      const input = buildInput(route, decodeParams(match.params), url.searchParams, body);
      // The procedure's own steps: access, schemas, delivery confirmation, resolver (direct-call.ts).
      const result = await route.call({ core: services, transport, caller, traceCarrier: req.headers } satisfies Context, input);
      if (result === null && route.emptyIsNoContent) {
        res.writeHead(204);
        return void res.end();
      }
      sendJson(res, 200, result);
    } catch (error) {
      fail(res, error, matched);
    }
  };
}

/**
 * The route for a request. HEAD is a GET whose body is not sent (Node leaves it out of a HEAD's
 * answer), as HTTP asks of every GET resource (RFC 9110 9.3.2): a monitor's `HEAD /health`, a
 * client checking a task exists. Only for the GET routes that change nothing: the seed's claim
 * (`GET /tasks/claim/{agent_id}`) is a mutation, and a HEAD must not take a task; it is a 405.
 */
function routeFor(method: string, path: string): RouteMatch {
  if (method !== "HEAD") return matchRoute(method, path);
  const asGet = matchRoute("GET", path);
  return asGet.kind === "found" && asGet.route.type === "query" ? asGet : matchRoute(method, path);
}

/**
 * The request's URL. A path read as relative to a base would make `//tasks` a host named "tasks"
 * and path "/"; a path is put after the base's host instead. Other request targets (absolute, `*`)
 * are read against the base as before.
 */
function requestUrl(target: string): URL {
  return target.startsWith("/") ? new URL(`http://localhost${target}`) : new URL(target, "http://localhost");
}

/** Path parameters, percent-decoded: /agents/worker%201 names agent "worker 1". */
function decodeParams(params: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(params).map(([name, value]) => {
      try {
        return [name, decodeURIComponent(value)];
      } catch {
        throw invalidField(name, "malformed percent-encoding in the path");
      }
    }),
  );
}

/**
 * The request's JSON body as an object: undefined when there is none, "too-large" past the
 * limit. A body must be application/json (415 otherwise: a browser can send text/plain across
 * origins without asking first), valid JSON (400 MALFORMED_JSON), an object, and not nested
 * deeper than any field may be, checked without recursion before anything recursive sees it.
 */
async function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown> | undefined | "too-large" | "gone"> {
  const unreadable = unreadableBody(req);
  if (unreadable !== undefined) throw new TRPCError({ code: "UNSUPPORTED_MEDIA_TYPE", message: unreadable });
  const read = await readBody(req, limit);
  if (read.kind === "too-large" || read.kind === "gone") return read.kind;
  if (read.kind === "not-utf8") throw invalidField("input", NOT_UTF8);
  if (read.text.trim() === "") return undefined;
  const type = mediaTypeOf(req);
  if (type !== "application/json") {
    throw new TRPCError({ code: "UNSUPPORTED_MEDIA_TYPE", message: `Request body must be application/json (got ${type || "no content-type"})` });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(read.text);
  } catch (error) {
    throw new TRPCError({ code: "PARSE_ERROR", message: `Malformed JSON body: ${(error as Error).message}` });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw invalidField("input", `Request body must be a JSON object (got ${jsonKind(parsed)})`);
  }
  const tooDeep = Object.entries(parsed).find(([, value]) => jsonDepth(value, MAX_FIELD_DEPTH) > MAX_FIELD_DEPTH);
  if (tooDeep) throw invalidField(tooDeep[0], nestsTooDeep(JSON_DEPTH_CEILING), { field: tooDeep[0], maxDepth: JSON_DEPTH_CEILING });
  return parsed as Record<string, unknown>;
}
