// How each chat item looks: message bubbles, action cards with their observation,
// orphan observations. Markdown and highlighted code are the only HTML inserted, and
// both are produced escaped (see lib/markdown.ts, lib/highlight.ts).

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { type ChatItem, ACTIONS_WITH_RESULT, exitCode } from "../lib/eventlog";
import { clip } from "../lib/format";
import { highlight, highlightFile } from "../lib/highlight";
import { renderMarkdown } from "../lib/markdown";
import { LiveActionOutput } from "./LiveOutput";
import type { OHEvent, TaskItem } from "../lib/types";
import { Icon } from "./Icon";

const OUTPUT_CLIP = 20_000;

export function Markdown({ text, class: cls = "" }: { text: string; class?: string }) {
  return <div class={`md ${cls}`} dangerouslySetInnerHTML={{ __html: renderMarkdown(text) }} />;
}

function ids(item: ChatItem) {
  return item.ids.join(" ");
}

export interface ItemProps {
  item: ChatItem;
  /** The action the agent waits to have confirmed, if any. */
  pendingId: number | null;
  /** The conversation is in a state where a missing observation will not come. */
  settled: boolean;
  onConfirm: (ok: boolean) => void;
  /** User messages the agent has not taken yet. */
  queued?: Set<number>;
}

export function ChatItemView({ item, pendingId, settled, onConfirm, queued }: ItemProps) {
  switch (item.kind) {
    case "hidden":
      return <div class="ev-hidden" hidden data-eids={ids(item)} />;
    case "message":
      return <MessageView item={item} queued={!!queued?.has(item.event.id)} />;
    case "observation":
      return (
        <div class="ev ev-obs" data-eids={ids(item)}>
          <ObservationView obs={item.event} />
        </div>
      );
    case "action":
      return (
        <ActionCard
          item={item}
          pending={pendingId === item.action.id}
          settled={settled}
          onConfirm={onConfirm}
        />
      );
  }
}

