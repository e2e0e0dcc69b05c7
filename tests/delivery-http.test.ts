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
import { startTestServer } from "./helpers/test-server.js";

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

  it("over tRPC, a streamed batch (JSON Lines) holding a call that takes something is refused whole; a batch answered as one body, or a streamed one without such a call, runs", async () => {
    // JSON Lines writes each answer as it is ready, but the response is known delivered only once
    // it finished: a claim its client read before leaving was given back and ran twice (a review).
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ queue: "jsonl" });
    const batch = (paths: string, inputs: unknown[], headers: Record<string, string>) =>
      fetch(`${t.url}/trpc/${paths}?batch=1`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(Object.fromEntries(inputs.map((json, i) => [String(i), { json }]))),
      });
    const claim = { agentId: "raw", queues: ["jsonl"] };
    for (const headers of [{ "trpc-accept": "application/jsonl" }, { accept: "application/json, application/jsonl" }] as Array<Record<string, string>>) {
      const refused = await batch("tasks.claim,tasks.claimNext", [claim, claim], headers);
      expect(refused.status).toBe(400);
      expect(JSON.stringify(await refused.json())).toContain("tasks.claim cannot be in a streamed batch (JSON Lines)");
    }
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0 });
    // Streamed without a taking call: answered as JSON Lines.
    const streamed = await batch("tasks.enqueue,tasks.enqueue", [{ queue: "other" }, { queue: "other" }], { "trpc-accept": "application/jsonl" });
    // tRPC's JSON Lines: a line for the head, then one as each answer is ready.
    expect(streamed.status).toBe(200);
    expect((await streamed.text()).split("\n").filter((line) => line !== "").length).toBeGreaterThan(1);
    // trpc-accept application/json is one body: the claim runs.
    const whole = await batch("tasks.claim,tasks.claimNext", [claim, claim], { "trpc-accept": "application/json" });
    expect(whole.status).toBe(200);
    const [first] = (await whole.json()) as Array<{ result: { data: { json: { id: string } | null } } }>;
    expect(first!.result.data.json?.id).toBe(task.id);
  });

  it("over tRPC, a batch of two polls is refused: an auto-ack poll holds its agent until the whole response is delivered, and the second waited for it for ever", async () => {
    await using t = await startTestServer();
    await t.api.events.publish.mutate({ type: "note.sent", source: "boss", target: "m1", payload: { n: 1 } });
    const twice = await fetch(`${t.url}/trpc/events.poll,events.poll?batch=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ 0: { json: { agentId: "m1" } }, 1: { json: { agentId: "m1" } } }),
      // A hang is the failure: bounded generously, a refusal comes at once.
      signal: AbortSignal.timeout(60_000),
    });
    expect(twice.status).toBe(400);
    expect(JSON.stringify(await twice.json())).toContain("events.poll may be in a batch once");
    // Nothing was taken: the message is the agent's next poll's.
    const polled = await t.api.events.poll.mutate({ agentId: "m1" });
    expect(polled.map((event) => event.payload)).toEqual([{ n: 1 }]);
  });
});
