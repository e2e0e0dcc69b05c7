// The operator's commands against a running server, through the typed client (so they get the
// same validation, errors and credentials as any agent): stats, tasks, agents, events tail. The
// server's URL and token come from --url/--token or COORDINATION_URL/COORDINATION_TOKEN, else
// from the server's own settings, read as `coordination serve` reads them (the environment, .env,
// the YAML file of COORDINATION_CONFIG or --config): its host and port, and its admin token. An
// operator in the directory the server runs from reaches it on whatever port it was given.
// Tables for people, --json for scripts. Exit codes: 0 done, 1 the server refused or could not be
// reached (the message says which), 2 usage (or settings that cannot be read), 130 interrupted
// while a value was read (--payload @-), nothing sent; `tasks wait`: 3
// the task (one of the tasks) was dead-lettered or cancelled, 4 it had not settled in time;
// `kv get`: 3 the key is absent; `kv set|delete --if-version`: 3 the key was not at that version.
// `tasks logs --follow` exits 0 once the task settled and its last line was shown, or on Ctrl-C.
import { parseDuration, rateWindowText, parseRate } from "../client/rate-window.js";
import { backoffText, type BackoffShape } from "../client/backoff-text.js";
import { bearerToken } from "../client/bearer-token.js";
import { webhookStateText } from "../client/webhook-state-text.js";
import { runLimitText } from "../client/run-limit-text.js";
import { dedupeText } from "../client/dedupe-text.js";
import { orderingKeyText } from "../client/ordering-key-text.js";
import { traceText } from "../client/trace-text.js";
import { createCoordinationClient, fitsInAnswer, followLog, isTRPCClientError, mayHaveBeenServed, type CoordinationClient, type LogLine, type RouterInputs, type RouterOutputs, watchKeys } from "../client/index.js";
import { neverReached } from "../client/served.js";
import type { JsonValue } from "./json-types.js";
import { MEMORY_OPTIONS, memoryCommand } from "./cli-memory.js";
import { deadLetteredNote, ENQUEUE_OPTIONS, enqueuedText, enqueueOf, PUBLISH_OPTIONS, publishedText, publishOf } from "./cli-enqueue.js";
import { delayOption, durationOption, expiryArg, int, jsonOption, listOption, num, OperatorUsageError, str, timeArg } from "./cli-options.js";
import { INTERRUPTED_EXIT, ReadInterrupted, readValueFiles } from "./cli-value-files.js";
import { readTasksNow } from "./cli-tasks-now.js";
import { BEYOND_C0, cut, keyPrefixesText, printable, shownUrl, table, utc, when } from "./cli-text.js";
import { MAX_EVERY_MS, MIN_EVERY_MS } from "./schedules/schedule-schemas.js";
import { MAX_CORDON_MS } from "./agents/agent-schemas.js";
import { MAX_RUN_MS } from "./tasks/task-schemas.js";
import { MAX_TTL_MS } from "./kv/kv-schemas.js";
import { SETTLED_STATUSES as SETTLED, untilHolds } from "./tasks/task-status.js";
import { linkSignals } from "./wakeup.js";
import { MAX_CLAIMS_PER_WINDOW, MAX_RATE_WINDOW_MS, MIN_RATE_WINDOW_MS } from "./tasks/queue-rate-schemas.js";
import { MAX_LEASED } from "./tasks/queue-limit-schemas.js";
import { claimOutlookReasons } from "./tasks/claim-outlook-reasons.js";

export const OPERATOR_USAGE = [
  "Usage: coordination stats [--queue Q]                         task counts per queue and state",
  "       coordination tasks list [--queue Q] [--status S] [--agent A] [--capability C] [--dedupe-key K] [--ordering-key K] [--trace-id T] [--enqueued-by A] [--limit N] [--cursor C]",
  "       coordination tasks get TASK_ID",
  "       coordination tasks enqueue [--queue Q] [--payload JSON|@FILE] [--priority N] [--capability C] [--target AGENT_ID] [--at TIME | --delay DURATION]",
  "                                    [--expires TIME|DURATION] [--max-attempts N] [--max-run DURATION] [--depends-on ID,ID [--on-dependency-failure wait|cancel]]",
  "                                    [--ordering-key K [--key-concurrency N]] [--dedupe-key K] [--idempotency-key K] [--wait [--timeout DURATION]]",
  "                                    add a task (queue default, payload {},",
  "                                    priority 5, 0 highest); prints its id first; --idempotency-key: run again after a lost answer, it adds",
  "                                    none twice; --wait: then wait for it as tasks wait does (its output and exit codes; the enqueue on stderr);",
  "                                    --expires: no run starts after TIME, or DURATION (30s, 5m, 1h, 1d) after it falls due; --on-dependency-failure",
  "                                    cancel: a dependency dead-lettered cancels it (and refuses one dead-lettered already), wait (the default): it",
  "                                    waits for that dependency's requeue; --ordering-key: the queue's tasks of K run one at a time (N",
  "                                    at a time), in the order they were enqueued",
  "       coordination tasks requeue TASK_ID [--clear-checkpoint]     a dead letter or cancelled task back (--clear-checkpoint: its next",
  "                                    run starts from the beginning, not from the checkpoint its last run saved)",
  "       coordination tasks promote TASK_ID                      a pending task not due yet (a delay, a backoff, a schedule's run) due now",
  "       coordination tasks update TASK_ID [--priority N] [--at TIME | --delay DURATION] [--expires TIME|DURATION|never] [--payload JSON|@FILE]",
  "                                    [--clear-checkpoint]",
  "                                    a task that waits to run (pending or waiting): its priority (0 highest), when it falls due (ISO",
  "                                    8601 or Unix ms; or 30s, 5m, 1h from now), when it expires unrun (a time, or a length of time",
  "                                    from now; never: no expiry), what its next run is handed (JSON; its checkpoint goes with the old",
  "                                    one), its checkpoint cleared (its next run starts from the beginning)",
  "       coordination tasks wait TASK_ID [--timeout DURATION]     until it settles (or DURATION: 30s, 5m, 1h); exit 0 if it completed,",
  "                                    3 if it was dead-lettered or cancelled, 4 if it had not settled in time (or on Ctrl-C)",
  "       coordination tasks wait TASK_ID TASK_ID... [--any] [--timeout DURATION]   (up to 100) until all of them completed (--any:",
  "                                    one), exit 0; 3 as soon as one is dead-lettered or cancelled; 4 if not in time",
  "       coordination tasks logs TASK_ID [--after N | --tail N] [--attempt N] [--level L] [--limit N] [--follow]   its runs' log,",
  "                                    oldest first: a line each: its number, time (UTC), level, agent and run, message (then its",
  "                                    data as JSON); --after: the lines after line N; --tail: the last N (up to 1,000); --attempt:",
  "                                    that attempt's alone; --level warn: warn, error; up to 10,000 lines (--limit: fewer); --follow:",
  "                                    then each new line as it comes, until the task settles (exit 0) or Ctrl-C; --json: a JSON",
  "                                    object a line",
  "       coordination tasks cancel TASK_ID [--reason TEXT]       stops it and the tasks waiting on it (the reason: its lastError)",
  "       coordination tasks requeue --all [--queue Q] [--after TIME] [--before TIME] [--clear-checkpoint]   the dead letters there",
  "                                    are when it starts back to pending, oldest first; only those dead-lettered in [--after, --before)",
  "                                    (ISO 8601, or Unix ms); --clear-checkpoint: their next runs start from the beginning",
  "       coordination tasks cancel --all --queue Q [--status pending,waiting,claimed,dead_letter] [--enqueued-by A] [--after TIME]",
  "                                    [--before TIME] [--reason TEXT]   the queue's tasks there are when it starts, in those",
  "                                    states (pending and waiting by default), cancelled oldest first; only those enqueued in",
  "                                    [--after, --before), by agent A (an agent token: its own, named so)",
  "       coordination queues pause QUEUE [--reason TEXT]        no claim takes its tasks until it is resumed",
  "       coordination queues resume QUEUE                        claims take its tasks again, best first",
  "       coordination queues                                     the paused queues",
  "       coordination queues limit QUEUE N|off                   at most N of its tasks leased at once (off: no bound)",
  "       coordination queues limits                              the limited queues and their leases now",
  "       coordination queues rate QUEUE [N/WINDOW|off]           at most N of its tasks claimed in any WINDOW (500ms, 10s, 1m, 1h, 1d; off: none); alone, its rate now",
  "       coordination queues rates                               the rate-limited queues and their windows' claims now",
  "       coordination schedules [list] [--queue Q]              the schedules: when each runs, its queue, its next run",
  "       coordination schedules set NAME --cron 'EXPR' [--timezone TZ] | --every DURATION [--start TIME]",
  "                                    [--end TIME] [--max-runs N] [--overlap allow|skip] [--ttl DURATION] [--max-run DURATION]",
  "                                    [--queue Q] [--payload JSON|@FILE] [--priority N] [--capability C] [--target AGENT_ID] [--max-attempts N]",
  "                                    [--ordering-key K [--key-concurrency N]]",
  "                                    a task enqueued by a cron pattern (5 fields,",
  "                                    or 6 with seconds first; in TZ, UTC by default) or every DURATION (10s, 5m, 1h, 1d);",
  "                                    none after --end or N runs; skip: none while the last run still runs; --ttl: a run not",
  "                                    started that long after its time is skipped; --max-run: no run lasts longer (maxRunMs);",
  "                                    --ordering-key: each run waits for the queue's tasks of K before it (the run before it too);",
  "                                    set again, the schedule is what the command says: what it is not given is left out, as for a new one",
  "       coordination schedules get|remove|pause|resume NAME",
  "       coordination schedules trigger NAME                     run it now: its pending run due at once, the next as planned",
  "       coordination agents [--capability C] [--health healthy|stale|offline] [--cordoned]   (--cordoned: those cordoned alone)",
  "       coordination agents cordon AGENT_ID [--reason TEXT] [--for DURATION]   no claim hands it a task until it is uncordoned",
  "                                    (or DURATION passed: 30m, 2h, 1d); the tasks it holds run on",
  "       coordination agents uncordon AGENT_ID                   its claims take tasks again (an automatic quarantine too)",
  "       coordination agents why-idle AGENT_ID [--queue Q,Q…] [--capability C,C…]   why its claims take no task while work",
  "                                    waits: paused, full or rate-limited queues, capabilities it lacks, other agents' tasks, a delay,",
  "                                    tasks waiting for their dependencies or their turn",
  "                                    (--queue, --capability: what its claims ask for; left out, any queue, its registered capabilities)",
  "       coordination agents drain AGENT_ID [--reason TEXT] [--timeout DURATION] [--deregister]   cordon it, then wait until it",
  "                                    holds no task (its runs settled, failed or were released); exit 0 then (--deregister: and",
  "                                    deregister it), 4 if it still holds some after DURATION or when interrupted",
  "       coordination locks [list] [--holder AGENT_ID] [--prefix TEXT]   the named locks held: by whom, their fencing tokens, until when",
  "       coordination locks get NAME                             who holds the lock, under which fencing token, until when",
  "       coordination locks force-release NAME [--reason TEXT]   free it whoever holds it (a stuck agent's): its next renewal is refused",
  "       coordination semaphores [list] [--holder AGENT_ID] [--prefix TEXT]   the semaphore permits held: by whom, under which limit, until when",
  "       coordination semaphores get NAME                        how many hold it, under which limit; each permit's holder and lease",
  "       coordination semaphores force-release NAME [--fencing-token N] [--reason TEXT]   end that permit, or every one held",
  "       coordination webhooks [list]                            the webhooks: where each sends, what, how far it got, its last error",
  "       coordination webhooks add URL --types 'task.dead_lettered,build.*' [--description TEXT] [--from SEQ]   POST each",
  "                                    matching event there, signed; prints its secret once (--from: the events after SEQ first)",
  "       coordination webhooks get|remove|enable ID              (enable: deliver again, from the event it stopped at)",
  "       coordination webhooks disable ID [--reason TEXT]        send nothing until enabled (its events wait in the log)",
  "       coordination webhooks update ID [URL] [--types T,T…] [--description TEXT] [--from SEQ]   (--from: go on with",
  "                                    the events after SEQ: forward, those up to it are never sent; back, those after it again)",
  "       coordination webhooks skip ID                           pass over the event it would send next (one its receiver",
  "                                    refuses for good, holding back all after it); exit 3 when there is none",
  "       coordination webhooks rotate-secret ID [--grace DURATION]   a new secret (printed once); the old signs too for",
  "                                    DURATION (24h by default; 0s: it and those of earlier rotations stop at once)",
  "       coordination kv [list] [--prefix TEXT] [--ephemeral-owner AGENT] [--after KEY]   the keys of shared state: version,",
  "                                    written when and by whom, expiry, the agent whose life it is tied to, the value cut short",
  "                                    (up to 10,000 keys; --ephemeral-owner: only those tied to AGENT; --after: those after KEY;",
  "                                    --json: {items, nextCursor})",
  "       coordination kv get KEY                                 its value (JSON), version, when and by whom written; exit 3 if absent",
  "       coordination kv set KEY JSON|@FILE [--if-version N] [--ttl DURATION]   write the value (quoted as the shell needs: '{\"step\":2}',",
  "                                    '\"text\"'); --if-version: only if that is its version now (0: only if absent), else exit 3,",
  "                                    nothing written; --ttl: it reads as absent that long from now (30s, 10m, 1d; left out,",
  "                                    never: each set says its own); the key written outlives its writer (one an agent had",
  "                                    tied to its life is no longer)",
  "       coordination kv increment KEY [--by N] [--min N] [--max N] [--ttl DURATION]   add N (1 by default; negative",
  "                                    subtracts) to the key's number (absent: 0); past --min or --max: exit 3, nothing written;",
  "                                    --ttl: a key it creates reads as absent that long from now",
  "       coordination kv delete KEY [--if-version N]             (--if-version: only at that version, else exit 3, nothing deleted)",
  "       coordination kv watch KEY                               the key, then each new version, until Ctrl-C (a version replaced",
  "                                    before it was seen is not shown: each line is the key as it was then)",
  "       coordination kv watch --prefix TEXT                     the keys that start with TEXT, then each change to one as it comes",
  "                                    (presence/: who is here; a key gone, deleted, expired or with its agent, says so), until Ctrl-C",
  "       coordination events tail [--types 'task.*,agent.*'] [--agent A] [--from SEQ]   (--from: the events after SEQ; 0 for all retained)",
  "       coordination events publish TYPE [--payload JSON|@FILE] [--source NAME] [--target AGENT_ID] [--idempotency-key K]   an event (--target:",
  "                                    a direct message, to that agent's mailbox; --source: who tells it, an agent token's own agent when left out)",
  "       coordination memory recall [TEXT] [--task TASK_ID] [--queue Q] [--capability C] [--limit N]   the memories recall finds, best",
  "                                    first (10; --task: ranked for that task as its claim ranks them, so --limit 5 shows what a claim is",
  "                                    handed under the default memoryContextLimit; TEXT: those sharing its words; neither: the newest)",
  "       coordination memory remember TEXT [--kind note|lesson] [--queue Q] [--capability C] [--agent A] [--task TASK_ID] [--tags a,b]",
  "                                    [--idempotency-key K]",
  "                                    a note or a lesson, handed with the tasks of that queue or capability (or whose words it shares);",
  "                                    run again with the same --idempotency-key, nothing added",
  "       coordination memory forget MEMORY_ID                    delete it: it is recalled no more",
  "       coordination whoami                                     who the token is to the server: its role, its agent, its id and name",
  "Each takes --url URL (else COORDINATION_URL, else the server's host, port and TLS in its settings: the environment,",
  ".env, the YAML file of COORDINATION_CONFIG or --config FILE; by default http://127.0.0.1:8000), --token TOKEN",
  "(else COORDINATION_TOKEN, else the server's admin token: from those settings for the server they describe,",
  "from COORDINATION_ADMIN_TOKEN for a --url) and --json (JSON for scripts instead of a table); an option its",
  "command does not take is refused (exit 2), never dropped; after --, every word is one (kv get -- --draft). A JSON",
  "value (--payload, kv set's) given as @FILE is read",
  "from that file, as @- from standard input (a large payload, or one a program writes: jq … | … --payload @-).",
  "Exit codes: 0 done; 1 the server refused the call (its code said), could not be reached, or did not answer; 2 a usage error, or a",
  "value the server refuses (INVALID_INPUT, PAYLOAD_TOO_LARGE); 3 and 4 as each command says; 130 (143: SIGTERM)",
  "interrupted while a value was read or a call went unanswered.",
].join("\n");

