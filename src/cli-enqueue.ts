// `coordination tasks enqueue` and `coordination events publish`: work asked for, and news told,
// from a shell script, a cron job or a CI step, without curl and hand-written JSON bodies. The
// command sends once (as every operator command does): with --idempotency-key, running the same
// command again after "no answer … may have been done" adds nothing twice.
import type { CoordinationClient, RouterInputs, RouterOutputs } from "../client/index.js";
import { delayOption, durationOption, expiryArg, int, jsonOption, listOption, OperatorUsageError, str, timeArg } from "./cli-options.js";
import { printable, when } from "./cli-text.js";
import { readTasksNow } from "./cli-tasks-now.js";
import { parseDuration } from "../client/rate-window.js";
import { MAX_RUN_MS } from "./tasks/task-schemas.js";

type Options = Record<string, string | true>;

/** The options `tasks enqueue` takes (beyond the common ones). */
export const ENQUEUE_OPTIONS = [
  "--queue",
  "--payload",
  "--priority",
  "--capability",
  "--target",
  "--at",
  "--delay",
  "--expires",
  "--max-attempts",
  "--max-run",
  "--depends-on",
  "--on-dependency-failure",
  "--ordering-key",
  "--key-concurrency",
  "--dedupe-key",
  "--idempotency-key",
  "--wait",
  "--timeout",
];

/** The options `events publish` takes (beyond the common ones). */
export const PUBLISH_OPTIONS = ["--payload", "--source", "--target", "--idempotency-key"];

/** The tasks.enqueue call `tasks enqueue` makes, from its options; the server refuses a bad value, naming the option (FLAG_OF_FIELD). */
export function enqueueOf(options: Options): RouterInputs["tasks"]["enqueue"] {
  const at = str(options["--at"]);
  const delayMs = delayOption(options["--delay"]);
  if (at !== undefined && delayMs !== undefined) throw new OperatorUsageError("tasks enqueue takes --at or --delay, not both");
  if (options["--timeout"] !== undefined && options["--wait"] !== true) throw new OperatorUsageError("--timeout bounds --wait: give --wait too");
  const expires = str(options["--expires"]);
  // A length of time goes as ttlMs (counted by the server from when the task falls due), not as a
  // time this machine works out: the same command run again with its --idempotency-key (its answer
  // lost) sends the same call, where a time from now differed at every run (409 IDEMPOTENCY_MISMATCH).
  const ttlMs = expires === undefined ? undefined : parseDuration(expires);
  const expiresAt = expires === undefined || ttlMs !== undefined ? null : expiryArg(expires);
  const maxRunMs = durationOption(options["--max-run"], "--max-run", 1, MAX_RUN_MS, "from 1ms to 366d, such as 30s, 10m or 2h");
  const dependsOnText = str(options["--depends-on"]);
  const dependsOn = listOption(dependsOnText);
  // An empty list (`--depends-on "$BUILD_ID"` with the variable unset) would run the task at once, waiting for nothing.
  if (dependsOn !== undefined && dependsOn.length === 0) throw new OperatorUsageError(`--depends-on names no task (got ${JSON.stringify(dependsOnText)}): give the ids it waits for, separated by commas, or leave it out`);
  const onFailureText = options["--on-dependency-failure"];
  if (onFailureText !== undefined && onFailureText !== "wait" && onFailureText !== "cancel") throw new OperatorUsageError(`--on-dependency-failure is wait or cancel (got ${JSON.stringify(str(onFailureText) ?? "")})`);
  if (onFailureText !== undefined && dependsOn === undefined) throw new OperatorUsageError("--on-dependency-failure says what a dependency's dead letter does to the task: give --depends-on too");
  const dedupeKey = str(options["--dedupe-key"]);
  const fields: RouterInputs["tasks"]["enqueue"] = {};
  const set = <K extends keyof RouterInputs["tasks"]["enqueue"]>(field: K, value: RouterInputs["tasks"]["enqueue"][K] | undefined) => {
    if (value !== undefined) fields[field] = value;
  };
  set("queue", str(options["--queue"]));
  set("payload", jsonOption(options["--payload"], "--payload"));
  set("priority", int(options["--priority"], "--priority"));
  set("capability", str(options["--capability"]));
  set("targetAgentId", str(options["--target"]));
  set("runAt", at === undefined ? undefined : (timeArg(at, "--at") as never));
  set("delayMs", delayMs);
  // never: no expiry, as leaving it out is.
  set("expiresAt", expiresAt === null ? undefined : (expiresAt as never));
  set("ttlMs", ttlMs);
  set("maxAttempts", int(options["--max-attempts"], "--max-attempts"));
  set("maxRunMs", maxRunMs);
  set("dependsOn", dependsOn);
  set("onDependencyFailure", onFailureText);
  set("orderingKey", str(options["--ordering-key"]));
  set("keyConcurrency", int(options["--key-concurrency"], "--key-concurrency"));
  set("dedupe", dedupeKey === undefined ? undefined : { key: dedupeKey });
  set("idempotencyKey", str(options["--idempotency-key"]));
  return fields;
}

