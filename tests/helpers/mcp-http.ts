// MCP spoken over plain HTTP, as any MCP client speaks it: the request headers and the opening of
// a session (initialize, then notifications/initialized), for tests that need each request in hand.
import { expect } from "vitest";

/** What a Streamable HTTP client accepts: a JSON answer or an event stream. */
export const MCP_ACCEPT = "application/json, text/event-stream";

/** The headers of a JSON-RPC POST, beside the caller's own (credential, X-Agent-Id). */
export const mcpPostHeaders = (headers: Record<string, string>) => ({ ...headers, "content-type": "application/json", accept: MCP_ACCEPT });

export const MCP_INITIALIZE = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1.0.0" } } };

/** Opens a session (initialize, then initialized) with these headers; its id. */
export async function openMcpSession(url: string, headers: Record<string, string>): Promise<string> {
  const response = await fetch(`${url}/mcp`, { method: "POST", headers: mcpPostHeaders(headers), body: JSON.stringify(MCP_INITIALIZE) });
  expect(response.status).toBe(200);
  await response.text();
  const id = response.headers.get("mcp-session-id")!;
  const initialized = await fetch(`${url}/mcp`, {
    method: "POST",
    headers: { ...mcpPostHeaders(headers), "mcp-session-id": id },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  expect(initialized.status).toBe(202);
  return id;
}

/** POSTs a tools/call in session `sessionId`; resolves to the response's text (the event stream carrying its answer). */
export function postToolCall(url: string, headers: Record<string, string>, sessionId: string, id: number, name: string, args: Record<string, unknown>): Promise<string> {
  return fetch(`${url}/mcp`, {
    method: "POST",
    headers: { ...mcpPostHeaders(headers), "mcp-session-id": sessionId },
    body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }),
  }).then((response) => response.text());
}

/** The server's parked long-polls of `kind` (coordination_long_polls_parked), read from /metrics with `token` when given. */
export async function parkedLongPolls(url: string, kind: "claim" | "poll" | "wait" | "watch" | "follow", token?: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} })).text();
  return Number(new RegExp(`^coordination_long_polls_parked\\{kind="${kind}"\\} (\\d+)$`, "m").exec(text)?.[1]);
}
