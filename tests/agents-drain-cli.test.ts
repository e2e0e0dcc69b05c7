// `coordination agents drain AGENT_ID`: what an operator does before taking a worker's machine
// down, as kubectl drains a node: the agent is cordoned (no claim hands it a task), and the
// command waits until the tasks it holds are settled, failed back to the queue or released.
import { createServer, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CliProcess, killAllCli, runOperator } from "./helpers/cli-process.js";
import { startTestServer } from "./helpers/test-server.js";

afterEach(killAllCli);

describe("coordination agents drain", () => {
  it("cordons the agent and waits until it holds no task, however each left it; exit 0", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", payload: 1 }, { queue: "q", payload: 2 }, { queue: "q", payload: 3 }] });
    const [done, retried] = await api.tasks.claimMany.mutate({ agentId: "w1", queues: ["q"], limit: 2, context: false });
    const drain = new CliProcess({ args: ["agents", "drain", "w1", "--timeout", "2m"], env: { COORDINATION_URL: t.url } });
    await vi.waitFor(() => expect(drain.stderr).toBe("coordination: agent w1 holds 2 tasks; waiting for them to settle\n"), { timeout: 30_000, interval: 20 });
    // Cordoned: its claims take nothing more, though a task waits.
    expect(await api.tasks.claim.mutate({ agentId: "w1", queues: ["q"], context: false })).toBeNull();
    await api.tasks.complete.mutate({ taskId: done!.id, agentId: "w1", leaseToken: done!.leaseToken, result: "ok" });
    await vi.waitFor(() => expect(drain.stderr).toContain("holds 1 task; waiting for it to settle\n"), { timeout: 30_000, interval: 20 });
    // A run that fails into a retry leaves the agent as well: the task goes back to the queue, not settled.
    await api.tasks.fail.mutate({ taskId: retried!.id, agentId: "w1", leaseToken: retried!.leaseToken, error: "moving hosts", retry: true });
    expect(await drain.waitForExit(30_000)).toMatchObject({ code: 0, stdout: "agent w1 drained: it holds no task, and stays cordoned (coordination agents uncordon w1 lifts it)\n" });
    expect((await api.agents.get.query({ agentId: "w1" })).cordon).toMatchObject({ reason: "drained" });
    expect((await api.tasks.get.query({ taskId: retried!.id })).status).toBe("pending");
  });

  it("exit 4 when the agent still holds tasks after --timeout, naming them; the cordon stays", async () => {
    await using t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ queue: "q" });
    await t.api.tasks.claim.mutate({ agentId: "w2", queues: ["q"], context: false });
    const drain = await runOperator({ args: ["agents", "drain", "w2", "--timeout", "1s", "--reason", "host maintenance"], env: { COORDINATION_URL: t.url } }, 30_000);
    expect(drain).toMatchObject({
      code: 4,
      stdout: "",
      stderr: `coordination: agent w2 holds 1 task; waiting for it to settle\ncoordination: agent w2 still holds 1 task after 1s: ${task.id}; it stays cordoned\n`,
    });
    expect((await t.api.agents.get.query({ agentId: "w2" })).cordon).toMatchObject({ reason: "host maintenance" });
    // --json says the same to a script.
    const json = await runOperator({ args: ["agents", "drain", "w2", "--timeout", "1s", "--json"], env: { COORDINATION_URL: t.url } }, 30_000);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ drained: false, holding: [task.id], agent: { agentId: "w2" } });
  });

  it("a task released while the last round waited is not named as held: exit 0, not 4", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ queue: "q" });
    const run = await t.api.tasks.claim.mutate({ agentId: "w4", queues: ["q"], context: false });
    // One round's wait is 2 s at most: --timeout 2s is a drain whose every wait is its last.
    const drain = new CliProcess({ args: ["agents", "drain", "w4", "--timeout", "2s"], env: { COORDINATION_URL: t.url } });
    await vi.waitFor(() => expect(drain.stderr).toContain("holds 1 task"), { timeout: 30_000, interval: 20 });
    // A release settles nothing (no wait wakes for it): the agent holds no task from here on.
    await t.api.tasks.release.mutate({ taskId: run!.id, agentId: "w4", leaseToken: run!.leaseToken });
    expect(await drain.waitForExit(30_000)).toMatchObject({ code: 0, stdout: "agent w4 drained: it holds no task, and stays cordoned (coordination agents uncordon w4 lifts it)\n" });
  });

  it("a server that never answers the cordon holds it past neither Ctrl-C (exit 4) nor --timeout", async () => {
    // Takes connections, answers nothing.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const env = { COORDINATION_URL: `http://127.0.0.1:${(silent.address() as { port: number }).port}` };
      const interrupted = new CliProcess({ args: ["agents", "drain", "w5", "--json"], env });
      const timed = new CliProcess({ args: ["agents", "drain", "w5", "--timeout", "1s"], env });
      await vi.waitFor(() => expect(sockets.length).toBeGreaterThanOrEqual(2), { timeout: 30_000, interval: 20 });
      interrupted.child.kill("SIGINT");
      const stopped = await interrupted.waitForExit();
      expect(stopped).toMatchObject({ code: 4, stderr: "coordination: interrupted before the server answered the cordon: agent w5 may be cordoned, and may hold tasks\n" });
      expect(JSON.parse(stopped.stdout)).toEqual({ drained: false, agent: null, holding: null });
      // --timeout and a round's grace (15 s), as tasks wait: the cordon was sent and no answer came,
      // so it may have been made (mayHaveBeenServed), not "cannot reach the server". Bounded
      // generously (a loaded machine): what it rules out is undici's own wait for headers, 300 s.
      const startedAt = Date.now();
      expect(await timed.waitForExit(90_000)).toMatchObject({ code: 1, stderr: expect.stringMatching(/^coordination: no answer from the server at .*: what was asked may have been done; look before asking again\n$/) });
      expect(Date.now() - startedAt).toBeLessThan(90_000);
    } finally {
      sockets.forEach((socket) => socket.destroy());
      silent.close();
    }
  }, 60_000);

  it("--deregister removes an agent once drained (its keys tied to its life go with it); usage errors exit 2", async () => {
    await using t = await startTestServer();
    await t.api.kv.set.mutate({ key: "presence/w3", value: "here", agentId: "w3", ephemeral: true });
    const env = { COORDINATION_URL: t.url };
    expect(await runOperator({ args: ["agents", "drain", "w3", "--deregister"], env }, 30_000)).toMatchObject({ code: 0, stdout: "agent w3 drained: it held no task, and was deregistered\n", stderr: "" });
    await expect(t.api.agents.get.query({ agentId: "w3" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
    expect((await t.api.kv.get.query({ key: "presence/w3" })).entry).toBeNull();
    // The cordon stays, as with any deregistration: a worker still running comes back cordoned.
    await t.api.tasks.enqueue.mutate({ queue: "after" });
    expect(await t.api.tasks.claim.mutate({ agentId: "w3", queues: ["after"], context: false })).toBeNull();
    expect((await t.api.agents.get.query({ agentId: "w3" })).cordon).toMatchObject({ reason: "drained" });
    expect(await runOperator({ args: ["agents", "drain"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("agents drain needs an AGENT_ID") });
    expect(await runOperator({ args: ["agents", "drain", "a", "b"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("agents drain takes one AGENT_ID (got 2)") });
    expect(await runOperator({ args: ["agents", "drain", "nobody"], env })).toMatchObject({ code: 1, stderr: expect.stringContaining("AGENT_NOT_FOUND") });
  });
});
