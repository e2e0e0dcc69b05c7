// The agent registry on the event loop: writes go to the database writer thread, reads to the
// reader thread (agent-commands.ts, agent-queries.ts).
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import type { JsonObject } from "../json-types.js";
import { inBatches, whileMore } from "../db/in-batches.js";
import { CoordinationError, invalidField } from "../errors.js";
import { invalidInput } from "../trpc/error-shape.js";
import { isJsonObject, sameJson } from "../json-checks.js";
import { assertJsonDepth } from "../json-value.js";
import { MAX_CAPABILITIES } from "../schema-parts.js";
import { RELEASE_BATCH } from "./agent-commands.js";
import { agentCardSchema, type Agent, type AgentCard, type AgentListFilter, type CordonRequest, type FindByCapability } from "./agent-schemas.js";

/** Agents a health check's write changes at most. */
const HEALTH_BATCH = 500;

export class AgentService {
  constructor(
    private readonly config: Pick<Config, "maxJsonDepth">,
    private readonly db: Database,
  ) {}

  /** Registers (or re-registers) an agent; an A2A card's skills join its capabilities and the card is kept in metadata.a2aCard. */
  register(request: { agentId: string; capabilities: string[]; metadata: Record<string, unknown>; card?: AgentCard | undefined }): Promise<Agent> {
    const { card: given, ...registration } = request;
    // The card is kept under this key, validated: metadata as read back holds it, and may be sent
    // again as read (a re-registration that adds a capability), so a card there is the card.
    let card = given;
    if (Object.hasOwn(registration.metadata, "a2aCard")) {
      const { a2aCard, ...rest } = registration.metadata;
      const read = agentCardSchema.safeParse(a2aCard);
      if (!read.success) {
        // Named field by field, as a `card`'s refusal is (metadata.a2aCard.skills[0].name: is
        // required): zod's bare first message ("expected string, received undefined") said not
        // which field of the card was wrong.
        const refused = invalidInput(read.error.issues.map((issue) => ({ ...issue, path: ["metadata", "a2aCard", ...issue.path] })));
        throw new CoordinationError("INVALID_INPUT", `${refused.message} (metadata.a2aCard holds the agent's A2A card; give the card as \`card\`)`, refused.details);
      }
      if (card !== undefined && !sameJson(card, read.data)) throw invalidField("metadata.a2aCard", "differs from `card`: give the card once, as `card`");
      card ??= read.data;
      registration.metadata = rest;
    }
    if (card !== undefined) {
      assertJsonDepth("card", card, this.config.maxJsonDepth);
      const skills = card.skills.map((skill) => skill.id);
      registration.capabilities = [...new Set([...registration.capabilities, ...skills])];
      // One bound for what an agent offers, so a claim can always name all of it.
      if (registration.capabilities.length > MAX_CAPABILITIES) {
        throw invalidField("card.skills", `with capabilities, ${registration.capabilities.length} distinct capabilities; an agent offers at most ${MAX_CAPABILITIES}`);
      }
      registration.metadata = { ...registration.metadata, a2aCard: card };
    }
    assertJsonDepth("metadata", registration.metadata, this.config.maxJsonDepth);
    return this.db.write("agents.register", registration);
  }

  /**
   * The agent's A2A Agent Card: the one it registered with, or one made from its registration
   * (its capabilities as skills, each with the description A2A requires) for an agent that gave
   * none. Such a card names no `url`: this server is not the agent's A2A endpoint, and an address
   * made up for it would send A2A clients to the wrong place.
   */
  async card(agentId: string): Promise<JsonObject> {
    const agent = await this.get(agentId);
    const kept = (agent.metadata as { a2aCard?: unknown }).a2aCard;
    if (isJsonObject(kept)) return kept as JsonObject;
    return {
      name: agent.agentId,
      description: `Agent ${agent.agentId}, registered with the coordination server`,
      version: "1.0.0",
      capabilities: {},
      defaultInputModes: ["application/json"],
      defaultOutputModes: ["application/json"],
      skills: agent.capabilities.map((capability) => ({ id: capability, name: capability, description: `Takes tasks that require the capability ${capability}`, tags: [capability] })),
    };
  }

