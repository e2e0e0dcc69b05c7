-- A task's own retry backoff (tasks.enqueue's backoff): how long a failed run waits before the
-- task may be claimed again, as JSON text { type, delayMs, maxDelayMs, jitter }. Null, as every
-- task enqueued before this column, is the server's backoff (retryBaseMs doubling to retryMaxMs).
-- Read only by a fail: in no index.
ALTER TABLE "tasks" ADD COLUMN "backoff" TEXT;
