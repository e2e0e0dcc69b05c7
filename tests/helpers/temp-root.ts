// Vitest global setup: every temporary file of the run (the tests' databases, the processes they
// start, npm's scratch files when a test packs and installs the package) goes under one folder,
// removed when the run ends. Tests keep their database files after stop() so that a failing
// assertion can be read against them; without this each run left ~400 MB of them in /tmp.
// TMPDIR is what os.tmpdir() reads, here and in every worker and child process started after it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function tempRoot(): () => void {
  const root = mkdtempSync(join(tmpdir(), "coordination-tests-"));
  const before = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    // A test that failed halfway may leave a small filesystem mounted inside: rmSync fails on it
    // (EBUSY). The run's verdict is its tests', so that is said, not thrown.
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    } catch (error) {
      console.warn(`could not remove the tests' temporary folder ${root}: ${(error as Error).message}`);
    }
  };
}
