-- Queue concurrency limits (queues.setLimit / queues.removeLimit): at most maxLeased tasks of a
-- limited queue are leased at once, whichever agents hold them; a claim takes a task of a full
-- queue only once one of its leases ends (completed, failed, released, expired, cancelled).
-- A limited queue's pending tasks are held, as a paused queue's are: out of the general claim
-- indexes, so a claim of any queue never walks a full queue's backlog; claims read them by queue
-- (tasks_held_due_idx) while the queue has a free slot. Its leased tasks keep held = 1, so that
-- tasks_claimed_limited_idx counts a limited queue's leases and holds no row of any other queue:
-- queues without a limit pay nothing for it. A removed limit's row stays, with removedAt, until
-- its queue's held tasks are back in the claim indexes, best first.
-- CreateTable
CREATE TABLE "queue_limits" (
    "queue" TEXT NOT NULL PRIMARY KEY,
    "maxLeased" INTEGER NOT NULL,
    "setBy" TEXT,
    "setAt" DATETIME NOT NULL,
    "removedAt" DATETIME
);

-- CreateIndex
CREATE INDEX "tasks_claimed_limited_idx" ON "tasks"("queue") WHERE status = 'claimed' AND held = 1;

-- A limited (or paused) queue's held tasks that are due, best first: what a claim reads of a
-- limited queue. tasks_held_idx also holds the delayed ones (retries backing off), which a claim
-- would otherwise step over on every look.
-- CreateIndex
CREATE INDEX "tasks_held_due_idx" ON "tasks"("queue", "priority", "seq") WHERE status = 'pending' AND held = 1 AND delayed = 0;
