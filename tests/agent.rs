//! The agent against a scripted OpenAI-compatible (or Anthropic) LLM: the production
//! code talks HTTP to a server this test runs.

mod common;
#[path = "common/llm.rs"]
mod llm;

use common::*;
use llm::{call, text, tool_calls, Reply, ScriptedLlm};
use serde_json::{json, Value};
use std::time::Duration;

fn agent_server(llm: &ScriptedLlm, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("LLM_MODEL", "openai/scripted-model"),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_BASE_URL", llm.base_url.as_str()),
        ("LLM_NUM_RETRIES", "3"),
        ("LLM_RETRY_MIN_WAIT", "0.05"),
        ("LLM_RETRY_MAX_WAIT", "0.2"),
        ("LLM_RETRY_MULTIPLIER", "0.05"),
        ("SANDBOX_NO_CHANGE_TIMEOUT", "5"),
    ];
    env.extend_from_slice(extra);
    Server::with_env(&env)
}

/// Everything (stored events and notices) until an agent state in `until` arrives.
async fn until_state(ws: &mut Ws, until: &[&str]) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(20), next_payload(ws))
            .await
            .expect("agent took too long");
        let state = p["extras"]["agent_state"].as_str().map(str::to_string);
        let done = p["observation"] == "agent_state_changed"
            && state.as_deref().is_some_and(|s| until.contains(&s));
        seen.push(p);
        if done {
            return seen;
        }
    }
}

/// Everything until an agent action that waits for confirmation. The state
/// `awaiting_user_confirmation` comes first: the OpenHands UI shows its Confirm and Reject
/// buttons only when the awaiting action arrives in that state.
async fn until_awaiting_action(ws: &mut Ws) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(20), next_payload(ws))
            .await
            .expect("no action awaiting confirmation");
        let done = p["args"]["confirmation_state"] == "awaiting_confirmation";
        seen.push(p);
        if done {
            assert_eq!(
                states(&seen).last().map(String::as_str),
                Some("awaiting_user_confirmation"),
                "{seen:?}"
            );
            return seen;
        }
    }
}

fn states(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["observation"] == "agent_state_changed")
        .map(|e| e["extras"]["agent_state"].as_str().unwrap().to_string())
        .collect()
}

fn of_kind<'a>(events: &'a [Value], key: &str, kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e[key] == kind).collect()
}

/// Opens a new conversation as the OpenHands UI does: connect, wait until the agent says
/// it is ready (loading, then awaiting_user_input), then send the first message.
/// The server again on the store in `dir`, with the scripted LLM.
fn restart(llm: &ScriptedLlm, dir: std::path::PathBuf) -> Server {
    Server::start_with(Options {
        env: vec![
            ("LLM_MODEL".into(), "openai/scripted-model".into()),
            ("LLM_API_KEY".into(), "sk-test".into()),
            ("LLM_BASE_URL".into(), llm.base_url.clone()),
        ],
        dir: Some(dir),
        ..Default::default()
    })
}

async fn start(server: &Server, message: &str) -> (Ws, String) {
    let cid = new_id();
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let startup = until_state(&mut ws, &["awaiting_user_input"]).await;
    assert_eq!(states(&startup), ["loading", "awaiting_user_input"]);
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": message}}),
    )
    .await;
    (ws, cid)
}

