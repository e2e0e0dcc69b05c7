// A worker's renewals and settles are cut off once their lease may have run out (at least 5 s),
// so a server that hangs with its port open holds neither them nor stop(): also when the garbage
// collector runs meanwhile (Node 20 let a timeout signal combined with AbortSignal.any be
// collected before it fired, and the call then waited for the HTTP client's own 300 s timeout).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

describe("a lease's calls to a hung server", () => {
  it("end at the lease's deadline, as lost, while the garbage collector runs", async () => {
    const script = fileURLToPath(new URL("./helpers/lease-under-gc.mjs", import.meta.url));
    // Bounded generously: the verdict is that it ends, not how fast (the deadline is 5 s; a hang was 300 s).
    const { stdout } = await promisify(execFile)(process.execPath, ["--expose-gc", script], { timeout: 90_000 });
    const result = JSON.parse(stdout.trim()) as { kind: string; afterMs: number };
    expect(result.kind).toBe("lost");
    expect(result.afterMs).toBeGreaterThanOrEqual(4_900);
  });
});
