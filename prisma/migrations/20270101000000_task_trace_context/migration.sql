-- Trace context of a task (tasks.enqueue's traceparent and tracestate, or the enqueue request's
-- W3C Trace Context headers): kept from the enqueue and handed to every run, so the run's spans
-- join the trace of the work that asked for it. Written once, at the insert.
ALTER TABLE "tasks" ADD COLUMN "traceparent" TEXT;
ALTER TABLE "tasks" ADD COLUMN "tracestate" TEXT;
-- A trace's tasks (tasks.list's traceId): traceparents are stored in their version-00 form, so one
-- trace's are one range of this index ('00-<trace id>-' and after). Tasks without one are not in it.
CREATE INDEX "tasks_trace_idx" ON "tasks"("traceparent") WHERE traceparent IS NOT NULL;
