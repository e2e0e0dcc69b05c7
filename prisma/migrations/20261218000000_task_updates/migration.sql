-- tasks.update changes a task that has not run yet: its priority and when it falls due. The
-- priority it was enqueued with is kept the first time it changes, so that an enqueue sent again
-- with its idempotencyKey (its answer lost) still finds its task rather than a mismatch. Null: the
-- task's priority was never changed (every task stored before).
ALTER TABLE "tasks" ADD COLUMN "enqueuedPriority" INTEGER;
-- When an operator last changed the task (tasks.update, tasks.promote), which moves updatedAt too:
-- a release sent again (its answer lost) reads its delay from runAt and updatedAt, which such a
-- change leaves saying nothing of it. Null: never changed so.
ALTER TABLE "tasks" ADD COLUMN "editedAt" DATETIME;
