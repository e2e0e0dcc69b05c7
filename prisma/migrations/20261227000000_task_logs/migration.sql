-- A run's log (tasks.appendLog, tasks.log): lines the agent holding a task writes while it runs it
-- (what it did, what a model answered, why it gave up), read by operators and other agents while
-- the run goes on and after it ends. One row a line, numbered from 1 per task across all its runs
-- (`attempt` and `leaseToken` say which run). `bytes`: what the line weighs against
-- maxTaskLogBytes; past it the oldest lines are deleted. `appendKey`: the idempotencyKey of the
-- append that wrote it (null: none), so an append sent again after its answer was lost finds its
-- lines instead of writing them twice. Deleted with their task (retention).
-- CreateTable
CREATE TABLE "task_logs" (
    "taskSeq" INTEGER NOT NULL,
    "line" INTEGER NOT NULL,
    "at" DATETIME NOT NULL,
    "attempt" INTEGER NOT NULL,
    "leaseToken" INTEGER NOT NULL,
    "agentId" TEXT NOT NULL,
    "level" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "data" TEXT,
    "bytes" INTEGER NOT NULL,
    "appendKey" TEXT,

    PRIMARY KEY ("taskSeq", "line")
);

-- An append sent again finds its lines by its key (appends without one are not in it).
CREATE INDEX "task_logs_append_key_idx" ON "task_logs"("taskSeq", "appendKey") WHERE appendKey IS NOT NULL;

-- One row a task with a log: the last line's number, the first kept (lines before it were
-- deleted for maxTaskLogBytes) and what the kept lines weigh, so an append never sums its task's log.
-- CreateTable
CREATE TABLE "task_log_heads" (
    "taskSeq" INTEGER NOT NULL PRIMARY KEY,
    "lastLine" INTEGER NOT NULL,
    "firstKept" INTEGER NOT NULL,
    "keptBytes" INTEGER NOT NULL
);
