-- Task dependencies (tasks.enqueue's dependsOn): a task that names tasks it depends on waits
-- (status 'waiting', in no claim index) until every one of them has completed, then becomes
-- pending in the same write as the last complete (its task.ready event). A dependency cancelled
-- (or pruned as a dead letter) cancels the tasks waiting on it, and theirs in turn.
-- dependsOn: the ids as enqueued (JSON array; null for a task that names none);
-- unmetDependencies: how many of them a waiting task still waits for.
ALTER TABLE "tasks" ADD COLUMN "dependsOn" TEXT;
ALTER TABLE "tasks" ADD COLUMN "unmetDependencies" INTEGER NOT NULL DEFAULT 0;
-- onDependencyFailure 'cancel': a dependency dead-lettered cancels the task (else it waits for a requeue).
ALTER TABLE "tasks" ADD COLUMN "cancelOnDependencyFailure" BOOLEAN NOT NULL DEFAULT false;

-- One row a waiting task and a dependency not completed yet, keyed by the dependency: its
-- complete finds the tasks waiting on it with one range read (nothing for a task with none), and
-- deletes the rows. A task cancelled while waiting keeps its rows (a requeue reads what it still
-- waits for) until retention deletes the task.
-- CreateTable
CREATE TABLE "task_dependencies" (
    "dependsOnSeq" INTEGER NOT NULL,
    "taskSeq" INTEGER NOT NULL,

    PRIMARY KEY ("dependsOnSeq", "taskSeq")
);

-- A waiting task's own rows (cancelled or requeued: its rows go or come back).
-- CreateIndex
CREATE INDEX "task_dependencies_taskSeq_idx" ON "task_dependencies"("taskSeq");

-- What a write left of a dependency's dependents (it readies or cancels at most 500 of them):
-- the dependency's seq and id, and how it ended ('completed', 'cancelled', 'dead_lettered': for
-- the tasks that cancel on it, 'deleted': by retention, as a dead letter). A background job goes on a chunk a write, on any server of the file.
-- CreateTable
CREATE TABLE "dependency_work" (
    "seq" INTEGER NOT NULL PRIMARY KEY,
    "taskId" TEXT NOT NULL,
    "outcome" TEXT NOT NULL
);
