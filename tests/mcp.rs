//! MCP servers as agent tools, against the reference server
//! `@modelcontextprotocol/server-everything` (installed by `npm ci` in tests/node) over
//! stdio and streamable HTTP, a command that does not exist, and a hostile server.

mod common;
#[path = "common/llm.rs"]
#[allow(dead_code)]
mod llm;

use common::*;
use llm::{call, ScriptedLlm};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The reference server's entry point, or None (with a loud message) when node is not
/// installed. With node but without the package, the test fails: run `npm ci` in
/// tests/node.
fn everything() -> Option<String> {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("\n\n!!!!! SKIPPED: node is not installed, the MCP tests cannot run !!!!!\n\n");
        return None;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in tests/node",
        path.display()
    );
    Some(path.display().to_string())
}

/// A `[mcp]` stdio entry for the reference server, tagged so that the test finds its
/// process.
fn stdio_entry(name: &str, path: &str, tag: &str) -> String {
    format!(
        "{{ name = \"{name}\", command = \"node\", args = [\"{path}\", \"stdio\"], env = {{ MCP_TEST_TAG = \"{tag}\" }} }}"
    )
}

fn agent_server(llm: &ScriptedLlm, config: String) -> Server {
    Server::start_with(Options {
        env: [
            ("LLM_MODEL", "openai/scripted-model"),
            ("LLM_API_KEY", "sk-test"),
            ("LLM_BASE_URL", llm.base_url.as_str()),
            ("LLM_NUM_RETRIES", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        config: Some(config),
        ..Default::default()
    })
}

/// Pids of live processes whose environment holds `MCP_TEST_TAG=<tag>`.
fn tagged(tag: &str) -> Vec<u32> {
    let needle = format!("MCP_TEST_TAG={tag}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if !zombie && env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Everything (stored events and notices) until the agent reaches one of `until`.
async fn until_state(ws: &mut Ws, until: &[&str]) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(30), next_payload(ws))
            .await
            .expect("agent took too long");
        let done = p["observation"] == "agent_state_changed"
            && p["extras"]["agent_state"]
                .as_str()
                .is_some_and(|s| until.contains(&s));
        seen.push(p);
        if done {
            return seen;
        }
    }
}

/// Connects to a new conversation, waits until it is ready, sends `message`; returns
/// the socket, the id and the start-up events.
async fn start(server: &Server, message: &str) -> (Ws, String, Vec<Value>) {
    let cid = new_id();
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let startup = until_state(&mut ws, &["awaiting_user_input"]).await;
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": message}}),
    )
    .await;
    (ws, cid, startup)
}

fn of_kind<'a>(events: &'a [Value], key: &str, kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e[key] == kind).collect()
}

fn tool<'a>(request: &'a Value, name: &str) -> Option<&'a Value> {
    request["tools"]
        .as_array()?
        .iter()
        .find(|t| t["function"]["name"] == name)
}

/// The content of the tool message answering call `id` in a request to the model.
fn tool_result(request: &Value, call_id: &Value) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == *call_id)
        .and_then(|m| m["content"].as_str())
        .unwrap_or_else(|| panic!("no tool message for {call_id} in {request}"))
        .to_string()
}

