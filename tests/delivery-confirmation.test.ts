// Answer-or-nothing, second half: a claim or an auto-ack poll whose answer never reached its
// client is undone. Cases 2 and 3 of the delivery-safety issue: long-polls parked, work arrives,
// the clients' sockets are destroyed 10 ms later; cases 4 and 5: a large answer cut off while
// on its way, over HTTP and over WebSocket. The server runs in its own process (as in
// production: its event loop does not wait for the test's), and the verdict is the invariant,
// whatever the timing: every task is pending and uncharged, or held by the agent whose response
// the server finished writing; every agent whose answer was not delivered still has its event.
import net from "node:net";
import superjson from "superjson";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CliProcess, killAllCli } from "./helpers/cli-process.js";
import { makeTempDir, rest, startTestServer, withDatabase } from "./helpers/test-server.js";

afterEach(killAllCli);

const AGENTS = 50;

async function startServerProcess(): Promise<{ cli: CliProcess; url: string; port: number }> {
  const dir = makeTempDir();
  const cli = new CliProcess({
    env: {
      COORDINATION_PORT: "0",
      COORDINATION_DB_PATH: join(dir, "c.db"),
      // The request log says, per request, whether its response was handed over whole.
      COORDINATION_LOG_LEVEL: "debug",
      // Only the in-process wake-up may end the parked polls early.
      COORDINATION_CROSS_PROCESS_POLL_MS: "10000",
    },
  });
  const url = await cli.waitForUrl();
  return { cli, url, port: Number(new URL(url).port) };
}

/** A raw HTTP request on its own socket, left parked until the test destroys it. */
function park(port: number, request: string): net.Socket {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.write(request);
  return socket;
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
const post = (path: string, body: unknown) => {
  const text = JSON.stringify(body);
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
};

/** The server's log line for each finished or abandoned request, by URL. */
function requestOutcomes(cli: CliProcess): Map<string, { status: number; finished: boolean }> {
  const outcomes = new Map<string, { status: number; finished: boolean }>();
  for (const line of cli.logLines()) {
    if (line.msg === "request" && typeof line.url === "string") outcomes.set(line.url, { status: line.status as number, finished: line.finished === true });
  }
  return outcomes;
}

/**
 * Waits until `count` long-polls of `kind` are parked on the server at `url` (its metrics say so):
 * a request destroyed before the server read it is never logged, so the test waits for all to arrive.
 */
async function allParked(url: string, kind: "claim" | "poll", count: number): Promise<void> {
  await vi.waitFor(
    async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`coordination_long_polls_parked{kind="${kind}"} `));
      expect(Number(line?.split(" ")[1])).toBe(count);
    },
    { timeout: 30_000, interval: 20 },
  );
}

/** Sends `trigger` once the requests are parked, and destroys their sockets 10 ms later. */
async function destroyAfterTrigger(url: string, sockets: net.Socket[], trigger: () => Promise<unknown>): Promise<void> {
  await allParked(url, "claim", sockets.length);
  const sent = trigger();
  await new Promise((resolve) => setTimeout(resolve, 10));
  for (const socket of sockets) socket.destroy();
  await sent;
}

