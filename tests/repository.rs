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

/// A git server over https (dumb protocol, self-signed certificate) that answers only
/// requests carrying `expected` as their `Authorization` header; killed when dropped.
struct PrivateGitServer {
    child: std::process::Child,
    port: u16,
    cert: std::path::PathBuf,
}

impl Drop for PrivateGitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TLS_GIT_SERVER: &str = r#"
import http.server, ssl, sys
root, cert, key, expected = sys.argv[1:5]
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def do_GET(self):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

fn private_git_server(dir: &Path, expected_auth: &str) -> PrivateGitServer {
    use std::io::BufRead;
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let repo = origin(dir);
    let bare = served.join("private.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    git(&bare, &["update-server-info"]);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl req");
    let mut child = Command::new("python3")
        .args(["-c", TLS_GIT_SERVER])
        .arg(&served)
        .arg(&cert)
        .arg(&key)
        .arg(expected_auth)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the git server's port");
    PrivateGitServer { child, port, cert }
}

#[tokio::test]
async fn a_private_https_repository_is_cloned_with_the_users_git_provider_token() {
    use base64::Engine;
    let token = "ghp_s3cretToken42";
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
    );
    let dir = tempfile::tempdir().unwrap();
    let git_server = private_git_server(dir.path(), &expected);
    let host = format!("127.0.0.1:{}", git_server.port);
    let url = format!("https://{host}/private.git");
    let server = Server::start_with(Options {
        config: Some(format!(
            "[sandbox]\nruntime_startup_env_vars = {{ GIT_SSL_CAINFO = {:?} }}\n",
            git_server.cert.display().to_string()
        )),
        ..Default::default()
    });

    // Without a token the host refuses: a clear error, no prompt, no hang.
    let cid = create(&server, json!({"repository": url})).await;
    let (states, _) = startup(&server, &cid).await;
    assert_eq!(states.last().unwrap(), "error", "{states:?}");

    // A token for another host is never sent there.
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        "/api/add-git-providers",
        Some(json!({"provider_tokens": {"github": {"token": token, "host": null}}})),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (200, Some("Git providers stored"))
    );
    let cid = create(&server, json!({"repository": url})).await;
    let (states, _) = startup(&server, &cid).await;
    assert_eq!(
        states.last().unwrap(),
        "error",
        "github.com's token went elsewhere"
    );

    // The token for this host (posted again without the token: it is kept) opens it.
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/add-git-providers",
        Some(json!({"provider_tokens": {"github": {"token": "", "host": host}}})),
    )
    .await;
    assert_eq!(s, 200);
    // Tokens alone are not settings: the UI's first-run dialog still shows.
    assert_eq!(get(&server, "/api/settings").await.0, 404);
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"language": "en"})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, settings) = get(&server, "/api/settings").await;
    assert_eq!(settings["provider_tokens_set"], json!({"github": host}));
    assert!(!settings.to_string().contains(token), "{settings}");

    let cid = create(&server, json!({"repository": url})).await;
    let (states, _) = startup(&server, &cid).await;
    assert_eq!(states.last().unwrap(), "awaiting_user_input", "{states:?}");
    let clone = server
        .dir
        .join("store/workspaces")
        .join(&cid)
        .join("private");
    assert!(clone.join("README.md").exists());
    let config = std::fs::read_to_string(clone.join(".git/config")).unwrap();
    assert!(!config.contains(token), "{config}");
    let (_, events) = get(&server, &format!("/api/conversations/{cid}/events")).await;
    assert!(!events.to_string().contains(token));

    // The agent's shell has it, as upstream gives it.
    let mut ws = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=2"),
    )
    .await;
    let obs = act(
        &mut ws,
        &json!({"action": "run", "args": {"command": "echo \"[$GITHUB_TOKEN]\""}}),
    )
    .await;
    assert_eq!(
        obs["content"].as_str().unwrap().trim(),
        format!("[{token}]")
    );

    // Logging out forgets it.
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/unset-provider-tokens",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (_, settings) = get(&server, "/api/settings").await;
    assert_eq!(settings["provider_tokens_set"], json!({}));
}

#[tokio::test]
async fn hostile_git_provider_tokens_are_refused_with_a_json_error() {
    let server = Server::start();
    for body in [
        json!({"provider_tokens": {"svn": {"token": "x"}}}),
        json!({"provider_tokens": {"github": {"token": "a\nb"}}}),
        json!({"provider_tokens": {"github": {"token": "x", "host": "https://evil/"}}}),
        json!({"provider_tokens": {"github": {"token": "x".repeat(10_000)}}}),
        json!({"provider_tokens": ["github"]}),
    ] {
        let (s, v) = send(
            &server,
            reqwest::Method::POST,
            "/api/add-git-providers",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    // Nothing was stored: still the first run.
    let (s, _) = get(&server, "/api/settings").await;
    assert_eq!(s, 404);
}
