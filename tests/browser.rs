//! The interactive browser (`browse_interactive`, the agent's `browser` tool) against
//! real headless Chromium and pages served by a small HTTP server this test runs.

mod common;
#[path = "common/llm.rs"]
#[allow(dead_code)]
mod llm;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::{get, post};
use axum::Router;
use common::*;
use llm::{call, text, ScriptedLlm};
use serde_json::{json, Value};

/// The form page: its elements get bids in document order (html 0, head 1, title 2,
/// body 3, form 4, label 5, input 6, select 7, option 8, option 9, button 10).
const FORM: &str = "<html><head><title>Form</title></head><body><form method=post action=/submit><label for=n>Name</label><input id=n name=name><select name=color><option value=r>Red</option><option value=g>Green</option></select><button type=submit>Send</button></form></body></html>";

/// A local site: a form whose posts are recorded, linked pages, and a page that never
/// finishes loading.
struct Site {
    base: String,
    posted: Arc<Mutex<Vec<String>>>,
}

async fn site() -> Site {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/form", get(|| async { Html(FORM) }))
        .route(
            "/submit",
            post(|State(p): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                p.lock().unwrap().push(body.clone());
                Html(format!("<html><head><title>Thanks</title></head><body><h1>Thanks</h1><p>Received {body}</p></body></html>"))
            }),
        )
        .route("/links", get(|| async { Html("<html><head><title>Links</title></head><body><a href=/target>Go to the target</a> <a href=/target target=_blank>New tab</a></body></html>") }))
        .route("/target", get(|| async { Html("<html><head><title>Target</title></head><body><p>Target page reached</p></body></html>") }))
        .route(
            "/upload",
            get(|| async { Html("<html><body><input type=file id=f><p id=out></p><script>f.onchange = () => out.textContent = 'chosen ' + f.files[0].name;</script></body></html>") }),
        )
        .route(
            "/hang",
            get(|| async {
                let chunks = futures::stream::once(async {
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"<html><body><p>Still loading"))
                })
                .chain(futures::stream::pending());
                Response::builder()
                    .header("content-type", "text/html")
                    .body(Body::from_stream(chunks))
                    .unwrap()
            }),
        )
        .with_state(posted.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Site { base, posted }
}

use futures::StreamExt as _;

/// Chromium must be installed for these tests (scripts/test.sh installs it).
fn require_chromium() {
    let found = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .any(|p| p.is_file());
    assert!(
        found,
        "these tests need Chromium: apt-get install -y chromium (or set CHROMIUM_PATH)"
    );
}

fn browse(code: &str) -> Value {
    json!({"action": "browse_interactive", "args": {"browser_actions": code}})
}

/// Runs browser actions in a conversation and returns the observation.
async fn browse_in(ws: &mut Ws, code: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(60), act(ws, &browse(code)))
        .await
        .expect("no browser observation within a minute")
}

fn workspace(server: &Server, cid: &str) -> PathBuf {
    server.dir.join("store").join("workspaces").join(cid)
}

/// Chromium processes (any of a browser's processes) running in `dir` or below it.
fn chromium_pids(dir: &Path) -> Vec<i32> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        if exe.to_string_lossy().contains("chrom") && cwd.starts_with(&dir) {
            out.push(pid);
        }
    }
    out
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(15), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bid on the tree line that contains `needle`.
fn bid_of(tree: &str, needle: &str) -> String {
    let line = tree
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{tree}"));
    let start = line.find('[').unwrap() + 1;
    let end = line.find(']').unwrap();
    line[start..end].to_string()
}

