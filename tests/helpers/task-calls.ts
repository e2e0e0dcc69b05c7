// A client whose calls of some task procedures are answered otherwise: a flaky network, or a
// server of an older version (one that refuses a field it does not know), in front of a real one.
import type { CoordinationApi } from "../../client/index.js";

type TaskMutation = "heartbeat" | "completeAndClaim" | "fail";

/** `api` with the calls of some task mutations replaced by `calls` (each given what `mutate` would be). */
export function withTaskCalls(api: CoordinationApi, calls: Partial<Record<TaskMutation, (input: never, options?: never) => Promise<unknown>>>): CoordinationApi {
  const tasks = new Proxy(api.tasks, { get: (target, name) => (typeof name === "string" && name in calls ? { mutate: calls[name as keyof typeof calls] } : Reflect.get(target, name)) });
  return new Proxy(api, { get: (target, key) => (key === "tasks" ? tasks : Reflect.get(target, key)) });
}

/**
 * Calls `send` with `field` renamed to a key no version knows, and names `field` in the refusal's
 * issues: the answer of a server older than `field`, whose strict input refuses it by name.
 */
export async function asOlderServer<T>(input: Record<string, unknown>, field: string, send: (renamed: never) => Promise<T>): Promise<T> {
  const { [field]: value, ...rest } = input;
  try {
    return await send({ ...rest, notInThisVersion: value } as never);
  } catch (error) {
    for (const issue of (error as { data: { details: { issues: Array<{ path: string }> } } }).data.details.issues) if (issue.path === "notInThisVersion") issue.path = field;
    throw error;
  }
}
