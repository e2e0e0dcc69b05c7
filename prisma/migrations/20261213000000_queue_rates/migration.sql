-- Queue rate limits (queues.setRate / queues.removeRate): at most maxClaims of a queue's tasks
-- claimed in any window of perMs milliseconds, whichever agents claim them. A rate-limited
-- queue is set aside as a concurrency-limited one is (its pending tasks held, read by queue with
-- tasks_held_due_idx while it has room); a claim of it counts the claims in its window from
-- queue_rates.used, after deleting the queue_rate_starts rows that left the window, and adds
-- its own (the claims of one write share a row). A removed rate's row stays, with removedAt,
-- until its queue's held tasks are back in the claim indexes, best first.
-- CreateTable
CREATE TABLE "queue_rates" (
    "queue" TEXT NOT NULL PRIMARY KEY,
    "maxClaims" INTEGER NOT NULL,
    "perMs" INTEGER NOT NULL,
    "used" INTEGER NOT NULL DEFAULT 0,
    "setBy" TEXT,
    "setAt" DATETIME NOT NULL,
    "removedAt" DATETIME
);

-- CreateTable
CREATE TABLE "queue_rate_starts" (
    "queue" TEXT NOT NULL,
    "at" DATETIME NOT NULL,
    "n" INTEGER NOT NULL,

    PRIMARY KEY ("queue", "at")
);
