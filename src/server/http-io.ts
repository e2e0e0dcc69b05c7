// Small HTTP helpers shared by the server and the REST layer.
import type { IncomingMessage, ServerResponse } from "node:http";

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Reads a request body up to `limit` bytes. Past the limit it stops keeping data but drains the
 * rest, so the connection stays usable for the 413 answer.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<{ kind: "ok"; text: string } | { kind: "too-large" }> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.resolve({ kind: "too-large" });
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > limit ? { kind: "too-large" } : { kind: "ok", text: Buffer.concat(chunks).toString("utf8") }));
    req.on("error", reject);
  });
}

/** Aborts when the connection closes before the response was sent: the client went away. */
export function clientGoneSignal(res: { once(event: "close", listener: () => void): unknown; readonly writableFinished: boolean }): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
