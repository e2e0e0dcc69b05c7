// How an HTTP response tells a call whether its answer reached the client (src/delivery/
// transports.ts), on a real server and a real client over loopback. A call asks before its answer
// is written, so a response that is no longer open then (ended, finished, closed) cannot carry
// it. The case that slipped through: a client that leaves while a response streams (an MCP POST's
// SSE), the writer ending that response afterwards (the MCP SDK does), and a call confirmed after
// that: Node reads such a response destroyed and writableFinished both, which read as delivered,
// and a claim committed for a client that had gone stayed leased to it until its lease ran out.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { httpTransport } from "../src/delivery/transports.js";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A delivery's outcome as the transport decides it. */
function sink() {
  const seen: string[] = [];
  return { seen, delivered: () => seen.push("delivered"), undelivered: () => seen.push("undelivered") };
}

/** A server whose one request streams a first event, then is handed to `handle`; its URL. */
async function streaming(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write("data: first\n\n");
    handle(req, res);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** Opens the stream, reads its first event, and leaves (the connection closed as fetch aborts). */
async function readFirstThenLeave(url: string): Promise<void> {
  const leave = new AbortController();
  const response = await fetch(url, { signal: leave.signal });
  await response.body!.getReader().read();
  leave.abort();
}

describe("HTTP delivery confirmation", () => {
  it("a call confirmed after its client left and the response was ended anyway is undelivered, and its client gone", async () => {
    const outcome = sink();
    const asked: unknown[] = [];
    const url = await streaming((_req, res) => {
      res.once("close", () => {
        // As the MCP SDK's adapter does once the stream it writes is cancelled.
        res.end();
        // The call (a claim whose answer came back from the writer late) asks only now.
        const transport = httpTransport(res);
        asked.push({ destroyed: res.destroyed, writableFinished: res.writableFinished, gone: transport.gone() });
        transport.confirm(outcome);
      });
    });
    await readFirstThenLeave(url);
    await vi.waitFor(() => expect(outcome.seen).toEqual(["undelivered"]), { timeout: 10_000 });
    // Node reads it finished as well as destroyed: the state the old check took for delivered.
    expect(asked).toEqual([{ destroyed: true, writableFinished: true, gone: true }]);
  });

  it("a call confirmed while the response is open is delivered once it finishes, and undelivered when the client leaves first", async () => {
    const finishedAnswer = sink();
    const leftFirst = sink();
    let respond: (() => void) | undefined;
    const openWhenConfirmed: boolean[] = [];
    server = createServer((req, res) => {
      const transport = httpTransport(res);
      if (req.url === "/leaves") {
        res.writeHead(200);
        res.write("streaming");
        transport.confirm(leftFirst);
        return;
      }
      transport.confirm(finishedAnswer);
      openWhenConfirmed.push(!transport.gone());
      respond = () => res.end(JSON.stringify({ id: "t1" }));
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const answered = fetch(`${base}/answers`).then((response) => response.json());
    await vi.waitFor(() => expect(respond).toBeDefined(), { timeout: 10_000 });
    expect(finishedAnswer.seen).toEqual([]);
    respond!();
    expect(await answered).toEqual({ id: "t1" });
    expect(openWhenConfirmed).toEqual([true]);
    await vi.waitFor(() => expect(finishedAnswer.seen).toEqual(["delivered"]), { timeout: 10_000 });
    await readFirstThenLeave(`${base}/leaves`);
    await vi.waitFor(() => expect(leftFirst.seen).toEqual(["undelivered"]), { timeout: 10_000 });
  });

  it("a call that asks after the response finished without its answer is undelivered: that response did not carry it", async () => {
    const late = sink();
    const gone: boolean[] = [];
    const url = await streaming((_req, res) => {
      res.end("data: last\n\n", () => {
        const transport = httpTransport(res);
        gone.push(transport.gone());
        transport.confirm(late);
      });
    });
    expect(await (await fetch(url)).text()).toBe("data: first\n\ndata: last\n\n");
    await vi.waitFor(() => expect(late.seen).toEqual(["undelivered"]), { timeout: 10_000 });
    expect(gone).toEqual([true]);
  });
});
