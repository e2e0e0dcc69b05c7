// mayHaveBeenServed(error) tells a program whose call failed whether sending it again could do its
// work twice: a write whose answer was lost (here a proxy cuts the connection once the server's
// answer starts, after the write committed) may have been served; a call that never reached a
// server, one the server refused, a read, or one given up before it was sent did nothing.
import { createServer as createTcpServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, mayHaveBeenServed, type CoordinationClient } from "../client/index.js";
import { killAllCli, runCli } from "./helpers/cli-process.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let servers: TestServer[] = [];
let clients: CoordinationClient[] = [];
let proxies: Server[] = [];
afterEach(async () => {
  await killAllCli();
  for (const client of clients) await client.close();
  for (const proxy of proxies) await new Promise<void>((resolve) => proxy.close(() => resolve()));
  for (const server of servers) await server.stop({ removeFiles: true });
  servers = [];
  clients = [];
  proxies = [];
});

async function server(): Promise<TestServer> {
  const started = await startTestServer();
  servers.push(started);
  return started;
}

function client(url: string, options: { waitForServerMs?: number; callTimeoutMs?: number } = {}): CoordinationClient {
  const made = createCoordinationClient({ url, ...options });
  clients.push(made);
  return made;
}

/**
 * A loopback proxy to `target` that passes each request on and then, as `answers` says, cuts the
 * connection when the server's answer starts ("cut": the request was served, its answer lost) or
 * never passes an answer back ("silent", a server frozen with its port open).
 */
async function proxy(target: string, answers: "cut" | "silent"): Promise<string> {
  const { port, hostname } = new URL(target);
  const sockets = new Set<Socket>();
  const listening = createTcpServer((from) => {
    const to = connect(Number(port), hostname);
    for (const socket of [from, to]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
    }
    from.pipe(to);
    to.on("data", () => {
      if (answers === "cut") {
        from.destroy();
        to.destroy();
      }
    });
    from.on("close", () => to.destroy());
  });
  listening.on("close", () => {
    for (const socket of sockets) socket.destroy();
  });
  proxies.push(listening);
  await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
}

const failure = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => expect.unreachable("the call should have failed"),
    (error: unknown) => error,
  );

