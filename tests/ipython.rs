//! Python cells against a real IPython kernel (`ipykernel`, installed by the test setup):
//! state across cells, tracebacks, images, timeouts, Stop, a dying kernel, huge output,
//! the kernel's end with its conversation, a restart, and a machine without ipykernel.

mod common;
#[path = "common/llm.rs"]
#[allow(dead_code)]
mod llm;

use common::*;
use llm::{call, ScriptedLlm};
use serde_json::{json, Value};
use std::time::Duration;

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn agent_env(llm: &ScriptedLlm) -> Vec<(String, String)> {
    vec![
        ("LLM_MODEL".into(), "openai/scripted-model".into()),
        ("LLM_API_KEY".into(), "sk-test".into()),
        ("LLM_BASE_URL".into(), llm.base_url.clone()),
        ("LLM_NUM_RETRIES".into(), "0".into()),
        ("SANDBOX_NO_CHANGE_TIMEOUT".into(), "10".into()),
    ]
}

fn cell(code: &str) -> Value {
    json!({"action": "run_ipython", "args": {"code": code}})
}

fn python(code: &str) -> llm::Reply {
    call(
        "execute_ipython_cell",
        json!({"code": code, "security_risk": "LOW"}),
    )
}

async fn until_state(ws: &mut Ws, state: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(60), next_payload(ws))
            .await
            .expect("agent took too long");
        let done = p["observation"] == "agent_state_changed" && p["extras"]["agent_state"] == state;
        seen.push(p);
        if done {
            return seen;
        }
    }
}

async fn open(server: &Server) -> (Ws, String) {
    let cid = new_id();
    let ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    (ws, cid)
}

fn pid_alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