describe("delivery confirmation", () => {
  it("case 2: long-poll claims whose sockets were destroyed hold no task and charge no attempt (REST and tRPC)", async () => {
    const { cli, url, port } = await startServerProcess();
    const forms = [
      { queue: "rest", agent: (i: number) => `r${i}`, url: (i: number) => `/tasks/claim/r${i}?queue=rest&waitMs=15000`, body: () => undefined },
      // tRPC ignores the query string of a POST: it only tells the requests apart in the log.
      { queue: "trpc", agent: (i: number) => `t${i}`, url: (i: number) => `/trpc/tasks.claim?for=t${i}`, body: (i: number) => ({ json: { agentId: `t${i}`, queues: ["trpc"], waitMs: 15_000 } }) },
    ];
    for (const form of forms) {
      const sockets = Array.from({ length: AGENTS }, (_, i) => park(port, form.body(i) === undefined ? get(form.url(i)) : post(form.url(i), form.body(i))));
      await destroyAfterTrigger(url, sockets, () =>
        rest(url, "POST", "/tasks/batch", { tasks: Array.from({ length: AGENTS }, (_, i) => ({ queue: form.queue, payload: { i } })) }),
      );
      await vi.waitFor(
        async () => {
          // Every parked request has ended, one way or the other, and was logged with its outcome.
          const outcomes = requestOutcomes(cli);
          const ended = Array.from({ length: AGENTS }, (_, i) => outcomes.get(form.url(i)));
          expect(ended.filter(Boolean)).toHaveLength(AGENTS);
          const delivered = new Set(ended.flatMap((outcome, i) => (outcome?.finished && outcome.status === 200 ? [form.agent(i)] : [])));
          const tasks = (await rest(url, "GET", `/tasks?queue=${form.queue}&limit=500`)).body.items as Array<{ status: string; attempts: number; leaseOwner: string | null }>;
          expect(tasks).toHaveLength(AGENTS);
          for (const task of tasks) {
            if (task.status === "claimed") expect(delivered.has(task.leaseOwner!), `${task.leaseOwner} holds a task it never received`).toBe(true);
            else expect(task).toMatchObject({ status: "pending", attempts: 0 });
          }
        },
        { timeout: 15_000, interval: 100 },
      );
      const stats = (await rest(url, "GET", "/stats/tasks")).body.queues.find((q: { queue: string }) => q.queue === form.queue);
      console.info(`${form.queue}: ${stats.counts.pending} of ${AGENTS} tasks released after their claimers left, ${stats.counts.claimed} delivered before`);
    }
    // Released with an event that says why.
    const released = (await rest(url, "GET", "/events?types=task.released&limit=1000")).body as Array<{ payload: { reason: string } }>;
    for (const event of released) expect(event.payload.reason).toContain("never received");
  });

  it("case 3: auto-ack polls whose sockets were destroyed leave the cursor where it was", async () => {
    const { cli, url, port } = await startServerProcess();
    for (let i = 0; i < AGENTS; i++) await rest(url, "POST", "/events/subscriptions", { agentId: `e${i}`, types: ["news.*"] });
    // One small event is written faster than a batch of tasks: destroy sooner, in several rounds.
    for (const [round, delayMs] of [0, 2, 5, 10].entries()) {
      // A limit of its own tells a round's requests apart in the log (an unknown field would be a 400).
      const pollUrl = (i: number) => `/events/e${i}?waitMs=15000&limit=${100 + round}`;
      const sockets = Array.from({ length: AGENTS }, (_, i) => park(port, get(pollUrl(i))));
      await allParked(url, "poll", AGENTS);
      const sent = rest(url, "POST", "/events", { type: `news.round${round}`, source: "desk" });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      for (const socket of sockets) socket.destroy();
      const published = (await sent).body.seq as number;
      await vi.waitFor(() => expect(Array.from({ length: AGENTS }, (_, i) => requestOutcomes(cli).get(pollUrl(i))).filter(Boolean)).toHaveLength(AGENTS), {
        timeout: 15_000,
        interval: 50,
      });
      const outcomes = requestOutcomes(cli);
      let handedBack = 0;
      for (let i = 0; i < AGENTS; i++) {
        const outcome = outcomes.get(pollUrl(i))!;
        // Compensations run right after the socket closed; the poll lock makes this poll wait for them.
        const next = (await rest(url, "GET", `/events/e${i}`)).body as Array<{ seq: number }>;
        // Never lost: an answer that did not reach the agent gave the event back. A finished answer
        // held it, or was [] (the poll saw its client leave before the event came): then it is still there.
        if (outcome.finished && outcome.status === 200) expect([[], [published]]).toContainEqual(next.map((e) => e.seq));
        else {
          expect(next.map((e) => e.seq)).toEqual([published]);
          handedBack++;
        }
      }
      console.info(`destroyed ${delayMs} ms after the publish: ${handedBack} of ${AGENTS} agents had the event handed back`);
    }
  });

  // Node finishes a response whose connection was reset mid-body (the rest of the body dropped
  // unsent) as it finishes one handed whole to the connection. The answers here are ~24 MB, more
  // than a loopback connection buffers for a client that reads nothing: the reset always comes
  // before the end, however fast the machine.
  it("case 4: an answer cut off mid-body is undelivered: the poll's batch comes again, claimed tasks go back uncharged", async () => {
    await using t = await startTestServer({ maxResponseBytes: 64 * 1024 * 1024 });
    const port = t.server.port;
    const payload = "x".repeat(1_000_000);
    await t.api.events.subscribe.mutate({ agentId: "reader", types: ["big.*"] });
    const seqs: number[] = [];
    for (let i = 0; i < 24; i++) seqs.push((await t.api.events.publish.mutate({ type: "big.x", source: "s", payload })).seq);
    await cutOff(port, get("/events/reader?limit=100"));
    // The batch is marked lost at once (not left to its hold's expiry): the next poll gets it whole.
    await vi.waitFor(() => expect(withDatabase(t, (db) => db.prepare(`SELECT expiresAt FROM poll_takes WHERE agentId = 'reader'`).pluck().all())).toEqual([0]), { timeout: 60_000 });
    expect((await t.api.events.poll.mutate({ agentId: "reader", limit: 100 })).map((e) => e.seq)).toEqual(seqs);

    const tasks = await Promise.all(Array.from({ length: 24 }, () => t.api.tasks.enqueue.mutate({ queue: "big", payload })));
    const body = JSON.stringify({ agentId: "cut", queues: ["big"], limit: 24 });
    await cutOff(port, `POST /tasks/claim-many HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    const states = async () => (await Promise.all(tasks.map((task) => t.api.tasks.get.query({ taskId: task.id })))).map((task) => [task.status, task.attempts]);
    await vi.waitFor(async () => expect(await states()).toEqual(tasks.map(() => ["pending", 0])), { timeout: 60_000 });
    const released = await t.api.events.list.query({ afterSeq: 0, types: ["task.released"], limit: 100 });
    expect(released.map((e) => (e.payload as { taskId: string }).taskId).sort()).toEqual(tasks.map((task) => task.id).sort());
  });
});

// The same over WebSocket: ws queues a large answer in its buffers, and the socket is open when
// the adapter sends it; the answer reached the client only once it was written to the connection.
describe("delivery over WebSocket", () => {
  it("case 5: a claim answer cut off on its way over a WebSocket is undelivered: the tasks go back uncharged", async () => {
    await using t = await startTestServer({ maxResponseBytes: 64 * 1024 * 1024 });
    const payload = "x".repeat(1_000_000);
    const tasks = await Promise.all(Array.from({ length: 24 }, () => t.api.tasks.enqueue.mutate({ queue: "big", payload })));
    const socket = await rawWebSocket(t.server.port);
    socket.write(maskedTextFrame(JSON.stringify({ id: 1, method: "mutation", params: { path: "tasks.claimMany", input: superjson.serialize({ agentId: "cut", queues: ["big"], limit: 24 }) } })));
    // The answer's first bytes: it is on its way, and ~24 MB cannot all be in the connection's buffers.
    await new Promise((resolve) => socket.once("data", resolve));
    socket.pause();
    socket.resetAndDestroy();
    const states = async () => (await Promise.all(tasks.map((task) => t.api.tasks.get.query({ taskId: task.id })))).map((task) => [task.status, task.attempts]);
    await vi.waitFor(async () => expect(await states()).toEqual(tasks.map(() => ["pending", 0])), { timeout: 60_000 });
    const released = await t.api.events.list.query({ afterSeq: 0, types: ["task.released"], limit: 100 });
    expect(released).toHaveLength(24);
  });
});

// The same, with the answer queued behind a large one on the socket: once that one is written,
// Node writes the answer and the ping after it together, and reports a write its socket's
// destruction cut short as done, without an error.
describe("delivery over WebSocket, behind another answer", () => {
  it("case 6: a claim answer written behind a large answer is undelivered when the client resets during it", async () => {
    await using t = await startTestServer({ maxResponseBytes: 64 * 1024 * 1024 });
    const payload = "x".repeat(1_000_000);
    for (let i = 0; i < 12; i++) await t.api.events.publish.mutate({ type: "big.x", source: "s", payload });
    const tasks = await Promise.all(Array.from({ length: 24 }, () => t.api.tasks.enqueue.mutate({ queue: "big", payload })));
    const socket = await rawWebSocket(t.server.port);
    // Read nothing while the ~12 MB list answer is sent: the claim's answer waits behind it.
    socket.pause();
    socket.write(maskedTextFrame(JSON.stringify({ id: 1, method: "query", params: { path: "events.list", input: superjson.serialize({ afterSeq: 0, limit: 100 }) } })));
    socket.write(maskedTextFrame(JSON.stringify({ id: 2, method: "mutation", params: { path: "tasks.claimMany", input: superjson.serialize({ agentId: "cut", queues: ["big"], limit: 24 }) } })));
    const states = async () => (await Promise.all(tasks.map((task) => t.api.tasks.get.query({ taskId: task.id })))).map((task) => [task.status, task.attempts]);
    await vi.waitFor(async () => expect(await states()).toEqual(tasks.map(() => ["claimed", 1])), { timeout: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 300)); // the ping after it is queued too
    // Read the list answer and a little of the claim's (~24 MB), then reset.
    let received = 0;
    await new Promise<void>((resolve) => {
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received < 14_000_000) return;
        socket.pause();
        socket.resetAndDestroy();
        resolve();
      });
      socket.resume();
    });
    await vi.waitFor(async () => expect(await states()).toEqual(tasks.map(() => ["pending", 0])), { timeout: 60_000 });
  });
});

/** A WebSocket opened by hand on a socket of its own (so the test sees the answer's first bytes arrive), upgraded. */
async function rawWebSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.write(`GET /trpc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 7).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const head = await new Promise<Buffer>((resolve) => socket.once("data", resolve));
  expect(head.toString("latin1").split("\r\n")[0]).toBe("HTTP/1.1 101 Switching Protocols");
  return socket;
}

/** One client-to-server text frame (masked, as a client's must be), of under 64 KiB. */
function maskedTextFrame(text: string): Buffer {
  const data = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const header = data.length < 126 ? Buffer.from([0x81, 0x80 | data.length]) : Buffer.from([0x81, 0x80 | 126, data.length >> 8, data.length & 0xff]);
  return Buffer.concat([header, mask, data.map((byte, i) => byte ^ mask[i % 4]!)]);
}

/** Sends `request` on a socket of its own, reads the answer's first bytes, then resets the connection with the rest unread. */
async function cutOff(port: number, request: string): Promise<void> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.write(request);
  const head = await new Promise<Buffer>((resolve) => socket.once("data", resolve));
  socket.pause();
  socket.resetAndDestroy();
  expect(head.toString("latin1").split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
}
