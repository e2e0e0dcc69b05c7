#!/usr/bin/env node
// The `coordination` command. The TypeScript sources are compiled to dist/ by `npm install`
// (the package's prepare script); this file only starts the compiled CLI.
import { existsSync } from "node:fs";

const cli = new URL("../dist/src/cli.js", import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("coordination: dist/ is missing; run `npm install` (or `npm run build`) first\n");
  process.exit(1);
}
await import(cli.href);
