//! Output as it happens (`stream_output=true`): commands', cells' and the model's output
//! on `oh_output` before the stored result, bounded, in order, and nothing for clients
//! that did not ask.

mod common;
#[path = "common/llm.rs"]
#[allow(dead_code)]
mod llm;

use common::*;
use futures::{SinkExt, StreamExt};
use llm::{Reply, ScriptedLlm};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// One frame a Socket.IO client got: a stored event, a notice, or live output.
#[derive(Debug, Clone)]
enum Got {
    Event(Value),
    Notice,
    Output(Value),
}

/// The next `oh_event` or `oh_output` frame.
async fn next_got(ws: &mut Ws) -> Got {
    loop {
        let t = next_text(ws).await;
        let Some(json) = t.strip_prefix("42") else {
            continue;
        };
        let v: Value = serde_json::from_str(json).expect("json");
        let payload = v[1].clone();
        return match v[0].as_str() {
            Some("oh_output") => Got::Output(payload),
            Some("oh_event") if payload["id"].is_u64() => Got::Event(payload),
            Some("oh_event") => Got::Notice,
            other => panic!("unexpected event name {other:?}"),
        };
    }
}

/// Everything until the observation of action `action_id` (inclusive).
async fn until_observation(ws: &mut Ws, action_id: u64) -> Vec<Got> {
    let mut got = Vec::new();
    loop {
        let g = next_got(ws).await;
        let done = matches!(&g, Got::Event(e) if e["cause"] == action_id);
        got.push(g);
        if done {
            return got;
        }
    }
}

/// Sends a `run` action and returns its stored id (skipping what comes before it).
async fn run(ws: &mut Ws, command: &str) -> (u64, Vec<Got>) {
    send_user_action(
        ws,
        &json!({"action": "run", "args": {"command": command, "blocking": true}}),
    )
    .await;
    let mut before = Vec::new();
    loop {
        let g = next_got(ws).await;
        if let Got::Event(e) = &g {
            if e["action"] == "run" {
                let id = e["id"].as_u64().unwrap();
                before.push(g);
                return (id, before);
            }
        }
        before.push(g);
    }
}

/// The output messages of one action, checked for order: seq 1, 2, … without gaps or
/// repeats; returns them.
fn outputs_of(got: &[Got], action_id: u64) -> Vec<Value> {
    let outs: Vec<Value> = got
        .iter()
        .filter_map(|g| match g {
            Got::Output(o) if o["action_id"] == action_id => Some(o.clone()),
            _ => None,
        })
        .collect();
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(o["seq"], i as u64 + 1, "seq in order, no repeats: {outs:?}");
    }
    outs
}

fn text_of(outs: &[Value]) -> String {
    outs.iter()
        .map(|o| o["chunk"].as_str().unwrap().to_string())
        .collect()
}

const SLOW: &str = "for i in 1 2 3 4; do echo line$i; sleep 0.4; done";

#[tokio::test]
async fn a_running_command_streams_its_output_before_its_observation() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    let started = Instant::now();
    let (id, _) = run(&mut ws, SLOW).await;
    let mut got = Vec::new();
    let mut first_output_at = None;
    loop {
        let g = next_got(&mut ws).await;
        if matches!(&g, Got::Output(o) if o["action_id"] == id && o["chunk"].as_str().unwrap().contains("line1"))
        {
            first_output_at.get_or_insert(started.elapsed());
        }
        let done = matches!(&g, Got::Event(e) if e["cause"] == id);
        got.push(g);
        if done {
            break;
        }
    }
    let ended_at = started.elapsed();
    let first = first_output_at.expect("line1 streamed");
    assert!(
        ended_at - first > Duration::from_millis(900),
        "the first line came {first:?}, the end {ended_at:?}"
    );
    let outs = outputs_of(&got, id);
    assert!(outs.len() >= 3, "several chunks as lines appear: {outs:?}");
    assert_eq!(outs.last().unwrap()["done"], true);
    // The observation is the whole result, unchanged; the stream carried the same text.
    let Some(Got::Event(obs)) = got.last() else {
        panic!("observation last")
    };
    assert_eq!(obs["content"], "line1\nline2\nline3\nline4\n");
    assert_eq!(text_of(&outs), "line1\nline2\nline3\nline4\n", "{outs:?}");
    assert_eq!(outs[0]["kind"], "command");
}

