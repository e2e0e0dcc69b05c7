// The OpenAPI 3.1 document of the REST routes, built from the same route table and zod schemas
// the adapter serves (zod-openapi renders the schemas). Each operation lists every status it can
// answer. The bearer scheme is declared exactly when the server enforces credentials, and then
// every operation but /health requires it and may answer 401 and 403.
import { z } from "zod";
import { createDocument, type oas31, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject, type ZodOpenApiResponseObject } from "zod-openapi";
import { ERROR_STATUS, type ErrorCode } from "../errors.js";
import { VERSION } from "../version.js";
import { inputShape } from "./rest-input.js";
import { ROUTES, type Route } from "./routes.js";

const errorSchema = z
  .object({
    code: z.enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "Error", description: "Every error: a code from a closed list (its HTTP status is fixed by it), a message, and details" });

/** Codes any route may answer. */
const ALWAYS: ErrorCode[] = ["INVALID_INPUT", "INTERNAL", "SHUTTING_DOWN"];
/** And routes that take a body. */
const WITH_BODY: ErrorCode[] = ["MALFORMED_JSON", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"];

const camelCase = (key: string): string => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Codes of a route that needs a credential. */
const AUTHENTICATED: ErrorCode[] = ["UNAUTHORIZED", "FORBIDDEN"];

function operation(route: Route, bearer: boolean): ZodOpenApiOperationObject {
  const open = route.access.role === "open";
  const shape = inputShape(route.input);
  const pathParams = route.segments.flatMap((s) => (typeof s === "string" ? [] : [s.param]));
  const inPath = new Set(pathParams.map(camelCase));
  const rest = Object.fromEntries(Object.entries(shape).filter(([field]) => !inPath.has(field)));
  const bodyTaken = route.method === "POST";
  const codes = [...ALWAYS, ...(bodyTaken ? WITH_BODY : []), ...(bearer && !open ? AUTHENTICATED : []), ...(route.errors ?? [])];
  const responses: Record<string, ZodOpenApiResponseObject> = {
    "200": { description: "OK", content: { "application/json": { schema: route.emptyIsNoContent ? (route.output as z.ZodNullable).unwrap() : route.output! } } },
  };
  if (route.emptyIsNoContent) responses["204"] = { description: "Nothing available" };
  for (const status of [...new Set(codes.map((code) => ERROR_STATUS[code]))].sort()) {
    const named = codes.filter((code) => ERROR_STATUS[code] === status);
    responses[String(status)] = { description: named.join(", "), content: { "application/json": { schema: errorSchema } } };
  }
  return {
    // One procedure may serve two routes (recall by GET and by POST): the method tells them apart.
    operationId: route.procedure.replace(".", "_") + (ROUTES.filter((r) => r.procedure === route.procedure).length > 1 ? `_${route.method.toLowerCase()}` : ""),
    summary: route.summary,
    tags: route.tags,
    requestParams: {
      ...(pathParams.length > 0 ? { path: z.object(Object.fromEntries(pathParams.map((param) => [param, shape[camelCase(param)]!]))) } : {}),
      ...(!bodyTaken && Object.keys(rest).length > 0 ? { query: z.object(rest) } : {}),
    },
    ...(bodyTaken && route.input
      ? (() => {
          const schema = pathParams.length > 0 ? z.object(rest) : route.input;
          // Required when an empty body would not do (a field the body must give).
          return { requestBody: { required: !schema.safeParse({}).success, content: { "application/json": { schema } } } };
        })()
      : {}),
    responses,
    ...(bearer && open ? { security: [] } : {}),
  };
}

/** `bearer`: the server enforces credentials (declare the scheme and require it). */
export function buildOpenApiDocument(baseUrl: string, options: { bearer: boolean } = { bearer: false }): oas31.OpenAPIObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of ROUTES) {
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation(route, options.bearer) };
  }
  return createDocument(
    {
      openapi: "3.1.0",
      info: {
        title: "Coordination",
        version: VERSION,
        description:
          "Queue/event coordination server for multi-agent systems: priority task queue with leases, event stream with mailboxes, agent registry and pre-execution memory. " +
          "Field names are camelCase; the snake_case spelling of every multi-word field is accepted as well.",
      },
      servers: [{ url: baseUrl }],
      paths,
      ...(options.bearer
        ? {
            components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A token from `coordination tokens create`, or the admin token" } } },
            security: [{ bearer: [] }],
          }
        : {}),
    },
    {
      // Dates travel as ISO 8601 strings; JSON values (payloads, results) are any JSON.
      override: ({ jsonSchema, zodSchema }) => {
        if ((zodSchema as unknown as { _zod: { def: { type: string } } })._zod.def.type === "date") {
          jsonSchema.type = "string";
          jsonSchema.format = "date-time";
        }
      },
      allowEmptySchema: { custom: true },
    },
  );
}
