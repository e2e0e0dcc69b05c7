// /mcp: the Model Context Protocol over Streamable HTTP (the SDK's transport), one MCP server per
// session. A session is opened by an initialize request and acts as one agent: its credential's,
// or (an admin's credential, or no credentials configured) the X-Agent-Id header's. Every later
// request of the session must carry the same credential. Sessions end when the client deletes
// them, or at shutdown.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { bearerSecret } from "../auth/token-secret.js";
import { NOT_UTF8, readBody, sendJson, sendUnauthorized } from "../server/http-io.js";
import type { Services } from "../services.js";
import type { Caller } from "../trpc/context.js";
import { createMcpServer } from "./mcp-tools.js";

interface Session {
  transport: StreamableHTTPServerTransport;
  close(): void;
  /** The credential the session was opened with ("" without credentials). */
  credential: string;
}

const credentialOf = (caller: Caller): string => (caller.kind === "token" ? caller.tokenId : "");

export function createMcpEndpoint(services: Services) {
  const sessions = new Map<string, Session>();
  const jsonRpcError = (res: ServerResponse, status: number, message: string) =>
    sendJson(res, status, { jsonrpc: "2.0", error: { code: -32000, message }, id: null });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const caller = await services.credentials.authenticate(bearerSecret(req.headers.authorization));
    if (caller.kind === "anonymous") return sendUnauthorized(res);
    let body: unknown;
    if (req.method === "POST") {
      const read = await readBody(req, services.config.maxBodyBytes);
      if (read.kind === "gone") return;
      if (read.kind === "too-large") {
        res.setHeader("connection", "close");
        return jsonRpcError(res, 413, `Request body exceeds ${services.config.maxBodyBytes} bytes`);
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
      if (!session) return jsonRpcError(res, 404, "Session not found: initialize a new one");
      if (session.credential !== credentialOf(caller)) return jsonRpcError(res, 403, "This session was opened with another credential");
      return session.transport.handleRequest(req, res, body);
    }
    if (req.method !== "POST" || !isInitializeRequest(body)) return jsonRpcError(res, 400, "No session: send an initialize request first (without mcp-session-id)");

    // The agent the session acts as.
    const header = req.headers["x-agent-id"];
    const named = typeof header === "string" && header !== "" ? header : undefined;
    if (caller.kind === "token" && caller.role === "agent" && named !== undefined && named !== caller.agentId) {
      return jsonRpcError(res, 403, `this credential acts as agent ${JSON.stringify(caller.agentId)}; X-Agent-Id ${JSON.stringify(named)} names another agent`);
    }
    if (caller.kind === "token" && caller.role === "read" && named !== undefined) return jsonRpcError(res, 403, "a read credential acts as no agent: X-Agent-Id is not allowed");
    const agentId = caller.kind === "token" && caller.role === "agent" ? (caller.agentId ?? undefined) : named;
    const mcp = createMcpServer(services, { agentId, caller });
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, close: mcp.close, credential: credentialOf(caller) });
      },
    });
    transport.onclose = () => {
      mcp.close();
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await mcp.server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  return {
    handle,
    /** Sessions open now (observability, tests). */
    get sessions(): number {
      return sessions.size;
    },
    /** Ends every session (shutdown). */
    async close(): Promise<void> {
      await Promise.all([...sessions.values()].map((session) => session.transport.close().catch(() => undefined)));
      sessions.clear();
    },
  };
}
