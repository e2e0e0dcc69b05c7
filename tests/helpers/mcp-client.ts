// MCP through the SDK's own client, for tests: sessions over Streamable HTTP (connectMcp), tool
// calls read as the tests compare them (callTool), and every client a test opened closed after it
// (closeMcpClients, in afterEach; a stdio client is added with trackMcpClient).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const open: Client[] = [];

/** Closes `client` after the test (closeMcpClients); returns it. */
export function trackMcpClient(client: Client): Client {
  open.push(client);
  return client;
}

/** Closes every client opened since the last call; errors of clients already gone are ignored. */
export async function closeMcpClients(): Promise<void> {
  await Promise.all(open.splice(0).map((client) => client.close().catch(() => undefined)));
}

/** A session at `url`'s /mcp with these headers (credential, X-Agent-Id), closed after the test. */
export async function connectMcp(url: string, headers: Record<string, string>): Promise<Client> {
  const client = new Client({ name: "test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL("/mcp", url), { requestInit: { headers } }));
  return trackMcpClient(client);
}

/**
 * A tool's answer: its JSON, or { error } for a tool error (the API's { code, message }, or the
 * SDK's own text when the SDK refused the arguments before the tool ran).
 */
export async function callTool(client: Client, name: string, args: Record<string, unknown> = {}): Promise<any> {
  const result = (await client.callTool({ name, arguments: args })) as { content: Array<{ text: string }>; isError?: boolean };
  const text = result.content[0]!.text;
  const value = text.startsWith("{") || text.startsWith("[") || text === "null" ? JSON.parse(text) : text;
  return result.isError ? { error: value } : value;
}

/** A tool call's text items, and whether it is a tool error: for answers with a note beside their JSON. */
export async function toolTexts(client: Client, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; texts: string[] }> {
  const result = (await client.callTool({ name, arguments: args })) as { content: Array<{ type: string; text: string }>; isError?: boolean };
  return { isError: result.isError === true, texts: result.content.map((item) => item.text) };
}
