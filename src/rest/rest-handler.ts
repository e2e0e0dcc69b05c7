// The REST compatibility layer: trpc-to-openapi serves each procedure's `meta.openapi` route.
// Wrapped once, here, for what it does not do by itself:
//  - it reads the body only for an exact "application/json" and answers malformed JSON with 500:
//    we read and parse the body ourselves (413 over the limit, 400 on bad JSON, {} when empty);
//  - it spreads the body into the input, so `[1]`, `"x"` or `null` would pass as an empty object:
//    a body that is not a JSON object is a 400;
//  - it calls procedures without the request's abort signal: we pass one, so a long-poll ends when
//    its client disconnects;
//  - it hands path parameters over still percent-encoded (`/agents/worker%201` would look up
//    agent "worker%201"; mcampa/trpc-to-openapi#166): they are decoded before the procedure runs;
//  - an empty claim would be `200 null`: the contract says 204;
//  - input errors would say only "Input validation failed": the message names each field.
import type { IncomingMessage, ServerResponse } from "node:http";
import { TRPCError } from "@trpc/server";
import { createOpenApiNodeHttpHandler, type OpenApiMeta } from "trpc-to-openapi";
import type { Logger } from "../logger.js";
import type { Services } from "../services.js";
import { appRouter } from "../trpc/app-router.js";
import { describeIssues, type Context } from "../trpc/init.js";
import { httpTransport } from "../delivery/transports.js";
import { JSON_DEPTH_CEILING, jsonDepth } from "../json-value.js";
import { readBody, sendJson, sendTooLarge } from "../server/http-io.js";

/** Procedures whose `null` result means "nothing available": REST answers 204 No Content. */
const EMPTY_MEANS_NO_CONTENT = new Set(["tasks.claim", "tasks.claimNext"]);
const METHODS_WITH_BODY = new Set(["POST", "PUT", "PATCH"]);
/** A body field may hold a JSON value at JSON_DEPTH_CEILING inside a few levels of its own (tasks[i].payload). */
const MAX_FIELD_DEPTH = JSON_DEPTH_CEILING + 4;

/** Path parameter names of each REST procedure: "tasks.get" → ["taskId"]. */
const PATH_PARAMS: ReadonlyMap<string, readonly string[]> = new Map(
  // At run time `_def.procedures` is flat, keyed by dotted path (what trpc-to-openapi walks too).
  Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { meta?: OpenApiMeta } }>).map(([path, procedure]) => [
    path,
    [...(procedure._def.meta?.openapi?.path ?? "").matchAll(/\{(\w+)\}/g)].map((match) => match[1]!),
  ]),
);

function decodePathParams(input: unknown, names: readonly string[] | undefined): unknown {
  if (!names?.length || typeof input !== "object" || input === null) return input;
  const decoded: Record<string, unknown> = { ...input };
  for (const name of names) {
    const value = decoded[name];
    if (typeof value !== "string") continue;
    try {
      decoded[name] = decodeURIComponent(value);
    } catch {
      throw new TRPCError({ code: "BAD_REQUEST", message: `Invalid input: ${name}: malformed percent-encoding in the path` });
    }
  }
  return decoded;
}

type CallerNode = { [key: string]: CallerNode } & ((input: unknown) => Promise<unknown>);

/**
 * The router trpc-to-openapi calls procedures through (`router.createCaller(ctx)`, then
 * `caller.tasks.get(input)`): the same router, with a caller that decodes path parameters first.
 * Only the path the handler walks is built, so a request pays for one procedure, not all.
 */
const decodingRouter: typeof appRouter = Object.assign({}, appRouter, {
  createCaller: (ctx: Context, options?: Parameters<typeof appRouter.createCaller>[1]) => {
    // trpc-to-openapi passes no signal; consuming procedures take the client's from ctx.transport.
    const caller = appRouter.createCaller(ctx, options) as unknown as CallerNode;
    const at = (segments: string[]): unknown => {
      const names = PATH_PARAMS.get(segments.join("."));
      if (names) {
        const procedure = segments.reduce((node, key) => node[key]!, caller);
        return (input: unknown) => procedure(decodePathParams(input, names));
      }
      return new Proxy({}, { get: (_, key) => (typeof key === "string" ? at([...segments, key]) : undefined) });
    };
    return at([]);
  },
}) as unknown as typeof appRouter;

export function createRestHandler(services: Services, log: Logger) {
  const handle = createOpenApiNodeHttpHandler({
    router: decodingRouter,
    createContext: ({ res }) => ({ services, transport: httpTransport(res) }),
    maxBodySize: services.config.maxBodyBytes,
    responseMeta: ({ paths, data, errors }) =>
      errors.length === 0 && data[0] === null && paths?.[0] && EMPTY_MEANS_NO_CONTENT.has(paths[0]) ? { status: 204 } : {},
    onError: ({ error, path }) => {
      if (error.code === "INTERNAL_SERVER_ERROR") log.error({ err: error.cause ?? error, path }, "internal error");
    },
  });

  return async (req: IncomingMessage & { body?: unknown }, res: ServerResponse): Promise<void> => {
    if (METHODS_WITH_BODY.has(req.method ?? "")) {
      const body = await readBody(req, services.config.maxBodyBytes);
      if (body.kind === "too-large") {
        return sendTooLarge(res, services.config.maxBodyBytes);
      }
      if (body.text.trim() === "") req.body = {};
      else {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.text);
        } catch (error) {
          return sendJson(res, 400, { code: "PARSE_ERROR", message: `Malformed JSON body: ${(error as Error).message}` });
        }
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
          const got = Array.isArray(parsed) ? "an array" : parsed === null ? "null" : `a ${typeof parsed}`;
          return sendJson(res, 400, { code: "BAD_REQUEST", message: `Request body must be a JSON object (got ${got})` });
        }
        // Checked without recursion before anything walks the body: a body nested thousands of
        // levels deep would overflow the stack of whatever recursed first (a 500).
        const tooDeep = Object.entries(parsed).find(([, value]) => jsonDepth(value, MAX_FIELD_DEPTH) > MAX_FIELD_DEPTH);
        if (tooDeep) {
          return sendJson(res, 400, { code: "BAD_REQUEST", message: `Invalid input: ${tooDeep[0]}: nests deeper than ${JSON_DEPTH_CEILING} levels` });
        }
        req.body = parsed;
      }
      // We parsed it already; the library only needs to see JSON.
      req.headers["content-type"] = "application/json";
    }
    rewriteValidationErrors(res);
    await handle(req, res);
  };
}

/** Replaces the library's generic "Input validation failed" with one naming each invalid field. */
function rewriteValidationErrors(res: ServerResponse): void {
  const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse;
  res.end = ((chunk?: unknown) => {
    if (res.statusCode === 400 && typeof chunk === "string") {
      try {
        const body = JSON.parse(chunk) as { message?: string; issues?: Array<{ path: PropertyKey[]; message: string }> };
        if (Array.isArray(body.issues) && body.issues.length > 0) {
          body.message = `Invalid input: ${describeIssues(body.issues)}`;
          chunk = JSON.stringify(body);
        }
      } catch {
        // not JSON; send as is
      }
    }
    return end(chunk);
  }) as typeof res.end;
}
