-- Counters in shared state (kv.increment): an increment adds to a key's number in one write. One
-- sent with an idempotencyKey is remembered here for 24 hours, by its writer (the agent it wrote
-- as; '' for a write naming none) and key: sent again after its answer was lost, it is answered
-- with the entry it wrote (`entry`, JSON text) and not added twice, whatever was written since.
-- `request` is what it asked (JSON text), which a resend must repeat. The kv expiry job deletes
-- the rows past their 24 hours, oldest first (`at`).
-- CreateTable
CREATE TABLE "kv_increments" (
    "writer" TEXT NOT NULL,
    "idempotencyKey" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "request" TEXT NOT NULL,
    "entry" TEXT NOT NULL,
    "at" DATETIME NOT NULL,

    PRIMARY KEY ("writer", "idempotencyKey")
);

-- CreateIndex
CREATE INDEX "kv_increments_at_idx" ON "kv_increments"("at");
