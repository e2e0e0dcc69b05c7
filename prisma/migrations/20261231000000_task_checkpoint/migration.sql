-- Task checkpoints (tasks.heartbeat's checkpoint): what a run saved to resume from. Unlike
-- progress, a claim does not clear it: the next run (a retry, a release given back, a steal, a
-- requeue) is handed it with the task, so work done before a crash is not done again. A payload
-- replaced (dedupe.replace, tasks.update) clears it, as does tasks.update's or tasks.requeue's
-- checkpoint: null. checkpointAt: when it was saved. Neither is in any index.
ALTER TABLE "tasks" ADD COLUMN "checkpoint" TEXT;
ALTER TABLE "tasks" ADD COLUMN "checkpointAt" DATETIME;
