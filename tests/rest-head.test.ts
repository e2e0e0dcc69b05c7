// HEAD on a GET resource answers as its GET does, without the body (RFC 9110 9.3.2): monitors
// and load balancers probe `HEAD /health`, and scripts check that a task or agent exists with
// `curl -I`. The dashboard answered HEAD already; the REST routes, /openapi.json and /metrics
// answered 405. A GET that changes something (the seed's claim) is never run for a HEAD.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

describe("HEAD", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  const head = async (path: string) => {
    const answer = await fetch(`${t.url}${path}`, { method: "HEAD" });
    return { status: answer.status, type: answer.headers.get("content-type"), length: answer.headers.get("content-length"), text: await answer.text() };
  };

  it("answers a GET route's status and headers without a body", async () => {
    const get = await fetch(`${t.url}/health`);
    const getLength = get.headers.get("content-length");
    await get.text();
    expect(await head("/health")).toEqual({ status: 200, type: "application/json", length: getLength, text: "" });
    for (const path of ["/tasks", "/agents", "/stats/tasks", "/openapi.json", "/metrics"]) {
      expect((await head(path)).status, path).toBe(200);
    }
    // A missing task is the GET's 404, its body left out.
    expect(await head("/tasks/no-such-task")).toMatchObject({ status: 404, type: "application/json", text: "" });
  });

  it("never claims: the seed's GET claim is a 405 for a HEAD, and the task stays pending", async () => {
    const task = (await rest(t.url, "POST", "/tasks", { queue: "head-claims", payload: {} })).body;
    const answer = await head("/tasks/claim/prober?queue=head-claims");
    expect(answer.status).toBe(405);
    expect((await rest(t.url, "GET", `/tasks/${task.id}`)).body.status).toBe("pending");
    // A route with no GET is a 405 as before.
    expect((await head("/tasks/steal")).status).toBe(405);
  });
});