/**
 * What a usage error prints after its message: the usage of the command it was about (`words`,
 * the command line's words: "tasks update ID"), or all of it for an unknown command, and how to
 * see the rest. Fifty lines of every command buried the one line that was wrong.
 */
export function usageAfterError(words: readonly string[]): string {
  const lines = OPERATOR_USAGE.split("\n");
  // An entry: a line naming a command, with the indented lines that go on with it.
  const entries: string[][] = [];
  for (const line of lines) {
    if (/^(Usage: | {7})coordination /.test(line)) entries.push([line.replace(/^Usage: /, "       ")]);
    else if (/^ {8,}/.test(line) && entries.length > 0 && !line.startsWith("Each")) entries.at(-1)!.push(line);
    else break;
  }
  const commandOf = (entry: string[]) => entry[0]!.trim().split(/\s+/).slice(1);
  const [command, sub] = words;
  const ofCommand = entries.filter((entry) => commandOf(entry)[0] === command);
  if (ofCommand.length === 0) return OPERATOR_USAGE;
  const ofSub = ofCommand.filter((entry) => sub !== undefined && (commandOf(entry)[1] ?? "").replace(/^\[|\]$/g, "").split("|").includes(sub));
  const shown = (ofSub.length > 0 ? ofSub : ofCommand).flat();
  return `Usage: ${shown.join("\n").slice("       ".length)}\n(coordination ${command} --help: every command, and the options each takes)`;
}

/** The words of a command line that did not parse: what is not an option or an option's value. */
function wordsOf(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") return [...words, ...argv.slice(i + 1)];
    if (!arg.startsWith("--")) words.push(arg);
    else if (!arg.includes("=") && VALUE_OPTIONS.has(arg)) i++;
  }
  return words;
}


/** How long one call of a command may go unanswered (beyond its long-poll wait), in ms. */
const CLI_CALL_TIMEOUT_MS = 60_000;
/** Each long-poll of `tasks wait` asks for this long; the server cuts it to its maxWaitMs. */
const WAIT_STEP_MS = 30_000;
/** A round of `tasks wait` not answered this long after its wait is given up as an outage (a hung server). */
const WAIT_ROUND_GRACE_MS = 15_000;
/** `tasks wait` asks no more often than this (a server whose maxWaitMs is 0 answers at once). */
const MIN_WAIT_ROUND_MS = 1000;
/** How long `tasks wait` keeps asking through an outage (a server restarting) once it had an answer. */
const WAIT_OUTAGE_MS = 60_000;

/** Resolves after `ms`, or at once when `stop` aborts. */
function pause(ms: number, stop: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || stop?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      stop?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stop?.addEventListener("abort", done, { once: true });
  });
}

/** The HTTP status the server answered a call with; undefined when no answer came (refused, reset, timed out). */
const answeredStatus = (error: unknown): number | undefined => (isTRPCClientError(error) ? error.data?.httpStatus : undefined);

/**
 * What a wait or a follow says, once, when the server stops answering (a restart, a dropped
 * connection): that it asks again for `forMs` (WAIT_OUTAGE_MS, or what is left of a command's
 * --timeout when less).
 */
const askingAgain = (error: unknown, forMs = WAIT_OUTAGE_MS): string => `coordination: ${printable(error instanceof Error ? error.message : String(error))}; asking again for up to ${Math.max(1, Math.ceil(forMs / 1000))} s\n`;

/**
 * What `ask` answers once `settled` holds for it, after `timeoutMs` at most (undefined: however
 * long it takes), or when `stop` aborts (Ctrl-C): long-polls (tasks.wait, tasks.waitMany) one
 * after another, the last answer as it is then; undefined when interrupted before any answer.
 * Once the server answered (a restart's 503 is an answer), an outage (that 503, no answer:
 * refused, reset, a round unanswered past its wait) is waited through for up to WAIT_OUTAGE_MS,
 * said once on `note`; before that, and for any other error, the command fails (a wrong --url, a
 * credential refused). `progressed`: the answer moved the wait on, so the next round need not be
 * paced.
 */
async function waitInRounds<T>(
  ask: (waitMs: number, signal: AbortSignal) => Promise<T>,
  settled: (answer: T) => boolean,
  timeoutMs: number | undefined,
  stop: AbortSignal | undefined,
  note: (text: string) => void,
  progressed: (answer: T) => boolean = () => false,
): Promise<T | undefined> {
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
  let answer: T | undefined;
  let reached = false;
  let outageSince: number | undefined;
  for (;;) {
    const askedAt = Date.now();
    const waitMs = Math.max(0, Math.min(deadline - askedAt, WAIT_STEP_MS));
    const round = linkSignals([stop, AbortSignal.timeout(waitMs + WAIT_ROUND_GRACE_MS)]);
    try {
      answer = await ask(waitMs, round.signal);
      reached = true;
      outageSince = undefined;
    } catch (error) {
      if (stop?.aborted) return answer;
      const status = answeredStatus(error);
      reached ||= status !== undefined;
      if (!reached || (status !== undefined && status !== 503)) throw error;
      if (outageSince === undefined) {
        outageSince = Date.now();
        note(askingAgain(error, Math.min(WAIT_OUTAGE_MS, deadline - outageSince)));
      }
      // Out of time: the answer last seen (exit 4), not the outage, is the answer.
      if (Date.now() >= deadline && answer !== undefined) return answer;
      if (Date.now() - outageSince >= WAIT_OUTAGE_MS || Date.now() >= deadline) throw error;
    } finally {
      round.dispose();
    }
    if (answer !== undefined && (settled(answer) || Date.now() >= deadline || stop?.aborted)) return answer;
    // A round that moved on (an answer cut short for its size) asks again at once: pacing is for rounds that brought nothing.
    if (outageSince === undefined && answer !== undefined && progressed(answer)) continue;
    await pause(Math.min(askedAt + MIN_WAIT_ROUND_MS - Date.now(), deadline - Date.now()), stop);
  }
}

/** The task once settled (tasks.wait in rounds: waitInRounds). */
const waitForTask = (api: CoordinationClient["api"], taskId: string, timeoutMs: number | undefined, stop: AbortSignal | undefined, note: (text: string) => void) =>
  waitInRounds((waitMs, signal) => api.tasks.wait.query({ taskId, waitMs }, { signal }), (task) => SETTLED.has(task.status), timeoutMs, stop, note);

/** The most characters of a result or error the `tasks wait ID ID…` table shows (--json has them whole). */
const CELL_CHARS = 60;

/**
 * `tasks wait ID ID…`: until all of the tasks settled (or, `any`, one), or one failed (dead
 * letter, cancelled: a pipeline need not wait for the rest), in rounds of tasks.waitMany, each
 * asking (until any, settled ones only) for the ids not seen settled, so no task is sent twice;
 * one an answer left out for its size is asked again at once. The tasks not seen settled are read
 * once at the end; one that cannot be (the server gone) shows as "not seen". What it prints and
 * its exit code are of that last read (`done` as the API's). Exit 0 when all (any: one)
 * completed, 3 when one was dead-lettered or cancelled (whatever else happened), 4 when not
 * settled in time or interrupted.
 */
async function waitForTasks(
  api: CoordinationClient["api"],
  taskIds: string[],
  until: "all" | "any",
  timeout: string | undefined,
  stop: AbortSignal | undefined,
  out: { stderr: (text: string) => void },
  print: (value: unknown, render: () => string) => void,
): Promise<number> {
  type Task = RouterOutputs["tasks"]["get"];
  const seen = new Map<string, Task>();
  const open = () => taskIds.filter((id) => !seen.has(id));
  const didNotComplete = (task: Task) => task.status === "dead_letter" || task.status === "cancelled";
  const failed = () => [...seen.values()].filter(didNotComplete);
  // Every task seen here has settled: the rounds ask for settled ones only.
  const allSeen = () => untilHolds(until, seen.size, taskIds.length);
  const timeoutMs = timeout === undefined ? undefined : parseDuration(timeout);
  const answered = await waitInRounds(
    async (waitMs, signal) => {
      const answer = await api.tasks.waitMany.query({ taskIds: open(), until: "any", settledOnly: true, waitMs }, { signal });
      for (const task of answer.tasks) seen.set(task.id, task);
      return answer;
    },
    () => allSeen() || failed().length > 0,
    timeoutMs,
    stop,
    out.stderr,
    (answer) => answer.tasks.length > 0,
  );
  if (answered === undefined) {
    // Not "tasks not seen": they exist; none was seen settled (whether one settled as Ctrl-C came is not known).
    out.stderr(`coordination: interrupted before the server answered: none of the ${taskIds.length} tasks seen settled\n`);
    return 4;
  }
  // The tasks not seen settled, as they are now: read once, those left out for size alone, bounded
  // as a round is; one that cannot be read (the server gone, retention deleted it) shows as not seen.
  const now = new Map<string, Task>(seen);
  try {
    await readTasksNow(api, open(), now, AbortSignal.timeout(WAIT_ROUND_GRACE_MS));
  } catch {
    // Shown as not seen below.
  }
  // What the command says is what it shows: done and the failures as of that last read.
  const tasks = taskIds.flatMap((id) => (now.has(id) ? [now.get(id)!] : []));
  const notSeen = taskIds.filter((id) => !now.has(id));
  const settledNow = tasks.filter((task) => SETTLED.has(task.status));
  const done = untilHolds(until, settledNow.length, taskIds.length);
  const failures = tasks.filter(didNotComplete);
  print({ done, tasks, ...(notSeen.length === 0 ? {} : { notSeen }) }, () =>
    table(
      ["ID", "STATUS", "FINISHED", "RESULT OR LAST ERROR"],
      taskIds.map((id) => {
        const task = now.get(id);
        if (task === undefined) return [id, "not seen", "-", "-"];
        const text = task.status === "completed" ? JSON.stringify(task.result) : (task.lastError ?? "-");
        return [task.id, task.status, when(task.finishedAt), cut(printable(text), CELL_CHARS)];
      }),
    ),
  );
  if (failures.length > 0) {
    out.stderr(`coordination: ${failures.map((task) => `task ${printable(task.id)} was ${task.status === "cancelled" ? "cancelled" : "dead-lettered"}`).join("; ")}\n`);
    return 3;
  }
  if (done) return 0;
  const by = stop?.aborted ? "when interrupted" : `in ${timeout}`;
  out.stderr(`coordination: ${until === "all" ? `${taskIds.length - settledNow.length} of ${taskIds.length} tasks had not settled` : "none of the tasks had settled"} ${by}\n`);
  return 4;
}

/** The tasks an agent holds that a drain reads a round: their count past it is said as "N or more". */
const DRAIN_PAGE = 100;
/**
 * The longest a drain's round waits for one of them to settle, in ms: a task failed into a retry
 * or released leaves the agent without settling, which no wait wakes for; the next read sees it.
 */
const DRAIN_ROUND_MS = 2000;

/**
 * `agents drain AGENT_ID`: cordons the agent (no claim or steal hands it a task from that write
 * on; `--reason`, "drained" by default), then waits until it holds no task, as a node is drained
 * before maintenance: each round waits for one of the tasks the last round read to settle
 * (tasks.waitMany), then reads the tasks it holds (tasks.list, claimed, by agent); a run that
 * fails into a retry or is released leaves it too, and that read sees it. Said on stderr as the count changes. Exit 0
 * once it holds none (`--deregister`: then deregistered, its ephemeral keys and locks with it),
 * 4 when it still holds some after `--timeout` or when interrupted (the cordon stays either way).
 */
async function drainAgent(
  api: CoordinationClient["api"],
  agentId: string,
  options: Parsed["options"],
  stop: AbortSignal | undefined,
  out: { stderr: (text: string) => void },
  print: (value: unknown, render: () => string) => void,
): Promise<number> {
  const timeout = str(options["--timeout"]);
  const timeoutMs = timeout === undefined ? undefined : parseDuration(timeout);
  const startedAt = Date.now();
  // The cordon is asked as a round is: within --timeout and a round's grace, and Ctrl-C ends it
  // (a server that takes the connection and never answers held the command past both).
  const asking = linkSignals([stop, timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs + WAIT_ROUND_GRACE_MS)]);
  let cordoned: Awaited<ReturnType<typeof api.agents.cordon.mutate>>;
  try {
    cordoned = await api.agents.cordon.mutate({ agentId, reason: str(options["--reason"]) ?? "drained" }, { signal: asking.signal });
  } catch (error) {
    if (!stop?.aborted) throw error;
    print({ drained: false, agent: null, holding: null }, () => "");
    out.stderr(`coordination: interrupted before the server answered the cordon: agent ${printable(agentId)} may be cordoned, and may hold tasks\n`);
    return 4;
  } finally {
    asking.dispose();
  }
  const name = printable(cordoned.agentId);
  let said: string | undefined;
  /** The tasks the last round read it holding (none read yet: undefined). */
  let holding: Array<{ id: string }> | undefined;
  /** Whether the last round waited (the first reads at once, and the second waits at once). */
  let waited = false;
  const held = await waitInRounds(
    // A round waits for one of the tasks the last one read to settle, then reads what it holds:
    // its answer is read after its wait, so the last round's (at --timeout) is as it is then (a
    // task released or failed into a retry while the round waited, which no wait wakes for, is
    // not named as still held).
    async (waitMs, signal) => {
      waited = holding !== undefined && holding.length > 0 && waitMs > 0;
      if (waited) {
        await api.tasks.waitMany.query({ taskIds: holding!.map((task) => task.id), until: "any", settledOnly: true, waitMs: Math.min(waitMs, DRAIN_ROUND_MS) }, { signal });
      }
      const page = await api.tasks.list.query({ agentId, status: "claimed", limit: DRAIN_PAGE }, { signal });
      const count = `${page.items.length}${page.nextCursor === null ? "" : " or more"}`;
      if (page.items.length > 0 && count !== said) out.stderr(`coordination: agent ${name} holds ${count} task${count === "1" ? "" : "s"}; waiting for ${count === "1" ? "it" : "them"} to settle\n`);
      said = count;
      holding = page.items;
      return page.items;
    },
    (tasks) => tasks.length === 0,
    // What is left of --timeout after the cordon.
    timeoutMs === undefined ? undefined : Math.max(0, startedAt + timeoutMs - Date.now()),
    stop,
    out.stderr,
    () => !waited,
  );
  if (held === undefined || held.length > 0) {
    const ids = held?.map((task) => printable(task.id)) ?? [];
    // holding null: not known (interrupted before the server answered), not none.
    print({ drained: false, agent: cordoned, holding: held?.map((task) => task.id) ?? null }, () => "");
    out.stderr(
      `coordination: agent ${name} ${held === undefined ? "may hold tasks still (interrupted before the server answered)" : `still holds ${said} task${said === "1" ? "" : "s"} ${stop?.aborted ? "when interrupted" : `after ${timeout}`}: ${ids.join(", ")}`}; it stays cordoned\n`,
    );
    return 4;
  }
  if (options["--deregister"] === true) {
    const gone = await api.agents.deregister.mutate({ agentId });
    print({ drained: true, agent: gone, deregistered: true }, () => `agent ${name} drained: it held no task, and was deregistered\n`);
    return 0;
  }
  print({ drained: true, agent: cordoned, deregistered: false }, () => `agent ${name} drained: it holds no task, and stays cordoned (coordination agents uncordon ${name} lifts it)\n`);
  return 0;
}

interface Parsed {
  words: string[];
  options: Record<string, string | true>;
}

