//! What operators see: `/metrics` read by the Prometheus client library's own parsers
//! after a scripted conversation, the JSON log, cost totals in the conversation info,
//! the budget limit, and the version report.

mod common;
// Shared with tests/agent.rs, which uses all of it.
#[allow(dead_code)]
#[path = "common/llm.rs"]
mod llm;

use common::*;
use llm::{call, tool_calls, ScriptedLlm};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const MODEL: &str = "openai/scripted-model";
const INPUT_PRICE: f64 = 0.001;
const OUTPUT_PRICE: f64 = 0.002;

fn priced_server(llm: &ScriptedLlm, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("LLM_MODEL", MODEL),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_BASE_URL", llm.base_url.as_str()),
        ("LLM_INPUT_COST_PER_TOKEN", "0.001"),
        ("LLM_OUTPUT_COST_PER_TOKEN", "0.002"),
        ("LLM_NUM_RETRIES", "0"),
    ];
    env.extend_from_slice(extra);
    Server::with_env(&env)
}

/// Parses metrics text with the parser of the `prometheus_client` Python package
/// (OpenMetrics or Prometheus text) into `name{label="v",…}` → value, labels sorted.
fn parse(text: &str, openmetrics: bool) -> HashMap<String, f64> {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let script = format!(
        r#"
import json, sys
from {module} import text_string_to_metric_families
out = {{}}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{{k}}="{{v}}"' for k, v in sorted(s.labels.items()))
        out[f"{{s.name}}{{{{{{labels}}}}}}" if labels else s.name] = s.value
print(json.dumps(out))
"#
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (pip install -r tests/python/requirements.txt)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn scrape(server: &Server, openmetrics: bool) -> HashMap<String, f64> {
    let mut req = http().get(server.url("/metrics"));
    if openmetrics {
        req = req.header("accept", "application/openmetrics-text; version=1.0.0");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    if openmetrics {
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    } else {
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    }
    parse(&r.text().await.unwrap(), openmetrics)
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no {key} in {:#?}", sorted(m)))
}

fn sorted(m: &HashMap<String, f64>) -> Vec<(&String, &f64)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Payloads until the agent reaches one of `states`.
async fn until_state(ws: &mut Ws, states: &[&str]) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(20), next_payload(ws))
            .await
            .expect("agent took too long");
        let done = p["observation"] == "agent_state_changed"
            && states.contains(&p["extras"]["agent_state"].as_str().unwrap_or(""));
        seen.push(p);
        if done {
            return seen;
        }
    }
}

async fn start_conversation(server: &Server, message: &str) -> (Ws, String) {
    let cid = new_id();
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    until_state(&mut ws, &["awaiting_user_input"]).await;
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": message}}),
    )
    .await;
    (ws, cid)
}

