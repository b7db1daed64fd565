//! A conversation created with a repository clones it into its workspace when it starts,
//! on the branch asked for, with status updates; a failure is a clear error state.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=a@b", "-c", "user.name=n"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with `main` and a `dev` branch holding DEV.txt.
fn origin(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("origin/project");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "hello\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "init"]);
    git(&repo, &["checkout", "-qb", "dev"]);
    std::fs::write(repo.join("DEV.txt"), "dev\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "dev"]);
    git(&repo, &["checkout", "-q", "main"]);
    repo
}

async fn create(server: &Server, body: Value) -> String {
    let (s, v) = send(
        server,
        reqwest::Method::POST,
        "/api/conversations",
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["conversation_id"].as_str().unwrap().to_string()
}

/// The agent states the conversation goes through until it is ready or fails, and the
/// status updates sent meanwhile.
async fn startup(server: &Server, cid: &str) -> (Vec<String>, Vec<Value>) {
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let (mut states, mut notices) = (Vec::new(), Vec::new());
    loop {
        let p = next_payload(&mut ws).await;
        if p["status_update"] == true {
            notices.push(p.clone());
        }
        if p["observation"] == "agent_state_changed" {
            let s = p["extras"]["agent_state"].as_str().unwrap().to_string();
            let done = s == "awaiting_user_input" || s == "error";
            states.push(s);
            if done {
                if p["extras"]["reason"] != "" {
                    notices.push(json!({"reason": p["extras"]["reason"]}));
                }
                return (states, notices);
            }
        }
    }
}

#[tokio::test]
async fn a_repository_is_cloned_on_the_branch_asked_for_when_the_conversation_starts() {
    let server = Server::start();
    let repo = origin(&server.dir);
    let cid = create(
        &server,
        json!({"repository": repo.display().to_string(), "selected_branch": "dev"}),
    )
    .await;
    let (states, _) = startup(&server, &cid).await;
    assert_eq!(states.last().unwrap(), "awaiting_user_input", "{states:?}");
    let clone = server
        .dir
        .join("store/workspaces")
        .join(&cid)
        .join("project");
    assert!(clone.join("DEV.txt").exists(), "cloned on dev");
    assert_eq!(git(&clone, &["branch", "--show-current"]), "dev");
    let (_, info) = get(&server, &format!("/api/conversations/{cid}")).await;
    assert_eq!(info["selected_repository"], repo.display().to_string());
    assert_eq!(info["selected_branch"], "dev");
    assert_eq!(info["runtime_status"], "STATUS$READY");
    // The agent's shell sees it.
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=2"),
    )
    .await;
    let obs = act(
        &mut ws,
        &json!({"action": "run", "args": {"command": "cat project/DEV.txt"}}),
    )
    .await;
    assert_eq!(obs["content"].as_str().unwrap().trim(), "dev");
}

#[tokio::test]
async fn a_repository_that_cannot_be_cloned_is_a_clear_error_state() {
    let server = Server::start();
    let cid = create(&server, json!({"repository": "/nowhere/missing-repo"})).await;
    let (states, notices) = startup(&server, &cid).await;
    assert_eq!(states.last().unwrap(), "error", "{states:?}");
    // (Status updates are live only: a client connecting late sees the stored reason.)
    let text = serde_json::to_string(&notices).unwrap();
    assert!(
        text.contains("cloning /nowhere/missing-repo failed"),
        "{text}"
    );
    let (_, info) = get(&server, &format!("/api/conversations/{cid}")).await;
    assert_eq!(info["runtime_status"], "STATUS$READY", "usable without it");
}

#[tokio::test]
async fn a_hostile_repository_string_runs_nothing() {
    let server = Server::start();
    let marker = server.dir.join("pwned");
    for hostile in [
        format!("--upload-pack=touch {}", marker.display()),
        format!("ext::sh -c touch% {}", marker.display()),
    ] {
        let cid = create(&server, json!({"repository": hostile})).await;
        let (states, notices) = startup(&server, &cid).await;
        assert_eq!(states.last().unwrap(), "error", "{states:?}");
        assert!(serde_json::to_string(&notices)
            .unwrap()
            .contains("not a repository this server can clone"));
    }
    assert!(!marker.exists());
}
