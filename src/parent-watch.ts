// A server started by an npm script (`npm start`) runs under npm and the shell npm starts it
// with. A supervisor that stops it signals npm, which passes the signal to that shell, which dies
// without passing it on: the server was left running, re-parented, holding the port and the file
// (found by trying it; Docker's "npm as PID 1" is the same trap). Under npm, the server therefore
// watches its parent: once it is gone, it stops as on SIGTERM. Started any other way (node, npx,
// a service manager, nohup), it outlives its parent as a daemon should.

/** How often the parent is looked at (ms): a re-parented server stops within about this long. */
export const PARENT_CHECK_MS = 1000;

/**
 * Resolves once this process's parent is no longer the one it started under (its parent process id
 * changed: the parent exited and the process was re-parented); never when `env` does not say an
 * npm script started it (npm_lifecycle_event). `stop()` ends the watch.
 */
export function whenParentGone(env: NodeJS.ProcessEnv = process.env, everyMs = PARENT_CHECK_MS): { gone: Promise<void>; stop: () => void } {
  if (env.npm_lifecycle_event === undefined) return { gone: new Promise(() => undefined), stop: () => undefined };
  const parent = process.ppid;
  let timer: ReturnType<typeof setInterval> | undefined;
  const gone = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(timer);
      resolve();
    }, everyMs);
    // The watch alone keeps nothing alive: the server's sockets do.
    timer.unref();
  });
  return { gone, stop: () => clearInterval(timer) };
}