#[tokio::test]
async fn the_agent_runs_a_command_reads_its_output_and_finishes() {
    let llm = ScriptedLlm::start(vec![
        tool_calls(
            Some("Let me check."),
            &[(
                "execute_bash",
                json!({"command": "echo hello-agent", "security_risk": "LOW"}),
            )],
        ),
        call(
            "finish",
            json!({"message": "The command printed hello-agent."}),
        ),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, cid) = start(&server, "Say hello from the shell").await;
    let events = until_state(&mut ws, &["finished"]).await;
    assert_eq!(states(&events), ["running", "finished"]);
    let system = of_kind(&events, "action", "system");
    assert_eq!(system.len(), 1);
    assert!(system[0]["args"]["tools"].as_array().unwrap().len() >= 6);
    let run = of_kind(&events, "action", "run")[0];
    assert_eq!(run["source"], "agent");
    assert_eq!(run["args"]["command"], "echo hello-agent");
    assert_eq!(run["args"]["thought"], "Let me check.");
    assert_eq!(run["tool_call_metadata"]["function_name"], "execute_bash");
    assert_eq!(
        run["llm_metrics"]["accumulated_token_usage"]["prompt_tokens"],
        100
    );
    let obs = of_kind(&events, "observation", "run")[0];
    assert_eq!(obs["cause"], run["id"]);
    assert_eq!(obs["content"], "hello-agent\n");
    assert_eq!(
        obs["tool_call_metadata"]["tool_call_id"],
        run["tool_call_metadata"]["tool_call_id"]
    );
    let finish = of_kind(&events, "action", "finish")[0];
    assert_eq!(
        finish["args"]["final_thought"],
        "The command printed hello-agent."
    );
    // The model saw the output as a tool message with the same call id.
    let second = &llm.requests()[1];
    assert_eq!(second["model"], "scripted-model");
    let msgs = second["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(
        msgs[1],
        json!({"role": "user", "content": "Say hello from the shell"})
    );
    assert_eq!(
        msgs[2]["tool_calls"][0]["id"],
        run["tool_call_metadata"]["tool_call_id"]
    );
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(
        msgs[3]["tool_call_id"],
        run["tool_call_metadata"]["tool_call_id"]
    );
    assert!(msgs[3]["content"].as_str().unwrap().contains("hello-agent"));
    assert_eq!(llm.headers(0)["authorization"], "Bearer sk-test");
    // Ids are dense and the stored events match what was delivered.
    let stored = wait_events(&server, &cid, 8).await;
    let ids: Vec<u64> = stored.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn plain_text_waits_for_the_user_and_the_next_message_continues() {
    let llm = ScriptedLlm::start(vec![
        text("Which file should I look at?"),
        call("finish", json!({"message": "ok"})),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "Fix the bug").await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    let msg = of_kind(&events, "action", "message")
        .into_iter()
        .find(|m| m["source"] == "agent")
        .unwrap();
    assert_eq!(msg["args"]["content"], "Which file should I look at?");
    assert_eq!(msg["args"]["wait_for_response"], true);
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "main.py"}}),
    )
    .await;
    until_state(&mut ws, &["finished"]).await;
    let msgs = llm.requests()[1]["messages"].as_array().unwrap().clone();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments_go_back_to_the_model() {
    let llm = ScriptedLlm::start(vec![
        call("teleport", json!({})),
        Reply::Json(json!({"id": "x1", "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [{"id": "bad1", "type": "function", "function": {"name": "execute_bash", "arguments": "{not json"}}]}}]})),
        call("str_replace_editor", json!({"command": "view"})),
        call("finish", json!({"message": "gave up"})),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "do it").await;
    let events = until_state(&mut ws, &["finished"]).await;
    let errors = of_kind(&events, "observation", "error");
    assert_eq!(errors.len(), 3, "{events:#?}");
    assert!(errors[0]["content"].as_str().unwrap().contains("teleport"));
    assert!(errors[1]["content"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    assert!(errors[2]["content"].as_str().unwrap().contains("path"));
    let reqs = llm.requests();
    let last = reqs[3]["messages"].as_array().unwrap();
    let tool_msgs: Vec<&Value> = last.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_msgs.len(), 3);
    assert!(tool_msgs[0]["content"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
}

#[tokio::test]
async fn several_tool_calls_in_one_response_run_in_order() {
    let llm = ScriptedLlm::start(vec![
        tool_calls(
            Some("Plan first."),
            &[
                ("think", json!({"thought": "I will write then read."})),
                ("str_replace_editor", json!({"command": "create", "path": "notes.txt", "file_text": "one\n", "security_risk": "LOW"})),
                ("execute_bash", json!({"command": "cat notes.txt", "security_risk": "LOW"})),
                ("task_tracker", json!({"command": "plan", "task_list": [{"id": "1", "title": "Write notes", "status": "done"}]})),
            ],
        ),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "write notes").await;
    let events = until_state(&mut ws, &["finished"]).await;
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| e["source"] == "agent" && e.get("action").is_some())
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["system", "think", "edit", "run", "task_tracking", "finish"]
    );
    let think = of_kind(&events, "action", "think")[0];
    assert_eq!(think["args"]["thought"], "I will write then read.");
    let edit_obs = of_kind(&events, "observation", "edit")[0];
    assert_eq!(edit_obs["extras"]["new_content"], "one\n");
    assert_eq!(
        of_kind(&events, "observation", "run")[0]["content"],
        "one\n"
    );
    let tasks = of_kind(&events, "observation", "task_tracking")[0];
    assert_eq!(tasks["extras"]["task_list"][0]["title"], "Write notes");
    assert_eq!(
        of_kind(&events, "observation", "think")[0]["content"],
        "Your thought has been logged."
    );
    let second = llm.requests()[1]["messages"].as_array().unwrap().clone();
    assert_eq!(second.iter().filter(|m| m["role"] == "tool").count(), 4);
}

#[tokio::test]
async fn rate_limits_are_retried_with_status_updates() {
    let llm = ScriptedLlm::start(vec![
        Reply::Status(500, json!({"error": {"message": "internal"}}), None),
        Reply::Status(429, json!({"error": {"message": "slow down"}}), Some(0.1)),
        text("Back again."),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "hi").await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    let retries: Vec<&Value> = events
        .iter()
        .filter(|e| e["id"] == "STATUS$LLM_RETRY")
        .collect();
    assert_eq!(retries.len(), 2, "{events:?}");
    assert_eq!(retries[0]["message"], "Retrying LLM request, 1 / 3");
    assert_eq!(
        states(&events),
        ["running", "rate_limited", "running", "awaiting_user_input"]
    );
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test]
async fn a_rejected_key_ends_in_error_with_the_reason() {
    let llm = ScriptedLlm::start(vec![Reply::Status(
        401,
        json!({"error": {"message": "Incorrect API key provided"}}),
        None,
    )])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "hi").await;
    let events = until_state(&mut ws, &["error"]).await;
    let status = events
        .iter()
        .find(|e| e["status_update"] == true && e["type"] == "error")
        .unwrap();
    assert_eq!(status["id"], "STATUS$ERROR_LLM_AUTHENTICATION");
    let err = events.last().unwrap();
    assert!(
        err["extras"]["reason"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key"),
        "{err}"
    );
    assert_eq!(
        llm.requests().len(),
        1,
        "authentication errors are not retried"
    );
}

#[tokio::test]
async fn without_an_llm_a_message_gets_a_clear_error() {
    let server = Server::start();
    let (mut ws, _) = start(&server, "hi").await;
    let events = until_state(&mut ws, &["error"]).await;
    let reason = events.last().unwrap()["extras"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("LLM_MODEL") && reason.contains("Settings"),
        "{reason}"
    );
    assert!(events
        .iter()
        .any(|e| e["status_update"] == true && e["type"] == "error"));
    // Everything else keeps working.
    send_user_action(
        &mut ws,
        &json!({"action": "run", "args": {"command": "echo still-works"}}),
    )
    .await;
    loop {
        let e = next_event(&mut ws).await;
        if e["observation"] == "run" {
            assert_eq!(e["content"], "still-works\n");
            break;
        }
    }
}

#[tokio::test]
async fn stop_interrupts_a_slow_llm_call() {
    let llm = ScriptedLlm::start(vec![Reply::Delay(
        Duration::from_secs(3),
        Box::new(call(
            "execute_bash",
            json!({"command": "touch should-not-exist", "security_risk": "LOW"}),
        )),
    )])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, cid) = start(&server, "slow").await;
    until_state(&mut ws, &["running"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_user_action(
        &mut ws,
        &json!({"action": "change_agent_state", "args": {"agent_state": "stopped"}}),
    )
    .await;
    until_state(&mut ws, &["stopped"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored = wait_events(&server, &cid, 1).await;
    assert!(!stored.iter().any(|e| e["action"] == "run"), "{stored:?}");
    assert!(!server
        .dir
        .join("store/workspaces")
        .join(&cid)
        .join("should-not-exist")
        .exists());
}

#[tokio::test]
async fn confirmation_mode_waits_for_confirm_or_reject() {
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "touch confirmed.txt", "security_risk": "HIGH"}),
        ),
        call(
            "execute_bash",
            json!({"command": "touch rejected.txt", "security_risk": "HIGH"}),
        ),
        text("Understood."),
    ])
    .await;
    let server = agent_server(&llm, &[("SECURITY_CONFIRMATION_MODE", "true")]);
    let (mut ws, cid) = start(&server, "make files").await;
    let ws_dir = server.dir.join("store/workspaces").join(&cid);
    let events = until_awaiting_action(&mut ws).await;
    let pending = of_kind(&events, "action", "run")[0];
    assert_eq!(
        pending["args"]["confirmation_state"],
        "awaiting_confirmation"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !ws_dir.join("confirmed.txt").exists(),
        "nothing runs before confirmation"
    );
    send_user_action(
        &mut ws,
        &json!({"action": "change_agent_state", "args": {"agent_state": "user_confirmed"}}),
    )
    .await;
    let events = until_awaiting_action(&mut ws).await;
    let confirmed = of_kind(&events, "action", "run")[0];
    assert_eq!(confirmed["args"]["confirmation_state"], "confirmed");
    assert_ne!(confirmed["id"], pending["id"]);
    assert!(ws_dir.join("confirmed.txt").exists());
    send_user_action(
        &mut ws,
        &json!({"action": "change_agent_state", "args": {"agent_state": "user_rejected"}}),
    )
    .await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    assert_eq!(of_kind(&events, "observation", "user_rejected").len(), 1);
    assert!(!ws_dir.join("rejected.txt").exists());
}

#[tokio::test]
async fn the_iteration_limit_ends_in_error_and_a_message_continues() {
    let llm = ScriptedLlm::start(vec![
        call("think", json!({"thought": "1"})),
        call("think", json!({"thought": "2"})),
        call("finish", json!({"message": "after more"})),
    ])
    .await;
    let server = agent_server(&llm, &[("MAX_ITERATIONS", "2")]);
    let (mut ws, _) = start(&server, "loop").await;
    let events = until_state(&mut ws, &["error"]).await;
    assert!(events.last().unwrap()["extras"]["reason"]
        .as_str()
        .unwrap()
        .contains("maximum iteration"));
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "go on"}}),
    )
    .await;
    until_state(&mut ws, &["finished"]).await;
}

#[tokio::test]
async fn anthropic_models_speak_the_messages_api() {
    let llm = ScriptedLlm::start(vec![
        Reply::Json(json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "execute_bash", "input": {"command": "echo from-claude", "security_risk": "LOW"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 20, "output_tokens": 7}})),
        Reply::Json(json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-test", "content": [{"type": "text", "text": "All good."}], "stop_reason": "end_turn", "usage": {"input_tokens": 30, "output_tokens": 3}})),
    ])
    .await;
    let base = llm.base_url.trim_end_matches("/v1").to_string();
    let server = Server::with_env(&[
        ("LLM_MODEL", "anthropic/claude-test"),
        ("LLM_API_KEY", "ant-key"),
        ("LLM_BASE_URL", &base),
    ]);
    let (mut ws, _) = start(&server, "hi claude").await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    assert_eq!(
        of_kind(&events, "observation", "run")[0]["content"],
        "from-claude\n"
    );
    assert_eq!(llm.headers(0)["x-api-key"], "ant-key");
    let reqs = llm.requests();
    assert_eq!(reqs[0]["model"], "claude-test");
    assert!(reqs[0]["system"].as_str().unwrap().contains("OpenHands"));
    assert!(reqs[0]["tools"][0]["input_schema"].is_object());
    let msgs = reqs[1]["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_1");
}

#[tokio::test]
async fn streamed_completions_work_too() {
    let llm = ScriptedLlm::start(vec![Reply::Sse(vec![
        json!({"id": "s1", "choices": [{"delta": {"role": "assistant", "content": "Streamed "}}]}),
        json!({"id": "s1", "choices": [{"delta": {"content": "answer."}}]}),
        json!({"id": "s1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}),
    ])])
    .await;
    let server = agent_server(&llm, &[("LLM_STREAM", "true")]);
    let (mut ws, _) = start(&server, "stream please").await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    let msg = of_kind(&events, "action", "message")
        .into_iter()
        .find(|m| m["source"] == "agent")
        .unwrap();
    assert_eq!(msg["args"]["content"], "Streamed answer.");
    assert_eq!(llm.requests()[0]["stream"], true);
}

#[tokio::test]
async fn a_message_sent_while_the_agent_works_is_seen_at_its_next_step() {
    let llm = ScriptedLlm::start(vec![
        Reply::Delay(
            Duration::from_millis(800),
            Box::new(call("think", json!({"thought": "hmm"}))),
        ),
        text("Got both."),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "first").await;
    until_state(&mut ws, &["running"]).await;
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "second, while you work"}}),
    )
    .await;
    until_state(&mut ws, &["awaiting_user_input"]).await;
    let reqs = llm.requests();
    assert_eq!(reqs.len(), 2);
    let users: Vec<&str> = reqs[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["first", "second, while you work"]);
}

