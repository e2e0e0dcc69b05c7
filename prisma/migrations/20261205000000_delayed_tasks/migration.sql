-- A claim read the pending tasks best first and skipped those not due yet one by one: 30,000
-- tasks delayed by an hour at the head of a queue cost every claim 7 ms, growing with them.
-- Delayed tasks now stay out of the claim indexes until due: "delayed" is set by every write that
-- makes a task pending with a runAt ahead, and a claim first promotes the tasks that fell due (a
-- range of tasks_delayed_idx). The claim still checks runAt, so a task marked wrongly is only
-- ever slower to find, never claimed early.
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "delayed" BOOLEAN NOT NULL DEFAULT false;

UPDATE "tasks" SET "delayed" = true WHERE "status" = 'pending' AND "runAt" > CAST(unixepoch('subsec') * 1000 AS INTEGER);

-- DropIndex
DROP INDEX "tasks_pending_idx";

-- DropIndex
DROP INDEX "tasks_pending_queue_idx";

-- CreateIndex
CREATE INDEX "tasks_pending_idx" ON "tasks"("priority", "seq") WHERE status = 'pending' AND delayed = 0;

-- CreateIndex
CREATE INDEX "tasks_pending_queue_idx" ON "tasks"("queue", "priority", "seq") WHERE status = 'pending' AND delayed = 0;

-- CreateIndex
CREATE INDEX "tasks_delayed_idx" ON "tasks"("runAt") WHERE status = 'pending' AND delayed = 1;
