// A webhook receiver on a loopback port: records every request it gets (headers and raw body) and
// answers each as `answer` says (200 by default), so a test sets what the receiver does and waits
// for what arrived.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { vi } from "vitest";

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  path: string;
}

export interface WebhookReceiver {
  url: string;
  received: Received[];
  /** How the next requests are answered: a status (with a body), or a function that answers by hand. */
  answer: number | ((response: ServerResponse, request: Received) => void);
  /** Waits (up to `timeoutMs`) until `count` requests arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<WebhookReceiver> {
  const received: Received[] = [];
  const receiver: WebhookReceiver = {
    url: "",
    received,
    answer: 200,
    async waitFor(count, timeoutMs = 20_000) {
      await vi.waitFor(() => {
        if (received.length < count) throw new Error(`${received.length} of ${count} requests arrived`);
      }, { timeout: timeoutMs, interval: 20 });
      return received.slice(0, count);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const one = { headers: request.headers, body: Buffer.concat(chunks).toString("utf8"), path: request.url ?? "" };
      received.push(one);
      const answer = receiver.answer;
      if (typeof answer === "function") answer(response, one);
      else response.writeHead(answer, { "content-type": "text/plain" }).end(answer >= 300 ? `refused with ${answer}` : "ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/coordination`;
  return receiver;
}
