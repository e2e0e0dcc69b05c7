-- A bulk requeue (tasks.requeueMany) brings back dead letters oldest first, of one queue or of
-- all. Settled tasks are mostly completed ones, so reading them by tasks_settled_idx or the table
-- would walk every completed task to find the few that failed; these indexes hold dead letters
-- only, and only the transitions into and out of that state write them. Their predicate is the
-- one state, as the queries' is: SQLite takes a partial index only for a WHERE that implies its
-- predicate, and with one that named two states (status IN (...)) the planner sorted every dead
-- letter once ANALYZE had run.
-- CreateIndex
CREATE INDEX "tasks_dead_letter_idx" ON "tasks"("seq") WHERE status = 'dead_letter';

-- CreateIndex
CREATE INDEX "tasks_dead_letter_queue_idx" ON "tasks"("queue", "seq") WHERE status = 'dead_letter';
