-- Trace context of a task (tasks.enqueue's traceparent and tracestate, or the enqueue request's
-- W3C Trace Context headers): kept from the enqueue and handed to every run, so the run's spans
-- join the trace of the work that asked for it. Written once, at the insert; in no index.
ALTER TABLE "tasks" ADD COLUMN "traceparent" TEXT;
ALTER TABLE "tasks" ADD COLUMN "tracestate" TEXT;