#[tokio::test]
async fn a_form_is_filled_and_submitted_and_the_server_receives_the_values() {
    require_chromium();
    let site = site().await;
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let page = browse_in(&mut ws, &format!("goto('{}/form')", site.base)).await;
    assert_eq!(page["observation"], "browse", "{page}");
    let extras = &page["extras"];
    assert_eq!(extras["error"], false, "{page}");
    assert_eq!(extras["trigger_by_action"], "browse_interactive");
    assert_eq!(extras["url"], format!("{}/form", site.base));
    assert!(extras["screenshot"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,iVBOR"));
    assert_eq!(
        extras["open_pages_urls"],
        json!([format!("{}/form", site.base)])
    );
    assert_eq!(extras["active_page_index"], 0);
    let content = page["content"].as_str().unwrap();
    assert!(content.contains("BEGIN accessibility tree"), "{content}");
    assert!(content.contains("RootWebArea 'Form'"), "{content}");
    let name = bid_of(content, "textbox 'Name'");
    let color = bid_of(content, "combobox");
    let send = bid_of(content, "button 'Send'");
    let page = browse_in(
        &mut ws,
        &format!("fill('{name}', 'Ada \"the first\" Lovelace')\nselect_option('{color}', 'Green')\nclick('{send}')"),
    )
    .await;
    let extras = &page["extras"];
    assert_eq!(extras["error"], false, "{page}");
    assert_eq!(extras["url"], format!("{}/submit", site.base));
    assert_eq!(
        *site.posted.lock().unwrap(),
        ["name=Ada+%22the+first%22+Lovelace&color=g"]
    );
    assert!(
        page["content"]
            .as_str()
            .unwrap()
            .contains("heading 'Thanks'"),
        "{page}"
    );
    assert_eq!(page["message"], format!("Visited {}/submit", site.base));
}

#[tokio::test]
async fn a_link_is_followed_and_history_goes_back_and_forward() {
    require_chromium();
    let site = site().await;
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let page = browse_in(&mut ws, &format!("goto('{}/links')", site.base)).await;
    let content = page["content"].as_str().unwrap();
    let link = bid_of(content, "link 'Go to the target'");
    let page = browse_in(&mut ws, &format!("click('{link}')")).await;
    assert_eq!(
        page["extras"]["url"],
        format!("{}/target", site.base),
        "{page}"
    );
    assert!(page["content"]
        .as_str()
        .unwrap()
        .contains("Target page reached"));
    let page = browse_in(&mut ws, "go_back()").await;
    assert_eq!(
        page["extras"]["url"],
        format!("{}/links", site.base),
        "{page}"
    );
    let page = browse_in(&mut ws, "go_forward()").await;
    assert_eq!(
        page["extras"]["url"],
        format!("{}/target", site.base),
        "{page}"
    );
    // A link meant for a new tab opens in the same one: the model always sees the page.
    let page = browse_in(&mut ws, &format!("goto('{}/links')", site.base)).await;
    let tab = bid_of(page["content"].as_str().unwrap(), "link 'New tab'");
    let page = browse_in(&mut ws, &format!("click('{tab}')")).await;
    assert_eq!(
        page["extras"]["url"],
        format!("{}/target", site.base),
        "{page}"
    );
    assert_eq!(
        page["extras"]["open_pages_urls"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_page_that_never_finishes_loading_is_a_timeout_observation() {
    require_chromium();
    let site = site().await;
    let server = Server::with_env(&[("SANDBOX_BROWSER_ACTION_TIMEOUT", "3")]);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let started = Instant::now();
    let page = browse_in(&mut ws, &format!("goto('{}/hang')", site.base)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(took >= Duration::from_secs(3), "took {took:?}");
    assert_eq!(page["extras"]["error"], true, "{page}");
    let error = page["extras"]["last_browser_action_error"]
        .as_str()
        .unwrap();
    assert!(
        error.contains("did not finish loading within 3 s"),
        "{error}"
    );
    assert!(page["content"]
        .as_str()
        .unwrap()
        .contains("BEGIN error message"));
    // The browser is still usable.
    let page = browse_in(&mut ws, &format!("goto('{}/target')", site.base)).await;
    assert_eq!(page["extras"]["error"], false, "{page}");
    assert!(page["content"]
        .as_str()
        .unwrap()
        .contains("Target page reached"));
}

#[tokio::test]
async fn hostile_browser_actions_are_error_observations() {
    require_chromium();
    let site = site().await;
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    // Not the action language: refused before any browser starts.
    for (code, says) in [
        (
            "__import__('os').system('touch /tmp/pwned')",
            "syntax error",
        ),
        ("exec('print(1)')", "unknown function \"exec\""),
        ("click('1\"] , [x')", "is not an element id"),
        ("", "empty"),
    ] {
        let page = browse_in(&mut ws, code).await;
        assert_eq!(page["extras"]["error"], true, "{page}");
        let error = page["extras"]["last_browser_action_error"]
            .as_str()
            .unwrap();
        assert!(error.contains(says), "{code}: {error}");
    }
    assert!(
        chromium_pids(&workspace(&server, &cid)).is_empty(),
        "a browser started for bad code"
    );
    // Local files and other schemes are not opened.
    for url in [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "chrome://version",
        "data:text/html,<b>x</b>",
    ] {
        let page = browse_in(&mut ws, &format!("goto('{url}')")).await;
        assert_eq!(page["extras"]["error"], true, "{page}");
        let content = page["content"].as_str().unwrap();
        assert!(content.contains("Only http and https URLs"), "{content}");
        assert!(!content.contains("root:"), "{content}");
    }
    // An element that does not exist.
    browse_in(&mut ws, &format!("goto('{}/form')", site.base)).await;
    let page = browse_in(&mut ws, "click('99999')").await;
    assert_eq!(page["extras"]["error"], true);
    assert!(page["extras"]["last_browser_action_error"]
        .as_str()
        .unwrap()
        .contains("Could not find element with bid \"99999\""));
    // The page is still shown after the error.
    assert!(page["content"].as_str().unwrap().contains("textbox 'Name'"));
    // Filling something that is not a field.
    let page = browse_in(&mut ws, "fill('4', 'x')").await;
    assert!(
        page["extras"]["last_browser_action_error"]
            .as_str()
            .unwrap()
            .contains("is not an <input>"),
        "{page}"
    );
    // Uploads only from the workspace.
    browse_in(&mut ws, &format!("goto('{}/upload')", site.base)).await;
    let ws_dir = workspace(&server, &cid);
    std::fs::write(ws_dir.join("report.txt"), "hello").unwrap();
    let input = "3"; // html 0, head 1, body 2, input 3
    for outside in ["/etc/passwd", "../../../../etc/passwd"] {
        let page = browse_in(&mut ws, &format!("upload_file('{input}', '{outside}')")).await;
        let error = page["extras"]["last_browser_action_error"]
            .as_str()
            .unwrap();
        assert!(
            error.contains("outside the workspace"),
            "{outside}: {error}"
        );
    }
    let page = browse_in(
        &mut ws,
        &format!("upload_file('{input}', '/workspace/report.txt')"),
    )
    .await;
    assert_eq!(page["extras"]["error"], false, "{page}");
    assert!(
        page["content"]
            .as_str()
            .unwrap()
            .contains("chosen report.txt"),
        "{page}"
    );
}

#[tokio::test]
async fn without_chromium_the_action_is_a_clear_error_and_the_tool_is_not_offered() {
    let llm = ScriptedLlm::start(vec![text("No browser here."), text("With a browser.")]).await;
    let server = Server::with_env(&[
        ("CHROMIUM_PATH", "/nonexistent/chromium"),
        ("LLM_MODEL", "openai/scripted-model"),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_BASE_URL", llm.base_url.as_str()),
    ]);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let obs = act(&mut ws, &browse("goto('http://127.0.0.1:1/')")).await;
    assert_eq!(obs["observation"], "error", "{obs}");
    let content = obs["content"].as_str().unwrap();
    assert!(content.contains("Chromium was not found"), "{content}");
    assert!(content.contains("CHROMIUM_PATH"), "{content}");
    send_user_action(&mut ws, &message("hello")).await;
    wait_until("no LLM request", || !llm.requests().is_empty()).await;
    let tools: Vec<String> = llm.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!tools.contains(&"browser".to_string()), "{tools:?}");
    assert!(tools.contains(&"execute_bash".to_string()), "{tools:?}");
}

#[tokio::test]
async fn one_crashed_browser_does_not_affect_another_and_restarts_at_the_next_action() {
    require_chromium();
    let site = site().await;
    let server = Server::start();
    let (a, b) = (new_id(), new_id());
    let mut wa = ws_ready(
        server.port,
        &format!("conversation_id={a}&latest_event_id=-1"),
    )
    .await;
    let mut wb = ws_ready(
        server.port,
        &format!("conversation_id={b}&latest_event_id=-1"),
    )
    .await;
    browse_in(&mut wa, &format!("goto('{}/links')", site.base)).await;
    browse_in(&mut wb, &format!("goto('{}/form')", site.base)).await;
    let victims = chromium_pids(&workspace(&server, &a));
    assert!(!victims.is_empty());
    let others = chromium_pids(&workspace(&server, &b));
    assert!(!others.is_empty());
    for pid in &victims {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // B goes on, untouched.
    let page = browse_in(&mut wb, "noop(10)").await;
    assert_eq!(page["extras"]["error"], false, "{page}");
    assert!(page["content"].as_str().unwrap().contains("textbox 'Name'"));
    for pid in &others {
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "B's browser was hurt"
        );
    }
    // A's next action runs in a new browser and says so.
    let page = browse_in(&mut wa, &format!("goto('{}/target')", site.base)).await;
    assert_eq!(page["extras"]["error"], false, "{page}");
    let content = page["content"].as_str().unwrap();
    assert!(content.contains("ran in a new browser"), "{content}");
    assert!(content.contains("Target page reached"), "{content}");
}

#[tokio::test]
async fn browsers_close_with_their_conversation_and_after_idling() {
    require_chromium();
    let site = site().await;
    let server = Server::with_env(&[("SANDBOX_BROWSER_IDLE_TIMEOUT", "2")]);
    let (a, b) = (new_id(), new_id());
    let mut wa = ws_ready(
        server.port,
        &format!("conversation_id={a}&latest_event_id=-1"),
    )
    .await;
    let mut wb = ws_ready(
        server.port,
        &format!("conversation_id={b}&latest_event_id=-1"),
    )
    .await;
    browse_in(&mut wa, &format!("goto('{}/links')", site.base)).await;
    let a_dir = workspace(&server, &a);
    assert!(!chromium_pids(&a_dir).is_empty());
    // Deleting the conversation ends its browser.
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/conversations/{a}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    wait_until("chromium outlived its conversation", || {
        chromium_pids(&a_dir).is_empty()
    })
    .await;
    // An idle browser closes by itself and comes back at the next action.
    browse_in(&mut wb, &format!("goto('{}/links')", site.base)).await;
    let b_dir = workspace(&server, &b);
    assert!(!chromium_pids(&b_dir).is_empty());
    wait_until("the idle browser stayed", || {
        chromium_pids(&b_dir).is_empty()
    })
    .await;
    let page = browse_in(&mut wb, &format!("goto('{}/target')", site.base)).await;
    assert_eq!(page["extras"]["error"], false, "{page}");
    assert!(!chromium_pids(&b_dir).is_empty());
    // Shutdown leaves none behind.
    let mut server = server;
    let dir = server.dir.clone();
    assert!(server.sigterm().success());
    wait_until("chromium outlived the server", || {
        chromium_pids(&dir).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_killed_server_takes_its_browsers_with_it() {
    require_chromium();
    let site = site().await;
    let mut server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    browse_in(&mut ws, &format!("goto('{}/links')", site.base)).await;
    let dir = server.dir.clone();
    assert!(!chromium_pids(&dir).is_empty());
    server.sigkill();
    wait_until("chromium outlived a SIGKILLed server", || {
        chromium_pids(&dir).is_empty()
    })
    .await;
}

fn agent_env(llm: &ScriptedLlm) -> Vec<(String, String)> {
    vec![
        ("LLM_MODEL".into(), "openai/scripted-model".into()),
        ("LLM_API_KEY".into(), "sk-test".into()),
        ("LLM_BASE_URL".into(), llm.base_url.clone()),
        ("LLM_NUM_RETRIES".into(), "0".into()),
    ]
}

/// The `tool` messages of an LLM request.
fn tool_results(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            m["content"]
                .as_str()
                .map_or_else(|| m["content"].to_string(), str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn the_model_reads_the_tree_and_fills_a_form_across_a_restart() {
    require_chromium();
    let site = site().await;
    let form = format!("{}/form", site.base);
    let llm = ScriptedLlm::start(vec![
        call("browser", json!({"code": format!("goto('{form}')"), "security_risk": "LOW"})),
        text("I see a form with a Name field."),
        // After the restart: a new browser, so the page is opened again.
        call(
            "browser",
            json!({"code": format!("goto('{form}')\nfill('6', 'Grace')\nclick('10')"), "security_risk": "MEDIUM"}),
        ),
        text("Submitted."),
    ])
    .await;
    let mut server = Server::start_with(Options {
        env: agent_env(&llm),
        ..Default::default()
    });
    let dir = server.dir.clone();
    let _keep = server.keep_dir();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    send_user_action(&mut ws, &message("Look at the form")).await;
    wait_until("the model was not asked twice", || {
        llm.requests().len() >= 2
    })
    .await;
    let first = &llm.requests()[0];
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"browser"), "{tools:?}");
    let results = tool_results(&llm.requests()[1]);
    assert_eq!(results.len(), 1);
    assert!(
        results[0].starts_with(&format!("[Current URL: {form}]")),
        "{}",
        results[0]
    );
    assert!(results[0].contains("[6] textbox 'Name'"), "{}", results[0]);
    assert!(results[0].contains("[10] button 'Send'"), "{}", results[0]);
    assert!(
        !results[0].contains("base64"),
        "the screenshot went to the model"
    );
    // The stored observation carries the screenshot for the UIs.
    let events = wait_events(&server, &cid, 8).await;
    let obs = events
        .iter()
        .find(|e| e["observation"] == "browse")
        .expect("browse observation");
    assert!(obs["extras"]["screenshot"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    assert_eq!(obs["tool_call_metadata"]["function_name"], "browser");
    let action = events
        .iter()
        .find(|e| e["action"] == "browse_interactive")
        .unwrap();
    assert_eq!(action["args"]["browser_actions"], format!("goto('{form}')"));
    assert_eq!(action["args"]["security_risk"], 0);
    drop(ws);
    assert!(server.sigterm().success());
    // The kernel kills the browser when the server exits (its parent-death signal);
    // the processes are gone moments later.
    wait_until("chromium outlived the server", || {
        chromium_pids(&dir).is_empty()
    })
    .await;

    let server = Server::start_with(Options {
        env: agent_env(&llm),
        dir: Some(dir),
        ..Default::default()
    });
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    send_user_action(&mut ws, &message("Now send it with the name Grace")).await;
    wait_until("the model was not asked after the restart", || {
        llm.requests().len() >= 4
    })
    .await;
    assert_eq!(*site.posted.lock().unwrap(), ["name=Grace&color=r"]);
    let results = tool_results(&llm.requests()[3]);
    assert_eq!(results.len(), 2, "history not rebuilt: {results:?}");
    assert!(results[0].contains("[6] textbox 'Name'"), "{}", results[0]);
    assert!(results[1].contains("heading 'Thanks'"), "{}", results[1]);
}
