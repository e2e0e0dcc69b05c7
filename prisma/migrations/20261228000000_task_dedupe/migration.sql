-- Deduplicated enqueues (tasks.enqueue's dedupe): an enqueue naming a dedupeKey that a task of its
-- queue holds while that task waits to run (pending, a retry's backoff, waiting for its
-- dependencies; with dedupe.until "settled", while it runs too) adds no task: it is answered with
-- that one, and counted in its duplicates. Null: enqueued without one (every task stored before).
ALTER TABLE "tasks" ADD COLUMN "dedupeKey" TEXT;
-- How many later enqueues naming its dedupeKey were answered with it instead of adding a task.
ALTER TABLE "tasks" ADD COLUMN "duplicates" INTEGER NOT NULL DEFAULT 0;
-- When its payload was last replaced: by such an enqueue (dedupe.replace: a debounce keeps the
-- newest) or by tasks.update; null: never. An enqueue sent again with its idempotencyKey then
-- compares no payload.
ALTER TABLE "tasks" ADD COLUMN "replacedAt" DATETIME;
-- An enqueue's lookup: the tasks of a queue and key that have not settled, newest first. Settled
-- tasks and tasks without a key are not in it, so keys enqueued all day cost one short range read.
CREATE INDEX "tasks_dedupe_idx" ON "tasks"("queue", "dedupeKey") WHERE dedupeKey IS NOT NULL AND status IN ('pending', 'waiting', 'claimed');
