import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import type { Settings } from "../lib/types";
import { Icon } from "./Icon";

interface Form {
  llm_model: string;
  llm_base_url: string;
  llm_api_key: string;
  clear_key: boolean;
  agent: string;
  max_iterations: string;
  confirmation_mode: boolean;
}

function toForm(s: Settings): Form {
  return {
    llm_model: s.llm_model ?? "",
    llm_base_url: s.llm_base_url ?? "",
    llm_api_key: "",
    clear_key: false,
    agent: s.agent ?? "CodeActAgent",
    max_iterations: s.max_iterations == null ? "" : String(s.max_iterations),
    confirmation_mode: !!s.confirmation_mode,
  };
}

/** The POST body for a form: only what the form owns; an empty key field keeps the stored key. */
export function settingsPayload(f: Form): Partial<Settings> {
  const out: Partial<Settings> = {
    llm_model: f.llm_model.trim() || null,
    llm_base_url: f.llm_base_url.trim() || null,
    agent: f.agent || null,
    confirmation_mode: f.confirmation_mode,
    max_iterations: f.max_iterations.trim() === "" ? null : Math.max(1, Math.floor(Number(f.max_iterations))),
  };
  if (f.clear_key) out.llm_api_key = null;
  else if (f.llm_api_key) out.llm_api_key = f.llm_api_key;
  return out;
}

export function SettingsDialog({ onClose, onSaved }: { onClose: () => void; onSaved: () => void }) {
  const [settings, setSettings] = useState<Settings | null>(null);
  const [form, setForm] = useState<Form | null>(null);
  const [models, setModels] = useState<string[]>([]);
  const [agents, setAgents] = useState<string[]>([]);
  const [error, setError] = useState("");
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  const load = async () => {
    try {
      const s = await api.getSettings();
      setSettings(s);
      setForm(toForm(s));
    } catch (e: any) {
      setError(`Could not load the settings: ${e?.message ?? e}`);
    }
  };

  useEffect(() => {
    void load();
    api.models().then(setModels, () => {});
    api.agents().then(setAgents, () => {});
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => {
    setSaved(false);
    setForm((f) => (f ? { ...f, [k]: v } : f));
  };

  const save = async (e: Event) => {
    e.preventDefault();
    if (!form) return;
    if (form.max_iterations.trim() !== "" && !(Number(form.max_iterations) >= 1)) {
      setError("Max iterations must be a positive whole number.");
      return;
    }
    setBusy(true);
    setError("");
    try {
      await api.saveSettings(settingsPayload(form));
      const s = await api.getSettings();
      setSettings(s);
      setForm(toForm(s));
      setSaved(true);
      onSaved();
    } catch (err: any) {
      setError(`Could not save: ${err?.message ?? err}`);
    } finally {
      setBusy(false);
    }
  };

  const keySet = !!settings?.llm_api_key_set;

  return (
    <div class="modal-scrim" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-labelledby="settings-title" data-testid="settings-dialog">
        <div class="modal-head">
          <h2 id="settings-title">Settings</h2>
          <button type="button" class="icon-btn" aria-label="Close" onClick={onClose}>
            <Icon name="x" />
          </button>
        </div>
        {!form ? (
          <div class="pad muted">{error || "Loading…"}</div>
        ) : (
          <form class="settings-form" onSubmit={save}>
            <fieldset>
              <legend>LLM</legend>
              <label>
                <span>Model</span>
                <input
                  class="input"
                  name="llm_model"
                  list="model-options"
                  value={form.llm_model}
                  placeholder="e.g. openai/gpt-4o, anthropic/claude-sonnet-4-20250514, ollama/qwen2.5-coder"
                  data-testid="settings-model"
                  onInput={(e) => set("llm_model", (e.target as HTMLInputElement).value)}
                />
                <datalist id="model-options">
                  {models.map((m) => (
                    <option key={m} value={m} />
                  ))}
                </datalist>
              </label>
              <label>
                <span>Base URL</span>
                <input
                  class="input"
                  name="llm_base_url"
                  type="url"
                  value={form.llm_base_url}
                  placeholder="Only for OpenAI-compatible servers: http://localhost:11434/v1"
                  data-testid="settings-base-url"
                  onInput={(e) => set("llm_base_url", (e.target as HTMLInputElement).value)}
                />
              </label>
              <label>
                <span>API key</span>
                <input
                  class="input"
                  name="llm_api_key"
                  type="password"
                  autocomplete="off"
                  value={form.llm_api_key}
                  disabled={form.clear_key}
                  placeholder={keySet ? "A key is set. Type a new one to replace it." : "Not set"}
                  data-testid="settings-api-key"
                  onInput={(e) => set("llm_api_key", (e.target as HTMLInputElement).value)}
                />
                <small class="muted" data-testid="api-key-status">
                  {keySet ? "A key is stored. It is never shown again." : "No key is stored."}
                </small>
              </label>
              {keySet && (
                <label class="check">
                  <input type="checkbox" checked={form.clear_key} onChange={(e) => set("clear_key", (e.target as HTMLInputElement).checked)} />
                  <span>Remove the stored key</span>
                </label>
              )}
            </fieldset>
            <fieldset>
              <legend>Agent</legend>
              <label>
                <span>Agent</span>
                <select class="input" value={form.agent} onChange={(e) => set("agent", (e.target as HTMLSelectElement).value)}>
                  {(agents.length ? agents : [form.agent]).map((a) => (
                    <option key={a} value={a}>
                      {a}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                <span>Max iterations</span>
                <input
                  class="input"
                  type="number"
                  min={1}
                  step={1}
                  name="max_iterations"
                  value={form.max_iterations}
                  data-testid="settings-max-iterations"
                  onInput={(e) => set("max_iterations", (e.target as HTMLInputElement).value)}
                />
              </label>
              <label class="check">
                <input
                  type="checkbox"
                  name="confirmation_mode"
                  checked={form.confirmation_mode}
                  data-testid="settings-confirmation"
                  onChange={(e) => set("confirmation_mode", (e.target as HTMLInputElement).checked)}
                />
                <span>Confirmation mode: ask me before the agent runs commands or changes files</span>
              </label>
            </fieldset>
            <p class="muted small">New settings apply to conversations started (or resumed) after saving.</p>
            {error && (
              <div class="banner banner-error" role="alert">
                {error}
              </div>
            )}
            <div class="modal-actions">
              {saved && (
                <span class="saved" data-testid="settings-saved">
                  <Icon name="check" size={14} /> Saved
                </span>
              )}
              <button type="button" class="btn btn-ghost" onClick={onClose}>
                Close
              </button>
              <button type="submit" class="btn btn-primary" disabled={busy} data-testid="settings-save">
                {busy ? "Saving…" : "Save"}
              </button>
            </div>
          </form>
        )}
      </div>
    </div>
  );
}
