// /mcp: the Model Context Protocol over Streamable HTTP (the SDK's transport), one MCP server per
// session. A session is opened by an initialize request and acts as one agent: its credential's,
// or (an admin's credential, or no credentials configured) the X-Agent-Id header's. Every later
// request of the session must carry the same credential. A session ends when:
//  - its client deletes it, or the server shuts down;
//  - its credential is revoked (or, opened with none, credentials become required): its stream
//    of notifications must not outlive the right to read them;
//  - it has had no request and no open stream for mcpSessionIdleMs: clients that go away without
//    deleting their session leave nothing behind for long;
//  - its agent opens more than maxMcpSessionsPerAgent with the same credential, or the server
//    holds more than maxMcpSessions in all (many agents: with no credentials, or an admin's, the
//    X-Agent-Id header names any): the least recently used one with no request under way ends
//    (with every one busy, the new one is a 429). Each session is an MCP server and an event
//    listener, so their number is bounded by the clients' use, not by how many initialize
//    requests one can send.
// A session with a request under way (a tool call, a long-poll) is never ended for idleness or
// the cap: its answer would be lost, and with it a claimed task's lease token.
// A client whose session ended gets a 404 on its next request, and initializes again (the MCP
// specification's rule for a session the server no longer knows).
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest, SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
import { Gauge } from "prom-client";
import { z, type ZodType } from "zod";
import { bearerSecret } from "../auth/token-secret.js";
import { bodyTooLarge, decodeUtf8, NOT_UTF8, readBody, sendJson, sendUnauthorized, unreadableBody } from "../server/http-io.js";
import type { Services } from "../services.js";
import type { Caller } from "../trpc/context.js";
import { agentIdSchema } from "../tasks/task-schemas.js";
import { invalidInput } from "../trpc/error-shape.js";
import { isJsonObject } from "../json-checks.js";
import { createMcpServer } from "./mcp-tools.js";
import { cancelledIds, requestIds } from "./request-ids.js";
import { LateCancels, type Handed } from "./late-cancels.js";
import { toolArguments } from "./tool-arguments.js";

interface Session {
  transport: StreamableHTTPServerTransport;
  /** The input schema of the session's tool named so (a tool call's arguments are read by it). */
  inputSchemaOf: (tool: string) => ZodType | undefined;
  /** The credential the session was opened with ("" without credentials). */
  credential: string;
  /** What Credentials.onRevoked names when that credential loses its rights; undefined if it cannot. */
  revocationKey: string | undefined;
  /** The credential and the agent: sessions are bounded per owner. */
  owner: string;
  /** When the session last had a request or a stream end (Unix ms): the idle check's clock. */
  lastActiveAt: number;
  /** The endpoint's use counter when the session was last used: least recently used first, no ties. */
  used: number;
  /**
   * Its open streams (GET), by response: a session listening for notifications is not idle; one
   * whose client stops reading is closed (mcpStreamBufferBytes).
   */
  streamResponses: Set<ServerResponse>;
  /** Its requests under way (POST, DELETE): a session with one is never ended but by revocation. */
  busy: number;
  /** Set once it is being ended: no longer counted against the caps, and takes no more requests. */
  ending?: boolean;
  /** The response each JSON-RPC request under way is answered in, by id (delivery confirmation). */
  responses: Map<string | number, ServerResponse>;
  /** Aborted when its client deletes it: its calls under way stop waiting and are answered so (mcp-tools.ts). */
  deleted: AbortController;
  /** Called once it has no request under way. */
  whenIdle: Array<() => void>;
  /** The leases its recent answers handed out, for a cancel that comes after the answer (late-cancels.ts). */
  lateCancels: LateCancels;
}

const credentialOf = (caller: Caller): string => (caller.kind === "token" ? caller.tokenId : "");

/** Resolves once `session` has no request under way, or after `ms`. */
function untilIdle(session: Session, ms: number): Promise<void> {
  if (session.busy === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(patience);
      resolve();
    };
    const patience = setTimeout(done, ms);
    patience.unref();
    session.whenIdle.push(done);
  });
}

