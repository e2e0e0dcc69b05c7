// An in-process caller hands the procedures its own objects, which, unlike anything a transport
// reads, may contain themselves (a parent pointer, a record that lists itself). The input checks
// that run before any schema (a refused key, json-checks.ts) walked such an input round its
// cycle until the process ran out of memory: a program's one mistaken call crashed it. Now a
// cycle is INVALID_INPUT naming where it points back, as over tRPC (trpc-input-graph.test.ts),
// and one object reached twice without a cycle is JSON written twice, as JSON.stringify has it.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CoordinationError, openCoordination } from "../src/index.js";
import { makeTempDir } from "./helpers/test-server.js";

const open = () => openCoordination({ settings: { dbPath: join(makeTempDir(), "graph.db"), logLevel: "silent" } });

describe("an in-process input that is a graph", () => {
  it("is refused naming where a cycle points back, and one shared object is stored twice", async () => {
    const coordination = await open();
    try {
      const node: Record<string, unknown> = { name: "root", children: [] };
      (node["children"] as unknown[]).push({ name: "child", parent: node });
      const refused = await coordination.tasks.enqueue({ queue: "graph", payload: node as never }).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(CoordinationError);
      expect(refused).toMatchObject({ code: "INVALID_INPUT", message: "payload.children[0].parent: refers back to payload (a cycle): an input must be JSON" });

      // The whole input inside itself, and a card's skill list holding itself.
      const input: Record<string, unknown> = { type: "t", source: "s" };
      input["payload"] = { again: input };
      await expect(coordination.events.publish(input as never)).rejects.toMatchObject({ code: "INVALID_INPUT", message: "payload.again: refers back to the whole input (a cycle): an input must be JSON" });
      const skills: unknown[] = [{ id: "s", name: "S" }];
      skills.push(skills);
      await expect(coordination.agents.register("a", { card: { name: "A", skills: skills as never } })).rejects.toMatchObject({ code: "INVALID_INPUT", message: "card.skills[1]: refers back to card.skills (a cycle): an input must be JSON" });

      // Shared, not cyclic: the same list under two keys is taken, as JSON.stringify writes it.
      const tags = ["x", "y"];
      const task = await coordination.tasks.enqueue({ queue: "graph", payload: { a: tags, b: { c: tags } } });
      expect((await coordination.tasks.get(task.id)).payload).toEqual({ a: ["x", "y"], b: { c: ["x", "y"] } });
    } finally {
      await coordination.close();
    }
  });
});
