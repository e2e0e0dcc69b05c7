-- Task progress (tasks.heartbeat's progress): where a run is, as its holder reports it. Kept on
-- the task until its next claim clears it (a run's progress, not the task's), and published as
-- task.progress. progressAt: when it was reported. Neither is in any index: a claim and a
-- complete write nothing more to an index for them.
ALTER TABLE "tasks" ADD COLUMN "progress" TEXT;
ALTER TABLE "tasks" ADD COLUMN "progressAt" DATETIME;