#[tokio::test]
async fn stdio_server_tools_reach_the_model_and_a_call_comes_back_as_an_mcp_observation() {
    let Some(path) = everything() else { return };
    let tag = new_id();
    let llm = ScriptedLlm::start(vec![
        call("echo", json!({"message": "hello over stdio"})),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let config = format!(
        "[mcp]\nstdio_servers = [{}, {{ name = \"broken\", command = \"/nonexistent/mcp-server\" }}]\n",
        stdio_entry("everything", &path, &tag)
    );
    let server = agent_server(&llm, config);
    let (mut ws, cid, startup) = start(&server, "Echo something").await;
    // Each server's start is a stored event: connected with its tools, or failed.
    let connected = of_kind(&startup, "observation", "success");
    assert_eq!(connected.len(), 1, "{startup:?}");
    let text = connected[0]["content"].as_str().unwrap();
    assert!(
        text.starts_with("MCP server \"everything\" (stdio) connected with ")
            && text.contains("echo"),
        "{text}"
    );
    assert_eq!(connected[0]["source"], "environment");
    let failed = of_kind(&startup, "observation", "error");
    assert_eq!(failed.len(), 1, "{startup:?}");
    let why = failed[0]["content"].as_str().unwrap();
    assert!(
        why.contains("MCP server \"broken\" (stdio) failed: cannot run `/nonexistent/mcp-server`"),
        "{why}"
    );
    assert_eq!(tagged(&tag).len(), 1, "one stdio server process");

    let events = until_state(&mut ws, &["finished"]).await;
    // The model got the tool with its schema, next to the built-in tools.
    let first = &llm.requests()[0];
    let echo = tool(first, "echo").expect("echo offered");
    assert_eq!(echo["type"], "function");
    assert_eq!(echo["function"]["parameters"]["type"], "object");
    assert!(echo["function"]["parameters"]["properties"]["message"].is_object());
    assert!(tool(first, "execute_bash").is_some());
    // The call is stored as call_tool_mcp and answered by an mcp observation.
    let action = of_kind(&events, "action", "call_tool_mcp")[0];
    assert_eq!(action["args"]["name"], "echo");
    assert_eq!(
        action["args"]["arguments"],
        json!({"message": "hello over stdio"})
    );
    assert_eq!(action["tool_call_metadata"]["function_name"], "echo");
    let obs = of_kind(&events, "observation", "mcp")[0];
    assert_eq!(obs["cause"], action["id"]);
    assert_eq!(
        obs["extras"],
        json!({"name": "echo", "arguments": {"message": "hello over stdio"}})
    );
    let result: Value = serde_json::from_str(obs["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["content"][0]["text"], "Echo: hello over stdio");
    // The model read the result as the tool message of its call.
    let second = &llm.requests()[1];
    let call_id = &action["tool_call_metadata"]["tool_call_id"];
    assert!(tool_result(second, call_id).contains("Echo: hello over stdio"));

    // A client that connects later sees how the servers started.
    let mut late = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let mut replayed = Vec::new();
    while replayed.len() < 4 {
        replayed.push(next_event(&mut late).await);
    }
    assert!(
        replayed.iter().any(|e| e["observation"] == "success"),
        "{replayed:?}"
    );
    assert!(
        replayed.iter().any(|e| e["observation"] == "error"),
        "{replayed:?}"
    );
}

#[tokio::test]
async fn a_client_can_call_an_mcp_tool_over_the_socket() {
    let Some(path) = everything() else { return };
    let tag = new_id();
    let llm = ScriptedLlm::start(vec![]).await;
    let config = format!(
        "[mcp]\nstdio_servers = [{}]\n",
        stdio_entry("everything", &path, &tag)
    );
    let server = agent_server(&llm, config);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let obs = act(
        &mut ws,
        &json!({"action": "call_tool_mcp", "args": {"name": "get-sum", "arguments": {"a": 2, "b": 40}}}),
    )
    .await;
    assert_eq!(obs["observation"], "mcp", "{obs}");
    assert!(obs["content"].as_str().unwrap().contains("42"), "{obs}");
    let obs = act(
        &mut ws,
        &json!({"action": "call_tool_mcp", "args": {"name": "no-such-tool", "arguments": {}}}),
    )
    .await;
    assert_eq!(obs["observation"], "error");
    assert!(obs["content"]
        .as_str()
        .unwrap()
        .contains("There is no MCP tool named \"no-such-tool\""));
}

/// Starts the reference server in streamable-HTTP mode on a free port.
/// A child process killed (and reaped) when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn http_everything(path: &str, tag: &str) -> (Killed, u16) {
    everything_in_mode(path, tag, "streamableHttp").await
}

/// Starts the reference server in an HTTP `mode` on a free port.
async fn everything_in_mode(path: &str, tag: &str, mode: &str) -> (Killed, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Killed(
        std::process::Command::new("node")
            .args([path, mode])
            .env("PORT", port.to_string())
            .env("MCP_TEST_TAG", tag)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the streamable HTTP server did not listen");
}

#[tokio::test]
async fn settings_mcp_config_starts_a_streamable_http_server_for_later_conversations_and_hides_its_key(
) {
    let Some(path) = everything() else { return };
    let (_http_server, port) = http_everything(&path, &new_id()).await;
    let llm = ScriptedLlm::start(vec![
        call("get-sum", json!({"a": 20, "b": 22})),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let server = agent_server(&llm, String::new());
    let secret = "sk-mcp-very-secret-123";
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"mcp_config": {"shttp_servers": [{"url": format!("http://127.0.0.1:{port}/mcp"), "api_key": secret}]}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, shown) = get(&server, "/api/settings").await;
    assert_eq!(
        shown["mcp_config"]["shttp_servers"][0]["api_key"],
        "<hidden>"
    );

    let (mut ws, cid, startup) = start(&server, "Add 20 and 22").await;
    let connected = of_kind(&startup, "observation", "success");
    assert_eq!(connected.len(), 1, "{startup:?}");
    assert!(connected[0]["content"]
        .as_str()
        .unwrap()
        .starts_with("MCP server \"127.0.0.1/mcp\" (shttp) connected with "));
    let events = until_state(&mut ws, &["finished"]).await;
    assert!(tool(&llm.requests()[0], "get-sum").is_some());
    let obs = of_kind(&events, "observation", "mcp")[0];
    assert_eq!(obs["extras"]["name"], "get-sum");
    assert!(obs["content"].as_str().unwrap().contains("42"), "{obs}");
    // The key is in no event, no answer and no log line.
    let all = serde_json::to_string(&wait_events(&server, &cid, 8).await).unwrap();
    assert!(!all.contains(secret));
    assert!(!server.stdout.lock().unwrap().contains(secret));
}

#[tokio::test]
async fn a_crashed_stdio_server_is_an_error_for_the_model_and_restarts_for_the_next_call() {
    let Some(path) = everything() else { return };
    let tag = new_id();
    let llm = ScriptedLlm::start(vec![
        call(
            "trigger-long-running-operation",
            json!({"duration": 8, "steps": 1}),
        ),
        call("echo", json!({"message": "three"})),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let config = format!(
        "[mcp]\ncall_timeout = 10\nstdio_servers = [{}]\n",
        stdio_entry("everything", &path, &tag)
    );
    let server = agent_server(&llm, config);
    let (mut ws, _cid, _) = start(&server, "Run the slow tool, then echo").await;
    // The server is killed while it works on the first call.
    loop {
        let p = next_payload(&mut ws).await;
        if p["action"] == "call_tool_mcp" {
            break;
        }
        assert_ne!(p["observation"], "error", "{p}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pids = tagged(&tag);
    assert_eq!(pids.len(), 1);
    nix_kill(pids[0]);
    let events = until_state(&mut ws, &["finished"]).await;
    let observations: Vec<&Value> = events
        .iter()
        .filter(|e| e["observation"] == "mcp" || e["observation"] == "error")
        .collect();
    assert_eq!(observations.len(), 2, "{observations:?}");
    assert_eq!(observations[0]["observation"], "error");
    let why = observations[0]["content"].as_str().unwrap();
    assert!(
        why.contains(
            "MCP tool \"trigger-long-running-operation\" of server \"everything\" failed: the server stopped"
        ),
        "{why}"
    );
    assert!(why.contains("started again"), "{why}");
    assert_eq!(observations[1]["observation"], "mcp");
    assert!(observations[1]["content"]
        .as_str()
        .unwrap()
        .contains("Echo: three"));
    let restarted = tagged(&tag);
    assert_eq!(restarted.len(), 1);
    assert_ne!(restarted[0], pids[0]);
}

fn nix_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_slow_tool_call_times_out_into_an_error_observation() {
    let Some(path) = everything() else { return };
    let tag = new_id();
    let llm = ScriptedLlm::start(vec![
        call(
            "trigger-long-running-operation",
            json!({"duration": 5, "steps": 1}),
        ),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let config = format!(
        "[mcp]\ncall_timeout = 1\nstdio_servers = [{}]\n",
        stdio_entry("everything", &path, &tag)
    );
    let server = agent_server(&llm, config);
    let (mut ws, _, _) = start(&server, "Run the slow tool").await;
    let began = std::time::Instant::now();
    let events = until_state(&mut ws, &["finished"]).await;
    let err = of_kind(&events, "observation", "error")[0];
    assert!(
        err["content"]
            .as_str()
            .unwrap()
            .contains("no answer within 1 seconds"),
        "{err}"
    );
    assert!(began.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn stdio_servers_stop_with_their_conversation_and_with_the_server() {
    let Some(path) = everything() else { return };
    let (tag_a, tag_b) = (new_id(), new_id());
    let llm = ScriptedLlm::start(vec![]).await;
    // One conversation per tag: the settings name the server of the second.
    let config = format!(
        "[mcp]\nstdio_servers = [{}]\n",
        stdio_entry("a", &path, &tag_a)
    );
    let mut server = agent_server(&llm, config);
    let cid = new_id();
    let ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    assert_eq!(tagged(&tag_a).len(), 1);
    drop(ws);
    let (status, _) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/stop"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    wait_until("the stdio server of a closed conversation is gone", || {
        tagged(&tag_a).is_empty()
    })
    .await;
    // Deleting an open conversation stops its server too.
    let cid = new_id();
    let _ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    assert_eq!(tagged(&tag_a).len(), 1);
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/conversations/{cid}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    wait_until("the stdio server of a deleted conversation is gone", || {
        tagged(&tag_a).is_empty()
    })
    .await;
    // Shutdown stops every server.
    let (status, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"mcp_config": {"stdio_servers": [{"name": "b", "command": "node", "args": [path, "stdio"], "env": {"MCP_TEST_TAG": tag_b}}]}})),
    )
    .await;
    assert_eq!(status, 200);
    let cid = new_id();
    let _ws2 = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    assert_eq!(tagged(&tag_a).len(), 1, "config.toml's server");
    assert_eq!(tagged(&tag_b).len(), 1, "the settings' server");
    assert!(server.sigterm().success());
    wait_until("every stdio server is gone after shutdown", || {
        tagged(&tag_a).is_empty() && tagged(&tag_b).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_restarted_server_gives_the_model_the_earlier_mcp_call_and_the_tools_again() {
    let Some(path) = everything() else { return };
    let tag = new_id();
    let llm = ScriptedLlm::start(vec![
        call("echo", json!({"message": "before restart"})),
        call("finish", json!({"message": "done"})),
        call("finish", json!({"message": "done again"})),
    ])
    .await;
    let config = format!(
        "[mcp]\nstdio_servers = [{}]\n",
        stdio_entry("everything", &path, &tag)
    );
    let mut server = agent_server(&llm, config.clone());
    let dir = server.dir.clone();
    let _keep = server.keep_dir();
    let (mut ws, cid, _) = start(&server, "Echo before restart").await;
    let events = until_state(&mut ws, &["finished"]).await;
    let action = of_kind(&events, "action", "call_tool_mcp")[0].clone();
    drop(ws);
    assert!(server.sigterm().success());
    let server = Server::start_with(Options {
        env: vec![
            ("LLM_MODEL".into(), "openai/scripted-model".into()),
            ("LLM_API_KEY".into(), "sk-test".into()),
            ("LLM_BASE_URL".into(), llm.base_url.clone()),
        ],
        dir: Some(dir),
        ..Default::default()
    });
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "and again"}}),
    )
    .await;
    loop {
        let p = tokio::time::timeout(Duration::from_secs(30), next_payload(&mut ws))
            .await
            .expect("no answer after the restart");
        if p["action"] == "finish" && p["args"]["final_thought"] == "done again" {
            break;
        }
    }
    let third = &llm.requests()[2];
    assert!(tool(third, "echo").is_some(), "the tools are offered again");
    let call_id = &action["tool_call_metadata"]["tool_call_id"];
    assert!(tool_result(third, call_id).contains("Echo: before restart"));
}

#[tokio::test]
async fn hostile_tools_are_refused_with_a_notice_and_huge_results_are_cut() {
    let Some(_) = everything() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile_mcp.py");
    let llm = ScriptedLlm::start(vec![
        call("good", json!({"x": "y"})),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let config = format!(
        "[mcp]\nstdio_servers = [{{ name = \"hostile\", command = \"python3\", args = [\"{0}\", \"tools\"] }}, {{ name = \"badschema\", command = \"python3\", args = [\"{0}\", \"bad-schema\"] }}]\n",
        script.display()
    );
    let server = agent_server(&llm, config);
    let (mut ws, _, startup) = start(&server, "Use the good tool").await;
    let notices: Vec<String> = of_kind(&startup, "observation", "error")
        .iter()
        .map(|e| e["content"].as_str().unwrap().to_string())
        .collect();
    let all = notices.join("\n");
    assert!(all.contains("MCP tool \"think\" of server \"hostile\" is not offered to the agent: a built-in tool has that name"), "{all}");
    assert!(
        all.contains("MCP tool \"huge\" of server \"hostile\" is not offered"),
        "{all}"
    );
    assert!(all.contains("MCP tool \"bad name!\""), "{all}");
    assert!(
        all.contains("MCP server \"badschema\" (stdio) failed"),
        "{all}"
    );
    let connected = of_kind(&startup, "observation", "success");
    assert!(connected[0]["content"]
        .as_str()
        .unwrap()
        .contains("connected with 1 tools: good"));
    let events = until_state(&mut ws, &["finished"]).await;
    let first = &llm.requests()[0];
    let thinks = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["function"]["name"] == "think")
        .count();
    assert_eq!(thinks, 1, "only the built-in think");
    assert!(tool(first, "huge").is_none());
    let good = tool(first, "good").unwrap();
    assert_eq!(
        good["function"]["description"].as_str().unwrap().len(),
        4096
    );
    let obs = of_kind(&events, "observation", "mcp")[0];
    let content = obs["content"].as_str().unwrap();
    assert!(
        content.len() < 1_100_000 && content.contains("Observation truncated"),
        "{}",
        content.len()
    );
    // The model got at most its usual share of it.
    let second = &llm.requests()[1];
    let action = of_kind(&events, "action", "call_tool_mcp")[0];
    let seen = tool_result(second, &action["tool_call_metadata"]["tool_call_id"]);
    assert!(seen.len() < 40_000, "{}", seen.len());
}

#[tokio::test]
async fn an_invalid_mcp_config_is_refused_by_the_settings_and_by_the_config_file() {
    let llm = ScriptedLlm::start(vec![]).await;
    let server = agent_server(&llm, String::new());
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"mcp_config": {"stdio_servers": [{"name": "bad name", "command": "x"}]}})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("stdio server name"), "{body}");
    // A server with a broken [mcp] section does not start, and says why.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[mcp]\nshttp_servers = [\"ftp://x/y\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .args(["--port", "0"])
        .current_dir(dir.path())
        .env("FILE_STORE_PATH", dir.path().join("store"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("must be http(s)://host"), "{text}");
}

#[tokio::test]
async fn an_sse_server_works_through_the_older_transport() {
    let Some(path) = everything() else { return };
    let (_sse_server, port) = everything_in_mode(&path, &new_id(), "sse").await;
    let llm = ScriptedLlm::start(vec![]).await;
    let config = format!("[mcp]\nsse_servers = [\"http://127.0.0.1:{port}/sse\"]\n");
    let server = agent_server(&llm, config);
    let cid = new_id();
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let startup = until_state(&mut ws, &["awaiting_user_input"]).await;
    let connected = of_kind(&startup, "observation", "success");
    assert_eq!(connected.len(), 1, "{startup:?}");
    assert!(connected[0]["content"]
        .as_str()
        .unwrap()
        .contains("(sse) connected with"));
    let obs = act(
        &mut ws,
        &json!({"action": "call_tool_mcp", "args": {"name": "echo", "arguments": {"message": "over sse"}}}),
    )
    .await;
    assert_eq!(obs["observation"], "mcp", "{obs}");
    assert!(obs["content"].as_str().unwrap().contains("Echo: over sse"));
}
