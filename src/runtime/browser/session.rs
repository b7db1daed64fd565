//! One Chromium and its page, driven over the DevTools protocol: BrowserGym's actions on
//! elements found by their `bid`, waiting for the page, and snapshots.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thiserror::Error;
use tokio::sync::broadcast;

use super::cdp::{Cdp, CdpError, CdpEvent};
use super::chromium::{Chromium, Killer, LaunchError};
use super::code::Command;
use super::snapshot;
use crate::runtime::workspace::Workspace;

/// The viewport, as BrowserGym's default.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
/// After an action, how long to watch for a navigation it may have started.
const NAVIGATION_GRACE: Duration = Duration::from_millis(300);
/// Longest `noop` wait.
const MAX_NOOP: Duration = Duration::from_secs(30);

/// Why an action failed; the message is what the model reads.
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("{0}")]
    Refused(String),
    #[error(
        "Timeout: the page did not finish loading within {0} s; it is shown as far as it loaded"
    )]
    Timeout(u64),
    #[error(transparent)]
    Cdp(#[from] CdpError),
}

/// What a snapshot of the page holds.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub url: String,
    pub focused_bid: String,
    /// The flattened accessibility tree.
    pub tree: String,
    /// Chromium's accessibility nodes, when asked for.
    pub nodes: Option<Vec<Value>>,
    /// `data:image/png;base64,…`
    pub screenshot: String,
    pub open_pages: Vec<String>,
}

/// A running browser with one page.
pub struct Session {
    chromium: Chromium,
    cdp: Cdp,
    target: String,
    session: String,
    timeout: Duration,
    workspace: PathBuf,
}

