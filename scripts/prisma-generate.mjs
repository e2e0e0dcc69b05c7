// Runs `prisma generate` on install. The Prisma CLI insists on finding its native schema
// engine before any command, and downloads it from Prisma's binary host when it is missing.
// That host is unreachable on offline machines (and in our CI). `generate` never runs the
// engine, so when the real one is absent we point PRISMA_SCHEMA_ENGINE_BINARY at this file
// (any existing path satisfies the check). With the engine present, the CLI runs untouched.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Installed as a dependency, the package carries its generated client built (dist/src/generated)
// and no sources to generate into: nothing to do, and nothing to download or run.
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
if (!existsSync(join(root, "src")) && existsSync(join(root, "dist", "src", "generated"))) process.exit(0);

const require = createRequire(import.meta.url);
const env = { ...process.env };

function hasSchemaEngine() {
  if (env.PRISMA_SCHEMA_ENGINE_BINARY) return true;
  try {
    const enginesDir = dirname(require.resolve("@prisma/engines/package.json"));
    return readdirSync(enginesDir).some((name) => name.startsWith("schema-engine"));
  } catch {
    return false;
  }
}

if (!hasSchemaEngine()) env.PRISMA_SCHEMA_ENGINE_BINARY = fileURLToPath(import.meta.url);

const prismaCli = join(dirname(require.resolve("prisma/package.json")), "build", "index.js");
if (!existsSync(prismaCli)) {
  console.error(`prisma-generate: the Prisma CLI is not installed (${prismaCli})`);
  process.exit(1);
}
const result = spawnSync(process.execPath, [prismaCli, "generate"], { stdio: "inherit", env });
process.exit(result.status ?? 1);