  /** Liveness, status and load; registers an agent heard of for the first time. */
  heartbeat(request: { agentId: string; status?: string | undefined; load?: number | undefined }): Promise<Agent> {
    return this.db.write("agents.heartbeat", request);
  }

  /**
   * Removes the agent; the tasks it held go back to the queue, in the same write when they are
   * RELEASE_BATCH or fewer, else RELEASE_BATCH a write first (an agent holding thousands of leases
   * must not make one long write).
   */
  async deregister(agentId: string): Promise<Agent> {
    let releasedBefore = 0;
    for (;;) {
      const { removed, released } = await this.db.write("agents.deregister", { agentId, releasedBefore });
      if (removed !== null) return removed;
      releasedBefore += released;
    }
  }

  /**
   * Cordons a registered agent: no claim or steal hands it a task from this write on (its parked
   * claims wait on, taking nothing), until agents.uncordon or `forMs` passed; the tasks it holds
   * run on and settle as usual. Answers the agent, its `cordon` set. `cordonedBy`: the
   * credential's id. AGENT_NOT_FOUND for an agent not registered.
   */
  cordon(request: CordonRequest, cordonedBy: string | null): Promise<Agent> {
    return this.db.write("agents.cordon", { ...request, cordonedBy });
  }

  /** Lifts a registered agent's cordon (an automatic quarantine too): its claims take tasks again. One not cordoned is answered as it is. */
  uncordon(agentId: string, uncordonedBy: string | null): Promise<Agent> {
    return this.db.write("agents.uncordon", { agentId, uncordonedBy });
  }

  get(agentId: string): Promise<Agent> {
    return this.db.read("agents.get", agentId);
  }

  /**
   * Agents in agentId order that match the filter; a page of `limit` after `after` (agent-schemas.ts
   * listAgentsInput). INVALID_INPUT naming `limit` (details.fits) when they pass maxResponseBytes.
   */
  list(filter: AgentListFilter): Promise<Agent[]> {
    return this.db.read("agents.list", filter);
  }

  /**
   * Agents offering a capability: healthy first, then stale, then offline; least loaded first
   * within each; at most `limit`. INVALID_INPUT naming `limit` when they pass maxResponseBytes.
   */
  findByCapability(request: FindByCapability): Promise<Agent[]> {
    return this.db.read("agents.findByCapability", request);
  }

  /** The lock-wait grace the last check allowed on a shared file (ms; tasks/lock-wait-grace.ts). */
  private checkGraceMs = 0;

  /** Publishes health transitions; an agent seen offline loses its leases at once. Run periodically. */
  async checkHealth(): Promise<number> {
    // As of now (agent-commands.ts), and looked for on the reader first: an idle server takes no
    // write lock every agentHealthCheckMs. Changes go in writes of HEALTH_BATCH agents, the event
    // loop and the writer given back between them: a fleet that goes offline at once (or a large
    // registry after a long outage) must not become one write of a million events.
    const asOf = Date.now();
    const changed = !(await this.db.read("agents.anyHealthChange", asOf - this.checkGraceMs))
      ? 0
      : await whileMore(async () => {
          const { changed, more, sharedGraceMs } = await this.db.write("agents.checkHealth", { asOf, limit: HEALTH_BATCH });
          this.checkGraceMs = sharedGraceMs;
          return { done: changed, more };
        });
    // Cordons whose time passed (they hold no more), lifted with their events: read on the reader first.
    if (await this.db.read("agents.anyLapsedCordon", Date.now())) await inBatches(HEALTH_BATCH, () => this.db.write("agents.liftLapsedCordons", HEALTH_BATCH));
    // Claims of agents gone offline beyond their offline write's share (and any a stop midway left), a write at a time.
    if (await this.db.read("agents.offlineHolding", undefined)) await inBatches(RELEASE_BATCH, () => this.db.write("agents.releaseOffline", RELEASE_BATCH));
    return changed;
  }
}
