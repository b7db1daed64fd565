import { useState } from "preact/hooks";
import { api } from "../lib/api";
import { navigate } from "../lib/router";
import { Composer } from "./Composer";

export function Home({ onCreated }: { onCreated: () => void }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [repository, setRepository] = useState("");
  const [branch, setBranch] = useState("");

  const create = async (msg: string | null) => {
    setBusy(true);
    setError("");
    try {
      const res = await api.createConversation(msg, { repository, branch });
      onCreated();
      navigate(`/conversations/${res.conversation_id}`);
      return true;
    } catch (e: any) {
      setError(e?.message ?? String(e));
      return false;
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="home" data-testid="home">
      <div class="home-inner">
        <h1>What should we work on?</h1>
        <p class="muted">
          Describe a task. The agent works in this conversation's workspace: it runs commands, edits files and reports
          back. Enter sends, Shift+Enter adds a line.
        </p>
        <Composer
          onSubmit={create}
          disabled={busy}
          autoFocus
          placeholder="Start a new conversation…"
          testId="new-message"
        />
        <div class="home-repo">
          <input
            type="text"
            class="input"
            placeholder="Repository to open (optional): a git URL, a path, or owner/name"
            value={repository}
            onInput={(e) => setRepository((e.target as HTMLInputElement).value)}
            data-testid="new-repository"
            aria-label="Repository to open"
          />
          <input
            type="text"
            class="input"
            placeholder="Branch"
            value={branch}
            onInput={(e) => setBranch((e.target as HTMLInputElement).value)}
            data-testid="new-branch"
            aria-label="Branch"
          />
        </div>
        <div class="home-actions">
          <button type="button" class="btn btn-ghost" disabled={busy} onClick={() => void create(null)} data-testid="start-empty">
            Start without a message
          </button>
        </div>
        {error && (
          <div class="banner banner-error" role="alert">
            Could not start the conversation: {error}
          </div>
        )}
      </div>
    </section>
  );
}
