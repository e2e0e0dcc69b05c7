// `coordination memory recall|remember|forget`: the pre-execution memory at a terminal. An
// operator whose agents keep making one mistake asks what a task's claim is handed (recall
// --task), finds the memory that misleads them, forgets it, and writes the lesson they should
// be handed instead (remember --kind lesson --queue Q), without curl and JSON bodies.
import type { CoordinationClient, RouterInputs, RouterOutputs } from "../client/index.js";
import { int, listOption, OperatorUsageError, str } from "./cli-options.js";
import { cut, printable, table, when } from "./cli-text.js";

type Options = Record<string, string | true>;
type Memory = RouterOutputs["memory"]["remember"];

/** The options of each memory command (beyond the common ones). */
export const MEMORY_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  recall: ["--task", "--queue", "--capability", "--limit"],
  remember: ["--kind", "--queue", "--capability", "--agent", "--task", "--tags", "--idempotency-key"],
  forget: [],
};

/** The most characters of a memory's content a table shows (--json has it whole). */
const CONTENT_CHARS = 80;

/** `text` on one line (its runs of white space one space), cut to `max` characters with an ellipsis. */
const oneLine = (text: string, max: number): string => cut(text.replace(/\s+/g, " ").trim(), max);

/** Where a memory comes from and what it is about: its queue, capability, agent and task, "-" for none. */
const about = (memory: Memory): string =>
  [memory.queue === null ? undefined : `queue ${memory.queue}`, memory.capability === null ? undefined : `capability ${memory.capability}`, memory.agentId === null ? undefined : `agent ${memory.agentId}`, memory.taskId === null ? undefined : `task ${memory.taskId}`]
    .filter(Boolean)
    .join(", ") || "-";

/**
 * Runs `memory SUB …` (`words` the command's words after "memory"); returns the exit code: 0, or
 * 1 for a refusal the caller prints (a memory not found is the server's 404, MEMORY_NOT_FOUND).
 */
export async function memoryCommand(
  api: CoordinationClient["api"],
  words: readonly string[],
  options: Options,
  print: (value: unknown, render: () => string) => void,
): Promise<number> {
  const [sub, ...rest] = words;
  if (sub === "recall") {
    if (rest.length > 1) throw new OperatorUsageError(`memory recall takes one TEXT (got ${rest.length}): quote it`);
    const taskId = str(options["--task"]);
    const queue = str(options["--queue"]);
    const capability = str(options["--capability"]);
    const limit = int(options["--limit"], "--limit");
    const request: RouterInputs["memory"]["recall"] = {
      ...(rest[0] === undefined ? {} : { query: rest[0] }),
      ...(taskId === undefined ? {} : { taskId }),
      ...(queue === undefined ? {} : { queue }),
      ...(capability === undefined ? {} : { capability }),
      ...(limit === undefined ? {} : { limit }),
    };
    const matches = await api.memory.recall.query(request);
    print(matches, () => {
      if (matches.length === 0) return "no memory matches\n";
      return table(
        ["ID", "KIND", "SCORE", "ABOUT", "CREATED", "CONTENT"],
        // An execution record says how its run ended.
        matches.map(({ memory, score }) => [memory.id, memory.kind === "execution" ? `run ${memory.outcome ?? "-"}` : memory.kind, score.toFixed(3), about(memory), when(memory.createdAt), oneLine(memory.content, CONTENT_CHARS)]),
      );
    });
    return 0;
  }
  if (sub === "remember") {
    if (rest.length !== 1) throw new OperatorUsageError(`memory remember takes one TEXT (got ${rest.length}): quote it`);
    const kind = str(options["--kind"]);
    if (kind !== undefined && kind !== "note" && kind !== "lesson") throw new OperatorUsageError(`--kind must be note or lesson (got ${JSON.stringify(kind)})`);
    const tags = listOption(options["--tags"]);
    const request: RouterInputs["memory"]["remember"] = { content: rest[0]! };
    for (const [field, flag] of [["queue", "--queue"], ["capability", "--capability"], ["agentId", "--agent"], ["taskId", "--task"], ["idempotencyKey", "--idempotency-key"]] as const) {
      const value = str(options[flag]);
      if (value !== undefined) request[field] = value;
    }
    if (kind !== undefined) request.kind = kind;
    if (tags !== undefined) request.tags = tags;
    const memory = await api.memory.remember.mutate(request);
    print(memory, () => `${printable(memory.id)} remembered: a ${memory.kind}, about ${printable(about(memory))}\n`);
    return 0;
  }
  if (sub === "forget") {
    if (rest.length !== 1) throw new OperatorUsageError(`memory forget takes one MEMORY_ID (got ${rest.length})`);
    const memory = await api.memory.forget.mutate({ memoryId: rest[0]! });
    print(memory, () => `${printable(memory.id)} forgotten: it is recalled no more (it was a ${memory.kind}: ${printable(oneLine(memory.content, CONTENT_CHARS))})\n`);
    return 0;
  }
  throw new OperatorUsageError(sub === undefined ? "memory needs recall, remember or forget" : `unknown command "memory ${sub}"`);
}