impl Session {
    /// Starts Chromium in `workspace` (downloads go to `downloads`) and attaches to its page.
    pub async fn start(
        executable: &Path,
        workspace: &Path,
        downloads: &Path,
        timeout: Duration,
    ) -> Result<Session, StartError> {
        let chromium = Chromium::start(executable, workspace).await?;
        let cdp = Cdp::connect(&chromium.ws_url).await?;
        let short = Duration::from_secs(10);
        let _ = std::fs::create_dir_all(downloads);
        cdp.call(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads, "eventsEnabled": true}),
            None,
            short,
        )
        .await?;
        let targets = cdp
            .call("Target.getTargets", json!({}), None, short)
            .await?;
        let existing = targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["targetId"].as_str())
            .map(str::to_string);
        let target = match existing {
            Some(t) => t,
            None => cdp
                .call(
                    "Target.createTarget",
                    json!({"url": "about:blank"}),
                    None,
                    short,
                )
                .await?["targetId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
                None,
                short,
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let me = Session {
            chromium,
            cdp,
            target,
            session,
            timeout,
            workspace: workspace.to_path_buf(),
        };
        me.page("Page.enable", json!({})).await?;
        me.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        Ok(me)
    }

    /// True while Chromium runs and the connection to it is open.
    pub fn is_alive(&mut self) -> bool {
        !self.cdp.is_closed() && !self.chromium.has_exited()
    }

    /// The main process id (for logs).
    pub fn pid(&self) -> Option<u32> {
        self.chromium.pid()
    }

    /// What kills this browser while an action holds it.
    pub fn killer(&self) -> Killer {
        self.chromium.killer()
    }

    /// A command on the page's session.
    async fn page(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.cdp
            .call(method, params, Some(&self.session), self.timeout)
            .await
    }

    /// Evaluates `expression` in the page and returns its value.
    async fn eval(&self, expression: &str) -> Result<Value, ActionError> {
        let r = self
            .page(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(ActionError::Refused(exception_text(e)));
        }
        Ok(r["result"]["value"].clone())
    }

    /// The remote object of the element `bid`.
    async fn element(&self, bid: &str) -> Result<String, ActionError> {
        let selector = format!("[{}=\"{bid}\"]", snapshot::BID_ATTRIBUTE);
        let expression = format!("document.querySelector({})", json!(selector));
        for attempt in 0..2 {
            let r = self
                .page("Runtime.evaluate", json!({"expression": expression}))
                .await?;
            if let Some(id) = r["result"]["objectId"].as_str() {
                return Ok(id.to_string());
            }
            if attempt == 0 {
                // A page loaded by an earlier call of this action has no ids yet; they
                // are given in document order, the same ones a snapshot would show.
                self.eval(snapshot::MARK_ELEMENTS).await?;
            }
        }
        Err(ActionError::Refused(format!(
            "Could not find element with bid \"{bid}\" on the page; use a bid from the current accessibility tree."
        )))
    }

    /// Calls `function` with `this` = the element and `args`; returns its value.
    async fn on_element(
        &self,
        object: &str,
        function: &str,
        args: &[Value],
    ) -> Result<Value, ActionError> {
        let arguments: Vec<Value> = args.iter().map(|v| json!({"value": v})).collect();
        let r = self
            .page(
                "Runtime.callFunctionOn",
                json!({"objectId": object, "functionDeclaration": function, "arguments": arguments,
                       "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(ActionError::Refused(exception_text(e)));
        }
        let value = r["result"]["value"].clone();
        match value.as_str() {
            Some(s) if s.starts_with("Error: ") => Err(ActionError::Refused(s.to_string())),
            _ => Ok(value),
        }
    }

    /// Scrolls the element into view and returns the centre of its box.
    async fn center(&self, bid: &str) -> Result<(f64, f64), ActionError> {
        let object = self.element(bid).await?;
        let r = self
            .on_element(
                &object,
                "function() { this.scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'}); const r = this.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; }",
                &[],
            )
            .await?;
        let n = |i: usize| r[i].as_f64().unwrap_or(0.0);
        if n(2) <= 0.0 && n(3) <= 0.0 {
            return Err(ActionError::Refused(format!(
                "Element with bid \"{bid}\" is not visible (it has no size on the page)."
            )));
        }
        Ok((n(0), n(1)))
    }

    async fn mouse(
        &self,
        kind: &str,
        x: f64,
        y: f64,
        button: &str,
        clicks: u32,
        modifiers: u32,
    ) -> Result<(), ActionError> {
        self.page(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": button, "clickCount": clicks, "modifiers": modifiers}),
        )
        .await?;
        Ok(())
    }

    async fn key(&self, kind: &str, key: &Key, modifiers: u32) -> Result<(), ActionError> {
        let mut params = json!({"type": kind, "key": key.key, "code": key.code,
            "windowsVirtualKeyCode": key.key_code, "modifiers": modifiers});
        if kind == "keyDown" && modifiers & (ALT | CONTROL | META) == 0 {
            if let Some(text) = &key.text {
                params["type"] = json!("keyDown");
                params["text"] = json!(text);
            }
        }
        self.page("Input.dispatchKeyEvent", params).await?;
        Ok(())
    }

    /// Runs one command and waits for any navigation it started.
    pub async fn run(&self, command: &Command) -> Result<(), ActionError> {
        let events = self.cdp.subscribe();
        let started = Instant::now();
        match command {
            Command::Goto(url) => return self.goto(url, events).await,
            Command::GoBack | Command::GoForward => {
                let history = self.page("Page.getNavigationHistory", json!({})).await?;
                let current = history["currentIndex"].as_i64().unwrap_or(0);
                let step = if matches!(command, Command::GoBack) {
                    -1
                } else {
                    1
                };
                let entry = history["entries"]
                    .as_array()
                    .and_then(|e| e.get(usize::try_from(current + step).ok()?))
                    .and_then(|e| e["id"].as_i64());
                let Some(entry) = entry else {
                    // As in a browser: nothing happens.
                    return Ok(());
                };
                self.page("Page.navigateToHistoryEntry", json!({"entryId": entry}))
                    .await?;
            }
            Command::Noop { wait_ms } => {
                let wait = Duration::from_secs_f64(
                    (wait_ms.max(0.0) / 1000.0).min(MAX_NOOP.as_secs_f64()),
                );
                tokio::time::sleep(wait).await;
            }
            Command::Scroll { dx, dy } => {
                self.page(
                    "Input.dispatchMouseEvent",
                    json!({"type": "mouseWheel", "x": WIDTH / 2, "y": HEIGHT / 2, "deltaX": dx, "deltaY": dy}),
                )
                .await?;
            }
            Command::Fill { bid, value } => self.fill(bid, value).await?,
            Command::Clear(bid) => self.fill(bid, "").await?,
            Command::SelectOption { bid, options } => {
                let object = self.element(bid).await?;
                self.on_element(&object, SELECT_OPTION, &[json!(options)])
                    .await?;
            }
            Command::Click {
                bid,
                button,
                modifiers,
                double,
            } => {
                let (x, y) = self.center(bid).await?;
                let m = modifier_bits(modifiers);
                let b = button.cdp();
                self.mouse("mouseMoved", x, y, "none", 0, m).await?;
                self.mouse("mousePressed", x, y, b, 1, m).await?;
                self.mouse("mouseReleased", x, y, b, 1, m).await?;
                if *double {
                    self.mouse("mousePressed", x, y, b, 2, m).await?;
                    self.mouse("mouseReleased", x, y, b, 2, m).await?;
                }
            }
            Command::Hover(bid) => {
                let (x, y) = self.center(bid).await?;
                self.mouse("mouseMoved", x, y, "none", 0, 0).await?;
            }
            Command::Focus(bid) => {
                let object = self.element(bid).await?;
                self.on_element(&object, "function() { this.focus(); }", &[])
                    .await?;
            }
            Command::Press { bid, keys } => {
                let object = self.element(bid).await?;
                self.on_element(&object, "function() { this.focus(); }", &[])
                    .await?;
                let (mods, key) = parse_keys(keys).map_err(ActionError::Refused)?;
                let mut bits = 0;
                for m in &mods {
                    bits |= m.bit;
                    self.key("rawKeyDown", &m.key, bits).await?;
                }
                self.key("keyDown", &key, bits).await?;
                self.key("keyUp", &key, bits).await?;
                for m in mods.iter().rev() {
                    bits &= !m.bit;
                    self.key("keyUp", &m.key, bits).await?;
                }
            }
            Command::DragAndDrop { from, to } => {
                let (x1, y1) = self.center(from).await?;
                self.mouse("mouseMoved", x1, y1, "none", 0, 0).await?;
                self.mouse("mousePressed", x1, y1, "left", 1, 0).await?;
                let (x2, y2) = self.center(to).await?;
                for i in 1..=5 {
                    let f = f64::from(i) / 5.0;
                    self.mouse(
                        "mouseMoved",
                        x1 + (x2 - x1) * f,
                        y1 + (y2 - y1) * f,
                        "left",
                        0,
                        0,
                    )
                    .await?;
                }
                self.mouse("mouseReleased", x2, y2, "left", 1, 0).await?;
            }
            Command::UploadFile { bid, files } => self.upload(bid, files).await?,
            Command::SendMsgToUser(_) => {}
        }
        self.settle(events, started).await
    }

    async fn goto(
        &self,
        url: &str,
        events: broadcast::Receiver<CdpEvent>,
    ) -> Result<(), ActionError> {
        check_url(url).map_err(ActionError::Refused)?;
        let started = Instant::now();
        let r = match self.page("Page.navigate", json!({"url": url})).await {
            Ok(r) => r,
            Err(CdpError::Timeout { .. }) => {
                let _ = self.page("Page.stopLoading", json!({})).await;
                return Err(ActionError::Timeout(self.timeout.as_secs()));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(error) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(ActionError::Refused(format!("{error} at {url}")));
        }
        if r.get("loaderId").is_none() {
            return Ok(()); // a move within the document
        }
        self.wait_for_load(events, started, true).await
    }

    /// Waits until a navigation the last action started (if any) has loaded.
    async fn settle(
        &self,
        events: broadcast::Receiver<CdpEvent>,
        started: Instant,
    ) -> Result<(), ActionError> {
        self.wait_for_load(events, started, false).await
    }

    async fn wait_for_load(
        &self,
        mut events: broadcast::Receiver<CdpEvent>,
        started: Instant,
        mut loading: bool,
    ) -> Result<(), ActionError> {
        let deadline = started + self.timeout;
        loop {
            let now = Instant::now();
            if !loading && now >= started + NAVIGATION_GRACE {
                return Ok(());
            }
            if now >= deadline {
                let _ = self.page("Page.stopLoading", json!({})).await;
                return Err(ActionError::Timeout(self.timeout.as_secs()));
            }
            let until = if loading {
                deadline
            } else {
                (started + NAVIGATION_GRACE).min(deadline)
            };
            let event = match tokio::time::timeout(until - now, events.recv()).await {
                Err(_) => continue,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(CdpError::Closed.into()),
                Ok(Ok(e)) => e,
            };
            if event.session_id.as_deref() != Some(self.session.as_str()) {
                continue;
            }
            match event.method.as_str() {
                "Page.frameStartedLoading" | "Page.frameRequestedNavigation"
                    if self.is_main_frame(&event.params).await =>
                {
                    loading = true
                }
                "Page.loadEventFired" if loading => return Ok(()),
                // A page restored from the back-forward cache fires no load event.
                "Page.frameStoppedLoading"
                    if loading && self.is_main_frame(&event.params).await =>
                {
                    return Ok(())
                }
                _ => {}
            }
        }
    }

    async fn is_main_frame(&self, params: &Value) -> bool {
        let frame = params["frameId"].as_str().unwrap_or("");
        // The main frame's id is the page target's id in Chromium.
        frame == self.target
    }

    async fn fill(&self, bid: &str, value: &str) -> Result<(), ActionError> {
        let object = self.element(bid).await?;
        let how = self
            .on_element(&object, PREPARE_FILL, &[json!(value)])
            .await?;
        if how == "select" {
            if value.is_empty() {
                self.page("Input.dispatchKeyEvent", json!({"type": "keyDown", "key": "Delete", "code": "Delete", "windowsVirtualKeyCode": 46})).await?;
                self.page("Input.dispatchKeyEvent", json!({"type": "keyUp", "key": "Delete", "code": "Delete", "windowsVirtualKeyCode": 46})).await?;
            } else {
                self.page("Input.insertText", json!({"text": value}))
                    .await?;
            }
        }
        Ok(())
    }

    async fn upload(&self, bid: &str, files: &[String]) -> Result<(), ActionError> {
        let workspace =
            Workspace::open(&self.workspace).map_err(|e| ActionError::Refused(e.to_string()))?;
        let mut paths = Vec::new();
        for f in files {
            let real = workspace.real_path(f).map_err(|e| {
                ActionError::Refused(format!("{e}; only files in the workspace can be uploaded"))
            })?;
            if !real.is_file() {
                return Err(ActionError::Refused(format!("File not found: {f}")));
            }
            paths.push(real.display().to_string());
        }
        let object = self.element(bid).await?;
        let input = self.on_element(&object, FILE_INPUT, &[]).await?;
        let input_object = if input == true {
            object
        } else {
            return Err(ActionError::Refused(format!(
                "Element with bid \"{bid}\" is not a file input (<input type=\"file\">) and labels none."
            )));
        };
        let target = self
            .page("Runtime.callFunctionOn", json!({"objectId": input_object, "functionDeclaration": "function() { return this.tagName === 'INPUT' ? this : (this.control || this.querySelector('input[type=file]')); }"}))
            .await?;
        let Some(id) = target["result"]["objectId"].as_str() else {
            return Err(ActionError::Refused(format!(
                "Element with bid \"{bid}\" has no file input."
            )));
        };
        self.page(
            "DOM.setFileInputFiles",
            json!({"files": paths, "objectId": id}),
        )
        .await?;
        Ok(())
    }

    /// The page as it is now: URL, title, focused element, tree and screenshot.
    pub async fn snapshot(&self, with_nodes: bool) -> Result<Snapshot, ActionError> {
        let marked = self.eval(snapshot::MARK_ELEMENTS).await?;
        let tree = self.page("Accessibility.getFullAXTree", json!({})).await?;
        let dom = self
            .page("DOMSnapshot.captureSnapshot", json!({"computedStyles": []}))
            .await?;
        let nodes = tree["nodes"].as_array().cloned().unwrap_or_default();
        let bids = snapshot::bids_by_backend_id(&dom);
        let text = snapshot::flatten(&nodes, &bids);
        let shot = self
            .page("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let screenshot = shot["data"]
            .as_str()
            .map(|d| format!("data:image/png;base64,{d}"))
            .unwrap_or_default();
        let targets = self
            .cdp
            .call("Target.getTargets", json!({}), None, self.timeout)
            .await?;
        let open_pages = targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["type"] == "page")
            .filter_map(|t| t["url"].as_str().map(str::to_string))
            .collect();
        Ok(Snapshot {
            url: marked["url"].as_str().unwrap_or_default().to_string(),
            focused_bid: marked["focused"].as_str().unwrap_or_default().to_string(),
            tree: text,
            nodes: with_nodes.then_some(nodes),
            screenshot,
            open_pages,
        })
    }
}

/// Why a browser did not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Cdp(#[from] CdpError),
}

/// Only web pages (and the blank page) are opened; see docs/browser.md.
fn check_url(url: &str) -> Result<(), String> {
    if url == "about:blank" {
        return Ok(());
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(u) => Err(format!(
            "Only http and https URLs can be opened in the browser, not \"{url}\" ({} URLs are refused). To read a local file, use the file editor or a shell command.",
            u.scheme()
        )),
        Err(e) => Err(format!("\"{url}\" is not a valid URL ({e}); give a full address such as http://localhost:8000/.")),
    }
}

fn exception_text(e: &Value) -> String {
    e["exception"]["description"]
        .as_str()
        .or_else(|| e["text"].as_str())
        .unwrap_or("the page raised an exception")
        .to_string()
}

const ALT: u32 = 1;
const CONTROL: u32 = 2;
const META: u32 = 4;
const SHIFT: u32 = 8;

fn modifier_bits(names: &[String]) -> u32 {
    names.iter().fold(0, |bits, m| {
        bits | match m.as_str() {
            "Alt" => ALT,
            "Control" | "ControlOrMeta" => CONTROL,
            "Meta" => META,
            "Shift" => SHIFT,
            _ => 0,
        }
    })
}

/// A key as CDP's `Input.dispatchKeyEvent` wants it.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    key: String,
    code: String,
    key_code: u32,
    text: Option<String>,
}

struct Modifier {
    key: Key,
    bit: u32,
}

/// `Control+Shift+a` → the modifiers held and the key pressed.
fn parse_keys(combination: &str) -> Result<(Vec<Modifier>, Key), String> {
    let parts: Vec<&str> = if combination == "+" {
        vec!["+"]
    } else {
        combination.split('+').collect()
    };
    let Some((last, mods)) = parts.split_last() else {
        return Err("empty key combination".into());
    };
    let mut modifiers = Vec::new();
    for m in mods {
        let (name, bit, code) = match *m {
            "Alt" => ("Alt", ALT, 18),
            "Control" | "ControlOrMeta" | "ControlLeft" => ("Control", CONTROL, 17),
            "Meta" => ("Meta", META, 91),
            "Shift" | "ShiftLeft" => ("Shift", SHIFT, 16),
            other => return Err(format!("unknown modifier {other:?} in {combination:?}")),
        };
        modifiers.push(Modifier {
            key: Key {
                key: name.into(),
                code: format!("{name}Left"),
                key_code: code,
                text: None,
            },
            bit,
        });
    }
    let shift = modifiers.iter().any(|m| m.bit == SHIFT);
    Ok((
        modifiers,
        key(last, shift).ok_or_else(|| format!("unknown key {last:?} in {combination:?}"))?,
    ))
}

fn key(name: &str, shift: bool) -> Option<Key> {
    let named = |key: &str, code: u32, text: Option<&str>| Key {
        key: key.into(),
        code: key.into(),
        key_code: code,
        text: text.map(str::to_string),
    };
    let k = match name {
        "Enter" => named("Enter", 13, Some("\r")),
        "Tab" => named("Tab", 9, None),
        "Backspace" => named("Backspace", 8, None),
        "Delete" => named("Delete", 46, None),
        "Escape" => named("Escape", 27, None),
        "Insert" => named("Insert", 45, None),
        "Home" => named("Home", 36, None),
        "End" => named("End", 35, None),
        "PageUp" => named("PageUp", 33, None),
        "PageDown" => named("PageDown", 34, None),
        "ArrowLeft" => named("ArrowLeft", 37, None),
        "ArrowUp" => named("ArrowUp", 38, None),
        "ArrowRight" => named("ArrowRight", 39, None),
        "ArrowDown" => named("ArrowDown", 40, None),
        "Space" | " " => Key {
            key: " ".into(),
            code: "Space".into(),
            key_code: 32,
            text: Some(" ".into()),
        },
        f if f.len() >= 2
            && f.starts_with('F')
            && f[1..].parse::<u32>().is_ok_and(|n| (1..=12).contains(&n)) =>
        {
            let n: u32 = f[1..].parse().ok()?;
            named(f, 111 + n, None)
        }
        k if k.starts_with("Key") && k.len() == 4 => {
            let c = k.chars().nth(3)?.to_ascii_lowercase();
            let shown = if shift { c.to_ascii_uppercase() } else { c };
            Key {
                key: shown.to_string(),
                code: k.into(),
                key_code: c.to_ascii_uppercase() as u32,
                text: Some(shown.to_string()),
            }
        }
        d if d.starts_with("Digit") && d.len() == 6 => {
            let c = d.chars().nth(5)?;
            Key {
                key: c.to_string(),
                code: d.into(),
                key_code: c as u32,
                text: Some(c.to_string()),
            }
        }
        single if single.chars().count() == 1 => {
            let c = single.chars().next()?;
            let (code, key_code) = if c.is_ascii_alphabetic() {
                (
                    format!("Key{}", c.to_ascii_uppercase()),
                    c.to_ascii_uppercase() as u32,
                )
            } else if c.is_ascii_digit() {
                (format!("Digit{c}"), c as u32)
            } else {
                (String::new(), 0)
            };
            Key {
                key: c.to_string(),
                code,
                key_code,
                text: Some(c.to_string()),
            }
        }
        _ => return None,
    };
    Some(k)
}

/// Focuses and selects the element's content for `Input.insertText`; answers `select`,
/// `set` (the value was set directly, for date-like inputs) or `Error: …`.
const PREPARE_FILL: &str = r#"function(value) {
  const tag = (this.tagName || '').toLowerCase();
  if (tag === 'input') {
    const type = (this.type || 'text').toLowerCase();
    if (['checkbox', 'radio', 'file', 'submit', 'button', 'reset', 'image', 'hidden'].includes(type))
      return 'Error: Input of type "' + type + '" cannot be filled';
    if (['date', 'time', 'datetime-local', 'month', 'week', 'range', 'color', 'number'].includes(type)) {
      this.focus(); this.value = value;
      this.dispatchEvent(new Event('input', {bubbles: true}));
      this.dispatchEvent(new Event('change', {bubbles: true}));
      return 'set';
    }
  } else if (tag !== 'textarea' && !this.isContentEditable) {
    return 'Error: Element is not an <input>, <textarea> or [contenteditable] element';
  }
  if (this.disabled) return 'Error: Element is disabled';
  if (this.readOnly) return 'Error: Element is read-only';
  this.focus();
  if (tag === 'input' || tag === 'textarea') { this.select(); }
  else { const r = document.createRange(); r.selectNodeContents(this); const s = getSelection(); s.removeAllRanges(); s.addRange(r); }
  return 'select';
}"#;