const VALUE_OPTIONS = new Set(["--url", "--token", "--config", "--queue", "--status", "--agent", "--limit", "--cursor", "--capability", "--health", "--types", "--from", "--after", "--before", "--reason", "--cron", "--timezone", "--every", "--start", "--end", "--max-runs", "--overlap", "--payload", "--priority", "--timeout", "--at", "--delay", "--expires", "--ttl", "--max-run", "--for", "--holder", "--prefix", "--fencing-token", "--description", "--grace", "--if-version", "--attempt", "--level", "--tail", "--dedupe-key", "--ordering-key", "--key-concurrency", "--trace-id", "--enqueued-by", "--by", "--min", "--max", "--ephemeral-owner", "--target", "--max-attempts", "--depends-on", "--on-dependency-failure", "--idempotency-key", "--source", "--task", "--kind", "--tags"]);
/** Value options that take a comma-separated list wherever they are taken. */
const LIST_OPTIONS = new Set(["--types", "--status", "--depends-on", "--tags"]);
/** Options that take no value. */
const FLAG_OPTIONS = new Set(["--json", "--all", "--any", "--cordoned", "--follow", "--clear-checkpoint", "--deregister", "--wait"]);

/** Options every command takes: where the server is, who calls, and the output's form. */
const COMMON_OPTIONS = ["--url", "--token", "--config", "--json"];

/**
 * The options of each command (beyond COMMON_OPTIONS), by its words; an option another command
 * takes is refused, not dropped: `tasks requeue --all --limit 5` requeued every dead letter.
 */
function commandOptions(words: readonly string[], options: Parsed["options"]): readonly string[] | undefined {
  const [command, sub] = words;
  if (command === "stats") return ["--queue"];
  if (command === "whoami") return [];
  if (command === "queues") return sub === "pause" ? ["--reason"] : [];
  if (command === "tasks" && sub === "list") return ["--status", "--queue", "--agent", "--capability", "--dedupe-key", "--ordering-key", "--trace-id", "--enqueued-by", "--limit", "--cursor"];
  // The bulk form has no TASK_ID: with one, --all is refused as any stray option is.
  if (command === "tasks" && sub === "requeue" && words.length === 2 && options["--all"] === true) return ["--all", "--queue", "--after", "--before", "--clear-checkpoint"];
  if (command === "tasks" && sub === "cancel" && words.length === 2 && options["--all"] === true) return ["--all", "--queue", "--status", "--enqueued-by", "--after", "--before", "--reason"];
  if (command === "tasks" && sub === "logs") return ["--after", "--tail", "--attempt", "--level", "--limit", "--follow"];
  if (command === "tasks" && sub === "enqueue") return ENQUEUE_OPTIONS;
  if (command === "tasks") {
    if (sub === "cancel") return ["--reason"];
    if (sub === "wait") return ["--timeout", "--any"];
    if (sub === "update") return ["--priority", "--at", "--delay", "--expires", "--payload", "--clear-checkpoint"];
    return sub === "requeue" ? ["--clear-checkpoint"] : [];
  }
  if (command === "agents") return sub === "cordon" ? ["--reason", "--for"] : sub === "drain" ? ["--reason", "--timeout", "--deregister"] : sub === "why-idle" ? ["--queue", "--capability"] : sub === undefined ? ["--health", "--capability", "--cordoned"] : [];
  if (command === "schedules") return sub === "set" ? ["--cron", "--timezone", "--every", "--start", "--end", "--max-runs", "--overlap", "--ttl", "--max-run", "--queue", "--payload", "--priority", "--capability", "--target", "--max-attempts", "--ordering-key", "--key-concurrency"] : sub === undefined || sub === "list" ? ["--queue"] : [];
  if (command === "events" && sub === "tail") return ["--types", "--agent", "--from"];
  if (command === "events" && sub === "publish") return PUBLISH_OPTIONS;
  if (command === "memory") return sub !== undefined && Object.hasOwn(MEMORY_OPTIONS, sub) ? MEMORY_OPTIONS[sub] : [];
  if (command === "locks") return sub === undefined || sub === "list" ? ["--holder", "--prefix"] : sub === "force-release" ? ["--reason"] : [];
  if (command === "semaphores") return sub === undefined || sub === "list" ? ["--holder", "--prefix"] : sub === "force-release" ? ["--fencing-token", "--reason"] : [];
  if (command === "kv") return sub === undefined || sub === "list" ? ["--prefix", "--ephemeral-owner", "--after"] : sub === "set" ? ["--if-version", "--ttl"] : sub === "increment" ? ["--by", "--min", "--max", "--ttl"] : sub === "delete" ? ["--if-version"] : sub === "watch" ? ["--prefix"] : [];
  if (command === "webhooks") return sub === "add" ? ["--types", "--description", "--from"] : sub === "update" ? ["--types", "--description", "--from"] : sub === "disable" ? ["--reason"] : sub === "rotate-secret" ? ["--grace"] : [];
  return undefined;
}

/** Refuses an option the command does not take (an unknown command is refused by dispatch). */
function assertOptionsFit(words: readonly string[], options: Parsed["options"]): void {
  const own = commandOptions(words, options);
  if (own === undefined) return;
  const strange = Object.keys(options).filter((flag) => !COMMON_OPTIONS.includes(flag) && !own.includes(flag));
  if (strange.length === 0) return;
  const takes = own.length === 0 ? "takes none of its own" : `takes ${own.join(", ")}`;
  throw new OperatorUsageError(`${words.slice(0, 2).join(" ")}${options["--all"] === true && own.includes("--all") ? " --all" : ""} does not take ${strange.join(", ")} (it ${takes})`);
}

function parse(argv: string[]): Parsed {
  const words: string[] = [];
  const options: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    // The end of the options, as POSIX has it: what follows are words, a key or name that starts
    // with "--" among them (`kv get -- --draft`), which no other spelling could reach.
    if (arg === "--") {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      words.push(arg);
      continue;
    }
    const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (FLAG_OPTIONS.has(flag)) {
      // `--json=false` read as --json printed JSON: a flag is there or not.
      if (inline !== undefined) throw new OperatorUsageError(`${flag} takes no value (got ${JSON.stringify(arg)}: leave it out for no)`);
      options[flag] = true;
      continue;
    }
    if (!VALUE_OPTIONS.has(flag)) throw new OperatorUsageError(`unknown option "${flag}"`);
    const value = inline ?? argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith("--"))) throw new OperatorUsageError(`${flag} needs a value`);
    // Given twice, the first was dropped: `--depends-on A --depends-on B` waited for B alone.
    if (options[flag] !== undefined) throw new OperatorUsageError(`${flag} is given twice (give it once${LIST_OPTIONS.has(flag) ? ", its values separated by commas" : ""})`);
    options[flag] = value;
  }
  return { words, options };
}

/** What JSON.stringify leaves raw of CONTROL: DEL, C1 and the bidirectional controls (it escapes C0 itself). */
const CONTROL_BEYOND_C0 = new RegExp(`[${BEYOND_C0}]`, "g");

/** `value` as --json prints it (indented, or one line), its strings' control characters as \u escapes: the JSON reads back the same, and the terminal sees text. */
const printableJson = (value: unknown, indent = 2): string =>
  JSON.stringify(value, null, indent).replace(CONTROL_BEYOND_C0, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);


/**
 * A task's progress as its run last reported it (JSON), cut to `max` characters when given, and
 * how long ago it was reported (a report that stopped coming is what an operator looks for); "-"
 * when it reported none (progressAt is absent from a server older than this CLI).
 */
function progressText(task: { progress?: unknown; progressAt?: Date | null }, max = Infinity): string {
  if (!task.progressAt) return "-";
  return `${cut(JSON.stringify(task.progress), max)} (${ago(task.progressAt)})`;
}

/** The most characters of a checkpoint `tasks get` shows (up to 64 KiB of JSON; --json has it whole). */
const CHECKPOINT_CHARS = 200;
/**
 * The most of a task's payload, result or last error `tasks get` prints in its table, in
 * characters: the server keeps up to a mebibyte of each, which printed whole buried the other
 * rows and padded every row of the table to its width. --json prints them whole.
 */
const SHOWN_VALUE_CHARS = 2000;

/** `text` as `tasks get` shows a long value: whole, or cut at SHOWN_VALUE_CHARS and saying how long it is. */
function shownValue(text: string): string {
  const length = Array.from(text).length;
  return length <= SHOWN_VALUE_CHARS ? text : `${cut(text, SHOWN_VALUE_CHARS)} (${length.toLocaleString("en-US")} characters in all: --json prints it whole)`;
}

/** A task's checkpoint (JSON, cut) and when it was saved; "-" when none is kept (checkpointAt is absent from a server older than this CLI). */
function checkpointText(task: { checkpoint?: unknown; checkpointAt?: Date | null }, when: (at: Date | null | undefined) => string): string {
  if (!task.checkpointAt) return "-";
  return `${cut(JSON.stringify(task.checkpoint), CHECKPOINT_CHARS)} (${ago(task.checkpointAt)}, saved ${when(task.checkpointAt)})`;
}

/** How long before now `date` was, roughly: "12s ago", "5m ago", "3h ago", "2d ago" (this machine's clock; never below 0s). */
function ago(date: Date): string {
  const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (seconds < 90) return `${seconds}s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86_400)}d ago`;
}

/** What a claimer must offer or be for `task`: its capability and target, "-" for any agent. */
const needs = (task: { capability: string | null; targetAgentId: string | null }): string =>
  [task.capability === null ? undefined : `capability ${task.capability}`, task.targetAgentId === null ? undefined : `agent ${task.targetAgentId}`].filter(Boolean).join(", ") || "-";


export interface Output {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** The command's standard input, read whole: a JSON value given as `@-`. Absent: the command has none (`@-` is a usage error). */
  stdin?: () => Promise<string>;
}

/** What a live tail's error carries: the API's code, and an EVENTS_PRUNED's pruned-through seq. */
type TailErrorData = { code?: string; details?: { prunedThroughSeq?: number } };

/**
 * What is wrong with a tail's --from, said with the command's own option: the server names the
 * stream's lastEventId, and its way out ("reconnect with lastEventId …") is no use at a prompt.
 */
function fromProblem(from: string | undefined, data: TailErrorData | undefined, message: string): string {
  if (from === undefined || !message.startsWith("lastEventId")) return message;
  const prunedThrough = data?.details?.prunedThroughSeq;
  if (data?.code === "EVENTS_PRUNED" && prunedThrough !== undefined) {
    return `--from ${from} is behind the retained event log: events up to ${prunedThrough} were pruned. Tail with --from 0 (the oldest retained event) or --from ${prunedThrough} or later, or without --from to follow new events only.`;
  }
  return message.replace(/^lastEventId/, "--from");
}

/** The option each API field a command sends comes from: a refusal names what the operator typed. */
const FLAG_OF_FIELD: Record<string, string> = {
  finishedAfter: "--after",
  finishedBefore: "--before",
  queue: "--queue",
  status: "--status",
  agentId: "--agent",
  limit: "--limit",
  cursor: "--cursor",
  capability: "--capability",
  health: "--health",
  types: "--types",
  reason: "--reason",
  lastEventId: "--from",
  cron: "--cron",
  timezone: "--timezone",
  everyMs: "--every",
  startAt: "--start",
  endAt: "--end",
  maxRuns: "--max-runs",
  overlap: "--overlap",
  createdAfter: "--after",
  createdBefore: "--before",
  statuses: "--status",
  runAt: "--at",
  delayMs: "--delay",
  expiresAt: "--expires",
  prefix: "--prefix",
  after: "--after",
  ifVersion: "--if-version",
  ttlMs: "--ttl",
  attempt: "--attempt",
  level: "--level",
  tail: "--tail",
  payload: "--payload",
  dedupeKey: "--dedupe-key",
  orderingKey: "--ordering-key",
  keyConcurrency: "--key-concurrency",
  traceId: "--trace-id",
  enqueuedBy: "--enqueued-by",
  by: "--by",
  min: "--min",
  max: "--max",
  ephemeralOwner: "--ephemeral-owner",
  priority: "--priority",
  targetAgentId: "--target",
  target: "--target",
  maxAttempts: "--max-attempts",
  maxRunMs: "--max-run",
  dependsOn: "--depends-on",
  onDependencyFailure: "--on-dependency-failure",
  idempotencyKey: "--idempotency-key",
  source: "--source",
  taskId: "--task",
  kind: "--kind",
  tags: "--tags",
  fromSeq: "--from",
};

/** A field some command fills from another option than FLAG_OF_FIELD's: `webhooks update --from` sends cursor. */
const OTHER_FLAG_OF_FIELD: Record<string, string> = { cursor: "--from" };

/** The option `field` came from: the one of its options the command was given, or takes. */
function flagOf(field: string, options: Record<string, unknown>, takes: readonly string[]): string | undefined {
  for (const flags of [FLAG_OF_FIELD, OTHER_FLAG_OF_FIELD]) {
    const flag = Object.hasOwn(flags, field) ? flags[field]! : undefined;
    if (flag !== undefined && (options[flag] !== undefined || takes.includes(flag))) return flag;
  }
  return undefined;
}

/**
 * An INVALID_INPUT message ("finishedAfter: must be …; limit: …", "task.priority: …") with each
 * field named by the option it came from, where the command was given that option or takes it
 * (`takes`: a field required and not given, `events publish` without --source), not otherwise
 * (`queues pause NAME` has no --queue).
 */
