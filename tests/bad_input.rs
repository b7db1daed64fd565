//! Bad input on a live conversation: the sender gets a clear error, nobody else is
//! hurt, and the conversation goes on.

mod common;
use common::*;
use futures::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn expect_error(ws: &mut Ws) -> String {
    let p = next_payload(ws).await;
    assert_eq!(p["error"], true, "{p}");
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error", "message"], "{p}");
    let m = p["message"].as_str().unwrap().to_string();
    assert!(!m.is_empty());
    m
}

#[tokio::test]
async fn malformed_frames_get_error_events_and_the_conversation_goes_on() {
    let server = Server::start();
    let cid = new_id();
    let q = format!("conversation_id={cid}&latest_event_id=-1");
    let mut sender = ws_ready(server.port, &q).await;
    let mut bystander = ws_ready(server.port, &q).await;
    let frames = [
        r#"42["oh_user_action",{"action":"message""#,
        "42not json at all",
        r#"42["oh_user_action","just a string"]"#,
        r#"42["oh_user_action",[1,2,3]]"#,
        r#"42["oh_user_action"]"#,
        r#"42["oh_user_action",{"action":"no_such_action","args":{}}]"#,
        r#"42["oh_user_action",{"action":"message","args":"notanobject"}]"#,
        r#"42["oh_user_action",{"action":"message","args":{}}]"#,
        r#"42["oh_user_action",{"observation":"run","content":"x"}]"#,
        r#"42["oh_user_action",{"foo":1}]"#,
        r#"42["not_an_event",{}]"#,
        r#"42{"event":"object"}"#,
        r#"42[42,{}]"#,
        "4zzz",
        "4é",
        r#"451-["oh_user_action",{"_placeholder":true,"num":0}]"#,
    ];
    for f in frames {
        sender.send(Message::Text(f.into())).await.unwrap();
        let m = expect_error(&mut sender).await;
        assert!(!m.contains("panicked"), "{f}: {m}");
    }
    // The binary attachment announced above is swallowed; a stray binary frame is refused.
    sender
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    sender
        .send(Message::Binary(vec![4, 5, 6].into()))
        .await
        .unwrap();
    expect_error(&mut sender).await;
    // A 5 MB message is refused with a clear error.
    let huge = serde_json::json!(["oh_user_action", message(&"a".repeat(5 * 1024 * 1024))]);
    sender
        .send(Message::Text(format!("42{huge}").into()))
        .await
        .unwrap();
    let m = expect_error(&mut sender).await;
    assert!(m.contains("too large"), "{m}");
    // The conversation goes on: the next valid message is the next event.
    send_user_action(&mut sender, &message("still here")).await;
    let e = next_event(&mut sender).await;
    assert_eq!(
        (e["id"].as_u64(), e["args"]["content"].as_str()),
        (Some(STARTUP_EVENTS), Some("still here"))
    );
    // The bystander saw that event (and perhaps the title update), never an error.
    loop {
        let p = next_payload(&mut bystander).await;
        assert!(
            p.get("error").is_none(),
            "bystander must not see errors: {p}"
        );
        if p["id"] == STARTUP_EVENTS {
            break;
        }
        assert_eq!(p["status_update"], true, "{p}");
    }
    // An unknown event with an ack id is still acked (empty).
    sender
        .send(Message::Text(r#"4217["oh_user_action",{"foo":1}]"#.into()))
        .await
        .unwrap();
    // (The title update and the agent's state event may come first.)
    let mut ack = next_text(&mut sender).await;
    while ack.starts_with("42[\"oh_event\"") && !ack.contains("\"error\":true") {
        ack = next_text(&mut sender).await;
    }
    assert_eq!(ack, "4317[]");
}

#[tokio::test]
async fn frames_too_big_for_the_transport_close_only_that_socket() {
    let server = Server::start();
    let cid = new_id();
    let q = format!("conversation_id={cid}&latest_event_id=-1");
    let mut bystander = ws_ready(server.port, &q).await;
    let mut sender = ws_ready(server.port, &q).await;
    let _ = sender
        .send(Message::Text("4".repeat(11_000_000).into()))
        .await;
    // The sender's transport is closed…
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match futures::StreamExt::next(&mut sender).await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok());
    // …and everyone else carries on.
    send_user_action(&mut bystander, &message("fine")).await;
    assert_eq!(next_event(&mut bystander).await["id"], STARTUP_EVENTS);
}

#[tokio::test]
async fn connect_errors_are_clean() {
    let server = Server::start();
    let frames = websocat_oneshot(server.port, "latest_event_id=-1", "40{}").await;
    assert!(
        frames
            .iter()
            .flatten()
            .any(|t| t == r#"44{"message":"No conversation_id in query params"}"#),
        "{frames:?}"
    );
    let frames = websocat_oneshot(server.port, "conversation_id=../etc", "40{}").await;
    assert!(
        frames
            .iter()
            .flatten()
            .any(|t| t == r#"44{"message":"Invalid conversation_id"}"#),
        "{frames:?}"
    );
    let frames = websocat_oneshot(
        server.port,
        &format!("conversation_id={}&providers_set=github,nope", new_id()),
        "40{}",
    )
    .await;
    assert!(
        frames
            .iter()
            .flatten()
            .any(|t| t.starts_with(r#"44{"message":"Invalid provider"#)),
        "{frames:?}"
    );
    let frames = websocat_oneshot(
        server.port,
        &format!("conversation_id={}", new_id()),
        "40/admin,{}",
    )
    .await;
    assert!(
        frames
            .iter()
            .flatten()
            .any(|t| t == r#"44/admin,{"message":"Invalid namespace"}"#),
        "{frames:?}"
    );
    // Non-integer latest_event_id counts as -1.
    let frames = websocat_oneshot(
        server.port,
        &format!("conversation_id={}&latest_event_id=abc", new_id()),
        "40",
    )
    .await;
    assert!(
        frames.iter().flatten().any(|t| t.starts_with("40{\"sid\"")),
        "{frames:?}"
    );
    // Engine.IO errors on HTTP are JSON 400s.
    let r = http()
        .get(server.url("/socket.io/?EIO=3&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http()
        .get(server.url("/socket.io/?EIO=4&transport=polling&sid=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Session ID unknown");
}
