// The dashboard: served by the server at /, talking to it only through the typed tRPC client
// (HTTP and WebSocket), with the operator's token when credentials are on. What the token may
// not do (a read token: requeue, cancel, pause) the page does not offer, once the server said
// who it is (tokens.whoami); the server refuses it all the same, and the page says so.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { connect, errorCode, saveToken, savedToken } from "./api.js";
import { Agents, type Permissions, DeadLetters, LiveTail, Locks, Queues, Rates, Schedules, Semaphores, SharedState, TaskPage, Webhooks } from "./views.js";

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

/**
 * A task id from the page's address. A link cut short in a chat or a mail ends in half an escape
 * (`%E0%A4%A`), which decodeURIComponent refuses by throwing, in the middle of drawing the page:
 * then the text as it came, for the task page to say that no task has that id.
 */
function taskIdFromHash(hash: string): string | undefined {
  const raw = /^#\/task\/(.+)$/.exec(hash)?.[1];
  if (raw === undefined) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function Login({ onToken, rejected }: { onToken: (token: string) => void; rejected: boolean }) {
  const [draft, setDraft] = useState("");
  return (
    <section class="login">
      <h2>This server needs a token</h2>
      <p class="muted">A read token shows everything but the webhooks; an admin token may also act: requeue, cancel, reprioritize and run tasks now, pause queues, cordon agents, release locks. It stays in this browser.</p>
      {rejected && <p class="error">That token was not accepted.</p>}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onToken(draft.trim());
        }}
      >
        <input type="password" aria-label="token" value={draft} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} />
        <button class="primary">Open</button>
      </form>
    </section>
  );
}

function App() {
  const [token, setToken] = useState(savedToken());
  const [needsToken, setNeedsToken] = useState(false);
  // What the socket of the connection for `token` last said: a new token's connection is not live
  // until its own socket opens, whatever the one before it said last.
  const [socket, setSocket] = useState<{ open: boolean; code?: number | undefined; token: string | null }>({ open: false, token });
  const connection = useMemo(() => connect(token, (open, code) => setSocket({ open, code, token })), [token]);
  const live = socket.open && socket.token === token;
  useEffect(() => () => connection.close(), [connection]);
  // Who the token is: until the server says (or when it cannot: an older server), every button is
  // offered and the server decides. A question that failed on the way (the server restarting, a
  // proxy's error, its connections full) is asked again, or a read token would keep an admin's
  // buttons for as long as the page stays open.
  const [role, setRole] = useState<"admin" | "agent" | "read" | undefined>(undefined);
  // The keys an agent credential writes (kvPrefixes); null: any key, or not known yet.
  const [kvPrefixes, setKvPrefixes] = useState<readonly string[] | null>(null);
  useEffect(() => {
    let current = true;
    let retry: ReturnType<typeof setTimeout> | undefined;
    setRole(undefined);
    setKvPrefixes(null);
    const ask = (attempt: number): void => {
      connection.api.tokens.whoami.query().then(
        (me) => {
          if (!current) return;
          // Absent from a server older than kvPrefixes. Before the role, which the page waits on.
          setKvPrefixes(me.kvPrefixes ?? null);
          setRole(me.role);
        },
        (error: unknown) => {
          if (!current) return;
          const code = errorCode(error);
          if (code === "UNAUTHORIZED") onUnauthorized();
          // An older server has no tokens.whoami: nothing to ask again.
          else if (code !== "ROUTE_NOT_FOUND") retry = setTimeout(() => ask(attempt + 1), Math.min(500 * 2 ** attempt, 10_000));
        },
      );
    };
    ask(0);
    return () => {
      current = false;
      clearTimeout(retry);
    };
  }, [connection]);
  const may: Permissions = {
    admin: role === undefined || role === "admin",
    write: role !== "read",
    writesKey: (key) => kvPrefixes === null || kvPrefixes.some((prefix) => key.startsWith(prefix)),
  };
  const hash = useHash();
  const onUnauthorized = () => {
    // A token the server refused is forgotten: the prompt asks for another.
    if (token !== null) saveToken(null);
    setNeedsToken(true);
  };
  if (needsToken) {
    return (
      <Login
        rejected={token !== null}
        onToken={(next) => {
          saveToken(next);
          setToken(next);
          setNeedsToken(false);
        }}
      />
    );
  }
  const props = { api: connection.api, onUnauthorized, may };
  const taskId = taskIdFromHash(hash);
  return (
    <div>
      <header>
        <h1>
          <a href="#/">Coordination</a>
        </h1>
        <span class={`status ${live ? "" : "down"}`} data-testid="connection">
          {live ? "live" : "reconnecting…"}
        </span>
        {role !== undefined && role !== "admin" && (
          <span class="muted" data-testid="role">
            {role === "read" ? "read-only" : "agent token: an operator's acts need an admin token"}
          </span>
        )}
        {token && (
          <button
            onClick={() => {
              saveToken(null);
              setToken(null);
            }}
          >
            Forget token
          </button>
        )}
      </header>
      <main>
        {taskId ? (
          <TaskPage {...props} taskId={taskId} />
        ) : (
          <>
            <Queues {...props} />
            <Rates {...props} />
            <Schedules {...props} />
            <Agents {...props} />
            <Locks {...props} />
            <Semaphores {...props} />
            <SharedState {...props} />
            <Webhooks {...props} />
            <DeadLetters {...props} />
            <LiveTail {...props} />
          </>
        )}
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