/// The conversation's info once its totals reached `cost` (metadata is written back
/// about once a second).
async fn info_with_cost(server: &Server, cid: &str, cost: f64) -> Value {
    let start = Instant::now();
    loop {
        let (status, info) = get(server, &format!("/api/conversations/{cid}")).await;
        assert_eq!(status, 200);
        if (info["accumulated_cost"].as_f64().unwrap_or(-1.0) - cost).abs() < 1e-9 {
            return info;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "cost never reached {cost}: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_count_a_scripted_conversation_its_commands_and_its_clients() {
    let llm = ScriptedLlm::start(vec![
        tool_calls(
            Some("First."),
            &[(
                "execute_bash",
                json!({"command": "echo one", "security_risk": "LOW"}),
            )],
        ),
        call(
            "execute_bash",
            json!({"command": "echo two", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "Done."})),
    ])
    .await;
    let server = priced_server(&llm, &[]);
    let before = scrape(&server, false).await;
    assert_eq!(value(&before, "openhands_events_stored_total"), 0.0);
    assert_eq!(value(&before, "openhands_conversations_open"), 0.0);

    let (mut ws, cid) = start_conversation(&server, "Run two commands").await;
    until_state(&mut ws, &["finished"]).await;
    let stored = wait_events(&server, &cid, 1).await.len();

    // A second client replays everything; its bytes are the replay bytes.
    let mut replayer = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let (mut replayed_bytes, mut first_event_bytes) = (0usize, 0usize);
    for _ in 0..stored {
        let frame = loop {
            let t = next_text(&mut replayer).await;
            if t.starts_with("42[\"oh_event\",{\"id\":") {
                break t;
            }
        };
        let bytes = frame.len() - "42[\"oh_event\",".len() - "]".len();
        if replayed_bytes == 0 {
            first_event_bytes = bytes;
        }
        replayed_bytes += bytes;
    }
    // And a raw /ws client.
    let (raw, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/ws?conversation_id={cid}&latest_event_id={}",
        server.port,
        stored - 1
    ))
    .await
    .expect("raw /ws");

    let m = scrape(&server, false).await;
    let om = scrape(&server, true).await;
    assert_eq!(value(&m, "openhands_events_stored_total"), stored as f64);
    assert_eq!(value(&om, "openhands_events_stored_total"), stored as f64);
    assert_eq!(value(&m, "openhands_conversations_open"), 1.0);
    assert_eq!(
        value(&m, r#"openhands_clients_connected{transport="websocket"}"#),
        2.0
    );
    assert_eq!(
        value(&m, r#"openhands_clients_connected{transport="raw_ws"}"#),
        1.0
    );
    assert_eq!(
        value(&m, r#"openhands_clients_connected{transport="polling"}"#),
        0.0
    );
    // The first client may have replayed the opening event too.
    let replay = value(&m, r#"openhands_event_sent_bytes_total{phase="replay"}"#);
    assert!(
        replay == replayed_bytes as f64 || replay == (replayed_bytes + first_event_bytes) as f64,
        "{replay} vs {replayed_bytes} (+{first_event_bytes})"
    );
    assert!(value(&m, r#"openhands_event_sent_bytes_total{phase="live"}"#) > 0.0);
    // Every event reached the first client live (the opening one may have been replayed).
    let delivered = value(&m, "openhands_delivery_latency_seconds_count");
    assert!(
        delivered >= (stored - 1) as f64 && delivered <= stored as f64,
        "{delivered} of {stored}"
    );
    assert!(value(&m, "openhands_store_commit_seconds_count") >= 1.0);
    // The two commands, and the bash shell that ran them is alive.
    assert_eq!(
        value(
            &m,
            r#"openhands_command_duration_seconds_count{action="run"}"#
        ),
        2.0
    );
    assert!(value(&m, "openhands_runtime_processes") >= 1.0);

    // Every LLM request the scripted server answered (steps and the title), with the
    // usage it reported and the configured prices.
    let steps = llm.requests().len() as f64;
    let titles = llm.title_requests().len() as f64;
    assert_eq!(steps, 3.0);
    let label = format!("{{model=\"{MODEL}\"}}");
    assert_eq!(
        value(&m, &format!("openhands_llm_requests_total{label}")),
        steps + titles
    );
    assert_eq!(
        value(
            &m,
            &format!("openhands_llm_tokens_total{{kind=\"prompt\",model=\"{MODEL}\"}}")
        ),
        100.0 * steps + titles
    );
    assert_eq!(
        value(
            &m,
            &format!("openhands_llm_tokens_total{{kind=\"completion\",model=\"{MODEL}\"}}")
        ),
        10.0 * steps + titles
    );
    let cost =
        (100.0 * INPUT_PRICE + 10.0 * OUTPUT_PRICE) * steps + (INPUT_PRICE + OUTPUT_PRICE) * titles;
    assert!((value(&m, &format!("openhands_llm_cost_usd_total{label}")) - cost).abs() < 1e-9);
    assert_eq!(
        value(
            &m,
            &format!("openhands_llm_request_duration_seconds_count{label}")
        ),
        steps + titles
    );
    assert!(
        !m.contains_key(&format!("openhands_llm_errors_total{label}"))
            || value(&m, &format!("openhands_llm_errors_total{label}")) == 0.0
    );

    // The info carries the agent's totals (its steps, not the title request).
    let info = info_with_cost(&server, &cid, 0.12 * 3.0).await;
    assert_eq!(info["prompt_tokens"], 300);
    assert_eq!(info["completion_tokens"], 30);
    assert_eq!(info["total_tokens"], 330);
    assert_eq!(info["llm_model"], MODEL);
    let (_, list) = get(&server, "/api/conversations").await;
    let listed = &list["results"][0];
    assert_eq!(listed["conversation_id"], cid.as_str());
    assert_eq!(listed["total_tokens"], 330);

    drop(raw);
    drop(replayer);
    drop(ws);
    let start = Instant::now();
    loop {
        let m = scrape(&server, false).await;
        let gone = value(&m, r#"openhands_clients_connected{transport="raw_ws"}"#) == 0.0
            && value(&m, r#"openhands_clients_connected{transport="websocket"}"#) == 0.0;
        if gone {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            sorted(&m)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn llm_failures_are_counted_as_errors_of_their_model() {
    let llm = ScriptedLlm::start(vec![llm::Reply::Status(
        400,
        json!({"error": {"message": "bad request"}}),
        None,
    )])
    .await;
    let server = priced_server(&llm, &[]);
    let (mut ws, _) = start_conversation(&server, "fail please").await;
    until_state(&mut ws, &["error"]).await;
    let m = scrape(&server, false).await;
    let label = format!("{{model=\"{MODEL}\"}}");
    assert_eq!(
        value(&m, &format!("openhands_llm_errors_total{label}")),
        1.0
    );
    assert!(value(&m, &format!("openhands_llm_requests_total{label}")) >= 1.0);
}

#[tokio::test]
async fn metrics_need_the_session_key_and_refuse_foreign_origins() {
    let server = Server::with_env(&[("SESSION_API_KEY", "metrics-key")]);
    let client = http();
    let status = |r: reqwest::Response| r.status().as_u16();
    let url = server.url("/metrics");
    assert_eq!(status(client.get(&url).send().await.unwrap()), 401);
    let wrong = client
        .get(&url)
        .header("x-session-api-key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);
    // The query string is not a credential here (nor a redirect into a cookie).
    let query = client
        .get(server.url("/metrics?session_api_key=metrics-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(query), 401);
    let ok = client
        .get(&url)
        .header("x-session-api-key", "metrics-key")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok
        .text()
        .await
        .unwrap()
        .contains("openhands_events_stored_total"));
    let bearer = client
        .get(&url)
        .header("authorization", "Bearer metrics-key")
        .send()
        .await
        .unwrap();
    assert_eq!(status(bearer), 200);
    // Bearer is for /metrics only, not the REST API.
    let rest = client
        .get(server.url("/api/conversations"))
        .header("authorization", "Bearer metrics-key")
        .send()
        .await
        .unwrap();
    assert_eq!(status(rest), 401);
    let foreign = client
        .get(&url)
        .header("x-session-api-key", "metrics-key")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(foreign), 403);
    let rebinding = client
        .get(&url)
        .header("x-session-api-key", "metrics-key")
        .header("host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(rebinding), 403);
}

#[tokio::test]
async fn json_logs_are_valid_lines_with_request_and_conversation_ids_and_never_the_key() {
    let key = "k3y-that-must-never-be-logged";
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("server.log");
    let server = Server::start_with(Options {
        env: vec![
            ("SESSION_API_KEY".into(), key.into()),
            ("LOG_JSON".into(), "1".into()),
            ("LOG_LEVEL".into(), "debug".into()),
        ],
        stderr_to: Some(log.clone()),
        ..Default::default()
    });
    let client = http();
    // The key in every place a client may put it, the query string included.
    let r = client
        .get(server.url(&format!("/api/conversations?limit=5&session_api_key={key}")))
        .header("x-session-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    // Opening the UI with the key: a redirect that keeps it in a cookie.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(server.url(&format!("/?session_api_key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cid = new_id();
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1&session_api_key={key}"),
    )
    .await;
    send_user_action(&mut ws, &message("hello")).await;
    wait_events_with_key(&server, &cid, key).await;
    let refused = client
        .get(server.url(&format!("/api/settings?session_api_key={key}x")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    assert!(!text.contains(key), "the key was logged:\n{text}");
    assert!(!text.contains("session_api_key="), "{text}");
    // The REST request: its span has the method, the path without the query, the id.
    let done = lines
        .iter()
        .find(|l| l["span"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line of request {request_id}:\n{text}"));
    assert_eq!(done["span"]["method"], "GET");
    assert_eq!(done["span"]["path"], "/api/conversations");
    assert_eq!(done["fields"]["status"], 200);
    // The conversation's task logs inside a span with its id.
    assert!(
        lines.iter().any(|l| l["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["conversation_id"] == cid.as_str()))),
        "no line in conversation {cid}'s span:\n{text}"
    );
}

async fn wait_events_with_key(server: &Server, cid: &str, key: &str) {
    let start = Instant::now();
    loop {
        let r = http()
            .get(server.url(&format!("/api/conversations/{cid}/events")))
            .header("x-session-api-key", key)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            if v["events"].as_array().is_some_and(|e| e.len() >= 2) {
                return;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reached_budget_stops_the_agent_with_an_error_the_user_sees() {
    // One step costs 100 × 0.001 + 10 × 0.002 = 0.12, past a budget of 0.1.
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "echo spent", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "never asked"})),
    ])
    .await;
    let server = priced_server(&llm, &[("MAX_BUDGET_PER_TASK", "0.1")]);
    let (mut ws, cid) = start_conversation(&server, "Spend money").await;
    let seen = until_state(&mut ws, &["error", "finished"]).await;
    let last = seen.last().unwrap();
    assert_eq!(last["extras"]["agent_state"], "error", "{seen:?}");
    let reason = last["extras"]["reason"].as_str().unwrap();
    assert!(reason.contains("maximum budget"), "{reason}");
    let notice = seen
        .iter()
        .find(|p| p["status_update"] == true && p["type"] == "error")
        .unwrap_or_else(|| panic!("no error status: {seen:?}"));
    let message = notice["message"].as_str().unwrap();
    assert!(
        message.contains("budget") && message.contains("0.1"),
        "{message}"
    );
    assert_eq!(
        llm.requests().len(),
        1,
        "the agent asked the LLM past its budget"
    );
    let info = info_with_cost(&server, &cid, 0.12).await;
    assert_eq!(info["total_tokens"], 110);
}

#[tokio::test]
async fn version_and_features_are_reported() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(
        text.contains("features:") && text.contains("metrics"),
        "{text}"
    );
    let server = Server::start();
    let (status, config) = get(&server, "/api/options/config").await;
    assert_eq!(status, 200);
    assert_eq!(config["APP_MODE"], "oss");
    assert_eq!(config["VERSION"], env!("CARGO_PKG_VERSION"));
    let features: Vec<&str> = config["FEATURES"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(features.contains(&"metrics") && features.contains(&"json_logs"));
    assert!(text.contains(&features.join(", ")));
}
