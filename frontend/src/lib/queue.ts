// Which of the user's messages the agent has not taken yet, derived from the stored
// events alone (docs/protocol.md, "Message delivery"): a message stored while the agent
// works is taken at the agent's next step, and the first agent action stored after it
// comes from that step.

import { BUSY_STATES } from "./eventlog";
import type { AgentState, OHEvent } from "./types";

/** Agent actions that do not come from a model step. */
const NOT_A_STEP = new Set(["condensation", "change_agent_state"]);

/**
 * Ids of user messages still queued; empty unless the agent is working now. `before`: the
 * agent state as of the first event given (when they are only the newest part of the log).
 */
export function queuedMessageIds(events: OHEvent[], current: AgentState | null, before?: unknown): Set<number> {
  let state: string | null = typeof before === "string" ? before : null;
  let queued: number[] = [];
  for (const ev of events) {
    if (ev.observation === "agent_state_changed") {
      state = typeof ev.extras?.agent_state === "string" ? ev.extras.agent_state : state;
    } else if (ev.source === "user" && ev.action === "message") {
      if (state !== null && BUSY_STATES.has(state)) queued.push(ev.id);
    } else if (ev.source === "agent" && ev.action !== undefined && !NOT_A_STEP.has(ev.action)) {
      queued = [];
    }
  }
  if (current === null || !BUSY_STATES.has(current)) return new Set();
  return new Set(queued);
}
