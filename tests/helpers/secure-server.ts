// A test server with credentials enforced: the admin token set, and helpers to issue tokens and
// to call as a given credential, over the typed client or plain HTTP.
import { createCoordinationClient, type CoordinationApi, type CoordinationClient } from "../../client/index.js";
import type { SettingName } from "../../src/config.js";
import { startTestServer, type TestServer } from "./test-server.js";

export const ADMIN_SECRET = "test-admin-secret-0123456789abcdefghijkl";

export interface SecureServer extends TestServer {
  /** The typed client with the admin token. */
  admin: CoordinationApi;
  /** Issues a credential through the admin procedure; returns its secret. */
  issue(role: "agent" | "read" | "admin", agentId?: string): Promise<string>;
  /** A typed client presenting `token` (closed with the server). */
  as(token: string, options?: { onSocketClose?: (code: number | undefined) => void }): CoordinationApi;
}

export async function startSecureServer(overrides: Partial<Record<SettingName, unknown>> = {}): Promise<SecureServer> {
  const t = await startTestServer({ adminToken: ADMIN_SECRET, ...overrides });
  const clients: CoordinationClient[] = [];
  const as = (token: string, options: { onSocketClose?: (code: number | undefined) => void } = {}) => {
    const client = createCoordinationClient({ url: t.url, token, ...options });
    clients.push(client);
    return client.api;
  };
  const admin = as(ADMIN_SECRET);
  const stop = t.stop;
  const stopAll = async (options?: { removeFiles?: boolean }) => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await stop(options);
  };
  return {
    ...t,
    admin,
    as,
    async issue(role, agentId) {
      return (await admin.tokens.create.mutate({ role, ...(agentId === undefined ? {} : { agentId }) })).secret;
    },
    stop: stopAll,
    [Symbol.asyncDispose]: () => stopAll({ removeFiles: true }),
  };
}

/** A plain HTTP call with an optional bearer token and extra headers; the body is sent as JSON. */
export async function http(
  url: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...(options.body === undefined ? {} : { "content-type": "application/json" }), ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : typeof options.body === "string" ? options.body : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: the text itself.
  }
  return { status: response.status, body, headers: response.headers };
}
