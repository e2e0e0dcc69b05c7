// The package version, read once from package.json (found from src/ or dist/src/).
import { readFileSync } from "node:fs";

function readVersion(): string {
  for (const path of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "coordination" && pkg.version) return pkg.version;
    } catch {
      // not at this level; try the next
    }
  }
  return "0.0.0";
}

export const VERSION = readVersion();
