// The coordination server as MCP tools, resources and notifications, for one session acting as
// one agent. Every tool calls the tRPC procedure itself (a server-side caller with the session's
// credential), so it shares the procedures' validation, identity rules and errors; each tool's
// input schema is made of the procedure's own field schemas, minus the agent, which the session
// supplies (a tool's `agentId`, when given, must agree with it).
import { McpServer, ResourceTemplate, type RegisteredTool } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { mailboxViewOf } from "../auth/access.js";
import { mcpCallTransport, type ObservableResponse } from "../delivery/transports.js";
import { CoordinationError, invalidField } from "../errors.js";
import type { CoordinationEvent } from "../events/event-schemas.js";
import type { JsonValue } from "../json-types.js";
import { RESERVED_JSON_KEYS } from "../json-value.js";
import { pollInput, publishInput, subscribeInput, unsubscribeInput } from "../events/event-schemas.js";
import { findByCapabilityInput, registerInput, type AgentCordon } from "../agents/agent-schemas.js";
import { recallInput, rememberInput } from "../memory/memory-schemas.js";
import type { Services } from "../services.js";
import { cancelInput, claimInput, completeAndClaimInput, completeInput, dedupeInput, enqueueFields, failInput, heartbeatInput, listInput, MAX_CHECKPOINT_BYTES, MAX_PROGRESS_BYTES, releaseInput, statsFields, taskIdInput, waitInput, waitManyInput } from "../tasks/task-schemas.js";
import { int } from "../schema-parts.js";
import { acquireInput, getLockInput, listLocksInput, releaseInput as lockReleaseInput, renewInput } from "../locks/lock-schemas.js";
import { acquirePermitInput, getSemaphoreInput, releasePermitInput, renewPermitInput } from "../locks/semaphore-schemas.js";
import { appendLogInput, LOG_LEVELS, logEntryInput, MAX_LOG_DATA_BYTES, MAX_LOG_ENTRIES, readLogInput } from "../tasks/task-log-schemas.js";
import { deleteInput as kvDeleteInput, getInput as kvGetInput, incrementInput as kvIncrementInput, listInput as kvListInput, MAX_VALUE_BYTES, setInput as kvSetInput } from "../kv/kv-schemas.js";
import type { Caller } from "../trpc/context.js";
import { toErrorBody } from "../trpc/error-shape.js";
import { appRouter } from "../trpc/app-router.js";
import { createCallerFactory } from "../trpc/init.js";
import { VERSION } from "../version.js";
import { payloadFields } from "../events/system-events.js";
import type { Handed } from "./late-cancels.js";
import { mcpTraceCarrier } from "../tasks/trace-context.js";
import { claimOutlookNote } from "../tasks/claim-outlook-reasons.js";
import { boundAnswer, CUT_MARK, pieceOf, TASK_VALUE_FIELDS, type EventValuePiece, type KeyValuePiece, type TaskValuePiece } from "./answer-bound.js";

const createCaller = createCallerFactory(appRouter);

/** An MCP session's calls refresh its agent's heartbeat at most this often (ms). */
const SIGN_OF_LIFE_MS = 1000;

/** The longest a claim_task, read_mailbox, wait_for_task, get_key's watch or read_task_log's follow waits, in ms: an LLM's tool call should not hang for long. */
export const MCP_MAX_WAIT_MS = 20_000;

export interface McpSession {
  /** The agent this session acts as; undefined when neither its credential nor X-Agent-Id names one. */
  agentId: string | undefined;
  caller: Caller;
  /** The HTTP response a request's answer goes out in, by JSON-RPC id, while it is open. */
  responseOf: (requestId: string | number) => ObservableResponse | undefined;
  /** Whether a request came in a JSON-RPC batch of several: the HTTP request's headers are then no one call's. */
  inBatch: (requestId: string | number) => boolean;
  /** Bytes written to the session's notification stream that its client has not read yet (0 with none open). */
  streamBacklog: () => number;
  /** Closes the notification stream of a client that stopped reading it; the client reconnects. */
  closeStreams: (reason: string) => void;
  /** Aborted when the session's client deletes it while calls are under way. */
  deleted: AbortSignal;
  /**
   * What a request's answer handed out: leases (claim_task, complete_task's next), a named lock's
   * grant (acquire_lock), a semaphore's permit (acquire_permit). A cancel of that request that
   * comes after its answer went out gives them back (the endpoint's late cancels).
   */
  handedOut: (requestId: string | number, handed: Partial<Handed>) => void;
  /** A request's answer is known delivered: a late cancel of it gives back what it handed out (a lost one's was given back already). */
  answerDelivered: (requestId: string | number) => void;
}

/** What a tool's handler is told of its request by the SDK. */
interface RequestExtra {
  signal: AbortSignal;
  requestId: string | number;
  /** The request's params._meta: a host's W3C trace context rides in it (traceparent, tracestate, baggage). */
  _meta?: Readonly<Record<string, unknown>> | undefined;
  /** The HTTP request that carried it (Streamable HTTP): its headers. */
  requestInfo?: { headers: Readonly<Record<string, string | string[] | undefined>> } | undefined;
}

type ToolResult = { content: Array<{ type: "text"; text: string }>; isError?: boolean };

/** What both sessions' instructions say of answers cut to mcpMaxAnswerChars. */
const CUT_NOTE = `A large answer comes with its large values cut (where "${CUT_MARK}" stands): read a task's payload, result, checkpoint or progress whole with read_task_value, a key's value with read_key_value, and an event's payload with read_event_value.`;
/** Room a piece's answer (read_task_value, read_key_value, read_event_value) keeps beside its text (ids, numbers, field names). */
const VALUE_PIECE_ENVELOPE = 1_000;

/** The most tasks coordination://tasks/mine lists (tasks.list's largest page). */
const MINE_LIMIT = 500;
/** The queues queue_stats lists unless asked for more: an agent's context is not the place for thousands. */
const MCP_STATS_QUEUES = 50;
/** A list_tasks page's size when the call names none: each task comes whole (payload, result, errors) into the model's context. */
const MCP_LIST_TASKS = 20;

/** A JSON-RPC error of a resource read: its code, and the API's error ({ code, message }) as its data. */
class ResourceReadError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: unknown,
  ) {
    super(message);
  }
}

/**
 * A resource read, its errors as JSON-RPC errors carrying the API's: a task not found is MCP's
 * -32002 (resource not found), bad input -32602 (invalid params), anything else -32603; each with
 * the API's { code, message } as data. The SDK made every one -32603 with the bare message (a
 * validation failure's as a dump of zod's issues).
 */
async function readResource<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    const body = toErrorBody(error);
    const code = body.code.endsWith("_NOT_FOUND") ? -32002 : body.code === "INVALID_INPUT" ? -32602 : -32603;
    throw new ResourceReadError(code, body.message, body);
  }
}

/**
 * A tool error: the API's { code, message, details } as its text, made to fit `maxChars` as an
 * answer is (toolResult): a refusal's details may carry a whole value (VERSION_CONFLICT's and
 * INVALID_STATE's entry, up to 64 KiB of a key's value), and it goes into the model's context as
 * any answer does. Without a bound (a SHUTTING_DOWN of our own: small).
 */
const toolError = (error: unknown, maxChars = Number.POSITIVE_INFINITY): ToolResult => ({ ...toolResult(toErrorBody(error), maxChars), isError: true });

/**
 * A call's answer when its session was deleted while it was under way: what a claim or a mailbox
 * read took goes back (its answer is never delivered: mcpCallTransport), and any other call may
 * have been done.
 */
const sessionDeleted = (): ToolResult =>
  toolError(
    new CoordinationError(
      "SHUTTING_DOWN",
      "this MCP session was deleted by its client while the call was under way: a claim or a mailbox read gave back what it took; any other call may have been done, so look (get_task) before sending it again on a new session",
    ),
  );

/** A tool's result with a word for the model beside it: the JSON text as ever, then the note, a second text item. */
class Noted {
  constructor(
    readonly result: unknown,
    readonly note: string,
  ) {}
}

/**
 * A tool's answer: the result as JSON text, its large values cut to keep it within `maxChars`
 * (answer-bound.ts); a Noted result's note after it; and, when something was cut, a last text
 * saying so and where to read it whole.
 */
function toolResult(result: unknown, maxChars: number): ToolResult {
  const noted = result instanceof Noted;
  const { text, cuts } = boundAnswer(JSON.stringify((noted ? result.result : result) ?? null), maxChars);
  const content: ToolResult["content"] = [{ type: "text", text }];
  if (noted) content.push({ type: "text", text: result.note });
  if (cuts > 0) {
    content.push({
      type: "text",
      text:
        `This answer was longer than the ${maxChars} characters an answer here holds (the server's mcpMaxAnswerChars): ${cuts} ${cuts === 1 ? "value was" : "values were"} cut, each where "${CUT_MARK}" stands, saying how much. ` +
        "Read a task's payload, result, checkpoint or progress whole, in pieces, with read_task_value, a key's value with read_key_value, and an event's payload with read_event_value; ask a list for fewer items with its limit.",
    });
  }
  return { content };
}

