// A server stopping while its event bus reads the log for other processes' events (every
// crossProcessPollMs) closed the database under that read: the read failed, and a clean shutdown
// logged "reading the event log failed; retrying" at error level, a false alarm on every deploy
// that met a poll (seen with two servers on one file). The bus's stop waits for the read under
// way, and a read that fails once it is stopping is not logged. The reader here is the bus's own
// seam (the reader thread's events.tail), held until the test lets it end as a closed database
// ends it.
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { EventBus } from "../src/events/event-bus.js";
import type { CoordinationEvent } from "../src/events/event-schemas.js";

describe("the event bus at shutdown", () => {
  it("waits for a read under way before the database closes, and logs nothing of a read the shutdown ended", async () => {
    const lines: string[] = [];
    const log = pino({ level: "info" }, new Writable({ write: (chunk, _encoding, done) => void (lines.push(String(chunk)), done()) }));
    let reads = 0;
    let end: ((error: Error) => void) | undefined;
    const bus = new EventBus(
      () => {
        reads++;
        return new Promise((_resolve, reject) => (end = reject));
      },
      { crossProcessPollMs: 5 },
      log,
    );
    bus.start(0);
    await vi.waitFor(() => expect(reads).toBe(1), { timeout: 10_000 });
    let stopped = false;
    const stopping = bus.stop().then(() => (stopped = true));
    // The read is still under way: the database must not close yet.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stopped).toBe(false);
    end!(new Error("the database connection is not open"));
    await stopping;
    expect(reads).toBe(1);
    expect(lines.filter((line) => JSON.parse(line).level >= 50)).toEqual([]);
  });

  it("reads no further page once stopped, though the read under way says more are waiting", async () => {
    const log = pino({ level: "silent" });
    let reads = 0;
    let answer: ((page: { events: CoordinationEvent[]; more: boolean }) => void) | undefined;
    const bus = new EventBus(
      () => {
        reads++;
        return new Promise((resolve) => (answer = resolve));
      },
      { crossProcessPollMs: 5 },
      log,
    );
    bus.start(0);
    await vi.waitFor(() => expect(reads).toBe(1), { timeout: 10_000 });
    let stopped = false;
    const stopping = bus.stop().then(() => (stopped = true));
    // A full page, more behind it (another process writing on): the shutdown does not wait for those.
    const page = Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1 }) as CoordinationEvent);
    answer!({ events: page, more: true });
    await vi.waitFor(() => expect(stopped).toBe(true), { timeout: 10_000 });
    await stopping;
    expect(reads).toBe(1);
  });
});
