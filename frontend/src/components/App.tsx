import { useCallback, useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import { navigate, useRoute } from "../lib/router";
import type { Settings } from "../lib/types";
import { ConversationList } from "./ConversationList";
import { ConversationView } from "./ConversationView";
import { Home } from "./Home";
import { SettingsDialog } from "./SettingsDialog";
import { Icon } from "./Icon";

/** True when no LLM model is configured (the agent cannot act). */
export function llmMissing(s: Settings | null): boolean {
  return !!s && (typeof s.llm_model !== "string" || s.llm_model.trim() === "");
}

export function NoLlmBanner({ onOpenSettings, onDismiss }: { onOpenSettings: () => void; onDismiss: () => void }) {
  return (
    <div class="banner banner-warn" role="alert" data-testid="no-llm-banner">
      <Icon name="alert" />
      <span>
        <strong>No LLM is configured, so the agent cannot act yet.</strong> Open{" "}
        <button type="button" class="link" onClick={onOpenSettings}>
          Settings
        </button>{" "}
        and enter a model<span class="banner-more">
          {" "}(for example <code>openai/gpt-4o</code> or <code>anthropic/claude-sonnet-4-20250514</code>), its API key
          and, for a local or proxy server, its base URL</span>, or start the server with <code>LLM_MODEL</code>,{" "}
        <code>LLM_API_KEY</code> and <code>LLM_BASE_URL</code> set.<span class="banner-more"> The terminal and the files work without it.</span>
      </span>
      <button type="button" class="icon-btn" aria-label="Hide this notice" title="Hide until the next visit" onClick={onDismiss}>
        <Icon name="x" size={14} />
      </button>
    </div>
  );
}

const HIDE_BANNER_KEY = "openhands:hide-no-llm-banner";

function bannerHidden(): boolean {
  try {
    return sessionStorage.getItem(HIDE_BANNER_KEY) === "1";
  } catch {
    return false;
  }
}

export function App() {
  const route = useRoute();
  const [settings, setSettings] = useState<Settings | null>(null);
  const [settingsError, setSettingsError] = useState("");
  const [showSettings, setShowSettings] = useState(false);
  const [drawer, setDrawer] = useState(false);
  const [listVersion, setListVersion] = useState(0);
  const [hideBanner, setHideBanner] = useState(bannerHidden);

  const loadSettings = useCallback(async () => {
    try {
      setSettings(await api.getSettings());
      setSettingsError("");
    } catch (e: any) {
      setSettingsError(e?.message ?? String(e));
    }
  }, []);

  useEffect(() => {
    void loadSettings();
  }, [loadSettings]);

  // Close the drawer when the route changes (narrow screens).
  useEffect(() => setDrawer(false), [route.name === "conversation" ? route.id : ""]);

  const refreshList = useCallback(() => setListVersion((v) => v + 1), []);
  const activeId = route.name === "conversation" ? route.id : null;

  return (
    <div class={`app ${drawer ? "drawer-open" : ""}`}>
      <aside class="sidebar" aria-label="Conversations">
        <div class="sidebar-head">
          <a
            class="brand"
            href="/"
            onClick={(e) => {
              e.preventDefault();
              navigate("/");
            }}
          >
            <span class="brand-mark">OH</span> OpenHands
          </a>
          <button type="button" class="icon-btn only-narrow" aria-label="Close the list" onClick={() => setDrawer(false)}>
            <Icon name="x" />
          </button>
        </div>
        <button type="button" class="btn btn-primary new-conv" data-testid="new-conversation" onClick={() => navigate("/")}>
          <Icon name="plus" /> New conversation
        </button>
        <ConversationList activeId={activeId} version={listVersion} />
        <div class="sidebar-foot">
          <button type="button" class="btn btn-ghost" data-testid="open-settings" onClick={() => setShowSettings(true)}>
            <Icon name="gear" /> Settings
          </button>
        </div>
      </aside>
      <div class="scrim" onClick={() => setDrawer(false)} />
      <main class="main">
        <div class="topbar only-narrow">
          <button type="button" class="icon-btn" aria-label="Conversations" data-testid="open-drawer" onClick={() => setDrawer(true)}>
            <Icon name="menu" />
          </button>
          <span class="brand small">
            <span class="brand-mark">OH</span> OpenHands
          </span>
          <button type="button" class="icon-btn" aria-label="Settings" onClick={() => setShowSettings(true)}>
            <Icon name="gear" />
          </button>
        </div>
        {llmMissing(settings) && !hideBanner && (
          <NoLlmBanner
            onOpenSettings={() => setShowSettings(true)}
            onDismiss={() => {
              setHideBanner(true);
              try {
                sessionStorage.setItem(HIDE_BANNER_KEY, "1");
              } catch {
                /* ignore */
              }
            }}
          />
        )}
        {settingsError && (
          <div class="banner banner-error" role="alert">
            <Icon name="alert" /> Could not load the settings: {settingsError}
          </div>
        )}
        {route.name === "conversation" ? (
          <ConversationView key={route.id} id={route.id} onChanged={refreshList} />
        ) : (
          <Home onCreated={refreshList} />
        )}
      </main>
      {showSettings && (
        <SettingsDialog
          onClose={() => setShowSettings(false)}
          onSaved={() => {
            void loadSettings();
          }}
        />
      )}
    </div>
  );
}
