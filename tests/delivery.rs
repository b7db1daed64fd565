//! Delivery rules: replay after latest_event_id, live fan-out, byte-identical JSON,
//! no gaps or duplicates under concurrent appends, and slow readers.

mod common;
use common::*;
use futures::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn user_message_is_stored_with_the_exact_reference_shape() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    send_user_action(&mut ws, &serde_json::json!({"action":"message","args":{"content":"Hello, build me a todo app","image_urls":[],"file_urls":[],"timestamp":"2025-10-10T12:00:00.000Z"}})).await;
    let text = next_event_text(&mut ws).await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ts = v["timestamp"].as_str().unwrap().to_string();
    assert_eq!(ts.len(), 26, "naive local time with microseconds: {ts}");
    assert_ne!(ts, "2025-10-10T12:00:00.000Z", "server time wins");
    let expected = format!(
        r#"{{"id":3,"timestamp":"{ts}","source":"user","message":"Hello, build me a todo app","action":"message","args":{{"content":"Hello, build me a todo app","file_urls":[],"image_urls":[],"wait_for_response":false,"security_risk":-1}}}}"#
    );
    assert_eq!(text, expected);
}

#[tokio::test]
async fn reconnect_with_latest_event_id_gets_exactly_the_missed_events_then_live_ones() {
    let server = Server::start();
    let cid = new_id();
    let q = format!("conversation_id={cid}&latest_event_id=-1");
    let mut a = ws_ready(server.port, &q).await;
    let live = send_messages(&mut a, "m", 10).await;
    let last = id_of(live.last().unwrap());
    let mut b = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=4"),
    )
    .await;
    for expected in live.iter().filter(|e| id_of(e) > 4) {
        let got = next_event_text(&mut b).await;
        assert_eq!(
            &got, expected,
            "replayed events must be byte-identical to the live ones"
        );
    }
    send_user_action(&mut a, &message("after")).await;
    // Then the live ones, in order: "after" (and the agent's state event, which may
    // come before or after it).
    let mut next_id = last + 1;
    loop {
        let e = next_stored_event(&mut b).await;
        assert_eq!(e["id"], next_id, "{e}");
        next_id += 1;
        if e["args"]["content"] == "after" {
            break;
        }
    }
    // Nothing else arrives (no duplicate).
    let extra = tokio::time::timeout(Duration::from_millis(300), next_event_text(&mut b)).await;
    assert!(extra.is_err(), "unexpected extra event: {extra:?}");
}

#[tokio::test]
async fn twenty_clients_connecting_during_appends_each_see_a_dense_sequence() {
    let server = Server::start();
    let cid = new_id();
    let total = 400u64;
    let writer = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let (mut writer, mut writer_rx) = futures::StreamExt::split(writer);
    // The writer reads what it is sent (as websocat does), so it is never reset.
    tokio::spawn(async move { while futures::StreamExt::next(&mut writer_rx).await.is_some() {} });
    let port = server.port;
    let cid2 = cid.clone();
    let writer_task = tokio::spawn(async move {
        for i in 0..total {
            let frame = format!(
                "42{}",
                serde_json::json!(["oh_user_action", message(&format!("e{i}"))])
            );
            writer.send(Message::Text(frame.into())).await.unwrap();
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        writer
    });
    let mut readers = Vec::new();
    for r in 0..20u64 {
        let cid = cid2.clone();
        readers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(r * 7)).await;
            // Random-ish K between -1 and what is probably stored by now.
            let k: i64 = (r as i64 * 37 % 90) - 1;
            let mut ws =
                ws_connect(port, &format!("conversation_id={cid}&latest_event_id={k}")).await;
            let mut ids = Vec::new();
            loop {
                let e =
                    match tokio::time::timeout(Duration::from_secs(5), next_stored_event(&mut ws))
                        .await
                    {
                        Ok(e) => e,
                        Err(_) => panic!("client K={k} stalled after {:?}", ids.last()),
                    };
                let id = e["id"].as_u64().unwrap();
                ids.push(id);
                if id == total - 1 + STARTUP_EVENTS {
                    break;
                }
            }
            (k, ids)
        }));
    }
    let _writer = writer_task.await.unwrap();
    for r in readers {
        let (k, ids) = r.await.unwrap();
        let expected: Vec<u64> = ((k + 1) as u64..total + STARTUP_EVENTS).collect();
        assert_eq!(ids, expected, "client with K={k} saw a gap or a duplicate");
    }
}

#[tokio::test]
async fn a_slow_reader_still_gets_every_event_in_order() {
    let server = Server::start();
    let cid = new_id();
    let q = format!("conversation_id={cid}&latest_event_id=-1");
    let mut slow = ws_connect(server.port, &q).await;
    let writer = ws_connect(server.port, &q).await;
    let (mut writer, mut writer_rx) = futures::StreamExt::split(writer);
    // The writer reads what it is sent, so only `slow` lags.
    tokio::spawn(async move { while futures::StreamExt::next(&mut writer_rx).await.is_some() {} });
    let big = "x".repeat(2000);
    let total = 3000u64;
    for i in 0..total {
        let frame = format!(
            "42{}",
            serde_json::json!(["oh_user_action", message(&format!("{i} {big}"))])
        );
        writer.feed(Message::Text(frame.into())).await.unwrap();
    }
    writer.flush().await.unwrap();
    // The slow client has not read anything yet; the writer's events must all be stored
    // (with the agent's state event after the first message).
    let all = (total + STARTUP_EVENTS) as usize + 1;
    let stored = wait_events(&server, &cid, all).await;
    assert_eq!(stored.len(), all);
    for i in 0..all as u64 {
        let e = next_stored_event(&mut slow).await;
        assert_eq!(e["id"], i, "slow reader: gap or reorder");
    }
}

#[tokio::test]
async fn events_reach_every_client_of_the_conversation_and_no_other() {
    let server = Server::start();
    let (a, b) = (new_id(), new_id());
    let mut a1 = ws_connect(
        server.port,
        &format!("conversation_id={a}&latest_event_id=-1"),
    )
    .await;
    let mut a2 = ws_connect(
        server.port,
        &format!("conversation_id={a}&latest_event_id=-1"),
    )
    .await;
    let mut b1 = ws_connect(
        server.port,
        &format!("conversation_id={b}&latest_event_id=-1"),
    )
    .await;
    send_user_action(&mut a1, &message("for a")).await;
    let x = next_event_text(&mut a1).await;
    let y = next_event_text(&mut a2).await;
    assert_eq!(x, y);
    let none = tokio::time::timeout(Duration::from_millis(300), next_event_text(&mut b1)).await;
    assert!(none.is_err());
}
