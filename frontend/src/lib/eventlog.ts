// The conversation's event log as the UI holds it: stored events de-duplicated by id and
// kept in id order, the id to resume from (`latest_event_id`), gaps to back-fill, and the
// live agent state. A long conversation is held as a window: every id from `floor` to the
// newest one; older pages are prepended on demand (`addOlder`). Framework-free so that it
// can be unit-tested.

import {
  type AgentState,
  type LlmMetrics,
  type OHEvent,
  type TaskItem,
  isObject,
  isStoredEvent,
} from "./types";

export type AddResult = "added" | "duplicate" | "invalid";

export class EventLog {
  private byId = new Map<number, OHEvent>();
  /** Stored events in id order, each id once. */
  events: OHEvent[] = [];
  /** Bumped on every change (cheap change detection for the views). */
  version = 0;
  private maxId = -1;
  /**
   * The lowest id of the window: every id from here to the newest is held (or is a gap
   * still to back-fill); ids below it are older history not loaded yet. 0 = everything.
   */
  floor = 0;

  /** Live agent state: from the newest `agent_state_changed`, or a later id-less notice. */
  agentState: AgentState | null = null;
  agentStateReason = "";
  private stateEventId = -1;

  /** Adds one stored event; anything already present (same id) is ignored. */
  add(ev: unknown): AddResult {
    if (!isStoredEvent(ev)) return "invalid";
    if (this.byId.has(ev.id)) return "duplicate";
    // Below the window: only `addOlder` extends it downwards (so no hole can open).
    if (ev.id < this.floor) return "duplicate";
    this.byId.set(ev.id, ev);
    if (ev.id > this.maxId) {
      this.maxId = ev.id;
      this.events.push(ev);
    } else {
      // Back-filled or out of order: insert at its place.
      let lo = 0;
      let hi = this.events.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.events[mid].id < ev.id) lo = mid + 1;
        else hi = mid;
      }
      this.events.splice(lo, 0, ev);
    }
    if (ev.observation === "agent_state_changed" && ev.id > this.stateEventId) {
      this.stateEventId = ev.id;
      this.setState(ev.extras?.agent_state, ev.extras?.reason);
    }
    this.version++;
    return "added";
  }

  /** Adds many; returns how many were new. */
  addMany(evs: unknown[]): number {
    let n = 0;
    for (const e of evs) if (this.add(e) === "added") n++;
    return n;
  }

  /**
   * Starts the window with the newest page of a conversation (any order). `hasMore`: the
   * server holds older events than the page; without it the window starts at id 0 (and
   * ids missing below the page are gaps to back-fill).
   */
  startWindow(page: unknown[], hasMore: boolean): number {
    this.clear();
    const evs = page.filter(isStoredEvent);
    if (hasMore && evs.length) this.floor = Math.min(...evs.map((e) => e.id));
    return this.addMany(evs);
  }

  /**
   * Prepends a page of older events (the ones just below `floor`, any order). The window
   * then starts at the page's lowest id, or at 0 when `hasMore` is false; ids skipped
   * inside the page become gaps to back-fill, so the window never has a silent hole.
   * Returns how many were new.
   */
  addOlder(page: unknown[], hasMore: boolean): number {
    const evs = page.filter((e): e is OHEvent => isStoredEvent(e) && e.id < this.floor);
    const oldFloor = this.floor;
    if (!hasMore) this.floor = 0;
    else if (evs.length) this.floor = Math.min(...evs.map((e) => e.id));
    else return 0;
    const n = this.addMany(evs);
    if (this.floor !== oldFloor && n === 0) this.version++;
    return n;
  }

  /** Older events exist on the server below the window. */
  get hasOlder(): boolean {
    return this.floor > 0;
  }

  /**
   * The agent state as of an event below the window (found by scanning older pages): it
   * applies only while no newer stored state is held.
   */
  noteOlderState(id: number, state: unknown, reason: unknown) {
    if (id <= this.stateEventId) return;
    this.stateEventId = id;
    this.setState(state, reason);
    this.version++;
  }

  /** Id of the stored `agent_state_changed` the current state comes from (-1: none). */
  get stateSourceId(): number {
    return this.stateEventId;
  }

  /**
   * An `agent_state_changed` observation without an id (the server sends `stopped` this
   * way when it closes a conversation): it wins until a newer stored state arrives.
   */
  applyLiveState(payload: unknown): boolean {
    if (!isObject(payload) || payload.observation !== "agent_state_changed") return false;
    this.setState(payload.extras?.agent_state, payload.extras?.reason);
    this.version++;
    return true;
  }

  private setState(state: unknown, reason: unknown) {
    if (typeof state !== "string" || !state) return;
    this.agentState = state as AgentState;
    this.agentStateReason = typeof reason === "string" ? reason : "";
  }

  has(id: number): boolean {
    return this.byId.has(id);
  }

  get(id: number): OHEvent | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.events.length;
  }

  /** The `latest_event_id` to (re)connect with: the highest id received, or -1. */
  get latestEventId(): number {
    return this.maxId;
  }

  /** Ids of the window below the highest one that never arrived (at most `limit`), for a REST back-fill. */
  missingIds(limit = 1000): number[] {
    const out: number[] = [];
    if (this.maxId < this.floor) return out;
    // Events below the floor are never held (add refuses them), so a full window is this long.
    if (this.events.length === this.maxId - this.floor + 1) return out;
    for (let i = this.floor; i <= this.maxId && out.length < limit; i++) {
      if (!this.byId.has(i)) out.push(i);
    }
    return out;
  }

  clear() {
    this.byId.clear();
    this.events = [];
    this.maxId = -1;
    this.floor = 0;
    this.agentState = null;
    this.agentStateReason = "";
    this.stateEventId = -1;
    this.version++;
  }
}

