import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("health", () => {
  it("answers GET /health over REST and the health query over tRPC, both checking the database", async () => {
    await using t = await startTestServer();
    const viaRest = await rest(t.url, "GET", "/health");
    expect(viaRest.status).toBe(200);
    // The schema names the newest migration this build ships: builds of one version number differ by it.
    const newest = readdirSync(new URL("../prisma/migrations", import.meta.url), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort().at(-1);
    expect(viaRest.body).toMatchObject({ status: "ok", db: "ok", version: "0.1.0", schema: newest });
    expect(viaRest.body.uptimeMs).toBeGreaterThanOrEqual(0);

    const viaTrpc = await t.api.health.query();
    expect(viaTrpc).toMatchObject({ status: "ok", db: "ok", version: "0.1.0" });
  });

  it("serves the OpenAPI document listing the seed's routes", async () => {
    await using t = await startTestServer();
    const doc = await rest(t.url, "GET", "/openapi.json");
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe("3.1.0");
    // Relative to where the document was fetched, as OpenAPI 3.1 allows: the address the server
    // listens on (0.0.0.0 on a team's server, 127.0.0.1 behind a proxy) is no address for a
    // generated client or Swagger UI to send requests to.
    expect(doc.body.servers).toEqual([{ url: "/", description: "The server this document was fetched from" }]);
    expect(JSON.stringify(doc.body)).not.toContain(new URL(t.url).host);
    const paths = doc.body.paths as Record<string, Record<string, unknown>>;
    expect(Object.keys(paths["/tasks"]!)).toEqual(expect.arrayContaining(["post", "get"]));
    expect(paths["/tasks/claim/{agent_id}"]).toHaveProperty("get");
    expect(paths["/tasks/{taskId}/complete"]).toHaveProperty("post");
    expect(paths["/tasks/{taskId}/fail"]).toHaveProperty("post");
    expect(paths["/events"]).toHaveProperty("post");
    expect(paths["/events/{agentId}"]).toHaveProperty("get");
    expect(paths["/agents"]).toHaveProperty("get");
    expect(paths["/health"]).toHaveProperty("get");
  });
});
