//! The interactive browser (`browse_interactive`): a headless Chromium per conversation,
//! started at its first action, driven over the DevTools protocol with BrowserGym's
//! actions, closed with its conversation or after idling. See docs/browser.md.

mod cdp;
mod chromium;
pub mod code;
mod session;
mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::events::{BrowseExtras, BrowseInteractiveArgs, Observation, ObservationKind};
use chromium::Killer;
use session::{ActionError, Session, Snapshot};

pub use chromium::find as find_chromium;

/// Where downloads go, under the workspace.
pub const DOWNLOADS_DIR: &str = ".browser_downloads";

/// How the browser of a conversation behaves.
#[derive(Debug, Clone)]
pub struct BrowserConfig {
    /// The Chromium executable.
    pub executable: PathBuf,
    /// Longest wait for one step (a page load, a DevTools call).
    pub action_timeout: Duration,
    /// A browser unused this long is closed (it restarts at the next action).
    pub idle_timeout: Duration,
}

/// The running session and what can kill it while an action holds it.
struct Slot {
    session: Mutex<Option<Session>>,
    killer: std::sync::Mutex<Option<Killer>>,
    last_used: std::sync::Mutex<Instant>,
}

/// A conversation's browser, started at its first action.
pub struct Browser {
    config: BrowserConfig,
    workspace: PathBuf,
    slot: Arc<Slot>,
}

impl Browser {
    /// A browser for `workspace`; Chromium starts at the first action.
    pub fn new(workspace: &Path, config: BrowserConfig) -> Self {
        Browser {
            config,
            workspace: workspace.to_path_buf(),
            slot: Arc::new(Slot {
                session: Mutex::new(None),
                killer: std::sync::Mutex::new(None),
                last_used: std::sync::Mutex::new(Instant::now()),
            }),
        }
    }

    /// Runs a `browse_interactive` action and returns its `browse` observation.
    pub async fn execute(&self, args: &BrowseInteractiveArgs) -> Observation {
        let code = args.browser_actions.as_str();
        let commands = match code::parse(code) {
            Ok(c) => c,
            Err(e) => {
                return observation(code, None, Some(e.to_string()), None, args.return_axtree)
            }
        };
        let mut guard = self.slot.session.lock().await;
        self.touch();
        let mut note = None;
        if let Some(s) = guard.as_mut() {
            if !s.is_alive() {
                tracing::warn!(pid = ?s.pid(), "the browser had exited; starting a new one");
                note = Some("[The browser had exited or crashed, so this action ran in a new browser: the pages that were open before are gone.]");
                *guard = None;
            }
        }
        if guard.is_none() {
            let started = Instant::now();
            match Session::start(
                &self.config.executable,
                &self.workspace,
                &self.workspace.join(DOWNLOADS_DIR),
                self.config.action_timeout,
            )
            .await
            {
                Ok(s) => {
                    tracing::info!(pid = ?s.pid(), ms = started.elapsed().as_millis() as u64, "browser started");
                    if let Ok(mut k) = self.slot.killer.lock() {
                        *k = Some(s.killer());
                    }
                    *guard = Some(s);
                    self.watch_idle();
                }
                Err(e) => {
                    let message = format!("The browser could not start: {e}");
                    return observation(code, None, Some(message), None, args.return_axtree);
                }
            }
        }
        let Some(session) = guard.as_ref() else {
            return Observation::error("The browser is not available.", "");
        };
        let mut error = None;
        for command in &commands {
            if let Err(e) = session.run(command).await {
                error = Some(e);
                break;
            }
        }
        let snapshot = match session.snapshot(args.return_axtree).await {
            Ok(s) => Some(s),
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        };
        if matches!(error, Some(ActionError::Cdp(cdp::CdpError::Closed)))
            || snapshot.is_none() && matches!(error, Some(ActionError::Cdp(_)))
        {
            // The browser died under the action: the next one starts a new browser.
            *guard = None;
        }
        self.touch();
        let error = error.map(|e| match e {
            ActionError::Cdp(cdp::CdpError::Closed) => "The browser exited or crashed during this action; the next browser action starts a new one.".to_string(),
            other => other.to_string(),
        });
        observation(code, snapshot, error, note, args.return_axtree)
    }

