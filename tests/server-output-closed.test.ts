// A server whose output pipe was closed (`coordination serve | head -1`, a log collector that
// died) still ends. The logger flushes what it holds as the process exits, and the flush of
// sonic-boom 4 (pino's destination) retried every write error but EAGAIN forever: a broken
// pipe's EPIPE put the exit in an endless sleep-and-retry loop (about one failed start in four
// here). sonic-boom 5 gives up on such an error (package.json overrides).
import { spawn } from "node:child_process";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { expect, it } from "vitest";
import { CLI_PATH } from "./helpers/cli-process.js";
import { makeTempDir } from "./helpers/test-server.js";

/** How long a failed start is given to end: only to fail one that never will. */
const EXIT_BOUND_MS = 60_000;

it("a start that fails on a port in use ends with exit 1 when its output pipe was closed after the first line, every time", async () => {
  const holder = createNetServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()));
  const port = (holder.address() as AddressInfo).port;
  const dir = makeTempDir();
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("COORDINATION_")));
  try {
    const codes: Array<number | string | null> = [];
    for (let run = 0; run < 5; run++) {
      const child = spawn(process.execPath, [CLI_PATH, "serve"], {
        env: { ...env, COORDINATION_PORT: String(port), COORDINATION_DB_PATH: join(dir, "closed-output.db"), COORDINATION_LOG_LEVEL: "debug" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
      // As `| head -1` does: the first output read, then the reading ends closed.
      await new Promise((resolve) => child.stdout.once("data", resolve));
      child.stdout.destroy();
      child.stderr.destroy();
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still running"), EXIT_BOUND_MS)));
      const code = await Promise.race([exited, bound]);
      clearTimeout(timer);
      if (code === "still running") child.kill("SIGKILL");
      codes.push(code);
    }
    expect(codes).toEqual([1, 1, 1, 1, 1]);
  } finally {
    holder.close();
  }
}, 5 * EXIT_BOUND_MS + 30_000);
