-- An enqueue's idempotencyKey was one space for every credential: an agent that knew (or read in
-- GET /tasks) another's key enqueued under it first and decided what the other's enqueue got,
-- a task with a runAt years ahead, say, answered 200. A key is now its enqueuer's own: the
-- agent's id for an agent credential, '' for an admin, an open server and in-process callers
-- (tasks.idempotencyScope, src/tasks/task-transitions.ts insertTask). Keys stored before keep ''.
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "idempotencyScope" TEXT NOT NULL DEFAULT '';

-- DropIndex
DROP INDEX "tasks_idempotencyKey_key";

-- CreateIndex
CREATE UNIQUE INDEX "tasks_idempotencyScope_idempotencyKey_key" ON "tasks"("idempotencyScope", "idempotencyKey");
