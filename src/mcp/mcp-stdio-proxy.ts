// `coordination mcp --url … --token … --agent …`: the MCP server for desktop clients that start a
// command and speak MCP over its stdin and stdout. It relays every message, unchanged, to a
// running server's /mcp endpoint (Streamable HTTP) and back, so there is one implementation of
// the tools; the credential and the agent travel as the HTTP headers of the relayed session.
// Diagnostics go to stderr: stdout carries the protocol alone.
//
// The server's session can end under a client that is still there: the server restarted, the
// session sat idle past mcpSessionIdleMs, or its agent opened more than maxMcpSessionsPerAgent.
// The server then answers 404, and the MCP specification has the client initialize again; but
// the desktop client sees only this process's stdin and stdout, which never closed. So the relay
// does it for the client: it sends the client's own initialize again (its answer kept here),
// then the message that met the 404. The relay ends when stdin ends or on SIGTERM/SIGINT, and
// deletes its session on the server as it goes.
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { isInitializeRequest, isInitializedNotification, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { bearerToken } from "../../client/bearer-token.js";
import { withoutTrailingSlashes } from "../../client/without-trailing-slashes.js";
import { requestIds } from "./request-ids.js";

export interface McpProxyOptions {
  url: string;
  token?: string | undefined;
  agentId?: string | undefined;
}

/** How long the relay, ending, waits for the server to answer the deletion of its session (ms). */
const SESSION_DELETE_WAIT_MS = 3_000;

/** How long a session opened again waits for its initialize's answer (ms). */
const REINITIALIZE_WAIT_MS = 30_000;

/**
 * The SDK's errors once the session's notification stream is gone for good: the server no longer
 * knows the session (404 on reconnecting), or the SDK's reconnections all failed. Not its error
 * for a stream that merely broke: the SDK reconnects that one by itself.
 */
const STREAM_GAVE_UP = /Maximum reconnection attempts|SSE stream: Not Found/;

/**
 * How long after a call's answer stream ended without its answer the relay answers for it (ms):
 * the SDK parses what the stream brought after the stream ends, so an answer that came last is
 * still on its way for a moment. A bound on a local parse, not on the network.
 */
const ANSWER_GRACE_MS = 1000;

/** The ids of the JSON-RPC requests in a relayed POST's body (text); none in one that is not JSON. */
function relayedIds(body: unknown): Array<string | number> {
  if (typeof body !== "string") return [];
  try {
    return requestIds(JSON.parse(body));
  } catch {
    return [];
  }
}

/**
 * How long the client's initialize is sent again while nothing listens at the server's address
 * (ms): a host and the server started together (at login, by one process manager) would
 * otherwise find the relay failed for good, as hosts do not initialize again. Well within the
 * 60 s a host's SDK waits for an answer.
 */
const INITIALIZE_REACH_MS = 20_000;

/** Nothing listens at the address (yet): fetch's connection was refused, no HTTP status came. */
const notListening = (error: unknown): boolean => error instanceof TypeError && (error.cause as { code?: unknown } | undefined)?.code === "ECONNREFUSED";

/** The server no longer knows the session (404): initialize again (the MCP specification's rule). */
const sessionGone = (error: unknown): boolean => error instanceof StreamableHTTPError && error.code === 404;

/**
 * The server's own answer when it refused a relayed message with an HTTP error: its status, and
 * the message of the JSON-RPC error its body carries ("this credential acts as agent …"), else
 * the transport's words. Undefined when no answer came (the server was not reached).
 */
function refusalOf(error: unknown): { status: number; message: string } | undefined {
  if (!(error instanceof StreamableHTTPError) || typeof error.code !== "number") return undefined;
  const at = error.message.indexOf("{");
  try {
    const said: unknown = at < 0 ? undefined : JSON.parse(error.message.slice(at));
    const inner = typeof said === "object" && said !== null ? (said as { error?: { message?: unknown } }).error?.message : undefined;
    if (typeof inner === "string") return { status: error.code, message: inner };
  } catch {
    // Not a JSON-RPC body (a proxy's HTML page): the transport's words say what came.
  }
  return { status: error.code, message: error.message };
}

/**
 * The server's /mcp endpoint under `url`, its path kept: a server behind a proxy at a path
 * (https://example.com/coordination, as the typed client and the operator CLI take it) is at
 * https://example.com/coordination/mcp; resolved as "/mcp", the path was dropped and every
 * message went to the proxy's own /mcp. A URL naming the endpoint itself (…/mcp) is taken as it is.
 */
export function mcpEndpoint(url: string): URL {
  const endpoint = new URL(url);
  const path = withoutTrailingSlashes(endpoint.pathname);
  endpoint.pathname = path.endsWith("/mcp") ? path : `${path}/mcp`;
  endpoint.search = "";
  endpoint.hash = "";
  return endpoint;
}

/** Relays until either side closes; resolves then. */
export async function runMcpStdioProxy(options: McpProxyOptions, stderr: (text: string) => void): Promise<void> {
  const headers: Record<string, string> = {};
  // Without the whitespace around it (a file's newline): sent so, fetch refused every request.
  const token = options.token === undefined ? undefined : bearerToken(options.token, "coordination mcp: the token (--token or COORDINATION_TOKEN)");
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  // As its UTF-8 bytes, one character each: a header carries bytes, and fetch refuses a character past U+00FF (the server reads them back).
  if (options.agentId) headers["x-agent-id"] = Buffer.from(options.agentId, "utf8").toString("latin1");
  const endpoint = mcpEndpoint(options.url);
  const local = new StdioServerTransport();
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let ending = false;

  /**
   * The client's requests relayed and not yet answered, by id. A call's answer travels on the
   * stream that answers its POST; when that stream ends without it (the server was killed or
   * restarted mid-call), nothing else would ever answer, and the client would wait for its own
   * timeout: the relay answers instead (answerLost).
   */
  const unanswered = new Map<string | number, JSONRPCMessage>();
  const answerLost = (id: string | number, why: string) => {
    const request = unanswered.get(id);
    if (request === undefined) return;
    unanswered.delete(id);
    const text =
      `the coordination server at ${options.url} ended this call without answering it (${why}): it stopped or restarted, or the session's credential was revoked. ` +
      "It may have been done: look before sending it again (get_task shows a task's state; a task claimed meanwhile comes back to its queue when its lease ends)";
    stderr(`coordination mcp: a call's answer was lost (${why}); the client is told so\n`);
    const toolCall = "method" in request && request.method === "tools/call";
    void local.send(toolCall ? { jsonrpc: "2.0", id, result: { content: [{ type: "text", text }], isError: true } } : { jsonrpc: "2.0", id, error: { code: -32603, message: text } }).catch(() => undefined);
  };
  /** fetch, watching each call's answer stream: the calls it carried that it ends without answering are answered by the relay. */
  const watchedFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const response = await fetch(input, init);
    const ids = init?.method === "POST" && (response.headers.get("content-type") ?? "").startsWith("text/event-stream") ? relayedIds(init.body) : [];
    if (ids.length === 0 || response.body === null) return response;
    const reader = response.body.getReader();
    const ended = (why: string) => setTimeout(() => ids.forEach((id) => answerLost(id, why)), ANSWER_GRACE_MS).unref();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (!done) return controller.enqueue(value);
          controller.close();
          ended("its answer stream closed");
        } catch (error) {
          controller.error(error);
          ended(`its answer stream broke: ${error instanceof Error ? error.message : String(error)}`);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

  const fail = (message: JSONRPCMessage, error: unknown) => {
    if ("id" in message && message.id !== undefined) unanswered.delete(message.id);
    const refusal = refusalOf(error);
    stderr(`coordination mcp: ${refusal === undefined ? (error instanceof Error ? error.message : String(error)) : `the server refused a message (HTTP ${refusal.status}): ${refusal.message}`}\n`);
    // A request whose relay failed gets an error answer, so the client is not left waiting.
    if ("id" in message && "method" in message) {
      const text = refusal?.message ?? (error instanceof Error ? error.message : String(error));
      const why =
        refusal?.status === 401 || /UNAUTHORIZED|\b401\b/.test(text)
          ? "refused the credential (set COORDINATION_TOKEN or --token to a valid token)"
          : refusal !== undefined
            ? `refused the message (HTTP ${refusal.status})`
            : "could not be reached or refused the message";
      const said = `the coordination server at ${options.url} ${why}: ${text}`;
      // A tool call's failure is a tool result a model reads and acts on, not a protocol error.
      void local.send(
        message.method === "tools/call"
          ? { jsonrpc: "2.0", id: message.id, result: { content: [{ type: "text", text: said }], isError: true } }
          : { jsonrpc: "2.0", id: message.id, error: { code: -32603, message: said } },
      );
    }
  };

  /** The client's initialize and initialized, sent again to open a new session; and its logging level, set again on it. */
  let initialize: JSONRPCMessage | undefined;
  let initialized: JSONRPCMessage | undefined;
  let setLevel: JSONRPCMessage | undefined;
  /** Answers to initialize requests the relay sent itself: kept from the client, which has its own. */
  const replays = new Map<string | number, (answer: JSONRPCMessage) => void>();
  let reopenings = 0;

  const connect = (): StreamableHTTPClientTransport => {
    const transport = new StreamableHTTPClientTransport(endpoint, { requestInit: { headers }, fetch: watchedFetch });
    transport.onmessage = (message) => {
      const id = "id" in message && !("method" in message) ? message.id : undefined;
      if (id !== undefined) unanswered.delete(id);
      const replay = id === undefined ? undefined : replays.get(id);
      if (replay !== undefined) {
        replays.delete(id!);
        return replay(message);
      }
      void local.send(message).catch(() => undefined);
    };
    transport.onerror = (error) => {
      stderr(`coordination mcp: ${error.message}\n`);
      // The notification stream gave up (the server restarted, or ended the session): open a
      // new session now, not at the client's next request; an agent that only listens for
      // notifications would otherwise hear nothing more.
      if (transport === remote && STREAM_GAVE_UP.test(error.message)) reopenSoon();
    };
    transport.onclose = () => {
      if (transport === remote && !ending) void local.close();
    };
    return transport;
  };
  let remote = connect();

  /**
   * A new session for the client, once for every message that met the old one's end. The new
   * transport replaces the old only once its initialize was answered: one refused (a 429 while
   * the agent's sessions are all busy, a restart under way) leaves the old, whose next message
   * meets the 404 again and tries again.
   */
  let reopening: Promise<void> | undefined;
  /** Sessions opened again so far: a retry that wakes to find one opened meanwhile has nothing to do. */
  let reopened = 0;
  const reopen = (): Promise<void> =>
    (reopening ??= (async () => {
      const fresh = connect();
      try {
        await fresh.start();
        const id = `coordination-mcp-reinitialize-${++reopenings}`;
        const answered = new Promise<JSONRPCMessage>((resolve, reject) => {
          replays.set(id, resolve);
          // Not left waiting on a server that took the request and went away.
          setTimeout(() => reject(new Error("initialize was not answered in 30 s")), REINITIALIZE_WAIT_MS).unref();
        });
        answered.catch(() => undefined);
        let answer: JSONRPCMessage;
        try {
          await fresh.send({ ...(initialize as object), id } as JSONRPCMessage);
          answer = await answered;
        } finally {
          replays.delete(id);
        }
        if ("error" in answer) throw new Error(`initialize refused: ${JSON.stringify(answer.error)}`);
        if (initialized !== undefined) await fresh.send(initialized);
        // The level the client chose is the session's: the new one starts at the server's default.
        if (setLevel !== undefined) {
          const levelId = `coordination-mcp-set-level-${reopenings}`;
          replays.set(levelId, () => undefined);
          await fresh.send({ ...(setLevel as object), id: levelId } as JSONRPCMessage);
        }
      } catch (error) {
        void fresh.close().catch(() => undefined);
        throw error;
      }
      const old = remote;
      remote = fresh;
      reopened++;
      void old.close().catch(() => undefined);
      stderr("coordination mcp: the server had ended the session (restarted, idle or replaced); a new one was opened\n");
    })().finally(() => (reopening = undefined)));

  /**
   * Opens a new session once the old one's notification stream gave up, trying again (1 s,
   * doubling to 30 s) while the server cannot be reached, until the relay ends. Notifications the
   * server sent while no session was open are not sent again: the direct messages among them
   * wait in the agent's mailbox (read_mailbox).
   */
  let retrying = false;
  /** The stream gave up again while a retry waited: the session a call opened meanwhile is gone too. */
  let gaveUpAgain = false;
  const reopenSoon = () => {
    if (ending || initialize === undefined) return;
    if (retrying) return void (gaveUpAgain = true);
    retrying = true;
    gaveUpAgain = false;
    let since = reopened;
    void (async () => {
      for (let delay = 1000; !ending; delay = Math.min(delay * 2, 30_000)) {
        if (reopened !== since) {
          // A call of the client's opened one while this waited: a second would replace it, and
          // cut the calls under way on it; unless that one's stream gave up since, too.
          if (!gaveUpAgain) return;
          gaveUpAgain = false;
          since = reopened;
        }
        try {
          return void (await reopen());
        } catch (error) {
          stderr(`coordination mcp: the server cannot open a new session yet (${error instanceof Error ? error.message : String(error)}); trying again in ${delay / 1000} s\n`);
          await new Promise((resolve) => setTimeout(resolve, delay).unref());
        }
      }
    })().finally(() => (retrying = false));
  };

  /**
   * Sends the client's initialize, again (0.5 s doubling to 4 s) while nothing listens at the
   * server's address, for up to INITIALIZE_REACH_MS; then the last refusal is the client's answer.
   */
  const sendWhenListening = async (via: StreamableHTTPClientTransport, message: JSONRPCMessage) => {
    const deadline = Date.now() + INITIALIZE_REACH_MS;
    for (let delay = 500; ; delay = Math.min(delay * 2, 4000)) {
      try {
        return await via.send(message);
      } catch (error) {
        if (!notListening(error) || ending || Date.now() + delay > deadline) throw error;
        stderr(`coordination mcp: nothing listens at ${options.url} yet (connection refused); initialize is sent again in ${delay / 1000} s\n`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  };

  const relay = async (message: JSONRPCMessage) => {
    // A session being opened again: what comes meanwhile goes on it, in order, once it is open.
    if (reopening !== undefined) await reopening.catch(() => undefined);
    const via = remote;
    try {
      await (isInitializeRequest(message) ? sendWhenListening(via, message) : via.send(message));
    } catch (error) {
      if (!sessionGone(error) || initialize === undefined || isInitializeRequest(message)) return fail(message, error);
      try {
        // Sent on a session already replaced: the new one takes it.
        if (via === remote) await reopen();
        else if (reopening !== undefined) await reopening;
        await remote.send(message);
      } catch (again) {
        fail(message, again);
      }
    }
  };

  // The server's session starts with the answer to `initialize` (its id comes back in a header):
  // what the client sends before that answer arrives (a client that writes its first messages
  // at once) waits for it, in order. After, messages go as they come, so a notification such as
  // a cancellation is not held behind a long call.
  let session: Promise<unknown> = Promise.resolve();
  local.onmessage = (message) => {
    if (isInitializeRequest(message)) {
      initialize = message;
      session = session.then(() => relay(message));
      return;
    }
    if (isInitializedNotification(message)) initialized = message;
    if ("method" in message && message.method === "logging/setLevel") setLevel = message;
    if ("method" in message && "id" in message) unanswered.set(message.id, message);
    // A call the client cancelled is not answered (MCP's rule): the relay does not answer it either.
    if ("method" in message && message.method === "notifications/cancelled") unanswered.delete((message.params as { requestId: string | number }).requestId);
    void session.then(() => relay(message));
  };

  const end = () => {
    if (ending) return;
    ending = true;
    // The session is deleted on the server rather than left to its idle limit (it counts toward
    // the agent's maxMcpSessionsPerAgent until then). Not waited for past SESSION_DELETE_WAIT_MS:
    // a server that takes the DELETE and never answers (hung, stopped, a proxy holding it) would
    // keep the relay running after its host closed it, and hosts start a new one each time.
    // close() aborts the DELETE still under way (the SDK sends it with the transport's signal).
    let waited: ReturnType<typeof setTimeout> | undefined;
    const givenUp = new Promise<void>((resolve) => (waited = setTimeout(resolve, SESSION_DELETE_WAIT_MS)));
    void Promise.race([remote.terminateSession().catch(() => undefined), givenUp]).finally(() => {
      clearTimeout(waited);
      void remote.close().finally(finish);
    });
  };
  local.onclose = end;
  // The SDK's stdio transport does not notice its input ending: a client that closes our stdin
  // (or a host that stops us) ends the relay here.
  process.stdin.once("end", () => void local.close());
  const onSignal = () => void local.close();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  await remote.start();
  await local.start();
  await finished;
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
}
