// A task's trace context (Task.traceparent) as people read it: the operator CLI's `tasks get` and
// the dashboard's task page show the trace id first, the one a tracing UI (Jaeger, Tempo, Honeycomb)
// finds the trace by.

/**
 * "trace 0af7651916cd43dd8448eb211c80319c (parent span b7ad6b7169203331, sampled)" for a W3C
 * traceparent (the flags' low bit: sampled or not); "none" for a task enqueued without one (null);
 * "-" from a server older than trace contexts (undefined).
 */
export function traceText(task: { traceparent?: string | null }): string {
  if (task.traceparent === undefined) return "-";
  if (task.traceparent === null) return "none";
  const [, traceId, parentId, flags] = task.traceparent.split("-");
  if (traceId === undefined || parentId === undefined || flags === undefined) return task.traceparent;
  const sampled = (Number.parseInt(flags, 16) & 1) === 1;
  return `trace ${traceId} (parent span ${parentId}, ${sampled ? "sampled" : "not sampled"})`;
}
