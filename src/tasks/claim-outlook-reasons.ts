// A claim outlook (tasks.claimOutlook) in words: what MCP's claim_task tells the model beside a
// null, and `coordination agents why-idle` the operator. A null alone reads as an empty queue, and
// a model claims again, and again (or gives up), while a paused queue, a full limit, a rate window
// or a capability it never offered is what keeps the work from it.
import type { ClaimOutlookView } from "./task-schemas.js";

const names = (queues: readonly string[]) => queues.map((queue) => JSON.stringify(queue)).join(", ");
const queueWord = (queues: readonly string[], one: string, many: string) => `${queues.length === 1 ? "queue" : "queues"} ${names(queues)} ${queues.length === 1 ? one : many}`;

/** Each reason the outlook finds that a waiting task is not the claimer's, as a clause; none when nothing waits for it. */
export function claimOutlookReasons(outlook: ClaimOutlookView): string[] {
  const reasons: string[] = [];
  if (outlook.paused.length > 0) reasons.push(`${queueWord(outlook.paused, "is", "are")} paused by an operator (${outlook.paused.length === 1 ? "its tasks wait until it is" : "their tasks wait until they are"} resumed)`);
  if (outlook.fullQueues.length > 0) reasons.push(`${queueWord(outlook.fullQueues, "runs", "run")} as many tasks at once as its limit allows (one starts when a run of it ends)`);
  for (const { queue, maxClaims, perMs, freesAt } of outlook.rateLimited) {
    reasons.push(`queue ${JSON.stringify(queue)} took its ${maxClaims} ${maxClaims === 1 ? "claim" : "claims"} per ${perMs} ms: the next may be made at ${freesAt.toISOString()}`);
  }
  const needing = outlook.needCapabilities.reduce((sum, { tasks }) => sum + tasks, 0);
  if (needing > 0) {
    const which = outlook.needCapabilities.map(({ capability, tasks }) => `${JSON.stringify(capability)} (${tasks})`).join(", ");
    const offered = outlook.offered.length === 0 ? "none" : names(outlook.offered);
    reasons.push(`${needing} of the ${outlook.looked} due tasks looked at ${needing === 1 ? "needs" : "need"} a capability this agent does not offer: ${which}; it offers ${offered}`);
  }
  if (outlook.forOtherAgents > 0) reasons.push(`${outlook.forOtherAgents} of the ${outlook.looked} due tasks looked at ${outlook.forOtherAgents === 1 ? "is for another agent" : "are for other agents"}`);
  if (outlook.nextRunAt !== null) reasons.push(`the next task this agent may run falls due at ${outlook.nextRunAt.toISOString()} (claim again then, or wait for it with waitMs)`);
  return reasons;
}

/** The note for a claim that answered no task (MCP); undefined when nothing waits for the claimer (nor came due since): the null says all. */
export function claimOutlookNote(outlook: ClaimOutlookView): string | undefined {
  const reasons = claimOutlookReasons(outlook);
  // A task it may run came due as its claim answered (or another's claim is about to take it):
  // the reasons are then the other tasks', and the model is to claim again, not to wait them out.
  if (outlook.claimable) return `A task this agent may run is due now (it came as this claim answered): claim again.${reasons.length === 0 ? "" : ` Other tasks wait that it may not take now: ${reasons.join("; ")}.`}`;
  return reasons.length === 0 ? undefined : `No task for this agent now, though work waits: ${reasons.join("; ")}.`;
}