// ---------------------------------------------------------------------------
// What the chat shows

export type ChatItem =
  | { kind: "message"; key: string; ids: number[]; event: OHEvent; role: "user" | "agent" }
  | {
      kind: "action";
      key: string;
      ids: number[];
      action: OHEvent;
      /** The observation whose `cause` is this action (the first, if several). */
      observation?: OHEvent;
      /** Further observations caused by the same action. */
      more: OHEvent[];
    }
  | { kind: "observation"; key: string; ids: number[]; event: OHEvent }
  | { kind: "hidden"; key: string; ids: number[] };

const HIDDEN_ACTIONS = new Set(["system", "change_agent_state", "recall", "null", "condensation_request"]);
const HIDDEN_OBSERVATIONS = new Set(["agent_state_changed", "null", "recall", "condense"]);

/** Actions that the runtime answers with an observation (their cards show "running" until it comes). */
export const ACTIONS_WITH_RESULT = new Set([
  "run",
  "run_ipython",
  "read",
  "write",
  "edit",
  "browse",
  "browse_interactive",
  "call_tool_mcp",
  "think",
  "task_tracking",
  "delegate",
]);

function isUserCommand(ev: OHEvent): boolean {
  return ev.source === "user" && (ev.action === "run" || ev.observation === "run");
}

/** Events that never show in the chat (they still get an invisible marker carrying their id). */
export function isHiddenInChat(ev: OHEvent): boolean {
  if (ev.action !== undefined) {
    if (HIDDEN_ACTIONS.has(ev.action)) return true;
    if (ev.args?.hidden === true) return true;
  } else if (ev.observation !== undefined) {
    if (HIDDEN_OBSERVATIONS.has(ev.observation)) return true;
    if (ev.extras?.hidden === true) return true;
  }
  // A person's own terminal commands live in the terminal panel (as upstream).
  return isUserCommand(ev);
}

