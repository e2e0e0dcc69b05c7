// Builds the dashboard (dashboard/) into dist/dashboard: one bundled, minified script, its page
// and stylesheet. Run by `npm run build`, so an install serves it with no network at run time.
import { copyFileSync, mkdirSync } from "node:fs";
import { build } from "esbuild";

const out = new URL("../dist/dashboard/", import.meta.url);
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [new URL("../dashboard/main.tsx", import.meta.url).pathname],
  outfile: new URL("app.js", out).pathname,
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "linked",
  logLevel: "warning",
});
for (const file of ["index.html", "styles.css"]) copyFileSync(new URL(`../dashboard/${file}`, import.meta.url), new URL(file, out));