/** What `tasks enqueue` prints of the answer: the task's id first (a script takes the first word), where it went, and when it runs. */
export function enqueuedText(answer: RouterOutputs["tasks"]["enqueue"]): string {
  const state =
    answer.status === "waiting"
      ? answer.dependsOn.length === 0
        ? "waiting (for its turn behind the tasks of its ordering key)"
        : "waiting (for its dependencies, or its turn)"
      : answer.status === "pending" && answer.runAt.getTime() > Date.now()
        ? `pending, due ${when(answer.runAt)}`
        : answer.status;
  if (answer.deduplicated) return `${printable(answer.id)} on queue ${printable(answer.queue)}, ${state}: enqueued before with dedupe key ${printable(JSON.stringify(answer.dedupeKey))}, nothing added\n`;
  // Run again after a lost answer: the first run's task (replayed: absent from a server older than it).
  if ((answer as { replayed?: boolean }).replayed === true) return `${printable(answer.id)} on queue ${printable(answer.queue)}, ${state}: enqueued before with idempotency key ${printable(JSON.stringify(answer.idempotencyKey))}, nothing added\n`;
  return `${printable(answer.id)} enqueued on queue ${printable(answer.queue)}, ${state}\n`;
}

/**
 * What `tasks enqueue` says on stderr of a task it left waiting, under onDependencyFailure "wait",
 * on a dependency dead-lettered already: nothing starts it until that dead letter is requeued and
 * completes (no deadline; a --wait waits until then), which the enqueue's own line ("waiting, for
 * its dependencies") does not tell. The dependencies read as they are now (readTasksNow);
 * undefined when there is nothing to say, or the read fails: the task was enqueued, and that is
 * the command's answer.
 */
export async function deadLetteredNote(api: CoordinationClient["api"], task: RouterOutputs["tasks"]["enqueue"]): Promise<string | undefined> {
  // dependsOn and onDependencyFailure: absent from a server older than this CLI.
  const { dependsOn, onDependencyFailure } = task as { dependsOn?: string[]; onDependencyFailure?: string };
  if (task.status !== "waiting" || onDependencyFailure !== "wait" || dependsOn === undefined || dependsOn.length === 0) return undefined;
  const now = new Map<string, RouterOutputs["tasks"]["get"]>();
  try {
    await readTasksNow(api, dependsOn, now);
  } catch {
    return undefined;
  }
  const dead = dependsOn.filter((id) => now.get(id)?.status === "dead_letter");
  if (dead.length === 0) return undefined;
  const ids = dead.map(printable).join(", ");
  return dead.length === 1
    ? `coordination: its dependency ${ids} is dead-lettered: the task waits until it is requeued (tasks requeue ${ids}) and completes; --on-dependency-failure cancel refuses such a dependency\n`
    : `coordination: its dependencies ${ids} are dead-lettered: the task waits until they are requeued (tasks requeue ID) and complete; --on-dependency-failure cancel refuses such a dependency\n`;
}

/** The events.publish call `events publish TYPE` makes, from its options. */
export function publishOf(type: string, options: Options): RouterInputs["events"]["publish"] {
  const source = str(options["--source"]);
  const payload = jsonOption(options["--payload"], "--payload");
  const target = str(options["--target"]);
  const idempotencyKey = str(options["--idempotency-key"]);
  // An agent credential's own agent stands for a source left out (the server fills it); any other
  // caller names one, or the server's refusal names --source.
  return {
    type,
    ...(source === undefined ? {} : { source }),
    ...(payload === undefined ? {} : { payload }),
    ...(target === undefined ? {} : { target }),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  } as RouterInputs["events"]["publish"];
}

/** What `events publish` prints of the event stored. */
export const publishedText = (event: RouterOutputs["events"]["publish"]): string =>
  `event ${event.seq} published: ${printable(event.type)} from ${printable(event.source)}${event.target === null ? "" : `, to ${printable(event.target)}'s mailbox`}\n`;
