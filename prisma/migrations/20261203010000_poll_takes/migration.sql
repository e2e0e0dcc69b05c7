-- An auto-ack poll's batch is held until its answer is known to have reached the agent: a
-- server killed between the take's commit and the answer gave the batch to no one, for good.
-- A row per take not yet confirmed; past expiresAt, any server moves the cursors back.
-- CreateTable
CREATE TABLE "poll_takes" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "agentId" TEXT NOT NULL,
    "beforeCursor" INTEGER NOT NULL,
    "beforeMailboxCursor" INTEGER NOT NULL,
    "afterCursor" INTEGER NOT NULL,
    "afterMailboxCursor" INTEGER NOT NULL,
    "expiresAt" DATETIME NOT NULL
);

-- CreateIndex
CREATE INDEX "poll_takes_expiresAt_idx" ON "poll_takes"("expiresAt");
