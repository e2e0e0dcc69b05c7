// Procedure meta: the REST route(s) each procedure serves (src/rest/). Part of AppRouter's type,
// so it imports types only from modules that import nothing.
import type { ErrorCode } from "../errors.js";

/** A procedure's REST route: one of the seed's routes, or the rest of the API. */
export interface RestRoute {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Path template with {parameters}: /tasks/{taskId}/complete. */
  path: string;
  summary: string;
  tags: string[];
  /** Error codes this route may answer beside INVALID_INPUT and, with a body, MALFORMED_JSON, PAYLOAD_TOO_LARGE and UNSUPPORTED_MEDIA_TYPE (OpenAPI lists them). */
  errors?: ErrorCode[];
  /** The body must give a field although none is required by itself (tasks.update: at least one change): OpenAPI marks it required. */
  bodyRequired?: boolean;
  /** A null answer is 204 No Content. */
  emptyIsNoContent?: boolean;
  /** REST-only names for input fields, as the seed spells them: { queue: "queues" }. */
  aliases?: Record<string, string>;
}

/** Who may call a procedure (src/auth/access.ts applies it). */
export interface Access {
  /** open: anyone; read: any credential; agent: agent or admin credentials; admin: admin only. */
  role: "open" | "read" | "agent" | "admin";
  /**
   * The input field naming the agent the call acts as ("agentId"; "source" for publish). With an
   * agent credential it must name that agent when present, and is filled in when absent if `fill`
   * (where it is optional and means something else when absent, as for a live stream, it is not).
   * A read credential may not give it.
   */
  actingAs?: { field: string; fill: boolean };
  /**
   * The input field naming the shared state's key the call writes ("key"): an agent credential
   * given kvPrefixes may write only keys starting with one of them (403 otherwise).
   */
  writesKey?: string;
}

export interface Meta {
  /** Required of every procedure: checked at start-up (src/trpc/app-router.ts) and by the role-matrix test. */
  access?: Access;
  /** The REST route(s) serving this procedure. */
  rest?: RestRoute | RestRoute[];
}
