// What the views need from the part of a long conversation that is not loaded: the
// agent state, the task list, the LLM metrics and whether the agent ever spoke. They are
// read from older pages (newest first) without holding those pages, and the scan stops
// as soon as everything still unknown is found.

import type { OlderFacts } from "./eventlog";
import { type LlmMetrics, type OHEvent, type TaskItem, isObject, isStoredEvent } from "./types";

/** What a scan is still looking for and what it found so far. */
export class OlderScan implements OlderFacts {
  taskList: TaskItem[] | null = null;
  metrics: LlmMetrics | null = null;
  agentSpoke = false;
  /** The newest stored agent state below the window. */
  state: { id: number; state: unknown; reason: unknown } | null = null;
  /** The lowest id read so far (the next page ends below it). */
  cursor: number;

  constructor(
    floor: number,
    /** Which facts the loaded window already gives (those are not looked for). */
    private readonly known: { state: boolean; taskList: boolean; metrics: boolean; agentSpoke: boolean },
  ) {
    this.cursor = floor;
  }

  /** Everything still unknown was found, or there is nothing older to read. */
  get done(): boolean {
    if (this.cursor <= 0) return true;
    return (
      (this.known.state || this.state !== null) &&
      (this.known.taskList || this.taskList !== null) &&
      (this.known.metrics || this.metrics !== null) &&
      (this.known.agentSpoke || this.agentSpoke)
    );
  }

  /** Reads one page of events below `cursor` (any order); `hasMore`: older ones exist. */
  take(page: unknown[], hasMore: boolean) {
    const evs = page.filter((e): e is OHEvent => isStoredEvent(e) && e.id < this.cursor).sort((a, b) => b.id - a.id);
    for (const ev of evs) {
      if (!this.state && ev.observation === "agent_state_changed") {
        this.state = { id: ev.id, state: ev.extras?.agent_state, reason: ev.extras?.reason };
      }
      if (!this.taskList) {
        if (ev.action === "task_tracking" && Array.isArray(ev.args?.task_list) && ev.args?.command !== "view") {
          this.taskList = ev.args!.task_list as TaskItem[];
        } else if (ev.observation === "task_tracking" && Array.isArray(ev.extras?.task_list)) {
          this.taskList = ev.extras!.task_list as TaskItem[];
        }
      }
      if (!this.metrics && isObject(ev.llm_metrics)) this.metrics = ev.llm_metrics as LlmMetrics;
      if (ev.source === "agent" && ev.action === "message") this.agentSpoke = true;
    }
    this.cursor = !hasMore || !evs.length ? 0 : evs[evs.length - 1].id;
  }
}
