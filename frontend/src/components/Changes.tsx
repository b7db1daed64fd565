import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { basename } from "../lib/format";
import { unifiedDiff } from "../lib/linediff";
import { DiffView } from "./EventViews";
import { Icon } from "./Icon";

type Change = { status: string; path: string };
type ListState =
  | { status: "loading" }
  | { status: "ok"; changes: Change[] }
  | { status: "not-git" }
  | { status: "error"; error: string };

interface Viewed {
  path: string;
  status: string;
  diff?: string;
  error?: string;
}

const STATUS_LABEL: Record<string, string> = {
  M: "Modified",
  A: "Added",
  D: "Deleted",
  R: "Renamed",
  U: "Untracked",
};

/** The workspace's git changes against HEAD, and each file's diff. */
export function Changes({ conversationId, changeKey }: { conversationId: string; changeKey: number }) {
  const [list, setList] = useState<ListState>({ status: "loading" });
  const [viewed, setViewed] = useState<Viewed | null>(null);
  const viewedRef = useRef(viewed);
  viewedRef.current = viewed;

  const load = useCallback(
    async (quiet: boolean) => {
      if (!quiet) setList({ status: "loading" });
      try {
        const changes = await api.gitChanges(conversationId);
        setList({ status: "ok", changes: Array.isArray(changes) ? changes : [] });
      } catch (e: any) {
        if (e instanceof ApiError && e.status === 404 && /not a git repository/i.test(e.message)) setList({ status: "not-git" });
        else setList({ status: "error", error: e?.message ?? String(e) });
      }
    },
    [conversationId],
  );

  const view = useCallback(
    async (path: string, status: string, quiet = false) => {
      if (!quiet) setViewed({ path, status });
      // A late answer for a file no longer shown is dropped.
      const still = () => viewedRef.current?.path === path;
      try {
        const res = await api.gitDiff(conversationId, path);
        if (still()) setViewed({ path, status, diff: unifiedDiff(res.original ?? "", res.modified ?? "") });
      } catch (e: any) {
        if (still()) setViewed({ path, status, error: e?.message ?? String(e) });
      }
    },
    [conversationId],
  );

  useEffect(() => {
    setViewed(null);
    void load(false);
  }, [load]);

  // Commands and edits change the workspace: refresh quietly, like the files tree.
  useEffect(() => {
    if (changeKey === 0) return;
    const t = setTimeout(() => {
      void load(true);
      const v = viewedRef.current;
      if (v) void view(v.path, v.status, true);
    }, 500);
    return () => clearTimeout(t);
  }, [changeKey, load, view]);

  const refresh = () => {
    void load(false);
    if (viewed) void view(viewed.path, viewed.status);
  };

  return (
    <div class="files-panel changes-panel" data-testid="changes">
      <div class="f-toolbar">
        <button type="button" class="btn btn-small" onClick={refresh} title="Refresh" data-testid="changes-refresh">
          <Icon name="refresh" size={13} /> Refresh
        </button>
        {list.status === "ok" && list.changes.length > 0 && (
          <span class="muted small changes-count">
            {list.changes.length} changed file{list.changes.length === 1 ? "" : "s"}
          </span>
        )}
      </div>
      {viewed ? (
        <div class="f-viewer" data-testid="change-viewer">
          <div class="f-viewer-head">
            <button type="button" class="btn btn-small btn-ghost" onClick={() => setViewed(null)} data-testid="back-to-changes">
              ← Changes
            </button>
            <code class="f-path" title={viewed.path}>
              {viewed.path}
            </code>
            <span class={`g-status g-${viewed.status}`} title={STATUS_LABEL[viewed.status] ?? viewed.status}>
              {viewed.status}
            </span>
          </div>
          {viewed.error ? (
            <div class="obs-error pad">{viewed.error}</div>
          ) : viewed.diff === undefined ? (
            <div class="muted small pad">Loading…</div>
          ) : viewed.diff ? (
            <div class="change-diff" data-testid="change-diff">
              <DiffView diff={viewed.diff} />
            </div>
          ) : (
            <div class="muted small pad">No differences in the text.</div>
          )}
        </div>
      ) : list.status === "loading" ? (
        <div class="muted small pad">Loading…</div>
      ) : list.status === "not-git" ? (
        <div class="changes-empty muted" data-testid="not-git">
          <Icon name="diff" size={20} />
          <div>Not a git repository</div>
          <div class="small">Changes show here once the workspace is a git repository.</div>
        </div>
      ) : list.status === "error" ? (
        <div class="f-msg err">{list.error}</div>
      ) : list.changes.length === 0 ? (
        <div class="changes-empty muted" data-testid="no-changes">
          <Icon name="check" size={20} />
          <div>No changes</div>
        </div>
      ) : (
        <ul class="f-tree" data-testid="changes-list">
          {list.changes.map((c) => (
            <li key={`${c.status}:${c.path}`}>
              <button
                type="button"
                class="f-item f-file change-item"
                data-testid="change-item"
                data-path={c.path}
                data-status={c.status}
                title={`${STATUS_LABEL[c.status] ?? c.status}: ${c.path}`}
                onClick={() => void view(c.path, c.status)}
              >
                <span class={`g-status g-${c.status}`}>{c.status}</span>
                <span class="f-name">{basename(c.path)}</span>
                {c.path.includes("/") && <span class="muted small f-dirname">{c.path.slice(0, c.path.lastIndexOf("/"))}</span>}
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
