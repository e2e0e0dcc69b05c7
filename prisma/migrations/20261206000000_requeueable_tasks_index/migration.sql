-- A bulk requeue (tasks.requeueMany) brings back dead letters (or cancelled tasks) oldest first.
-- Settled tasks are mostly completed ones, so reading them by tasks_settled_idx or the table
-- would walk every completed task to find the few that failed; this index holds only these two.
-- CreateIndex
CREATE INDEX "tasks_requeueable_idx" ON "tasks"("status", "seq") WHERE status IN ('dead_letter', 'cancelled');