async fn gone_within(pid: i64, secs: u64) -> bool {
    for _ in 0..secs * 10 {
        if !pid_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn the_model_runs_cells_that_keep_state_show_tracebacks_and_images() {
    let llm = ScriptedLlm::start(vec![
        python("x = 6 * 7\nprint('x is', x)"),
        python("1 / 0"),
        python(&format!(
            "from IPython.display import Image, display\nimport base64\ndisplay(Image(data=base64.b64decode('{PNG}')))"
        )),
        python("x"),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let server = Server::start_with(Options {
        env: agent_env(&llm),
        ..Default::default()
    });
    let (mut ws, _cid) = open(&server).await;
    send_user_action(&mut ws, &message("compute in python")).await;
    let events = until_state(&mut ws, "finished").await;
    let system = events.iter().find(|e| e["action"] == "system").unwrap();
    let tools: Vec<&str> = system["args"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"execute_ipython_cell"), "{tools:?}");
    let cells: Vec<&Value> = events
        .iter()
        .filter(|e| e["observation"] == "run_ipython")
        .collect();
    assert_eq!(cells.len(), 4, "{events:?}");
    assert_eq!(cells[0]["content"], "x is 42");
    assert_eq!(cells[0]["extras"]["code"], "x = 6 * 7\nprint('x is', x)");
    assert_eq!(cells[0]["success"], true);
    let traceback = cells[1]["content"].as_str().unwrap();
    assert!(traceback.contains("ZeroDivisionError"), "{traceback}");
    assert!(
        traceback.contains("1 / 0"),
        "the traceback shows the line: {traceback}"
    );
    assert!(
        !traceback.contains('\u{1b}'),
        "ANSI stripped: {traceback:?}"
    );
    let url = format!("data:image/png;base64,{PNG}");
    assert_eq!(cells[2]["extras"]["image_urls"], json!([url]));
    assert!(cells[2]["content"]
        .as_str()
        .unwrap()
        .contains(&format!("![image]({url})")));
    assert_eq!(cells[3]["content"], "42", "state kept across cells");
    // What the model read: each cell's output as a tool result, images as a placeholder.
    let last = llm.requests().last().cloned().unwrap();
    let tool_texts: Vec<String> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(tool_texts.len(), 4, "{tool_texts:?}");
    assert_eq!(tool_texts[0], "x is 42");
    assert!(tool_texts[1].contains("ZeroDivisionError"));
    assert!(tool_texts[2].contains("already displayed to user") && !tool_texts[2].contains(PNG));
    assert_eq!(tool_texts[3], "42");
}

#[tokio::test]
async fn a_cell_past_its_timeout_is_interrupted_and_earlier_state_survives() {
    let server = Server::start();
    let (mut ws, _) = open(&server).await;
    let started = std::time::Instant::now();
    let mut slow = cell("import time\ny = 7\ntime.sleep(60)");
    slow["timeout"] = json!(2);
    let obs = act(&mut ws, &slow).await;
    let content = obs["content"].as_str().unwrap();
    assert!(content.contains("KeyboardInterrupt"), "{content}");
    assert!(content.contains("timed out (2 seconds)"), "{content}");
    assert!(started.elapsed() < Duration::from_secs(40));
    let obs = act(&mut ws, &cell("print(y)")).await;
    assert_eq!(obs["content"], "7");
}

#[tokio::test]
async fn stop_interrupts_the_running_cell() {
    let server = Server::start();
    let (mut ws, _) = open(&server).await;
    send_user_action(
        &mut ws,
        &cell("import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)"),
    )
    .await;
    let sent = next_event(&mut ws).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send_user_action(
        &mut ws,
        &json!({"action": "change_agent_state", "args": {"agent_state": "stopped"}}),
    )
    .await;
    let obs = loop {
        let e = tokio::time::timeout(Duration::from_secs(20), next_event(&mut ws))
            .await
            .expect("the cell was not interrupted");
        if e["cause"] == sent["id"] {
            break e;
        }
    };
    let content = obs["content"].as_str().unwrap();
    assert!(content.contains("interrupted by the user"), "{content}");
    assert!(content.contains("KeyboardInterrupt"), "{content}");
    assert!(!content.contains("599"), "it did not run to the end");
}

#[tokio::test]
async fn a_cell_that_kills_the_kernel_is_reported_and_the_next_cell_gets_a_fresh_kernel() {
    let server = Server::start();
    let (mut ws, _) = open(&server).await;
    act(&mut ws, &cell("z = 1")).await;
    let obs = act(&mut ws, &cell("import os\nos._exit(1)")).await;
    let content = obs["content"].as_str().unwrap();
    assert!(content.contains("kernel died"), "{content}");
    let obs = act(&mut ws, &cell("print('z' in dir())")).await;
    let content = obs["content"].as_str().unwrap();
    assert!(content.contains("had died"), "{content}");
    assert!(content.ends_with("False"), "a new kernel: {content}");
}

#[tokio::test]
async fn huge_output_is_cut_in_the_middle() {
    let server = Server::start();
    let (mut ws, _) = open(&server).await;
    let obs = act(&mut ws, &cell("print('HEAD' + 'x' * 6_000_000 + 'TAIL')")).await;
    let content = obs["content"].as_str().unwrap();
    assert!(content.len() < 3 * 1024 * 1024, "{}", content.len());
    assert!(content.starts_with("HEAD") && content.ends_with("TAIL"));
    assert!(content.contains("bytes of output were dropped"));
}

#[tokio::test]
async fn the_kernel_dies_with_its_conversation() {
    let server = Server::start();
    let (mut ws, cid) = open(&server).await;
    let obs = act(&mut ws, &cell("import os, subprocess\nchild = subprocess.Popen(['sleep', '300'])\nprint(os.getpid(), child.pid)")).await;
    let pids: Vec<i64> = obs["content"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| pid_alive(*p)));
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/conversations/{cid}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for pid in pids {
        assert!(
            gone_within(pid, 10).await,
            "process {pid} outlived its conversation"
        );
    }
}

#[tokio::test]
async fn a_restarted_server_starts_a_new_kernel_and_the_model_still_sees_earlier_cells() {
    let llm = ScriptedLlm::start(vec![
        python("import os\nsecret = 'abc123'\nprint(secret, os.getpid())"),
        call("finish", json!({"message": "stored"})),
        python("print('secret' in dir())"),
        call("finish", json!({"message": "checked"})),
    ])
    .await;
    let mut server = Server::start_with(Options {
        env: agent_env(&llm),
        ..Default::default()
    });
    let dir = server.dir.clone();
    let _keep = server.keep_dir();
    let (mut ws, cid) = open(&server).await;
    send_user_action(&mut ws, &message("remember a secret")).await;
    let events = until_state(&mut ws, "finished").await;
    let first = events
        .iter()
        .find(|e| e["observation"] == "run_ipython")
        .unwrap();
    let kernel_pid: i64 = first["content"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    drop(ws);
    assert!(server.sigterm().success());
    assert!(
        gone_within(kernel_pid, 10).await,
        "the kernel outlived the server"
    );
    let server = Server::start_with(Options {
        env: agent_env(&llm),
        dir: Some(dir),
        ..Default::default()
    });
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    send_user_action(&mut ws, &message("is it still there?")).await;
    let mut cells = Vec::new();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(60), next_payload(&mut ws))
            .await
            .expect("no answer after the restart");
        if p["observation"] == "run_ipython" {
            cells.push(p.clone());
        }
        if p["action"] == "finish" && p["args"]["final_thought"] == "checked" {
            break;
        }
    }
    assert_eq!(cells.last().unwrap()["content"], "False", "a new kernel");
    // The model's request after the restart still holds the first cell and its output.
    let requests = llm.requests();
    let after = &requests[2];
    let text = after["messages"].to_string();
    assert!(text.contains("secret = 'abc123'"), "{text}");
    assert!(text.contains("abc123 "), "{text}");
}

#[tokio::test]
async fn without_ipykernel_the_tool_is_not_offered_and_a_cell_says_how_to_enable_it() {
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("python3");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'No module named ipykernel' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let llm = ScriptedLlm::start(vec![call("finish", json!({"message": "ok"}))]).await;
    let mut env = agent_env(&llm);
    env.push((
        "PATH".into(),
        format!("{}:/usr/bin:/bin", bin.path().display()),
    ));
    let server = Server::start_with(Options {
        env,
        ..Default::default()
    });
    let (mut ws, _) = open(&server).await;
    let obs = act(&mut ws, &cell("print(1)")).await;
    assert_eq!(obs["observation"], "error");
    let content = obs["content"].as_str().unwrap();
    assert!(content.contains("pip install ipykernel"), "{content}");
    send_user_action(&mut ws, &message("hi")).await;
    let events = until_state(&mut ws, "finished").await;
    let system = events.iter().find(|e| e["action"] == "system").unwrap();
    assert!(!system["args"]["tools"]
        .to_string()
        .contains("execute_ipython_cell"));
    let tools = llm.requests()[0]["tools"].to_string();
    assert!(tools.contains("execute_bash") && !tools.contains("execute_ipython_cell"));
}

#[tokio::test]
async fn the_kernel_dies_with_a_server_killed_without_cleanup() {
    let mut server = Server::start();
    let (mut ws, _) = open(&server).await;
    let obs = act(&mut ws, &cell("import os\nprint(os.getpid())")).await;
    let pid: i64 = obs["content"].as_str().unwrap().trim().parse().unwrap();
    assert!(pid_alive(pid));
    server.sigkill();
    assert!(
        gone_within(pid, 10).await,
        "the kernel outlived a SIGKILLed server"
    );
}

#[tokio::test]
async fn the_kernel_runs_in_the_conversations_sandbox() {
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().display().to_string();
    let server = Server::start_with(Options {
        env: vec![
            ("HOME".into(), home_path.clone()),
            ("SANDBOX_MODE".into(), "workspace-write".into()),
        ],
        ..Default::default()
    });
    let (mut ws, cid) = open(&server).await;
    let bashrc = home.path().join(".bashrc");
    let code = format!(
        "import os\nopen('inside.txt', 'w').write('ok')\ntry:\n    open({:?}, 'a').write('pwned')\n    print('WROTE')\nexcept OSError as e:\n    print('DENIED', e.errno)\ntry:\n    os.listdir({:?})\n    print('STORE VISIBLE', os.listdir({:?}))\nexcept OSError:\n    print('STORE HIDDEN')",
        bashrc.display().to_string(),
        server.dir.join("store").display().to_string(),
        server.dir.join("store").display().to_string(),
    );
    let obs = act(&mut ws, &cell(&code)).await;
    let out = obs["content"].as_str().unwrap();
    assert!(out.contains("DENIED"), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
    assert!(!bashrc.exists());
    // The store is an empty directory to the kernel (its own workspace is bound back).
    assert!(
        out.contains("STORE VISIBLE") && !out.contains("openhands.db")
            || out.contains("STORE HIDDEN"),
        "{out}"
    );
    let inside = server
        .dir
        .join("store/workspaces")
        .join(&cid)
        .join("inside.txt");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "ok");
}

#[tokio::test]
async fn without_the_network_cells_are_refused_with_the_reason() {
    let server = Server::start_with(Options {
        env: vec![("SANDBOX_NETWORK".into(), "off".into())],
        ..Default::default()
    });
    let (mut ws, _) = open(&server).await;
    let obs = act(&mut ws, &cell("print(1)")).await;
    assert_eq!(obs["observation"], "error", "{obs}");
    assert!(obs["content"].as_str().unwrap().contains("network = off"));
}
