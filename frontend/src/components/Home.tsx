import { useState } from "preact/hooks";
import { api } from "../lib/api";
import { navigate } from "../lib/router";
import { Composer } from "./Composer";

export function Home({ onCreated }: { onCreated: () => void }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const create = async (msg: string | null) => {
    setBusy(true);
    setError("");
    try {
      const res = await api.createConversation(msg);
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
