// Live output in the UI: the running command's (or cell's) output growing in its card
// and in the terminal, and the model's answer as it is written. Each view subscribes to
// the session's LiveOutput itself, so only it re-renders as output arrives.

import { createContext } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import type { LiveOutput, LiveText } from "../lib/liveoutput";

/** The open conversation's live output (none outside a conversation). */
export const LiveContext = createContext<LiveOutput | null>(null);

function useLive<T>(pick: (live: LiveOutput) => T): T | null {
  const live = useContext(LiveContext);
  const [, setVersion] = useState(0);
  useEffect(() => {
    if (!live) return;
    return live.subscribe(() => setVersion(live.version));
  }, [live]);
  return live ? pick(live) : null;
}

/** The output so far of running action `id`. */
export function useLiveAction(id: number | undefined): LiveText | null {
  return useLive((live) => (id === undefined ? null : live.forAction(id)));
}

/** The growing output of a running action, if any arrived. */
export function LiveActionOutput({ id, class: cls, testId }: { id: number | undefined; class: string; testId: string }) {
  const out = useLiveAction(id);
  if (!out || !out.text) return null;
  return (
    <pre class={`${cls} live-out`} data-testid={testId} aria-live="off">
      {out.text}
    </pre>
  );
}

/** The model's answer while it is written. */
export function LiveThought() {
  const t = useLive((live) => live.thought());
  if (!t || !t.text) return null;
  return (
    <div class="ev msg msg-agent live-thought" data-testid="live-thought">
      <div class="thought agent-text live-text">{t.text}</div>
    </div>
  );
}