/** How many of `items`, from the first, fit whole in an answer of `maxChars` (a JSON list of them); at least one. */
function fitting(items: readonly unknown[], maxChars: number): number {
  let chars = 2;
  for (const [i, item] of items.entries()) {
    chars += JSON.stringify(item).length + (i > 0 ? 1 : 0);
    if (chars > maxChars) return Math.max(1, i);
  }
  return items.length;
}

/**
 * Why a claim of a cordoned agent answered no task, for the model: a null alone reads as an empty
 * queue, and it would claim again, and again, while the cordon holds. Undefined when not cordoned.
 */
function cordonNote(cordon: AgentCordon | null): string | undefined {
  if (cordon === null) return undefined;
  const by = cordon.automatic ? "quarantined by the server after failing runs in a row" : "cordoned by an operator";
  const until = cordon.until === null ? "until an operator lifts it" : `until ${cordon.until.toISOString()}`;
  return (
    `No task for this agent: it is ${by}${cordon.reason === null ? "" : ` (${cordon.reason})`}, and no claim hands it a task ${until}, whatever waits in the queues. ` +
    "The tasks it holds run on: finish and settle them (complete_task, fail_task or release_task), and tell whoever runs you rather than claiming again."
  );
}

/**
 * A JSON value in a tool's schema. The procedures' own jsonValue is a custom check that JSON
 * Schema cannot express; the tool says "any JSON" and the procedure it calls still checks it.
 */
const anyJson = (description: string) => z.unknown().optional().describe(description);

/**
 * A tool's arguments: an unknown one is refused, as an unknown field is everywhere else (the
 * schema MCP clients see says additionalProperties: false), not dropped without a word.
 */
const strictArgs = <Shape extends z.ZodRawShape>(shape: Shape) => z.strictObject(shape);

/** A tool's waitMs: the procedure's, cut to MCP_MAX_WAIT_MS, which the schema says. */
const mcpWait = (what: string) =>
  z.number().int().min(0).optional().describe(`Wait up to this many ms for ${what} to arrive, at most ${MCP_MAX_WAIT_MS} (a longer wait is cut to it); left out or 0, answer at once`);

const agentArg = { agentId: z.string().optional().describe("The agent to act as; defaults to the session's agent, and must agree with it") };

/** One session's MCP server, as the endpoint holds it. */
export interface SessionServer {
  server: McpServer;
  close(): void;
  signOfLife(): void;
  /** The input schema of the tool named so, if this session has it. */
  inputSchemaOf(tool: string): z.ZodType | undefined;
}