#[tokio::test]
async fn a_client_without_the_flag_sees_exactly_the_stored_events() {
    let server = Server::start();
    let cid = new_id();
    let mut streaming = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    let mut plain = ws_ready(server.port, &format!("conversation_id={cid}")).await;
    let (id, _) = run(&mut streaming, SLOW).await;
    let with = until_observation(&mut streaming, id).await;
    assert!(!outputs_of(&with, id).is_empty());
    // The plain client: from the action to its observation, stored events only.
    let mut without = Vec::new();
    loop {
        let t = next_text(&mut plain).await;
        assert!(
            !t.contains("oh_output"),
            "no live output without the flag: {t}"
        );
        if let Some(json) = t.strip_prefix("42[\"oh_event\",") {
            let v: Value = serde_json::from_str(&json[..json.len() - 1]).unwrap();
            let done = v["cause"] == id;
            if v["id"].as_u64().is_some_and(|e| e >= id) {
                without.push(v);
            }
            if done {
                break;
            }
        }
    }
    let stored_with: Vec<Value> = with
        .iter()
        .filter_map(|g| match g {
            Got::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let without_ids: Vec<u64> = without.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    let with_ids: Vec<u64> = stored_with
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .filter(|i| *i > id)
        .collect();
    assert_eq!(&without_ids[1..], &with_ids[..]);
    assert_eq!(without.last(), stored_with.last());
    // Nothing more trickles in for the plain client after the observation.
    let more = tokio::time::timeout(Duration::from_millis(500), next_text(&mut plain)).await;
    if let Ok(t) = more {
        assert!(!t.contains("oh_output"), "{t}");
    }
}

#[tokio::test]
async fn a_client_joining_mid_command_gets_the_output_so_far_then_the_rest_once() {
    let server = Server::start();
    let cid = new_id();
    let mut first = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    let (id, _) = run(
        &mut first,
        "for i in 1 2 3 4 5 6; do echo part$i; sleep 0.3; done",
    )
    .await;
    // Wait until some output was produced, then join (replaying everything).
    loop {
        if let Got::Output(o) = next_got(&mut first).await {
            if o["chunk"].as_str().unwrap().contains("part2") {
                break;
            }
        }
    }
    let mut late = ws_connect(
        server.port,
        &format!("conversation_id={cid}&stream_output=true&latest_event_id=-1"),
    )
    .await;
    let got = until_observation(&mut late, id).await;
    // No output before its action was delivered.
    let action_at = got
        .iter()
        .position(|g| matches!(g, Got::Event(e) if e["id"] == id))
        .expect("action replayed");
    assert!(got[..action_at]
        .iter()
        .all(|g| !matches!(g, Got::Output(_))));
    // The output so far came right after the action (before anything live), the rest
    // followed, each seq once, and together they are the whole output.
    let outs = outputs_of(&got, id);
    assert!(matches!(&got[action_at + 1], Got::Output(o) if o["seq"] == 1));
    assert!(outs.len() >= 2, "{outs:?}");
    let Some(Got::Event(obs)) = got.last() else {
        panic!()
    };
    assert_eq!(text_of(&outs), obs["content"].as_str().unwrap());
    assert_eq!(obs["content"], "part1\npart2\npart3\npart4\npart5\npart6\n");
}

#[tokio::test]
async fn a_flood_of_output_is_bounded_in_rate_and_size_and_the_server_stays_responsive() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    let pid = server.child.id();
    let started = Instant::now();
    // About 50 MB as fast as the terminal takes it, then a tight printing loop.
    let (id, _) = run(
        &mut ws,
        "yes 'a hostile line of output' | head -c 50000000; i=0; while [ $i -lt 200000 ]; do echo $i; i=$((i+1)); done",
    )
    .await;
    let client = http();
    let url = server.url("/api/options/config");
    let mut slowest = Duration::ZERO;
    let mut peak_rss = 0;
    let mut outs = Vec::new();
    let mut observation = None;
    let mut probe = tokio::time::interval(Duration::from_millis(250));
    while observation.is_none() {
        tokio::select! {
            g = next_got(&mut ws) => match g {
                Got::Output(o) => outs.push(Got::Output(o)),
                Got::Event(e) if e["cause"] == id => observation = Some(e),
                _ => {}
            },
            _ = probe.tick() => {
                let t = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                slowest = slowest.max(t.elapsed());
                peak_rss = peak_rss.max(rss_kib(pid));
            }
        }
    }
    let took = started.elapsed();
    let obs = observation.unwrap();
    assert!(obs["content"]
        .as_str()
        .unwrap()
        .contains("bytes of output were dropped"));
    let outs = outputs_of(&outs, id);
    // At most one message per 50 ms (plus the first and the last), each chunk bounded.
    let allowed = (took.as_millis() / 50) as usize + 3;
    assert!(outs.len() <= allowed, "{} messages in {took:?}", outs.len());
    for o in &outs {
        let chunk = o["chunk"].as_str().unwrap();
        assert!(
            chunk.len() <= 16 * 1024 + 64,
            "chunk of {} bytes",
            chunk.len()
        );
    }
    assert!(
        outs.iter()
            .any(|o| o["chunk"].as_str().unwrap().starts_with("[... ")),
        "skipped output is said"
    );
    let streamed = text_of(&outs);
    assert!(
        streamed.ends_with("199998\n199999\n"),
        "the newest output is streamed"
    );
    assert_eq!(outs.last().unwrap()["done"], true);
    assert!(
        slowest < Duration::from_secs(2),
        "a request took {slowest:?}"
    );
    assert!(peak_rss < 400 * 1024, "the server grew to {peak_rss} KiB");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_raw_ws_endpoint_streams_output_with_the_flag() {
    let server = Server::start();
    let cid = new_id();
    let url = format!(
        "ws://127.0.0.1:{}/ws?conversation_id={cid}&stream_output=true",
        server.port
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let cmd = json!({"action": "run", "args": {"command": SLOW, "blocking": true}});
    ws.send(Message::Text(cmd.to_string().into()))
        .await
        .unwrap();
    let mut chunks = String::new();
    let mut action = None;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["action"] == "run" {
            action = v["id"].as_u64();
        }
        if let Some(o) = v.get("oh_output") {
            assert_eq!(o["action_id"].as_u64(), action, "output after its action");
            chunks.push_str(o["chunk"].as_str().unwrap());
        }
        if action.is_some() && v["cause"].as_u64() == action {
            assert_eq!(v["content"], chunks);
            break;
        }
    }
    assert_eq!(chunks, "line1\nline2\nline3\nline4\n");
}

#[tokio::test]
async fn bad_flag_values_mean_no_streaming() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=%00yes%22"),
    )
    .await;
    let (id, _) = run(&mut ws, "echo a; sleep 0.3; echo b").await;
    let got = until_observation(&mut ws, id).await;
    assert!(got.iter().all(|g| !matches!(g, Got::Output(_))), "{got:?}");
}