#[tokio::test]
async fn the_llm_titles_the_conversation_unless_the_user_renamed_it() {
    let llm = ScriptedLlm::start(vec![text("Hello!")]).await;
    let server = agent_server(&llm, &[]);
    let (mut ws, cid) = start(
        &server,
        "Please help me refactor the parser module for speed",
    )
    .await;
    let mut titles = Vec::new();
    while titles.len() < 2 {
        let p = next_payload(&mut ws).await;
        if let Some(t) = p["conversation_title"].as_str() {
            // The OpenHands UI refetches the conversation whose id is in `message`.
            assert_eq!(
                p,
                json!({"status_update": true, "type": "info", "message": cid, "conversation_title": t})
            );
            titles.push(t.to_string());
        }
    }
    assert_eq!(
        titles,
        ["Please help me refactor the pa...", "Scripted title"]
    );
    let info: Value = http()
        .get(server.url(&format!("/api/conversations/{cid}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["title"], "Scripted title");
    assert_eq!(llm.title_requests().len(), 1);
}

#[tokio::test]
async fn the_agent_creates_views_and_edits_a_file() {
    let llm = ScriptedLlm::start(vec![
        call("str_replace_editor", json!({"command": "create", "path": "/workspace/app.py", "file_text": "print('one')\n", "security_risk": "LOW"})),
        call("str_replace_editor", json!({"command": "view", "path": "/workspace/app.py", "security_risk": "LOW"})),
        call("str_replace_editor", json!({"command": "str_replace", "path": "/workspace/app.py", "old_str": "one", "new_str": "two", "security_risk": "LOW"})),
        call("execute_bash", json!({"command": "python3 app.py", "security_risk": "LOW"})),
        call("finish", json!({"message": "It prints two."})),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, cid) = start(&server, "make app.py print two").await;
    let events = until_state(&mut ws, &["finished"]).await;
    assert_eq!(
        of_kind(&events, "observation", "run")[0]["content"],
        "two\n"
    );
    let file = server
        .dir
        .join("store/workspaces")
        .join(&cid)
        .join("app.py");
    assert_eq!(std::fs::read_to_string(file).unwrap(), "print('two')\n");
    let reqs = llm.requests();
    let viewed = reqs[2]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(viewed["role"], "tool");
    assert!(
        viewed["content"]
            .as_str()
            .unwrap()
            .contains("     1\tprint('one')"),
        "{viewed}"
    );
    let edited = reqs[3]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        edited["content"]
            .as_str()
            .unwrap()
            .contains("has been edited"),
        "{edited}"
    );
}

#[tokio::test]
async fn a_huge_output_is_whole_for_clients_and_cut_for_the_model() {
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "python3 -c \"print('y' * 150000)\"", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let server = agent_server(&llm, &[("LLM_MAX_MESSAGE_CHARS", "10000")]);
    let (mut ws, _) = start(&server, "print a lot").await;
    let events = until_state(&mut ws, &["finished"]).await;
    assert_eq!(
        of_kind(&events, "observation", "run")[0]["content"]
            .as_str()
            .unwrap()
            .len(),
        150_001
    );
    let tool = llm.requests()[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let content = tool["content"].as_str().unwrap();
    assert!(content.len() < 11_000, "{}", content.len());
    assert!(content.contains("characters omitted"));
}

#[tokio::test]
async fn a_stuck_loop_ends_in_error() {
    let same = || {
        call(
            "execute_bash",
            json!({"command": "echo same", "security_risk": "LOW"}),
        )
    };
    let llm = ScriptedLlm::start(vec![same(), same(), same(), same(), same(), same()]).await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "loop forever").await;
    let events = until_state(&mut ws, &["error"]).await;
    assert_eq!(
        events.last().unwrap()["extras"]["reason"],
        "AgentStuckInLoopError: Agent got stuck in a loop"
    );
    assert_eq!(of_kind(&events, "action", "run").len(), 4);
}

#[tokio::test]
async fn stop_during_a_long_command_leaves_no_process() {
    let marker = format!("sleep 77{}", std::process::id() % 1000 + 1000);
    let llm = ScriptedLlm::start(vec![call(
        "execute_bash",
        json!({"command": format!("{marker} & {marker}"), "timeout": 120, "security_risk": "LOW"}),
    )])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "wait a long time").await;
    loop {
        let p = next_payload(&mut ws).await;
        if p["action"] == "run" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    send_user_action(
        &mut ws,
        &json!({"action": "change_agent_state", "args": {"agent_state": "stopped"}}),
    )
    .await;
    until_state(&mut ws, &["stopped"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "processes survived: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn a_restarted_server_continues_the_conversation_with_its_history() {
    let llm = ScriptedLlm::start(vec![text("First answer."), text("Second answer.")]).await;
    let mut server = agent_server(&llm, &[]);
    let dir = server.dir.clone();
    let _keep = server.keep_dir();
    let (mut ws, cid) = start(&server, "first question").await;
    until_state(&mut ws, &["awaiting_user_input"]).await;
    drop(ws);
    assert!(server.sigterm().success());
    let server = restart(&llm, dir);
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "second question"}}),
    )
    .await;
    // The reopened conversation goes loading -> awaiting_user_input again, then answers.
    let mut reopened = Vec::new();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(20), next_payload(&mut ws))
            .await
            .expect("no second answer");
        if p["observation"] == "agent_state_changed" {
            reopened.push(p["extras"]["agent_state"].as_str().unwrap().to_string());
        }
        if p["action"] == "message" && p["args"]["content"] == "Second answer." {
            break;
        }
    }
    assert_eq!(
        reopened,
        [
            "loading",
            "awaiting_user_input",
            "running",
            "awaiting_user_input",
            "loading",
            "awaiting_user_input",
            "running"
        ]
    );
    let msgs = llm.requests()[1]["messages"].as_array().unwrap().clone();
    let turns: Vec<(String, String)> = msgs[1..]
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        [
            ("user".to_string(), "first question".to_string()),
            ("assistant".to_string(), "First answer.".to_string()),
            ("user".to_string(), "second question".to_string())
        ]
    );
}