/** The responses of JSON-RPC batches of more than one message (McpSession.inBatch). */
const batchResponses = new WeakSet<ServerResponse>();

/**
 * The method a refused tool call of a batch is handed to its session's server as, with why in its
 * params: the server answers its id with that refusal (-32602), as a lone call's is answered, and
 * runs the batch's other messages.
 */
const REFUSED_TOOL_CALL = "coordination/refused-tool-call";
const refusedToolCall = z.object({ method: z.literal(REFUSED_TOOL_CALL), params: z.object({ message: z.string() }) });

/**
 * Reads the arguments of the body's tool calls in place, as tool-arguments.ts says (null for none,
 * null fields left out). A lone call whose arguments are no object, or hold a key superjson
 * refuses, is refused: its id and why (the SDK answered -32603 with a dump of its own schema's
 * issues, or dropped the key). In a batch, such a call becomes a REFUSED_TOOL_CALL, answered with
 * the same refusal, while its other messages still run: left to the SDK, a "__proto__" key of a
 * record (register_agent's metadata) was dropped without a word and the call run without it.
 */
function readToolCalls(body: unknown, inputSchemaOf: (tool: string) => ZodType | undefined): { id: string | number | null; message: string } | undefined {
  const batch = Array.isArray(body);
  for (const message of batch ? body : [body]) {
    if (typeof message !== "object" || message === null || (message as { method?: unknown }).method !== "tools/call") continue;
    const params = (message as { params?: unknown }).params;
    if (typeof params !== "object" || params === null || Array.isArray(params)) continue;
    const call = params as { name?: unknown; arguments?: unknown };
    const read = toolArguments(typeof call.name === "string" ? inputSchemaOf(call.name) : undefined, call.arguments);
    if (read.ok) {
      if (read.arguments === undefined) delete call.arguments;
      else call.arguments = read.arguments;
    } else if (!batch) {
      const { id } = message as { id?: unknown };
      return { id: typeof id === "string" || typeof id === "number" ? id : null, message: read.message };
    } else {
      // Its id and jsonrpc stay; it no longer names the tool, so nothing of it runs.
      (message as { method: string }).method = REFUSED_TOOL_CALL;
      (message as { params: unknown }).params = { message: read.message };
    }
  }
  return undefined;
}

/**
 * The first tool call of a batch (a JSON array of more than one message) that takes something
 * for its agent: claim_task, read_mailbox, complete_task with `next`. Undefined for a lone
 * message or a batch without one. The SDK writes each answer of a batch to the response's stream
 * as it is ready, but the response is known delivered only once it finished: an answer the client
 * read before it left would be taken as lost and what it handed out given back (a task run twice).
 */
function takingCallInBatch(body: unknown): string | undefined {
  if (!Array.isArray(body) || body.length < 2) return undefined;
  for (const message of body) {
    const params = isJsonObject(message) && message.method === "tools/call" && isJsonObject(message.params) ? message.params : undefined;
    if (params === undefined) continue;
    const args = isJsonObject(params.arguments) ? params.arguments : {};
    if (params.name === "claim_task" || params.name === "read_mailbox" || params.name === "acquire_lock" || params.name === "acquire_permit" || (params.name === "complete_task" && args.next !== undefined)) return String(params.name);
  }
  return undefined;
}

