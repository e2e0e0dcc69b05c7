// Structured logs (pino) at the configured level: JSON lines for machines, or pino-pretty's
// colored lines for a person at a terminal. `auto` picks pretty when stdout is a TTY.
import { pino, type Logger } from "pino";
import type { Config } from "./config.js";

export type { Logger };

export function createLogger(level: Config["logLevel"], format: Config["logFormat"] = "json"): Logger {
  const pretty = format === "pretty" || (format === "auto" && process.stdout.isTTY === true);
  if (!pretty) return pino({ name: "coordination", level });
  // pino-pretty formats in a worker thread of pino's own: the event loop only hands lines over.
  return pino({ name: "coordination", level, transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,name" } } });
}
