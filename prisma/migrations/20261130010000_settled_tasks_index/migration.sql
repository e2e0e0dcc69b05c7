-- Settled tasks by when they settled: retention prunes the oldest first without reading the
-- rest (src/retention.ts). Partial, like the hot-path indexes: pending and claimed tasks are not in it.
CREATE INDEX "tasks_settled_idx" ON "tasks"("finishedAt") WHERE status IN ('completed', 'dead_letter', 'cancelled');
