// Runs the real `coordination` command (bin/coordination.js over the compiled dist/, as `npx
// coordination` would) in a child process. Every process started here is tracked so a test's
// afterEach can kill whatever is still running (killAllCli).
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI_PATH = fileURLToPath(new URL("../../bin/coordination.js", import.meta.url));

const live = new Set<ChildProcess>();

/**
 * How long a process is given to start, or a command to end, unless a test says otherwise: only to
 * fail one that never will. Two servers starting together on one file took over 10 s on CI at a
 * load average of 8; a test's own timeout (vitest.config.ts) is 120 s.
 */
const START_TIMEOUT_MS = 60_000;

/** The parent's environment without any COORDINATION_* variable, plus `env`. */
function childEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("COORDINATION_")));
  return { ...base, ...env };
}

export interface CliOptions {
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Written to the command's standard input, then closed; left out: no standard input (/dev/null). */
  input?: string | Buffer;
}

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class CliProcess {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  /** True once the process exited and its output was fully read. */
  closed = false;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<CliExit>;
  private readonly lineWaiters: Array<() => void> = [];

  constructor(options: CliOptions = {}) {
    this.child = spawn(process.execPath, [CLI_PATH, ...(options.args ?? [])], {
      cwd: options.cwd,
      env: childEnv(options.env),
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    live.add(this.child);
    if (options.input !== undefined) this.child.stdin!.end(options.input);
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk;
      this.lineWaiters.splice(0).forEach((wake) => wake());
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => {
        live.delete(this.child);
        this.closed = true;
        this.lineWaiters.splice(0).forEach((wake) => wake());
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  /** pino's JSON log lines written so far. */
  logLines(): Array<Record<string, unknown>> {
    return this.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Waits for the start-up log line and returns its `url`; fails if the process exits first. */
  async waitForUrl(timeoutMs = START_TIMEOUT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const started = this.logLines().find((line) => typeof line.url === "string" && String(line.msg).startsWith("coordination listening"));
      if (started) return started.url as string;
      if (this.closed) {
        throw new Error(`coordination exited before listening (code ${this.child.exitCode}):\n${this.stdout}\n${this.stderr}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`coordination did not start within ${timeoutMs} ms:\n${this.stdout}\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.lineWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves with the exit, or rejects if the process is still running after timeoutMs. */
  async waitForExit(timeoutMs = START_TIMEOUT_MS): Promise<CliExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`coordination still running after ${timeoutMs} ms:\n${this.stdout}\n${this.stderr}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** Runs the command to completion (it must exit by itself within timeoutMs). */
export async function runCli(options: CliOptions = {}, timeoutMs = START_TIMEOUT_MS): Promise<CliExit> {
  const cli = new CliProcess(options);
  try {
    return await cli.waitForExit(timeoutMs);
  } finally {
    cli.kill("SIGKILL");
  }
}

/** For afterEach: SIGKILLs every process started here that is still running, and waits for them. */
export async function killAllCli(): Promise<void> {
  const children = [...live];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("close", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/**
 * An operator command run as the binary runs it, in this process: runOperatorCommand, what
 * bin/coordination.js calls, with the same output and exit code, without a process start (a
 * second or more each on a loaded machine: the CLI tests were the suite's slowest). For tests
 * whose subject is not the process (its signals, its standard input, the settings it reads from
 * its working directory): give --url or COORDINATION_URL, as the binary's settings are not read.
 */
export async function runOperator(options: Pick<CliOptions, "args" | "env"> & { input?: string } = {}, timeoutMs = START_TIMEOUT_MS): Promise<CliExit> {
  const { runOperatorCommand } = await import("../../src/cli-operator.js");
  let stdout = "";
  let stderr = "";
  // As runCli's: a command still running after timeoutMs fails the test; it is stopped as Ctrl-C stops it.
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      stop.abort();
      reject(new Error(`coordination ${(options.args ?? []).join(" ")} still running after ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
  });
  try {
    const { input } = options;
    const out = { stdout: (text: string) => void (stdout += text), stderr: (text: string) => void (stderr += text), ...(input === undefined ? {} : { stdin: async () => input }) };
    const code = await Promise.race([runOperatorCommand(options.args ?? [], { ...options.env }, out, stop.signal), timeout]);
    return { code, signal: null, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}