export const inFlagTerms = (message: string, options: Record<string, unknown>, takes: readonly string[] = []): string =>
  // A field within the call's objects ("task.keyConcurrency", schedules set's run) is named by its own option too.
  message.replace(/(^|; )(?:[A-Za-z]+\.)*([A-Za-z]+)(?=[:[])/g, (whole, start: string, field: string) => {
    const flag = flagOf(field, options, takes);
    return flag !== undefined ? `${start}${flag}` : whole;
  });


/**
 * What an IDEMPOTENCY_MISMATCH's `details.differs` (API fields: "keyConcurrency", "dedupe.key")
 * are as this command's options ("; the options that differ: --key-concurrency"), for those the
 * command was given or takes; "" when none is. An option left out differs too (its default is
 * not what the first call asked), which is why a taken option is named though not given.
 */
export const differingOptions = (data: unknown, options: Record<string, unknown>, takes: readonly string[] = []): string => {
  const differs = (data as { details?: { differs?: unknown } } | undefined)?.details?.differs;
  if (!Array.isArray(differs)) return "";
  const flags = differs
    .map((field) => (typeof field !== "string" ? undefined : flagOf(field.replace(/\.(.)/g, (_, c: string) => c.toUpperCase()), options, takes)))
    .filter((flag): flag is string => flag !== undefined);
  return flags.length === 0 ? "" : `; the options that differ: ${[...new Set(flags)].join(", ")}`;
};

/**
 * Calls `fetchPage` with each page's nextCursor (none the first time) until it is null, adding
 * what each page did or holds (`itemsOf`: ids of tasks acted on, schedules listed) to `done` as it
 * comes: a caller whose later page fails knows what the earlier ones did.
 */
async function allPages<P extends { nextCursor: string | null }, T>(fetchPage: (cursor: string | undefined) => Promise<P>, itemsOf: (page: P) => readonly T[], done: T[]): Promise<void> {
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    done.push(...itemsOf(page));
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
}


/** The change `tasks update` asks for, from its options (the server refuses a bad priority or time, naming the option). */
function taskUpdateOf(
  taskId: string,
  options: Parsed["options"],
): { taskId: string; priority?: number; runAt?: string | number; delayMs?: number; expiresAt?: string | number | null; payload?: JsonValue; checkpoint?: null } {
  const priority = int(options["--priority"], "--priority");
  const at = str(options["--at"]);
  const delay = str(options["--delay"]);
  const expires = str(options["--expires"]);
  const payload = jsonOption(options["--payload"], "--payload");
  const clearCheckpoint = options["--clear-checkpoint"] === true;
  if (priority === undefined && at === undefined && delay === undefined && expires === undefined && payload === undefined && !clearCheckpoint) {
    throw new OperatorUsageError("tasks update needs --priority, --at, --delay, --expires, --payload or --clear-checkpoint: what to change");
  }
  if (at !== undefined && delay !== undefined) throw new OperatorUsageError("tasks update takes --at or --delay, not both");
  const delayMs = delayOption(delay);
  return {
    taskId,
    ...(priority !== undefined ? { priority } : {}),
    ...(at !== undefined ? { runAt: timeArg(at, "--at") } : {}),
    ...(delayMs !== undefined ? { delayMs } : {}),
    ...(expires !== undefined ? { expiresAt: expiryArg(expires) } : {}),
    ...(payload !== undefined ? { payload } : {}),
    ...(clearCheckpoint ? { checkpoint: null } : {}),
  };
}


/** What the operator's commands need of the server's settings (config.ts). */
export interface ServerSettings {
  host: string;
  port: number;
  /** Whether it serves HTTPS (tlsCert set). */
  tls: boolean;
  /** "" when none is set. */
  adminToken: string;
}

/** The URL a client on this machine reaches a server listening on `host`:`port` at (a wildcard address is this machine). */
export function serverUrl({ host, port, tls }: Pick<ServerSettings, "host" | "port" | "tls">): string {
  const local = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `${tls ? "https" : "http"}://${local.includes(":") ? `[${local}]` : local}:${port}`;
}

/**
 * Runs one operator command; resolves with the exit code. `stop` ends a tail (SIGINT).
 * `settings` reads the server's settings (the YAML file named, or the usual sources); it may
 * throw a ConfigError. Without it, the defaults and COORDINATION_ADMIN_TOKEN stand for them.
 */
export async function runOperatorCommand(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: Output,
  stop?: AbortSignal,
  settings: (configFile: string | undefined) => ServerSettings = () => ({ host: "127.0.0.1", port: 8000, tls: false, adminToken: env.COORDINATION_ADMIN_TOKEN ?? "" }),
): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    out.stdout(`${OPERATOR_USAGE}\n`);
    return 0;
  }
  let parsed: Parsed;
  try {
    parsed = parse(argv);
    assertOptionsFit(parsed.words, parsed.options);
    // Only for a command there is: a typo's --payload @- asked a terminal for a value, then was refused.
    if (commandOptions(parsed.words, parsed.options) !== undefined) await readValueFiles(parsed, out.stdin, stop);
  } catch (error) {
    // Ctrl-C while a value was read: not a mistake in the command line, and nothing was sent.
    if (error instanceof ReadInterrupted) {
      out.stderr(`coordination: ${error.message}\n`);
      return INTERRUPTED_EXIT;
    }
    if (!(error instanceof OperatorUsageError)) throw error;
    out.stderr(`coordination: ${error.message}\n${usageAfterError(wordsOf(argv))}\n`);
    return 2;
  }
  const { words, options } = parsed;
  const givenUrl = str(options["--url"]) ?? env.COORDINATION_URL;
  let url: string;
  // The server's admin token goes to the server its settings describe, never to a URL named
  // otherwise: there, only a token given for it (or the shell's COORDINATION_ADMIN_TOKEN, as before).
  let settingsToken: string | undefined;
  if (givenUrl !== undefined) {
    url = givenUrl;
    settingsToken = env.COORDINATION_ADMIN_TOKEN;
  } else {
    let server: ServerSettings;
    try {
      server = settings(str(options["--config"]));
    } catch (error) {
      // Settings the server would refuse to start with (a typo, a file not found): say so, rather than guess an address.
      if (!(error instanceof Error) || error.name !== "ConfigError") throw error;
      out.stderr(`coordination: the server's settings cannot be read for its address and token (give --url, or mend them): ${error.message}\n`);
      return 2;
    }
    url = serverUrl(server);
    settingsToken = server.adminToken || undefined;
  }
  // An empty one (COORDINATION_TOKEN= in a script), or one of whitespace only, is none: the next source stands.
  const flagToken = str(options["--token"])?.trim();
  const envToken = env.COORDINATION_TOKEN?.trim();
  const given = flagToken || envToken || settingsToken;
  let token: string | undefined;
  try {
    // Without the whitespace around it (a file's newline); one no header can carry is said here, exit 2.
    token = given === undefined ? undefined : bearerToken(given, `coordination: ${flagToken ? "--token" : envToken ? "COORDINATION_TOKEN" : "the server's admin token"}`);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    out.stderr(`${error.message}\n`);
    return 2;
  }
  const json = options["--json"] === true;
  // An operator hears at once that the server cannot be reached, rather than after a wait for it:
  // the commands that wait (tasks wait, kv watch, agents drain) ride out a restart by themselves.
  // A server frozen with its port open (paused, a hung VM) answers nothing: each call is bounded
  // (its long-poll wait on top), rather than waiting for undici's 300 s, and then says it may
  // have been done.
  let client: CoordinationClient;
  try {
    client = createCoordinationClient({ url, waitForServerMs: 0, callTimeoutMs: CLI_CALL_TIMEOUT_MS, ...(token ? { token } : {}) });
  } catch (error) {
    // A --url that is no http(s) address: a usage error, not a server that gave no answer.
    if (!(error instanceof TypeError)) throw error;
    out.stderr(`${error.message.replace(/^createCoordinationClient: /, "coordination: ")}\n`);
    return 2;
  }
  try {
    return await dispatch(words, options, json, client, out, stop);
  } catch (error) {
    if (error instanceof OperatorUsageError) {
      out.stderr(`coordination: ${error.message}\n${usageAfterError(words)}\n`);
      return 2;
    }
    if (isTRPCClientError(error)) {
      const code = (error.data as { code?: string } | undefined)?.code;
      // No answer from the server at all: the transport's reason. A change whose connection broke
      // after it was sent may have been made: an operator told "cannot reach" would ask again.
      const reason = error.cause instanceof Error ? error.cause.message : error.message;
      if (code === undefined && mayHaveBeenServed(error)) out.stderr(`coordination: no answer from the server at ${shownUrl(url)} (${reason}): what was asked may have been done; look before asking again\n`);
      // A read whose connection broke, or that went unanswered, reached the server: "cannot reach"
      // would send the operator to look for a server that is there (a restart, a proxy's timeout).
      else if (code === undefined && !neverReached(error)) out.stderr(`coordination: no answer from the server at ${shownUrl(url)} (${reason}): nothing was changed; ask again\n`);
      else if (code === undefined) out.stderr(`coordination: cannot reach the server at ${shownUrl(url)} (${reason})\n`);
      else {
        const fix = code !== "UNAUTHORIZED" ? "" : token ? " (the server refused the token given)" : " (give one with --token or COORDINATION_TOKEN)";
        const takes = commandOptions(words, options) ?? [];
        const said = code === "INVALID_INPUT" ? inFlagTerms(error.message, options, takes) : code === "IDEMPOTENCY_MISMATCH" ? error.message + differingOptions(error.data, options, takes) : error.message;
        out.stderr(`coordination: ${code}: ${printable(said)}${fix}\n`);
      }
      // A value the server refuses (--status bogus) is a usage error, as one refused here is; so is
      // one larger than it takes (a --payload @FILE past its maxBodyBytes): sent again, it is refused again.
      return code === "INVALID_INPUT" || code === "PAYLOAD_TOO_LARGE" ? 2 : 1;
    }
    throw error;
  } finally {
    await client.close();
  }
}

