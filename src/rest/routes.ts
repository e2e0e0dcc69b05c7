// The REST routes, read once from the router: every procedure whose meta names a `rest` route.
// As in OpenAPI, the most specific template matches a path (/tasks/claim before /tasks/{taskId},
// compared segment by segment); if it does not have the request's method, the answer is 405
// naming the methods it has.
import type { z } from "zod";
import { PROCEDURES } from "../trpc/app-router.js";
import type { Access, RestRoute } from "../trpc/meta.js";
import { directCall, type DirectCall, type ProcedureDefinition } from "./direct-call.js";

export interface Route extends RestRoute {
  /** The procedure's dotted path: "tasks.complete". */
  procedure: string;
  /** Who may call it. */
  access: Access;
  /** The procedure's input schema (undefined when it takes none). */
  input: z.ZodType | undefined;
  /** The procedure's output schema. */
  output: z.ZodType | undefined;
  /** The procedure's own steps, run without tRPC's middleware chain (direct-call.ts). */
  call: DirectCall;
  /** query or mutation. */
  type: ProcedureDefinition["type"];
  /** Template segments: a string is literal, { param } a path parameter. */
  segments: Array<string | { param: string }>;
}

function buildRoutes(): Route[] {
  return [...PROCEDURES].flatMap(([procedure, _def]) => {
    const rest = _def.meta?.rest;
    const routes = rest === undefined ? [] : Array.isArray(rest) ? rest : [rest];
    const call = routes.length > 0 ? directCall(procedure, _def) : undefined;
    return routes.map((route) => ({
      ...route,
      procedure,
      access: _def.meta!.access!,
      input: _def.inputs[0],
      output: _def.output,
      call: call!,
      type: _def.type,
      segments: route.path
        .split("/")
        .filter(Boolean)
        .map((segment) => (/^\{\w+\}$/.test(segment) ? { param: segment.slice(1, -1) } : segment)),
    }));
  });
}

export const ROUTES: readonly Route[] = buildRoutes();

export type RouteMatch =
  | { kind: "found"; route: Route; params: Record<string, string> }
  /** `open`: the path serves a route anyone may call (health), so its 405 needs no credential. */
  | { kind: "method-not-allowed"; allow: string[]; open: boolean }
  | { kind: "not-found" };

/**
 * Orders two templates of one length by specificity, as OpenAPI matches paths: at the first
 * segment where one is literal and the other a parameter, the literal one comes first
 * (/agents/capability/{capability} before /agents/{agentId}/card, /tasks/claim before
 * /tasks/{taskId}). Templates that differ only in their literals never match the same path.
 */
function bySpecificity(a: Route, b: Route): number {
  for (let i = 0; i < a.segments.length; i++) {
    const literalA = typeof a.segments[i] === "string";
    const literalB = typeof b.segments[i] === "string";
    if (literalA !== literalB) return literalA ? -1 : 1;
  }
  return 0;
}

/** The routes by their number of path segments, most specific first: a path is only matched against those of its length. */
const BY_LENGTH = new Map<number, Route[]>();
for (const route of ROUTES) {
  const sameLength = BY_LENGTH.get(route.segments.length);
  if (sameLength === undefined) BY_LENGTH.set(route.segments.length, [route]);
  else sameLength.push(route);
}
for (const routes of BY_LENGTH.values()) routes.sort(bySpecificity);

/** The routes of each path template, one per method it serves. */
const BY_PATH = new Map<string, Route[]>();
for (const route of ROUTES) BY_PATH.set(route.path, [...(BY_PATH.get(route.path) ?? []), route]);

/** Whether the path's `parts` fit `route`'s template (every literal segment equal). */
function fits(route: Route, parts: readonly string[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const segment = route.segments[i]!;
    if (typeof segment === "string" && segment !== parts[i]) return false;
  }
  return true;
}

/**
 * The route for `method` on `path` (segments still percent-encoded; decoded by the caller). As in
 * OpenAPI, the path is matched first: the most specific template that fits it (literal segments
 * before parameters, compared left to right); then the method among that template's routes, a
 * 405 naming its methods when none has it. So GET /tasks/steal is a 405 (POST only), not a
 * read of a task "steal", and a name that equals a literal of a more specific template is
 * reached over tRPC: an agent named "subscriptions" polls with events.poll. Only the routes of
 * the path's length are read, and nothing is built for those that do not fit (every route tried
 * with a closure and a params object each: 2.2-4.2 µs a request; 1.3-1.6).
 */
export function matchRoute(method: string, path: string): RouteMatch {
  // One trailing slash is the same path; an empty segment inside is an empty parameter (its
  // schema then names it), never a shorter path: /tasks//heartbeat is not /tasks/heartbeat.
  const start = path.startsWith("/") ? 1 : 0;
  const end = path.length > start && path.endsWith("/") ? path.length - 1 : path.length;
  const parts = path.slice(start, end).split("/");
  const candidates = BY_LENGTH.get(parts.length) ?? [];
  // Sorted most specific first: the first route that fits names the template.
  const template = candidates.find((route) => fits(route, parts))?.path;
  if (template === undefined) return { kind: "not-found" };
  const atPath = BY_PATH.get(template)!;
  const found = atPath.find((route) => route.method === method);
  if (found === undefined) {
    const methods = new Set<string>(atPath.map((route) => route.method));
    // A GET that changes nothing also answers HEAD (rest-handler's routeFor): Allow says so.
    if (atPath.some((route) => route.method === "GET" && route.type === "query")) methods.add("HEAD");
    return { kind: "method-not-allowed", allow: [...methods].sort(), open: atPath.some((route) => route.access.role === "open") };
  }
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const segment = found.segments[i]!;
    if (typeof segment !== "string") params[segment.param] = parts[i]!;
  }
  return { kind: "found", route: found, params };
}

/** The most segments a path may have for notFoundHint to look for the path it meant (each try is a matchRoute). */
const HINT_MAX_SEGMENTS = 16;

/**
 * For a path no route serves: the path with some of its segments joined by %2F that one does serve
 * with this method (`/kv/runs%2F42%2Fleader` for `/kv/runs/42/leader`), when there is one: a name or key holding
 * "/" is one segment of a REST path, a mistake every new user of keys, locks and semaphores makes.
 * Undefined when none fits, or the path is too long to look.
 */
export function notFoundHint(method: string, path: string): string | undefined {
  const parts = path.replace(/^\//, "").replace(/\/$/, "").split("/");
  if (parts.length > HINT_MAX_SEGMENTS) return undefined;
  for (let from = 0; from < parts.length - 1; from++) {
    for (let to = parts.length; to > from + 1; to--) {
      const joined = `/${[...parts.slice(0, from), parts.slice(from, to).join("%2F"), ...parts.slice(to)].join("/")}`;
      if (matchRoute(method, joined).kind === "found") return joined;
    }
  }
  return undefined;
}