/** An action awaiting confirmation that a later action has already replaced. */
function isSupersededConfirmation(ev: OHEvent, laterActionExists: boolean): boolean {
  return ev.args?.confirmation_state === "awaiting_confirmation" && laterActionExists;
}

/**
 * Groups stored events (in id order) into chat items: each observation goes under the
 * action it answers (`cause`), messages and `finish` are bubbles, hidden events are
 * collapsed into invisible markers. Every event id appears in exactly one item.
 */
export function buildChatItems(events: OHEvent[]): ChatItem[] {
  const items: ChatItem[] = [];
  const actionItem = new Map<number, Extract<ChatItem, { kind: "action" }>>();
  const hiddenActionIds = new Set<number>();
  let lastActionId = -1;
  for (const ev of events) if (ev.action !== undefined && ev.source === "agent") lastActionId = ev.id;

  let hidden: Extract<ChatItem, { kind: "hidden" }> | null = null;
  const pushHidden = (id: number) => {
    if (!hidden) {
      hidden = { kind: "hidden", key: `h${id}`, ids: [] };
      items.push(hidden);
    }
    hidden.ids.push(id);
  };
  const push = (item: ChatItem) => {
    hidden = null;
    items.push(item);
  };

  for (const ev of events) {
    if (ev.action !== undefined) {
      const superseded = isSupersededConfirmation(ev, ev.id < lastActionId);
      if (isHiddenInChat(ev) || superseded) {
        hiddenActionIds.add(ev.id);
        pushHidden(ev.id);
      } else if (ev.action === "message" || ev.action === "finish") {
        push({
          kind: "message",
          key: `e${ev.id}`,
          ids: [ev.id],
          event: ev,
          role: ev.source === "user" ? "user" : "agent",
        });
      } else {
        const item = { kind: "action" as const, key: `e${ev.id}`, ids: [ev.id], action: ev, more: [] as OHEvent[] };
        actionItem.set(ev.id, item);
        push(item);
      }
      continue;
    }
    // Observation.
    const cause = typeof ev.cause === "number" ? ev.cause : null;
    const parent = cause !== null ? actionItem.get(cause) : undefined;
    if (parent) {
      parent.ids.push(ev.id);
      if (!parent.observation) parent.observation = ev;
      else parent.more.push(ev);
      continue;
    }
    if (isHiddenInChat(ev) || (cause !== null && hiddenActionIds.has(cause))) {
      pushHidden(ev.id);
      continue;
    }
    push({ kind: "observation", key: `e${ev.id}`, ids: [ev.id], event: ev });
  }
  return items;
}

// ---------------------------------------------------------------------------
// The terminal panel: every command (the agent's and the person's) with its output

export interface TerminalEntry {
  key: string;
  action?: OHEvent;
  observations: OHEvent[];
}

