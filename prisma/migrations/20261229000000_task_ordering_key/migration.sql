-- Ordered processing per key (tasks.enqueue's orderingKey): the tasks of a queue enqueued with the
-- same key run one at a time, in the order they were enqueued. A task enqueued behind an unsettled
-- one of its key waits (status 'waiting') until every task of the key before it has settled.
-- Null: enqueued without one (every task stored before).
ALTER TABLE "tasks" ADD COLUMN "orderingKey" TEXT;
-- A key's line: the tasks of a queue and key that have not settled, by status, then oldest first
-- (the index's rowid, seq). An enqueue, a settle and a requeue read whether one of the key runs
-- (pending or claimed: one at most) and which waits longest. Settled tasks and tasks without a key
-- are not in it.
CREATE INDEX "tasks_ordering_idx" ON "tasks"("queue", "orderingKey", "status") WHERE orderingKey IS NOT NULL AND status IN ('pending', 'waiting', 'claimed');
