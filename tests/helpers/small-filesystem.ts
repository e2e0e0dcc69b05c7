// A small filesystem of its own (tmpfs, mounted by root), for the disk-full and read-only cases.
// Where the machine does not allow mounting (not root, no CAP_SYS_ADMIN), the tests that need it
// are skipped with a message saying why.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SmallFilesystem {
  dir: string;
  remount(options: "ro" | "rw"): void;
  unmount(): void;
}

/** Mounts a tmpfs of `sizeKiB`; undefined (and why) when this machine does not allow it. */
export function mountSmallFilesystem(sizeKiB: number): SmallFilesystem | string {
  const dir = mkdtempSync(join(tmpdir(), "coordination-small-fs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeKiB}k`, "tmpfs", dir], { stdio: "pipe" });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return `cannot mount a small filesystem here (${String((error as { stderr?: Buffer }).stderr ?? error).trim().split("\n")[0]})`;
  }
  return {
    dir,
    remount: (options) => void execFileSync("mount", ["-o", `remount,${options}`, dir], { stdio: "pipe" }),
    unmount: () => {
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether this machine can mount a small filesystem (probed once). */
export const smallFilesystemProbe: string | true = (() => {
  const fs = mountSmallFilesystem(64);
  if (typeof fs === "string") return fs;
  fs.unmount();
  return true;
})();
