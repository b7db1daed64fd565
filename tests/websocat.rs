//! The seeds' `websocat` examples, byte for byte: one text frame, then Close at once.

mod common;
use common::*;

#[tokio::test]
async fn connect_prints_open_and_connect_ack_then_closes_every_time() {
    let server = Server::start();
    for _ in 0..40 {
        let cid = new_id();
        let frames = websocat_oneshot(
            server.port,
            &format!("conversation_id={cid}&latest_event_id=-1"),
            "40{}",
        )
        .await;
        let texts: Vec<&str> = frames.iter().flatten().map(String::as_str).collect();
        assert!(texts.len() >= 2, "{frames:?}");
        assert!(texts[0].starts_with("0{\"sid\":"), "{frames:?}");
        assert!(texts[1].starts_with("40{\"sid\":"), "{frames:?}");
        assert_eq!(
            frames.last(),
            Some(&None),
            "server must answer the Close: {frames:?}"
        );
    }
}

#[tokio::test]
async fn websocat_with_a_trailing_newline_connects_too() {
    let server = Server::start();
    let frames = websocat_oneshot(
        server.port,
        &format!("conversation_id={}&latest_event_id=-1", new_id()),
        "40{}\n",
    )
    .await;
    assert!(
        frames
            .iter()
            .flatten()
            .any(|t| t.starts_with("40{\"sid\":")),
        "{frames:?}"
    );
}

#[tokio::test]
async fn one_shot_user_action_without_connect_is_stored() {
    let server = Server::start();
    let cid = new_id();
    for i in 0..10 {
        let frame = format!(
            r#"42["oh_user_action",{{"type":"message","source":"user","message":"Hello, agent! {i}"}}]"#
        );
        let frames = websocat_oneshot(
            server.port,
            &format!("conversation_id={cid}&latest_event_id=-1"),
            &frame,
        )
        .await;
        let texts: Vec<&str> = frames.iter().flatten().map(String::as_str).collect();
        assert!(texts[0].starts_with("0{"), "{frames:?}");
        assert!(
            texts[1].starts_with("40{\"sid\":"),
            "implicit connect acks: {frames:?}"
        );
    }
    // The start-up states, ten messages and, after the first, the agent's "no LLM
    // configured" state.
    let events = wait_events(&server, &cid, 3 + 11).await;
    assert_eq!(events.len(), 3 + 11);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], i as u64);
    }
    let messages: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["action"] == "message").collect();
    assert_eq!(messages.len(), 10);
    for (i, e) in messages.iter().enumerate() {
        assert_eq!(e["source"], "user");
        assert_eq!(e["args"]["content"], format!("Hello, agent! {i}"));
    }
}

#[tokio::test]
async fn one_shot_connect_replays_stored_events_to_a_persistent_client() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let frame = r#"42["oh_user_action",{"type":"message","source":"user","message":"Can you help me with my project?"}]"#;
    websocat_oneshot(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
        frame,
    )
    .await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["message"], "Can you help me with my project?");
    assert_eq!(e["id"], STARTUP_EVENTS);
}
