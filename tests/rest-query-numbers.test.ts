// Numbers in a REST query string are read as the numbers JSON and the seed's Python clients write:
// Python's str() (and so urllib's urlencode and requests' params) writes a float below 1e-4 or
// from 1e16 with an exponent, `load=5e-05`, which a body's JSON takes as a number too.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

describe("REST query-string numbers", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("takes a fraction or an exponent as Python and JSON write them", async () => {
    const small = await rest(t.url, "POST", "/agents/py-1/heartbeat?load=5e-05");
    expect(small.status).toBe(200);
    expect(small.body.load).toBe(5e-5);
    const half = await rest(t.url, "POST", "/agents/py-1/heartbeat?load=.5");
    expect(half.status).toBe(200);
    expect(half.body.load).toBe(0.5);
    // The same number in the body and the query string is one value, not two that disagree.
    const both = await rest(t.url, "POST", "/agents/py-1/heartbeat?load=2.5E-1", { load: 0.25 });
    expect(both.status).toBe(200);
    expect(both.body.load).toBe(0.25);
    // An integer written with an exponent is that integer.
    const claim = await rest(t.url, "GET", "/tasks/claim/py-1?waitMs=0e0&leaseMs=1e3");
    expect(claim.status).toBe(204);
  });

  it("refuses whole digits past 2^53 that would be read as another number, rather than round them (Python writes big ints as digits)", async () => {
    const rounded = await rest(t.url, "POST", "/kv/qn/increment?by=9007199254740993");
    expect([rounded.status, rounded.body.code, rounded.body.message]).toEqual([400, "INVALID_INPUT", 'by: is past 2^53, where a number does not hold every whole number (got "9007199254740993", which would be read as 9007199254740992)']);
    expect((await rest(t.url, "GET", "/kv/qn")).body.entry).toBeNull();
    // Digits a number holds exactly still go through, past 2^53 too.
    const exact = await rest(t.url, "POST", "/kv/qn/increment?by=18014398509481984");
    expect([exact.status, exact.body.value]).toEqual([200, 18014398509481984]);
  });

  it("still refuses text that is not a finite number, naming the field", async () => {
    for (const text of ["abc", "0x10", "1e", "e5", "1.", "Infinity", "1e400", "NaN", " 1"]) {
      const answer = await rest(t.url, "POST", `/agents/py-1/heartbeat?load=${encodeURIComponent(text)}`);
      expect(answer.status, text).toBe(400);
      expect(answer.body).toMatchObject({ code: "INVALID_INPUT", message: `load: must be a number (got ${JSON.stringify(text)})` });
    }
    // An exponent that makes a fraction of an integer field is refused by the field's own rule.
    expect((await rest(t.url, "GET", "/tasks?limit=1e-1")).body.message).toBe("limit: must be an integer");
  });
});
