import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import type { SandboxInfo } from "../lib/types";

const LABEL: Record<string, string> = {
  "workspace-write": "Sandbox: workspace",
  "read-only": "Sandbox: read-only",
  off: "No sandbox",
};

/** What the conversation's commands may touch, from its info's `sandbox` field. */
export function SandboxBadge({ id }: { id: string }) {
  const [info, setInfo] = useState<SandboxInfo | null>(null);
  useEffect(() => {
    let live = true;
    api
      .getConversation(id)
      .then((c) => live && setInfo(c.sandbox ?? null))
      .catch(() => live && setInfo(null));
    return () => {
      live = false;
    };
  }, [id]);
  if (!info) return null;
  const incomplete = info.mode !== "off" && info.missing.length > 0;
  const kind = info.mode === "off" || incomplete ? "sandbox-weak" : "sandbox-on";
  const title = [
    info.mode === "workspace-write"
      ? "Commands can write only in the workspace; the server's data is hidden."
      : info.mode === "read-only"
        ? "Commands can read but not write."
        : "Commands run with the server user's full rights.",
    info.network ? "Network: on." : "Network: off (loopback of this conversation only).",
    ...info.missing,
  ].join(" ");
  return (
    <span class={`pill sandbox ${kind}`} data-testid="sandbox-mode" data-mode={info.mode} title={title}>
      {LABEL[info.mode] ?? info.mode}
      {!info.network && info.mode !== "off" ? " · offline" : ""}
      {incomplete ? " (partial)" : ""}
    </span>
  );
}
