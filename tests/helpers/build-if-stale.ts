// Vitest global setup. Tests import the TypeScript sources, but the database threads are worker
// scripts and run the compiled build (src/db/thread/thread-client.ts): a build older than the
// sources would test old code without a word, and the dashboard is served from its bundle.
// `npm test` builds first; a bare `npx vitest` after an edit rebuilds here.
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (/\.(ts|tsx|css|html)$/.test(entry.name)) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

export default function buildIfStale(): void {
  const built = (() => {
    try {
      return statSync(join(root, "dist", "src", "db", "thread", "database-thread.js")).mtimeMs;
    } catch {
      return 0;
    }
  })();
  const dashboard = (() => {
    try {
      return statSync(join(root, "dist", "dashboard", "app.js")).mtimeMs;
    } catch {
      return 0;
    }
  })();
  if (newestSource(join(root, "src")) > built) {
    execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
  }
  if (Math.max(newestSource(join(root, "dashboard")), newestSource(join(root, "src", "trpc"))) > dashboard) {
    execFileSync(process.execPath, [join(root, "scripts", "build-dashboard.mjs")], { stdio: "inherit" });
  }
}
