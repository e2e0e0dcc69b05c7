-- Queue pauses (queues.pause / queues.resume). A paused queue takes enqueues but hands out no
-- task: every claim and steal leaves out the queues paused in queue_pauses, from the write that
-- paused them. Its pending tasks also leave the claim indexes ("held"), so that a claim of any
-- queue never walks a paused backlog to reach the tasks it may take: the pause's own write holds
-- the first rows, the server holds the rest a bounded chunk a write, and every write that makes a
-- task pending (or due) holds it when its queue is paused. A resumed queue's row stays, with
-- resumedAt, until its held tasks are back in the claim indexes, best first.
-- CreateTable
CREATE TABLE "queue_pauses" (
    "queue" TEXT NOT NULL PRIMARY KEY,
    "reason" TEXT NOT NULL DEFAULT '',
    "pausedBy" TEXT,
    "pausedAt" DATETIME NOT NULL,
    "resumedAt" DATETIME
);

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "held" BOOLEAN NOT NULL DEFAULT false;

-- DropIndex
DROP INDEX "tasks_pending_idx";

-- DropIndex
DROP INDEX "tasks_pending_queue_idx";

-- CreateIndex
CREATE INDEX "tasks_pending_idx" ON "tasks"("priority", "seq") WHERE status = 'pending' AND delayed = 0 AND held = 0;

-- CreateIndex
CREATE INDEX "tasks_pending_queue_idx" ON "tasks"("queue", "priority", "seq") WHERE status = 'pending' AND delayed = 0 AND held = 0;

-- CreateIndex
CREATE INDEX "tasks_held_idx" ON "tasks"("queue", "priority", "seq") WHERE status = 'pending' AND held = 1;
