// The REST compatibility layer: trpc-to-openapi serves each procedure's `meta.openapi` route.
// Wrapped once, here, for what it does not do by itself:
//  - it reads the body only for an exact "application/json" and answers malformed JSON with 500:
//    we read and parse the body ourselves (413 over the limit, 400 on bad JSON, {} when empty);
//  - an empty claim would be `200 null`: the contract says 204;
//  - input errors would say only "Input validation failed": the message names each field.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createOpenApiNodeHttpHandler } from "trpc-to-openapi";
import type { Logger } from "../logger.js";
import type { Services } from "../services.js";
import { appRouter } from "../trpc/app-router.js";
import { describeIssues } from "../trpc/init.js";
import { readBody, sendJson } from "../server/http-io.js";

/** Procedures whose `null` result means "nothing available": REST answers 204 No Content. */
const EMPTY_MEANS_NO_CONTENT = new Set(["tasks.claim", "tasks.claimNext"]);
const METHODS_WITH_BODY = new Set(["POST", "PUT", "PATCH"]);

export function createRestHandler(services: Services, log: Logger) {
  const handle = createOpenApiNodeHttpHandler({
    router: appRouter,
    createContext: () => ({ services }),
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
        return sendJson(res, 413, { code: "PAYLOAD_TOO_LARGE", message: `Request body exceeds ${services.config.maxBodyBytes} bytes` });
      }
      if (body.text.trim() === "") req.body = {};
      else {
        try {
          req.body = JSON.parse(body.text);
        } catch (error) {
          return sendJson(res, 400, { code: "PARSE_ERROR", message: `Malformed JSON body: ${(error as Error).message}` });
        }
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