async function dispatch(words: string[], options: Parsed["options"], json: boolean, client: CoordinationClient, out: Output, stop?: AbortSignal): Promise<number> {
  const { api } = client;
  const print = (value: unknown, render: () => string) => out.stdout(json ? `${printableJson(value)}\n` : render());
  const [command, sub, id] = words;
  if (command === "whoami" && words.length === 1) {
    const me = await api.tokens.whoami.query();
    // "agent worker-1 (token …)", "read (token …)", "admin (token …)".
    const who = me.agentId === null ? me.role : `${me.role} ${printable(me.agentId)}`;
    // An unnamed token's name is "" (tokens list shows "-"): said only when there is one.
    const named = me.name === null || me.name === "" ? "" : `, named ${printable(JSON.stringify(me.name))}`;
    // kvPrefixes: absent from a server older than this CLI, null when the credential writes any key.
    const scope = me.kvPrefixes == null ? "" : `, writes only keys starting with ${keyPrefixesText(me.kvPrefixes)}`;
    print(me, () => (me.credentialsRequired ? `${who} (token ${printable(me.tokenId ?? "-")}${named}${scope})\n` : "admin: this server requires no credential, and trusts every caller as an admin\n"));
    return 0;
  }
  if (command === "stats" && words.length === 1) {
    const queue = str(options["--queue"]);
    const stats = await api.tasks.stats.query(queue === undefined ? undefined : { queue });
    print(
      stats,
      () =>
        table(
          ["QUEUE", "WAITING", "PENDING", "(SCHEDULED)", "CLAIMED", "COMPLETED", "DEAD_LETTER", "CANCELLED", "OLDEST PENDING", "NEXT DUE"],
          stats.queues.map((q) => [
            // maxLeased is absent from a server older than this CLI.
            `${q.queue}${q.paused ? " (paused)" : ""}${q.maxLeased == null ? "" : ` (limit ${q.maxLeased})`}${q.rate == null ? "" : ` (rate ${q.rate.maxClaims}/${rateWindowText(q.rate.perMs)})`}`,
            // Absent from a server older than this CLI.
            String(q.counts.waiting ?? 0),
            String(q.counts.pending),
            // Absent from a server older than this CLI.
            q.scheduled === undefined ? "-" : String(q.scheduled),
            ...(["claimed", "completed", "dead_letter", "cancelled"] as const).map((s) => String(q.counts[s])),
            q.oldestPendingAgeMs === null ? "-" : `${Math.round(q.oldestPendingAgeMs / 1000)} s`,
            when(q.nextDueAt),
          ]),
        ) + (stats.queuesOmitted > 0 && queue === undefined ? `(${stats.queuesOmitted} quieter queues not shown)\n` : ""),
    );
    return 0;
  }
  if (command === "queues" && (sub === "pause" || sub === "resume") && words.length === 2) throw new OperatorUsageError(`queues ${sub} needs a QUEUE`);
  if (command === "queues" && (sub === "pause" || sub === "resume") && words.length === 3) {
    const reason = str(options["--reason"]);
    const pause = sub === "pause" ? await api.queues.pause.mutate({ queue: id!, ...(reason === undefined ? {} : { reason }) }) : await api.queues.resume.mutate({ queue: id! });
    print(pause, () =>
      pause.paused
        ? `queue ${printable(pause.queue)} paused since ${when(pause.pausedAt)}${pause.reason ? `: ${printable(pause.reason)}` : ""}\n`
        : `queue ${printable(pause.queue)} runs${pause.resumedAt ? " (its tasks are being brought back, best first)" : ""}\n`,
    );
    return 0;
  }
  if (command === "queues" && sub === "limit") {
    const [, , queue, bound] = words;
    const leases = bound === undefined || !/^[1-9][0-9]*$/.test(bound) ? undefined : Number(bound);
    if (words.length !== 4 || (bound !== "off" && (leases === undefined || !Number.isSafeInteger(leases)))) throw new OperatorUsageError("queues limit needs a QUEUE and the most leases of its tasks at once (1 or more), or off");
    // Refused here, naming N, as queues rate's bounds are: the server's refusal names its field (maxLeased).
    if (leases !== undefined && leases > MAX_LEASED) throw new OperatorUsageError(`queues limit: N, the most leases at once, is 1 to 1,000,000: not ${bound}`);
    const limit = leases === undefined ? await api.queues.removeLimit.mutate({ queue: queue! }) : await api.queues.setLimit.mutate({ queue: queue!, maxLeased: leases });
    print(limit, () =>
      limit.maxLeased === null
        ? `queue ${printable(limit.queue)} has no limit${limit.removedAt ? " (its tasks are being brought back, best first)" : ""}\n`
        : `queue ${printable(limit.queue)}: at most ${limit.maxLeased} leased at once (${limit.leased} now)\n`,
    );
    return 0;
  }
  if (command === "queues" && sub === "limits" && words.length === 2) {
    const limits = await api.queues.limits.query();
    print(limits, () =>
      limits.length === 0
        ? "no queue is limited\n"
        : table(
            ["QUEUE", "LIMIT", "LEASED", "SINCE", "BY"],
            limits.map((l) => [l.queue, l.maxLeased === null ? "removing" : String(l.maxLeased), l.leased === null ? "-" : String(l.leased), when(l.maxLeased === null ? l.removedAt : l.setAt), l.setBy ?? "-"]),
          ),
    );
    return 0;
  }
  if (command === "queues" && sub === "rate") {
    const [, , queue, bound] = words;
    if (words.length < 3 || words.length > 4) throw new OperatorUsageError("queues rate needs a QUEUE, and to set its rate N/WINDOW (60/1m, 10/1s, 500/90s), or off to remove it");
    const rate = bound === undefined || bound === "off" ? undefined : serverRate(bound);
    const answer =
      bound === undefined
        ? await api.queues.rate.query({ queue: queue! })
        : rate === undefined
          ? await api.queues.removeRate.mutate({ queue: queue! })
          : await api.queues.setRate.mutate({ queue: queue!, ...rate });
    print(answer, () =>
      answer.maxClaims === null
        ? `queue ${printable(answer.queue)} has no rate${answer.removedAt ? " (its tasks are being brought back, best first)" : ""}\n`
        : `queue ${printable(answer.queue)}: at most ${answer.maxClaims} claimed in any ${rateWindowText(answer.perMs!)} (${answer.used} in the window now${answer.nextClaimAt ? `; full until ${when(answer.nextClaimAt)}` : ""})\n`,
    );
    return 0;
  }
  if (command === "queues" && sub === "rates" && words.length === 2) {
    const rates = await api.queues.rates.query();
    print(rates, () =>
      rates.length === 0
        ? "no queue is rate-limited\n"
        : table(
            ["QUEUE", "RATE", "IN WINDOW", "ROOM AT", "SINCE", "BY"],
            rates.map((r) => [
              r.queue,
              r.maxClaims === null ? "removing" : `${r.maxClaims}/${rateWindowText(r.perMs!)}`,
              r.used === null ? "-" : String(r.used),
              r.nextClaimAt === null ? "-" : when(r.nextClaimAt),
              when(r.maxClaims === null ? r.removedAt : r.setAt),
              r.setBy ?? "-",
            ]),
          ),
    );
    return 0;
  }
  if (command === "queues" && (words.length === 1 || (sub === "paused" && words.length === 2))) {
    const pauses = await api.queues.paused.query();
    print(pauses, () =>
      pauses.length === 0
        ? "no queue is paused\n"
        : table(
            ["QUEUE", "STATE", "SINCE", "BY", "REASON"],
            pauses.map((p) => [p.queue, p.paused ? "paused" : "resuming", when(p.paused ? p.pausedAt : p.resumedAt), p.pausedBy ?? "-", p.reason || "-"]),
          ),
    );
    return 0;
  }
  if (command === "schedules") return await scheduleCommand(words, options, json, api, print);
  if (command === "tasks" && sub === "list" && words.length === 2) {
    // A filter given empty (--queue "$QUEUE" with QUEUE unset) goes to the server, which refuses
    // it naming the flag: left out, the list would have been every task's, filtered by nothing.
    const [status, queue, agentId, capability, dedupeKey, orderingKey, traceId, enqueuedBy] = ["--status", "--queue", "--agent", "--capability", "--dedupe-key", "--ordering-key", "--trace-id", "--enqueued-by"].map((flag) => str(options[flag]));
    const page = await api.tasks.list.query({
      ...(queue !== undefined ? { queue } : {}),
      ...(status !== undefined ? { status: status as never } : {}),
      ...(agentId !== undefined ? { agentId } : {}),
      ...(capability !== undefined ? { capability } : {}),
      ...(dedupeKey !== undefined ? { dedupeKey } : {}),
      ...(orderingKey !== undefined ? { orderingKey } : {}),
      ...(traceId !== undefined ? { traceId } : {}),
      ...(enqueuedBy !== undefined ? { enqueuedBy } : {}),
      limit: int(options["--limit"], "--limit") ?? 50,
      ...(str(options["--cursor"]) ? { cursor: str(options["--cursor"])! } : {}),
    });
    print(page, () =>
      table(
        ["ID", "QUEUE", "STATUS", "PRIORITY", "ATTEMPTS", "OWNER", "NEEDS", "RUN AT", "CREATED", "PROGRESS"],
        page.items.map((t) => [t.id, t.queue, t.status, String(t.priority), `${t.attempts}/${t.maxAttempts}`, t.leaseOwner ?? "-", needs(t), when(t.runAt), when(t.createdAt), progressText(t, 40)]),
      ) + (page.nextCursor ? `(more: --cursor ${page.nextCursor})\n` : ""),
    );
    return 0;
  }
  if (command === "tasks" && sub === "requeue" && words.length === 2 && options["--all"] === true) {
    const queue = str(options["--queue"]);
    const [after, before] = [str(options["--after"]), str(options["--before"])];
    // Pages of a thousand, each one write; the cursor keeps a task that fails for good again
    // while this runs from being brought back twice (and leaves one that fails for good behind
    // it meanwhile for the next run: "the dead letters there are when it starts").
    const requeued: string[] = [];
    await allPages(
      (cursor) =>
        api.tasks.requeueMany.mutate({
          ...(queue !== undefined ? { queue } : {}),
          ...(after !== undefined ? { finishedAfter: timeArg(after, "--after") } : {}),
          ...(before !== undefined ? { finishedBefore: timeArg(before, "--before") } : {}),
          limit: 1000,
          ...(cursor !== undefined ? { cursor } : {}),
          ...(options["--clear-checkpoint"] === true ? { checkpoint: null } : {}),
        }),
      (page) => page.requeued,
      requeued,
    );
    print({ requeued }, () => `requeued ${requeued.length} dead letters${queue === undefined ? "" : ` of queue ${printable(queue)}`}\n`);
    return 0;
  }
  if (command === "tasks" && sub === "cancel" && words.length === 2 && options["--all"] === true) {
    const queue = str(options["--queue"]);
    if (queue === undefined) throw new OperatorUsageError("tasks cancel --all needs --queue QUEUE: the queue whose tasks to cancel");
    const statusText = str(options["--status"]);
    const [after, before] = [str(options["--after"]), str(options["--before"])];
    const reason = str(options["--reason"]);
    const enqueuedBy = str(options["--enqueued-by"]);
    // Pages of a thousand, each one write; the cursor stops at the tasks there were when it
    // started (a schedule's next run, enqueued as its pending run is cancelled, is left alone).
    const cancelled: string[] = [];
    // A page that fails (the server restarts, say) ends the command: say what was done before it.
    const failed = (error: unknown): never => {
      if (cancelled.length > 0) out.stderr(`coordination: ${cancelled.length} ${cancelled.length === 1 ? "task was" : "tasks were"} cancelled before this error; run the command again to go on\n`);
      throw error;
    };
    await allPages(
      (cursor) =>
        api.tasks.cancelMany
          .mutate({
            queue,
            // The server names a state it does not take.
            ...(statusText !== undefined ? { statuses: statusText.split(",").map((status) => status.trim()) as Array<"pending"> } : {}),
            ...(enqueuedBy !== undefined ? { enqueuedBy } : {}),
            ...(after !== undefined ? { createdAfter: timeArg(after, "--after") } : {}),
            ...(before !== undefined ? { createdBefore: timeArg(before, "--before") } : {}),
            ...(reason !== undefined ? { reason } : {}),
            limit: 1000,
            ...(cursor !== undefined ? { cursor } : {}),
          })
          .catch(failed),
      (page) => page.cancelled,
      cancelled,
    );
    print({ cancelled }, () => `cancelled ${cancelled.length} ${cancelled.length === 1 ? "task" : "tasks"} of queue ${printable(queue)}${enqueuedBy === undefined ? "" : ` enqueued by ${printable(enqueuedBy)}`} (and any waiting on them)\n`);
    return 0;
  }
  if (command === "tasks" && sub === "enqueue") {
    if (words.length > 2) throw new OperatorUsageError(`tasks enqueue takes no TASK_ID (got ${printable(words.slice(2).join(" "))}): the server names the task`);
    const timeout = str(options["--timeout"]);
    if (timeout !== undefined && parseDuration(timeout) === undefined) throw new OperatorUsageError(`--timeout ${JSON.stringify(timeout)} is not a duration (30s, 5m, 1h, 1d)`);
    const answer = await api.tasks.enqueue.mutate(enqueueOf(options));
    const note = await deadLetteredNote(api, answer);
    if (options["--wait"] !== true) {
      print(answer, () => enqueuedText(answer));
      if (note !== undefined) out.stderr(note);
      return 0;
    }
    // Then as `tasks wait ID`: its output on stdout, its exit code; what was enqueued on stderr.
    out.stderr(enqueuedText(answer));
    if (note !== undefined) out.stderr(note);
    return await dispatch(["tasks", "wait", answer.id], timeout === undefined ? {} : { "--timeout": timeout }, json, client, out, stop);
  }
  if (command === "memory") return await memoryCommand(api, words.slice(1), options, print);
  if (command === "events" && sub === "publish") {
    if (words.length !== 3) throw new OperatorUsageError(`events publish takes one TYPE (got ${words.length - 2})`);
    const event = await api.events.publish.mutate(publishOf(words[2]!, options));
    print(event, () => publishedText(event));
    return 0;
  }
  if (command === "tasks" && (sub === "get" || sub === "requeue" || sub === "promote" || sub === "update" || sub === "cancel" || sub === "wait" || sub === "logs") && words.length === 2) throw new OperatorUsageError(`tasks ${sub} needs a TASK_ID`);
  if (command === "tasks" && sub === "logs") {
    if (words.length !== 3) throw new OperatorUsageError(`tasks logs takes one TASK_ID (got ${words.length - 2})`);
    return await taskLogs(api, id!, options, json, out, stop);
  }
  if (command === "tasks" && sub === "wait" && (words.length > 3 || options["--any"] === true)) {
    const timeout = str(options["--timeout"]);
    if (timeout !== undefined && parseDuration(timeout) === undefined) throw new OperatorUsageError(`--timeout ${JSON.stringify(timeout)} is not a duration (30s, 5m, 1h, 1d)`);
    return await waitForTasks(api, words.slice(2), options["--any"] === true ? "any" : "all", timeout, stop, out, print);
  }
  if (command === "tasks" && (sub === "get" || sub === "requeue" || sub === "promote" || sub === "update" || sub === "cancel" || sub === "wait") && words.length === 3) {
    const taskId = id!;
    const reason = str(options["--reason"]);
    const timeout = str(options["--timeout"]);
    const timeoutMs = timeout === undefined ? undefined : parseDuration(timeout);
    if (timeout !== undefined && timeoutMs === undefined) throw new OperatorUsageError(`--timeout ${JSON.stringify(timeout)} is not a duration (30s, 5m, 1h, 1d)`);
    const task =
      sub === "get"
        ? await api.tasks.get.query({ taskId })
        : sub === "wait"
          ? await waitForTask(api, taskId, timeoutMs, stop, out.stderr)
          : sub === "requeue"
            ? await api.tasks.requeue.mutate(options["--clear-checkpoint"] === true ? { taskId, checkpoint: null } : { taskId })
            : sub === "promote"
            ? await api.tasks.promote.mutate({ taskId })
            : sub === "update"
            ? await api.tasks.update.mutate(taskUpdateOf(taskId, options))
            : await api.tasks.cancel.mutate(reason === undefined ? { taskId } : { taskId, reason });
    if (task === undefined) {
      // Not "task … not seen", as if there were none: it exists (an enqueue --wait printed it); it was not seen settled.
      out.stderr(`coordination: interrupted before the server answered: task ${printable(taskId)} not seen settled (tasks get ${printable(taskId)}: where it is now)\n`);
      return 4;
    }
    // What a waiting task waits for: each dependency's state now, for the table only (--json has
    // the ids; dependsOn is absent from a server older than this CLI). Ten at a time: a lookup
    // carries the dependency's payload and result. A dependency not found was deleted by
    // retention; any other refusal fails the command, rather than call the chain broken.
    const dependencies: string[] = [];
    const ids = json ? [] : (task.dependsOn ?? []);
    for (let i = 0; i < ids.length; i += 10) {
      const states = await Promise.all(
        ids.slice(i, i + 10).map((id) =>
          api.tasks.get.query({ taskId: id }).then(
            (d) => d.status as string,
            (error: unknown) => {
              if (isTRPCClientError(error) && (error.data as { code?: string } | undefined)?.code === "TASK_NOT_FOUND") return "deleted";
              throw error;
            },
          ),
        ),
      );
      states.forEach((state, j) => dependencies.push(`${ids[i + j]} (${state})`));
    }
    print(task, () =>
      table(
        ["FIELD", "VALUE"],
        [
          ["id", task.id],
          ["queue", task.queue],
          ["status", task.status],
          ["priority", String(task.priority)],
          ["attempts", `${task.attempts}/${task.maxAttempts}`],
          // How long a failed run waits before a retry (absent from a server older than this CLI).
          ["retry backoff", backoffText((task as { backoff?: BackoffShape | null }).backoff)],
          // How long one run may last (absent from a server older than this CLI).
          ["run limit", runLimitText(task as { maxRunMs?: number | null; runDeadlineAt?: Date | null }, when)],
          // What a claimer must be or offer: why a pending task may sit unclaimed.
          ["capability", task.capability ?? "-"],
          ["target agent", task.targetAgentId ?? "-"],
          ["run at", when(task.runAt)],
          // No run starts after it (absent from a server older than this CLI; null: never).
          ["expires at", (task as { expiresAt?: Date | null }).expiresAt ? when((task as { expiresAt: Date }).expiresAt) : "never"],
          // Later enqueues answered with it (absent from a server older than this CLI).
          ["dedupe", dedupeText(task as { dedupeKey?: string | null; duplicates?: number; replacedAt?: Date | null }, when)],
          // Its key's line: why a task with no dependency waits (absent from a server older than this CLI).
          ["ordering key", orderingKeyText(task as { orderingKey?: string | null; status: string; dependsOn: string[] })],
          // A settled task keeps its last holder's name, not a lease.
          ["lease", task.status === "claimed" ? `${task.leaseOwner} (token ${task.leaseToken}, until ${when(task.leaseExpiresAt)})` : "-"],
          ["last holder", task.status !== "claimed" && task.leaseOwner ? `${task.leaseOwner} (token ${task.leaseToken})` : "-"],
          ["payload", shownValue(JSON.stringify(task.payload))],
          ["result", shownValue(JSON.stringify(task.result))],
          ["last error", task.lastError === null ? "-" : shownValue(task.lastError)],
          ["progress", task.progressAt ? `${progressText(task)}, reported ${when(task.progressAt)}` : "-"],
          // What its next run goes on from (absent from a server older than this CLI).
          ["checkpoint", checkpointText(task as { checkpoint?: unknown; checkpointAt?: Date | null }, when)],
          // The trace it was enqueued in, by the id a tracing UI finds it by (absent from a server older than this CLI).
          ["trace", traceText(task as { traceparent?: string | null })],
          // Its W3C Baggage, printable ASCII by its grammar (absent from a server older than this CLI; null: none).
          ["baggage", (task as { baggage?: string | null }).baggage ?? "-"],
          // The agent whose credential asked for it, which may cancel it (absent from a server older than this CLI; null: none).
          ["enqueued by", (task as { enqueuedBy?: string | null }).enqueuedBy ?? "-"],
          // A schedule's run (absent from a server older than this CLI; null: none). Without it the
          // table could not tell a run from a task enqueued by a call: one waiting its key's turn, or
          // one whose cancel skips a run and enqueues the schedule's next, looked like any other.
          ...(task.scheduleId ? [["schedule", `${printable(task.scheduleId)} (a run of it)`] as [string, string]] : []),
          ...(dependencies.length === 0 ? [] : [["depends on", dependencies.join(", ")] as [string, string]]),
          // What one of them dead-lettered does to it (absent from a server older than this CLI).
          ...(dependencies.length === 0 || task.onDependencyFailure === undefined
            ? []
            : [["dependency failure", task.onDependencyFailure === "cancel" ? "a dependency dead-lettered cancels it" : "waits for a dead-lettered dependency's requeue"] as [string, string]]),
          ["created", when(task.createdAt)],
          ["finished", when(task.finishedAt)],
        ],
      ),
    );
    if (sub !== "wait" || task.status === "completed") return 0;
    const settled = SETTLED.has(task.status);
    out.stderr(`coordination: task ${printable(taskId)} ${settled ? `was ${task.status === "cancelled" ? "cancelled" : "dead-lettered"}` : `had not settled ${stop?.aborted ? "when interrupted" : `in ${timeout}`} (it is ${task.status})`}\n`);
    return settled ? 3 : 4;
  }
  if (command === "agents" && words.length === 1) {
    const health = str(options["--health"]);
    const agents = await everyAgent(api, {
      ...(str(options["--capability"]) ? { capability: str(options["--capability"])! } : {}),
      ...(health ? { health: health as never } : {}),
      ...(options["--cordoned"] === true ? { cordoned: true } : {}),
    });
    print(agents, () =>
      table(
        ["AGENT", "HEALTH", "STATUS", "LOAD", "CAPABILITIES", "LAST HEARTBEAT", "CORDONED"],
        agents.map((a) => [a.agentId, a.health, a.status, String(a.load), a.capabilities.join(",") || "-", when(a.lastHeartbeatAt), cordonText(a)]),
      ),
    );
    return 0;
  }
  if (command === "agents" && (sub === "cordon" || sub === "uncordon")) {
    if (words.length !== 3) throw new OperatorUsageError(`agents ${sub} ${words.length < 3 ? "needs an AGENT_ID" : `takes one AGENT_ID (got ${words.length - 2})`}`);
    const reason = str(options["--reason"]);
    const forMs = durationOption(options["--for"], "--for", 1000, MAX_CORDON_MS, "from 1s to 366d, such as 30m, 2h or 1d");
    const agent =
      sub === "cordon"
        ? await api.agents.cordon.mutate({ agentId: id!, ...(reason === undefined ? {} : { reason }), ...(forMs === undefined ? {} : { forMs }) })
        : await api.agents.uncordon.mutate({ agentId: id! });
    print(agent, () => (agent.cordon === null ? `agent ${printable(agent.agentId)} takes tasks\n` : `agent ${printable(agent.agentId)} cordoned: ${printable(cordonText(agent))}\n`));
    return 0;
  }
  if (command === "agents" && sub === "why-idle") {
    if (words.length !== 3) throw new OperatorUsageError(`agents why-idle ${words.length < 3 ? "needs an AGENT_ID" : `takes one AGENT_ID (got ${words.length - 2})`}`);
    const queues = listOption(options["--queue"]);
    const capabilities = listOption(options["--capability"]);
    const outlook = await api.tasks.claimOutlook.query({ agentId: id!, ...(queues === undefined ? {} : { queues }), ...(capabilities === undefined ? {} : { capabilities }) });
    // The outlook is the queues' side; a cordon (the agent's own record) keeps every task from it
    // whatever they hold. An agent never registered has none (its first claim registers it).
    const agent = await api.agents.get.query({ agentId: id! }).catch((error: unknown) => {
      if (isTRPCClientError(error) && (error.data as { code?: string } | undefined)?.code === "AGENT_NOT_FOUND") return null;
      throw error;
    });
    const reasons = claimOutlookReasons(outlook);
    // Tasks waiting for their dependencies or their turn are in no claim's reach, so the outlook
    // does not look at them: said beside it, a workflow's next step waiting on its inputs does not
    // read as "its queues hold no task for it".
    const waiting = agent?.cordon ? 0 : await waitingIn(api, queues);
    if (waiting > 0) {
      reasons.push(`${waiting} ${waiting === 1 ? "task" : "tasks"} of ${queues === undefined ? "the queues" : "its queues"} ${waiting === 1 ? "waits" : "wait"} for ${waiting === 1 ? "its" : "their"} dependencies to complete or for ${waiting === 1 ? "its" : "their"} turn behind a task of ${waiting === 1 ? "its" : "their"} ordering key (tasks list --status waiting): no claim takes ${waiting === 1 ? "it" : "them"} until then`);
    }
    const name = printable(id!);
    const lines = (items: string[]) => items.map((reason) => `  - ${printable(reason)}\n`).join("");
    print(outlook, () => {
      if (agent?.cordon) return `agent ${name} takes no task while it is cordoned (${printable(cordonText(agent))}): no claim hands it one, whatever waits\n`;
      if (outlook.claimable) {
        return `agent ${name} may take a task now: its claim would be handed one (an idle agent with work waiting for it is not claiming)\n${reasons.length === 0 ? "" : `  other tasks wait that it may not take now:\n${lines(reasons)}`}`;
      }
      return reasons.length === 0 ? `agent ${name}: nothing waits that its claims could take (its queues hold no task for it)\n` : `agent ${name} takes no task now, though work waits:\n${lines(reasons)}`;
    });
    return 0;
  }
  if (command === "agents" && sub === "drain") {
    if (words.length !== 3) throw new OperatorUsageError(`agents drain ${words.length < 3 ? "needs an AGENT_ID" : `takes one AGENT_ID (got ${words.length - 2})`}`);
    return await drainAgent(api, id!, options, stop, out, print);
  }
  if (command === "locks") return await lockCommand(words, options, api, print);
  if (command === "semaphores") return await semaphoreCommand(words, options, api, print);
  if (command === "webhooks") return await webhookCommand(words, options, api, print, out);
  if (command === "kv") return await kvCommand(words, options, api, print, out, json, stop);
  if (command === "events" && sub === "tail" && words.length === 2) {
    const types = listOption(options["--types"]);
    const from = str(options["--from"]);
    if (from !== undefined) int(from, "--from");
    // One HTTP call first: an unreachable server or a refused token is said as for every other
    // command, where the WebSocket would only retry in silence.
    // Without --from (and --agent, whose stream starts with the agent's unread mailbox), from the
    // head as it is now: the stream then resumes from there when it reconnects before printing
    // anything, rather than from a later head, losing what came between.
    const { head } = await api.events.head.query();
    const agent = str(options["--agent"]);
    const start = from ?? (agent === undefined ? String(head) : undefined);
    return await new Promise<number>((resolve) => {
      const subscription = api.events.onEvent.subscribe(
        { ...(types ? { types } : {}), ...(agent ? { agentId: agent } : {}), ...(start !== undefined ? { lastEventId: start } : {}) },
        {
          onData: ({ data: e }) =>
            out.stdout(json ? `${printableJson(e, 0)}\n` : `${String(e.seq).padStart(8)}  ${when(e.createdAt)}  ${printable(`${e.type}  ${e.source}${e.target ? ` → ${e.target}` : ""}  ${JSON.stringify(e.payload)}`)}\n`),
          onError: (error) => {
            const data = error.data as TailErrorData | undefined;
            out.stderr(`coordination: ${data?.code ?? "ERROR"}: ${printable(fromProblem(from, data, error.message))}\n`);
            resolve(1);
          },
        },
      );
      stop?.addEventListener("abort", () => {
        subscription.unsubscribe();
        resolve(0);
      });
    });
  }
  throw new OperatorUsageError(command === undefined ? "which command?" : `unknown command "${words.join(" ")}"`);
}

