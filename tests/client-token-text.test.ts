// A token as a program reads it: `readFileSync("worker.token", "utf8")`, an environment file,
// a secret mount all end it with a newline. Sent as it was, fetch refused every HTTP call
// ("invalid authorization header"), which the client took for a server it could not reach: each
// call waited waitForServerMs (30 s) and failed saying the server did not answer, and the
// WebSocket presented "secret\n" and was closed 4401. The whitespace around a token is dropped
// (no secret holds any); a token no header can carry is refused when the client is made, saying
// what is wrong with it and never the token; the commands say so with exit 2.
import { afterEach, describe, expect, it } from "vitest";
import { createCoordinationClient, type CoordinationClient } from "../client/index.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | SecureServer | undefined;
const clients: CoordinationClient[] = [];
afterEach(async () => {
  await killAllCli();
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A client that fails at once rather than wait for a server (so a refused call is seen as it is). */
function clientOf(url: string, token: string | undefined): CoordinationClient {
  const client = createCoordinationClient({ url, waitForServerMs: 0, ...(token === undefined ? {} : { token }) });
  clients.push(client);
  return client;
}

describe("a token with whitespace around it", () => {
  it("is sent without it: HTTP calls and the WebSocket are the token's", async () => {
    const s = await startSecureServer();
    t = s;
    const issued = await s.admin.tokens.create.mutate({ role: "agent", agentId: "file-reader" });
    const { api } = clientOf(s.url, `${issued.secret}\n`);
    expect(await api.tokens.whoami.query()).toEqual({ credentialsRequired: true, role: "agent", agentId: "file-reader", tokenId: issued.token.id, name: "", kvPrefixes: null });
    // The same token, CRLF and a leading tab (a Windows file, a pasted line): over the WebSocket too.
    const streamed = clientOf(s.url, `\t${issued.secret}\r\n`).api;
    const received = new Promise<unknown>((resolve, reject) => {
      const subscription = streamed.events.onEvent.subscribe(
        { agentId: "file-reader" },
        {
          onData: (event) => {
            subscription.unsubscribe();
            resolve(event.data.payload);
          },
          onError: reject,
        },
      );
    });
    // Published until the stream (opened lazily) is listening: each message lands in the mailbox it replays.
    await s.admin.events.publish.mutate({ type: "note.sent", source: "operator", target: "file-reader", payload: { n: 1 } });
    expect(await received).toEqual({ n: 1 });
  });

  it("an empty one is none, as an unset variable is", async () => {
    t = await startTestServer();
    expect((await clientOf(t.url, "").api.tokens.whoami.query()).credentialsRequired).toBe(false);
    expect((await clientOf(t.url, "  \n").api.tokens.whoami.query()).credentialsRequired).toBe(false);
  });

  it("one with a space, a control or a non-ASCII character inside is refused when the client is made, never shown", () => {
    const secret = "coord_abcdefghijklmnop";
    expect(() => createCoordinationClient({ url: "http://127.0.0.1:1", token: `${secret} ${secret}` })).toThrow(
      new TypeError("createCoordinationClient: token has whitespace characters within it (45 characters, not shown): a bearer token is printable ASCII without spaces; is it the secret alone?"),
    );
    expect(() => createCoordinationClient({ url: "http://127.0.0.1:1", token: `${secret}é` })).toThrow(/^createCoordinationClient: token has non-ASCII characters within it \(23 characters, not shown\)/);
    expect(() => createCoordinationClient({ url: "http://127.0.0.1:1", token: `${secret}\u0000x` })).toThrow(/^createCoordinationClient: token has control characters within it/);
  });

  it("the commands take a token file's newline, and refuse a token with a space inside, exit 2", async () => {
    const s = await startSecureServer();
    t = s;
    const issued = await s.admin.tokens.create.mutate({ role: "read", name: "wall" });
    const env = { COORDINATION_URL: s.url };
    expect(await runOperator({ args: ["whoami", "--token", `${issued.secret}\n`], env })).toMatchObject({ code: 0, stdout: `read (token ${issued.token.id}, named "wall")\n`, stderr: "" });
    expect(await runOperator({ args: ["whoami"], env: { ...env, COORDINATION_TOKEN: `${issued.secret}\r\n` } })).toMatchObject({ code: 0, stdout: `read (token ${issued.token.id}, named "wall")\n` });
    const spaced = await runOperator({ args: ["whoami", "--token", `Bearer ${issued.secret}`], env });
    expect(spaced).toMatchObject({
      code: 2,
      stdout: "",
      stderr: `coordination: --token has whitespace characters within it (${issued.secret.length + 7} characters, not shown): a bearer token is printable ASCII without spaces; is it the secret alone?\n`,
    });
  });
});