const SELECT_OPTION: &str = r#"function(wanted) {
  if (this.tagName !== 'SELECT') return 'Error: Element is not a <select> element';
  const want = new Set(wanted);
  let matched = Array.from(this.options).filter(o => want.has(o.value) || want.has(o.label) || want.has(o.text.trim()));
  if (matched.length === 0) return 'Error: no option matches ' + JSON.stringify(wanted) + '; the options are ' + JSON.stringify(Array.from(this.options).map(o => o.label));
  if (!this.multiple) matched = matched.slice(0, 1);
  for (const o of this.options) o.selected = matched.includes(o);
  this.dispatchEvent(new Event('input', {bubbles: true}));
  this.dispatchEvent(new Event('change', {bubbles: true}));
  return 'ok';
}"#;

const FILE_INPUT: &str = r#"function() {
  const t = this.tagName === 'INPUT' ? this : (this.control || this.querySelector('input[type=file]'));
  return !!t && t.tagName === 'INPUT' && t.type === 'file';
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_combinations_become_keys_and_modifiers() {
        let (mods, k) = parse_keys("ControlOrMeta+a").unwrap();
        assert_eq!(mods.len(), 1);
        assert_eq!(mods[0].bit, CONTROL);
        assert_eq!(k.code, "KeyA");
        let (mods, k) = parse_keys("Enter").unwrap();
        assert!(mods.is_empty());
        assert_eq!(k.text.as_deref(), Some("\r"));
        let (mods, k) = parse_keys("Meta+Shift+t").unwrap();
        assert_eq!((mods.len(), k.code.as_str()), (2, "KeyT"));
        assert_eq!(parse_keys("Shift+KeyA").unwrap().1.key, "A");
        assert!(parse_keys("Hyper+x").is_err());
        assert!(parse_keys("NoSuchKey").is_err());
    }

    #[test]
    fn only_web_addresses_are_opened() {
        assert!(check_url("http://127.0.0.1:8000/x").is_ok());
        assert!(check_url("about:blank").is_ok());
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/html,hi",
            "chrome://settings",
            "view-source:http://x",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
