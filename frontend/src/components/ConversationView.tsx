import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { derive, stateLabel } from "../lib/eventlog";
import { formatCost } from "../lib/format";
import { navigate } from "../lib/router";
import { ConversationSession, type ConnState } from "../lib/session";
import { api } from "../lib/api";
import { isImage, readAsDataUrl } from "../lib/attachments";
import { useSubscription } from "../lib/useSession";
import { Changes } from "./Changes";
import { Chat } from "./Chat";
import { Composer } from "./Composer";
import { TaskListView } from "./EventViews";
import { Files } from "./Files";
import { Icon } from "./Icon";
import { LiveContext, LiveThought } from "./LiveOutput";
import { SandboxBadge } from "./SandboxBadge";
import { Terminal } from "./Terminal";

const CONN_LABEL: Record<ConnState, string> = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
  error: "Connection failed",
};

type View = "chat" | "terminal" | "files" | "changes";
type Side = Exclude<View, "chat">;

const VIEW_ICON: Record<View, string> = { chat: "chat", terminal: "terminal", files: "folder", changes: "diff" };
const SIDE_LABEL: Record<Side, string> = { terminal: "Terminal", files: "Files", changes: "Changes" };

export function ConversationView({ id, onChanged }: { id: string; onChanged: () => void }) {
  const session = useMemo(() => new ConversationSession(id), [id]);
  useEffect(() => {
    void session.open();
    const save = () => session.saveNow();
    window.addEventListener("pagehide", save);
    return () => {
      window.removeEventListener("pagehide", save);
      session.close();
    };
  }, [session]);
  useSubscription(session);

  const log = session.log;
  // A long conversation is loaded from its newest page: what the window lacks comes from the scan below it.
  const d = useMemo(() => derive(log, session.older), [log.version, log.agentState, session.older?.done]);
  // Every conversation starts waiting for input; the agent has asked something only once
  // it has said something.
  const agentAsked = useMemo(
    () => log.events.some((e) => e.source === "agent" && e.action === "message") || !!session.older?.agentSpoke,
    [log.version, session.older?.done],
  );
  const [view, setView] = useState<View>("chat");
  const [side, setSide] = useState<Side>("terminal");
  const [renaming, setRenaming] = useState(false);
  const [titleDraft, setTitleDraft] = useState("");
  const [showTasks, setShowTasks] = useState(true);

  // Title changes (live updates or renames) refresh the list.
  const lastTitle = useRef(session.title);
  useEffect(() => {
    if (session.title && session.title !== lastTitle.current) {
      lastTitle.current = session.title;
      onChanged();
    }
  }, [session.title]);
  // The list shows each conversation's status: refresh it when the connection changes.
  useEffect(() => {
    if (session.conn === "connected" || session.conn === "closed") onChanged();
  }, [session.conn]);
  useEffect(() => {
    document.title = session.title ? `${session.title} · OpenHands` : "OpenHands";
  }, [session.title]);

  // Observations that may change files: the files panel refreshes on a newer one (older
  // pages loaded later do not count).
  const fileChangeKey = useMemo(() => {
    for (let i = log.events.length - 1; i >= 0; i--) {
      const o = log.events[i].observation;
      if (o === "run" || o === "edit" || o === "write") return log.events[i].id;
    }
    return -1;
  }, [log.version]);

  const state = d.agentState;
  const connected = session.conn === "connected";

  const pickView = (v: View) => {
    setView(v);
    if (v !== "chat") setSide(v);
  };

  /** Sends a message with its attachments: images inline as data URLs, other files uploaded first. */
  const sendWithAttachments = async (text: string, files: File[], interrupt = false): Promise<boolean> => {
    const send = interrupt ? session.interruptAndSend.bind(session) : session.sendMessage.bind(session);
    if (!files.length) return send(text);
    try {
      const images = await Promise.all(files.filter(isImage).map(readAsDataUrl));
      const others = files.filter((f) => !isImage(f));
      let fileUrls: string[] = [];
      if (others.length) {
        const res = await api.uploadFiles(id, others);
        const skipped = res.skipped_files ?? [];
        if (skipped.length) {
          session.notify("error", `Not attached: ${skipped.map((s) => `${s.name} (${s.reason})`).join(", ")}`);
          return false;
        }
        fileUrls = res.uploaded_files ?? [];
      }
      return send(text, images, fileUrls);
    } catch (e: any) {
      session.notify("error", `Attaching failed: ${e?.message ?? e}`);
      return false;
    }
  };

  const saveTitle = async () => {
    const t = titleDraft.trim();
    setRenaming(false);
    if (!t || t === session.title) return;
    try {
      await api.renameConversation(id, t.slice(0, 200));
      session.setTitle(t.slice(0, 200));
    } catch (e: any) {
      session.notify("error", `Rename failed: ${e?.message ?? e}`);
    }
  };

  if (session.notFound) {
    return (
      <section class="not-found">
        <h2>Conversation not found</h2>
        <p class="muted">{session.connDetail}</p>
        <button type="button" class="btn btn-primary" onClick={() => navigate("/")}>
          Start a new one
        </button>
      </section>
    );
  }

  const canStop = d.busy || !!d.runningCommand || state === "paused" || state === "awaiting_user_confirmation";
  const metrics = d.metrics;
  const tokens = metrics?.accumulated_token_usage;

  return (
    <section class="conversation" data-testid="conversation" data-open-conversation={id}>
      <header class="conv-head">
        {renaming ? (
          <form
            class="title-form"
            onSubmit={(e) => {
              e.preventDefault();
              void saveTitle();
            }}
          >
            <input
              class="input"
              value={titleDraft}
              maxLength={200}
              aria-label="Conversation title"
              ref={(el) => el?.focus()}
              onInput={(e) => setTitleDraft((e.target as HTMLInputElement).value)}
              onBlur={() => void saveTitle()}
              onKeyDown={(e) => e.key === "Escape" && setRenaming(false)}
            />
          </form>
        ) : (
          <h1
            class="conv-title-h"
            title="Click to rename"
            data-testid="conversation-heading"
            onClick={() => {
              setTitleDraft(session.title);
              setRenaming(true);
            }}
          >
            {session.title || "Conversation"}
          </h1>
        )}
        <div class="head-pills">
          <SandboxBadge id={id} />
          <span class={`pill conn conn-${session.conn}`} data-testid="connection-state" data-state={session.conn} title={session.connDetail}>
            <span class="dot" aria-hidden="true" /> {CONN_LABEL[session.conn]}
          </span>
          {(session.conn === "closed" || session.conn === "error") && (
            <button type="button" class="btn btn-small" data-testid="reconnect" onClick={() => void session.reconnect()}>
              Reconnect
            </button>
          )}
        </div>
      </header>

      <nav class="view-tabs only-narrow" role="tablist">
        {(["chat", "terminal", "files", "changes"] as View[]).map((v) => (
          <button key={v} type="button" role="tab" aria-selected={view === v} class={`tab ${view === v ? "active" : ""}`} onClick={() => pickView(v)} data-testid={`tab-${v}`}>
            <Icon name={VIEW_ICON[v]} size={14} /> {v === "chat" ? "Chat" : SIDE_LABEL[v]}
          </button>
        ))}
      </nav>

      <div class={`conv-body view-${view}`}>
        <div class="pane pane-chat">
          {d.taskList && d.taskList.length > 0 && (
            <div class="plan">
              <button type="button" class="plan-head" onClick={() => setShowTasks(!showTasks)} aria-expanded={showTasks}>
                <Icon name="list" size={14} /> Plan · {d.taskList.filter((t) => t.status === "done").length}/{d.taskList.length} done
              </button>
              {showTasks && <TaskListView tasks={d.taskList} />}
            </div>
          )}
          <LiveContext.Provider value={session.live}>
            <Chat session={session} pendingId={d.pendingConfirmation?.id ?? null} />
            <LiveThought />
          </LiveContext.Provider>

          {session.errorStatus && !(state === "error" && d.reason && d.reason.includes(session.errorStatus)) && (
            <div class="banner banner-error" role="alert" data-testid="error-status">
              <Icon name="alert" /> <span>{session.errorStatus}</span>
              <button type="button" class="icon-btn" aria-label="Dismiss" onClick={() => session.dismissErrorStatus()}>
                <Icon name="x" size={14} />
              </button>
            </div>
          )}
          {state === "error" && d.reason && (
            <div class="banner banner-error" role="alert" data-testid="agent-error">
              <Icon name="alert" /> <span>The agent stopped with an error: {d.reason}</span>
            </div>
          )}

          <div class="agent-bar" data-testid="agent-bar">
            <span class={`pill agent agent-${state ?? "idle"}`} data-testid="agent-state" data-state={state ?? ""}>
              {(d.busy || state === "loading" || state === "awaiting_user_confirmation") && <span class="spinner" aria-hidden="true" />}
              Agent: {stateLabel(state)}
            </span>
            {metrics && (metrics.accumulated_cost || tokens?.prompt_tokens) ? (
              <span class="muted small metrics" title="LLM usage in this conversation">
                {[
                  metrics.accumulated_cost ? formatCost(metrics.accumulated_cost) : "",
                  tokens?.prompt_tokens ? `${(tokens.prompt_tokens + (tokens.completion_tokens ?? 0)).toLocaleString()} tokens` : "",
                ]
                  .filter(Boolean)
                  .join(" · ")}
              </span>
            ) : null}
            {session.status && <span class="muted small status-line">{session.status}</span>}
            <span class="spacer" />
            {state === "awaiting_user_confirmation" && d.pendingConfirmation && (
              <>
                <button type="button" class="btn btn-small btn-primary" disabled={!connected} onClick={() => session.setAgentState("user_confirmed")}>
                  <Icon name="check" size={13} /> Confirm
                </button>
                <button type="button" class="btn btn-small btn-danger" disabled={!connected} onClick={() => session.setAgentState("user_rejected")}>
                  <Icon name="x" size={13} /> Reject
                </button>
              </>
            )}
            {d.busy && (
              <button type="button" class="btn btn-small" data-testid="pause" disabled={!connected} onClick={() => session.setAgentState("paused")}>
                <Icon name="pause" size={13} /> Pause
              </button>
            )}
            {state === "paused" && (
              <button type="button" class="btn btn-small" data-testid="resume" disabled={!connected} onClick={() => session.setAgentState("running")}>
                <Icon name="play" size={13} /> Resume
              </button>
            )}
            {!d.busy && state !== "loading" && (
              <button
                type="button"
                class="btn btn-small"
                data-testid="condense"
                title="Summarise the older steps so the model's context gets shorter"
                disabled={!connected}
                onClick={() => session.send({ action: "condensation_request", args: {} })}
              >
                <Icon name="list" size={13} /> Condense
              </button>
            )}
            {canStop && (
              <button type="button" class="btn btn-small btn-danger" data-testid="stop" disabled={!connected} onClick={() => session.setAgentState("stopped")}>
                <Icon name="stop" size={13} /> Stop
              </button>
            )}
          </div>

          <Composer
            onSubmit={(text, files) => sendWithAttachments(text, files)}
            onInterrupt={d.busy || d.runningCommand ? (text, files) => sendWithAttachments(text, files, true) : undefined}
            attachments
            disabled={!connected}
            placeholder={
              state === "awaiting_user_input" && agentAsked
                ? "The agent is waiting for your answer…"
                : d.busy
                  ? "Message the agent (it reads it at its next step; Ctrl+Enter interrupts)…"
                  : "Message the agent…"
            }
            hint={connected ? undefined : "Not connected: messages can be sent once the connection is back."}
          />
        </div>

        <div class="pane pane-side">
          <div class="side-tabs not-narrow" role="tablist">
            {(["terminal", "files", "changes"] as Side[]).map((v) => (
              <button key={v} type="button" role="tab" aria-selected={side === v} class={`tab ${side === v ? "active" : ""}`} onClick={() => setSide(v)} data-testid={`side-${v}`}>
                <Icon name={VIEW_ICON[v]} size={14} /> {SIDE_LABEL[v]}
              </button>
            ))}
          </div>
          <div class="side-body">
            {side === "terminal" ? (
              <LiveContext.Provider value={session.live}>
                <Terminal session={session} running={d.runningCommand} />
              </LiveContext.Provider>
            ) : side === "files" ? (
              <Files conversationId={id} changeKey={fileChangeKey} />
            ) : (
              <Changes conversationId={id} changeKey={fileChangeKey} />
            )}
          </div>
        </div>
      </div>

      <div class="toasts" aria-live="assertive">
        {session.notices.map((n) => (
          <div key={n.id} class={`toast toast-${n.kind}`} role="status" data-testid="toast">
            <span>{n.text}</span>
            <button type="button" class="icon-btn" aria-label="Dismiss" onClick={() => session.dismissNotice(n.id)}>
              <Icon name="x" size={12} />
            </button>
          </div>
        ))}
      </div>
    </section>
  );
}
