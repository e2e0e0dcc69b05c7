// `coordination mcp --url … --token … --agent …`: the MCP server for desktop clients that start a
// command and speak MCP over its stdin and stdout. It relays every message, unchanged, to a
// running server's /mcp endpoint (Streamable HTTP) and back, so there is one implementation of
// the tools; the credential and the agent travel as the HTTP headers of the relayed session.
// Diagnostics go to stderr: stdout carries the protocol alone.
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { isInitializeRequest, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

export interface McpProxyOptions {
  url: string;
  token?: string | undefined;
  agentId?: string | undefined;
}

/** Relays until either side closes; resolves then. */
export async function runMcpStdioProxy(options: McpProxyOptions, stderr: (text: string) => void): Promise<void> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.agentId) headers["x-agent-id"] = options.agentId;
  const remote = new StreamableHTTPClientTransport(new URL("/mcp", options.url), { requestInit: { headers } });
  const local = new StdioServerTransport();
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const fail = (message: JSONRPCMessage, error: unknown) => {
    stderr(`coordination mcp: ${error instanceof Error ? error.message : String(error)}\n`);
    // A request whose relay failed gets an error answer, so the client is not left waiting.
    if ("id" in message && "method" in message) {
      const text = error instanceof Error ? error.message : String(error);
      const why = /UNAUTHORIZED|\b401\b/.test(text) ? "refused the credential (set COORDINATION_TOKEN or --token to a valid token)" : `could not be reached or refused the message`;
      void local.send({ jsonrpc: "2.0", id: message.id, error: { code: -32603, message: `the coordination server at ${options.url} ${why}: ${text}` } });
    }
  };
  // The server's session starts with the answer to `initialize` (its id comes back in a header):
  // what the client sends before that answer arrives (a client that writes its first messages
  // at once) waits for it, in order. After, messages go as they come, so a notification such as
  // a cancellation is not held behind a long call.
  let session: Promise<unknown> = Promise.resolve();
  local.onmessage = (message) => {
    const relay = () => remote.send(message).catch((error: unknown) => fail(message, error));
    if (isInitializeRequest(message)) session = session.then(relay);
    else void session.then(relay);
  };
  remote.onmessage = (message) => void local.send(message).catch(() => undefined);
  remote.onerror = (error) => stderr(`coordination mcp: ${error.message}\n`);
  local.onclose = () => {
    void remote.terminateSession().catch(() => undefined).finally(() => void remote.close().finally(finish));
  };
  remote.onclose = () => void local.close().finally(finish);
  await remote.start();
  await local.start();
  await finished;
}
