// An A2A card given as metadata.a2aCard (the form an agent reads back and sends again) is checked
// as `card` is: a refusal names the field of the card that is wrong, not only zod's bare words.
import { describe, expect, it } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("an A2A card in metadata.a2aCard", () => {
  it("is refused naming the card's field that is wrong, as a card given as `card` is", async () => {
    await using t = await startTestServer();
    // A skill without its name: as `card`, the refusal says card.skills[0].name.
    const asCard = await rest(t.url, "POST", "/agents", { agentId: "a1", capabilities: [], card: { name: "n", skills: [{ id: "s" }] } });
    expect(asCard.status).toBe(400);
    expect(asCard.body.message).toContain("card.skills[0].name");

    const inMetadata = await rest(t.url, "POST", "/agents", { agentId: "a2", capabilities: [], metadata: { a2aCard: { name: "n", skills: [{ id: "s" }] } } });
    expect(inMetadata.status).toBe(400);
    expect(inMetadata.body.code).toBe("INVALID_INPUT");
    expect(inMetadata.body.message).toContain("metadata.a2aCard.skills[0].name");
    expect(inMetadata.body.details.issues).toContainEqual(expect.objectContaining({ path: "metadata.a2aCard.skills[0].name" }));
    // Still says where a card belongs.
    expect(inMetadata.body.message).toContain("`card`");
    expect((await rest(t.url, "GET", "/agents/a2/card")).status).toBe(404);
  });
});
