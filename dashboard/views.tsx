// The dashboard's views: queues with their rates, schedules (pause, resume), agents (cordon, uncordon) with the tasks
// they hold, the named locks and semaphore permits held (force-release), shared state's keys (delete), dead letters (requeue, cancel), the live event tail, and a task's own page
// (with its run's log).
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api.js";
import { backoffText, dedupeText, errorCode, errorText, fitsInAnswer, isAheadOfLog, orderingKeyText, rateWindowText, runLimitText, traceText, webhookStateText } from "./api.js";
import { age, json, time, usePolling } from "./hooks.js";

type TaskEvent = Awaited<ReturnType<Api["events"]["list"]["query"]>>[number];
type LogLine = Awaited<ReturnType<Api["tasks"]["log"]["query"]>>["lines"][number];
type LogLevel = LogLine["level"];

export interface ViewProps {
  api: Api;
  onUnauthorized: () => void;
  /** What the page's credential may do (tokens.whoami): buttons it would be refused are not offered. */
  may: Permissions;
}

/**
 * admin: pause, cancel, requeue, cordon, force-release, and the rest of an operator's acts; write:
 * an agent's (deleting a key); writesKey: whether a key is one the credential writes (an agent
 * credential given kvPrefixes writes only keys starting with one of them). All true until the
 * server said who the credential is (or when it cannot say: an older server), and the server
 * refuses what the role may not do.
 */
export interface Permissions {
  admin: boolean;
  write: boolean;
  writesKey: (key: string) => boolean;
}

const STATES = ["waiting", "pending", "claimed", "completed", "dead_letter", "cancelled"] as const;

/** "requeue from the beginning" (a dead letter) and "clear checkpoint" (a task that waits to run): its next run starts from the beginning. */
type TaskAction = "requeue" | "cancel" | "requeue from the beginning" | "clear checkpoint";

/**
 * An operator's act from the page (pause, cordon, requeue…: an admin's; a read token is told the
 * server's refusal): refreshes the view on success, and says how it went, `done` or "WHAT failed: …".
 */
async function operatorAct<T>(what: string, act: () => Promise<T>, done: (answer: T) => string, refresh: () => void): Promise<string> {
  try {
    const answer = await act();
    refresh();
    return done(answer);
  } catch (error) {
    return `${what} failed: ${errorText(error)}`;
  }
}

/** An operator's act on a task (operatorAct). */
function runTaskAction(api: Api, what: TaskAction, taskId: string, refresh: () => void): Promise<string> {
  const act = () =>
    what === "requeue"
      ? api.tasks.requeue.mutate({ taskId })
      : what === "cancel"
        ? api.tasks.cancel.mutate({ taskId })
        : what === "requeue from the beginning"
          ? api.tasks.requeue.mutate({ taskId, checkpoint: null })
          : api.tasks.update.mutate({ taskId, checkpoint: null });
  const done = what === "requeue" ? "requeued" : what === "cancel" ? "cancelled" : what === "requeue from the beginning" ? "requeued from the beginning:" : "checkpoint cleared:";
  return operatorAct(what, act, () => `${done} ${taskId}`, refresh);
}

function ErrorLine({ error }: { error: unknown }) {
  if (error === undefined) return null;
  return <p class="error">{errorCode(error) === "NETWORK" ? "server unreachable, retrying…" : errorText(error)}</p>;
}

/** The queues the page lists: the busiest, so that one-off queues by the thousand do not bury them. */
const DASHBOARD_QUEUES = 200;

