//! Restarts keep every conversation and every event; ids continue densely.

mod common;
use common::*;

async fn send_n(server: &Server, cid: &str, from: usize, n: usize) -> Vec<String> {
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let mut seen = Vec::new();
    for i in from..from + n {
        send_user_action(&mut ws, &message(&format!("m{i}"))).await;
    }
    // Read until our last message comes back (replay of older ones comes first).
    loop {
        let t = next_event_text(&mut ws).await;
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        seen.push(t);
        if v["args"]["content"] == format!("m{}", from + n - 1) {
            return seen;
        }
    }
}

async fn replay_all(server: &Server, cid: &str, n: usize) -> Vec<String> {
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next_event_text(&mut ws).await);
    }
    out
}

#[tokio::test]
async fn sigkill_loses_no_event_a_client_has_seen() {
    let mut server = Server::start();
    let dir = server.dir.clone();
    let _keep = server.keep_dir();
    let cid = new_id();
    let seen = send_n(&server, &cid, 0, 50).await;
    server.sigkill();
    let server = Server::start_with(Options {
        dir: Some(dir.clone()),
        ..Default::default()
    });
    let replayed = replay_all(&server, &cid, seen.len()).await;
    assert_eq!(
        replayed, seen,
        "every event seen before SIGKILL is replayed, byte-identical"
    );
    // (The agent's state event may have been stored after the last message.)
    let stored = wait_events(&server, &cid, seen.len()).await;
    let before = stored.last().unwrap()["id"].as_u64().unwrap();
    let more = send_n(&server, &cid, 50, 1).await;
    let last: serde_json::Value = serde_json::from_str(more.last().unwrap()).unwrap();
    assert_dense_after(&server, &cid, &last, before).await;
}

/// `last` came after id `before`, and every stored id up to it is there once, in order
/// (the reopened conversation's start-up states come between).
async fn assert_dense_after(server: &Server, cid: &str, last: &serde_json::Value, before: u64) {
    let last_id = last["id"].as_u64().unwrap();
    assert!(last_id > before, "ids continue after a restart");
    let all = wait_events(server, cid, last_id as usize + 1).await;
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["id"], i as u64, "ids continue densely after a restart");
    }
}

#[tokio::test]
async fn sigterm_keeps_conversations_and_events() {
    let mut server = Server::start();
    let dir = server.dir.clone();
    let _keep = server.keep_dir();
    let client = http();
    let r: serde_json::Value = client
        .post(server.url("/api/conversations"))
        .json(&serde_json::json!({"initial_user_msg": "start here"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = r["conversation_id"].as_str().unwrap().to_string();
    let seen = send_n(&server, &cid, 1, 20).await;
    let stored_before = id_of(seen.last().unwrap()) as usize + 1;
    let status = server.sigterm();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let server = Server::start_with(Options {
        dir: Some(dir),
        ..Default::default()
    });
    let list: serde_json::Value = client
        .get(server.url("/api/conversations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["results"][0]["conversation_id"], cid.as_str());
    assert_eq!(list["results"][0]["status"], "STOPPED");
    let events = wait_events(&server, &cid, stored_before).await;
    // Everything seen, plus perhaps the agent's state events stored after it (its
    // start-up states may come after the messages, then its "no LLM" error state).
    assert!(
        (stored_before..=stored_before + 3).contains(&events.len()),
        "{}",
        events.len()
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], i as u64);
    }
    // The initial message follows the `loading` state stored as the conversation opened.
    assert_eq!(events[0]["extras"]["agent_state"], "loading");
    assert_eq!(events[1]["args"]["content"], "start here");
    let more = send_n(&server, &cid, 100, 1).await;
    let last: serde_json::Value = serde_json::from_str(more.last().unwrap()).unwrap();
    assert_dense_after(&server, &cid, &last, events.len() as u64 - 1).await;
}