#[tokio::test]
async fn a_context_length_error_condenses_the_history_and_goes_on() {
    let llm = ScriptedLlm::start(vec![
        call("think", json!({"thought": "a"})),
        call("think", json!({"thought": "b"})),
        call("think", json!({"thought": "c"})),
        Reply::Status(
            400,
            json!({"error": {"message": "This model's maximum context length is 8192 tokens."}}),
            None,
        ),
        call("finish", json!({"message": "fit"})),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "think a lot").await;
    let events = until_state(&mut ws, &["finished"]).await;
    let condensation = of_kind(&events, "action", "condensation");
    assert_eq!(condensation.len(), 1);
    // The forgotten steps were summarised by the model, and the summary is stored.
    let asked = llm.summary_requests();
    assert_eq!(asked.len(), 1);
    let forgotten = asked[0]["messages"][1]["content"].as_str().unwrap();
    assert!(forgotten.contains("think"), "{forgotten}");
    assert_eq!(
        condensation[0]["args"]["summary"],
        "Scripted summary: thoughts a and b."
    );
    let reqs = llm.requests();
    let before = reqs[3]["messages"].as_array().unwrap().len();
    let after = reqs[4]["messages"].as_array().unwrap();
    assert!(after.len() < before, "{} !< {before}", after.len());
    assert!(after.iter().any(|m| m["content"]
        .as_str()
        .unwrap_or("")
        .contains("Scripted summary: thoughts a and b.")));
}

#[tokio::test]
async fn the_raw_ws_endpoint_starts_a_task_and_streams_events() {
    let llm = ScriptedLlm::start(vec![
        call("str_replace_editor", json!({"command": "create", "path": "hello.sh", "file_text": "#!/bin/bash\necho hello\n", "security_risk": "LOW"})),
        call("execute_bash", json!({"command": "bash hello.sh", "security_risk": "LOW"})),
        call("finish", json!({"message": "hello.sh prints hello"})),
    ])
    .await;
    // No LLM in the environment: `initialize` sets it for this connection.
    let server = Server::start();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", server.port))
            .await
            .unwrap();
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut next = async || -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    };
    let hello = next().await;
    assert_eq!(hello["status"], "ok");

    ws.send(Message::Text("{not json".into())).await.unwrap();
    ws.send(Message::Text(json!({"action": "initialize", "args": {"LLM_MODEL": "openai/scripted-model", "LLM_API_KEY": "k", "LLM_BASE_URL": llm.base_url}}).to_string().into())).await.unwrap();
    ws.send(Message::Text(
        r#"{"action": "start", "args": {"task": "write a bash script that prints hello"}}"#.into(),
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        let done = v["extras"]["agent_state"] == "finished";
        seen.push(v);
        if done {
            break;
        }
    }
    // The conversation's start-up states stream in too; the replies keep their order.
    let replies: Vec<&Value> = seen
        .iter()
        .filter(|v| {
            v["observation"] != "agent_state_changed" && v["action"] != "change_agent_state"
        })
        .collect();
    assert_eq!(
        *replies[0],
        json!({"error": true, "message": "Invalid JSON"})
    );
    assert_eq!(replies[1]["action"], "initialize");
    assert_eq!(states(&seen)[..2], ["loading", "awaiting_user_input"]);
    let task = seen.iter().find(|e| e["action"] == "message").unwrap();
    assert_eq!(
        task["args"]["content"],
        "write a bash script that prints hello"
    );
    let run = seen.iter().find(|e| e["observation"] == "run").unwrap();
    assert_eq!(run["content"], "hello\n");
}

#[tokio::test]
async fn two_steps_alternating_are_a_stuck_loop_too() {
    let a = || {
        call(
            "execute_bash",
            json!({"command": "echo ping", "security_risk": "LOW"}),
        )
    };
    let b = || {
        call(
            "execute_bash",
            json!({"command": "echo pong", "security_risk": "LOW"}),
        )
    };
    let llm = ScriptedLlm::start(vec![a(), b(), a(), b(), a(), b(), a(), b()]).await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "ping pong").await;
    let events = until_state(&mut ws, &["error"]).await;
    assert_eq!(
        events.last().unwrap()["extras"]["reason"],
        "AgentStuckInLoopError: Agent got stuck in a loop"
    );
    assert_eq!(of_kind(&events, "action", "run").len(), 6);
}