export function createMcpServer(services: Services, session: McpSession): SessionServer {
  // Every call of a session acting as an agent is a sign of life, as a task call is: an LLM can
  // think for minutes between task calls, and an agent with no sign of life for agentOfflineMs is
  // seen offline and loses its claims. At most one heartbeat a second (health is judged in seconds).
  let lastSignOfLife = 0;
  const signOfLife = () => {
    const now = Date.now();
    if (session.agentId === undefined || now - lastSignOfLife < SIGN_OF_LIFE_MS) return;
    lastSignOfLife = now;
    void services.agents.heartbeat({ agentId: session.agentId }).catch(() => undefined);
  };
  // Each request gets its own caller: a claim or a mailbox read takes something for its client,
  // and gives it back if the answer never reaches it: the request was cancelled, or the HTTP
  // response carrying it closed first (src/delivery/delivery.ts).
  const apiFor = (extra: RequestExtra, cancelled: AbortSignal = extra.signal) => {
    signOfLife();
    return createCaller({
      core: services,
      transport: mcpCallTransport(cancelled, session.responseOf(extra.requestId), () => session.answerDelivered(extra.requestId)),
      caller: session.caller,
      // What enqueue_task keeps as its task's trace context when the host sends one (SEP-414).
      traceCarrier: mcpTraceCarrier(extra._meta, session.inBatch(extra.requestId) ? undefined : extra.requestInfo?.headers),
      // What it enqueues is its agent's (enqueuedBy) whatever its credential: list_tasks finds it by that.
      actingAgent: session.agentId,
    });
  };
  type Api = ReturnType<typeof apiFor>;
  /** What to do for each call under way when the session is deleted (one listener for them all). */
  const onDeleted = new Set<() => void>();
  session.deleted.addEventListener("abort", () => onDeleted.forEach((cancel) => cancel()), { once: true });
  /**
   * A tool's answer: the result as JSON text; an error as an MCP tool error with the API's code
   * and message. A call still under way when its session is deleted is cancelled as the SDK's
   * cancellation would cancel it (a long-poll stops waiting; what a claim or a mailbox read took
   * is never delivered, so it goes back), and answered so. A call that finished first is answered
   * as it finished, and delivered as any answer is: the one signal decides both.
   */
  const answerCall = async (extra: RequestExtra, run: (api: Api) => Promise<unknown>): Promise<ToolResult> => {
    if (session.deleted.aborted) return sessionDeleted();
    const cancel = new AbortController();
    let finished = false;
    let cancelOnDelete!: () => void;
    const whenDeleted = new Promise<ToolResult>((resolve) => {
      cancelOnDelete = () => {
        if (finished) return;
        cancel.abort();
        resolve(sessionDeleted());
      };
    });
    onDeleted.add(cancelOnDelete);
    // Called inside then(): one that throws before it returns a promise (a refused agentId) is a tool error too.
    const ran = Promise.resolve()
      .then(() => run(apiFor(extra, AbortSignal.any([extra.signal, cancel.signal]))))
      .then(
        (result): ToolResult => ((finished = true), cancel.signal.aborted ? sessionDeleted() : toolResult(result, services.config.mcpMaxAnswerChars)),
        (error: unknown): ToolResult => ((finished = true), cancel.signal.aborted ? sessionDeleted() : toolError(error, services.config.mcpMaxAnswerChars)),
      );
    try {
      return await Promise.race([ran, whenDeleted]);
    } finally {
      onDeleted.delete(cancelOnDelete);
    }
  };
  /** The agent a call acts as: the session's, or `given` (a tool's agentId argument), which must then agree. */
  const agent = (given: string | undefined, toolTakesAgentId = true): string => {
    if (given !== undefined && session.agentId !== undefined && given !== session.agentId) {
      throw new CoordinationError("FORBIDDEN", `this session acts as agent ${JSON.stringify(session.agentId)}; agentId ${JSON.stringify(given)} names another agent`);
    }
    const id = given ?? session.agentId;
    if (id === undefined) {
      const ways = toolTakesAgentId ? "send X-Agent-Id when connecting (coordination mcp: --agent), use an agent token, or give agentId" : "connect again with an X-Agent-Id header (coordination mcp: --agent) or an agent token";
      throw invalidField(toolTakesAgentId ? "agentId" : "session", `this session acts as no agent; ${ways}`);
    }
    return id;
  };
  const wait = (ms: number | undefined) => Math.min(ms ?? 0, MCP_MAX_WAIT_MS);

  // A read credential's session has the read tools alone: its instructions name only those.
  const readSession = session.caller.kind === "token" && session.caller.role === "read";
  const server = new McpServer(
    { name: "coordination", version: VERSION },
    {
      capabilities: { logging: {} },
      instructions: readSession
        ? "A coordination server for agents, seen through a read-only credential: look at a task with get_task (wait_for_task waits for it to settle, wait_for_tasks for several), at the queues with queue_stats and their tasks with list_tasks, " +
          "at the agents and what they can do with find_agents, at the memories (earlier runs' records, agents' notes and lessons) with recall, at who holds named locks with get_lock and list_locks, at a semaphore's permits with get_semaphore, " +
          "at the shared state agents read and write (a plan, a leader's name, a build's status) with get_key (with afterVersion, it waits for the key to change) and list_keys, " +
          "and at what a task's runs did with read_task_log (with waitMs, it follows the log as it grows). " +
          `${CUT_NOTE} ` +
          "This session acts as no agent: it can take, settle or publish nothing."
        : "A coordination server for agents. Take work with claim_task (it returns the task with the memories relevant to it in `context`: earlier runs' records, agents' notes and lessons), " +
        "then settle it with complete_task or fail_task, passing the task's id and leaseToken (complete_task with `next` claims the next task in the same call); call heartbeat_task during long work, before the lease runs out (its progress says where the work is; its checkpoint saves what is done, and a task claimed with a checkpoint goes on from it rather than from the beginning). " +
        "While you hold a task, say what its run does (a tool called, a model's answer, why it gave up) with append_task_log: whoever looks into the task reads it with read_task_log. " +
        "Any tool call keeps this agent alive: with none for the server's agentOfflineMs (90 s by default) it is seen offline and its tasks go back to the queue. " +
        "Register what you can do with register_agent (tasks that require a capability go only to agents offering it); give back a task you cannot do with release_task (no attempt is charged). " +
        "Hand work to other agents with enqueue_task, and wait for its result with wait_for_task (for several tasks' results, wait_for_tasks); cancel what you enqueued and no longer need with cancel_task; see what waits, runs or failed in a queue with list_tasks. " +
        "Read direct messages, and the event types you subscribed to with subscribe_events, with read_mailbox. A task targeted at you, or a direct message, arrives as a logging notification. " +
        "Before working on something other agents may work on too (a file, a branch, a deploy), take a named lock with acquire_lock, renew it with renew_lock while you work, and release it with release_lock when done. " +
        "Before using something only a few agents may use at once (an API key's concurrency, a GPU pool), take a permit with acquire_permit, renew it with renew_permit, and release it with release_permit. " +
        "Share state with other agents (a plan, a leader's name, a build's status) as keys: read one with get_key (with afterVersion, wait for it to change), list them with list_keys, write with set_key and delete with delete_key; " +
        "to change a value others may change too, set it with ifVersion the version you read, and on VERSION_CONFLICT read it again and decide anew. " +
        CUT_NOTE,
    },
  );

  /**
   * Every tool registered, by name, with its input schema: the writing ones are left out of a
   * read credential's session, and the endpoint reads a call's arguments by the schema (tool-arguments.ts).
   */
  const tools = new Map<string, { tool: RegisteredTool; inputSchema: z.ZodType | undefined }>();
  const registerTool: typeof server.registerTool = (...args) => {
    const tool = server.registerTool(...args);
    const schema = args[1].inputSchema;
    tools.set(args[0], { tool, inputSchema: schema instanceof z.ZodType ? schema : undefined });
    return tool;
  };

  registerTool(
    "claim_task",
    {
      description: `Claim the best available task for this agent (priority, then age), with a lease. Returns the task, including \`context\`: the memories relevant to it (earlier runs' records, agents' notes and lessons), and \`leaseToken\`, needed to settle it, \`runDeadlineAt\` when the task has a time limit (finish, or fail it, by then), and \`checkpoint\`: what an earlier run of it saved with heartbeat_task (null: none), to go on from instead of starting over; null when none is available, with a second text saying why when tasks wait that it may not take now (it is cordoned, a queue is paused or full, a capability it does not offer). waitMs (at most ${MCP_MAX_WAIT_MS}) waits for one to arrive.`,
      inputSchema: strictArgs({ ...agentArg, queues: claimInput.shape.queues, capabilities: claimInput.shape.capabilities, leaseMs: claimInput.shape.leaseMs, waitMs: mcpWait("a task"), context: claimInput.shape.context, idempotencyKey: claimInput.shape.idempotencyKey }),
    },
    (args, extra) =>
      answerCall(extra, async (api) => {
        const agentId = agent(args.agentId);
        const task = await api.tasks.claim({ ...args, agentId, waitMs: wait(args.waitMs) });
        if (task) session.handedOut(extra.requestId, { leases: [{ id: task.id, leaseToken: task.leaseToken }] });
        return task ?? (await whyNoTask({ agentId, queues: args.queues, capabilities: args.capabilities }));
      }),
  );
  registerTool(
    "complete_task",
    {
      description:
        "Mark a claimed task done, with its result (any JSON). Only the lease holder may; pass the leaseToken from claim_task. " +
        "With `next`, also claims this agent's next task in the same call, one round trip instead of two: the answer is then " +
        "{ completed, next }, next being the task with its context as claim_task gives it, or null when none is available (no waiting; a second text then says why, as claim_task's does).",
      inputSchema: strictArgs({
        ...agentArg,
        taskId: completeInput.shape.taskId,
        leaseToken: completeInput.shape.leaseToken,
        result: anyJson("The task's result: any JSON"),
        next: completeAndClaimInput.shape.next.describe("Claim the next task too, with these claim_task options ({} for the defaults)"),
      }),
    },
    ({ next, ...args }, extra) =>
      answerCall(extra, (api) =>
        next === undefined
          ? api.tasks.complete({ ...args, result: args.result as JsonValue, agentId: agent(args.agentId) })
          : api.tasks.completeAndClaim({ ...args, result: args.result as JsonValue, agentId: agent(args.agentId), next }).then(async (done) => {
              if (done.next) {
                session.handedOut(extra.requestId, { leases: [{ id: done.next.id, leaseToken: done.next.leaseToken }] });
                return done;
              }
              const why = await whyNoTask({ agentId: agent(args.agentId), queues: next.queues, capabilities: next.capabilities });
              return why === null ? done : new Noted(done, why.note);
            }),
      ),
  );
  /**
   * A claim's answer when it handed no task: null, with why beside it. The agent cordoned (one
   * read of its own record, by id); else what keeps the tasks that wait from it (a paused queue,
   * a full limit or rate window, a capability it does not offer, another agent's tasks, a delay:
   * bounded reads, claim-outlook-reasons.ts). A null alone when nothing waits for it, as an empty queue's.
   */
  const whyNoTask = async (claim: { agentId: string; queues?: string[] | undefined; capabilities?: string[] | undefined }): Promise<Noted | null> => {
    const cordon = await services.agents.get(claim.agentId).then(
      (found) => found.cordon,
      () => null,
    );
    const note = cordonNote(cordon) ?? claimOutlookNote(await services.tasks.claimOutlook(claim));
    return note === undefined ? null : new Noted(null, note);
  };
  // A run's checkpoint, as heartbeat_task, fail_task and release_task take it. Its null is left out
  // (a strict-mode host sends null for every argument it means to leave out: each call would wipe
  // it); clearCheckpoint clears it.
  const checkpointArgs = {
    checkpoint: z
      .unknown()
      .refine((value) => value !== null, "null is no checkpoint: leave it out")
      .optional()
      .describe(`What the work has done so far, any JSON but null (at most ${MAX_CHECKPOINT_BYTES} bytes as JSON): kept with the task, replacing the last one, and handed to every later claim of it; left out, it stays as it was`),
    clearCheckpoint: z.boolean().optional().describe("true: clear the task's checkpoint, so its next run starts from the beginning (instead of a checkpoint, not with one)"),
  };
  /** A tool's arguments as the API takes them: clearCheckpoint read as checkpoint null, the args' own checkpoint otherwise (undefined: none). */
  const withCheckpoint = <A extends { checkpoint?: unknown; clearCheckpoint?: boolean | undefined }>({ clearCheckpoint, checkpoint, ...args }: A): Omit<A, "checkpoint" | "clearCheckpoint"> & { checkpoint: JsonValue | undefined } => {
    if (clearCheckpoint === true && checkpoint !== undefined) throw invalidField("clearCheckpoint", "give a checkpoint or clearCheckpoint, not both");
    return { ...args, checkpoint: clearCheckpoint === true ? null : (checkpoint as JsonValue | undefined) };
  };
  registerTool(
    "fail_task",
    {
      description:
        "Report that a claimed task failed. With retry true (the default) it runs again after the task's backoff while attempts remain, or after retryAfterMs when the failure says when (a service down for an hour); retry false dead-letters it at once. " +
        "With checkpoint, save what the work got done before it failed (e.g. {\"pages\": 40, \"next\": \"p41\"}) in the same call: the retry goes on from there.",
      inputSchema: strictArgs({ ...agentArg, taskId: failInput.shape.taskId, leaseToken: failInput.shape.leaseToken, error: failInput.shape.error, retry: failInput.shape.retry, retryAfterMs: failInput.shape.retryAfterMs, ...checkpointArgs }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.fail({ ...withCheckpoint(args), agentId: agent(args.agentId) })),
  );
  registerTool(
    "heartbeat_task",
    {
      description:
        "Renew the lease of a task this agent holds, from now: by leaseMs, or by default by the length it was claimed with. Call it during long work, before the lease runs out. " +
        "A task with a runDeadlineAt (its maxRunMs) is renewed no further than that: past it the run is over, this call (and release_task) is refused, and the server ends the run moments later; stop the work (a complete or fail sent before then is still taken). " +
        "With progress, also say where the work is (e.g. {\"step\": \"drafting\", \"done\": 2, \"of\": 5}): whoever follows the task sees it. " +
        "With checkpoint, save what the work has done so far (e.g. {\"done\": [\"intro\", \"pricing\"], \"next\": \"rivals\"}): if this run ends before the task completes (a crash, a lost lease, a failure), the next claim of the task hands it over, so the work goes on from there.",
      inputSchema: strictArgs({
        ...agentArg,
        taskId: heartbeatInput.shape.taskId,
        leaseToken: heartbeatInput.shape.leaseToken,
        leaseMs: heartbeatInput.shape.leaseMs,
        // null is left out here (a strict-mode host sends null for every argument it means to
        // leave out: each renewal would wipe the progress), unlike payload's and result's.
        progress: z
          .unknown()
          .refine((value) => value !== null, "null is no progress: leave it out")
          .optional()
          .describe(`Where the work is, any JSON but null (at most ${MAX_PROGRESS_BYTES} bytes as JSON): the task's progress until it is claimed again; left out, it stays as it was`),
        ...checkpointArgs,
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.heartbeat({ ...withCheckpoint(args), progress: args.progress as JsonValue | undefined, agentId: agent(args.agentId) })),
  );
  registerTool(
    "release_task",
    {
      description:
        "Give a claimed task back to the queue without charging an attempt, e.g. it is not for this agent or it cannot start now; delayMs keeps it from being claimed again for a while. Refused once the task's runDeadlineAt passed: its run is over. " +
        "With checkpoint, save what the work got done so far in the same call: the next run goes on from there.",
      inputSchema: strictArgs({ ...agentArg, taskId: releaseInput.shape.taskId, leaseToken: releaseInput.shape.leaseToken, delayMs: releaseInput.shape.delayMs, ...checkpointArgs }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.release({ ...withCheckpoint(args), agentId: agent(args.agentId) })),
  );
  registerTool(
    "enqueue_task",
    {
      description:
        "Add a task to a queue for an agent to claim: a payload (any JSON), a priority (0 is the highest), optionally a capability the claimer must have, a target agent, a delay in ms before it may be claimed, how long it may wait for an agent before it expires unrun (ttlMs), how long one run of it may last (maxRunMs), how long a failed run waits before a retry (backoff), or the ids of tasks that must complete first (dependsOn: it waits until they all have; get_task reads their results). With dedupe { key }, work already asked for is not added twice: while a task of the queue with that key waits to run, the answer is that task (deduplicated: true) and nothing is added; replace: true gives it this payload (a debounce). With an orderingKey, the tasks of the queue with that key run one at a time, in the order they were enqueued (one behind an unfinished task of its key waits); with a key concurrency above 1 (a tenant's share of the queue), that many at a time.",
      inputSchema: strictArgs({
        queue: enqueueFields.shape.queue,
        payload: anyJson("What the agent needs to do the work: any JSON"),
        priority: enqueueFields.shape.priority,
        capability: enqueueFields.shape.capability,
        targetAgentId: enqueueFields.shape.targetAgentId,
        // The tool has no runAt: the REST descriptions of these two speak of it.
        delayMs: enqueueFields.shape.delayMs.describe(
          "Not claimable for this many ms after the server stores it (by the server's clock). Not compared when an idempotencyKey is sent again: a retried enqueue is the same task whatever its delayMs",
        ),
        ttlMs: enqueueFields.shape.ttlMs.describe(
          "If no agent has started it this many ms after it falls due (after delayMs; for a task with dependsOn, from now, whether or not they have completed), it is cancelled as expired (get_task says so; a run under way then goes on): work whose answer is no use later. Left out, it never expires",
        ),
        maxAttempts: enqueueFields.shape.maxAttempts,
        maxRunMs: enqueueFields.shape.maxRunMs.describe(
          "The longest one run of it may last, in ms from its claim: an agent that runs past it loses the task (its heartbeats are refused, a 409), and the server retries it, or dead-letters it at its last attempt. Left out, the server's limit (none by default)",
        ),
        backoff: enqueueFields.shape.backoff,
        dependsOn: enqueueFields.shape.dependsOn,
        onDependencyFailure: enqueueFields.shape.onDependencyFailure,
        idempotencyKey: enqueueFields.shape.idempotencyKey.describe(
          "The same key always answers the same task and never adds a second one, for as long as the task is kept. Sent again with a different queue, payload, priority, capability, targetAgentId, backoff, dependsOn, onDependencyFailure, dedupe key, orderingKey, keyConcurrency, or a maxAttempts or maxRunMs that differs when given, it is a 409 IDEMPOTENCY_MISMATCH",
        ),
        // The tool has no runAt or expiresAt: replace's REST description speaks of them.
        dedupe: dedupeInput
          .extend({
            replace: dedupeInput.shape.replace.describe(
              "true (a debounce): the task found takes this enqueue's payload, and its delayMs when given (each enqueue pushes its run back), and its ttlMs when given; its other fields stay its first enqueue's. Only with until claimed: a run under way cannot take a new payload",
            ),
          })
          .optional()
          .describe(enqueueFields.shape.dedupe.description!),
        orderingKey: enqueueFields.shape.orderingKey,
        keyConcurrency: enqueueFields.shape.keyConcurrency,
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.enqueue({ ...args, payload: args.payload as JsonValue })),
  );
  registerTool(
    "list_tasks",
    {
      annotations: { readOnlyHint: true },
      description: `Tasks, oldest first (order "desc": newest first), a page at a time: those of a queue, in a state (pending, waiting, claimed, completed, dead_letter, cancelled), held by an agent, requiring a capability, enqueued with a dedupe key or an ordering key (with a queue: the key's tasks in the order they run), in one trace (traceId), or enqueued by one agent (enqueuedBy: with your own id, what you asked for, to wait on or cancel). ${MCP_LIST_TASKS} a page unless a limit is named; nextCursor, when not null, is the cursor of the next page.`,
      inputSchema: strictArgs({
        queue: listInput.shape.queue,
        status: listInput.shape.status,
        agentId: listInput.shape.agentId,
        capability: listInput.shape.capability,
        dedupeKey: listInput.shape.dedupeKey,
        orderingKey: listInput.shape.orderingKey,
        traceId: listInput.shape.traceId,
        enqueuedBy: listInput.shape.enqueuedBy,
        limit: int(1, 500).optional().describe(`The page's size (left out, ${MCP_LIST_TASKS}): each task comes with its payload and result, which take room in the context`),
        cursor: listInput.shape.cursor,
        order: listInput.shape.order.unwrap().optional().describe("asc (left out): oldest first; desc: newest first"),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.list({ ...args, limit: args.limit ?? MCP_LIST_TASKS, order: args.order ?? "asc" })),
  );
  registerTool(
    "cancel_task",
    {
      description:
        "Stop a task you enqueued that is no longer needed (another task already found the answer, the user asked for something else): one waiting or pending never runs, one running is stopped (its holder's next heartbeat or settle is refused), the tasks waiting on it are cancelled with it, and a dead letter is discarded. With an agent token, only the tasks this agent enqueued (FORBIDDEN otherwise); a completed task cannot be cancelled (INVALID_STATE). Answers the task.",
      inputSchema: strictArgs({
        taskId: cancelInput.shape.taskId,
        reason: cancelInput.shape.reason.describe("Why it is stopped (at most 1,000 characters): get_task shows it as the task's last error, and the tasks cancelled with it name it"),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.cancel(args)),
  );
  registerTool(
    "get_task",
    { annotations: { readOnlyHint: true }, description: "A task by id: status, payload, result, attempts, lease, error history.", inputSchema: strictArgs({ taskId: taskIdInput.shape.taskId }) },
    (args, extra) => answerCall(extra, (api) => api.tasks.get(args)),
  );
  // A task's large values, whole, a piece at a time: what an answer over mcpMaxAnswerChars cut
  // (answer-bound.ts). Each piece is a slice of the value's JSON text that fits in one answer.
  const pieceChars = services.config.mcpMaxAnswerChars - VALUE_PIECE_ENVELOPE;
  /** The inputs of a tool that reads a value a piece at a time: where in `value`'s JSON text, and how much (read_task_value, read_event_value, read_key_value). */
  const pieceArgs = (value: string) => ({
    offset: z.number().int().min(0).default(0).describe(`Where in ${value}'s JSON text to start, in characters (0, left out: the beginning; then the last answer's nextOffset)`),
    length: z.number().int().min(1).optional().describe(`The most characters to answer (left out, or more than ${pieceChars}: ${pieceChars})`),
  });
  /** The piece of `whole` those inputs ask for, within what one answer holds. */
  const readPiece = (whole: string, args: { offset: number; length?: number | undefined }, what: string) => pieceOf(whole, args.offset, Math.min(args.length ?? pieceChars, pieceChars), what);
  registerTool(
    "read_task_value",
    {
      annotations: { readOnlyHint: true },
      description:
        `Read one of a task's large values whole, a piece at a time, when an answer cut it (where "${CUT_MARK}" stands): its payload, result, checkpoint or progress, as JSON text. ` +
        `Returns { taskId, field, totalChars, offset, text, nextOffset }: text is the value's JSON text from offset (at most ${pieceChars} characters a call); call again with offset set to nextOffset until it is null, and join the texts in order to get the value's JSON.`,
      inputSchema: strictArgs({
        taskId: taskIdInput.shape.taskId,
        field: z.enum(TASK_VALUE_FIELDS).describe("Which value: payload, result, checkpoint or progress"),
        ...pieceArgs("the value"),
      }),
    },
    (args, extra) =>
      answerCall(extra, async (api) => {
        const task = await api.tasks.get({ taskId: args.taskId });
        const piece = readPiece(JSON.stringify(task[args.field] ?? null), args, `the ${args.field}`);
        return { taskId: task.id, field: args.field, ...piece } satisfies TaskValuePiece;
      }),
  );
  // Runs' logs (tasks.appendLog, tasks.log): the agent holding a task says what its run did, and
  // anyone who may read reads it, a page at a time or following it as it grows (read_task_log
  // with waitMs: at most MCP_MAX_WAIT_MS a call, stopped as any wait is when the host cancels the
  // call or the session is deleted).
  /** A line's data: a strict host's null is none (the log would keep it as JSON null, which reads as none anyway). */
  const logData = (data: unknown): JsonValue | undefined => (data === null || data === undefined ? undefined : (data as JsonValue));
  const logDataField = anyJson(`Anything structured beside the message (a tool call's arguments, a model's token counts): any JSON, at most ${MAX_LOG_DATA_BYTES} bytes as JSON (${RESERVED_JSON_KEYS})`);
  registerTool(
    "append_task_log",
    {
      description:
        "Add lines to the log of a task this agent holds, saying what its run does (what it fetched, which tool it called, what the model answered, why it gave up): whoever looks into the task reads them with read_task_log. " +
        `Pass the task's id and the leaseToken claim_task answered, and one line (message, with its level and data) or up to ${MAX_LOG_ENTRIES} (entries), in order. ` +
        "Only the run holding the task's lease writes to its log: once it settled, was cancelled or lost its lease, the call is a tool error with code LEASE_CONFLICT. " +
        "Returns { taskId, firstLine, lastLine, dropped }: the numbers of the lines written (numbered from 1 per task, across its runs); dropped, how many of its oldest lines the log no longer keeps (the server's maxTaskLogBytes).",
      inputSchema: strictArgs({
        ...agentArg,
        taskId: appendLogInput.shape.taskId,
        leaseToken: appendLogInput.shape.leaseToken,
        message: logEntryInput.shape.message.optional().describe("One line to add: what happened, as text (newlines are kept). Give message or entries"),
        // Optional, not defaulted: given beside entries, it is refused rather than dropped.
        level: z.enum(LOG_LEVELS).optional().describe("With message: how urgent, debug, info (left out), warn or error"),
        data: logDataField.describe(`With message: anything structured beside it (a tool call's arguments, a model's token counts): any JSON, at most ${MAX_LOG_DATA_BYTES} bytes as JSON (${RESERVED_JSON_KEYS})`),
        entries: z
          .array(strictArgs({ message: logEntryInput.shape.message, level: logEntryInput.shape.level, data: logDataField }))
          .min(1)
          .max(MAX_LOG_ENTRIES)
          .optional()
          .describe(`Several lines to add at once, in order (1 to ${MAX_LOG_ENTRIES}), each its message, level and data. Give entries or message`),
        idempotencyKey: appendLogInput.shape.idempotencyKey,
      }),
    },
    (args, extra) =>
      answerCall(extra, (api) => {
        const { message, level, data, entries, ...rest } = args;
        if ((message === undefined) === (entries === undefined)) {
          throw invalidField(message === undefined ? "message" : "entries", message === undefined ? "give the line to add as message, or several as entries" : "give one line as message or several as entries, not both");
        }
        // data's null stays null through the arguments' cleaning (it is any JSON): a strict host's none.
        if (entries !== undefined && (level !== undefined || logData(data) !== undefined)) throw invalidField(level !== undefined ? "level" : "data", "level and data go with message; each of entries has its own");
        const lines = entries?.map((entry) => ({ ...entry, data: logData(entry.data) })) ?? [{ message: message!, level: level ?? "info", data: logData(data) }];
        return api.tasks.appendLog({ ...rest, agentId: agent(args.agentId), entries: lines });
      }),
  );
  registerTool(
    "read_task_log",
    {
      annotations: { readOnlyHint: true },
      description:
        "A task's log, oldest first: what its runs wrote with append_task_log, each line with its number (line), time (at), run (attempt), agent, level, message and data. " +
        "Returns { taskId, status, lines, nextAfter, more, dropped }: for the next page, call again with after set to nextAfter (more true: lines are there now). To start at the end of a long log, pass tail (the last that many lines) instead of after. " +
        `To follow a run as it goes, pass waitMs (at most ${MCP_MAX_WAIT_MS}): when no line after \`after\` is there yet and the task has not settled, the call waits for one. ` +
        "Once status is completed, dead_letter or cancelled and more is false, no run adds lines (unless the task is requeued). dropped: how many of its oldest lines the log no longer keeps.",
      inputSchema: strictArgs({
        taskId: readLogInput.shape.taskId,
        after: readLogInput.shape.after,
        tail: readLogInput.shape.tail,
        // Fewer than the API's 100 by default: each line may hold 16 KiB of message and as much data.
        limit: z.number().int().min(1).max(1000).default(50).describe("The most lines answered (50 by default: each may hold 16 KiB of message and as much of data; fewer when they would pass the answer's size)"),
        attempt: readLogInput.shape.attempt,
        level: readLogInput.shape.level,
        waitMs: z
          .number()
          .int()
          .min(0)
          .optional()
          .describe(`Follow: when no line after \`after\` is there yet and the task has not settled, wait up to this many ms for one, at most ${MCP_MAX_WAIT_MS} (a longer wait is cut to it); left out or 0, answer at once`),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.log({ ...args, waitMs: wait(args.waitMs) })),
  );
  registerTool(
    "wait_for_task",
    {
      annotations: { readOnlyHint: true },
      description:
        "Wait for a task to settle (completed, dead_letter or cancelled), e.g. one this agent handed out with enqueue_task, and return it: its status, and its result once completed. " +
        `If it has not settled when waitMs (at most ${MCP_MAX_WAIT_MS}) runs out, returns it as it is then (status pending, waiting or claimed): call again to wait longer.`,
      inputSchema: strictArgs({
        taskId: waitInput.shape.taskId,
        waitMs: z.number().int().min(0).optional().describe(`Wait up to this many ms for the task to settle, at most ${MCP_MAX_WAIT_MS} (a longer wait is cut to it); left out, ${MCP_MAX_WAIT_MS}; 0, answer at once`),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.wait({ taskId: args.taskId, waitMs: args.waitMs === undefined ? MCP_MAX_WAIT_MS : wait(args.waitMs) })),
  );
  registerTool(
    "wait_for_tasks",
    {
      annotations: { readOnlyHint: true },
      description:
        "Wait for several tasks to settle (completed, dead_letter or cancelled), e.g. the subtasks this agent handed out with enqueue_task: all of them (until \"all\", the default) or the first to settle (\"any\"). " +
        `Returns { done, tasks, omitted }: done says whether that happened before waitMs (at most ${MCP_MAX_WAIT_MS}) ran out (if not, call again to wait longer); tasks, in the order asked, with their status and, once completed, their result; ` +
        "omitted, the ids of tasks left out of a too large answer (ask for them again, or read them with get_task). With settledOnly, tasks holds the settled ones alone: to take results as they come, call with until \"any\" and settledOnly, then again with the ids not settled yet.",
      inputSchema: strictArgs({
        taskIds: waitManyInput.shape.taskIds,
        until: waitManyInput.shape.until,
        settledOnly: waitManyInput.shape.settledOnly,
        waitMs: z.number().int().min(0).optional().describe(`Wait up to this many ms, at most ${MCP_MAX_WAIT_MS} (a longer wait is cut to it); left out, ${MCP_MAX_WAIT_MS}; 0, answer at once`),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.waitMany({ taskIds: args.taskIds, until: args.until, settledOnly: args.settledOnly, waitMs: args.waitMs === undefined ? MCP_MAX_WAIT_MS : wait(args.waitMs) })),
  );
  registerTool(
    "publish_event",
    {
      description: "Publish an event to the stream (type is dot-separated, e.g. build.finished); with target, a direct message only that agent receives.",
      inputSchema: strictArgs({ type: publishInput.shape.type, payload: anyJson("The event's data: any JSON"), target: publishInput.shape.target, idempotencyKey: publishInput.shape.idempotencyKey }),
    },
    (args, extra) => answerCall(extra, (api) => api.events.publish({ ...args, payload: args.payload as JsonValue, source: agent(undefined, false) })),
  );
  registerTool(
    "read_mailbox",
    {
      description:
        `This agent's next events: direct messages to it and the event types it subscribed to, oldest first, acknowledged as read. waitMs (at most ${MCP_MAX_WAIT_MS}) waits for one. ` +
        `As many as fit whole in one answer: the others stay for the next call. One event larger than an answer comes alone with its payload cut (where "${CUT_MARK}" stands): read that payload whole with read_event_value and its seq.`,
      inputSchema: strictArgs({ ...agentArg, limit: pollInput.shape.limit, waitMs: mcpWait("an event") }),
    },
    (args, extra) =>
      answerCall(extra, async (api) => {
        const agentId = agent(args.agentId);
        // What a read takes is read for good: one cut to fit mcpMaxAnswerChars (answer-bound.ts)
        // lost the events past its first items, and the rest of every long message, with no call
        // to read them again. So the events are looked at first (manual: nothing taken), and the
        // read takes as many as fit whole (at least one: a single event larger than an answer is
        // cut, or the mailbox would stop at it for good).
        const waiting = await api.events.poll({ agentId, limit: args.limit, waitMs: wait(args.waitMs), ack: "manual" });
        if (waiting.length === 0) return waiting;
        return api.events.poll({ agentId, limit: fitting(waiting, services.config.mcpMaxAnswerChars), waitMs: 0, ack: "auto" });
      }),
  );
  // An event's payload whole, a piece at a time: the one event read_mailbox answers cut, when it
  // alone is larger than an answer (and read for good), is still in the log.
  registerTool(
    "read_event_value",
    {
      annotations: { readOnlyHint: true },
      description:
        `Read an event's payload whole, a piece at a time, when read_mailbox answered it cut (where "${CUT_MARK}" stands), as JSON text. ` +
        `Returns { seq, type, totalChars, offset, text, nextOffset }: text is the payload's JSON text from offset (at most ${pieceChars} characters a call); call again with offset set to nextOffset until it is null, and join the texts in order to get the payload's JSON. ` +
        "An event pruned from the log since, or a direct message to another agent, is a tool error with code INVALID_INPUT.",
      inputSchema: strictArgs({
        seq: z.number().int().min(1).describe("The event's seq (its `seq` in read_mailbox's answer)"),
        ...pieceArgs("the payload"),
      }),
    },
    (args, extra) =>
      answerCall(extra, async (api) => {
        // The list answers what this session may see (a direct message only to its target). Its
        // refusals (a position past the head, one pruned) name its afterSeq, which this call never
        // sent: they are said as this call's seq.
        const none = () => invalidField("seq", `no event ${args.seq} this session may read: pruned from the log, a direct message to another agent, or not yet published`);
        const [event] = await api.events.list({ afterSeq: args.seq - 1, limit: 1 }).catch((error: unknown) => {
          const { code } = toErrorBody(error);
          throw code === "INVALID_INPUT" || code === "EVENTS_PRUNED" ? none() : error;
        });
        if (event === undefined || event.seq !== args.seq) throw none();
        const piece = readPiece(JSON.stringify(event.payload ?? null), args, "the payload");
        return { seq: event.seq, type: event.type, ...piece } satisfies EventValuePiece;
      }),
  );
  registerTool(
    "subscribe_events",
    {
      description: "Subscribe this agent to event types: read_mailbox then returns events of those types beside its direct messages, from now on (or after fromSeq). Subscribing again adds types.",
      inputSchema: strictArgs({ ...agentArg, types: subscribeInput.shape.types, fromSeq: subscribeInput.shape.fromSeq }),
    },
    (args, extra) => answerCall(extra, (api) => api.events.subscribe({ ...args, agentId: agent(args.agentId) })),
  );
  registerTool(
    "unsubscribe_events",
    {
      description: "Stop receiving event types in read_mailbox: the types named, or all of them. Direct messages still arrive.",
      inputSchema: strictArgs({ ...agentArg, types: unsubscribeInput.shape.types }),
    },
    (args, extra) => answerCall(extra, (api) => api.events.unsubscribe({ ...args, agentId: agent(args.agentId) })),
  );
  registerTool(
    "register_agent",
    {
      description:
        "Register this agent with its capabilities: a task that requires a capability goes only to an agent offering it, and claim_task offers the registered ones by default. Registering again replaces them.",
      inputSchema: strictArgs({ ...agentArg, capabilities: registerInput.shape.capabilities, metadata: z.record(z.string(), z.unknown()).optional().describe("Anything else about the agent: a JSON object") }),
    },
    (args, extra) => answerCall(extra, (api) => api.agents.register({ ...args, metadata: args.metadata as Record<string, JsonValue> | undefined, agentId: agent(args.agentId) })),
  );
  registerTool(
    "acquire_lock",
    {
      description:
        "Take a named lock, so that no other agent works on the same thing at once (a file, a branch, a deploy target: agents agree on the name). Returns { acquired, lock }: acquired false means another agent holds it (lock.holder, until lock.expiresAt unless renewed): " +
        `wait for it with waitMs (at most ${MCP_MAX_WAIT_MS}), or do something else. Give a leaseMs longer than the time between your calls (the server's default is 30 s): while you work, renew it with renew_lock before lock.expiresAt, or it is free for anyone; release it with release_lock when done. ` +
        "Pass lock.fencingToken to whatever the lock guards when it checks one: each holder's is larger than the last. Acquiring again a lock this agent holds renews it when both acquires gave no idempotencyKey, or the same one.",
      inputSchema: strictArgs({ ...agentArg, name: acquireInput.shape.name, leaseMs: acquireInput.shape.leaseMs, idempotencyKey: acquireInput.shape.idempotencyKey.describe(
          "This acquire's key: the same key sent again (the call cut off) gets the grant it took, renewed. Left out, this agent's acquires share one grant; with keys, an acquire with another key waits as another agent's does",
        ), waitMs: z.number().int().min(0).optional().describe(`Wait up to this many ms for the lock to be free, at most ${MCP_MAX_WAIT_MS} (a longer wait is cut to it); left out or 0, answer at once`) }),
    },
    (args, extra) =>
      answerCall(extra, async (api) => {
        const agentId = agent(args.agentId);
        const answer = await api.locks.acquire({ ...args, agentId, waitMs: wait(args.waitMs) });
        if (answer.acquired) session.handedOut(extra.requestId, { locks: [{ name: answer.lock.name, agentId, fencingToken: answer.lock.fencingToken! }] });
        return answer;
      }),
  );
  registerTool(
    "renew_lock",
    {
      description:
        "Renew the lease of a lock this agent holds, from now (by leaseMs, or by the length it was acquired with); pass the fencingToken acquire_lock answered (needed for a lock acquired with an idempotencyKey). Refused (LEASE_CONFLICT) once it holds it no more: its lease ran out or an operator released it; stop the work it guarded.",
      inputSchema: strictArgs({ ...agentArg, name: renewInput.shape.name, fencingToken: renewInput.shape.fencingToken, leaseMs: renewInput.shape.leaseMs }),
    },
    (args, extra) => answerCall(extra, (api) => api.locks.renew({ ...args, agentId: agent(args.agentId) })),
  );
  registerTool(
    "release_lock",
    {
      description: "Release a lock this agent holds, as soon as the work it guarded is done: the next agent waiting for it gets it. Returns { released, lock }: released false when it held it no more (nothing changed).",
      inputSchema: strictArgs({ ...agentArg, name: lockReleaseInput.shape.name, fencingToken: lockReleaseInput.shape.fencingToken }),
    },
    (args, extra) => answerCall(extra, (api) => api.locks.release({ ...args, agentId: agent(args.agentId) })),
  );
  registerTool(
    "list_locks",
    {
      annotations: { readOnlyHint: true },
      description: "The named locks held now, by name: those of one agent (holder: this agent's, to see what it still holds), or whose names start with a prefix. A page: pass nextCursor as after for the next.",
      inputSchema: strictArgs({ holder: listLocksInput.shape.holder, prefix: listLocksInput.shape.prefix, after: listLocksInput.shape.after, limit: listLocksInput.shape.limit }),
    },
    (args, extra) => answerCall(extra, (api) => api.locks.list(args)),
  );
  registerTool(
    "get_lock",
    { annotations: { readOnlyHint: true }, description: "A named lock as it is now: whether an agent holds it, which, and until when.", inputSchema: strictArgs({ name: getLockInput.shape.name }) },
    (args, extra) => answerCall(extra, (api) => api.locks.get(args)),
  );
  registerTool(
    "acquire_permit",
    {
      description:
        "Take a permit of a semaphore, so that no more than `limit` agents use the same thing at once (an API key's concurrent requests, a GPU pool, a build farm: agents agree on the name and the limit). " +
        "Returns { acquired, permit, semaphore }: acquired false means the semaphore is full (semaphore.held permits, the first lease ending at semaphore.nextExpiresAt): " +
        `wait for one with waitMs (at most ${MCP_MAX_WAIT_MS}), or do something else. Give a leaseMs longer than the time between your calls: while you work, renew it with renew_permit (passing permit.fencingToken) before permit.expiresAt, or it is free for anyone; release it with release_permit when done.`,
      inputSchema: strictArgs({
        ...agentArg,
        name: acquirePermitInput.shape.name,
        limit: acquirePermitInput.shape.limit,
        leaseMs: acquirePermitInput.shape.leaseMs,
        idempotencyKey: acquirePermitInput.shape.idempotencyKey.describe("This acquire's key: the same key sent again (the call cut off), with the same limit, gets the permit it took, renewed. Left out, every acquire granted is a permit of its own"),
        waitMs: z.number().int().min(0).optional().describe(`Wait up to this many ms for a permit to free, at most ${MCP_MAX_WAIT_MS} (a longer wait is cut to it); left out or 0, answer at once`),
      }),
    },
    (args, extra) =>
      answerCall(extra, async (api) => {
        const agentId = agent(args.agentId);
        const answer = await api.semaphores.acquire({ ...args, agentId, waitMs: wait(args.waitMs) });
        if (answer.permit !== null) session.handedOut(extra.requestId, { permits: [{ name: answer.permit.name, agentId, fencingToken: answer.permit.fencingToken }] });
        return answer;
      }),
  );
  registerTool(
    "renew_permit",
    {
      description:
        "Renew the lease of a semaphore permit this agent holds, from now (by leaseMs, or by the length it was acquired with), naming it by the fencingToken acquire_permit answered. Refused (LEASE_CONFLICT) once it holds it no more: its lease ran out or an operator released it; stop the work it guarded.",
      inputSchema: strictArgs({ ...agentArg, name: renewPermitInput.shape.name, fencingToken: renewPermitInput.shape.fencingToken, leaseMs: renewPermitInput.shape.leaseMs }),
    },
    (args, extra) => answerCall(extra, (api) => api.semaphores.renew({ ...args, agentId: agent(args.agentId) })),
  );
  registerTool(
    "release_permit",
    {
      description: "Release a semaphore permit this agent holds (by its fencingToken), as soon as the work it guarded is done: an agent waiting for one gets it. Returns { released, semaphore }: released false when it held it no more (nothing changed).",
      inputSchema: strictArgs({ ...agentArg, name: releasePermitInput.shape.name, fencingToken: releasePermitInput.shape.fencingToken }),
    },
    (args, extra) => answerCall(extra, (api) => api.semaphores.release({ ...args, agentId: agent(args.agentId) })),
  );
  registerTool(
    "get_semaphore",
    {
      annotations: { readOnlyHint: true },
      description: "A semaphore as it is now: how many permits are held, under which limit, and each permit's holder, fencing token and lease end.",
      inputSchema: strictArgs({ name: getSemaphoreInput.shape.name }),
    },
    (args, extra) => answerCall(extra, (api) => api.semaphores.get(args)),
  );
  // Shared state (kv.*): keys agents read and write, each a JSON value with a version. The writes
  // are the session's agent's (updatedBy); a watch (get_key with afterVersion) waits as
  // wait_for_task does, at most MCP_MAX_WAIT_MS a call, and stops when the host cancels the call
  // or the session is deleted (answerCall's signal, the call's transport).
  const kvKey = kvSetInput.shape.key.describe("The key: whatever the agents agree it names (a path such as plans/repo-a, or build:main:status)");
  registerTool(
    "get_key",
    {
      annotations: { readOnlyHint: true },
      description:
        "A key of the shared state agents read and write (a plan, a leader's name, a build's status) as it is now: { key, entry }, entry null when the key is absent (never set, deleted or expired), " +
        "else its value, its version (what a compare-and-set with set_key or delete_key names), updatedBy (the agent that wrote it), updatedAt, expiresAt, and ephemeralOwner (the agent whose life it is tied to: it goes when that agent does; null: none). " +
        `To watch it, pass afterVersion, the version you last read (0 for an absent key): the call answers once the key's version differs from it, or when waitMs (at most ${MCP_MAX_WAIT_MS}) runs out, ` +
        "with the key as it is then: compare its version, and if unchanged call again to wait longer.",
      inputSchema: strictArgs({
        key: kvKey,
        afterVersion: kvGetInput.shape.afterVersion,
        waitMs: z.number().int().min(0).optional().describe(`With afterVersion: wait up to this many ms for the key to change, at most ${MCP_MAX_WAIT_MS} (a longer wait is cut to it); left out, ${MCP_MAX_WAIT_MS}; 0, answer at once`),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.kv.get({ key: args.key, afterVersion: args.afterVersion, waitMs: args.waitMs === undefined ? MCP_MAX_WAIT_MS : wait(args.waitMs) })),
  );
  // A key's value whole, a piece at a time, as read_task_value reads a task's: a value of up to
  // MAX_VALUE_BYTES is far longer than an answer holds, and get_key's answer cuts it.
  registerTool(
    "read_key_value",
    {
      annotations: { readOnlyHint: true },
      description:
        `Read a shared key's value whole, a piece at a time, when get_key's answer cut it (where "${CUT_MARK}" stands), as JSON text. ` +
        `Returns { key, version, totalChars, offset, text, nextOffset }: text is the value's JSON text from offset (at most ${pieceChars} characters a call); call again with offset set to nextOffset until it is null, and join the texts in order to get the value's JSON. ` +
        "version is the version the piece is of (null: the key is absent, and text is null): if it differs from the last piece's, the key was written meanwhile, so start again from offset 0.",
      inputSchema: strictArgs({
        key: kvKey,
        ...pieceArgs("the value"),
      }),
    },
    (args, extra) =>
      answerCall(extra, async (api) => {
        const { entry } = await api.kv.get({ key: args.key });
        const piece = readPiece(JSON.stringify(entry === null ? null : entry.value), args, "the value");
        return { key: args.key, version: entry === null ? null : entry.version, ...piece } satisfies KeyValuePiece;
      }),
  );
  registerTool(
    "set_key",
    {
      description:
        `Write a key of the shared state: its value (any JSON, at most ${MAX_VALUE_BYTES} bytes), as this agent (updatedBy), with a new version. Returns the entry written (its version, updatedAt, expiresAt). ` +
        "To count (tokens spent, items done), use increment_key instead. To change a value other agents may change too (a list, a plan), compare-and-set: read it with get_key, work out the new value from it, and set it with ifVersion the version you read (0 if the key was absent: then the set only creates it). " +
        "If another agent wrote in between, nothing is written and the call is a tool error with code VERSION_CONFLICT, its details.entry the key as it is now (null: absent): work out the value again from that entry and set it with that version, until it succeeds. " +
        "Without ifVersion the set writes whatever the key holds. With ttlMs the key reads as absent that many ms from now; each set says its own expiry (left out, it never expires). " +
        "With ephemeral true the key is tied to this agent's life: it is deleted when this agent stops heartbeating and is seen offline, or deregisters (what you are working on, that you are here), so others never read a claim of a dead agent.",
      inputSchema: strictArgs({
        key: kvKey,
        // Required: zod's own word for a value left out is "expected nonoptional", which tells a model nothing.
        value: z
          .unknown()
          .nonoptional("value is required: the JSON to write (null included); to remove the key, call delete_key")
          .describe(`The value: any JSON (null included), at most ${MAX_VALUE_BYTES} bytes as JSON text (${RESERVED_JSON_KEYS})`),
        ifVersion: kvSetInput.shape.ifVersion,
        ttlMs: kvSetInput.shape.ttlMs,
        ephemeral: kvSetInput.shape.ephemeral.describe(
          "true: the key is tied to this agent's life: deleted when this agent is seen offline (its heartbeats stopped) or deregisters. An agent holds a bounded number of such keys (1,000 by default): past it, a tool error with code LIMIT_EXCEEDED",
        ),
        idempotencyKey: kvSetInput.shape.idempotencyKey,
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.kv.set({ ...args, value: args.value as JsonValue, agentId: agent(undefined, false) })),
  );
  registerTool(
    "increment_key",
    {
      description:
        "Add to the number a key of the shared state holds, in one step that no other agent's write can come between (an absent key counts as 0, so the first call creates it), as this agent. Returns the entry written (its value, the new number, and version). " +
        "A budget the agents share: increment by what a step costs with max the budget; when the sum would pass max nothing is added and the call is a tool error with code OUT_OF_RANGE, its details.entry the key as it is (the budget is spent: stop). " +
        "min does the same below (a stock that must not go negative: min 0). A key holding anything but a number is a tool error with code INVALID_STATE. " +
        "Send an idempotencyKey of your own with each increment: an increment sent again with it (its answer lost) within 24 hours is not added twice. With ttlMs, a key this call creates reads as absent that many ms from now, and the next call starts a new count (a window's counter: failures this hour); a key that exists keeps its expiry.",
      inputSchema: strictArgs({
        key: kvKey,
        by: kvIncrementInput.shape.by,
        min: kvIncrementInput.shape.min,
        max: kvIncrementInput.shape.max,
        ttlMs: kvIncrementInput.shape.ttlMs,
        idempotencyKey: kvIncrementInput.shape.idempotencyKey,
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.kv.increment({ ...args, agentId: agent(undefined, false) })),
  );
  registerTool(
    "delete_key",
    {
      description:
        "Delete a key of the shared state, as this agent. Returns { deleted, entry }: deleted false when the key was absent already (nothing changed); entry, the key as it was. " +
        "With ifVersion (the version you read with get_key), only if that is its version now: otherwise nothing is deleted and the call is a tool error with code VERSION_CONFLICT, its details.entry the key as it is now (null: absent, perhaps deleted by an earlier try of this call whose answer was lost).",
      inputSchema: strictArgs({ key: kvKey, ifVersion: kvDeleteInput.shape.ifVersion }),
    },
    (args, extra) => answerCall(extra, (api) => api.kv.delete({ ...args, agentId: agent(undefined, false) })),
  );
  registerTool(
    "list_keys",
    {
      annotations: { readOnlyHint: true },
      description:
        "The keys of the shared state present now, in key order, each with its value, version and writer: all of them, or those whose keys start with a prefix (plans/). A page: pass nextCursor as after for the next; null on the last.",
      // Fewer than the API's 100 by default: each value may take 64 KiB of the model's context.
      inputSchema: strictArgs({
        prefix: kvListInput.shape.prefix,
        ephemeralOwner: kvListInput.shape.ephemeralOwner.describe("Only the keys tied to the life of the agent of this id (this session's agent, or another's): what goes when that agent does"),
        after: kvListInput.shape.after,
        limit: z.number().int().min(1).max(1000).default(20).describe("The most keys answered (20 by default: each value may be up to 64 KiB; fewer when their values would pass the answer's size)"),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.kv.list(args)),
  );
  registerTool(
    "remember",
    {
      description:
        "Store a note or a lesson for later runs: claim_task hands relevant memories to whoever claims a matching task. Give an idempotencyKey to call it again safely after a timeout: the same key answers the memory it stored, not a second copy.",
      inputSchema: strictArgs({
        content: rememberInput.shape.content,
        kind: rememberInput.shape.kind,
        queue: rememberInput.shape.queue,
        capability: rememberInput.shape.capability,
        taskId: rememberInput.shape.taskId,
        tags: rememberInput.shape.tags,
        data: anyJson("Structured data kept with it: any JSON"),
        idempotencyKey: rememberInput.shape.idempotencyKey.describe(
          "This call's own key (1 to 500 characters, this agent's): called again with it (after a timeout), the memory it stored, not a second copy; with other content, kind, queue, capability, taskId, tags or data, an IDEMPOTENCY_MISMATCH error naming what differs",
        ),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.memory.remember({ ...args, data: args.data as JsonValue | undefined, agentId: agent(undefined, false) })),
  );
  registerTool(
    "recall",
    { annotations: { readOnlyHint: true },
      description: "Memories relevant to a query or to a task (by taskId), ranked by relevance, recency and outcome.",
      inputSchema: strictArgs({ query: recallInput.shape.query, taskId: recallInput.shape.taskId, queue: recallInput.shape.queue, capability: recallInput.shape.capability, limit: recallInput.shape.limit }),
    },
    (args, extra) => answerCall(extra, (api) => api.memory.recall(args)),
  );
  registerTool(
    "find_agents",
    { annotations: { readOnlyHint: true },
      description: "Agents offering a capability, healthy and least loaded first; at most limit of them. If they would not fit in one answer, the error says how many fit (details.fits): ask again with that limit.",
      inputSchema: strictArgs({ capability: findByCapabilityInput.shape.capability, limit: findByCapabilityInput.shape.limit }),
    },
    (args, extra) => answerCall(extra, (api) => api.agents.findByCapability(args)),
  );
  registerTool(
    "queue_stats",
    { annotations: { readOnlyHint: true },
      description: `Task counts per queue and state, and the age of each queue's oldest pending task: the ${MCP_STATS_QUEUES} busiest queues unless a queue or a limit is named (queuesOmitted says how many more there are).`,
      inputSchema: strictArgs({
        queue: statsFields.queue,
        limit: int(1, 1000).optional().describe(`The most queues listed (left out, ${MCP_STATS_QUEUES}): the busiest first`),
      }),
    },
    (args, extra) => answerCall(extra, (api) => api.tasks.stats({ queue: args.queue, limit: args.limit ?? MCP_STATS_QUEUES })),
  );

  // A read credential may call the reads alone, and acts as no agent: its session lists only what
  // it can use, so a model does not spend calls learning that the rest is refused for it.
  const readOnly = session.caller.kind === "token" && session.caller.role === "read";
  if (readOnly) {
    for (const [name, { tool }] of tools) {
      if (tool.annotations?.readOnlyHint === true) continue;
      tool.remove();
      tools.delete(name);
    }
  }

  // A resource a host attaches goes into the model's context as a tool's answer does: cut alike
  // (its markers say where; read_task_value reads a value whole).
  const resourceText = (value: unknown): string => boundAnswer(JSON.stringify(value), services.config.mcpMaxAnswerChars).text;
  const mine = server.registerResource(
    "my-tasks",
    "coordination://tasks/mine",
    { description: `The tasks this session's agent holds now (up to ${MINE_LIMIT})`, mimeType: "application/json" },
    async (uri, extra) =>
      readResource(async () => ({
        contents: [{ uri: uri.href, mimeType: "application/json", text: resourceText((await apiFor(extra).tasks.list({ agentId: agent(undefined, false), status: "claimed", limit: MINE_LIMIT })).items) }],
      })),
  );
  if (readOnly) mine.remove();
  server.registerResource(
    "task",
    new ResourceTemplate("coordination://tasks/{taskId}", { list: undefined }),
    { description: "A task by id", mimeType: "application/json" },
    async (uri, { taskId }, extra) =>
      readResource(async () => {
        // Only a read credential's session gets here with "mine" (the others have the resource of that name): it acts as no agent.
        if (readOnly && String(taskId) === "mine") throw invalidField("uri", "coordination://tasks/mine lists the tasks of the session's agent, and a read credential's session acts as no agent");
        return { contents: [{ uri: uri.href, mimeType: "application/json", text: resourceText(await apiFor(extra).tasks.get({ taskId: String(taskId) })) }] };
      }),
  );

  // Work and mail arriving for this agent: a logging notification, so the agent need not poll.
  const visible = mailboxViewOf(session.caller);
  const unlisten =
    session.agentId === undefined
      ? () => undefined
      : services.bus.listen((events: readonly CoordinationEvent[]) => {
          for (const event of events) {
            const payload = payloadFields(event);
            // A task for it that can be claimed: enqueued (not waiting for dependencies) or ready now.
            const assigned = (event.type === "task.enqueued" && payload.waitingFor === undefined) || event.type === "task.ready";
            const forMe = (assigned && payload.targetAgentId === session.agentId) || event.target === session.agentId;
            if (!forMe || (visible && event.target !== null && event.target !== visible.recipient)) continue;
            // A client that stops reading (asleep, hung) must not grow the server's memory with
            // every message sent to its agent: its stream is closed; what it missed stays in the
            // mailbox, and a targeted task stays claimable.
            if (session.streamBacklog() > services.config.mcpStreamBufferBytes) {
              session.closeStreams(`more than ${services.config.mcpStreamBufferBytes} bytes of notifications unread (mcpStreamBufferBytes)`);
              continue;
            }
            const data = { kind: assigned ? "task_assigned" : "direct_message", event };
            // With the session's id: the SDK keeps each session's logging/setLevel under it.
            server.server.sendLoggingMessage({ level: "notice", logger: "coordination", data }, server.server.transport?.sessionId).catch(() => undefined);
          }
        });
  return { server, close: () => unlisten(), signOfLife, inputSchemaOf: (tool) => tools.get(tool)?.inputSchema };
}