/** How many tasks of `queues` (left out: of every queue) wait for their dependencies or their turn (tasks.stats' waiting): no claim takes them yet. */
async function waitingIn(api: CoordinationClient["api"], queues: readonly string[] | undefined): Promise<number> {
  // Absent from a server older than this CLI: none said.
  if (queues === undefined) return (await api.tasks.stats.query()).totals.waiting ?? 0;
  // A queue named twice (--queue a,a) is one queue: counted once.
  const counts = await Promise.all([...new Set(queues)].map(async (queue) => (await api.tasks.stats.query({ queue })).queues[0]?.counts.waiting ?? 0));
  return counts.reduce((sum, n) => sum + n, 0);
}

/**
 * Every agent that matches, page by page in agentId order: one answer may hold at most the
 * server's maxResponseBytes, so a page the server refuses as too large is asked again with as
 * many agents as it said fit.
 */
async function everyAgent(api: CoordinationClient["api"], filter: Omit<RouterInputs["agents"]["list"], "limit" | "after">): Promise<RouterOutputs["agents"]["list"]> {
  const agents: RouterOutputs["agents"]["list"] = [];
  let limit = 1000;
  for (;;) {
    const after = agents.at(-1)?.agentId;
    let page: RouterOutputs["agents"]["list"];
    try {
      page = await api.agents.list.query({ ...filter, limit, ...(after === undefined ? {} : { after }) });
    } catch (error) {
      const fits = fitsInAnswer(error);
      if (fits === undefined || fits >= limit) throw error;
      limit = fits;
      continue;
    }
    agents.push(...page);
    if (page.length < limit) return agents;
  }
}

/** "N/WINDOW" as a rate the server takes (client/rate-window.ts); a usage error naming what is wrong otherwise. */
function serverRate(text: string): { maxClaims: number; perMs: number } {
  const rate = parseRate(text);
  if (rate === undefined) throw new OperatorUsageError(`queues rate takes N/WINDOW (60/1m, 10/1s, 500/90s, 20/500ms; units ms, s, m, h, d), or off: not ${JSON.stringify(printable(text))}`);
  if (rate.maxClaims > MAX_CLAIMS_PER_WINDOW) throw new OperatorUsageError(`queues rate: N, the most claims in a window, is 1 to 1,000,000: not ${rate.maxClaims}`);
  if (rate.perMs < MIN_RATE_WINDOW_MS || rate.perMs > MAX_RATE_WINDOW_MS) throw new OperatorUsageError(`queues rate: the window is 100ms to 1d: not ${rateWindowText(rate.perMs)}`);
  return rate;
}

/**
 * A time in UTC, and in `timezone` too when the schedule reads its pattern in another zone. A zone
 * the Node running this command does not know (the server's is newer: tzdata adds zones) is named
 * beside the UTC time, not read: thrown, the command that set, paused or showed the schedule
 * ended in a stack trace and exit 1 after the server had done what it asked.
 */
const zoned = (date: Date, timezone: string | null): string => {
  if (timezone === null || timezone === "UTC") return `${utc(date)} UTC`;
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  } catch {
    return `${utc(date)} UTC (in ${printable(timezone)}, a time zone this machine does not know)`;
  }
  return `${utc(date)} UTC, ${format.format(date).replace(",", "")} ${timezone}`;
};

/** A schedule's timing as an operator reads it: its cron pattern and zone, or "every 10m". */
const timingText = (s: { cron: string | null; timezone: string | null; everyMs: number | null }): string => (s.cron === null ? `every ${rateWindowText(s.everyMs!)}` : `${s.cron} (${s.timezone})`);

/** What bounds a schedule's runs, and its overlap when it skips: ", from 2026-12-01 00:00:00 UTC, until 2027-01-01 00:00:00 UTC, 10 runs at most, skips while a run runs". */
const boundsText = (s: { startAt: Date | null; endAt: Date | null; maxRuns: number | null; overlap: "allow" | "skip"; task: { ttlMs?: number | null; maxRunMs?: number | null } }): string =>
  [
    // Part of the definition as much as endAt is: no run before it, and an interval's phase. Left
    // unshown, an operator setting the schedule again from what `schedules get` says drops it
    // ("set again, what it is not given is left out"), which moves every run of an interval.
    s.startAt === null ? "" : `, from ${utc(s.startAt)} UTC`,
    s.endAt === null ? "" : `, until ${utc(s.endAt)} UTC`,
    s.maxRuns === null ? "" : `, ${s.maxRuns} run${s.maxRuns === 1 ? "" : "s"} at most`,
    s.overlap === "skip" ? ", skips while a run runs" : "",
    // Absent from a server older than task expiry.
    s.task.ttlMs === null || s.task.ttlMs === undefined ? "" : `, a run not started ${rateWindowText(s.task.ttlMs)} after its time skipped`,
    // Absent from a server older than run time limits; null: the server's when each run is enqueued.
    s.task.maxRunMs === null || s.task.maxRunMs === undefined ? "" : `, each run ${rateWindowText(s.task.maxRunMs)} at most`,
  ].join("");

/**
 * What else a schedule's runs are enqueued with, after its task's queue, priority and payload:
 * ', capability gpu, agent worker-1, 5 attempts, key "repo:1"' (', key "t", 2 at a time'); "" with
 * none. A field from a server older than it is absent, as one not set.
 */
const runFieldsOf = (task: { capability: string | null; targetAgentId: string | null; maxAttempts: number | null; orderingKey?: string | null; keyConcurrency?: number | null }): string =>
  [
    task.capability === null && task.targetAgentId === null ? "" : `, ${printable(needs(task))}`,
    task.maxAttempts === null ? "" : `, ${task.maxAttempts} attempt${task.maxAttempts === 1 ? "" : "s"}`,
    task.orderingKey === null || task.orderingKey === undefined ? "" : `, ${printable(orderingKeyText({ orderingKey: task.orderingKey, keyConcurrency: task.keyConcurrency ?? 1, status: "pending", dependsOn: [] }))}`,
  ].join("");

/** A schedule's next run as an operator reads it: its time and task; the time it waits for its last run to settle; or none, and why. */
const nextRunText = (s: RouterOutputs["schedules"]["get"], inLine = false): string => {
  if (s.state === "paused") return "none while paused";
  // A keyed run due (or not yet) that waits behind its key's tasks: its time is when it may start at the earliest.
  if (s.state === "running" && inLine) return `${zoned(s.nextRunAt!, s.timezone)} (task ${s.nextTaskId}), at the earliest: it waits for the tasks of its key before it to settle`;
  if (s.state === "running") return `${zoned(s.nextRunAt!, s.timezone)} (task ${s.nextTaskId})`;
  if (s.state === "waiting") return `${zoned(s.nextRunAt!, s.timezone)} at the earliest, once task ${s.lastTaskId} settles`;
  return s.maxRuns !== null && s.runs >= s.maxRuns ? "none: it had its maxRuns" : s.endAt !== null ? "none: its next time is past its endAt" : "none: its pattern names no time ahead";
};

/** `coordination schedules …`: list, set, get, remove, pause, resume. */
async function scheduleCommand(words: string[], options: Parsed["options"], json: boolean, api: CoordinationClient["api"], print: (value: unknown, render: () => string) => void): Promise<number> {
  const [, given, name] = words;
  // `schedules list` is `schedules`, as `tasks list` is `tasks`.
  const sub = given === "list" && name === undefined ? undefined : given;
  const render = (s: RouterOutputs["schedules"]["get"], inLine = false) => () =>
    [
      `schedule ${printable(s.id)}: ${printable(timingText(s))}${s.paused ? ", paused" : ""}${boundsText(s)}`,
      `  task      queue ${printable(s.task.queue)}, priority ${s.task.priority}, payload ${shownValue(printableJson(s.task.payload, 0))}${runFieldsOf(s.task)}`,
      `  next run  ${nextRunText(s, inLine)}`,
      `  runs      ${s.runs}${s.lastRunAt === null ? "" : `, the last claimed ${utc(s.lastRunAt)} UTC (task ${s.lastTaskId})`}`,
      "",
    ].join("\n");
  if (sub === undefined) {
    const queue = str(options["--queue"]);
    // Every page: a page holds 1,000 at most, fewer when their answer would pass maxResponseBytes
    // (large payloads), and this command has no cursor to give (it said to use one).
    const items: RouterOutputs["schedules"]["list"]["items"] = [];
    await allPages(
      (cursor) => api.schedules.list.query({ limit: 1000, ...(queue === undefined ? {} : { queue }), ...(cursor === undefined ? {} : { cursor }) }),
      (page) => page.items,
      items,
    );
    print({ items, nextCursor: null }, () =>
      items.length === 0
        ? "no schedule\n"
        : table(
            ["SCHEDULE", "WHEN", "QUEUE", "NEXT RUN (UTC)", "RUNS"],
            items.map((s) => [s.id, timingText(s), s.task.queue, s.state === "paused" || s.state === "ended" ? s.state : `${utc(s.nextRunAt)}${s.state === "waiting" ? " (waits)" : ""}`, String(s.runs)]),
          ),
    );
    return 0;
  }
  if (name === undefined) throw new OperatorUsageError(`schedules ${sub} needs a NAME`);
  // An unquoted pattern is words of its own: `--cron 0 9 * * *` leaves "9 * * *" after the NAME.
  if (words.length > 3) throw new OperatorUsageError(`schedules ${sub} takes one NAME, not ${words.length - 2} words${sub === "set" ? ": quote the cron pattern (--cron '0 9 * * *')" : ""}`);
  if (sub === "set") {
    const every = str(options["--every"]);
    const everyMs = every === undefined ? undefined : parseDuration(every);
    if (every !== undefined && everyMs === undefined) throw new OperatorUsageError(`--every must be a length of time such as 10s, 5m, 1h or 1d (got ${JSON.stringify(every)})`);
    if (everyMs !== undefined && (everyMs < MIN_EVERY_MS || everyMs > MAX_EVERY_MS)) throw new OperatorUsageError(`--every is ${rateWindowText(MIN_EVERY_MS)} to ${rateWindowText(MAX_EVERY_MS)}: not ${every}`);
    const priority = int(options["--priority"], "--priority");
    const cron = str(options["--cron"]);
    const timezone = str(options["--timezone"]);
    const start = str(options["--start"]);
    const end = str(options["--end"]);
    const maxRuns = int(options["--max-runs"], "--max-runs");
    const overlapText = str(options["--overlap"]);
    if (options["--overlap"] !== undefined && overlapText !== "allow" && overlapText !== "skip") throw new OperatorUsageError(`--overlap is allow or skip (got ${JSON.stringify(overlapText ?? "")})`);
    const overlap = overlapText as "allow" | "skip" | undefined;
    const ttlMs = durationOption(options["--ttl"], "--ttl", 1, Number.POSITIVE_INFINITY, "such as 30s, 5m or 1h");
    const maxRunMs = durationOption(options["--max-run"], "--max-run", 1, MAX_RUN_MS, "from 1ms to 366d, such as 30s, 10m or 2h");
    const payload = jsonOption(options["--payload"], "--payload") ?? {};
    const queue = str(options["--queue"]);
    const orderingKey = str(options["--ordering-key"]);
    const keyConcurrency = int(options["--key-concurrency"], "--key-concurrency");
    const capability = str(options["--capability"]);
    const targetAgentId = str(options["--target"]);
    const maxAttempts = int(options["--max-attempts"], "--max-attempts");
    const answer = await api.schedules.set.mutate({
      scheduleId: name,
      ...(cron === undefined ? {} : { cron }),
      ...(timezone === undefined ? {} : { timezone }),
      ...(everyMs === undefined ? {} : { everyMs }),
      ...(start === undefined ? {} : { startAt: timeArg(start, "--start") }),
      ...(end === undefined ? {} : { endAt: timeArg(end, "--end") }),
      ...(maxRuns === undefined ? {} : { maxRuns }),
      ...(overlap === undefined ? {} : { overlap }),
      task: { payload, ...(queue === undefined ? {} : { queue }), ...(priority === undefined ? {} : { priority }), ...(ttlMs === undefined ? {} : { ttlMs }), ...(maxRunMs === undefined ? {} : { maxRunMs }), ...(orderingKey === undefined ? {} : { orderingKey }), ...(keyConcurrency === undefined ? {} : { keyConcurrency }), ...(capability === undefined ? {} : { capability }), ...(targetAgentId === undefined ? {} : { targetAgentId }), ...(maxAttempts === undefined ? {} : { maxAttempts }) },
    });
    print(answer, () => `${answer.created ? "created" : answer.changed ? "changed" : "unchanged"}: ${render(answer.schedule)()}`);
    return 0;
  }
  if (sub === "trigger") {
    const answer = await api.schedules.trigger.mutate({ scheduleId: name });
    // A run behind its ordering key is due now and still waits for the key's tasks before it.
    const turn = answer.task.status === "waiting" ? ", and starts once the tasks of its key before it have settled" : "";
    print(answer, () => `triggered: task ${answer.task.id} is due now${turn}\n${render(answer.schedule)()}`);
    return 0;
  }
  const schedule =
    sub === "get"
      ? await api.schedules.get.query({ scheduleId: name })
      : sub === "remove"
        ? await api.schedules.remove.mutate({ scheduleId: name })
        : sub === "pause"
          ? await api.schedules.pause.mutate({ scheduleId: name })
          : sub === "resume"
            ? await api.schedules.resume.mutate({ scheduleId: name })
            : undefined;
  if (schedule === undefined) throw new OperatorUsageError(`unknown command "schedules ${sub}"`);
  // Whether a keyed next run waits in its key's line (the schedule's answer does not carry its run's
  // status): asked for the table of `get` only. A run gone meanwhile (claimed, settled, retention) is not waiting.
  const keyed = sub === "get" && !json && schedule.state === "running" && (schedule.task.orderingKey ?? null) !== null && schedule.nextTaskId !== null;
  const inLine = keyed && (await api.tasks.get.query({ taskId: schedule.nextTaskId! }).then((run) => run.status === "waiting", (error: unknown) => {
    if (isTRPCClientError(error) && (error.data as { code?: string } | undefined)?.code === "TASK_NOT_FOUND") return false;
    throw error;
  }));
  print(schedule, sub === "remove" ? () => `removed: ${render(schedule)()}` : render(schedule, inLine));
  return 0;
}