#[tokio::test]
async fn the_same_answer_three_times_is_a_stuck_loop() {
    let llm = ScriptedLlm::start(vec![
        text("I cannot."),
        text("I cannot."),
        text("I cannot."),
    ])
    .await;
    let server = agent_server(&llm, &[]);
    let (mut ws, _) = start(&server, "do it").await;
    until_state(&mut ws, &["awaiting_user_input"]).await;
    for _ in 0..2 {
        send_user_action(
            &mut ws,
            &json!({"action": "message", "args": {"content": "please"}}),
        )
        .await;
        let events = until_state(&mut ws, &["awaiting_user_input", "error"]).await;
        if events.last().unwrap()["extras"]["agent_state"] == "error" {
            assert_eq!(
                events.last().unwrap()["extras"]["reason"],
                "AgentStuckInLoopError: Agent got stuck in a loop"
            );
            return;
        }
    }
    panic!("three identical answers were not detected");
}

#[tokio::test]
async fn microagents_give_the_model_repository_instructions_and_triggered_knowledge() {
    let workspace = tempfile::tempdir().unwrap();
    let m = workspace.path().join(".openhands/microagents");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("repo.md"),
        "Always run `make check` before finishing.\n",
    )
    .unwrap();
    std::fs::write(
        m.join("docker.md"),
        "---\nname: docker\ntriggers:\n- docker\n---\nThis machine uses podman, not docker.\n",
    )
    .unwrap();
    std::fs::write(m.join("broken.md"), "---\ntriggers: [x]\nnever closed\n").unwrap();
    let llm = ScriptedLlm::start(vec![text("Noted."), text("Fine.")]).await;
    let ws_path = workspace.path().display().to_string();
    let server = agent_server(&llm, &[("WORKSPACE_BASE", ws_path.as_str())]);
    let (mut ws, _) = start(&server, "Please build the Docker image").await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    // A malformed file is a notice naming it, and the conversation goes on.
    assert!(events
        .iter()
        .any(|p| p["error"] == true && p["message"].as_str().unwrap_or("").contains("broken.md")));
    let recall = of_kind(&events, "action", "recall");
    assert_eq!(recall.len(), 1);
    assert_eq!(recall[0]["source"], "user");
    assert_eq!(recall[0]["args"]["recall_type"], "workspace_context");
    let obs = of_kind(&events, "observation", "recall")[0];
    assert_eq!(obs["cause"], recall[0]["id"]);
    assert_eq!(
        obs["extras"]["repo_instructions"],
        "Always run `make check` before finishing."
    );
    assert_eq!(
        obs["extras"]["microagent_knowledge"][0]["trigger"],
        "docker"
    );
    assert_eq!(obs["extras"]["microagent_knowledge"][0]["name"], "docker");
    // The model got both, with the first message.
    let first = llm.requests()[0]["messages"].to_string();
    assert!(
        first.contains("make check") && first.contains("uses podman"),
        "{first}"
    );
    // A message without a trigger word adds nothing.
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "and now the tests"}}),
    )
    .await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    assert!(of_kind(&events, "action", "recall").is_empty());
    assert_eq!(
        llm.requests()[1]["messages"]
            .to_string()
            .matches("uses podman")
            .count(),
        1,
        "the knowledge is in the history once"
    );
}

