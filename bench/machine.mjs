// The machine a run measured: CPU, memory, the file system the databases lived on (fsync cost
// depends on it), versions, the load average, and the commit measured.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { round } from "./lib.mjs";
import { ROOT } from "./systems.mjs";

export const loadAverage = () => loadavg().map((x) => round(x, 2));

function fileSystemOf(dir) {
  let best = "";
  let fs = "unknown";
  if (!existsSync("/proc/mounts")) return fs;
  for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
    const [device, mount, type] = line.split(" ");
    if (mount && (dir === mount || dir.startsWith(mount.endsWith("/") ? mount : `${mount}/`)) && mount.length >= best.length) {
      best = mount;
      fs = `${type} (${device} on ${mount})`;
    }
  }
  return fs;
}

/** The commit measured, and how many files under src/ or prisma/ differ from it. */
function codeVersion(root = ROOT) {
  const git = (args) => spawnSync("git", args, { cwd: root, encoding: "utf8" });
  const head = git(["log", "-1", "--format=%h %s"]);
  if (head.status !== 0) return "unknown (no git)";
  const dirty = git(["status", "--porcelain", "--", "src", "prisma"]).stdout.split("\n").filter(Boolean).length;
  return `${head.stdout.trim()}${dirty > 0 ? ` + ${dirty} uncommitted file(s) in src/ or prisma/` : ""}`;
}

const version = (command, args) => {
  const r = spawnSync(command, args, { encoding: "utf8" });
  return r.status === 0 ? (r.stdout || r.stderr).trim().split("\n")[0] : "not found";
};

export function machineInfo(dir) {
  const cpuinfo = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "";
  return {
    code: codeVersion(),
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    python: version("/usr/bin/python3", ["--version"]).replace(/^Python /, ""),
    redis: version("redis-server", ["--version"]).replace(/^Redis server /, ""),
    tmpFs: fileSystemOf(dir),
    loadAvg: loadAverage(),
  };
}
