-- Indexes that hold only the rows the hot paths look for. A claim reads pending tasks only, the
-- lease sweeper claimed ones only, a mailbox read direct messages only; completed tasks and
-- untargeted events no longer sit in (or rewrite entries of) indexes that never return them.
-- Pruning by age walks the log from its oldest event (appended in time order), so the
-- createdAt index, written on every event, goes.

-- DropIndex
DROP INDEX "tasks_status_priority_seq_idx";

-- DropIndex
DROP INDEX "tasks_queue_status_priority_seq_idx";

-- DropIndex
DROP INDEX "tasks_status_leaseExpiresAt_idx";

-- DropIndex
DROP INDEX "events_target_seq_idx";

-- DropIndex
DROP INDEX "events_createdAt_idx";

-- CreateIndex
CREATE INDEX "tasks_pending_idx" ON "tasks"("priority", "seq") WHERE status = 'pending';

-- CreateIndex
CREATE INDEX "tasks_pending_queue_idx" ON "tasks"("queue", "priority", "seq") WHERE status = 'pending';

-- CreateIndex
CREATE INDEX "tasks_claimed_lease_idx" ON "tasks"("leaseExpiresAt") WHERE status = 'claimed';

-- CreateIndex
CREATE INDEX "events_mailbox_idx" ON "events"("target", "seq") WHERE target IS NOT NULL;