function MessageView({ item, queued }: { item: Extract<ChatItem, { kind: "message" }>; queued: boolean }) {
  const ev = item.event;
  const isFinish = ev.action === "finish";
  const text = isFinish
    ? String(ev.args?.final_thought || ev.message || "")
    : String(ev.args?.content ?? ev.message ?? "");
  const images: string[] = Array.isArray(ev.args?.image_urls) ? ev.args!.image_urls : [];
  const files: string[] = Array.isArray(ev.args?.file_urls) ? ev.args!.file_urls : [];
  return (
    <div
      class={`ev msg msg-${item.role} ${isFinish ? "msg-finish" : ""} ${queued ? "msg-queued" : ""}`}
      data-eids={ids(item)}
      data-testid={`msg-${item.role}`}
      data-queued={queued ? "true" : undefined}
    >
      {item.role === "agent" && <div class="avatar" aria-hidden="true">OH</div>}
      <div class="bubble">
        {queued && (
          <div class="queued-tag muted small" data-testid="queued" title="The agent takes this message at its next step">
            Queued: the agent reads it at its next step
          </div>
        )}
        {isFinish && (
          <div class="finish-tag">
            <Icon name="flag" size={13} /> Finished
          </div>
        )}
        {ev.args?.thought && !isFinish ? <Markdown class="thought" text={String(ev.args.thought)} /> : null}
        <Markdown text={text} />
        {images.length > 0 && (
          <div class="msg-images">
            {images
              .filter((u) => /^data:image\/|^https?:\/\//.test(u))
              .map((u, i) => (
                <img key={i} src={u} alt={`attachment ${i + 1}`} loading="lazy" />
              ))}
          </div>
        )}
        {files.length > 0 && <div class="msg-files muted small">Files: {files.join(", ")}</div>}
      </div>
    </div>
  );
}

function actionTitle(a: OHEvent): { icon: string; label: ComponentChildren } {
  const args = a.args ?? {};
  switch (a.action) {
    case "run":
      return { icon: "terminal", label: <code class="cmd">{String(args.command ?? "")}</code> };
    case "run_ipython":
      return { icon: "terminal", label: "Ran Python code" };
    case "read":
      return { icon: "eye", label: <>Read <code>{String(args.path ?? "")}</code></> };
    case "write":
      return { icon: "file", label: <>Wrote <code>{String(args.path ?? "")}</code></> };
    case "edit": {
      const verb =
        args.command === "create" ? "Created" : args.command === "insert" ? "Inserted into" : args.command === "undo_edit" ? "Undid an edit of" : "Edited";
      return { icon: "edit", label: <>{verb} <code>{String(args.path ?? "")}</code></> };
    }
    case "browse":
      return { icon: "globe", label: <>Fetched <code>{String(args.url ?? "")}</code></> };
    case "browse_interactive":
      return { icon: "globe", label: "Used the browser" };
    case "call_tool_mcp":
      return { icon: "tool", label: <>Called tool <code>{String(args.name ?? "")}</code></> };
    case "think":
      return { icon: "bulb", label: "Thought" };
    case "task_tracking":
      return { icon: "list", label: args.command === "view" ? "Looked at the plan" : "Updated the plan" };
    case "delegate":
      return { icon: "tool", label: <>Delegated to <code>{String(args.agent ?? "")}</code></> };
    case "condensation": {
      const start = Number(args.forgotten_events_start_id);
      const end = Number(args.forgotten_events_end_id);
      const ids = Array.isArray(args.forgotten_event_ids) ? args.forgotten_event_ids.length : 0;
      const range = Number.isFinite(start) && Number.isFinite(end) ? `events ${start}–${end}` : `${ids} events`;
      return { icon: "list", label: <>Condensed older steps ({range})</> };
    }
    default:
      return { icon: "tool", label: a.message || a.action };
  }
}

/** The action's security risk (medium or high; set by the model and the analyzer). */
function RiskBadge({ action }: { action: OHEvent }) {
  const risk = action.args?.security_risk;
  if (risk === 2) return <span class="badge badge-risk-high" data-testid="risk" title="Security risk: high">high risk</span>;
  if (risk === 1) return <span class="badge badge-risk-medium" data-testid="risk" title="Security risk: medium">medium risk</span>;
  return null;
}

/** A Python cell's text without its markdown images (they are shown as images). */
function cellText(content: string): string {
  return content
    .split("\n")
    .filter((l) => !l.startsWith("![image](data:image/"))
    .join("\n");
}

function StatusBadge({ action, obs, settled }: { action: OHEvent; obs?: OHEvent; settled: boolean }) {
  if (action.args?.confirmation_state === "awaiting_confirmation") {
    return <span class="badge badge-warn">needs confirmation</span>;
  }
  if (!obs) {
    if (!ACTIONS_WITH_RESULT.has(action.action ?? "")) return null;
    if (settled) return <span class="badge">no result</span>;
    return (
      <span class="badge badge-run">
        <span class="spinner" aria-hidden="true" /> running
      </span>
    );
  }
  if (obs.observation === "error") return <span class="badge badge-err">error</span>;
  if (obs.observation === "user_rejected") return <span class="badge badge-warn">rejected</span>;
  if (obs.observation === "run") {
    const code = exitCode(obs);
    if (code === 0) return <span class="badge badge-ok" data-testid="exit-code">exit 0</span>;
    if (code === -1) return <span class="badge badge-warn" data-testid="exit-code">no exit code (timed out or still running)</span>;
    if (code !== null) return <span class="badge badge-err" data-testid="exit-code">exit {code}</span>;
  }
  if (obs.observation === "browse" && obs.extras?.error) return <span class="badge badge-err">failed</span>;
  if (obs.observation === "mcp" && mcpResult(obs.content ?? "").isError) return <span class="badge badge-err">tool error</span>;
  return (
    <span class="badge badge-ok">
      <Icon name="check" size={12} />
    </span>
  );
}

function ActionCard({
  item,
  pending,
  settled,
  onConfirm,
}: {
  item: Extract<ChatItem, { kind: "action" }>;
  pending: boolean;
  settled: boolean;
  onConfirm: (ok: boolean) => void;
}) {
  const a = item.action;
  const obs = item.observation;
  const { icon, label } = actionTitle(a);
  const thought = a.action === "think" ? "" : String(a.args?.thought ?? "");
  const openByDefault = a.action === "run" || a.action === "edit" || a.action === "think" || a.action === "task_tracking" || pending || obs?.observation === "error";
  return (
    <div class={`ev ev-action act-${a.action} src-${a.source}`} data-eids={ids(item)} data-testid={`action-${a.action}`}>
      {thought && <Markdown class="thought agent-text" text={thought} />}
      <details class="card" open={openByDefault}>
        <summary>
          <Icon name={icon} size={14} />
          <span class="card-title">{label}</span>
          {a.source === "user" && <span class="badge">you</span>}
          <RiskBadge action={a} />
          <StatusBadge action={a} obs={obs} settled={settled} />
        </summary>
        <div class="card-body">
          <ActionBody action={a} obs={obs} />
          {item.more.map((o) => (
            <ObservationView key={o.id} obs={o} />
          ))}
        </div>
      </details>
      {pending && (
        <div class="confirm-bar" data-testid="confirm-bar">
          <span>The agent wants to run this. Allow it?</span>
          <button type="button" class="btn btn-primary small" data-testid="confirm" onClick={() => onConfirm(true)}>
            <Icon name="check" size={14} /> Confirm
          </button>
          <button type="button" class="btn btn-danger small" data-testid="reject" onClick={() => onConfirm(false)}>
            <Icon name="x" size={14} /> Reject
          </button>
        </div>
      )}
    </div>
  );
}

function Output({ text, testId }: { text: string; testId?: string }) {
  const [full, setFull] = useState(false);
  const c = full ? { text, clipped: false } : clip(text, OUTPUT_CLIP);
  return (
    <>
      <pre class="term-out" data-testid={testId}>{c.text}</pre>
      {c.clipped && (
        <button type="button" class="btn btn-ghost small" onClick={() => setFull(true)}>
          Show all {text.length.toLocaleString()} characters
        </button>
      )}
    </>
  );
}

export function DiffView({ diff }: { diff: string }) {
  // The card title names the file: drop the diff's own file header lines.
  const lines = diff
    .replace(/\n$/, "")
    .split("\n")
    .filter((l, i) => !(i < 3 && (l.startsWith("--- ") || l.startsWith("+++ "))));
  return (
    <pre class="diff" data-testid="diff">
      {lines.map((l, i) => {
        const cls = l.startsWith("+++") || l.startsWith("---")
          ? "d-file"
          : l.startsWith("@@")
            ? "d-hunk"
            : l.startsWith("+")
              ? "d-add"
              : l.startsWith("-")
                ? "d-del"
                : "d-ctx";
        return (
          <span key={i} class={cls}>
            {l}
            {"\n"}
          </span>
        );
      })}
    </pre>
  );
}

function Code({ path, code }: { path: string; code: string }) {
  const c = clip(code, 60_000);
  const { html } = highlightFile(path, c.text);
  return <pre class="code hljs" dangerouslySetInnerHTML={{ __html: html }} />;
}

export function TaskListView({ tasks }: { tasks: TaskItem[] }) {
  if (!tasks.length) return <div class="muted small">The plan is empty.</div>;
  return (
    <ol class="tasks" data-testid="task-list">
      {tasks.map((t, i) => (
        <li key={t.id ?? i} class={`task task-${t.status ?? "todo"}`}>
          <span class="task-box" aria-hidden="true">
            {t.status === "done" ? "✓" : t.status === "in_progress" ? "…" : ""}
          </span>
          <span class="task-title">{t.title}</span>
          <span class="task-status muted small">{(t.status ?? "todo").replace("_", " ")}</span>
          {t.notes && <div class="task-notes muted small">{t.notes}</div>}
        </li>
      ))}
    </ol>
  );
}

function ActionBody({ action: a, obs }: { action: OHEvent; obs?: OHEvent }) {
  const args = a.args ?? {};
  if (obs && (obs.observation === "error" || obs.observation === "user_rejected")) {
    return (
      <>
        {a.action === "run" && <pre class="term-out">$ {String(args.command ?? "")}</pre>}
        <ObservationView obs={obs} />
      </>
    );
  }
  switch (a.action) {
    case "run": {
      const out = obs?.content ?? "";
      const code = exitCode(obs);
      return (
        <div class="term">
          <div class="term-cmd">
            <span class="prompt">$</span> {String(args.command ?? "")}
            {args.is_input && <span class="muted small"> (input to the running command)</span>}
          </div>
          {obs ? <Output text={out} testId="run-output" /> : <LiveActionOutput id={a.id} class="term-out" testId="run-live-output" />}
          {obs && code !== null && code !== 0 && (
            <div class={`term-exit ${code === -1 ? "warn" : "err"}`}>
              {code === -1 ? "The command has no exit code yet (timed out, or still running)." : `Exit code ${code}`}
            </div>
          )}
        </div>
      );
    }
    case "run_ipython":
      return (
        <>
          <pre class="code hljs" dangerouslySetInnerHTML={{ __html: highlight(String(args.code ?? ""), "python") }} />
          {obs ? <Output text={cellText(obs.content ?? "")} /> : <LiveActionOutput id={a.id} class="term-out" testId="cell-live-output" />}
          {Array.isArray(obs?.extras?.image_urls) && (
            <div class="msg-images" data-testid="cell-images">
              {(obs!.extras!.image_urls as string[])
                .filter((u) => u.startsWith("data:image/png;base64,"))
                .map((u, i) => (
                  <img key={i} src={u} alt={`output image ${i + 1}`} loading="lazy" />
                ))}
            </div>
          )}
        </>
      );
    case "edit": {
      const diff = typeof obs?.extras?.diff === "string" ? obs.extras.diff : "";
      if (diff) return <DiffView diff={diff} />;
      if (args.command === "create" && typeof args.file_text === "string") {
        return <DiffView diff={String(args.file_text).split("\n").map((l) => `+${l}`).join("\n")} />;
      }
      if (obs?.content) return <Output text={obs.content} />;
      if (typeof args.old_str === "string" || typeof args.new_str === "string") {
        const minus = String(args.old_str ?? "").split("\n").map((l) => `-${l}`);
        const plus = String(args.new_str ?? "").split("\n").map((l) => `+${l}`);
        return <DiffView diff={[...minus, ...plus].join("\n")} />;
      }
      return null;
    }
    case "read":
      return obs ? <Code path={String(args.path ?? obs.extras?.path ?? "")} code={obs.content ?? ""} /> : null;
    case "write":
      return <Code path={String(args.path ?? "")} code={String(args.content ?? "")} />;
    case "browse":
    case "browse_interactive": {
      if (!obs) return null;
      const url = String(obs.extras?.url ?? args.url ?? "");
      const shot = typeof obs.extras?.screenshot === "string" && obs.extras.screenshot.startsWith("data:image/") ? obs.extras.screenshot : "";
      return (
        <div class="browse">
          {url && /^https?:\/\//.test(url) && (
            <a href={url} target="_blank" rel="noopener noreferrer nofollow" class="small">
              {url}
            </a>
          )}
          {a.action === "browse_interactive" && typeof args.browser_actions === "string" && (
            <pre class="code hljs" dangerouslySetInnerHTML={{ __html: highlight(args.browser_actions, "python") }} />
          )}
          {shot && <img class="shot" src={shot} alt="Screenshot of the page" />}
          {/* A fetched page comes as markdown; the interactive browser's as its accessibility tree. */}
          {a.action === "browse_interactive" ? (
            <Output text={obs.content ?? ""} />
          ) : (
            <Markdown class="browse-md" text={clip(obs.content ?? "", 30_000).text} />
          )}
        </div>
      );
    }
    case "call_tool_mcp":
      return (
        <>
          <pre class="code">{JSON.stringify(args.arguments ?? {}, null, 2)}</pre>
          {obs && (obs.observation === "mcp" ? <McpResult text={obs.content ?? ""} /> : <ObservationView obs={obs} />)}
        </>
      );
    case "think":
      return <Markdown class="thought" text={String(args.thought ?? "")} />;
    case "condensation":
      return typeof args.summary === "string" && args.summary ? (
        <div data-testid="condensation-summary">
          <div class="muted small">The model continues from this summary of them:</div>
          <Markdown class="thought" text={args.summary} />
        </div>
      ) : (
        <div class="muted small" data-testid="condensation-summary">They were dropped from the model's context without a summary.</div>
      );
    case "task_tracking": {
      const list = Array.isArray(obs?.extras?.task_list) ? obs!.extras!.task_list : Array.isArray(args.task_list) ? args.task_list : [];
      return <TaskListView tasks={list} />;
    }
    default:
      return obs ? <ObservationView obs={obs} /> : <pre class="code">{JSON.stringify(args, null, 2)}</pre>;
  }
}

