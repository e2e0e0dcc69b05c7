// The REST routes, read once from the router: every procedure whose meta names a `rest` route.
// As in OpenAPI, the most specific template matches a path (/tasks/claim before /tasks/{taskId});
// if it does not have the request's method, the answer is 405 naming the methods it has.
import type { z } from "zod";
import { appRouter } from "../trpc/app-router.js";
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

type ProcedureDef = { _def: ProcedureDefinition };

function buildRoutes(): Route[] {
  // At run time `_def.procedures` is flat, keyed by dotted path.
  const procedures = appRouter._def.procedures as unknown as Record<string, ProcedureDef>;
  return Object.entries(procedures).flatMap(([procedure, callable]) => {
    const { _def } = callable;
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
  | { kind: "method-not-allowed"; allow: string[] }
  | { kind: "not-found" };

/** The route for `method` on `path` (segments still percent-encoded; decoded by the caller). */
export function matchRoute(method: string, path: string): RouteMatch {
  // One trailing slash is the same path; an empty segment inside is an empty parameter (its
  // schema then names it), never a shorter path: /tasks//heartbeat is not /tasks/heartbeat.
  const parts = path.replace(/^\//, "").replace(/\/$/, "").split("/");
  const matches: Array<{ route: Route; params: Record<string, string>; literals: number }> = [];
  for (const route of ROUTES) {
    if (route.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let literals = 0;
    const fits = route.segments.every((segment, i) => {
      if (typeof segment === "string") return segment === parts[i] && ++literals > 0;
      params[segment.param] = parts[i]!;
      return true;
    });
    if (fits) matches.push({ route, params, literals });
  }
  if (matches.length === 0) return { kind: "not-found" };
  // The most specific template wins, as in OpenAPI: /tasks/claim before /tasks/{taskId}.
  const mostLiterals = Math.max(...matches.map((m) => m.literals));
  const specific = matches.filter((m) => m.literals === mostLiterals);
  const best = specific.find((m) => m.route.method === method);
  if (best) return { kind: "found", route: best.route, params: best.params };
  return { kind: "method-not-allowed", allow: [...new Set(specific.map((m) => m.route.method))].sort() };
}