/** `locks`, `locks get NAME`, `locks force-release NAME`: the named locks held, one of them, an operator's release. */
async function lockCommand(words: string[], options: Parsed["options"], api: CoordinationClient["api"], print: (value: unknown, render: () => string) => void): Promise<number> {
  const [, sub, name] = words;
  const line = (lock: RouterOutputs["locks"]["get"]) =>
    lock.held ? `lock ${printable(lock.name)} held by ${printable(lock.holder!)} (fencing token ${lock.fencingToken}) since ${when(lock.acquiredAt)}, until ${when(lock.expiresAt)}\n` : `lock ${printable(lock.name)} is free\n`;
  if (sub === undefined || (sub === "list" && words.length === 2)) {
    const holder = str(options["--holder"]);
    const prefix = str(options["--prefix"]);
    const locks: RouterOutputs["locks"]["list"]["items"] = [];
    await allPages(
      (after) => api.locks.list.query({ limit: 1000, ...(holder === undefined ? {} : { holder }), ...(prefix === undefined ? {} : { prefix }), ...(after === undefined ? {} : { after }) }),
      (page) => page.items,
      locks,
    );
    print(locks, () => table(["LOCK", "HOLDER", "FENCING TOKEN", "ACQUIRED", "EXPIRES"], locks.map((lock) => [lock.name, lock.holder!, String(lock.fencingToken), when(lock.acquiredAt), when(lock.expiresAt)])));
    return 0;
  }
  if (sub !== "get" && sub !== "force-release") throw new OperatorUsageError(`unknown command "${words.join(" ")}"`);
  if (words.length !== 3) throw new OperatorUsageError(`locks ${sub} ${words.length < 3 ? "needs a NAME" : `takes one NAME (got ${words.length - 2})`}`);
  if (sub === "get") {
    const lock = await api.locks.get.query({ name: name! });
    print(lock, () => line(lock));
    return 0;
  }
  const reason = str(options["--reason"]);
  const answer = await api.locks.forceRelease.mutate({ name: name!, ...(reason === undefined ? {} : { reason }) });
  print(answer, () =>
    answer.released ? `lock ${printable(name!)} released (it was held by ${printable(answer.holder!)}, fencing token ${answer.fencingToken})\n` : `lock ${printable(name!)} was free: nothing changed\n`,
  );
  return 0;
}

/** `semaphores`, `semaphores get NAME`, `semaphores force-release NAME`: the permits held, one semaphore, an operator's release. */
async function semaphoreCommand(words: string[], options: Parsed["options"], api: CoordinationClient["api"], print: (value: unknown, render: () => string) => void): Promise<number> {
  const [, sub, name] = words;
  const permitTable = (permits: RouterOutputs["semaphores"]["list"]["items"]) =>
    table(
      ["SEMAPHORE", "HOLDER", "FENCING TOKEN", "LIMIT", "ACQUIRED", "EXPIRES"],
      permits.map((permit) => [permit.name, permit.holder, String(permit.fencingToken), String(permit.limit), when(permit.acquiredAt), when(permit.expiresAt)]),
    );
  if (sub === undefined || (sub === "list" && words.length === 2)) {
    const holder = str(options["--holder"]);
    const prefix = str(options["--prefix"]);
    const permits: RouterOutputs["semaphores"]["list"]["items"] = [];
    await allPages(
      (cursor) => api.semaphores.list.query({ limit: 1000, ...(holder === undefined ? {} : { holder }), ...(prefix === undefined ? {} : { prefix }), ...(cursor === undefined ? {} : { cursor }) }),
      (page) => page.items,
      permits,
    );
    print(permits, () => permitTable(permits));
    return 0;
  }
  if (sub !== "get" && sub !== "force-release") throw new OperatorUsageError(`unknown command "${words.join(" ")}"`);
  if (words.length !== 3) throw new OperatorUsageError(`semaphores ${sub} ${words.length < 3 ? "needs a NAME" : `takes one NAME (got ${words.length - 2})`}`);
  if (sub === "get") {
    const semaphore = await api.semaphores.get.query({ name: name! });
    print(semaphore, () => {
      if (semaphore.held === 0) return `semaphore ${printable(semaphore.name)}: no permit held\n`;
      const omitted = semaphore.permitsOmitted > 0 ? ` (${semaphore.permitsOmitted} more not shown: semaphores list --prefix)` : "";
      return `semaphore ${printable(semaphore.name)}: ${semaphore.held} of ${semaphore.limit} held${omitted}\n${permitTable(semaphore.permits)}`;
    });
    return 0;
  }
  // Fencing tokens start at 1: 0 and below name no permit, and are refused here as the server would.
  const fencingToken = int(options["--fencing-token"], "--fencing-token", 1);
  const reason = str(options["--reason"]);
  const answer = await api.semaphores.forceRelease.mutate({ name: name!, ...(fencingToken === undefined ? {} : { fencingToken }), ...(reason === undefined ? {} : { reason }) });
  print(answer, () =>
    answer.released > 0
      ? `semaphore ${printable(name!)}: ${answer.released} permit${answer.released === 1 ? "" : "s"} released; ${answer.semaphore.held} held now\n`
      : `semaphore ${printable(name!)}: no permit ${fencingToken === undefined ? "was held" : `held under fencing token ${fencingToken}`}: nothing changed\n`,
  );
  return 0;
}

/** An agent's cordon as the CLI shows it: "-" for none; else since when, until when and why. */
function cordonText(agent: { cordon?: { reason: string | null; cordonedAt: Date; until: Date | null; automatic: boolean } | null }): string {
  const cordon = agent.cordon;
  // Absent from a server older than this CLI: none it knows of.
  if (!cordon) return "-";
  const until = cordon.until === null ? "until uncordoned" : `until ${when(cordon.until)}`;
  return `since ${when(cordon.cordonedAt)}, ${until}${cordon.automatic ? " (automatic)" : ""}${cordon.reason ? `: ${cordon.reason}` : ""}`;
}

/** A webhook's state, as text to print (`printable`: its disabledReason holds a receiver's answer). */
const webhookState = (webhook: RouterOutputs["webhooks"]["get"]): string => webhookStateText(webhook, when);

/** `webhooks`, `webhooks add URL`, `webhooks get|update|skip|remove|enable|disable|rotate-secret ID`: an operator's webhooks. */
async function webhookCommand(
  words: string[],
  options: Parsed["options"],
  api: CoordinationClient["api"],
  print: (value: unknown, render: () => string) => void,
  out: { stderr: (text: string) => void },
): Promise<number> {
  const [, sub, id] = words;
  const detail = (webhook: RouterOutputs["webhooks"]["get"]) =>
    [
      `webhook ${webhook.id}: ${printable(webhook.url)}`,
      `  types: ${webhook.types.join(", ")}${webhook.description === null ? "" : `; ${printable(webhook.description)}`}`,
      `  ${printable(webhookState(webhook))}; ${webhook.delivered} delivered, at seq ${webhook.cursor}${webhook.gaps > 0 ? `, ${webhook.gaps} gaps (events pruned before delivery)` : ""}`,
      ...(webhook.lastError === null ? [] : [`  last error: ${printable(webhook.lastError)}`]),
    ].join("\n") + "\n";
  if (sub === undefined || (sub === "list" && words.length === 2)) {
    const { webhooks } = await api.webhooks.list.query();
    print(webhooks, () =>
      table(
        ["ID", "URL", "TYPES", "STATE", "DELIVERED", "AT SEQ", "LAST ERROR"],
        webhooks.map((w) => [w.id, w.url, w.types.join(","), webhookState(w), String(w.delivered), String(w.cursor), w.lastError ?? "-"]),
      ),
    );
    return 0;
  }
  if (sub === "add") {
    if (words.length !== 3) throw new OperatorUsageError(`webhooks add ${words.length < 3 ? "needs a URL" : `takes one URL (got ${words.length - 2})`}`);
    const types = listOption(options["--types"]);
    if (types === undefined || types.length === 0) throw new OperatorUsageError("webhooks add needs --types: the events to send, such as 'task.dead_lettered,build.*' or '*'");
    const description = str(options["--description"]);
    const fromSeq = int(options["--from"], "--from");
    const created = await api.webhooks.create.mutate({ url: id!, types, ...(description === undefined ? {} : { description }), ...(fromSeq === undefined ? {} : { fromSeq }) });
    print(created, () => `${detail(created.webhook)}  signing secret (shown once, keep it): ${created.secret}\n`);
    return 0;
  }
  if (!["get", "remove", "enable", "disable", "rotate-secret", "update", "skip"].includes(sub)) throw new OperatorUsageError(`unknown command "${words.join(" ")}"`);
  // update takes the new URL after the ID, as add takes its URL (--url is the server's).
  if (sub === "update" ? words.length < 3 || words.length > 4 : words.length !== 3) {
    throw new OperatorUsageError(sub === "update" ? `webhooks update ${words.length < 3 ? "needs an ID" : `takes an ID and a URL at most (got ${words.length - 2} words)`}` : `webhooks ${sub} ${words.length < 3 ? "needs an ID" : `takes one ID (got ${words.length - 2})`}`);
  }
  if (sub === "get") {
    const webhook = await api.webhooks.get.query({ id: id! });
    print(webhook, () => detail(webhook));
    return 0;
  }
  if (sub === "remove") {
    const answer = await api.webhooks.remove.mutate({ id: id! });
    print(answer, () => (answer.removed ? `webhook ${printable(id!)} removed\n` : `no webhook ${printable(id!)}: nothing changed\n`));
    return 0;
  }
  if (sub === "update") {
    const url = words[3];
    const types = listOption(options["--types"]);
    const description = str(options["--description"]);
    const cursor = int(options["--from"], "--from");
    if (url === undefined && types === undefined && description === undefined && cursor === undefined) {
      throw new OperatorUsageError("webhooks update needs a URL, --types, --description or --from: what to change");
    }
    const webhook = await api.webhooks.update.mutate({
      id: id!,
      ...(url === undefined ? {} : { url }),
      ...(types === undefined ? {} : { types }),
      ...(description === undefined ? {} : { description }),
      ...(cursor === undefined ? {} : { cursor }),
    });
    print(webhook, () => detail(webhook));
    return 0;
  }
  if (sub === "skip") return await skipWebhookEvent(id!, api, print, detail, out);
  if (sub === "rotate-secret") {
    const graceMs = durationOption(options["--grace"], "--grace", 0, 7 * 86_400_000, "from 0s to 7d, such as 1h or 24h");
    const rotated = await api.webhooks.rotateSecret.mutate({ id: id!, ...(graceMs === undefined ? {} : { graceMs }) });
    const grace = rotated.webhook.previousSecretUntil === null ? "the old one no longer signs" : `old secrets sign too, the last until ${when(rotated.webhook.previousSecretUntil)}`;
    print(rotated, () => `webhook ${rotated.webhook.id}: new signing secret (shown once, keep it): ${rotated.secret}\n  ${grace}\n`);
    return 0;
  }
  const reason = str(options["--reason"]);
  const webhook = await api.webhooks.update.mutate({ id: id!, enabled: sub === "enable", ...(reason === undefined ? {} : { reason }) });
  print(webhook, () => detail(webhook));
  return 0;
}

/** The events `webhooks skip` reads, at most, looking for the next one its webhook would send (a page of direct messages is passed over). */
const SKIP_LOOK_PAGES = 10;

/**
 * `webhooks skip ID`: passes over the event the webhook would send next (the one its receiver
 * refuses for good, holding back every event after it): its cursor moves to that event, only
 * while it is still where it was read (ifCursor), so an event it delivered meanwhile is not
 * passed over for it. Exit 0; 3 when it has no event to pass over.
 */
async function skipWebhookEvent(
  id: string,
  api: CoordinationClient["api"],
  print: (value: unknown, render: () => string) => void,
  detail: (webhook: RouterOutputs["webhooks"]["get"]) => string,
  out: { stderr: (text: string) => void },
): Promise<number> {
  const webhook = await api.webhooks.get.query({ id });
  let afterSeq = webhook.cursor;
  for (let page = 0; page < SKIP_LOOK_PAGES; page++) {
    const events = await api.events.list.query({ afterSeq, types: webhook.types, limit: 100 }).catch((error: unknown) => {
      // Retention passed its cursor (a webhook disabled for days, or waiting out a backoff): it
      // goes on from the oldest event retained, as its deliverer does over the gap; so does this look.
      const details = isTRPCClientError(error) ? (error.data as { code?: string; details?: { prunedThroughSeq?: number } } | undefined) : undefined;
      if (details?.code !== "EVENTS_PRUNED" || typeof details.details?.prunedThroughSeq !== "number") throw error;
      afterSeq = details.details.prunedThroughSeq;
      return undefined;
    });
    if (events === undefined) continue;
    // A webhook sends the untargeted events of its types; an admin's list has the direct messages too.
    const next = events.find((event) => event.target === null);
    if (next !== undefined) {
      const moved = await api.webhooks.update.mutate({ id, cursor: next.seq, ifCursor: webhook.cursor });
      print({ skipped: next, webhook: moved }, () => `webhook ${moved.id}: passed over event ${next.seq} (${printable(next.type)}); it goes on from the next\n${detail(moved)}`);
      return 0;
    }
    // Only an empty page is the log's end: one cut short by maxResponseBytes holds fewer than asked.
    if (events.length === 0) {
      out.stderr(`coordination: webhook ${printable(id)} has no event to pass over: it is at seq ${webhook.cursor}, and no event of its types follows\n`);
      return 3;
    }
    afterSeq = events[events.length - 1]!.seq;
  }
  // Not the log's end: as many pages as this looks at held only direct messages.
  out.stderr(`coordination: webhook ${printable(id)}: no event it would send among the events of its types up to seq ${afterSeq} (direct messages, which it never sends); move it with webhooks update ${printable(id)} --from SEQ\n`);
  return 3;
}

/** The most keys `kv list` gathers (pages of a thousand): a table past it is no use to read, and --json says where the rest start. */
const KV_LIST_MAX = 10_000;

type KvEntry = RouterOutputs["kv"]["set"];

/** A key's expiry as the CLI shows it: "never expires", or "expires 2026-12-04 21:55:00Z". */
const kvExpiry = (entry: { expiresAt: Date | null; ephemeralOwner: string | null }): string =>
  (entry.expiresAt === null ? (entry.ephemeralOwner === null ? "never expires" : "no expiry") : `expires ${when(entry.expiresAt)}`) +
  (entry.ephemeralOwner === null ? "" : `, goes with agent ${printable(entry.ephemeralOwner)} (deleted when it is seen offline or deregisters)`);

/** Who wrote a key's value, after "updated …": " by AGENT", or nothing when the write named none. */
const kvWriter = (entry: { updatedBy: string | null }): string => (entry.updatedBy === null ? "" : ` by ${entry.updatedBy}`);

/**
 * A VERSION_CONFLICT of `kv set|delete --if-version N`, said as the key is now (the error's
 * details.entry; its dates are Dates over tRPC, text over JSON), with what was not done;
 * undefined for any other error.
 */
function kvConflict(error: unknown, key: string, ifVersion: number, what: "written" | "deleted"): string | undefined {
  if (!isTRPCClientError(error)) return undefined;
  const data = error.data as { code?: string; details?: { entry?: { version: number; updatedAt: Date | string; updatedBy: string | null } | null } } | undefined;
  if (data?.code !== "VERSION_CONFLICT") return undefined;
  const entry = data.details?.entry;
  // A server that names no entry: its own words.
  if (entry === undefined) return printable(`${error.message}; nothing ${what}`);
  // A conditional delete sent again (its first answer lost) finds the key absent too: say so.
  const now = entry === null ? (what === "deleted" ? "absent (deleted already: perhaps by an earlier try of this delete)" : "absent") : `at version ${entry.version} (updated ${when(new Date(entry.updatedAt))}${kvWriter(entry)})`;
  const asked = ifVersion === 0 ? "--if-version 0 writes only a key that is absent" : `not at version ${ifVersion}`;
  return printable(`key ${key} is ${now}: ${asked}; nothing ${what}`);
}

/**
 * `kv [list]`, `kv get|set|delete|watch KEY`: shared state as an operator reads and mends it.
 * `kv get` exits 3 when the key is absent; `kv set|delete --if-version` 3 when the key was not at
 * that version (nothing changed: read it again and decide); `kv watch` runs until Ctrl-C.
 */
