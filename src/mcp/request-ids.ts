// JSON-RPC ids, read the same way by the server's endpoint (which answers each request in the
// HTTP response that carried it) and by the stdio relay (which answers a request whose answer
// stream ended without it).

/** The ids of the JSON-RPC requests in a POST's body, parsed (a message or a batch of them); notifications have none. */
export function requestIds(body: unknown): Array<string | number> {
  const ids: Array<string | number> = [];
  for (const message of Array.isArray(body) ? body : [body]) {
    if (typeof message !== "object" || message === null || !("method" in message) || !("id" in message)) continue;
    const { id } = message as { id: unknown };
    if (typeof id === "string" || typeof id === "number") ids.push(id);
  }
  return ids;
}

/** The request ids a POST's body cancels (notifications/cancelled, one message or a batch of them). */
export function cancelledIds(body: unknown): Array<string | number> {
  const ids: Array<string | number> = [];
  for (const message of Array.isArray(body) ? body : [body]) {
    if (typeof message !== "object" || message === null || (message as { method?: unknown }).method !== "notifications/cancelled") continue;
    const id = ((message as { params?: { requestId?: unknown } }).params ?? {}).requestId;
    if (typeof id === "string" || typeof id === "number") ids.push(id);
  }
  return ids;
}