describe("mayHaveBeenServed", () => {
  it("a write whose answer was lost may have been served (and was); a read that lost its answer did nothing", async () => {
    const live = await server();
    const cutting = client(await proxy(live.url, "cut"), { waitForServerMs: 0 });
    const lost = await failure(cutting.api.tasks.enqueue.mutate({ queue: "lost-answers", payload: { n: 1 } }));
    expect(mayHaveBeenServed(lost)).toBe(true);
    // It was: the task is there, though its enqueue failed.
    expect((await live.api.tasks.list.query({ queue: "lost-answers" })).items.map((task) => task.payload)).toEqual([{ n: 1 }]);
    // The typed client sends a read that lost its answer again (waitForServerMs): with 0, its error comes back, and says it did nothing.
    const read = await failure(cutting.api.tasks.stats.query());
    expect(mayHaveBeenServed(read)).toBe(false);
  });

  it("a write past callTimeoutMs, or aborted in flight, may have been served; one aborted before it was made did nothing", async () => {
    const live = await server();
    const frozen = client(await proxy(live.url, "silent"), { waitForServerMs: 0, callTimeoutMs: 300 });
    const timedOut = await failure(frozen.api.agents.register.mutate({ agentId: "a" }));
    expect(timedOut).toMatchObject({ message: expect.stringContaining("no answer from") });
    expect(mayHaveBeenServed(timedOut)).toBe(true);
    // No call timeout here: the signal alone ends the call, once the server has it.
    const frozenLonger = client(await proxy(live.url, "silent"), { waitForServerMs: 0 });
    const inFlight = new AbortController();
    const abortedInFlight = failure(frozenLonger.api.agents.register.mutate({ agentId: "b" }, { signal: inFlight.signal }));
    await vi.waitFor(async () => expect((await live.api.agents.list.query({})).map((agent) => agent.agentId)).toContain("b"), { timeout: 15_000, interval: 20 });
    inFlight.abort(new Error("the caller gave up"));
    expect(mayHaveBeenServed(await abortedInFlight)).toBe(true);
    const before = new AbortController();
    before.abort(new Error("given up before it was made"));
    const abortedBefore = await failure(frozen.api.agents.register.mutate({ agentId: "c" }, { signal: before.signal }));
    expect(abortedBefore).toMatchObject({ message: "given up before it was made" });
    expect(mayHaveBeenServed(abortedBefore)).toBe(false);
  });

  it("a call that reached no server, that the server answered with an error, or that could not be sent, did nothing", async () => {
    const live = await server();
    const api = client(live.url).api;
    const conflict = await failure(api.tasks.complete.mutate({ taskId: "no-such-task", agentId: "a", result: {} }));
    expect(conflict).toMatchObject({ data: { code: "TASK_NOT_FOUND" } });
    expect(mayHaveBeenServed(conflict)).toBe(false);
    const invalid = await failure(api.tasks.enqueue.mutate({ queue: "", payload: {} }));
    expect(invalid).toMatchObject({ data: { code: "INVALID_INPUT" } });
    expect(mayHaveBeenServed(invalid)).toBe(false);
    const unsendable = await failure(api.tasks.enqueue.mutate({ queue: "q", payload: JSON.parse('{"__proto__":{"x":1}}') as Record<string, number> }));
    expect(mayHaveBeenServed(unsendable)).toBe(false);
    await live.stop();
    const refused = await failure(client(live.url, { waitForServerMs: 0 }).api.tasks.enqueue.mutate({ queue: "q", payload: {} }));
    expect(refused).toMatchObject({ message: expect.stringContaining("ECONNREFUSED") });
    expect(mayHaveBeenServed(refused)).toBe(false);
  });

  it("a call close() ended while it waited for its server, one its signal ended so, and a call made after close(), did nothing", async () => {
    const gone = await server();
    await gone.stop();
    const aborting = new AbortController();
    let refusedRegistrations = 0;
    // The registration's signal aborts just after its first try was refused: a timer of 1 ms,
    // which fires before the client's 100 ms wait between tries, however slow the machine.
    const refusing: typeof fetch = async (input, init) => {
      try {
        return await fetch(input, init);
      } catch (error) {
        if (String(input instanceof Request ? input.url : input).includes("agents.register") && ++refusedRegistrations === 1) setTimeout(() => aborting.abort(new Error("the caller gave up")), 1);
        throw error;
      }
    };
    const closing = createCoordinationClient({ url: gone.url, fetch: refusing as never });
    clients.push(closing);
    const waiting = failure(closing.api.tasks.enqueue.mutate({ queue: "q", payload: {} }));
    const abortedWaiting = await failure(closing.api.agents.register.mutate({ agentId: "a" }, { signal: aborting.signal }));
    expect(abortedWaiting).toMatchObject({ message: "the caller gave up" });
    expect(refusedRegistrations).toBe(1);
    expect(mayHaveBeenServed(abortedWaiting)).toBe(false);
    await closing.close();
    expect(await waiting).toMatchObject({ cause: { name: "ClientClosedError" } });
    expect(mayHaveBeenServed(await waiting)).toBe(false);
    const after = await failure(closing.api.tasks.enqueue.mutate({ queue: "q", payload: {} }));
    expect(mayHaveBeenServed(after)).toBe(false);
  });

  it("a write made after close() on a client with its own connections (no fetch given) did nothing, used or not", async () => {
    const live = await server();
    for (const used of [false, true]) {
      const closed = client(live.url, { waitForServerMs: 0 });
      if (used) await closed.api.tasks.stats.query();
      await closed.close();
      const after = await failure(closed.api.tasks.enqueue.mutate({ queue: "after-close", payload: {} }));
      expect(mayHaveBeenServed(after)).toBe(false);
      expect(mayHaveBeenServed(await failure(closed.api.tasks.stats.query()))).toBe(false);
    }
    // It was not sent.
    expect((await live.api.tasks.list.query({ queue: "after-close" })).items).toHaveLength(0);
  });

  it("the command line says a change whose answer was lost may have been made, and a server not reached that nothing was", async () => {
    const live = await server();
    const cut = await runCli({ args: ["queues", "pause", "lost-answer", "--url", await proxy(live.url, "cut")] }, 60_000);
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/^coordination: no answer from the server at http:\/\/127\.0\.0\.1:\d+ \(.*\): what was asked may have been done; look before asking again\n$/);
    // It was.
    expect(await live.api.queues.status.query({ queue: "lost-answer" })).toMatchObject({ paused: true });
    const url = live.url;
    await live.stop();
    const refused = await runCli({ args: ["queues", "pause", "lost-answer", "--url", url] }, 60_000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^coordination: cannot reach the server at http:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED.*\)\n$/);
  });

  it("the command line says a read whose connection broke after it was sent went unanswered, not that the server could not be reached", async () => {
    const live = await server();
    const cut = await runCli({ args: ["stats", "--url", await proxy(live.url, "cut")] }, 60_000);
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/^coordination: no answer from the server at http:\/\/127\.0\.0\.1:\d+ \(.*\): nothing was changed; ask again\n$/);
    const url = live.url;
    await live.stop();
    const refused = await runCli({ args: ["stats", "--url", url] }, 60_000);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/^coordination: cannot reach the server at http:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED.*\)\n$/)]);
  });

  it("a call aborted with another call's error as its reason is judged as itself: the reason is neither marked nor read", async () => {
    const live = await server();
    // A write whose answer was lost, and a program that stops the calls made with it (its reason that error).
    const lost = await failure(client(await proxy(live.url, "cut"), { waitForServerMs: 0 }).api.tasks.enqueue.mutate({ queue: "siblings", payload: {} }));
    expect(mayHaveBeenServed(lost)).toBe(true);
    const siblings = new AbortController();
    siblings.abort(lost);
    const api = client(live.url).api;
    // Given up before they were made: they did nothing, and say so, without changing what the lost write says.
    expect(mayHaveBeenServed(await failure(api.tasks.stats.query(undefined, { signal: siblings.signal })))).toBe(false);
    expect(mayHaveBeenServed(await failure(api.agents.register.mutate({ agentId: "never" }, { signal: siblings.signal })))).toBe(false);
    expect(mayHaveBeenServed(lost)).toBe(true);
    // A write the server has, aborted in flight with the reason of a call the server answered
    // (TASK_NOT_FOUND), or of one that reached no server: it may have been served, whatever its reason says.
    const answered = await failure(api.tasks.complete.mutate({ taskId: "no-such-task", agentId: "a", result: {} }));
    expect(answered).toMatchObject({ data: { code: "TASK_NOT_FOUND" } });
    const gone = await server();
    await gone.stop();
    const refused = await failure(client(gone.url, { waitForServerMs: 0 }).api.agents.list.query({}));
    expect(refused).toMatchObject({ message: expect.stringContaining("ECONNREFUSED") });
    const frozen = client(await proxy(live.url, "silent"), { waitForServerMs: 0 });
    for (const [agentId, reason] of [["answered-reason", answered], ["refused-reason", new Error("the caller gave up", { cause: refused })]] as const) {
      const inFlight = new AbortController();
      const aborted = failure(frozen.api.agents.register.mutate({ agentId }, { signal: inFlight.signal }));
      await vi.waitFor(async () => expect((await api.agents.list.query({})).map((agent) => agent.agentId)).toContain(agentId), { timeout: 15_000, interval: 20 });
      inFlight.abort(reason);
      expect(mayHaveBeenServed(await aborted)).toBe(true);
    }
    expect(mayHaveBeenServed(answered)).toBe(false);
  });

  it("any other value may have been served: nothing says it was not", () => {
    expect(mayHaveBeenServed(new Error("from elsewhere"))).toBe(true);
    expect(mayHaveBeenServed(undefined)).toBe(true);
    expect(mayHaveBeenServed("text")).toBe(true);
  });
});
