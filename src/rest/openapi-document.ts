// The OpenAPI 3.1 document of the REST routes, built from the same route table and zod schemas
// the adapter serves (zod-openapi renders the schemas). Each operation lists every status its
// request can be answered with; those answered before an operation is chosen (an unknown path,
// a method the path does not serve, too many connections, headers too large) are said once, in
// the document's description. The bearer scheme is declared exactly when the server enforces
// credentials, and then every operation but /health requires it and may answer 401.
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

/**
 * Codes any route may answer: FORBIDDEN for a Host or Origin the server does not serve (with or
 * without credentials); a database that cannot be read (src/db/faults.ts).
 */
const ALWAYS: ErrorCode[] = ["INVALID_INPUT", "FORBIDDEN", "INTERNAL", "SHUTTING_DOWN", "IO_ERROR", "DATABASE_LOCKED", "DATABASE_REPLACED"];
/** And routes that write: a database that cannot be written. */
const WRITING: ErrorCode[] = ["DISK_FULL", "READ_ONLY"];
/**
 * And every route: any method's request may carry a JSON body, read with the path and the query
 * (rest-handler.ts), so a GET or DELETE with a body too large, not JSON, or malformed is refused
 * as a POST's is.
 */
const BODY: ErrorCode[] = ["MALFORMED_JSON", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"];
/** And long-polls (an input with waitMs): too many already waiting for the agent (maxParkedPerAgent). */
const LONG_POLL: ErrorCode[] = ["LIMIT_EXCEEDED"];

/** Said once for every operation: answered before one is chosen (rest-handler.ts, create-server.ts). */
const BEFORE_ANY_OPERATION =
  "Any request may also be answered, before its operation is chosen: 403 FORBIDDEN (a Host or Origin this server does not serve), " +
  "404 ROUTE_NOT_FOUND (no such path), 405 METHOD_NOT_ALLOWED (with Allow: the methods the path serves; an OPTIONS is a 204 with that Allow), " +
  "408 REQUEST_TIMEOUT (the request did not arrive in time), 429 LIMIT_EXCEEDED (the server's maxConnections are open) and 431 HEADERS_TOO_LARGE, each with the Error body.";

/** How a list travels in a query string (rest-input.ts). */
const QUERY_LIST =
  "In a query string: repeat the parameter, or separate values by commas (encoded as %2C or not; a name holding a comma is given in the JSON body of a POST route instead).";

const camelCase = (key: string): string => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Codes of a route that needs a credential. */
const AUTHENTICATED: ErrorCode[] = ["UNAUTHORIZED"];

function operation(route: Route, bearer: boolean): ZodOpenApiOperationObject {
  const open = route.access.role === "open";
  const shape = inputShape(route.input);
  const pathParams = route.segments.flatMap((s) => (typeof s === "string" ? [] : [s.param]));
  const inPath = new Set(pathParams.map(camelCase));
  /** The input's fields the path does not carry: the body's (POST, PUT, PATCH) or the query's. */
  const notInPath: Record<string, z.ZodType> = Object.fromEntries(Object.entries(shape).filter(([field]) => !inPath.has(field)));
  const rest: Record<string, z.ZodType> = { ...notInPath };
  // The seed's names for fields (GET /tasks/claim/{agent_id}?queue=…&capability=…) are parameters too.
  for (const [alias, field] of Object.entries(route.aliases ?? {})) {
    if (rest[field] !== undefined) rest[alias] = rest[field].describe(`The seed's name for ${field}: the same values`);
  }
  const bodyTaken = route.method === "POST" || route.method === "PUT" || route.method === "PATCH";
  const codes = [
    ...ALWAYS,
    ...(route.type === "mutation" ? WRITING : []),
    ...BODY,
    ...("waitMs" in shape ? LONG_POLL : []),
    ...(bearer && !open ? AUTHENTICATED : []),
    ...(route.errors ?? []),
  ];
  const responses: Record<string, ZodOpenApiResponseObject> = {
    "200": { description: "OK", content: { "application/json": { schema: route.emptyIsNoContent ? (route.output as z.ZodNullable).unwrap() : route.output! } } },
  };
  if (route.emptyIsNoContent) responses["204"] = { description: "Nothing available" };
  for (const status of [...new Set(codes.map((code) => ERROR_STATUS[code]))].sort()) {
    const named = [...new Set(codes.filter((code) => ERROR_STATUS[code] === status))];
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
          // Without the path's fields, as strict as the input: an unknown body field is a 400. Made
          // from the fields, not by omit(), which zod refuses on an object with refinements (a
          // check across fields, as tasks.fail's retryAfterMs with retry: the procedure still runs it).
          const schema = pathParams.length > 0 ? z.strictObject(notInPath) : route.input;
          return { requestBody: { required: route.bodyRequired === true || emptyBodyRefused(route.input, inPath), content: { "application/json": { schema } } } };
        })()
      : {}),
    responses,
    ...(bearer && open ? { security: [] } : {}),
  };
}

/**
 * Whether an empty body would not do: the input, its path fields given (any text), refused for a
 * field the body must give. Parsed whole, with the checks across fields that the body schema
 * leaves out (schedules.set: cron or everyMs, one of them), which the path's fields alone let run.
 */
function emptyBodyRefused(input: z.ZodType, inPath: ReadonlySet<string>): boolean {
  const parsed = input.safeParse(Object.fromEntries([...inPath].map((field) => [field, "name"])));
  return !parsed.success && parsed.error.issues.some((issue) => issue.path.length === 0 || !inPath.has(String(issue.path[0])));
}

/** `bearer`: the server enforces credentials (declare the scheme and require it). */
export function buildOpenApiDocument(options: { bearer: boolean } = { bearer: false }): oas31.OpenAPIObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of ROUTES) {
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation(route, options.bearer) };
  }
  return withQueryLists(createDocument(
    {
      openapi: "3.1.0",
      info: {
        title: "Coordination",
        version: VERSION,
        description:
          "Queue/event coordination server for multi-agent systems: priority task queue with leases, event stream with mailboxes, agent registry and pre-execution memory. " +
          "Field names are camelCase; the snake_case spelling of every multi-word field is accepted as well. " +
          BEFORE_ANY_OPERATION,
      },
      // Relative: resolved against the document's own URL (OpenAPI 3.1, 4.8.5.1), so it is right
      // behind a proxy and on a server bound to 0.0.0.0, whose listening address (which it used to
      // give) is no address for a generated client or Swagger UI to call.
      servers: [{ url: "/", description: "The server this document was fetched from" }],
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
  ));
}

/** Says how each list in a query string may be written (QUERY_LIST), as form style, exploded. */
function withQueryLists(document: oas31.OpenAPIObject): oas31.OpenAPIObject {
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const op of Object.values(pathItem as Record<string, oas31.OperationObject>)) {
      for (const param of (op.parameters ?? []) as oas31.ParameterObject[]) {
        if (param.in !== "query" || (param.schema as oas31.SchemaObject | undefined)?.type !== "array") continue;
        param.style = "form";
        param.explode = true;
        param.description = param.description ? `${param.description}. ${QUERY_LIST}` : QUERY_LIST;
      }
    }
  }
  return document;
}