#[tokio::test]
async fn the_models_answer_streams_as_it_is_written_and_the_stored_message_is_whole() {
    let words = ["Let ", "me ", "think ", "about ", "this."];
    let mut chunks: Vec<Value> = words
        .iter()
        .map(|w| json!({"id": "s1", "choices": [{"delta": {"content": w}}]}))
        .collect();
    chunks.push(
        json!({"id": "s1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}}),
    );
    let llm = ScriptedLlm::start(vec![Reply::SsePaced(chunks, Duration::from_millis(200))]).await;
    let server = Server::with_env(&[
        ("LLM_MODEL", "openai/scripted-model"),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_BASE_URL", llm.base_url.as_str()),
    ]);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    send_user_action(&mut ws, &message("hello")).await;
    let mut thoughts = Vec::new();
    let answer = loop {
        match next_got(&mut ws).await {
            Got::Output(o) => {
                assert_eq!(o["kind"], "thought");
                thoughts.push(o);
            }
            Got::Event(e) if e["source"] == "agent" && e["action"] == "message" => break e,
            _ => {}
        }
    };
    assert_eq!(answer["args"]["content"], "Let me think about this.");
    assert!(thoughts.len() >= 3, "pieces as they came: {thoughts:?}");
    let text: String = thoughts
        .iter()
        .map(|o| o["chunk"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "Let me think about this.");
    assert!(thoughts[0]["after"].as_u64().unwrap() < answer["id"].as_u64().unwrap());
    assert_eq!(thoughts.last().unwrap()["done"], true);
    assert_eq!(llm.requests()[0]["stream"], true);
}

/// Anthropic's events for an answer: `text` in the given pieces, then (when `command` is
/// set) an `execute_bash` call whose input arrives in pieces of 4 characters.
fn anthropic_events(id: &str, pieces: &[&str], command: Option<&str>) -> Vec<Value> {
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": "claude-test", "content": [], "stop_reason": null, "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    for piece in pieces {
        events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}));
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    if let Some(command) = command {
        events.push(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "execute_bash", "input": {}}}));
        let input = json!({"command": command, "security_risk": "LOW"}).to_string();
        let chars: Vec<char> = input.chars().collect();
        for part in chars.chunks(4) {
            let part: String = part.iter().collect();
            events.push(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}}));
        }
        events.push(json!({"type": "content_block_stop", "index": 1}));
    }
    let stop = if command.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 12}}));
    events.push(json!({"type": "message_stop"}));
    events
}

