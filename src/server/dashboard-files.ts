// Serves the dashboard's built files (scripts/build-dashboard.mjs → dist/dashboard): the page at
// "/", its script and stylesheet under /dashboard/. Read once from disk; a strict Content
// Security Policy allows nothing but this origin (its WebSocket included).
import { existsSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sendJson, sendMethodNotAllowed } from "./http-io.js";

const TYPES: Record<string, string> = { "index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8", "styles.css": "text/css; charset=utf-8" };
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/** dist/dashboard, found from this file whether it runs from src/ or dist/src/; undefined when not built. */
function dashboardDir(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const candidate of [join(dir, "dashboard"), join(dir, "dist", "dashboard")]) {
      if (existsSync(join(candidate, "app.js"))) return candidate;
    }
    dir = resolve(dir, "..");
  }
  return undefined;
}

export function createDashboardHandler() {
  const dir = dashboardDir();
  const cache = new Map<string, Buffer>();
  /** True when the request was the dashboard's (answered); false to let the API routes have it. */
  return (req: IncomingMessage, res: ServerResponse, path: string): boolean => {
    const file = path === "/" ? "index.html" : path.startsWith("/dashboard/") ? path.slice("/dashboard/".length) : undefined;
    if (file === undefined) return false;
    const type = TYPES[file];
    if (type === undefined) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendMethodNotAllowed(req, res, path, ["GET", "HEAD"]);
      return true;
    }
    if (dir === undefined) {
      sendJson(res, 404, { code: "ROUTE_NOT_FOUND", message: "the dashboard is not built (npm run build)" });
      return true;
    }
    let body = cache.get(file);
    if (body === undefined) cache.set(file, (body = readFileSync(join(dir, file))));
    res.writeHead(200, {
      "content-type": type,
      "content-length": body.length,
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
      "cache-control": file === "index.html" ? "no-cache" : "max-age=300",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  };
}
