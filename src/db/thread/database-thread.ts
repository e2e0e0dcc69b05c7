// A database thread (worker_threads): owns one SQLite connection and runs the commands the event
// loop sends, so no SQLite work (statements, fsync, waits for another process's lock) ever
// blocks the event loop. Two run per server:
//  - the writer: every write, group-committed by the Writer (one BEGIN IMMEDIATE … COMMIT per
//    batch of the calls that arrived together); answers after the commit, with the events the
//    batch appended;
//  - the reader: reads on its own connection (WAL: it never waits for the writer), recall and
//    Prisma's queries among them.
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { shuttingDown } from "../../errors.js";
import { sameFilesGuard } from "../file-identity.js";
import { openDatabase } from "../open-database.js";
import { readTransaction } from "../read-transaction.js";
import { statementsFor } from "../statements.js";
import type { Prisma } from "../prisma.js";
import { Writer, type WriteContext } from "../writer.js";
import { createReadCommands, createWriteCommands, type ThreadSetup } from "./commands.js";
import type { MemoryMatch } from "../../memory/memory-schemas.js";
import { MemoryChanges } from "../../memory/memory-changes.js";
import { RecallRequests, serveRecalls, type RecallRequest } from "./recall-relay.js";
import { serializeError, type Call, type FromThread, type Outcome, type ThreadRole, type ToThread } from "./protocol.js";

const port = parentPort!;
/** `recallPort`: this thread's end of the writer–reader channel that claims' recall travels on (recall-relay.ts). */
const { role, recallPort, ...setup } = workerData as ThreadSetup & { role: ThreadRole; recallPort: MessagePort };

let outcomes: Outcome[] = [];
let events: unknown[] = [];
/** Group commits since the last post (metrics). */
let batches: Array<{ writes: number; ms: number }> = [];
let postScheduled = false;

/** Posts the answers (and a writer's events and batches) gathered so far, if any. */
function postResults(): void {
  postScheduled = false;
  if (outcomes.length === 0 && events.length === 0) return;
  const message: FromThread = { kind: "results", outcomes, events, ...(batches.length > 0 ? { batches } : {}) };
  outcomes = [];
  events = [];
  batches = [];
  port.postMessage(message);
}

/** Answers go out together, once per turn of this thread's loop, after the writes they report committed. */
function schedulePost(): void {
  if (postScheduled) return;
  postScheduled = true;
  setImmediate(postResults);
}

function settle(id: number, result: Promise<unknown>): void {
  result.then(
    (value) => outcomes.push({ id, ok: true, value }),
    (error: unknown) => outcomes.push({ id, ok: false, error: serializeError(error) }),
  ).finally(schedulePost);
}

type Run = (call: Call) => Promise<unknown>;

function startWriter(): { run: Run; close: () => Promise<void> } {
  const db = openDatabase(setup.config);
  const writer = new Writer(db);
  // Statements made before another process changed the schema are made again (statements.ts).
  const statements = statementsFor(db);
  writer.afterBegin(() => statements.revalidate());
  const recalls = new RecallRequests(recallPort);
  // The batch's claims go to recall before the commit's sync, so the two overlap.
  writer.beforeCommit(() => recalls.flush());
  // Nothing is acknowledged into a file that was deleted or replaced under the server.
  writer.beforeCommit(sameFilesGuard(setup.config.dbPath));
  const commands = createWriteCommands(db, setup, (request) => recalls.request(request), new MemoryChanges(setup.memoryChanges)) as unknown as Record<string, (ctx: WriteContext, args: unknown) => unknown>;
  writer.onCommit((appended, batch) => {
    // Not push(...appended): a batch can append more events than a call has room for arguments
    // (a health check that changed 500,000 agents threw RangeError and ended the thread).
    for (const event of appended) events.push(event);
    batches.push(batch);
    schedulePost();
  });
  return {
    run: (call) => {
      const command = commands[call.op];
      if (!command) return Promise.reject(new Error(`unknown write command ${call.op}`));
      return writer.write((ctx) => command(ctx, call.args));
    },
    close: async () => {
      try {
        writer.close();
        // Fold the WAL back into the main file so the database is self-contained after exit. On a
        // full or failing disk this fails; the committed data is safe in the -wal file all the same.
        // It does not wait for another process's lock (busyTimeoutMs would add to every shutdown
        // under one): blocked, it leaves the WAL to the next checkpoint, which any start makes.
        db.pragma("busy_timeout = 0");
        db.pragma("wal_checkpoint(TRUNCATE)");
      } finally {
        db.close();
      }
    },
  };
}

function startReader(): { run: Run; close: () => Promise<void> } {
  const db = openDatabase(setup.config);
  // A read transaction that cannot end would keep the reader on one old snapshot for good: the
  // thread ends instead (an uncaught error), and the server with it (thread-client.ts).
  const memoryChanges = new MemoryChanges(setup.memoryChanges);
  const inSnapshot = readTransaction(
    db,
    (error) =>
      setImmediate(() => {
        throw new Error("the reader's read transaction could not end; the thread stops rather than serve one old snapshot", { cause: error });
      }),
    () => memoryChanges.snapshotBegins(),
  );
  let prisma: Prisma | undefined;
  const sameFiles = sameFilesGuard(setup.config.dbPath);
  // Loaded on first use: Prisma's client takes a good part of a second to load and start. It opens
  // a connection of its own by the path: only while the path is still the file this thread opened
  // (deleted or replaced since, DATABASE_REPLACED; it would have read, or made, another file).
  const lazyPrisma = async () => {
    if (prisma === undefined) sameFiles();
    return (prisma ??= (await import("../prisma.js")).createPrismaClient(setup.config));
  };
  const commands = createReadCommands(db, lazyPrisma, setup, memoryChanges, sameFiles) as unknown as Record<string, (args: unknown) => unknown>;
  const recallForTasks = commands["memory.recallForTasks"] as (request: RecallRequest) => MemoryMatch[][];
  // Reads answered since the last chunk go out before it, not behind it (recall-relay.ts).
  const recalls = serveRecalls(recallPort, recallForTasks, (answers) => port.postMessage({ kind: "recalled", answers } satisfies FromThread), { snapshot: inSnapshot, beforeChunk: postResults });
  return {
    run: async (call) => {
      const command = commands[call.op];
      if (!command) throw new Error(`unknown read command ${call.op}`);
      return inSnapshot(() => command(call.args));
    },
    close: async () => {
      // Claims still waiting for context fail as the server's other calls do while it stops.
      recalls.stop(serializeError(shuttingDown()));
      await prisma?.$disconnect();
      db.close();
    },
  };
}

let thread: { run: Run; close: () => Promise<void> };
try {
  thread = role === "writer" ? startWriter() : startReader();
  port.postMessage({ kind: "ready" } satisfies FromThread);
} catch (error) {
  port.postMessage({ kind: "failed", error: serializeError(error) } satisfies FromThread);
  process.exit(1);
}

port.on("message", (message: ToThread) => {
  if (message.kind === "calls") {
    for (const call of message.calls) settle(call.id, thread.run(call));
    return;
  }
  // close: what was sent before it is answered first (messages arrive in order).
  setImmediate(() => {
    let closeError: ReturnType<typeof serializeError> | undefined;
    void thread
      .close()
      .catch((error: unknown) => {
        closeError = serializeError(error);
      })
      .finally(() => {
        if (outcomes.length > 0 || events.length > 0) port.postMessage({ kind: "results", outcomes, events } satisfies FromThread);
        port.postMessage({ kind: "closed", ...(closeError ? { error: closeError } : {}) } satisfies FromThread);
      });
  });
});
