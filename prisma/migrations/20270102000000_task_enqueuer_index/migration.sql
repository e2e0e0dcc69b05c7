-- An agent's enqueues (tasks.list's enqueuedBy): the tasks an agent enqueued under its credential
-- carry its id as their idempotencyScope (since 20261209020000_enqueue_key_scope), oldest first.
-- Tasks enqueued otherwise (an admin, a schedule, an open server, in-process: scope '') are not in
-- it, so their enqueues write no entry.
CREATE INDEX "tasks_enqueuer_idx" ON "tasks"("idempotencyScope", "seq") WHERE idempotencyScope <> '';
