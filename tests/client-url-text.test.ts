// A server address as a person writes it: "127.0.0.1:8000" without its scheme, a ws:// one, a
// typo. The client took any text and failed each call with "Invalid URL" as a TRPCClientError,
// which runWorker and the helpers rode out as an outage and the commands reported as "no answer
// from the server … ask again": asking again could never help. A url that is not an http(s)
// address is refused when the client is made, saying which and why (a password in it hidden);
// the commands say so with exit 2, as they do for a token no header can carry.
import { describe, expect, it } from "vitest";
import { createCoordinationClient } from "../client/index.js";
import { runOperator } from "./helpers/cli-process.js";

describe("a url that is no server's address", () => {
  it.each([
    ["127.0.0.1:8000", /url "127\.0\.0\.1:8000" is not an http:\/\/ or https:\/\/ address/],
    ["localhost", /url "localhost" is not an http:\/\/ or https:\/\/ address/],
    ["ws://127.0.0.1:8000", /url "ws:\/\/127\.0\.0\.1:8000" is not an http:\/\/ or https:\/\/ address/],
    ["", /url "" is not an http:\/\/ or https:\/\/ address/],
  ])("%j is refused when the client is made, naming it", (url, message) => {
    expect(() => createCoordinationClient({ url })).toThrow(TypeError);
    expect(() => createCoordinationClient({ url })).toThrow(message);
  });

  it("in a list, names its place; a password in it is never shown", () => {
    expect(() => createCoordinationClient({ url: ["http://127.0.0.1:8000", "ftp://ops:hunter2@10.0.0.2"] })).toThrow(/url\[1\] "ftp:\/\/ops:\*\*\*@10\.0\.0\.2\/?" is not an http:\/\/ or https:\/\/ address/);
    expect(() => createCoordinationClient({ url: ["http://127.0.0.1:8000", "ftp://ops:hunter2@10.0.0.2"] })).not.toThrow(/hunter2/);
  });

  it("an address with a path (a server behind a proxy's prefix) is taken", async () => {
    const client = createCoordinationClient({ url: "https://proxy.example/coordination/" });
    await client.close();
  });

  it("the commands refuse it, exit 2, rather than say the server gave no answer", async () => {
    const exit = await runOperator({ args: ["stats", "--url", "127.0.0.1:8000"], env: {} });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(/^coordination: url "127\.0\.0\.1:8000" is not an http:\/\/ or https:\/\/ address/);
  });
});
