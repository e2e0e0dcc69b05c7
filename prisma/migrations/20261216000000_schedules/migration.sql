-- Recurring tasks (schedules.set / remove / pause / resume). A schedule's next run waits in its
-- queue as a delayed pending task (schedules.nextTaskId, tasks.scheduleId naming the schedule):
-- the write that claims it, or cancels it, enqueues the run after it. Read by primary key only.
ALTER TABLE "tasks" ADD COLUMN "scheduleId" TEXT;

-- CreateTable
CREATE TABLE "schedules" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "cron" TEXT,
    "timezone" TEXT,
    "everyMs" INTEGER,
    "startAt" DATETIME,
    "anchorAt" DATETIME,
    "task" TEXT NOT NULL,
    "paused" BOOLEAN NOT NULL DEFAULT false,
    "nextTaskId" TEXT,
    "nextRunAt" DATETIME,
    "runs" INTEGER NOT NULL DEFAULT 0,
    "lastRunAt" DATETIME,
    "lastTaskId" TEXT,
    "setBy" TEXT,
    "createdAt" DATETIME NOT NULL,
    "updatedAt" DATETIME NOT NULL
);
