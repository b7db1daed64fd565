import { useCallback, useMemo, useRef, useState } from "preact/hooks";
import { buildChatItems, type ChatItem } from "../lib/eventlog";
import { queuedMessageIds } from "../lib/queue";
import type { ConversationSession } from "../lib/session";
import { idRuns } from "../lib/virtual";
import { ChatItemView } from "./EventViews";
import { VirtualList } from "./VirtualList";

const SETTLED_STATES = new Set(["stopped", "error", "finished", "awaiting_user_input", "rejected", "user_rejected"]);

/**
 * The conversation's events as a virtualised list: only the items in view are in the DOM;
 * scrolling near the top loads older pages from the server. Every element that stands
 * for events names their ids (`data-eids` on items, `data-eid-runs` on the spacers of
 * the items out of view).
 */
export function Chat({ session, pendingId }: { session: ConversationSession; pendingId: number | null }) {
  const log = session.log;
  const items = useMemo(() => buildChatItems(log.events), [log.version]);
  // The state before the window counts only while the window does not reach back to it.
  const stateBefore = session.older?.state && session.older.state.id < log.floor ? session.older.state.state : undefined;
  const queued = useMemo(
    () => queuedMessageIds(log.events, log.agentState, stateBefore),
    [log.version, log.agentState, stateBefore],
  );
  const [unseen, setUnseen] = useState(false);
  const [jump, setJump] = useState(0);
  const atBottom = useRef(true);
  const lastKey = useRef<string | undefined>(undefined);

  const visibleCount = items.filter((i) => i.kind !== "hidden").length;
  const settled = (log.agentState !== null && SETTLED_STATES.has(log.agentState)) || session.conn === "closed";
  const confirm = (ok: boolean) => session.setAgentState(ok ? "user_confirmed" : "user_rejected");

  // Something new at the end while the person reads further up.
  const newest = items.length ? items[items.length - 1].key : undefined;
  if (newest !== lastKey.current) {
    if (lastKey.current !== undefined && !atBottom.current && !unseen) setUnseen(true);
    lastKey.current = newest;
  }

  const spacerProps = useCallback(
    (from: number, to: number) => {
      const ids: number[] = [];
      for (let i = from; i < to; i++) for (const id of items[i].ids) ids.push(id);
      return { "data-eid-runs": idRuns(ids) };
    },
    [items],
  );
  const loadOlder = useCallback(() => void session.loadOlder(), [session]);

  const header = log.hasOlder ? (
    <div class="earlier" data-testid="load-older" data-floor={log.floor} data-scan={session.older?.done ? "done" : "running"}>
      <button type="button" class="btn btn-ghost small" disabled={session.loadingOlder} onClick={loadOlder}>
        {session.loadingOlder ? "Loading earlier events…" : "Load earlier events"}
      </button>
    </div>
  ) : (
    <div class="earlier muted small" data-testid="conversation-start">
      {visibleCount > 0 ? "Start of the conversation" : ""}
    </div>
  );

  const footer = (
    <>
      {visibleCount === 0 && (
        <div class="chat-empty muted">
          {session.conn === "connecting" ? "Loading the conversation…" : "Nothing here yet. Tell the agent what to do."}
        </div>
      )}
      {session.outbox.map((m) => (
        <div key={m.clientId} class="ev msg msg-user msg-sending" data-testid="msg-sending">
          <div class="bubble">
            <div class="queued-tag muted small">Sending…</div>
            {m.text}
          </div>
        </div>
      ))}
    </>
  );

  return (
    <div class="chat-wrap">
      <VirtualList<ChatItem>
        items={items}
        itemKey={(item) => item.key}
        rowClass={(item) => (item.kind === "hidden" ? "vrow-hidden" : "")}
        renderItem={(item) => (
          <ChatItemView item={item} pendingId={pendingId} settled={settled} onConfirm={confirm} queued={queued} />
        )}
        spacerProps={spacerProps}
        header={header}
        footer={footer}
        onNearTop={log.hasOlder ? loadOlder : undefined}
        onBottomChange={(b) => {
          atBottom.current = b;
          if (b) setUnseen(false);
        }}
        renderVersion={`${pendingId}|${settled}|${log.version}`}
        jumpToBottom={jump}
        scrollerProps={{ class: "chat", "data-testid": "chat", "aria-live": "polite", "data-items": items.length }}
      />
      {unseen && (
        <button
          type="button"
          class="btn btn-small jump"
          onClick={() => {
            setJump((j) => j + 1);
            setUnseen(false);
          }}
        >
          ↓ New activity
        </button>
      )}
    </div>
  );
}
