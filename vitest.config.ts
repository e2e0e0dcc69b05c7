import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // The database threads run the compiled build: rebuild it first if a source is newer.
    // Every temporary file of the run goes under one folder, removed at its end.
    globalSetup: ["tests/helpers/build-if-stale.ts", "tests/helpers/temp-root.ts"],
    // Tests start real servers and processes; two workers match the 2-core CI machines.
    maxWorkers: 2,
    // One module graph per worker, not per file: loading the server (Prisma's client above all)
    // for each of ~40 files cost half a minute. Our modules keep no global state between tests:
    // each test starts its own server on its own database.
    isolate: false,
    // Generous on purpose: a test's verdict comes from its assertions, never from a loaded
    // machine running it slowly (tests wait for conditions; speed is the benchmark's business).
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
