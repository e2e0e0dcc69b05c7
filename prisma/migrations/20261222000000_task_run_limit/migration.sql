-- A task's run time limit (tasks.enqueue's maxRunMs, or the server's default then): how long one
-- run of it may last from its claim. A heartbeat renews its lease no further than claimedAt +
-- maxRunMs, so the lease sweeper ends a run that reaches it, as it ends a lease that ran out.
-- Null: no limit (every task stored before has none). No index: the sweeper reads leases by
-- their end (tasks_claimed_lease_idx), which the limit moves.
ALTER TABLE "tasks" ADD COLUMN "maxRunMs" INTEGER;
