// tRPC procedures of the agent registry.
import { z } from "zod";
import { ADMIN, AS_AGENT, credentialIdOf, READ } from "../auth/access.js";
import { procedure, router } from "../trpc/init.js";
import { jsonObjectOutput } from "../json-value.js";
import { agentHeartbeatInput, agentIdInput, agentSchema, cordonInput, findByCapabilityInput, listAgentsInput, registerInput } from "./agent-schemas.js";

const tags = ["agents"];

export const agentRouter = router({
  register: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/agents", tags, summary: "Register (or re-register) an agent" } })
    .input(registerInput)
    .output(agentSchema)
    .mutation(({ ctx, input }) => ctx.services.agents.register(input)),

  heartbeat: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/agents/{agentId}/heartbeat", tags, summary: "Report liveness, status and load (registers an unknown agent)" } })
    .input(agentHeartbeatInput)
    .output(agentSchema)
    .mutation(({ ctx, input }) => ctx.services.agents.heartbeat(input)),

  deregister: procedure
    .meta({ access: AS_AGENT, rest: { method: "DELETE", path: "/agents/{agentId}", tags, summary: "Remove an agent; tasks it still holds return to the queue, each run charged as a lease expiry", errors: ["AGENT_NOT_FOUND"] } })
    .input(agentIdInput)
    .output(agentSchema)
    .mutation(({ ctx, input }) => ctx.services.agents.deregister(input.agentId)),

  /** An operator's call: it bounds what an agent is handed, whatever its own credential says. Logged. */
  cordon: procedure
    .meta({
      access: ADMIN,
      rest: { method: "POST", path: "/agents/{agentId}/cordon", tags, summary: "Cordon an agent: no claim or steal hands it a task until it is uncordoned (or forMs passed); the tasks it holds run on", errors: ["AGENT_NOT_FOUND"] },
    })
    .input(cordonInput)
    .output(agentSchema)
    .mutation(async ({ ctx, input }) => {
      const cordonedBy = credentialIdOf(ctx.caller);
      const agent = await ctx.services.agents.cordon(input, cordonedBy);
      ctx.services.log.info({ agentId: input.agentId, reason: agent.cordon?.reason, until: agent.cordon?.until, cordonedBy }, "agent cordoned");
      return agent;
    }),

  uncordon: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/agents/{agentId}/uncordon", tags, summary: "Lift an agent's cordon (an automatic quarantine too): its claims take tasks again", errors: ["AGENT_NOT_FOUND"] } })
    .input(agentIdInput)
    .output(agentSchema)
    .mutation(async ({ ctx, input }) => {
      const uncordonedBy = credentialIdOf(ctx.caller);
      const agent = await ctx.services.agents.uncordon(input.agentId, uncordonedBy);
      ctx.services.log.info({ agentId: input.agentId, uncordonedBy }, "agent uncordoned");
      return agent;
    }),

  get: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/agents/{agentId}", tags, summary: "Get an agent", errors: ["AGENT_NOT_FOUND"] } })
    .input(agentIdInput)
    .output(agentSchema)
    .query(({ ctx, input }) => ctx.services.agents.get(input.agentId)),

  list: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/agents", tags, summary: "List agents" } })
    .input(listAgentsInput)
    .output(z.array(agentSchema))
    .query(({ ctx, input }) => ctx.services.agents.list(input)),

  /** An A2A Agent Card for any registered agent: its own, or one made from its capabilities. */
  card: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/agents/{agentId}/card", tags, summary: "The agent's A2A Agent Card", errors: ["AGENT_NOT_FOUND"] } })
    .input(agentIdInput)
    .output(jsonObjectOutput)
    .query(({ ctx, input }) => ctx.services.agents.card(input.agentId)),

  findByCapability: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/agents/capability/{capability}", tags, summary: "Agents with a capability, healthy and least loaded first" } })
    .input(findByCapabilityInput)
    .output(z.array(agentSchema))
    .query(({ ctx, input }) => ctx.services.agents.findByCapability(input)),
});