#[tokio::test]
async fn an_anthropic_models_answer_streams_as_it_is_written_and_its_tool_call_is_whole() {
    let words = ["Let ", "me ", "look ", "around."];
    let llm = ScriptedLlm::start(vec![
        Reply::AnthropicSsePaced(
            anthropic_events("msg_1", &words, Some("echo from-a-stream")),
            Duration::from_millis(150),
        ),
        Reply::AnthropicSsePaced(
            anthropic_events("msg_2", &["All ", "done."], None),
            Duration::from_millis(20),
        ),
    ])
    .await;
    let base = llm.base_url.trim_end_matches("/v1").to_string();
    let server = Server::with_env(&[
        ("LLM_MODEL", "anthropic/claude-test"),
        ("LLM_API_KEY", "ant-key"),
        ("LLM_BASE_URL", &base),
    ]);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    send_user_action(&mut ws, &message("look around")).await;
    let mut thoughts = Vec::new();
    let run = loop {
        match next_got(&mut ws).await {
            Got::Output(o) => {
                assert_eq!(o["kind"], "thought");
                thoughts.push(o);
            }
            Got::Event(e) if e["source"] == "agent" && e["action"] == "run" => break e,
            _ => {}
        }
    };
    assert_eq!(run["args"]["command"], "echo from-a-stream");
    assert_eq!(run["args"]["thought"], "Let me look around.");
    let text: String = thoughts
        .iter()
        .map(|o| o["chunk"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "Let me look around.");
    assert!(thoughts.len() >= 3, "pieces as they came: {thoughts:?}");
    assert!(thoughts[0]["after"].as_u64().unwrap() < run["id"].as_u64().unwrap());
    let metadata = &run["tool_call_metadata"]["model_response"];
    assert_eq!(
        metadata["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        json!({"command": "echo from-a-stream", "security_risk": "LOW"}).to_string()
    );
    assert_eq!(metadata["usage"]["completion_tokens"], 12);
    let answer = loop {
        if let Got::Event(e) = next_got(&mut ws).await {
            if e["source"] == "agent" && e["action"] == "message" {
                break e;
            }
        }
    };
    assert_eq!(answer["args"]["content"], "All done.");
    let requests = llm.requests();
    assert_eq!(requests[0]["stream"], true);
    assert_eq!(requests[0]["model"], "claude-test");
    assert_eq!(llm.headers(0)["x-api-key"], "ant-key");
    let result = &requests[1]["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert!(result["content"]
        .as_str()
        .unwrap()
        .contains("from-a-stream"));
}

#[tokio::test]
async fn an_anthropic_stream_cut_short_is_an_error_the_user_sees_not_a_hang() {
    let mut events = anthropic_events("msg_1", &["Half ", "an "], None);
    events.truncate(events.len() - 3);
    let llm = ScriptedLlm::start(vec![Reply::AnthropicSsePaced(
        events,
        Duration::from_millis(10),
    )])
    .await;
    let base = llm.base_url.trim_end_matches("/v1").to_string();
    let server = Server::with_env(&[
        ("LLM_MODEL", "anthropic/claude-test"),
        ("LLM_API_KEY", "ant-key"),
        ("LLM_BASE_URL", &base),
    ]);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    send_user_action(&mut ws, &message("hello")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut thoughts = String::new();
    let error = loop {
        assert!(Instant::now() < deadline, "no error reported");
        match next_got(&mut ws).await {
            Got::Output(o) => thoughts.push_str(o["chunk"].as_str().unwrap_or("")),
            Got::Event(e) => {
                let agent_message = e["source"] == "agent" && e["action"] == "message";
                assert!(!agent_message, "no answer from half a stream: {e}");
                if e["observation"] == "agent_state_changed"
                    && e["extras"]["agent_state"] == "error"
                {
                    break e;
                }
            }
            Got::Notice => {}
        }
    };
    let reason = error["extras"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("message_stop"), "{error}");
    assert_eq!(thoughts, "Half an ", "what was written was shown");
    assert_eq!(
        llm.requests().len(),
        1,
        "an unreadable answer is not asked again"
    );
}

#[tokio::test]
async fn without_a_watching_client_the_model_is_asked_without_streaming() {
    let llm = ScriptedLlm::start(vec![llm::text("Plain answer.")]).await;
    let server = Server::with_env(&[
        ("LLM_MODEL", "openai/scripted-model"),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_BASE_URL", llm.base_url.as_str()),
    ]);
    let cid = new_id();
    let mut ws = ws_ready(server.port, &format!("conversation_id={cid}")).await;
    send_user_action(&mut ws, &message("hello")).await;
    loop {
        let t = next_text(&mut ws).await;
        assert!(!t.contains("oh_output"));
        if t.contains("Plain answer.") {
            break;
        }
    }
    assert!(llm.requests()[0].get("stream").is_none());
}

#[tokio::test]
async fn a_python_cell_streams_what_it_prints() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&stream_output=true"),
    )
    .await;
    let code =
        "import time\nfor i in range(4):\n    print('cell', i, flush=True)\n    time.sleep(0.4)";
    send_user_action(
        &mut ws,
        &json!({"action": "run_ipython", "args": {"code": code}}),
    )
    .await;
    let id = loop {
        if let Got::Event(e) = next_got(&mut ws).await {
            if e["action"] == "run_ipython" {
                break e["id"].as_u64().unwrap();
            }
        }
    };
    let got = until_observation(&mut ws, id).await;
    let outs = outputs_of(&got, id);
    assert!(outs.len() >= 3, "{outs:?}");
    assert_eq!(outs[0]["kind"], "ipython");
    assert_eq!(text_of(&outs), "cell 0\ncell 1\ncell 2\ncell 3\n");
    let Some(Got::Event(obs)) = got.last() else {
        panic!()
    };
    assert!(obs["content"]
        .as_str()
        .unwrap()
        .starts_with("cell 0\ncell 1\ncell 2\ncell 3"));
}
