import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api } from "../lib/api";
import { formatCost, relativeTime } from "../lib/format";
import { navigate } from "../lib/router";
import type { ConversationInfo } from "../lib/types";
import { Icon } from "./Icon";

const STATUS_LABEL: Record<string, string> = {
  RUNNING: "running",
  STARTING: "starting",
  STOPPED: "stopped",
  ARCHIVED: "archived",
  ERROR: "error",
};

export function ConversationList({ activeId, version }: { activeId: string | null; version: number }) {
  const [items, setItems] = useState<ConversationInfo[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState("");
  const [loaded, setLoaded] = useState(false);
  const [, setNow] = useState(0);
  const pages = useRef(1);

  const load = useCallback(async () => {
    try {
      // Reload as many pages as are shown, so that "load more" survives refreshes.
      let all: ConversationInfo[] = [];
      let page: string | null = null;
      let nextId: string | null = null;
      for (let i = 0; i < pages.current; i++) {
        const res = await api.listConversations(page);
        all = all.concat(res.results);
        nextId = res.next_page_id;
        page = nextId;
        if (!page) break;
      }
      setItems(all);
      setNext(nextId);
      setError("");
    } catch (e: any) {
      setError(e?.message ?? String(e));
    } finally {
      setLoaded(true);
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load, version, activeId]);

  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === "visible") void load();
      setNow((n) => n + 1);
    }, 15000);
    return () => clearInterval(t);
  }, [load]);

  return (
    <nav class="conv-list" data-testid="conversation-list">
      {error && <div class="muted small pad">Could not load conversations: {error}</div>}
      {loaded && !items.length && !error && <div class="muted small pad">No conversations yet.</div>}
      <ul>
        {items.map((c) => (
          <ConversationRow key={c.conversation_id} conv={c} active={c.conversation_id === activeId} onChanged={load} />
        ))}
      </ul>
      {next && (
        <button
          type="button"
          class="btn btn-ghost small load-more"
          onClick={() => {
            pages.current++;
            void load();
          }}
        >
          Load more
        </button>
      )}
    </nav>
  );
}

/** "$0.36 · 330 tokens" for a conversation that used the LLM, else "". */
export function usageText(conv: ConversationInfo): string {
  return [
    conv.accumulated_cost ? formatCost(conv.accumulated_cost) : "",
    conv.total_tokens ? `${conv.total_tokens.toLocaleString()} tokens` : "",
  ]
    .filter(Boolean)
    .join(" · ");
}

function ConversationRow({
  conv,
  active,
  onChanged,
}: {
  conv: ConversationInfo;
  active: boolean;
  onChanged: () => void;
}) {
  const [mode, setMode] = useState<"view" | "rename" | "delete">("view");
  const [title, setTitle] = useState(conv.title);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const status = conv.status ?? "STOPPED";
  const href = `/conversations/${conv.conversation_id}`;

  useEffect(() => {
    if (mode === "rename") input.current?.select();
  }, [mode]);

  const rename = async () => {
    const t = title.trim();
    if (!t || t === conv.title) {
      setMode("view");
      return;
    }
    setBusy(true);
    try {
      await api.renameConversation(conv.conversation_id, t.slice(0, 200));
      setMode("view");
      setErr("");
      onChanged();
    } catch (e: any) {
      setErr(e?.message ?? String(e));
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    setBusy(true);
    try {
      await api.deleteConversation(conv.conversation_id);
      if (active) navigate("/");
      onChanged();
    } catch (e: any) {
      setErr(e?.message ?? String(e));
      setMode("view");
    } finally {
      setBusy(false);
    }
  };

  return (
    <li class={`conv-row ${active ? "active" : ""}`} data-conversation-id={conv.conversation_id} data-testid="conversation-row">
      {mode === "rename" ? (
        <form
          class="rename-form"
          onSubmit={(e) => {
            e.preventDefault();
            void rename();
          }}
        >
          <input
            ref={input}
            class="input small"
            value={title}
            maxLength={200}
            aria-label="New title"
            data-testid="rename-input"
            disabled={busy}
            onInput={(e) => setTitle((e.target as HTMLInputElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Escape") {
                setTitle(conv.title);
                setMode("view");
              }
            }}
          />
          <button type="submit" class="icon-btn" aria-label="Save title" disabled={busy}>
            <Icon name="check" />
          </button>
        </form>
      ) : mode === "delete" ? (
        <div class="confirm-delete">
          <span>Delete “{conv.title}”?</span>
          <button type="button" class="btn btn-danger small" data-testid="confirm-delete" disabled={busy} onClick={remove}>
            Delete
          </button>
          <button type="button" class="btn btn-ghost small" onClick={() => setMode("view")}>
            Cancel
          </button>
        </div>
      ) : (
        <>
          <a
            class="conv-link"
            href={href}
            onClick={(e) => {
              e.preventDefault();
              navigate(href);
            }}
          >
            <span class="conv-title" data-testid="conversation-title">
              {conv.title}
            </span>
            <span class="conv-meta">
              <span class={`dot dot-${status.toLowerCase()}`} aria-hidden="true" />
              <span data-testid="conversation-status">{STATUS_LABEL[status] ?? status.toLowerCase()}</span>
              <span class="sep">·</span>
              <time dateTime={conv.last_updated_at ?? undefined} title={conv.last_updated_at ?? ""}>
                {relativeTime(conv.last_updated_at)}
              </time>
              {usageText(conv) && (
                <>
                  <span class="sep">·</span>
                  <span data-testid="conversation-usage" title={conv.llm_model ? `LLM usage (${conv.llm_model})` : "LLM usage"}>
                    {usageText(conv)}
                  </span>
                </>
              )}
            </span>
          </a>
          <span class="row-actions">
            <button
              type="button"
              class="icon-btn"
              aria-label="Rename"
              title="Rename"
              data-testid="rename"
              onClick={() => {
                setTitle(conv.title);
                setMode("rename");
              }}
            >
              <Icon name="edit" size={14} />
            </button>
            <button
              type="button"
              class="icon-btn"
              aria-label="Delete"
              title="Delete"
              data-testid="delete"
              onClick={() => setMode("delete")}
            >
              <Icon name="trash" size={14} />
            </button>
          </span>
        </>
      )}
      {err && <div class="row-error">{err}</div>}
    </li>
  );
}
