-- How many tasks of its ordering key may run at once (tasks.enqueue's keyConcurrency): a task of a
-- key becomes pending only while fewer than its keyConcurrency tasks of its key (in its queue) are
-- pending or claimed, and none enqueued before it waits. 1 (every task stored before): one at a
-- time, in order. Read only for tasks with an orderingKey.
ALTER TABLE "tasks" ADD COLUMN "keyConcurrency" INTEGER NOT NULL DEFAULT 1;
