-- Cordoned agents (agents.cordon; or quarantined by the server after failing
-- quarantineAfterFailures runs in a row): no claim or steal hands such an agent a task, while its
-- leases run on. A table of its own, not columns of agents: a deregistration or a re-registration
-- must not lift it. Claims read it once a write transaction: it holds the cordoned agents only.
CREATE TABLE "agent_cordons" (
    "agentId" TEXT NOT NULL PRIMARY KEY,
    "reason" TEXT NOT NULL DEFAULT '',
    "cordonedBy" TEXT,
    "cordonedAt" DATETIME NOT NULL,
    "until" DATETIME,
    "automatic" BOOLEAN NOT NULL DEFAULT false
);