export function buildTerminalEntries(events: OHEvent[]): TerminalEntry[] {
  const out: TerminalEntry[] = [];
  const byAction = new Map<number, TerminalEntry>();
  for (const ev of events) {
    if (ev.action === "run" && ev.args?.hidden !== true) {
      if (ev.args?.confirmation_state === "awaiting_confirmation") continue;
      const entry: TerminalEntry = { key: `t${ev.id}`, action: ev, observations: [] };
      byAction.set(ev.id, entry);
      out.push(entry);
    } else if (ev.observation === "run" && ev.extras?.hidden !== true) {
      const parent = typeof ev.cause === "number" ? byAction.get(ev.cause) : undefined;
      if (parent) parent.observations.push(ev);
      else out.push({ key: `t${ev.id}`, observations: [ev] });
    } else if (ev.observation !== undefined && typeof ev.cause === "number") {
      // A command that was rejected, stopped or failed to start gets that result.
      byAction.get(ev.cause)?.observations.push(ev);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// State derived from the log

export interface Derived {
  agentState: AgentState | null;
  reason: string;
  /** The action the agent waits to have confirmed (confirmation mode). */
  pendingConfirmation: OHEvent | null;
  taskList: TaskItem[] | null;
  metrics: LlmMetrics | null;
  /** The agent is working: Stop and Pause make sense. */
  busy: boolean;
  /** A run action (any source) still without output. */
  runningCommand: OHEvent | null;
}

/** The agent is working (`loading`, the few milliseconds a conversation takes to open, is not). */
export const BUSY_STATES = new Set<string>(["running", "user_confirmed", "rate_limited"]);

/**
 * Facts from events below the loaded window (read by scanning older pages without
 * holding them): they fill in what the window itself does not say.
 */
export interface OlderFacts {
  /** The newest task list below the window. */
  taskList: TaskItem[] | null;
  /** The newest LLM metrics below the window. */
  metrics: LlmMetrics | null;
  /** The agent sent a message below the window. */
  agentSpoke: boolean;
}

export function derive(log: EventLog, older?: OlderFacts | null): Derived {
  const events = log.events;
  let pending: OHEvent | null = null;
  let taskList: TaskItem[] | null = null;
  let metrics: LlmMetrics | null = null;
  let lastAction: OHEvent | null = null;
  const answered = new Set<number>();
  let lastRun: OHEvent | null = null;

  for (const ev of events) {
    if (ev.action !== undefined) {
      if (ev.source === "agent" && ev.action !== "message" && ev.action !== "system") lastAction = ev;
      if (ev.action === "task_tracking" && Array.isArray(ev.args?.task_list) && ev.args?.command !== "view") {
        taskList = ev.args!.task_list as TaskItem[];
      }
      if (ev.action === "run" && ev.args?.confirmation_state !== "awaiting_confirmation") lastRun = ev;
    } else if (ev.observation !== undefined) {
      if (typeof ev.cause === "number") answered.add(ev.cause);
      if (ev.observation === "task_tracking" && Array.isArray(ev.extras?.task_list)) {
        taskList = ev.extras!.task_list as TaskItem[];
      }
    }
    if (isObject(ev.llm_metrics)) metrics = ev.llm_metrics as LlmMetrics;
  }
  if (
    log.agentState === "awaiting_user_confirmation" &&
    lastAction &&
    lastAction.args?.confirmation_state === "awaiting_confirmation"
  ) {
    pending = lastAction;
  }
  if (!taskList && older?.taskList) taskList = older.taskList;
  if (!metrics && older?.metrics) metrics = older.metrics;
  const runningCommand = lastRun && !answered.has(lastRun.id) ? lastRun : null;
  return {
    agentState: log.agentState,
    reason: log.agentStateReason,
    pendingConfirmation: pending,
    taskList,
    metrics,
    busy: log.agentState !== null && BUSY_STATES.has(log.agentState),
    runningCommand,
  };
}

/** Human label for an agent state. */
export function stateLabel(state: AgentState | null): string {
  switch (state) {
    case null:
      return "idle";
    case "loading":
    case "init":
      return "starting";
    case "running":
      return "running";
    case "awaiting_user_input":
      return "waiting for you";
    case "paused":
      return "paused";
    case "stopped":
      return "stopped";
    case "finished":
      return "finished";
    case "rejected":
      return "rejected";
    case "error":
      return "error";
    case "awaiting_user_confirmation":
      return "needs confirmation";
    case "user_confirmed":
      return "confirmed";
    case "user_rejected":
      return "rejected by you";
    case "rate_limited":
      return "rate limited, retrying";
    default:
      return String(state).replaceAll("_", " ");
  }
}

/** Exit code of a `run` observation: number, or null when unknown. */
export function exitCode(obs: OHEvent | undefined): number | null {
  const md = obs?.extras?.metadata;
  if (isObject(md) && typeof md.exit_code === "number") return md.exit_code;
  if (typeof obs?.extras?.exit_code === "number") return obs.extras.exit_code;
  return null;
}
