import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { buildChatItems, type ChatItem } from "../lib/eventlog";
import { queuedMessageIds } from "../lib/queue";
import type { ConversationSession } from "../lib/session";
import { ChatItemView } from "./EventViews";

/** Items rendered before "show earlier" kicks in. */
const VISIBLE_LIMIT = 400;

const SETTLED_STATES = new Set(["stopped", "error", "finished", "awaiting_user_input", "rejected", "user_rejected"]);

export function Chat({ session, pendingId }: { session: ConversationSession; pendingId: number | null }) {
  const log = session.log;
  const items = useMemo(() => buildChatItems(log.events), [log.version]);
  const queued = useMemo(() => queuedMessageIds(log.events, log.agentState), [log.version, log.agentState]);
  const [showAll, setShowAll] = useState(false);
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const [unseen, setUnseen] = useState(false);

  let shown: ChatItem[] = items;
  let earlierIds: number[] = [];
  if (!showAll && items.length > VISIBLE_LIMIT) {
    const cut = items.length - VISIBLE_LIMIT;
    for (let i = 0; i < cut; i++) earlierIds = earlierIds.concat(items[i].ids);
    shown = items.slice(cut);
  }
  const visibleCount = items.filter((i) => i.kind !== "hidden").length;
  const settled = (log.agentState !== null && SETTLED_STATES.has(log.agentState)) || session.conn === "closed";

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
      setUnseen(false);
    } else {
      setUnseen(true);
    }
  }, [log.version]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    if (atBottom.current) setUnseen(false);
  };

  const confirm = (ok: boolean) => session.setAgentState(ok ? "user_confirmed" : "user_rejected");

  return (
    <div class="chat-wrap">
      <div class="chat" ref={scroller} onScroll={onScroll} data-testid="chat" aria-live="polite">
        {earlierIds.length > 0 && (
          <div class="earlier" data-eids={earlierIds.join(" ")}>
            <button type="button" class="btn btn-ghost small" onClick={() => setShowAll(true)}>
              Show {items.length - shown.length} earlier items
            </button>
          </div>
        )}
        {visibleCount === 0 && (
          <div class="chat-empty muted">
            {session.conn === "connecting" ? "Loading the conversation…" : "Nothing here yet. Tell the agent what to do."}
          </div>
        )}
        {shown.map((item) => (
          <ChatItemView key={item.key} item={item} pendingId={pendingId} settled={settled} onConfirm={confirm} queued={queued} />
        ))}
        {session.outbox.map((m) => (
          <div key={m.clientId} class="ev msg msg-user msg-sending" data-testid="msg-sending">
            <div class="bubble">
              <div class="queued-tag muted small">Sending…</div>
              {m.text}
            </div>
          </div>
        ))}
      </div>
      {unseen && (
        <button
          type="button"
          class="btn btn-small jump"
          onClick={() => {
            const el = scroller.current;
            if (el) el.scrollTop = el.scrollHeight;
            atBottom.current = true;
            setUnseen(false);
          }}
        >
          ↓ New activity
        </button>
      )}
    </div>
  );
}
