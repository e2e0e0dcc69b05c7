// An agent's live stream (events.onEvent with agentId) that has received nothing yet when its
// server goes away: on reconnect it must still get the events of its subscription published while
// it was away (no silent gap), and still start with the agent's unread mailbox, each message once.
import { describe, expect, it, vi } from "vitest";
import { createCoordinationClient } from "../client/index.js";
import { collectEvents } from "./helpers/event-collector.js";
import { startTestServer } from "./helpers/test-server.js";

describe("an agent's stream that received nothing before its server restarted", () => {
  it("gets its subscription's events published while it was away, and its mailbox once", async () => {
    const t1 = await startTestServer();
    const client = createCoordinationClient({ url: t1.url });
    let t3: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      await t1.api.agents.register.mutate({ agentId: "watcher", capabilities: [] });
      await t1.api.events.subscribe.mutate({ agentId: "watcher", types: ["gap.*"] });
      await t1.api.events.publish.mutate({ type: "other.before", source: "t" });
      const stream = collectEvents(client.api, { agentId: "watcher" });
      await stream.started;
      await t1.api.events.publish.mutate({ type: "other.x", source: "t" });
      await t1.stop();
      // Published on the same file while the stream's server is down (a second server on another port).
      const t2 = await startTestServer({}, t1.dir);
      const during = await t2.server.services.events.publish({ type: "gap.during", source: "t", payload: {} });
      const message = await t2.server.services.events.publish({ type: "note", source: "t", target: "watcher", payload: {} });
      await t2.stop();
      t3 = await startTestServer({ port: t1.server.port }, t1.dir);
      const after = await t3.server.services.events.publish({ type: "gap.after", source: "t", payload: {} });
      await vi.waitFor(() => expect(stream.seqs()).toContain(after.seq), { timeout: 15_000, interval: 25 });
      expect(stream.seqs()).toEqual([during.seq, message.seq, after.seq]);
      expect(stream.errors).toEqual([]);
      stream.unsubscribe();
    } finally {
      await client.close();
      await t3?.stop();
      await t1.stop({ removeFiles: true });
    }
  });

  it("an agent with no subscription row starts with its unread mailbox, and gets a message sent while it was away, each once", async () => {
    const t1 = await startTestServer();
    const client = createCoordinationClient({ url: t1.url });
    let t2: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      const first = await t1.api.events.publish.mutate({ type: "note", source: "t", target: "inbox-only" });
      const stream = collectEvents(client.api, { agentId: "inbox-only" });
      await vi.waitFor(() => expect(stream.seqs()).toEqual([first.seq]), { timeout: 10_000, interval: 25 });
      await t1.stop();
      t2 = await startTestServer({ port: t1.server.port }, t1.dir);
      const second = await t2.server.services.events.publish({ type: "note", source: "t", target: "inbox-only", payload: {} });
      await vi.waitFor(() => expect(stream.seqs()).toContain(second.seq), { timeout: 15_000, interval: 25 });
      expect(stream.seqs()).toEqual([first.seq, second.seq]);
      expect(stream.errors).toEqual([]);
      stream.unsubscribe();
    } finally {
      await client.close();
      await t2?.stop();
      await t1.stop({ removeFiles: true });
    }
  });
});
