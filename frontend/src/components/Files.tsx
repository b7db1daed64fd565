import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api } from "../lib/api";
import { basename } from "../lib/format";
import { highlightFile } from "../lib/highlight";
import { Icon } from "./Icon";

type DirState = { status: "loading" } | { status: "ok"; entries: string[] } | { status: "error"; error: string };

interface Viewed {
  path: string;
  code?: string;
  error?: string;
}

const ROOT = "";

export function Files({ conversationId, changeKey }: { conversationId: string; changeKey: number }) {
  const [dirs, setDirs] = useState<Record<string, DirState>>({});
  const [open, setOpen] = useState<Set<string>>(new Set());
  const [viewed, setViewed] = useState<Viewed | null>(null);
  const [message, setMessage] = useState<{ kind: "ok" | "err"; text: string } | null>(null);
  const [uploading, setUploading] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const openRef = useRef(open);
  openRef.current = open;

  const loadDir = useCallback(
    async (path: string, quiet = false) => {
      if (!quiet) setDirs((d) => ({ ...d, [path]: { status: "loading" } }));
      try {
        const entries = await api.listFiles(conversationId, path || undefined);
        setDirs((d) => ({ ...d, [path]: { status: "ok", entries } }));
      } catch (e: any) {
        setDirs((d) => ({ ...d, [path]: { status: "error", error: e?.message ?? String(e) } }));
      }
    },
    [conversationId],
  );

  const refreshAll = useCallback(
    (quiet: boolean) => {
      void loadDir(ROOT, quiet);
      for (const p of openRef.current) void loadDir(p, quiet);
    },
    [loadDir],
  );

  useEffect(() => refreshAll(false), [refreshAll]);

  // Files change as commands and edits run: refresh quietly, at most twice a second.
  useEffect(() => {
    if (changeKey === 0) return;
    const t = setTimeout(() => refreshAll(true), 500);
    return () => clearTimeout(t);
  }, [changeKey, refreshAll]);

  const toggle = (dir: string) => {
    const next = new Set(open);
    if (next.has(dir)) next.delete(dir);
    else {
      next.add(dir);
      void loadDir(dir);
    }
    setOpen(next);
  };

  const view = async (path: string) => {
    setViewed({ path });
    try {
      const res = await api.selectFile(conversationId, path);
      setViewed({ path, code: res.code });
    } catch (e: any) {
      setViewed({ path, error: e?.message ?? String(e) });
    }
  };

  const upload = async (files: FileList | null) => {
    if (!files || !files.length) return;
    setUploading(true);
    setMessage(null);
    try {
      const res = await api.uploadFiles(conversationId, Array.from(files));
      const skipped = res.skipped_files ?? [];
      const up = res.uploaded_files ?? [];
      setMessage({
        kind: skipped.length ? "err" : "ok",
        text:
          `Uploaded ${up.length} file${up.length === 1 ? "" : "s"}` +
          (skipped.length ? `; skipped ${skipped.map((s) => `${s.name} (${s.reason})`).join(", ")}` : ""),
      });
      refreshAll(true);
    } catch (e: any) {
      setMessage({ kind: "err", text: `Upload failed: ${e?.message ?? e}` });
    } finally {
      setUploading(false);
      if (fileInput.current) fileInput.current.value = "";
    }
  };

  const renderDir = (path: string, depth: number) => {
    const st = dirs[path];
    if (!st || st.status === "loading") return <li class="f-note muted small" style={{ paddingLeft: `${depth * 14 + 8}px` }}>Loading…</li>;
    if (st.status === "error") return <li class="f-note err small" style={{ paddingLeft: `${depth * 14 + 8}px` }}>{st.error}</li>;
    if (!st.entries.length)
      return (
        <li class="f-note muted small" style={{ paddingLeft: `${depth * 14 + 8}px` }}>
          {path ? "Empty folder" : "The workspace is empty."}
        </li>
      );
    return st.entries.map((entry) => {
      const isDir = entry.endsWith("/");
      const isOpen = open.has(entry);
      return (
        <li key={entry}>
          <button
            type="button"
            class={`f-item ${isDir ? "f-dir" : "f-file"} ${viewed?.path === entry ? "selected" : ""}`}
            style={{ paddingLeft: `${depth * 14 + 8}px` }}
            data-path={entry}
            data-testid="file-item"
            onClick={() => (isDir ? toggle(entry) : void view(entry))}
            title={entry}
          >
            {isDir && <span class={`chev ${isOpen ? "open" : ""}`}><Icon name="chevron" size={12} /></span>}
            <Icon name={isDir ? "folder" : "file"} size={14} />
            <span class="f-name">{basename(entry)}</span>
          </button>
          {isDir && isOpen && <ul>{renderDir(entry, depth + 1)}</ul>}
        </li>
      );
    });
  };

  const hl = viewed?.code !== undefined ? highlightFile(viewed.path, viewed.code) : null;

  return (
    <div class="files-panel" data-testid="files">
      <div class="f-toolbar">
        <button type="button" class="btn btn-small" onClick={() => refreshAll(false)} title="Refresh">
          <Icon name="refresh" size={13} /> Refresh
        </button>
        <button type="button" class="btn btn-small" disabled={uploading} onClick={() => fileInput.current?.click()} data-testid="upload">
          <Icon name="upload" size={13} /> {uploading ? "Uploading…" : "Upload"}
        </button>
        <input
          ref={fileInput}
          type="file"
          multiple
          hidden
          data-testid="upload-input"
          onChange={(e) => void upload((e.target as HTMLInputElement).files)}
        />
        <a class="btn btn-small" href={api.zipUrl(conversationId)} download="workspace.zip" data-testid="download-zip">
          <Icon name="download" size={13} /> Download .zip
        </a>
      </div>
      {message && <div class={`f-msg ${message.kind}`}>{message.text}</div>}
      {viewed ? (
        <div class="f-viewer" data-testid="file-viewer">
          <div class="f-viewer-head">
            <button type="button" class="btn btn-small btn-ghost" onClick={() => setViewed(null)} data-testid="back-to-files">
              ← Files
            </button>
            <code class="f-path" title={viewed.path}>
              {viewed.path}
            </code>
            {hl?.lang && <span class="badge">{hl.lang}</span>}
          </div>
          {viewed.error ? (
            <div class="obs-error">{viewed.error}</div>
          ) : hl ? (
            <pre class="code hljs f-code" data-testid="file-content" dangerouslySetInnerHTML={{ __html: hl.html }} />
          ) : (
            <div class="muted small pad">Loading…</div>
          )}
        </div>
      ) : (
        <ul class="f-tree" data-testid="file-tree">
          {renderDir(ROOT, 0)}
        </ul>
      )}
    </div>
  );
}
