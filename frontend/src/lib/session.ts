// One open conversation: its REST bootstrap, its Socket.IO connection (with resume from
// `latest_event_id` on every reconnect), its event log and the notices around it.

import { io as realIo, type Socket } from "socket.io-client";
import { ApiError, api as realApi } from "./api";
import { type KV, dropCachedEvents, loadCachedEvents, sameEvent, saveCachedEvents } from "./cache";
import { EventLog } from "./eventlog";
import { OlderScan } from "./history";
import { LiveOutput } from "./liveoutput";
import { messageArgs } from "./attachments";
import {
  type ConversationInfo,
  isErrorNotice,
  isObject,
  isStatusUpdate,
  isStoredEvent,
} from "./types";

export type ConnState = "idle" | "connecting" | "connected" | "reconnecting" | "closed" | "error";

export interface Notice {
  id: number;
  kind: "error" | "info";
  text: string;
}

type IoFn = (uri: string, opts: Record<string, unknown>) => Socket;

export interface SessionDeps {
  api: Pick<typeof realApi, "getConversation" | "startConversation" | "events">;
  io: IoFn;
  /** Where the cache lives; null disables it. */
  kv?: KV | null;
  /** Server origin; default: the page's. */
  origin?: string;
  /** Delay before back-filling ids that never arrived, ms. */
  backfillDelayMs?: number;
  /** Events per page when opening and when loading older ones (the server allows up to 100). */
  pageSize?: number;
}

const KNOWN_STATUS: Record<string, string> = {
  STATUS$READY: "Ready",
  STATUS$STARTING_RUNTIME: "Starting the runtime…",
  STATUS$RUNTIME_STARTED: "Runtime started",
  STATUS$SETTING_UP_WORKSPACE: "Setting up the workspace…",
  STATUS$LLM_RETRY: "The LLM is busy; retrying…",
  STATUS$STOPPED: "Stopped",
  STATUS$ERROR_LLM_AUTHENTICATION: "The LLM provider refused the API key",
  "AGENT_ERROR$TOO_MANY_CONVERSATIONS": "Too many conversations are running; this one was stopped",
};

export function statusText(id: string | undefined, message: string | undefined): string {
  if (message && message !== id) return message;
  if (id && KNOWN_STATUS[id]) return KNOWN_STATUS[id];
  return message || id || "";
}

/** A message sent but not yet acknowledged as stored (it is sent again on reconnect). */
export interface OutgoingMessage {
  clientId: string;
  text: string;
  action: Record<string, unknown>;
}

/** How long a send waits for the server's acknowledgement before it is sent again, ms. */
const ACK_TIMEOUT_MS = 10_000;

