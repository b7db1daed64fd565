//! The server on PostgreSQL (`DATABASE_URL`): nothing is kept in the local directory, a
//! node restarted with an empty one loses nothing, and PostgreSQL going away mid-run is
//! reported on `/health` and survived.
//!
//! (The delivery and persistence tests also run on PostgreSQL with
//! `OPENHANDS_TEST_STORE=postgres`; see scripts/test.sh.)

mod common;
use common::postgres::Postgres;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn on(url: &str) -> Options {
    Options {
        database_url: Some(url.to_string()),
        ..Default::default()
    }
}

/// Every stored event of `cid` as raw JSON, replayed over Socket.IO from the start.
async fn replay(server: &Server, cid: &str, n: usize) -> Vec<String> {
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let mut out = Vec::new();
    while out.len() < n {
        let t = next_text(&mut ws).await;
        if let Some(json) = t
            .strip_prefix("42[\"oh_event\",")
            .and_then(|r| r.strip_suffix(']'))
        {
            if json.starts_with("{\"id\":") {
                out.push(json.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn a_node_restarted_with_an_empty_directory_finds_conversations_events_settings_and_secrets()
{
    let url = Postgres::shared().fresh_database();
    let mut first = Server::start_with(on(&url));
    let (s, _) = send(
        &first,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"language": "fr", "llm_model": "openai/gpt-4o-mini"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = send(
        &first,
        reqwest::Method::POST,
        "/api/secrets",
        Some(json!({"name": "MY_TOKEN", "value": "s3cr3t", "description": "for tests"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = send(
        &first,
        reqwest::Method::POST,
        "/api/add-git-providers",
        Some(json!({"provider_tokens": {"github": {"token": "ghp_abc", "host": null}}})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, created) = send(
        &first,
        reqwest::Method::POST,
        "/api/conversations",
        Some(json!({"initial_user_msg": "remember me"})),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    let cid = created["conversation_id"].as_str().unwrap().to_string();
    let mut ws = ws_ready(
        first.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let seen = send_messages(&mut ws, "p", 5).await;
    drop(ws);
    assert!(first.sigterm().success());
    let stored = id_of(seen.last().unwrap()) as usize + 1;
    assert!(
        !first.dir.join("store").join("openhands.db").exists(),
        "nothing is stored in SQLite"
    );

    // Another node: a new, empty directory, the same database.
    let second = Server::start_with(on(&url));
    assert_ne!(second.dir, first.dir);
    let (_, list) = get(&second, "/api/conversations").await;
    assert_eq!(list["results"][0]["conversation_id"], cid.as_str());
    let after = replay(&second, &cid, stored).await;
    let before: Vec<String> = after.clone();
    for expected in &seen {
        assert!(after.contains(expected), "kept byte-identical: {expected}");
    }
    for (i, e) in after.iter().enumerate() {
        assert_eq!(id_of(e), i as u64, "every event up to the last one seen");
    }
    let (s, settings) = get(&second, "/api/settings").await;
    assert_eq!(s, 200, "{settings}");
    assert_eq!(settings["language"], "fr");
    assert_eq!(settings["llm_model"], "openai/gpt-4o-mini");
    assert_eq!(settings["provider_tokens_set"], json!({"github": null}));
    let (_, secrets) = get(&second, "/api/secrets").await;
    assert_eq!(secrets["custom_secrets"][0]["name"], "MY_TOKEN");
    assert_eq!(secrets["custom_secrets"][0]["description"], "for tests");
    // And the conversation goes on with dense ids.
    let mut ws = ws_connect(
        second.port,
        &format!("conversation_id={cid}&latest_event_id={}", before.len() - 1),
    )
    .await;
    send_user_action(&mut ws, &message("after the move")).await;
    loop {
        let e = next_stored_event(&mut ws).await;
        if e["args"]["content"] == "after the move" {
            break;
        }
    }
    let all = wait_events(&second, &cid, before.len() + 1).await;
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["id"], i as u64, "dense ids across nodes");
    }
}

async fn health(server: &Server) -> (u16, String) {
    let r = http()
        .get(server.url("/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_health(server: &Server, status: u16) -> String {
    let started = Instant::now();
    loop {
        let (s, body) = health(server).await;
        if s == status {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/health stayed {s}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn postgres_going_away_is_reported_unhealthy_refused_clearly_and_survived() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let mut server = Server::start_with(on(&url));
    assert_eq!(health(&server).await, (200, "\"OK\"".into()));
    let cid = new_id();
    let q = format!("conversation_id={cid}&latest_event_id=-1");
    let mut ws = ws_ready(server.port, &q).await;
    let before = send_messages(&mut ws, "before", 3).await;

    pg.stop();
    let body = wait_health(&server, 503).await;
    assert!(body.contains("unhealthy"), "{body}");
    // New work is refused with a clear error, quickly, not hung.
    let started = Instant::now();
    let r = http()
        .post(server.url("/api/conversations"))
        .json(&json!({}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(status >= 500, "{status} {text}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
        "a JSON error: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // A message sent meanwhile waits for the database (its commit is tried again);
    // nothing panics.
    send_user_action(&mut ws, &message("while down")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server lives"
    );

    pg.restart();
    wait_health(&server, 200).await;
    // The pool reconnects: the conversation goes on, nothing stored was lost, and the
    // message sent during the outage is stored in its place.
    let mut ws = ws_connect(server.port, &q).await;
    for expected in &before {
        assert_eq!(&next_event_text(&mut ws).await, expected, "kept");
    }
    send_user_action(&mut ws, &message("after")).await;
    let mut contents = Vec::new();
    loop {
        let e = next_stored_event(&mut ws).await;
        if let Some(c) = e["args"]["content"].as_str() {
            contents.push(c.to_string());
        }
        if e["args"]["content"] == "after" {
            break;
        }
    }
    assert_eq!(contents, ["while down", "after"], "in the order sent, once");
    let stored = wait_events(&server, &cid, before.len() + 2).await;
    let ids: Vec<u64> = stored.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids,
        (0..ids.len() as u64).collect::<Vec<_>>(),
        "dense ids across the outage, no gap and no duplicate"
    );
    assert!(server.sigterm().success(), "clean exit after the outage");
}

#[tokio::test]
async fn a_server_without_its_database_refuses_to_start_with_a_clear_message() {
    let pg = Postgres::shared();
    let url = pg.url("no_such_database");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_openhands-server"));
    let dir = tempfile::tempdir().unwrap();
    let out = cmd
        .args(["--port", "0", "--database-url", &url])
        .current_dir(dir.path())
        .env("FILE_STORE_PATH", dir.path().join("store"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PostgreSQL"), "{err}");
    assert!(err.contains("no_such_database"), "{err}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .args(["--port", "0"])
        .current_dir(dir.path())
        .env("DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("postgres://"));
}