#[tokio::test]
async fn the_users_own_microagents_are_triggered_in_any_workspace() {
    let user = tempfile::tempdir().unwrap();
    std::fs::write(
        user.path().join("deploy.md"),
        "---\nname: deploy\ntriggers: [deploy]\n---\nDeploys go through `make ship`.\n",
    )
    .unwrap();
    let llm = ScriptedLlm::start(vec![text("Noted."), text("Shipping.")]).await;
    let dir = user.path().display().to_string();
    let server = agent_server(&llm, &[("USER_MICROAGENTS_DIR", dir.as_str())]);
    let (mut ws, _) = start(&server, "hello").await;
    until_state(&mut ws, &["awaiting_user_input"]).await;
    assert!(!llm.requests()[0]["messages"]
        .to_string()
        .contains("make ship"));
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "Please deploy it"}}),
    )
    .await;
    let events = until_state(&mut ws, &["awaiting_user_input"]).await;
    let obs = of_kind(&events, "observation", "recall");
    assert_eq!(obs.len(), 1);
    assert_eq!(
        obs[0]["extras"]["microagent_knowledge"][0]["name"],
        "deploy"
    );
    assert!(llm.requests()[1]["messages"]
        .to_string()
        .contains("Deploys go through `make ship`."));
}

#[tokio::test]
async fn a_users_condensation_request_summarises_at_once_and_survives_a_restart() {
    let llm = ScriptedLlm::start(vec![
        call("think", json!({"thought": "a"})),
        call("think", json!({"thought": "b"})),
        call("think", json!({"thought": "c"})),
        call("finish", json!({"message": "done"})),
        text("Continuing from the summary."),
    ])
    .await;
    let mut server = agent_server(&llm, &[]);
    let dir = server.dir.clone();
    let _keep = server.keep_dir();
    let (mut ws, cid) = start(&server, "think a lot").await;
    until_state(&mut ws, &["finished"]).await;
    send_user_action(
        &mut ws,
        &json!({"action": "condensation_request", "args": {}}),
    )
    .await;
    // The agent is idle: the condensation is stored without waiting for a message.
    let condensation = loop {
        let e = next_stored_event(&mut ws).await;
        if e["action"] == "condensation" {
            break e;
        }
    };
    assert_eq!(condensation["source"], "agent");
    assert_eq!(
        condensation["args"]["summary"],
        "Scripted summary: thoughts a and b."
    );
    assert_eq!(llm.summary_requests().len(), 1);
    drop(ws);
    assert!(server.sigterm().success());

    // After a restart the model still gets the summary instead of the forgotten steps.
    let server = restart(&llm, dir);
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    send_user_action(
        &mut ws,
        &json!({"action": "message", "args": {"content": "go on"}}),
    )
    .await;
    // (The replay holds earlier states: wait for the answer itself.)
    loop {
        let e = next_stored_event(&mut ws).await;
        if e["args"]["content"] == "Continuing from the summary." {
            break;
        }
    }
    let reqs = llm.requests();
    let before = reqs[3]["messages"].as_array().unwrap().len();
    let last = reqs.last().unwrap()["messages"].as_array().unwrap().clone();
    let text = serde_json::to_string(&last).unwrap();
    assert!(
        text.contains("Scripted summary: thoughts a and b."),
        "{text}"
    );
    assert!(
        last.len() < before + 2,
        "{} messages after condensing, {before} before",
        last.len()
    );
}

#[tokio::test]
async fn the_history_is_condensed_once_it_passes_the_configured_size() {
    let mut script: Vec<Reply> = (0..8)
        .map(|i| call("think", json!({"thought": format!("step {i}")})))
        .collect();
    script.push(call("finish", json!({"message": "done"})));
    let llm = ScriptedLlm::start(script).await;
    let server = agent_server(&llm, &[("CONDENSER_MAX_SIZE", "8")]);
    let (mut ws, _) = start(&server, "think in steps").await;
    let events = until_state(&mut ws, &["finished"]).await;
    let condensations = of_kind(&events, "action", "condensation");
    assert!(!condensations.is_empty(), "no condensation");
    assert!(condensations[0]["args"]["summary"].is_string());
    // No request ever carried more than the configured size and a few new events.
    for r in llm.requests() {
        let n = r["messages"].as_array().unwrap().len();
        assert!(n <= 8 + 4, "{n} messages");
    }
}