function newClientId(): string {
  const c = (globalThis as any).crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

export class ConversationSession {
  readonly log = new EventLog();
  /** Output of running commands and the model's answer as they happen. */
  readonly live = new LiveOutput();
  conn: ConnState = "idle";
  connDetail = "";
  info: ConversationInfo | null = null;
  title = "";
  /** Latest info status (`status_update` with type info). */
  status = "";
  /** Latest error status (`status_update` with type error), until dismissed. */
  errorStatus = "";
  notices: Notice[] = [];
  /** Set when the conversation does not exist (404). */
  notFound = false;
  /** Bumped on every change. */
  version = 0;
  /** Connections made so far (1 = first connect). */
  connects = 0;
  /** Messages not yet acknowledged as stored, in the order they were sent. */
  outbox: OutgoingMessage[] = [];
  /** An older page is being fetched. */
  loadingOlder = false;
  /** Facts from below the loaded window (agent state, task list, metrics), once scanned. */
  older: OlderScan | null = null;

  private socket: Socket | null = null;
  private listeners = new Set<() => void>();
  private noticeSeq = 0;
  private closed = false;
  private saveTimer: ReturnType<typeof setTimeout> | null = null;
  private backfillTimer: ReturnType<typeof setTimeout> | null = null;
  private backfilling = false;
  private readonly deps: SessionDeps;
  private readonly kv: KV | null | undefined;

  constructor(
    readonly conversationId: string,
    deps: Partial<SessionDeps> = {},
  ) {
    this.deps = {
      api: deps.api ?? realApi,
      io: deps.io ?? (realIo as unknown as IoFn),
      kv: deps.kv,
      origin: deps.origin,
      backfillDelayMs: deps.backfillDelayMs ?? 400,
      pageSize: deps.pageSize ?? 100,
    };
    this.kv = deps.kv;
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed() {
    this.version++;
    for (const fn of [...this.listeners]) fn();
  }

  notify(kind: Notice["kind"], text: string) {
    const n = { id: ++this.noticeSeq, kind, text };
    this.notices = [...this.notices.slice(-4), n];
    this.changed();
    return n.id;
  }

  dismissNotice(id: number) {
    this.notices = this.notices.filter((n) => n.id !== id);
    this.changed();
  }

  setTitle(title: string) {
    this.title = title;
    if (this.info) this.info = { ...this.info, title };
    this.changed();
  }

  dismissErrorStatus() {
    this.errorStatus = "";
    this.changed();
  }

  /**
   * Loads the conversation (resuming it if stopped) and connects. Without cached events
   * only the newest page is fetched (over REST) and the socket resumes after it: a long
   * conversation is not replayed before it shows; older pages come with `loadOlder`.
   */
  async open(): Promise<void> {
    this.conn = "connecting";
    this.changed();
    await this.restoreCache();
    const newest = this.log.size ? Promise.resolve() : this.loadNewest();
    try {
      this.info = await this.deps.api.getConversation(this.conversationId);
      this.title = this.info?.title ?? "";
    } catch (e: any) {
      if (e?.status === 404) {
        this.notFound = true;
        this.conn = "error";
        this.connDetail = "This conversation does not exist (it may have been deleted).";
        dropCachedEvents(this.conversationId, this.kv);
        this.changed();
        return;
      }
      // The socket connect below still works for a server without this route.
    }
    await newest;
    if (this.closed) return;
    if (this.info && this.info.status === "STOPPED") {
      try {
        await this.deps.api.startConversation(this.conversationId);
      } catch (e: any) {
        this.notify("error", `Could not resume the conversation: ${e?.message ?? e}`);
      }
    }
    if (this.closed) return;
    this.connect();
    void this.scanOlder();
  }

  /** The newest page of events, as the start of the window (on failure: a full replay). */
  private async loadNewest() {
    try {
      const res = await this.deps.api.events(this.conversationId, 0, undefined, this.deps.pageSize, true);
      if (this.closed || this.log.size) return;
      this.log.startWindow(res.events, res.has_more);
      this.changed();
    } catch {
      /* the socket replays everything instead */
    }
  }

  /**
   * Prepends the page of events just below the window. Resolves to how many were new;
   * at most one page is fetched at a time.
   */
  async loadOlder(): Promise<number> {
    if (this.loadingOlder || !this.log.hasOlder || this.closed) return 0;
    this.loadingOlder = true;
    this.changed();
    try {
      const floor = this.log.floor;
      const res = await this.deps.api.events(this.conversationId, 0, floor - 1, this.deps.pageSize, true);
      if (this.closed || this.log.floor !== floor) return 0;
      const n = this.log.addOlder(res.events, res.has_more);
      if (this.log.missingIds(1).length) this.scheduleBackfill();
      return n;
    } catch (e: any) {
      this.notify("error", `Could not load earlier events: ${e?.message ?? e}`);
      return 0;
    } finally {
      this.loadingOlder = false;
      this.changed();
    }
  }

  /**
   * Reads pages below the window, without holding them, until the facts the window lacks
   * (agent state, task list, metrics, whether the agent spoke) are found.
   */
  async scanOlder() {
    if (!this.log.hasOlder || this.older) return;
    const events = this.log.events;
    const known = {
      state: this.log.stateSourceId >= 0,
      taskList: events.some((e) => e.action === "task_tracking" || e.observation === "task_tracking"),
      metrics: events.some((e) => isObject(e.llm_metrics)),
      agentSpoke: events.some((e) => e.source === "agent" && e.action === "message"),
    };
    const scan = new OlderScan(this.log.floor, known);
    this.older = scan;
    try {
      while (!scan.done && !this.closed) {
        const res = await this.deps.api.events(this.conversationId, 0, scan.cursor - 1, this.deps.pageSize, true);
        scan.take(res.events, res.has_more);
        if (scan.state) this.log.noteOlderState(scan.state.id, scan.state.state, scan.state.reason);
      }
    } catch {
      /* what was found so far stays; the window's own events still count */
    }
    if (!this.closed) this.changed();
  }

  /** Takes the cached events if the server still has the last one unchanged. */
  private async restoreCache() {
    const cached = loadCachedEvents(this.conversationId, this.kv);
    if (!cached.length) return;
    const last = cached[cached.length - 1];
    try {
      const res = await this.deps.api.events(this.conversationId, last.id, last.id, 1);
      if (res.events.length === 1 && sameEvent(res.events[0], last)) {
        // The cache may hold a window that starts above id 0.
        this.log.startWindow(cached, cached[0].id > 0);
        this.changed();
        return;
      }
    } catch {
      /* fall through: replay everything */
    }
    dropCachedEvents(this.conversationId, this.kv);
  }

  private query() {
    const q: Record<string, string> = {
      conversation_id: this.conversationId,
      latest_event_id: String(this.log.latestEventId),
      providers_set: "",
      stream_output: "true",
    };
    if (this.info?.session_api_key) q.session_api_key = this.info.session_api_key;
    return q;
  }

  /** Makes every (re)connect resume after the last event received. */
  private refreshQuery() {
    const s = this.socket;
    if (s) (s.io as any).opts.query = this.query();
  }

  private connect() {
    const origin = this.deps.origin ?? window.location.origin;
    const socket = this.deps.io(origin, {
      path: "/socket.io",
      query: this.query(),
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelayMax: 5000,
      forceNew: true,
    });
    this.socket = socket;
    socket.on("connect", () => {
      this.connects++;
      this.conn = "connected";
      this.connDetail = "";
      // Whatever was not acknowledged goes again: the server stores each client id once.
      for (const m of this.outbox) this.emitMessage(m);
      this.changed();
    });
    socket.on("disconnect", (reason: string) => {
      this.refreshQuery();
      if (this.closed) return;
      if (reason === "io server disconnect") {
        this.conn = "closed";
        this.connDetail = "The server closed this conversation.";
        void this.afterServerClose();
      } else if (reason === "io client disconnect") {
        this.conn = "closed";
        this.connDetail = "";
      } else {
        this.conn = "reconnecting";
        this.connDetail = reason;
      }
      this.changed();
    });
    socket.on("connect_error", (err: any) => {
      this.refreshQuery();
      if (this.closed) return;
      const msg = typeof err?.message === "string" ? err.message : String(err);
      if (socket.active) {
        this.conn = "reconnecting";
        this.connDetail = msg;
      } else {
        this.conn = "error";
        this.connDetail = `Connection refused: ${msg}`;
      }
      this.changed();
    });
    socket.io.on("reconnect_attempt", () => {
      this.refreshQuery();
      if (this.conn !== "reconnecting") {
        this.conn = "reconnecting";
        this.changed();
      }
    });
    socket.on("oh_event", (payload: unknown) => this.receive(payload));
    socket.on("oh_output", (payload: unknown) => this.live.receive(payload));
  }

  /**
   * The server closed the socket: either this conversation was closed on purpose (stop,
   * delete, too many conversations: stay closed, the person can reconnect) or the server
   * is going away (shutdown, restart: wait for it and resume by ourselves).
   */
  private closeWatch = 0;

  private async afterServerClose() {
    const token = ++this.closeWatch;
    for (let attempt = 0; !this.closed && token === this.closeWatch; attempt++) {
      try {
        const info = await this.deps.api.getConversation(this.conversationId);
        this.info = info;
        if (attempt > 0) await this.reconnect();
        else this.changed();
        return;
      } catch (e) {
        if (e instanceof ApiError || (e as any)?.status) {
          if ((e as any).status === 404) {
            this.notFound = true;
            this.connDetail = "This conversation was deleted.";
            this.changed();
          }
          return;
        }
        // Unreachable: the server is restarting. Keep trying.
        this.conn = "reconnecting";
        this.connDetail = "The server is unreachable; retrying…";
        this.changed();
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 5000)));
      }
    }
  }

  /** One `oh_event` payload. */
  receive(payload: unknown) {
    if (isStoredEvent(payload)) {
      if (this.log.add(payload) === "added") {
        this.live.settle(payload);
        // A newer agent state than the error replaces an error status.
        if (payload.observation === "agent_state_changed" && payload.extras?.agent_state !== "error") {
          this.errorStatus = "";
        }
        this.scheduleSave();
        if (this.log.missingIds(1).length) this.scheduleBackfill();
        this.changed();
      }
      return;
    }
    if (isStatusUpdate(payload)) {
      if (typeof payload.conversation_title === "string") {
        this.title = payload.conversation_title;
        if (this.info) this.info = { ...this.info, title: this.title };
      } else if (payload.type === "error") {
        this.errorStatus = statusText(payload.id, payload.message);
        if ((payload.message ?? "").startsWith("Agent reached maximum")) {
          this.setAgentState("paused");
        }
      } else {
        this.status = statusText(payload.id, payload.message);
      }
      this.changed();
      return;
    }
    if (isObject(payload) && payload.observation === "agent_state_changed") {
      this.log.applyLiveState(payload);
      if (payload.extras?.agent_state !== "error") this.errorStatus = "";
      this.changed();
      return;
    }
    if (isErrorNotice(payload)) {
      const text =
        payload.error_code === 401
          ? "Session expired."
          : typeof payload.message === "string"
            ? payload.message
            : String(payload.error);
      this.notify("error", text);
    }
  }

  private scheduleSave() {
    if (this.kv === null || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.saveNow();
    }, 300);
  }

  saveNow() {
    if (this.kv === null) return;
    saveCachedEvents(this.conversationId, this.log.events, this.kv);
  }

  private scheduleBackfill() {
    if (this.backfillTimer || this.backfilling) return;
    this.backfillTimer = setTimeout(() => {
      this.backfillTimer = null;
      void this.backfill();
    }, this.deps.backfillDelayMs);
  }

  /** Fetches, over REST, ids below the newest one that never came over the socket. */
  async backfill() {
    const missing = this.log.missingIds(500);
    if (!missing.length || this.closed) return;
    this.backfilling = true;
    try {
      let i = 0;
      while (i < missing.length) {
        // Fetch one contiguous run of missing ids at a time.
        let j = i;
        while (j + 1 < missing.length && missing[j + 1] === missing[j] + 1 && j - i < 99) j++;
        const res = await this.deps.api.events(this.conversationId, missing[i], missing[j], j - i + 1);
        this.log.addMany(res.events);
        i = j + 1;
      }
      this.scheduleSave();
      this.changed();
    } catch {
      /* the next gap or reconnect tries again */
    } finally {
      this.backfilling = false;
    }
  }

  get connected() {
    return this.conn === "connected";
  }

  /** Sends one client action (`oh_user_action`). */
  send(action: Record<string, unknown>): boolean {
    if (!this.socket || !this.socket.connected) {
      this.notify("error", "Not connected: the action was not sent.");
      return false;
    }
    this.socket.emit("oh_user_action", action);
    return true;
  }

  /**
   * Sends a message with a fresh `client_message_id`. It stays in the outbox (shown as
   * sending) until the server acknowledges it as stored, and is sent again after every
   * reconnect or unanswered attempt; the server stores it once.
   */
  sendMessage(content: string, imageUrls: string[] = [], fileUrls: string[] = []) {
    const clientId = newClientId();
    const m: OutgoingMessage = {
      clientId,
      text: content,
      action: {
        action: "message",
        args: { ...messageArgs(content, imageUrls, fileUrls), timestamp: new Date().toISOString(), client_message_id: clientId },
      },
    };
    this.outbox = [...this.outbox, m];
    this.emitMessage(m);
    this.changed();
    return true;
  }

  /** Stops the agent's current step and sends the message, which starts the next one. */
  interruptAndSend(content: string, imageUrls: string[] = [], fileUrls: string[] = []) {
    if (!this.setAgentState("stopped")) return false;
    return this.sendMessage(content, imageUrls, fileUrls);
  }

  private emitMessage(m: OutgoingMessage) {
    const socket = this.socket;
    if (!socket || !socket.connected) return;
    socket.timeout(ACK_TIMEOUT_MS).emit("oh_user_action", m.action, (err: unknown, reply: any) => {
      if (this.closed || !this.outbox.includes(m)) return;
      if (!err && reply && typeof reply.event_id === "number") {
        this.outbox = this.outbox.filter((x) => x !== m);
        this.changed();
      } else if (err && this.socket === socket && socket.connected) {
        // No answer in time: try again (a duplicate is not stored twice).
        this.emitMessage(m);
      }
    });
  }

  runCommand(command: string, isInput = false) {
    return this.send({ action: "run", args: { command, hidden: false, ...(isInput ? { is_input: true } : {}) } });
  }

  setAgentState(state: string) {
    return this.send({ action: "change_agent_state", args: { agent_state: state } });
  }

  /** After the server closed the conversation (or a refusal): resume it and connect again. */
  async reconnect() {
    if (this.closed) return;
    this.closeWatch++;
    this.conn = "connecting";
    this.connDetail = "";
    this.changed();
    try {
      const info = await this.deps.api.getConversation(this.conversationId);
      this.info = info;
      if (info.status === "STOPPED") await this.deps.api.startConversation(this.conversationId);
    } catch {
      /* try the socket anyway */
    }
    if (this.socket) {
      this.refreshQuery();
      this.socket.connect();
    } else {
      this.connect();
    }
  }

  close() {
    this.closed = true;
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = null;
    }
    if (this.backfillTimer) clearTimeout(this.backfillTimer);
    this.saveNow();
    this.socket?.removeAllListeners();
    this.socket?.io.removeAllListeners();
    this.socket?.disconnect();
    this.socket = null;
    this.listeners.clear();
  }
}
