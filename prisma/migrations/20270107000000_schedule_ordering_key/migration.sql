-- Schedules whose runs carry an orderingKey (schedules.set's task.orderingKey and keyConcurrency,
-- kept in schedules.task's JSON): no column changes. Its name in the history is what matters: a
-- version before it refuses to start on a file migrated by this one (migrations it does not know).
-- Such a version would follow a run that waits behind its key (status waiting) as a run taken
-- elsewhere: its schedule-repair job and its set, pause and trigger enqueue a second run beside
-- it, and every run it enqueues leaves the key out (run beside the key's other tasks).
SELECT 1;
