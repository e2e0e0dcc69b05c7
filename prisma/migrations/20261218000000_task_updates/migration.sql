-- tasks.update changes a task that has not run yet: its priority and when it falls due. The
-- priority it was enqueued with is kept the first time it changes, so that an enqueue sent again
-- with its idempotencyKey (its answer lost) still finds its task rather than a mismatch. Null: the
-- task has the priority it was enqueued with (every task stored before).
ALTER TABLE "tasks" ADD COLUMN "enqueuedPriority" INTEGER;
