-- An auto-ack poll's batch is kept until its answer is known to have reached the agent: a
-- server killed between the take's commit and the answer gave the batch to no one, for good.
-- A row per batch not yet confirmed, renewed by the server that took it; past expiresAt, the
-- agent's next auto-ack poll (through any server) is given the range again.
-- CreateTable
CREATE TABLE "poll_takes" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "agentId" TEXT NOT NULL,
    "owner" TEXT NOT NULL,
    "beforeCursor" INTEGER NOT NULL,
    "beforeMailboxCursor" INTEGER NOT NULL,
    "lastSeq" INTEGER NOT NULL,
    "types" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL
);

-- CreateIndex
CREATE INDEX "poll_takes_agentId_expiresAt_idx" ON "poll_takes"("agentId", "expiresAt");
