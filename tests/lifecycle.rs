//! Conversations close when idle, reopen on demand, make room when there are too many;
//! the binary starts fast, and refuses broken configuration clearly.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

async fn status(server: &Server, cid: &str) -> Value {
    http()
        .get(server.url(&format!("/api/conversations/{cid}")))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["status"]
        .clone()
}

#[tokio::test]
async fn idle_conversations_close_and_reopen_transparently() {
    let server = Server::start_with(Options {
        config: Some("[sandbox]\nclose_delay = 1\n".into()),
        ..Default::default()
    });
    let cid = new_id();
    {
        let mut ws = ws_connect(
            server.port,
            &format!("conversation_id={cid}&latest_event_id=-1"),
        )
        .await;
        send_user_action(&mut ws, &message("one")).await;
        next_event(&mut ws).await;
        // Connected clients keep it open past close_delay.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(status(&server, &cid).await, "RUNNING");
    }
    let start = Instant::now();
    while status(&server, &cid).await != "STOPPED" {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "idle conversation never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything stored so far: "one" and the agent's "no LLM" state.
    let before = wait_events(&server, &cid, 2).await;
    let last = before.last().unwrap()["id"].as_u64().unwrap();
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id={last}"),
    )
    .await;
    assert_eq!(status(&server, &cid).await, "RUNNING");
    // Ids continue after reopening, with the reopened agent's start-up states first.
    let loading = next_stored_event(&mut ws).await;
    assert_eq!(loading["id"], last + 1, "ids continue after reopening");
    assert_eq!(loading["extras"]["agent_state"], "loading");
    send_user_action(&mut ws, &message("two")).await;
    let two = next_event(&mut ws).await;
    assert_eq!(two["args"]["content"], "two");
    assert!(two["id"].as_u64() > Some(last + 1));
}

#[tokio::test]
async fn too_many_conversations_closes_the_oldest_idle_one_with_a_status_update() {
    let server = Server::with_env(&[("MAX_CONCURRENT_CONVERSATIONS", "2")]);
    let (a, b, c) = (new_id(), new_id(), new_id());
    let mut wa = ws_ready(
        server.port,
        &format!("conversation_id={a}&latest_event_id=-1"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _wb = ws_connect(
        server.port,
        &format!("conversation_id={b}&latest_event_id=-1"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _wc = ws_connect(
        server.port,
        &format!("conversation_id={c}&latest_event_id=-1"),
    )
    .await;
    let p = next_payload(&mut wa).await;
    assert_eq!(p["status_update"], true);
    assert_eq!(p["type"], "error");
    assert_eq!(p["id"], "AGENT_ERROR$TOO_MANY_CONVERSATIONS");
    let p = next_payload(&mut wa).await;
    assert_eq!(p["extras"]["agent_state"], "stopped");
    assert_eq!(next_text(&mut wa).await, "41", "server-side disconnect");
    assert_eq!(status(&server, &a).await, "STOPPED");
    assert_eq!(status(&server, &b).await, "RUNNING");
    assert_eq!(status(&server, &c).await, "RUNNING");
}

#[test]
fn prints_help_with_the_documented_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--host", "--port", "--config"] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn a_broken_config_file_fails_at_start_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[core]\ndebug = true\n\n[sandbox]\ntimeout = \"long\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .args(["--port", "0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("timeout"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .args(["--port", "0", "--config", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/config.toml"));
}

#[tokio::test]
async fn unknown_config_keys_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "[core]\nmystery = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .args(["--port", "0"])
        .current_dir(dir.path())
        .env("FILE_STORE_PATH", dir.path().join("s"))
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill").arg(out.id().to_string()).status();
    let out = out.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("core.mystery"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("listening on"));
    let _ = json!(null);
}