async function kvCommand(
  words: string[],
  options: Parsed["options"],
  api: CoordinationClient["api"],
  print: (value: unknown, render: () => string) => void,
  out: Output,
  json: boolean,
  stop: AbortSignal | undefined,
): Promise<number> {
  const [, sub, key] = words;
  if (sub === undefined || (sub === "list" && words.length === 2)) {
    const prefix = str(options["--prefix"]);
    const ephemeralOwner = str(options["--ephemeral-owner"]);
    // --json keeps whole entries; the table only each row's cells (a value cut to a cell, not up
    // to 64 KiB of it ten thousand times).
    const items: KvEntry[] = [];
    const rows: string[][] = [];
    let after = str(options["--after"]);
    let nextCursor: string | null = null;
    for (;;) {
      const page = await api.kv.list.query({
        limit: Math.min(1000, KV_LIST_MAX - rows.length),
        ...(prefix === undefined ? {} : { prefix }),
        ...(ephemeralOwner === undefined ? {} : { ephemeralOwner }),
        ...(after === undefined ? {} : { after }),
      });
      for (const entry of page.items) {
        if (json) items.push(entry);
        rows.push(json ? [] : [entry.key, String(entry.version), when(entry.updatedAt), entry.updatedBy ?? "-", when(entry.expiresAt), entry.ephemeralOwner ?? "-", cut(printable(JSON.stringify(entry.value)), CELL_CHARS)]);
      }
      nextCursor = page.nextCursor;
      if (nextCursor === null || rows.length >= KV_LIST_MAX) break;
      after = nextCursor;
    }
    print({ items, nextCursor }, () =>
      rows.length === 0
        ? `no key${prefix === undefined ? "" : ` starting with ${printable(JSON.stringify(prefix))}`}${ephemeralOwner === undefined ? "" : ` tied to agent ${printable(ephemeralOwner)}`}${typeof options["--after"] === "string" ? ` after ${printable(options["--after"])}` : ""}\n`
        : table(["KEY", "VERSION", "UPDATED", "BY", "EXPIRES", "GOES WITH", "VALUE"], rows) +
          (nextCursor === null ? "" : `(more keys than ${KV_LIST_MAX.toLocaleString("en-US")}: narrow with --prefix, or go on with --after ${printable(nextCursor)})\n`),
    );
    return 0;
  }
  if (!["get", "set", "increment", "delete", "watch"].includes(sub)) throw new OperatorUsageError(`unknown command "${words.join(" ")}"`);
  const prefix = str(options["--prefix"]);
  if (sub === "watch" && prefix !== undefined) {
    if (key !== undefined) throw new OperatorUsageError("kv watch takes a KEY or --prefix TEXT, not both");
    return await watchPrefix(api, prefix, json, out, stop);
  }
  if (key === undefined) throw new OperatorUsageError(`kv ${sub} needs a KEY${sub === "set" ? " and its value as JSON" : sub === "watch" ? " (or --prefix TEXT)" : ""}`);
  if (sub === "set" && words.length !== 4) {
    throw new OperatorUsageError(
      words.length === 3 ? "kv set needs the value as JSON after the KEY" : `kv set takes a KEY and one JSON value, not ${words.length - 2} words: quote the value ('{"step": 2}')`,
    );
  }
  if (sub !== "set" && words.length !== 3) throw new OperatorUsageError(`kv ${sub} takes one KEY (got ${words.length - 2})`);
  if (sub === "get") {
    const read = await api.kv.get.query({ key });
    const entry = read.entry;
    print(read, () => (entry === null ? "" : `key ${printable(entry.key)}: version ${entry.version}, updated ${when(entry.updatedAt)}${printable(kvWriter(entry))}, created ${when(entry.createdAt)}, ${kvExpiry(entry)}\n${printableJson(entry.value)}\n`));
    if (entry !== null) return 0;
    out.stderr(`coordination: key ${printable(key)} is absent (never set, deleted or expired)\n`);
    return 3;
  }
  if (sub === "watch") return await watchKey(api, key, json, out, stop);
  if (sub === "increment") {
    const [by, min, max] = [num(options["--by"], "--by"), num(options["--min"], "--min"), num(options["--max"], "--max")];
    if (min !== undefined && max !== undefined && min > max) throw new OperatorUsageError(`--max (${max}) is below --min (${min}): no number is both`);
    const ttlMs = durationOption(options["--ttl"], "--ttl", 1, MAX_TTL_MS, "from 1ms to 366d, such as 30s, 10m or 1d");
    try {
      const entry = await api.kv.increment.mutate({
        key,
        ...(by === undefined ? {} : { by }),
        ...(min === undefined ? {} : { min }),
        ...(max === undefined ? {} : { max }),
        ...(ttlMs === undefined ? {} : { ttlMs }),
      });
      print(entry, () => `key ${printable(entry.key)}: ${printableJson(entry.value, 0)} (version ${entry.version}, ${kvExpiry(entry)})\n`);
      return 0;
    } catch (error) {
      // Past a bound: nothing changed, as a compare-and-set that lost (exit 3).
      if (!isTRPCClientError(error) || error.data?.code !== "OUT_OF_RANGE") throw error;
      out.stderr(`coordination: OUT_OF_RANGE: ${printable(error.message)}\n`);
      return 3;
    }
  }
  const ifVersion = int(options["--if-version"], "--if-version");
  if (sub === "delete" && ifVersion === 0) throw new OperatorUsageError("kv delete --if-version is the version the key must be at to be deleted: 1 or more (an absent key has nothing to delete)");
  if (sub === "set") {
    const text = words[3]!;
    let value: JsonValue;
    try {
      value = JSON.parse(text) as JsonValue;
    } catch {
      // A text meant as a string is shown as JSON writes it (its own quotes escaped); broken JSON is named as such.
      const broken = /^\s*[[{"]/.test(text);
      throw new OperatorUsageError(
        broken
          ? `kv set: the value is not valid JSON (got ${printable(JSON.stringify(cut(text, 64)))}): check its brackets, quotes and commas`
          : `kv set: the value must be JSON (got ${printable(JSON.stringify(cut(text, 64)))}): a text is written with its quotes, '${printable(JSON.stringify(cut(text, 64)))}'`,
      );
    }
    const ttlMs = durationOption(options["--ttl"], "--ttl", 1, MAX_TTL_MS, "from 1ms to 366d, such as 30s, 10m or 1d");
    try {
      const entry = await api.kv.set.mutate({ key, value, ...(ifVersion === undefined ? {} : { ifVersion }), ...(ttlMs === undefined ? {} : { ttlMs }) });
      print(entry, () => `key ${printable(entry.key)} set: version ${entry.version}, ${kvExpiry(entry)}\n`);
      return 0;
    } catch (error) {
      const conflict = ifVersion === undefined ? undefined : kvConflict(error, key, ifVersion, "written");
      if (conflict === undefined) throw error;
      out.stderr(`coordination: VERSION_CONFLICT: ${conflict}\n`);
      return 3;
    }
  }
  try {
    const answer = await api.kv.delete.mutate({ key, ...(ifVersion === undefined ? {} : { ifVersion }) });
    print(answer, () => (answer.entry === null ? `key ${printable(key)} was absent: nothing changed\n` : `key ${printable(key)} deleted (it was at version ${answer.entry.version})\n`));
    return 0;
  } catch (error) {
    const conflict = ifVersion === undefined ? undefined : kvConflict(error, key, ifVersion, "deleted");
    if (conflict === undefined) throw error;
    out.stderr(`coordination: VERSION_CONFLICT: ${conflict}\n`);
    return 3;
  }
}

/**
 * `kv watch KEY`: the key as it is, then a line each time it is seen at another version (kv.get
 * with afterVersion, in rounds: waitInRounds, which waits through a server's restart), until
 * Ctrl-C (exit 0). A watch answers with the key as it is when it wakes: a version replaced
 * before that is not seen, and not shown.
 */
/**
 * `kv watch --prefix TEXT`: the keys under TEXT as they are, then each change to one as it comes
 * (the client's watchKeys: the event stream, each key read back, each version once), a line each,
 * until Ctrl-C (exit 0). A key gone says so: deleted, expired, or gone with the agent it was tied
 * to. Outages are ridden through by watchKeys itself; a refused credential ends it (exit 1).
 */
async function watchPrefix(api: CoordinationClient["api"], prefix: string, json: boolean, out: Output, stop: AbortSignal | undefined): Promise<number> {
  for await (const { key, entry } of watchKeys(api, { prefix, ...(stop === undefined ? {} : { signal: stop }) })) {
    if (json) out.stdout(`${printableJson({ key, entry }, 0)}\n`);
    else if (entry === null) out.stdout(`${printable(key)}  gone (deleted, expired, or with the agent it was tied to)\n`);
    else out.stdout(`${printable(key)}  ${entry.version}  ${when(entry.updatedAt)}  ${printable(`${entry.updatedBy ?? "-"}  ${JSON.stringify(entry.value)}`)}${entry.ephemeralOwner === null ? "" : `  (goes with ${printable(entry.ephemeralOwner)})`}\n`);
  }
  return 0;
}

async function watchKey(api: CoordinationClient["api"], key: string, json: boolean, out: Output, stop: AbortSignal | undefined): Promise<number> {
  // The version last shown (0: absent); undefined before the first look.
  let shown: number | undefined;
  const line = (read: RouterOutputs["kv"]["get"]): string => {
    const entry = read.entry;
    if (json) return `${printableJson(read, 0)}\n`;
    if (entry === null) return `${"-".padStart(8)}  absent (never set, deleted or expired)\n`;
    return `${String(entry.version).padStart(8)}  ${when(entry.updatedAt)}  ${printable(`${entry.updatedBy ?? "-"}  ${JSON.stringify(entry.value)}`)}${entry.expiresAt === null ? "" : `  (${kvExpiry(entry)})`}\n`;
  };
  await waitInRounds(
    async (waitMs, signal) => {
      const read = await api.kv.get.query(shown === undefined ? { key } : { key, afterVersion: shown, waitMs }, { signal });
      const version = read.entry?.version ?? 0;
      const moved = version !== shown;
      if (moved) {
        shown = version;
        out.stdout(line(read));
      }
      return moved;
    },
    () => false,
    undefined,
    stop,
    out.stderr,
    (moved) => moved,
  );
  return 0;
}

/** The most lines `tasks logs` prints without --follow (pages of a thousand): past it a log is no use to read at a terminal, and it says where the rest start. */
const TASK_LOG_MAX = 10_000;

/** A log line's time: UTC to the millisecond, marked Z (a run's lines come milliseconds apart: to the second, their pace is lost). */
const logTime = (date: Date): string => date.toISOString().replace("T", " ");

/**
 * `text` without the line ends it finishes with ("\n" or "\r\n", any number): a loop, since
 * `/(\r?\n)+$/` takes time quadratic in a run of newlines, and an agent chooses its messages
 * (16,384 newlines held the command line 0.4 s a line).
 */
function withoutTrailingNewlines(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === "\n") end -= end > 1 && text[end - 2] === "\r" ? 2 : 1;
  return text.slice(0, end);
}

/**
 * A log line as `tasks logs` prints it: its number, time, level, agent and run, then its message,
 * each line of a message under its first (a stack trace reads as one), its data as compact JSON
 * after it. Agents' text is printable: their ESC sequences could forge the operator's lines.
 */
function logLineText(line: LogLine): string {
  const head = `${String(line.line).padStart(6)}  ${logTime(line.at)}  ${line.level.padEnd(5)}  ${printable(line.agentId)} (run ${line.attempt})  `;
  // Tabs as spaces (printable shows them as \t) and a print's trailing newlines dropped, for the eye
  // alone: --json has the message as it was sent.
  const rows = withoutTrailingNewlines(line.message).replace(/\t/g, "    ").split(/\r?\n/).map(printable);
  if (line.data !== null) rows[rows.length - 1] += `  ${printable(JSON.stringify(line.data))}`;
  return `${head}${rows.join(`\n${" ".repeat(head.length)}`)}\n`;
}

/**
 * `tasks logs TASK_ID`: the task's log, oldest first, a line each (a JSON object each with
 * --json), page by page up to TASK_LOG_MAX lines (--limit: fewer); with --follow, then each new
 * line as it comes (followLog, which waits through a server's restart) until the task settled
 * and its last line was shown, or Ctrl-C: exit 0 either way. What is not a line (lines the log
 * dropped, more than were shown) is said in parentheses, or on stderr with --json, whose stdout
 * holds lines alone.
 */
async function taskLogs(api: CoordinationClient["api"], taskId: string, options: Parsed["options"], json: boolean, out: Output, stop: AbortSignal | undefined): Promise<number> {
  const follow = options["--follow"] === true;
  if (follow && options["--limit"] !== undefined) throw new OperatorUsageError("tasks logs takes --limit or --follow, not both: a follow shows every line until the task settles");
  const tail = int(options["--tail"], "--tail");
  if (tail !== undefined && (options["--after"] !== undefined || options["--limit"] !== undefined)) throw new OperatorUsageError("tasks logs takes --tail alone or --after and --limit: --tail is the last N lines");
  if (tail !== undefined && (tail < 1 || tail > 1000)) throw new OperatorUsageError("--tail must be from 1 to 1,000");
  const most = int(options["--limit"], "--limit") ?? TASK_LOG_MAX;
  if (most < 1 || most > TASK_LOG_MAX) throw new OperatorUsageError(`--limit must be from 1 to ${TASK_LOG_MAX.toLocaleString("en-US")}`);
  const after = int(options["--after"], "--after") ?? 0;
  const attempt = int(options["--attempt"], "--attempt");
  // The server names a level it does not know.
  const level = str(options["--level"]) as RouterInputs["tasks"]["log"]["level"];
  const filters = { ...(attempt === undefined ? {} : { attempt }), ...(level === undefined ? {} : { level }) };
  const show = (line: LogLine) => out.stdout(json ? `${printableJson(line, 0)}\n` : logLineText(line));
  const note = (text: string) => (json ? out.stderr(`coordination: ${text}\n`) : out.stdout(`(${text})\n`));
  const noLines = () => note(`no lines${after > 0 ? ` after line ${after}` : ""}${attempt === undefined ? "" : ` of run ${attempt}`}${level === undefined ? "" : ` at level ${level} or above`}`);
  let next = after;
  if (tail !== undefined) {
    // The last lines, then (with --follow) those that come after them.
    const page = await api.tasks.log.query({ taskId, tail, ...filters });
    page.lines.forEach(show);
    if (page.lines.length === 0 && !json) noLines();
    if (!follow) return 0;
    next = page.nextAfter;
  } else {
    let shown = 0;
    for (let first = true; ; first = false) {
      // A follow's own first page says what was dropped and fails fast (a wrong task, --url or
      // token); followLog, which would ask again through any outage, takes over from it.
      const page = await api.tasks.log.query({ taskId, after: next, limit: follow ? 1000 : Math.min(1000, most - shown), ...filters });
      // Only when lines asked for are among them: with --after past them, nothing shown is missing.
      if (first && page.dropped > after) note(`lines 1 to ${page.dropped} are no longer kept: the log drops its oldest lines past the server's maxTaskLogBytes`);
      page.lines.forEach(show);
      shown += page.lines.length;
      next = page.nextAfter;
      if (follow) break;
      if (!page.more) {
        if (shown === 0 && !json) noLines();
        return 0;
      }
      if (shown >= most) {
        note(`more lines after line ${next}: go on with --after ${next}`);
        return 0;
      }
    }
  }
  // A server away (a restart, a dropped connection) is waited through for up to WAIT_OUTAGE_MS, said once, as a wait's is.
  const onRetry = (error: unknown, outageMs: number) => {
    if (outageMs === 0) out.stderr(askingAgain(error));
    else if (outageMs >= WAIT_OUTAGE_MS) throw error;
  };
  // Lines a fast run's log dropped before the follow read them: said where they would have been.
  const onDropped = (first: number, last: number) => note(`lines ${first} to ${last} were dropped before they were shown: the log drops its oldest lines past the server's maxTaskLogBytes`);
  for await (const line of followLog(api, { taskId, after: next, ...filters, onRetry, onDropped, ...(stop === undefined ? {} : { signal: stop }) })) show(line);
  return 0;
}