/** An MCP tool result (the JSON of the server's answer): its text blocks, and whether the server called it an error. */
export function mcpResult(text: string): { isError: boolean; text: string } {
  try {
    const r = JSON.parse(text);
    if (r && typeof r === "object" && Array.isArray(r.content)) {
      const parts = r.content.map((c: { type?: string; text?: unknown }) =>
        c && c.type === "text" && typeof c.text === "string" ? c.text : `[${String(c?.type ?? "content")}]`,
      );
      return { isError: r.isError === true, text: parts.join("\n") || (r.error ? String(r.error) : "") };
    }
  } catch {
    // Not JSON: shown as it is.
  }
  return { isError: false, text };
}

function McpResult({ text }: { text: string }) {
  const r = mcpResult(text);
  return <div class={r.isError ? "obs-error" : ""} data-testid="mcp-result"><Output text={r.text} /></div>;
}

export function ObservationView({ obs }: { obs: OHEvent }) {
  switch (obs.observation) {
    case "mcp":
      return (
        <div class="obs-generic">
          <div class="muted small">
            Tool <code>{String(obs.extras?.name ?? "")}</code>
          </div>
          <McpResult text={obs.content ?? ""} />
        </div>
      );
    case "success":
      return (
        <div class="obs-note" role="note" data-testid="obs-success">
          <Icon name="check" size={14} /> <span>{obs.content}</span>
        </div>
      );
    case "error":
      return (
        <div class="obs-error" role="note" data-testid="obs-error">
          <Icon name="alert" size={14} /> <span>{obs.content || obs.message}</span>
        </div>
      );
    case "user_rejected":
      return <div class="obs-note">You rejected this action.</div>;
    case "run":
      return (
        <div class="term">
          <div class="term-cmd">
            <span class="prompt">$</span> {String(obs.extras?.command ?? "")}
          </div>
          <Output text={obs.content ?? ""} />
        </div>
      );
    case "think":
      return null;
    case "edit":
      return typeof obs.extras?.diff === "string" && obs.extras.diff ? <DiffView diff={obs.extras.diff} /> : <Output text={obs.content ?? ""} />;
    case "read":
      return <Code path={String(obs.extras?.path ?? "")} code={obs.content ?? ""} />;
    case "task_tracking":
      return <TaskListView tasks={Array.isArray(obs.extras?.task_list) ? obs.extras!.task_list : []} />;
    default:
      return (
        <div class="obs-generic">
          <div class="muted small">{obs.message || obs.observation}</div>
          {obs.content ? <Output text={obs.content} /> : null}
        </div>
      );
  }
}
