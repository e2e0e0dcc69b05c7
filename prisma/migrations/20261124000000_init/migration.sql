-- CreateTable
CREATE TABLE "tasks" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "id" TEXT NOT NULL,
    "queue" TEXT NOT NULL DEFAULT 'default',
    "payload" TEXT NOT NULL,
    "priority" INTEGER NOT NULL DEFAULT 5,
    "capability" TEXT,
    "targetAgentId" TEXT,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "maxAttempts" INTEGER NOT NULL DEFAULT 3,
    "runAt" DATETIME NOT NULL,
    "leaseOwner" TEXT,
    "leaseExpiresAt" DATETIME,
    "leaseToken" INTEGER NOT NULL DEFAULT 0,
    "result" TEXT,
    "lastError" TEXT,
    "errorHistory" TEXT NOT NULL DEFAULT '[]',
    "idempotencyKey" TEXT,
    "createdAt" DATETIME NOT NULL,
    "updatedAt" DATETIME NOT NULL,
    "claimedAt" DATETIME,
    "finishedAt" DATETIME
);

-- CreateTable
CREATE TABLE "events" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "type" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "target" TEXT,
    "createdAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "subscriptions" (
    "agentId" TEXT NOT NULL PRIMARY KEY,
    "types" TEXT NOT NULL,
    "cursor" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL,
    "updatedAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "agents" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "status" TEXT NOT NULL DEFAULT 'idle',
    "health" TEXT NOT NULL DEFAULT 'healthy',
    "load" REAL NOT NULL DEFAULT 0,
    "registeredAt" DATETIME NOT NULL,
    "lastHeartbeatAt" DATETIME NOT NULL,
    "updatedAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "agent_capabilities" (
    "agentId" TEXT NOT NULL,
    "capability" TEXT NOT NULL,

    PRIMARY KEY ("agentId", "capability"),
    CONSTRAINT "agent_capabilities_agentId_fkey" FOREIGN KEY ("agentId") REFERENCES "agents" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "memories" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "agentId" TEXT,
    "queue" TEXT,
    "capability" TEXT,
    "taskId" TEXT,
    "outcome" TEXT,
    "durationMs" INTEGER,
    "tags" TEXT NOT NULL DEFAULT '[]',
    "data" TEXT NOT NULL DEFAULT '{}',
    "createdAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "system_state" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "value" TEXT NOT NULL
);

-- CreateIndex
CREATE UNIQUE INDEX "tasks_id_key" ON "tasks"("id");

-- CreateIndex
CREATE UNIQUE INDEX "tasks_idempotencyKey_key" ON "tasks"("idempotencyKey");

-- CreateIndex
CREATE INDEX "tasks_status_priority_seq_idx" ON "tasks"("status", "priority", "seq");

-- CreateIndex
CREATE INDEX "tasks_queue_status_priority_seq_idx" ON "tasks"("queue", "status", "priority", "seq");

-- CreateIndex
CREATE INDEX "tasks_status_leaseExpiresAt_idx" ON "tasks"("status", "leaseExpiresAt");

-- CreateIndex
CREATE INDEX "tasks_leaseOwner_idx" ON "tasks"("leaseOwner");

-- CreateIndex
CREATE INDEX "events_type_seq_idx" ON "events"("type", "seq");

-- CreateIndex
CREATE INDEX "events_target_seq_idx" ON "events"("target", "seq");

-- CreateIndex
CREATE INDEX "events_createdAt_idx" ON "events"("createdAt");

-- CreateIndex
CREATE INDEX "agents_health_idx" ON "agents"("health");

-- CreateIndex
CREATE INDEX "agent_capabilities_capability_idx" ON "agent_capabilities"("capability");

-- CreateIndex
CREATE UNIQUE INDEX "memories_id_key" ON "memories"("id");

-- CreateIndex
CREATE INDEX "memories_taskId_idx" ON "memories"("taskId");

-- CreateIndex
CREATE INDEX "memories_queue_createdAt_idx" ON "memories"("queue", "createdAt");

-- Full-text index over memories (not expressible in the Prisma schema). An external-content
-- FTS5 table: the text lives once, in "memories"; triggers keep the index in step.
CREATE VIRTUAL TABLE "memories_fts" USING fts5(
    "content",
    "tags",
    content = 'memories',
    content_rowid = 'seq',
    tokenize = 'porter unicode61'
);

CREATE TRIGGER "memories_fts_after_insert" AFTER INSERT ON "memories" BEGIN
    INSERT INTO "memories_fts"(rowid, "content", "tags") VALUES (new."seq", new."content", new."tags");
END;

CREATE TRIGGER "memories_fts_after_delete" AFTER DELETE ON "memories" BEGIN
    INSERT INTO "memories_fts"("memories_fts", rowid, "content", "tags") VALUES ('delete', old."seq", old."content", old."tags");
END;

CREATE TRIGGER "memories_fts_after_update" AFTER UPDATE ON "memories" BEGIN
    INSERT INTO "memories_fts"("memories_fts", rowid, "content", "tags") VALUES ('delete', old."seq", old."content", old."tags");
    INSERT INTO "memories_fts"(rowid, "content", "tags") VALUES (new."seq", new."content", new."tags");
END;
