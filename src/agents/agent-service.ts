// The agent registry on the event loop: writes go to the database writer thread, reads to the
// reader thread (agent-commands.ts, agent-queries.ts).
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import { assertJsonDepth } from "../json-value.js";
import type { Agent, AgentHealth } from "./agent-schemas.js";

export class AgentService {
  constructor(
    private readonly config: Pick<Config, "maxJsonDepth">,
    private readonly db: Database,
  ) {}

  register(request: { agentId: string; capabilities: string[]; metadata: Record<string, unknown> }): Promise<Agent> {
    assertJsonDepth("metadata", request.metadata, this.config.maxJsonDepth);
    return this.db.write("agents.register", request);
  }

  /** Liveness, status and load; registers an agent heard of for the first time. */
  heartbeat(request: { agentId: string; status?: string | undefined; load?: number | undefined }): Promise<Agent> {
    return this.db.write("agents.heartbeat", request);
  }

  /** Removes the agent; tasks it still held go back to the queue at once. */
  deregister(agentId: string): Promise<Agent> {
    return this.db.write("agents.deregister", agentId);
  }

  get(agentId: string): Promise<Agent> {
    return this.db.read("agents.get", agentId);
  }

  list(filter: { capability?: string | undefined; health?: AgentHealth | undefined; status?: string | undefined }): Promise<Agent[]> {
    return this.db.read("agents.list", filter);
  }

  /** Agents offering a capability: healthy first, then stale, then offline; least loaded first within each. */
  findByCapability(capability: string): Promise<Agent[]> {
    return this.db.read("agents.findByCapability", capability);
  }

  /** Publishes health transitions; an agent seen offline loses its leases at once. Run periodically. */
  async checkHealth(): Promise<number> {
    // As of now (agent-commands.ts), and looked for on the reader first: an idle server takes no
    // write lock every agentHealthCheckMs.
    const asOf = Date.now();
    if (!(await this.db.read("agents.anyHealthChange", asOf))) return 0;
    return this.db.write("agents.checkHealth", { asOf });
  }
}
