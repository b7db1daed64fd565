import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { buildTerminalEntries, exitCode } from "../lib/eventlog";
import { clip } from "../lib/format";
import type { ConversationSession } from "../lib/session";
import type { OHEvent } from "../lib/types";
import { Icon } from "./Icon";
import { LiveActionOutput } from "./LiveOutput";

const CLIP = 20_000;

function EntryOutput({ obs }: { obs: OHEvent }) {
  const [full, setFull] = useState(false);
  if (obs.observation === "user_rejected") return <div class="t-exit warn">[rejected: not run]</div>;
  if (obs.observation !== "run") return <div class="t-exit err">[{obs.content || obs.message || obs.observation}]</div>;
  const text = obs.content ?? "";
  const c = full ? { text, clipped: false } : clip(text, CLIP);
  const code = exitCode(obs);
  return (
    <>
      {c.text && <pre class="t-out">{c.text}</pre>}
      {c.clipped && (
        <button type="button" class="link small" onClick={() => setFull(true)}>
          show all {text.length.toLocaleString()} characters
        </button>
      )}
      {code !== null && code !== 0 && (
        <div class={`t-exit ${code === -1 ? "warn" : "err"}`}>
          {code === -1 ? "[no exit code: timed out or still running]" : `[exit code ${code}]`}
        </div>
      )}
    </>
  );
}

export function Terminal({ session, running }: { session: ConversationSession; running: OHEvent | null }) {
  const log = session.log;
  const entries = useMemo(() => buildTerminalEntries(log.events), [log.version]);
  const [cmd, setCmd] = useState("");
  const [asInput, setAsInput] = useState(true);
  const [history, setHistory] = useState<string[]>([]);
  const [histPos, setHistPos] = useState(-1);
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const connected = session.conn === "connected";

  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [log.version]);

  const submit = () => {
    const c = cmd;
    if (!c.trim() && !(running && asInput)) return;
    if (session.runCommand(c, !!running && asInput)) {
      if (c.trim()) setHistory((h) => [...h.slice(-99), c]);
      setHistPos(-1);
      setCmd("");
      atBottom.current = true;
    }
  };

  return (
    <div class="terminal-panel">
      <div
        class="terminal"
        ref={scroller}
        data-testid="terminal"
        onScroll={() => {
          const el = scroller.current;
          if (el) atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        {entries.length === 0 && <div class="t-empty">Commands run here, by the agent or by you, show up with their output.</div>}
        {entries.map((e) => {
          const command = String(e.action?.args?.command ?? e.observations[0]?.extras?.command ?? "");
          const who = (e.action ?? e.observations[0])?.source === "user" ? "you" : "agent";
          return (
            <div class="t-entry" key={e.key} data-testid="terminal-entry">
              <div class="t-cmd">
                <span class={`t-who t-${who}`}>{who}</span>
                <span class="prompt">{e.action?.args?.is_input ? ">" : "$"}</span> {command}
              </div>
              {e.observations.map((o) => (
                <EntryOutput key={o.id} obs={o} />
              ))}
              {e.observations.length === 0 && <LiveActionOutput id={e.action?.id} class="t-out" testId="terminal-live" />}
              {e.observations.length === 0 && e === entries[entries.length - 1] && running && (
                <div class="t-running">
                  <span class="spinner" aria-hidden="true" /> running…
                </div>
              )}
            </div>
          );
        })}
      </div>
      <form
        class="t-input"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <span class="prompt">{running && asInput ? ">" : "$"}</span>
        <input
          class="t-field"
          value={cmd}
          spellcheck={false}
          autocomplete="off"
          autocapitalize="off"
          placeholder={
            !connected ? "Not connected" : running && asInput ? "Input for the running command…" : "Run a command in the workspace…"
          }
          aria-label="Command"
          data-testid="terminal-input"
          disabled={!connected}
          onInput={(e) => setCmd((e.target as HTMLInputElement).value)}
          onKeyDown={(e) => {
            if (e.key === "ArrowUp" && history.length) {
              e.preventDefault();
              const p = histPos < 0 ? history.length - 1 : Math.max(0, histPos - 1);
              setHistPos(p);
              setCmd(history[p]);
            } else if (e.key === "ArrowDown" && histPos >= 0) {
              e.preventDefault();
              const p = histPos + 1;
              if (p >= history.length) {
                setHistPos(-1);
                setCmd("");
              } else {
                setHistPos(p);
                setCmd(history[p]);
              }
            }
          }}
        />
        {running && (
          <>
            <label class="t-toggle small" title="Send what you type to the running command instead of starting a new one">
              <input type="checkbox" checked={asInput} onChange={(e) => setAsInput((e.target as HTMLInputElement).checked)} /> as input
            </label>
            <button
              type="button"
              class="btn btn-small btn-danger"
              title="Interrupt the running command (Ctrl-C)"
              data-testid="terminal-interrupt"
              disabled={!connected}
              onClick={() => session.runCommand("C-c", true)}
            >
              Ctrl-C
            </button>
          </>
        )}
        <button type="submit" class="btn btn-small" disabled={!connected} aria-label="Run">
          <Icon name="play" size={12} />
        </button>
      </form>
    </div>
  );
}
