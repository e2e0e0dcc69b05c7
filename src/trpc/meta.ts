// Procedure meta: the REST route(s) each procedure serves (src/rest/). Part of AppRouter's type,
// so it imports types only from modules that import nothing.
import type { ErrorCode } from "../errors.js";

/** A procedure's REST route: one of the seed's routes, or the rest of the API. */
export interface RestRoute {
  method: "GET" | "POST" | "DELETE";
  /** Path template with {parameters}: /tasks/{taskId}/complete. */
  path: string;
  summary: string;
  tags: string[];
  /** Error codes this route may answer beside INVALID_INPUT and, with a body, MALFORMED_JSON, PAYLOAD_TOO_LARGE and UNSUPPORTED_MEDIA_TYPE (OpenAPI lists them). */
  errors?: ErrorCode[];
  /** A null answer is 204 No Content. */
  emptyIsNoContent?: boolean;
  /** REST-only names for input fields, as the seed spells them: { queue: "queues" }. */
  aliases?: Record<string, string>;
}

export interface Meta {
  /** The REST route(s) serving this procedure. */
  rest?: RestRoute | RestRoute[];
}