    fn touch(&self) {
        if let Ok(mut t) = self.slot.last_used.lock() {
            *t = Instant::now();
        }
    }

    /// Closes the browser once it has not been used for the idle timeout.
    fn watch_idle(&self) {
        let slot = Arc::downgrade(&self.slot);
        let idle = self.config.idle_timeout;
        tokio::spawn(async move {
            loop {
                let wait = {
                    let Some(slot) = slot.upgrade() else { return };
                    let last = slot
                        .last_used
                        .lock()
                        .map(|t| *t)
                        .unwrap_or_else(|_| Instant::now());
                    match last.checked_add(idle) {
                        Some(at) => at.saturating_duration_since(Instant::now()),
                        None => Duration::from_secs(86_400),
                    }
                };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let Some(slot) = slot.upgrade() else { return };
                let Ok(mut session) = slot.session.try_lock() else {
                    // In use: look again after it.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                if session.take().is_some() {
                    tracing::info!(idle_secs = idle.as_secs(), "closed the idle browser");
                }
                return;
            }
        });
    }

    /// Kills the browser and everything it started (close, delete, shutdown).
    pub fn close(&self) {
        if let Ok(mut k) = self.slot.killer.lock() {
            if let Some(k) = k.take() {
                k.kill();
            }
        }
        if let Ok(mut s) = self.slot.session.try_lock() {
            s.take();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.close();
    }
}

/// The `browse` observation of an interactive action, with the text upstream's agent reads.
fn observation(
    code: &str,
    snapshot: Option<Snapshot>,
    error: Option<String>,
    note: Option<&str>,
    with_tree: bool,
) -> Observation {
    let snapshot = snapshot.unwrap_or_default();
    let mut extras = BrowseExtras::new(snapshot.url.clone());
    extras.trigger_by_action = "browse_interactive".into();
    extras.screenshot = snapshot.screenshot;
    extras.error = error.is_some();
    extras.last_browser_action = code.to_string();
    extras.last_browser_action_error = error.clone().unwrap_or_default();
    extras.focused_element_bid = snapshot.focused_bid.clone();
    extras.active_page_index = if snapshot.open_pages.is_empty() {
        -1
    } else {
        0
    };
    extras.open_pages_urls = snapshot.open_pages;
    if with_tree {
        if let Some(nodes) = snapshot.nodes {
            let mut tree = Map::new();
            tree.insert("nodes".into(), Value::Array(nodes));
            extras.axtree_object = tree;
        }
    }
    let mut text = String::new();
    if let Some(note) = note {
        text.push_str(note);
        text.push('\n');
    }
    text.push_str(&format!(
        "[Current URL: {}]\n[Focused element bid: {}]\n\n",
        snapshot.url, snapshot.focused_bid
    ));
    match &error {
        Some(e) => text.push_str(&format!(
            "================ BEGIN error message ===============\nThe following error occurred when executing the last action:\n{e}\n================ END error message ===============\n"
        )),
        None => text.push_str("[Action executed successfully.]\n"),
    }
    if !snapshot.tree.is_empty() {
        text.push_str(&format!(
            "Accessibility tree of the COMPLETE webpage:\nNote: [bid] is the unique alpha-numeric identifier at the beginning of lines for each element in the AXTree. Always use bid to refer to elements in your actions.\n============== BEGIN accessibility tree ==============\n{}\n============== END accessibility tree ==============\n",
            snapshot.tree
        ));
    }
    Observation {
        content: text,
        kind: ObservationKind::Browse(Box::new(extras)),
    }
}