export function Queues({ api, onUnauthorized, may }: ViewProps) {
  const stats = usePolling(() => api.tasks.stats.query({ limit: DASHBOARD_QUEUES }), 1000, [api], onUnauthorized);
  // (The server shares one count a second among all callers: counting reads every task.)
  const retention = stats.data?.retention.settledTasks;
  const [message, setMessage] = useState("");
  /** Pauses or resumes a queue (operatorAct). */
  const toggle = async (queue: string, paused: boolean) => {
    const act = () => (paused ? api.queues.resume.mutate({ queue }) : api.queues.pause.mutate({ queue, reason: "paused from the dashboard" }));
    setMessage(await operatorAct(paused ? "resume" : "pause", act, () => `${paused ? "resumed" : "paused"} ${queue}`, stats.refresh));
  };
  return (
    <section>
      <h2>
        Queues <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={stats.error} />
      <table data-testid="queues">
        <thead>
          <tr>
            <th>queue</th>
            {STATES.map((s) => (
              <th class="num">{s.replace("_", " ")}</th>
            ))}
            <th class="num" title="pending tasks not due yet (delays, retry backoffs), counted in pending too">scheduled</th>
            <th class="num">oldest pending</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {stats.data?.queues.map((q) => (
            <tr data-queue={q.queue} data-paused={q.paused ? "true" : "false"}>
              <td>
                {q.queue} {q.paused && <span class="badge">paused</span>} {q.maxLeased != null && <span class="badge" title="at most this many of its tasks leased at once">limit {q.maxLeased}</span>} {q.rate != null && <span class="badge" title={`at most ${q.rate.maxClaims} of its tasks claimed in any ${q.rate.perMs} ms`}>rate {q.rate.maxClaims}/{rateWindowText(q.rate.perMs)}</span>}
              </td>
              {STATES.map((s) => (
                <td class="num" data-state={s}>
                  {q.counts[s]}
                </td>
              ))}
              <td class="num" data-state="scheduled" title={q.nextDueAt ? `next due ${new Date(q.nextDueAt).toLocaleString()}` : undefined}>
                {q.scheduled}
              </td>
              <td class="num">{age(q.oldestPendingAgeMs)}</td>
              <td class="actions">
                {may.admin && <button onClick={() => void toggle(q.queue, q.paused)}>{q.paused ? "Resume" : "Pause"}</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {(stats.data?.queuesOmitted ?? 0) > 0 && (
        <p class="muted" data-testid="queues-more">
          {stats.data!.queuesOmitted} quieter queues not shown (the busiest {DASHBOARD_QUEUES} are).
        </p>
      )}
      {retention && (
        <p class="muted">
          Settled tasks kept {retention.maxAgeMs === null ? "forever" : `for ${age(retention.maxAgeMs)}`}
          {retention.maxCount === null ? "" : `, at most ${retention.maxCount}`}; oldest kept settled {time(retention.oldestSettledAt)}.
        </p>
      )}
    </section>
  );
}

const BUCKET_MS = 10_000;
const BUCKETS = 30;
/** How many of the newest events the chart reads on opening, to fill its window (fewer when fewer are retained). */
const BACKFILL_EVENTS = 5000;

/** Enqueued and completed tasks per 10 s over the last 5 minutes, from the live log (with its recent past). */
export function Rates({ api, onUnauthorized }: ViewProps) {
  const [events, setEvents] = useState<Array<{ seq: number; type: string; at: number }>>([]);
  const [now, setNow] = useState(Date.now());
  const [failure, setFailure] = useState<unknown>(null);
  useEffect(() => {
    let subscription: { unsubscribe(): void } | undefined;
    let alive = true;
    // The last BACKFILL_EVENTS events, or as many as are retained: a start behind the retained log
    // is refused (EVENTS_PRUNED), and the chart would stay empty. Pruning can still pass the start
    // before the stream opens: then it starts again from the new window, a few times at most.
    // Starts in a row refused EVENTS_PRUNED (none once one reads an event).
    let pruned = 0;
    // Starts in a row refused for a position past the log's head (a restored backup, isAheadOfLog).
    let restored = 0;
    const follow = () =>
      void api.events.head.query().then(
        ({ head, prunedThrough }) => {
          if (!alive) return;
          subscription = api.events.onEvent.subscribe(
            { types: ["task.enqueued", "task.completed"], lastEventId: String(Math.max(prunedThrough, head - BACKFILL_EVENTS)) },
            {
              onStarted: () => setFailure(null),
              // Started again (after a prune), the stream reads events the chart has: each counts once.
              // (Each stream delivers in seq order, so those are the ones up to the last counted.)
              onData: ({ data }) => {
                // Reading: this start was not refused (the server says "started" before its backfill, which is what may be).
                pruned = 0;
                restored = 0;
                setEvents((list) =>
                  list.length > 0 && data.seq <= list[list.length - 1]!.seq
                    ? list
                    : [...list.filter((e) => e.at > Date.now() - BUCKETS * BUCKET_MS), { seq: data.seq, type: data.type, at: data.createdAt.getTime() }],
                );
              },
              onError: (error) => {
                if (errorCode(error) === "UNAUTHORIZED") return onUnauthorized();
                if (errorCode(error) === "EVENTS_PRUNED" && ++pruned <= 3 && alive) return follow();
                // The database was restored from a backup: what the chart counted past its log is
                // gone (those seqs are given again), so it reads the restored log's last 5 minutes.
                if (isAheadOfLog(error) && ++restored <= 3 && alive) {
                  setEvents([]);
                  return follow();
                }
                setFailure(error);
              },
            },
          );
        },
        (error: unknown) => (errorCode(error) === "UNAUTHORIZED" ? onUnauthorized() : setFailure(error)),
      );
    follow();
    const timer = setInterval(() => setNow(Date.now()), 2000);
    return () => {
      alive = false;
      subscription?.unsubscribe();
      clearInterval(timer);
    };
  }, [api]);
  // Bars are the clock's 10 s (…:00–:10, :10–:20…), the last one the 10 s under way: counted back
  // from the page's now instead, every bar's edges moved each time it redrew, and a burst was one
  // bar, then two, then one, its counts changing as the operator watched.
  const start = (Math.floor(now / BUCKET_MS) + 1 - BUCKETS) * BUCKET_MS;
  const counts = (type: string) => {
    const buckets = Array<number>(BUCKETS).fill(0);
    for (const e of events) if (e.type === type && e.at >= start) buckets[Math.min(BUCKETS - 1, Math.floor((e.at - start) / BUCKET_MS))]!++;
    return buckets;
  };
  const enqueued = counts("task.enqueued");
  const completed = counts("task.completed");
  const top = Math.max(1, ...enqueued, ...completed);
  const bar = (value: number, i: number, offset: number, color: string) => (
    <rect x={i * 20 + offset} y={100 - (value / top) * 100} width={8} height={(value / top) * 100} fill={color}>
      <title>{value}</title>
    </rect>
  );
  return (
    <section>
      <h2>Throughput, last 5 minutes</h2>
      {failure !== null && <ErrorLine error={failure} />}
      <svg viewBox={`0 0 ${BUCKETS * 20} 100`} width="100%" height="120" preserveAspectRatio="none" role="img" aria-label="enqueued and completed per 10 s">
        {enqueued.map((v, i) => bar(v, i, 1, "#2f6fde"))}
        {completed.map((v, i) => bar(v, i, 10, "#23885a"))}
      </svg>
      <p class="legend">
        <span style="color:#2f6fde">■ enqueued {enqueued.reduce((a, b) => a + b, 0)}</span>
        <span style="color:#23885a">■ completed {completed.reduce((a, b) => a + b, 0)}</span>
        <span class="muted">per 10 s; peak {top}</span>
      </p>
    </section>
  );
}

/** Schedules the page shows at most (by id). */
const SHOWN_SCHEDULES = 100;

export function Schedules({ api, onUnauthorized, may }: ViewProps) {
  const page = usePolling(() => api.schedules.list.query({ limit: SHOWN_SCHEDULES }), 2000, [api], onUnauthorized);
  const [message, setMessage] = useState("");
  /** Pauses or resumes a schedule (operatorAct). */
  const toggle = async (scheduleId: string, paused: boolean) => {
    const act = () => (paused ? api.schedules.resume.mutate({ scheduleId }) : api.schedules.pause.mutate({ scheduleId }));
    setMessage(await operatorAct(paused ? "resume" : "pause", act, () => `${paused ? "resumed" : "paused"} ${scheduleId}`, page.refresh));
  };
  /** Runs a schedule now: its pending run due at once (operatorAct). */
  const runNow = async (scheduleId: string) => {
    setMessage(await operatorAct("run now", () => api.schedules.trigger.mutate({ scheduleId }), ({ task }) => `${scheduleId}: task ${task.id} is due now`, page.refresh));
  };
  // A server with no schedule shows no section (nor one while the first list loads).
  if (page.data === undefined ? page.error === undefined : page.data.items.length === 0) return null;
  return (
    <section class="wide">
      <h2>
        Schedules <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={page.error} />
      <table data-testid="schedules">
        <thead>
          <tr>
            <th>schedule</th>
            <th>when</th>
            <th>queue</th>
            <th>next run</th>
            <th class="num">runs</th>
            <th>last run</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {page.data?.items.map((s) => (
            <tr data-schedule={s.id} data-paused={String(s.paused)}>
              <td>{s.id}</td>
              <td>{s.cron === null ? `every ${rateWindowText(s.everyMs!)}` : `${s.cron} (${s.timezone})`}</td>
              <td>{s.task.queue}</td>
              {/* A date as well as a time: the next run may be days away. */}
              <td data-field="next-run" data-at={s.nextRunAt?.toISOString()}>
                {s.state === "running" ? (
                  <a href={`#/task/${s.nextTaskId}`}>{s.nextRunAt?.toLocaleString()}</a>
                ) : s.state === "waiting" ? (
                  // overlap "skip": its time is planned, its task waits for the last run to settle.
                  `${s.nextRunAt?.toLocaleString()} at the earliest, once the last run settles`
                ) : (
                  // "paused", or "ended": no run ahead (past its endAt, its maxRuns claimed).
                  s.state
                )}
              </td>
              <td class="num">{s.runs}</td>
              <td>{s.lastTaskId ? <a href={`#/task/${s.lastTaskId}`}>{s.lastRunAt?.toLocaleString()}</a> : "-"}</td>
              <td class="actions">
                {/* An ended schedule has nothing to pause (schedules.pause answers it as it is). */}
                {may.admin && s.state !== "ended" && <button onClick={() => void toggle(s.id, s.paused)}>{s.paused ? "Resume" : "Pause"}</button>}
                {/* Only a running schedule has a pending run to make due now (schedules.trigger). */}
                {may.admin && s.state === "running" && <button onClick={() => void runNow(s.id)}>Run now</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.data?.nextCursor && <p class="muted">the first {SHOWN_SCHEDULES} by name; `coordination schedules` lists them all</p>}
    </section>
  );
}

/** Agents the page shows at most. */
const SHOWN_AGENTS = 100;
/** The tasks an agent's row links at most, of those it holds: past them it says there are more. */
const SHOWN_HELD = 10;

export function Agents({ api, onUnauthorized, may }: ViewProps) {
  const agents = usePolling(
    async () => {
      // The first 100 by id: the registry can hold thousands, and each shown agent costs a query
      // for its tasks. One more is asked for, to say that there are more than are shown.
      // Agents with large metadata may not all fit in one answer: then as many as do.
      const { agents: listed, cut } = await api.agents.list.query({ limit: SHOWN_AGENTS + 1 }).then(
        (agents) => ({ agents, cut: false }),
        async (error: unknown) => {
          const fits = fitsInAnswer(error);
          if (fits === undefined) throw error;
          return { agents: await api.agents.list.query({ limit: fits }), cut: true };
        },
      );
      const list = listed.slice(0, SHOWN_AGENTS);
      const held = await Promise.all(list.map((agent) => api.tasks.list.query({ agentId: agent.agentId, status: "claimed", limit: SHOWN_HELD })));
      // A page that ends with a cursor: the agent holds more than it links (a worker of concurrency 64).
      return { more: cut || listed.length > SHOWN_AGENTS, rows: list.map((agent, i) => ({ agent, tasks: held[i]!.items, holdsMore: held[i]!.nextCursor !== null })) };
    },
    3000,
    [api],
    onUnauthorized,
  );
  const [message, setMessage] = useState("");
  /** Cordons or uncordons an agent (operatorAct). */
  const toggle = async (agentId: string, cordoned: boolean) => {
    const act = () => (cordoned ? api.agents.uncordon.mutate({ agentId }) : api.agents.cordon.mutate({ agentId, reason: "cordoned from the dashboard" }));
    setMessage(await operatorAct(cordoned ? "uncordon" : "cordon", act, () => `${cordoned ? "uncordoned" : "cordoned"} ${agentId}`, agents.refresh));
  };
  return (
    <section>
      <h2>
        Agents <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={agents.error} />
      <table data-testid="agents">
        <thead>
          <tr>
            <th>agent</th>
            <th>health</th>
            <th>capabilities</th>
            <th class="num">load</th>
            <th>holds</th>
            <th>last heartbeat</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {agents.data?.rows.map(({ agent, tasks, holdsMore }) => (
            <tr data-agent={agent.agentId} data-cordoned={agent.cordon ? "true" : "false"}>
              <td>
                {agent.agentId}{" "}
                {agent.cordon && (
                  <span class="badge" title={`no claim hands it a task${agent.cordon.until ? ` until ${time(agent.cordon.until)}` : ""}${agent.cordon.reason ? `: ${agent.cordon.reason}` : ""}`}>
                    {agent.cordon.automatic ? "quarantined" : "cordoned"}
                  </span>
                )}
              </td>
              <td class={`health-${agent.health}`}>{agent.health}</td>
              <td>{agent.capabilities.join(", ") || <span class="muted">-</span>}</td>
              <td class="num">{agent.load}</td>
              <td data-field="holds">
                {tasks.length === 0 ? <span class="muted">-</span> : tasks.map((task) => <a href={`#/task/${task.id}`}>{task.id.slice(-8)} </a>)}
                {holdsMore && (
                  <span class="muted" title={`coordination tasks list --agent ${agent.agentId} --status claimed lists them all`}>
                    and more
                  </span>
                )}
              </td>
              <td>{time(agent.lastHeartbeatAt)}</td>
              <td>
                {may.admin && <button onClick={() => void toggle(agent.agentId, Boolean(agent.cordon))}>{agent.cordon ? "Uncordon" : "Cordon"}</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {agents.data?.more ? (
        <p class="muted" data-testid="agents-more">
          The first {agents.data.rows.length} agents by id; the registry holds more (coordination agents, or GET /agents with limit and after, lists them all).
        </p>
      ) : null}
    </section>
  );
}

/** The locks the page lists: the first by name (`coordination locks` lists them all). */
const SHOWN_LOCKS = 100;

export function Locks({ api, onUnauthorized, may }: ViewProps) {
  const locks = usePolling(() => api.locks.list.query({ limit: SHOWN_LOCKS }), 3000, [api], onUnauthorized);
  const [message, setMessage] = useState("");
  /** Frees a lock whoever holds it (operatorAct): a stuck agent's. */
  const forceRelease = async (name: string) => {
    const act = () => api.locks.forceRelease.mutate({ name, reason: "released from the dashboard" });
    setMessage(await operatorAct("force-release", act, (answer) => (answer.released ? `released ${name} (held by ${answer.holder})` : `${name} was free`), locks.refresh));
  };
  return (
    <section>
      <h2>
        Locks <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={locks.error} />
      {locks.data?.items.length === 0 ? (
        <p class="muted" data-testid="locks-none">
          No named lock is held.
        </p>
      ) : (
        <table data-testid="locks">
          <thead>
            <tr>
              <th>lock</th>
              <th>holder</th>
              <th class="num">fencing token</th>
              <th>since</th>
              <th>until</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {locks.data?.items.map((lock) => (
              <tr data-lock={lock.name} data-holder={lock.holder ?? ""}>
                <td>{lock.name}</td>
                <td>{lock.holder}</td>
                <td class="num">{lock.fencingToken}</td>
                <td>{time(lock.acquiredAt)}</td>
                <td>{time(lock.expiresAt)}</td>
                <td>
                  {may.admin && <button onClick={() => void forceRelease(lock.name)}>Force release</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {locks.data?.nextCursor ? (
        <p class="muted" data-testid="locks-more">
          The first {locks.data.items.length} locks by name; more are held (coordination locks, or GET /locks with after, lists them all).
        </p>
      ) : null}
    </section>
  );
}

/** The permits the page lists: the first by semaphore name and token (`coordination semaphores` lists them all). */
const SHOWN_PERMITS = 100;

export function Semaphores({ api, onUnauthorized, may }: ViewProps) {
  const permits = usePolling(() => api.semaphores.list.query({ limit: SHOWN_PERMITS }), 3000, [api], onUnauthorized);
  const [message, setMessage] = useState("");
  /** Ends one permit whoever holds it (operatorAct): a stuck agent's. */
  const forceRelease = async (name: string, fencingToken: number, holder: string) => {
    const act = () => api.semaphores.forceRelease.mutate({ name, fencingToken, reason: "released from the dashboard" });
    setMessage(await operatorAct("force-release", act, (answer) => (answer.released > 0 ? `released ${holder}'s permit of ${name}` : `${holder}'s permit of ${name} had ended`), permits.refresh));
  };
  return (
    <section>
      <h2>
        Semaphores <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={permits.error} />
      {permits.data?.items.length === 0 ? (
        <p class="muted" data-testid="permits-none">
          No semaphore permit is held.
        </p>
      ) : (
        <table data-testid="permits">
          <thead>
            <tr>
              <th>semaphore</th>
              <th>holder</th>
              <th class="num">fencing token</th>
              <th class="num">limit</th>
              <th>since</th>
              <th>until</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {permits.data?.items.map((permit) => (
              <tr data-semaphore={permit.name} data-token={String(permit.fencingToken)} data-holder={permit.holder}>
                <td>{permit.name}</td>
                <td>{permit.holder}</td>
                <td class="num">{permit.fencingToken}</td>
                <td class="num">{permit.limit}</td>
                <td>{time(permit.acquiredAt)}</td>
                <td>{time(permit.expiresAt)}</td>
                <td>
                  {may.admin && <button onClick={() => void forceRelease(permit.name, permit.fencingToken, permit.holder)}>Force release</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {permits.data?.nextCursor ? (
        <p class="muted" data-testid="permits-more">
          The first {permits.data.items.length} permits by semaphore; more are held (coordination semaphores, or GET /semaphores with cursor, lists them all).
        </p>
      ) : null}
    </section>
  );
}

export function Webhooks({ api, onUnauthorized, may }: ViewProps) {
  const webhooks = usePolling(() => api.webhooks.list.query(), 3000, [api], onUnauthorized);
  const [message, setMessage] = useState("");
  /** Stops or starts a webhook's deliveries (operatorAct): a receiver down for maintenance, or back. */
  const setEnabled = async (id: string, enabled: boolean) => {
    const act = () => api.webhooks.update.mutate(enabled ? { id, enabled } : { id, enabled, reason: "disabled from the dashboard" });
    setMessage(await operatorAct(enabled ? "enable" : "disable", act, (webhook) => `${enabled ? "enabled" : "disabled"} the webhook to ${new URL(webhook.url).host}`, webhooks.refresh));
  };
  // Webhooks are an admin's: another credential is told so, not shown an error.
  if (errorCode(webhooks.error) === "FORBIDDEN") {
    return (
      <section>
        <h2>Webhooks</h2>
        <p class="muted" data-testid="webhooks-admin">
          Webhooks are shown to an admin token only.
        </p>
      </section>
    );
  }
  return (
    <section>
      <h2>
        Webhooks <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={webhooks.error} />
      {webhooks.data?.webhooks.length === 0 ? (
        <p class="muted" data-testid="webhooks-none">
          No webhook (coordination webhooks add URL --types …).
        </p>
      ) : (
        <table data-testid="webhooks">
          <thead>
            <tr>
              <th>url</th>
              <th>types</th>
              <th>state</th>
              <th class="num">delivered</th>
              <th class="num">at seq</th>
              <th>last error</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {webhooks.data?.webhooks.map((webhook) => (
              <tr data-webhook={webhook.id} data-enabled={String(webhook.enabled)} data-failing={String(webhook.failures > 0)}>
                <td title={webhook.description ?? ""}>{webhook.url}</td>
                <td>{webhook.types.join(", ")}</td>
                <td>{webhookStateText(webhook, time)}</td>
                <td class="num">{webhook.delivered}</td>
                <td class="num">{webhook.cursor}</td>
                <td>{webhook.lastError ?? ""}</td>
                <td>
                  {may.admin && <button onClick={() => void setEnabled(webhook.id, !webhook.enabled)}>{webhook.enabled ? "Disable" : "Enable"}</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The keys the page lists: the first by key (`coordination kv` lists them all). */
const SHOWN_KEYS = 100;
/** How much of a value the table shows, in characters of its JSON. */
const VALUE_SHOWN = 120;

/** How much of a value its cell's tooltip shows (a value may take 64 KiB). */
const TITLE_SHOWN = 2_000;

/** How much of a task's checkpoint its page shows, in characters of its JSON (one may take 64 KiB). */
const CHECKPOINT_SHOWN = 200;

/** A value's JSON on one line, cut to `chars` characters. */
const valueText = (value: unknown, chars = VALUE_SHOWN): string => {
  const text = JSON.stringify(value);
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
};

export function SharedState({ api, onUnauthorized, may }: ViewProps) {
  const keys = usePolling(() => api.kv.list.query({ limit: SHOWN_KEYS }), 3000, [api], onUnauthorized);
  const [message, setMessage] = useState("");
  /** Deletes a key at the version shown (operatorAct): one changed since is left as it is, and said so. */
  const remove = async (key: string, version: number) => {
    const act = () => api.kv.delete.mutate({ key, ifVersion: version });
    setMessage(await operatorAct("delete", act, () => `deleted ${key}`, keys.refresh));
  };
  return (
    <section>
      <h2>
        Shared state <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={keys.error} />
      {keys.data?.items.length === 0 ? (
        <p class="muted" data-testid="keys-none">
          No key is set.
        </p>
      ) : (
        <table data-testid="keys">
          <thead>
            <tr>
              <th>key</th>
              <th class="num">version</th>
              <th>value</th>
              <th>by</th>
              <th>updated</th>
              <th>expires</th>
              <th title="The agent whose life the key is tied to: it is deleted when that agent is seen offline or deregisters">goes with</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {keys.data?.items.map((entry) => (
              <tr data-key={entry.key} data-version={String(entry.version)}>
                {/* Keys and values without spaces (500 characters, a JSON line) wrap anywhere: the row stays on the page. */}
                <td class="long-text">{entry.key}</td>
                <td class="num">{entry.version}</td>
                <td class="long-text">
                  <code title={valueText(entry.value, TITLE_SHOWN)}>{valueText(entry.value)}</code>
                </td>
                <td class="long-text">{entry.updatedBy ?? "-"}</td>
                <td>{time(entry.updatedAt)}</td>
                <td>{time(entry.expiresAt)}</td>
                <td class="long-text">{entry.ephemeralOwner ?? "-"}</td>
                <td class="actions">
                  {may.write && may.writesKey(entry.key) && <button onClick={() => void remove(entry.key, entry.version)}>Delete</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {keys.data?.nextCursor ? (
        <p class="muted" data-testid="keys-more">
          The first {keys.data.items.length} keys; more are set (coordination kv, or GET /kv with after, lists them all).
        </p>
      ) : null}
    </section>
  );
}

export function DeadLetters({ api, onUnauthorized, may }: ViewProps) {
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const [message, setMessage] = useState<string>("");
  const cursor = cursors.at(-1);
  const page = usePolling(() => api.tasks.list.query({ status: "dead_letter", limit: 20, order: "desc", ...(cursor ? { cursor } : {}) }), 2000, [api, cursor], onUnauthorized);
  const act = async (what: TaskAction, taskId: string) => {
    setMessage(await runTaskAction(api, what, taskId, page.refresh));
  };
  return (
    <section class="wide">
      <h2>
        Dead letters <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={page.error} />
      <table data-testid="dead-letters">
        <thead>
          <tr>
            <th>task</th>
            <th>queue</th>
            <th class="num">attempts</th>
            <th>last error</th>
            <th>dead since</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {page.data?.items.map((task) => (
            <tr data-task={task.id}>
              <td>
                <a href={`#/task/${task.id}`}>{task.id}</a>
              </td>
              <td>{task.queue}</td>
              <td class="num">
                {task.attempts}/{task.maxAttempts}
              </td>
              <td class="long-text">{task.lastError ?? "-"}</td>
              <td>{time(task.finishedAt)}</td>
              <td class="actions">
                {may.admin && (
                  <>
                    <button onClick={() => void act("requeue", task.id)}>Requeue</button> <button onClick={() => void act("cancel", task.id)}>Cancel</button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        {cursors.length > 1 && <button onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>}{" "}
        {page.data?.nextCursor && <button onClick={() => setCursors([...cursors, page.data!.nextCursor!])}>Older</button>}
      </p>
    </section>
  );
}

const TAIL_KEPT = 200;

export function LiveTail({ api, onUnauthorized }: ViewProps) {
  const [patterns, setPatterns] = useState("*");
  const [draft, setDraft] = useState("*");
  const [events, setEvents] = useState<TaskEvent[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  // Where the tail starts: at the log's head when it opens, or, after the server's database was
  // restored from a backup, TAIL_KEPT events back in the restored log (a new object each time).
  const [start, setStart] = useState<{ lastEventId?: string }>({});
  useEffect(() => {
    setEvents([]);
    const types = patterns.split(",").map((p) => p.trim()).filter(Boolean);
    // Tracked by seq: after a reconnect (a server restart) the stream resumes where it was.
    const subscription = api.events.onEvent.subscribe({ ...(types.length > 0 ? { types } : {}), ...start }, {
      onData: ({ data }) => {
        setError(undefined);
        setEvents((list) => [data, ...list].slice(0, TAIL_KEPT));
      },
      onError: (failure) => {
        // Its resume refused as past the log's head: the database was restored from a backup, whose
        // log gives the seqs shown again. The tail shows the restored log's last events instead,
        // those written since the restart among them (a start at the head would miss them).
        if (isAheadOfLog(failure)) {
          return void api.events.head.query().then(
            ({ head, prunedThrough }) => setStart({ lastEventId: String(Math.max(prunedThrough, head - TAIL_KEPT)) }),
            (error: unknown) => setError(error),
          );
        }
        setError(failure);
        if (errorCode(failure) === "UNAUTHORIZED") onUnauthorized();
      },
    });
    return () => subscription.unsubscribe();
  }, [api, patterns, start]);
  return (
    <section class="wide">
      <h2>
        Live events
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setPatterns(draft);
            setStart({});
          }}
        >
          <input aria-label="event types" value={draft} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} size={40} /> <button>Follow</button>
        </form>
      </h2>
      <ErrorLine error={error} />
      <div class="tail">
        <table data-testid="tail">
          <tbody>
            {events.map((e) => (
              <tr data-seq={e.seq}>
                <td class="num">{e.seq}</td>
                <td>{time(e.createdAt)}</td>
                <td>{e.type}</td>
                <td>
                  {e.source}
                  {e.target ? ` → ${e.target}` : ""}
                </td>
                <td class="payload">
                  <code>{JSON.stringify(e.payload).slice(0, 300)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function TaskPage({ api, onUnauthorized, may, taskId }: ViewProps & { taskId: string }) {
  const [message, setMessage] = useState("");
  const detail = usePolling(
    async () => {
      const [task, history, context] = await Promise.all([
        api.tasks.get.query({ taskId }),
        api.tasks.events.query({ taskId }),
        api.memory.recall.query({ taskId, limit: 5 }).catch(() => []),
      ]);
      return { task, history, context };
    },
    2000,
    [api, taskId],
    onUnauthorized,
  );
  const act = async (what: TaskAction) => {
    setMessage(await runTaskAction(api, what, taskId, detail.refresh));
  };
  // A task that waits to run (pending or waiting): another priority, or due now (a delay, a retry's backoff).
  const [priority, setPriority] = useState("");
  const change = async (what: "priority" | "run now") => {
    const act = () => (what === "priority" ? api.tasks.update.mutate({ taskId, priority: Number(priority) }) : api.tasks.promote.mutate({ taskId }));
    setMessage(await operatorAct(what, act, (task) => (what === "priority" ? `priority ${task.priority}` : `due now`), detail.refresh));
  };
  const data = detail.data;
  return (
    <section class="wide">
      <h2>
        <a href="#/">← overview</a> Task <code>{taskId}</code> <span class="muted">{message}</span>
      </h2>
      <ErrorLine error={detail.error} />
      {data && (
        <div>
          <table data-testid="task">
            <tbody>
              <tr>
                <th>status</th>
                <td data-field="status">{data.task.status}</td>
                <th>queue</th>
                <td>{data.task.queue}</td>
                <th>priority</th>
                <td>{data.task.priority}</td>
              </tr>
              <tr>
                <th>attempts</th>
                <td>
                  {data.task.attempts}/{data.task.maxAttempts}
                </td>
                <th>lease</th>
                <td colSpan={3}>{data.task.leaseOwner ? `${data.task.leaseOwner}, token ${data.task.leaseToken}, until ${time(data.task.leaseExpiresAt)}` : "-"}</td>
              </tr>
              <tr>
                <th>retry backoff</th>
                <td colSpan={5} data-field="backoff">
                  {backoffText(data.task.backoff)}
                </td>
              </tr>
              {data.task.maxRunMs !== null && (
                <tr>
                  <th>run limit</th>
                  <td colSpan={5} data-field="maxRunMs">
                    {runLimitText(data.task, (at) => at.toLocaleString())}
                  </td>
                </tr>
              )}
              {data.task.expiresAt !== null && (
                <tr>
                  <th>expires</th>
                  <td colSpan={5} data-field="expiresAt">
                    no run starts after {data.task.expiresAt.toLocaleString()}
                  </td>
                </tr>
              )}
              {data.task.dedupeKey !== null && (
                <tr>
                  <th>dedupe</th>
                  <td colSpan={5} data-field="dedupe" class="long-text">
                    {dedupeText(data.task, (at) => at.toLocaleString())}
                  </td>
                </tr>
              )}
              {data.task.orderingKey !== null && (
                <tr>
                  <th>ordering</th>
                  <td colSpan={5} data-field="orderingKey" class="long-text">
                    {orderingKeyText(data.task)}
                  </td>
                </tr>
              )}
              {data.task.scheduleId !== null && (
                <tr>
                  <th>schedule</th>
                  <td colSpan={5} data-field="schedule">
                    a run of schedule {data.task.scheduleId}
                  </td>
                </tr>
              )}
              <tr>
                <th>progress</th>
                <td colSpan={5} class="long-text" data-field="progress">
                  {data.task.progressAt
                    ? `${JSON.stringify(data.task.progress)} (${age(Math.max(0, Date.now() - data.task.progressAt.getTime()))} ago, at ${data.task.progressAt.toLocaleString()})`
                    : "-"}
                </td>
              </tr>
              <tr>
                <th>checkpoint</th>
                <td colSpan={5} class="long-text" data-field="checkpoint">
                  {data.task.checkpointAt
                    ? `${valueText(data.task.checkpoint, CHECKPOINT_SHOWN)} (saved ${age(Math.max(0, Date.now() - data.task.checkpointAt.getTime()))} ago, at ${data.task.checkpointAt.toLocaleString()})`
                    : "-"}
                </td>
              </tr>
              <tr>
                <th>trace</th>
                <td colSpan={5} data-field="trace" title={data.task.traceparent ?? undefined}>
                  {traceText(data.task)}
                </td>
              </tr>
              <tr>
                <th>baggage</th>
                {/* W3C Baggage: printable ASCII without spaces by its grammar, up to 8 KiB: it wraps in its cell. */}
                <td colSpan={5} class="long-text" data-field="baggage">
                  {data.task.baggage ?? "-"}
                </td>
              </tr>
              <tr>
                <th>enqueued by</th>
                <td colSpan={5} data-field="enqueuedBy">
                  {data.task.enqueuedBy ?? "-"}
                </td>
              </tr>
            </tbody>
          </table>
          {/* Each only where the server takes it: a requeue brings back a dead letter or a cancelled task; a cancel stops one not settled, or discards a dead letter. */}
          {may.admin && data.task.status !== "completed" && (
            <p>
              {(data.task.status === "dead_letter" || data.task.status === "cancelled") && <button onClick={() => void act("requeue")}>Requeue</button>}{" "}
              {data.task.status !== "cancelled" && <button onClick={() => void act("cancel")}>Cancel</button>}
              {/* A checkpoint its runs keep failing on: the next run starts from the beginning (one running keeps its own). */}
              {data.task.checkpointAt !== null && data.task.status !== "claimed" && (
                <>
                  {" "}
                  {data.task.status === "dead_letter" || data.task.status === "cancelled" ? (
                    <button onClick={() => void act("requeue from the beginning")}>Requeue from the beginning</button>
                  ) : (
                    <button onClick={() => void act("clear checkpoint")}>Clear checkpoint</button>
                  )}
                </>
              )}
            </p>
          )}
          {(data.task.status === "pending" || data.task.status === "waiting") && (
            <p data-testid="not-run-yet">
              {may.admin && (
                <>
                  <label>
                    priority{" "}
                    <input type="number" min={0} max={1000000} step={1} placeholder={String(data.task.priority)} value={priority} onInput={(e) => setPriority((e.target as HTMLInputElement).value)} />
                  </label>{" "}
                  <button disabled={priority === ""} onClick={() => void change("priority")}>
                    Set priority
                  </button>
                </>
              )}
              {/* When a delayed (or debounced) task falls due: every credential sees it, an admin may make it due now. */}
              {data.task.status === "pending" && data.task.runAt.getTime() > Date.now() && (
                <>
                  {" "}
                  <span data-field="dueAt">due {time(data.task.runAt)}</span>
                  {may.admin && (
                    <>
                      {" "}
                      <button onClick={() => void change("run now")}>Run now</button>
                    </>
                  )}
                </>
              )}
            </p>
          )}
          <h3>Payload</h3>
          <pre>{json(data.task.payload)}</pre>
          <h3>Result</h3>
          <pre>{json(data.task.result)}</pre>
          <h3>Error history</h3>
          {data.task.errorHistory.length === 0 ? (
            <p class="muted">none</p>
          ) : (
            <table>
              <tbody>
                {data.task.errorHistory.map((e) => (
                  <tr>
                    <td>attempt {e.attempt}</td>
                    <td>{e.agentId}</td>
                    <td>{e.error}</td>
                    <td>{e.at.toLocaleString()}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <TaskLog api={api} onUnauthorized={onUnauthorized} may={may} taskId={taskId} />
          <h3>Events</h3>
          <table>
            <tbody>
              {data.history.map((e) => (
                <tr>
                  <td class="num">{e.seq}</td>
                  <td>{time(e.createdAt)}</td>
                  <td>{e.type}</td>
                  <td>
                    <code>{JSON.stringify(e.payload).slice(0, 200)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Context recall finds for it now</h3>
          {data.context.length === 0 ? (
            <p class="muted">no memories match</p>
          ) : (
            <ul>
              {data.context.map((m) => (
                <li>
                  <span class="muted">{m.score.toFixed(2)}</span> {m.memory.content.slice(0, 300)}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}

/** Lines the log shows at first, and adds with each "Show earlier lines": a log can hold thousands. */
const LOG_SHOWN = 200;
/** The most lines one read asks for (tasks.log's largest limit). */
const LOG_READ = 1000;
/**
 * The most line numbers one look back goes through for lines at the chosen level: a level few
 * lines have then costs a few reads, not one per thousand lines of a long log.
 */
const LOG_LOOK_BACK = 5000;
/** How often the page asks for new lines: a read after the last one, answered at once (no long-poll held per open page). */
const LOG_FOLLOW_MS = 1000;
/** Pages one follow reads at most before the page shows them: a run that logs faster is caught up by the next follows. */
const LOG_FOLLOW_PAGES = 5;
/** How much of a line's data its row shows, in characters of its JSON (data may take 16 KiB). */
const LOG_DATA_SHOWN = 300;

const LOG_FILTERS: ReadonlyArray<{ level: LogLevel | ""; label: string }> = [
  { level: "", label: "all levels" },
  { level: "info", label: "info and above" },
  { level: "warn", label: "warn and error" },
  { level: "error", label: "error only" },
];

/** What the log section shows, and where its reads stand. */
interface LogView {
  /** The lines shown, oldest first. */
  lines: LogLine[];
  /** Every line after this one, up to `after`, at the chosen level, is in `lines`: "Show earlier lines" reads before it. */
  from: number;
  /** The next follow reads after this line (the last answer's nextAfter). */
  after: number;
  /** How many of the oldest lines the log no longer keeps. */
  dropped: number;
  /** The most lines kept as new ones come (LOG_SHOWN, more after "Show earlier lines"): the oldest go first. */
  keep: number;
}

type LogRead = (after: number, limit: number) => Promise<Awaited<ReturnType<Api["tasks"]["log"]["query"]>>>;

/** The lines at the chosen level in (`lo`, `hi`], oldest first, a page at a time (a page stops at the server's answer bound). */
async function readRange(read: LogRead, lo: number, hi: number): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  let after = lo;
  while (after < hi) {
    const page = await read(after, Math.min(LOG_READ, hi - after));
    // With a level, a page goes on past `hi` to fill its limit: those lines are already shown.
    lines.push(...page.lines.filter((line) => line.line <= hi));
    if (!page.more) break;
    after = page.nextAfter;
  }
  return lines;
}

/**
 * Up to `want` lines at the chosen level before line `hi + 1`, newest kept, reading back from `hi`
 * towards `floor` (the dropped lines); `from`: the line before the first of them whose gap is read.
 */
async function lookBack(read: LogRead, filtered: boolean, hi: number, floor: number, want: number): Promise<{ lines: LogLine[]; from: number }> {
  const chunks: LogLine[][] = [];
  let from = hi;
  let found = 0;
  while (from > floor && found < want && hi - from < LOG_LOOK_BACK) {
    // Every kept line is there at all levels: exactly the lines wanted. At one level, a thousand numbers at a time.
    const lo = Math.max(floor, from - (filtered ? LOG_READ : want - found));
    const chunk = await readRange(read, lo, from);
    chunks.unshift(chunk);
    found += chunk.length;
    from = lo;
  }
  const lines = chunks.flat();
  if (lines.length <= want) return { lines, from };
  const cut = lines.length - want;
  return { lines: lines.slice(cut), from: lines[cut - 1]!.line };
}

/** "line 5" or "lines 5 to 9". */
const lineSpan = (first: number, last: number): string => (first === last ? `line ${first}` : `lines ${first} to ${last}`);

/**
 * A task's log on its page: the last LOG_SHOWN lines at the chosen level, earlier ones on demand,
 * and the new ones as they come (read every LOG_FOLLOW_MS, as the rest of the page is polled).
 */
function TaskLog({ api, onUnauthorized, taskId }: ViewProps & { taskId: string }) {
  const [level, setLevel] = useState<LogLevel | "">("");
  const [view, setView] = useState<LogView | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(false);
  // The view as the reads left it (a follow and "Show earlier lines" run apart, each merging into
  // the latest), and the generation of the reads: a new task or level starts again, and an
  // answer of the reads before it is dropped.
  const state = useRef<{ gen: number; view: LogView | undefined }>({ gen: 0, view: undefined });
  const commit = (next: LogView | undefined) => {
    state.current.view = next;
    setView(next);
  };
  const read: LogRead = (after, limit) => api.tasks.log.query({ taskId, after, limit, ...(level === "" ? {} : { level }) });
  const fail = (failure: unknown) => {
    setError(failure);
    if (errorCode(failure) === "UNAUTHORIZED") onUnauthorized();
  };

  useEffect(() => {
    const gen = ++state.current.gen;
    const current = () => state.current.gen === gen;
    commit(undefined);
    setError(undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const open = async () => {
      // Where the log ends now (a tail's nextAfter is its last line), and what it no longer keeps.
      const head = await api.tasks.log.query({ taskId, tail: 1 });
      const { lines, from } = await lookBack(read, level !== "", head.nextAfter, head.dropped, LOG_SHOWN);
      if (current()) commit({ lines, from, after: head.nextAfter, dropped: head.dropped, keep: LOG_SHOWN });
    };
    /** Reads the lines after the last one read; whether more were there than it read. */
    const follow = async (): Promise<boolean> => {
      let after = state.current.view!.after;
      let dropped = state.current.view!.dropped;
      let more = false;
      const fresh: LogLine[] = [];
      for (let pages = 0; pages < LOG_FOLLOW_PAGES; pages++) {
        const page = await read(after, LOG_READ);
        fresh.push(...page.lines);
        ({ nextAfter: after, dropped, more } = page);
        if (!more) break;
      }
      if (!current()) return false;
      const now = state.current.view!;
      let lines = fresh.length > 0 ? [...now.lines, ...fresh] : now.lines;
      let from = now.from;
      if (lines.length > now.keep) {
        const cut = lines.length - now.keep;
        from = lines[cut - 1]!.line;
        lines = lines.slice(cut);
      }
      commit({ ...now, lines, from, after, dropped });
      return more;
    };
    const tick = async () => {
      let more = false;
      try {
        if (state.current.view === undefined) await open();
        else more = await follow();
        if (current()) setError(undefined);
      } catch (failure) {
        if (current()) fail(failure);
      }
      if (current()) timer = setTimeout(() => void tick(), more ? 0 : LOG_FOLLOW_MS);
    };
    void tick();
    return () => {
      state.current.gen++;
      clearTimeout(timer);
    };
  }, [api, taskId, level]);

  /** Adds up to LOG_SHOWN lines before the first shown. */
  const earlier = async () => {
    const gen = state.current.gen;
    const before = state.current.view;
    if (before === undefined) return;
    setLoading(true);
    try {
      const got = await lookBack(read, level !== "", before.from, before.dropped, LOG_SHOWN);
      const now = state.current.view;
      // A follow that let the oldest lines go meanwhile moved `from`: these would leave a gap (a click again reads them).
      if (state.current.gen !== gen || now === undefined || now.from !== before.from) return;
      const lines = [...got.lines, ...now.lines];
      commit({ ...now, lines, from: got.from, keep: Math.max(now.keep, lines.length) });
    } catch (failure) {
      if (state.current.gen === gen) fail(failure);
    } finally {
      setLoading(false);
    }
  };

  // The newest line stays in sight while the reader is at the bottom; one who scrolled up is left there.
  const box = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  useEffect(() => {
    if (box.current && atBottom.current) box.current.scrollTop = box.current.scrollHeight;
  }, [view]);

  return (
    <div data-testid="task-log">
      <h3>
        Log{" "}
        <select aria-label="log level" value={level} onChange={(e) => setLevel((e.target as HTMLSelectElement).value as LogLevel | "")}>
          {LOG_FILTERS.map((f) => (
            <option value={f.level}>{f.label}</option>
          ))}
        </select>
      </h3>
      <ErrorLine error={error} />
      {view === undefined ? null : (
        <>
          {view.dropped > 0 && (
            <p class="muted" data-testid="log-dropped" title="the log keeps its newest lines within the server's maxTaskLogBytes">
              {view.dropped} older {view.dropped === 1 ? "line" : "lines"} dropped
            </p>
          )}
          {view.from > view.dropped && (
            <p data-testid="log-earlier">
              <span class="muted">{lineSpan(view.dropped + 1, view.from)} not shown</span>{" "}
              <button disabled={loading} onClick={() => void earlier()}>
                Show earlier lines
              </button>
            </p>
          )}
          {view.lines.length === 0 ? (
            <p class="muted" data-testid="log-empty">
              {level === "" ? "no line" : "no line at this level"}
            </p>
          ) : (
            <div
              class="log"
              ref={box}
              onScroll={(e) => {
                const el = e.currentTarget;
                atBottom.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
              }}
            >
              <table data-testid="log">
                <thead>
                  <tr>
                    <th class="num">line</th>
                    <th>time</th>
                    <th>level</th>
                    <th>agent</th>
                    <th class="num">run</th>
                    <th>message</th>
                  </tr>
                </thead>
                <tbody>
                  {view.lines.map((line) => (
                    <tr key={line.line} data-line={line.line} data-level={line.level} class={`log-${line.level}`}>
                      <td class="num">{line.line}</td>
                      <td class="log-time" title={line.at.toLocaleString()}>
                        {time(line.at)}
                      </td>
                      <td class="log-level">{line.level}</td>
                      <td class="long-text">{line.agentId}</td>
                      <td class="num" title={`lease token ${line.leaseToken}`}>
                        {line.attempt}
                      </td>
                      <td class="long-text">
                        <div class="log-message">{line.message}</div>
                        {line.data !== null && (
                          <code class="log-data" title={valueText(line.data, TITLE_SHOWN)}>
                            {valueText(line.data, LOG_DATA_SHOWN)}
                          </code>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}