export function createMcpEndpoint(services: Services) {
  const { config, credentials, log } = services;
  const sessions = new Map<string, Session>();
  /**
   * Ends a session: counted out at once, its transport closed (it leaves the map a little later).
   * Its tool calls under way are answered first: closing the transport would drop their answers,
   * and a client would wait for them until its own timeout. Only a revocation ends a session
   * with calls under way (idle and least-recently-used ends take none), and a long-poll among
   * them wakes at the revocation and answers 401, so they end soon; shutdownTimeoutMs bounds it.
   */
  const end = (id: string, session: Session, reason: string) => {
    if (session.ending) return;
    session.ending = true;
    log.debug({ session: id, owner: session.owner, reason }, "MCP session ended");
    for (const stream of session.streamResponses) stream.end();
    void untilIdle(session, config.shutdownTimeoutMs).then(() => session.transport.close().catch(() => undefined));
  };
  const unlistenRevoked = credentials.onRevoked((key) => {
    for (const [id, session] of sessions) if (session.revocationKey === key) end(id, session, "credential revoked");
  });
  let uses = 0;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, session] of sessions) {
      if (session.streamResponses.size === 0 && session.busy === 0 && now - session.lastActiveAt >= config.mcpSessionIdleMs) end(id, session, "idle");
    }
  }, Math.max(10, Math.min(config.mcpSessionIdleMs / 2, 60_000)));
  sweep.unref();
  const GAUGE = "coordination_mcp_sessions";
  new Gauge({
    name: GAUGE,
    help: "MCP sessions open, and those holding a notification stream",
    labelNames: ["state"],
    registers: [services.metrics.registry],
    collect() {
      this.set({ state: "open" }, sessions.size);
      this.set({ state: "streaming" }, [...sessions.values()].filter((session) => session.streamResponses.size > 0).length);
    },
  });
  /**
   * Makes room for one more session among `among` under `cap`: ends their least recently used
   * sessions with no request under way until they are fewer than it. False when they are all busy.
   */
  const makeRoom = (among: Array<[string, Session]>, cap: number, reason: string): boolean => {
    const open = among.filter(([, session]) => !session.ending);
    const over = open.length + 1 - cap;
    if (over <= 0) return true;
    const idle = open.filter(([, session]) => session.busy === 0).sort(([, a], [, b]) => a.used - b.used);
    if (idle.length < over) return false;
    for (const [id, session] of idle.slice(0, over)) end(id, session, reason);
    return true;
  };
  /** Gives back what request `id`'s answer handed out, its host having cancelled the request after the answer went out. */
  const giveBack = (id: string | number, handed: Handed | undefined): void => {
    if (handed === undefined) return;
    if (handed.leases.length > 0) void services.tasks.giveBack(handed.leases).catch((error: unknown) => log.warn({ err: error, requestId: id }, "giving back the leases of an MCP call cancelled after its answer failed"));
    for (const lock of handed.locks) void services.locks.giveBack(lock).catch((error: unknown) => log.warn({ err: error, requestId: id }, "giving back the lock of an MCP call cancelled after its answer failed"));
    for (const permit of handed.permits) void services.semaphores.giveBack(permit).catch((error: unknown) => log.warn({ err: error, requestId: id }, "giving back the semaphore permit of an MCP call cancelled after its answer failed"));
  };
  const jsonRpcError = (res: ServerResponse, status: number, message: string) =>
    sendJson(res, status, { jsonrpc: "2.0", error: { code: -32000, message }, id: null });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const caller = await credentials.authenticate(bearerSecret(req.headers.authorization), req.socket.remoteAddress);
    if (caller.kind === "anonymous") return sendUnauthorized(res);
    let body: unknown;
    if (req.method === "POST") {
      const unreadable = unreadableBody(req);
      if (unreadable !== undefined) return jsonRpcError(res, 415, unreadable);
      const read = await readBody(req, config.maxBodyBytes);
      if (read.kind === "gone") return;
      if (read.kind === "too-large") {
        res.setHeader("connection", "close");
        return jsonRpcError(res, 413, bodyTooLarge(config.maxBodyBytes));
      }
      if (read.kind === "not-utf8") return sendJson(res, 400, { jsonrpc: "2.0", error: { code: -32700, message: `Parse error: ${NOT_UTF8}` }, id: null });
      try {
        body = JSON.parse(read.text);
      } catch {
        return sendJson(res, 400, { jsonrpc: "2.0", error: { code: -32700, message: "Parse error: the body is not JSON" }, id: null });
      }
    }
    const sessionId = req.headers["mcp-session-id"];
    if (typeof sessionId === "string") {
      const session = sessions.get(sessionId);
      if (!session || session.ending) return jsonRpcError(res, 404, "Session not found: initialize a new one");
      if (session.credential !== credentialOf(caller)) return jsonRpcError(res, 403, "This session was opened with another credential");
      if (req.method === "DELETE") {
        // One the SDK refuses for its protocol version changes nothing: the SDK answers it alone.
        const version = req.headers["mcp-protocol-version"];
        if (typeof version === "string" && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return session.transport.handleRequest(req, res, body);
        // Its calls under way are answered first (the SDK's close would drop their answers, and a
        // client would wait for its own timeout): a long-poll wakes and gives back what it took.
        // A request arriving meanwhile finds the session gone (404).
        session.ending = true;
        session.deleted.abort();
        await untilIdle(session, config.shutdownTimeoutMs);
        await session.transport.handleRequest(req, res, body);
        // The SDK closed it (and onclose forgot it); refused for another reason, it ends all the
        // same: its client asked, and its calls were answered as ended.
        if (sessions.get(sessionId) === session) void session.transport.close().catch(() => undefined);
        return;
      }
      const refused = readToolCalls(body, session.inputSchemaOf);
      if (refused !== undefined) return sendJson(res, 200, { jsonrpc: "2.0", id: refused.id, error: { code: -32602, message: refused.message } });
      // Read after readToolCalls: a strict-mode host's `next: null` is no next.
      const taking = takingCallInBatch(body);
      if (taking !== undefined) {
        return jsonRpcError(res, 400, `${taking} cannot be sent in a batch: its answer is known delivered only with the whole batch's, so what it takes would go back if the connection closed after it arrived; send it alone (a batch of other calls is fine)`);
      }
      session.lastActiveAt = Date.now();
      session.used = ++uses;
      const stream = req.method === "GET";
      if (stream) session.streamResponses.add(res);
      else session.busy++;
      const ids = requestIds(body);
      for (const id of ids) session.responses.set(id, res);
      // A cancel of a request already answered: its host drops the answer, so what it handed out goes back.
      for (const id of cancelledIds(body)) giveBack(id, session.lateCancels.take(id));
      res.once("close", () => {
        if (stream) session.streamResponses.delete(res);
        else session.busy--;
        session.lastActiveAt = Date.now();
        for (const id of ids) if (session.responses.get(id) === res) session.responses.delete(id);
        // An ended session closes once its last call under way was answered (end, untilIdle).
        if (session.busy === 0) for (const idle of session.whenIdle.splice(0)) idle();
      });
      // A batch's trace headers are the one HTTP request's, no one call's (McpSession.inBatch).
      if (Array.isArray(body) && body.length > 1) batchResponses.add(res);
      return session.transport.handleRequest(req, res, body);
    }
    if (req.method !== "POST" || !isInitializeRequest(body)) return jsonRpcError(res, 400, "No session: send an initialize request first (without mcp-session-id)");

    // The agent the session acts as.
    // Node reads a header's bytes one character each (Latin-1): an id's UTF-8 bytes become the
    // characters it was written in here, and bytes that are not UTF-8 are refused, naming the header.
    const header = req.headers["x-agent-id"];
    const named = typeof header === "string" && header !== "" ? decodeUtf8(Buffer.from(header, "latin1")) : undefined;
    if (typeof header === "string" && header !== "" && named === undefined) return jsonRpcError(res, 400, "X-Agent-Id: its bytes are not UTF-8 text");
    // Checked here, once: a name the API refuses made every later call of the session fail, each
    // naming a field (agentId, source) its caller never passed.
    const refusal = named === undefined ? undefined : agentIdSchema.safeParse(named).error;
    if (refusal !== undefined) return jsonRpcError(res, 400, `X-Agent-Id: ${invalidInput(refusal.issues).message}`);
    if (caller.kind === "token" && caller.role === "agent" && named !== undefined && named !== caller.agentId) {
      return jsonRpcError(res, 403, `this credential acts as agent ${JSON.stringify(caller.agentId)}; X-Agent-Id ${JSON.stringify(named)} names another agent`);
    }
    if (caller.kind === "token" && caller.role === "read" && named !== undefined) return jsonRpcError(res, 403, "a read credential acts as no agent: X-Agent-Id is not allowed");
    const agentId = caller.kind === "token" && caller.role === "agent" ? (caller.agentId ?? undefined) : named;
    const owner = `${credentialOf(caller)}\u0000${agentId ?? ""}`;
    if (!makeRoom([...sessions].filter(([, session]) => session.owner === owner), config.maxMcpSessionsPerAgent, "maxMcpSessionsPerAgent")) {
      return jsonRpcError(res, 429, `${config.maxMcpSessionsPerAgent} MCP sessions of this agent are all handling a request (maxMcpSessionsPerAgent); retry, or delete one`);
    }
    if (!makeRoom([...sessions], config.maxMcpSessions, "maxMcpSessions")) {
      return jsonRpcError(res, 429, `the server's ${config.maxMcpSessions} MCP sessions are all handling a request (maxMcpSessions); retry later`);
    }
    const responses = new Map<string | number, ServerResponse>();
    const streamResponses = new Set<ServerResponse>();
    const lateCancels = new LateCancels();
    const deleted = new AbortController();
    const mcp = createMcpServer(services, {
      agentId,
      caller,
      deleted: deleted.signal,
      responseOf: (id) => responses.get(id),
      inBatch: (id) => {
        const res = responses.get(id);
        return res !== undefined && batchResponses.has(res);
      },
      handedOut: (id, handed) => lateCancels.note(id, { leases: handed.leases ?? [], locks: handed.locks ?? [], permits: handed.permits ?? [] }),
      answerDelivered: (id) => giveBack(id, lateCancels.delivered(id)),
      streamBacklog: () => Math.max(0, ...[...streamResponses].map((stream) => stream.writableLength)),
      closeStreams: (reason) => {
        log.warn({ session: transport.sessionId, agentId, reason }, "MCP notification stream closed: its client does not read it");
        // Destroyed, not ended: ending would keep the unread bytes until the client reads them.
        for (const stream of streamResponses) stream.destroy();
      },
    });
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        // The session's agent is registered (or its heartbeat refreshed) as it opens, as a claim
        // or a heartbeat would: find_agents sees it before its first tool call.
        mcp.signOfLife();
        sessions.set(id, { transport, inputSchemaOf: mcp.inputSchemaOf, credential: credentialOf(caller), revocationKey: credentials.revocationKey(caller), owner, lastActiveAt: Date.now(), used: ++uses, streamResponses, busy: 0, responses, deleted, whenIdle: [], lateCancels });
      },
    });
    transport.onclose = () => {
      mcp.close();
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    // A tool call of a batch refused by readToolCalls: answered with its refusal, as when sent alone.
    mcp.server.server.setRequestHandler(refusedToolCall, (request) => {
      throw Object.assign(new Error(request.params.message), { code: -32602 });
    });
    await mcp.server.connect(transport);
    await transport.handleRequest(req, res, body);
    // Refused by the SDK (a missing Accept, an unsupported protocol version) or revoked while it
    // opened: no session to keep, and nothing of it may stay listening.
    if (transport.sessionId === undefined || !sessions.has(transport.sessionId) || !credentials.isCurrent(caller)) {
      mcp.close();
      void transport.close().catch(() => undefined);
    }
  };

  return {
    handle,
    /** Sessions open now (observability, tests). */
    get sessions(): number {
      return sessions.size;
    },
    /**
     * The first step of a shutdown: ends every notification stream (they would hold the drain of
     * requests in flight until its timeout), and leaves the sessions, whose tool calls under way
     * are answered (a long-poll, woken by the shutdown, with nothing) before close() ends them.
     */
    endStreams(): void {
      for (const session of sessions.values()) for (const stream of session.streamResponses) stream.end();
    },
    /** Ends every session (shutdown, once the requests in flight were answered). */
    async close(): Promise<void> {
      unlistenRevoked();
      clearInterval(sweep);
      services.metrics.registry.removeSingleMetric(GAUGE);
      await Promise.all([...sessions.values()].map((session) => session.transport.close().catch(() => undefined)));
      sessions.clear();
    },
  };
}
