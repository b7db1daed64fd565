//! The sandbox of the agent's shell and of the server's file operations, against the real
//! binary: escapes that must fail in `workspace-write`, work that must still succeed,
//! `network = off`, `read-only` and `off`.

mod common;
#[path = "common/llm.rs"]
#[allow(dead_code)]
mod llm;

use common::*;
use llm::{call, text, ScriptedLlm};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A server whose user has a home of its own in the test's directory (so an escape that
/// succeeded would not touch this machine's real home).
struct Sandboxed {
    server: Server,
    _tmp: tempfile::TempDir,
    home: PathBuf,
    store: PathBuf,
}

fn start(env: &[(&str, &str)]) -> Sandboxed {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".bashrc"), "# original\n").unwrap();
    std::fs::write(
        home.join(".ssh/authorized_keys"),
        "ssh-ed25519 AAAA original\n",
    )
    .unwrap();
    let real_home = std::env::var("HOME").unwrap_or_default();
    let mut vars: Vec<(String, String)> = vec![
        ("HOME".into(), home.display().to_string()),
        ("SANDBOX_NO_CHANGE_TIMEOUT".into(), "20".into()),
    ];
    // Toolchains installed in the real home stay usable (read-only).
    for (var, sub) in [("RUSTUP_HOME", ".rustup"), ("PYENV_ROOT", ".pyenv")] {
        let path = std::env::var(var).unwrap_or_else(|_| format!("{real_home}/{sub}"));
        if Path::new(&path).is_dir() {
            vars.push((var.into(), path));
        }
    }
    for (k, v) in env {
        vars.push((k.to_string(), v.to_string()));
    }
    let server = Server::start_with(Options {
        env: vars,
        dir: Some(dir.clone()),
        ..Default::default()
    });
    Sandboxed {
        server,
        store: dir.join("store"),
        home,
        _tmp: tmp,
    }
}

struct Conv {
    ws: Ws,
    id: String,
}

impl Conv {
    async fn open(server: &Server) -> Conv {
        let id = new_id();
        let ws = ws_ready(
            server.port,
            &format!("conversation_id={id}&latest_event_id=-1"),
        )
        .await;
        Conv { ws, id }
    }

    async fn act(&mut self, action: Value) -> Value {
        act(&mut self.ws, &action).await
    }

    /// Runs `command` in the conversation's shell: (exit code, output + suffix).
    async fn run(&mut self, command: &str) -> (i64, String) {
        let o = self
            .act(json!({"action": "run", "args": {"command": command, "blocking": true}}))
            .await;
        assert_eq!(o["observation"], "run", "{o}");
        let code = o["extras"]["metadata"]["exit_code"].as_i64().unwrap();
        let text = format!(
            "{}{}",
            o["content"].as_str().unwrap_or(""),
            o["extras"]["metadata"]["suffix"].as_str().unwrap_or("")
        );
        (code, text)
    }

    async fn ok(&mut self, command: &str) -> String {
        let (code, out) = self.run(command).await;
        assert_eq!(code, 0, "{command}: {out}");
        out
    }

    async fn fails(&mut self, command: &str) -> String {
        let (code, out) = self.run(command).await;
        assert_ne!(code, 0, "{command} succeeded: {out}");
        out
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn workspace_write_keeps_the_agent_out_of_home_etc_the_store_and_other_workspaces() {
    let s = start(&[]);
    let mut other = Conv::open(&s.server).await;
    other.ok("echo mine > secret.txt").await;
    let other_ws = s.store.join("workspaces").join(&other.id);
    assert_eq!(read(&other_ws.join("secret.txt")), "mine\n");
    let mut c = Conv::open(&s.server).await;
    let home = s.home.display().to_string();
    let store = s.store.display().to_string();
    let other_ws = other_ws.display().to_string();

    let out = c.fails(&format!("echo pwned >> {home}/.bashrc")).await;
    assert!(out.contains("[Sandbox:"), "the model is told why: {out}");
    c.fails(&format!("echo key >> {home}/.ssh/authorized_keys"))
        .await;
    c.fails("echo x > /etc/openhands-sandbox-test").await;
    c.fails(&format!("echo x > {other_ws}/pwn")).await;
    c.fails(&format!("cat {other_ws}/secret.txt")).await;
    c.fails(&format!("touch {store}/pwn")).await;
    // The store's database cannot be read (the store is an empty directory here).
    let (_, out) = c.run(&format!("head -c 16 {store}/openhands.db")).await;
    assert!(!out.contains("SQLite format"), "{out}");
    let (_, out) = c.run(&format!("ls -a {store}")).await;
    assert!(!out.contains("openhands.db"), "{out}");
    // Not through the working directory either (it is entered through the new mounts).
    let (_, out) = c
        .run("( cd ../.. && pwd && head -c 16 openhands.db; ls )")
        .await;
    assert!(!out.contains("SQLite format"), "{out}");
    assert!(!out.contains(&other.id), "{out}");
    // Undoing the mounts is refused too.
    c.fails(&format!("umount -l {store}")).await;
    let (_, out) = c.run(&format!("head -c 16 {store}/openhands.db")).await;
    assert!(!out.contains("SQLite format"), "{out}");
    // Symlinks planted in the workspace do not lead out.
    c.ok(&format!(
        "ln -s {home}/.bashrc rc && ln -s {store}/openhands.db db"
    ))
    .await;
    c.fails("echo pwned >> rc").await;
    let (_, out) = c.run("head -c 16 db").await;
    assert!(!out.contains("SQLite format"), "{out}");
    // setsid and a double fork stay inside: the daemon runs, and cannot write outside.
    c.ok(&format!(
        "setsid bash -c '( sleep 0.3; echo ran > daemon.txt; echo pwned > {home}/escaped; echo $? > daemon_exit.txt ) &' ; sleep 1.5; cat daemon.txt"
    ))
    .await;
    let ws = s.store.join("workspaces").join(&c.id);
    assert_eq!(read(&ws.join("daemon.txt")), "ran\n");
    assert_ne!(read(&ws.join("daemon_exit.txt")).trim(), "0");
    assert!(!s.home.join("escaped").exists());
    // Metadata outside the writable directories cannot change either.
    c.fails(&format!("chmod 777 {home}/.bashrc")).await;
    c.fails(&format!("touch -d 2000-01-01 {home}/.bashrc"))
        .await;
    c.ok("touch -d 2000-01-01 daemon.txt && chmod 600 daemon.txt")
        .await;
    // The server is out of the sandbox's reach.
    c.fails(&format!("kill -0 {}", s.server.child.id())).await;

    assert_eq!(read(&s.home.join(".bashrc")), "# original\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.home.join(".bashrc"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o777);
    assert_eq!(
        read(&s.home.join(".ssh/authorized_keys")),
        "ssh-ed25519 AAAA original\n"
    );
    assert!(!Path::new("/etc/openhands-sandbox-test").exists());
    assert!(!s.store.join("pwn").exists());
    assert!(!s
        .store
        .join("workspaces")
        .join(&other.id)
        .join("pwn")
        .exists());
    // Outside the sandbox, the database is really there.
    assert!(std::fs::read(s.store.join("openhands.db"))
        .unwrap()
        .starts_with(b"SQLite format 3"));
}

#[tokio::test]
async fn the_servers_file_operations_follow_the_same_policy_on_resolved_paths() {
    let s = start(&[]);
    let mut c = Conv::open(&s.server).await;
    let home = s.home.display().to_string();
    let store = s.store.display().to_string();
    c.ok(&format!(
        "ln -s {home}/.bashrc rc && ln -s {store}/openhands.db db && ln -s {home} h"
    ))
    .await;
    for action in [
        json!({"action": "write", "args": {"path": "rc", "content": "pwned"}}),
        json!({"action": "write", "args": {"path": "h/.profile", "content": "pwned"}}),
        json!({"action": "write", "args": {"path": "/etc/openhands-sandbox-test", "content": "x"}}),
        json!({"action": "edit", "args": {"path": "rc", "command": "create", "file_text": "pwned"}}),
        json!({"action": "edit", "args": {"path": "rc", "command": "str_replace", "old_str": "original", "new_str": "pwned"}}),
        json!({"action": "read", "args": {"path": "db"}}),
        json!({"action": "read", "args": {"path": format!("{store}/openhands.db")}}),
        json!({"action": "edit", "args": {"path": "db", "command": "view"}}),
    ] {
        let o = c.act(action.clone()).await;
        assert_eq!(o["observation"], "error", "{action}: {o}");
        assert!(
            o["content"]
                .as_str()
                .unwrap()
                .starts_with("Permission denied"),
            "{o}"
        );
    }
    assert_eq!(read(&s.home.join(".bashrc")), "# original\n");
    assert!(!s.home.join(".profile").exists());
    // Inside the workspace everything works, and the system stays readable.
    let o = c
        .act(json!({"action": "write", "args": {"path": "notes.txt", "content": "fine"}}))
        .await;
    assert_eq!(o["observation"], "write", "{o}");
    let o = c
        .act(json!({"action": "read", "args": {"path": "/etc/hostname"}}))
        .await;
    assert_eq!(o["observation"], "read", "{o}");
}

#[tokio::test]
async fn projects_virtualenvs_git_and_caches_work_in_the_workspace() {
    let s = start(&[("SANDBOX_NETWORK", "off")]);
    let mut c = Conv::open(&s.server).await;
    c.ok("mkdir -p app && printf 'def add(a, b):\\n    return a + b\\n' > app/calc.py && printf 'from app.calc import add\\nprint(add(2, 3))\\n' > main.py").await;
    let out = c.ok("python3 main.py").await;
    assert!(out.starts_with("5"), "{out}");
    let out = c
        .ok("python3 -m venv .venv && . .venv/bin/activate && python -c 'import sys; print(sys.prefix)' && deactivate")
        .await;
    assert!(out.contains(".venv"), "{out}");
    // The private home, cache and temporary directory are writable.
    c.ok("echo x > $HOME/f && mkdir -p $XDG_CACHE_HOME/pip && echo y > $TMPDIR/t && mktemp")
        .await;
    c.ok("git init -q . && git add main.py app && git -c user.email=a@b -c user.name=a commit -qm first && git log --oneline | wc -l").await;
    // A background server on loopback is reachable from the same conversation.
    c.ok("python3 -m http.server 18765 --bind 127.0.0.1 >/dev/null 2>&1 & for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18765/ && break; sleep 0.1; done").await;
    let out = c
        .ok("curl -s http://127.0.0.1:18765/ | grep -c main.py")
        .await;
    assert!(out.starts_with('1'), "{out}");
    c.ok("kill %1").await;
    let has_cargo = c.run("command -v cargo").await.0 == 0;
    if has_cargo {
        let out = c
            .ok("cargo new -q --vcs none hello && cd hello && cargo run -q --offline; cd ..")
            .await;
        assert!(out.contains("Hello, world!"), "{out}");
    } else {
        eprintln!("cargo is not installed: the Rust project check is skipped");
    }
}

/// A one-request-at-a-time HTTP server outside any sandbox.
fn outside_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\noutside",
            );
        }
    });
    port
}

#[tokio::test]
async fn with_the_network_off_a_server_outside_the_sandbox_is_unreachable() {
    let port = outside_server();
    let fetch = format!("curl -s --max-time 5 http://127.0.0.1:{port}/");
    let py = format!("python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=5).read())\"");
    let on = start(&[]);
    let mut c = Conv::open(&on.server).await;
    assert!(c.ok(&fetch).await.contains("outside"));
    let off = start(&[("SANDBOX_NETWORK", "off")]);
    let mut c = Conv::open(&off.server).await;
    let out = c.fails(&fetch).await;
    assert!(!out.contains("outside"), "{out}");
    let out = c.fails(&py).await;
    assert!(
        out.contains("Connection refused") && out.contains("network is off"),
        "{out}"
    );
    let o = c
        .act(json!({"action": "browse", "args": {"url": format!("http://127.0.0.1:{port}/")}}))
        .await;
    assert_eq!(o["observation"], "error", "{o}");
}

#[tokio::test]
async fn read_only_allows_reading_but_no_write_anywhere() {
    let s = start(&[("SANDBOX_MODE", "read-only")]);
    let mut c = Conv::open(&s.server).await;
    c.ok("cat /etc/hostname >/dev/null && ls").await;
    let out = c.fails("echo x > a.txt").await;
    assert!(out.contains("read-only"), "{out}");
    c.fails(&format!("echo x >> {}/.bashrc", s.home.display()))
        .await;
    let (_, out) = c
        .run(&format!("head -c 16 {}/openhands.db", s.store.display()))
        .await;
    assert!(!out.contains("SQLite format"), "{out}");
    let o = c
        .act(json!({"action": "write", "args": {"path": "a.txt", "content": "x"}}))
        .await;
    assert_eq!(o["observation"], "error", "{o}");
    assert!(o["content"].as_str().unwrap().contains("read-only"), "{o}");
    assert!(!s
        .store
        .join("workspaces")
        .join(&c.id)
        .join("a.txt")
        .exists());
}

#[tokio::test]
async fn off_gives_the_agent_the_server_users_rights_and_says_so() {
    let s = start(&[("SANDBOX_MODE", "off")]);
    let mut c = Conv::open(&s.server).await;
    c.ok(&format!("echo added >> {}/.bashrc", s.home.display()))
        .await;
    assert_eq!(read(&s.home.join(".bashrc")), "# original\nadded\n");
    let out = c
        .ok(&format!("head -c 15 {}/openhands.db", s.store.display()))
        .await;
    assert!(out.contains("SQLite format"), "{out}");
    let (_, info) = get(&s.server, &format!("/api/conversations/{}", c.id)).await;
    assert_eq!(info["sandbox"]["mode"], "off", "{info}");
}

#[tokio::test]
async fn the_mode_and_what_the_kernel_enforces_are_reported() {
    let s = start(&[("SANDBOX_NETWORK", "off")]);
    let c = Conv::open(&s.server).await;
    let (status, info) = get(&s.server, &format!("/api/conversations/{}", c.id)).await;
    assert_eq!(status, 200);
    assert_eq!(info["sandbox"]["mode"], "workspace-write", "{info}");
    assert_eq!(info["sandbox"]["network"], false, "{info}");
    let (_, config) = get(&s.server, "/api/options/config").await;
    let sandbox = &config["SANDBOX"];
    assert_eq!(sandbox["mode"], "workspace-write", "{config}");
    assert!(sandbox["missing"].is_array(), "{config}");
    assert!(sandbox["landlock_abi"].is_u64() || sandbox["landlock_abi"].is_null());
}

#[tokio::test]
async fn a_bad_mode_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .args(["--port", "0"])
        .env("SANDBOX_MODE", "danger")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("danger"),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_model_is_told_when_the_sandbox_denies_its_command_or_edit() {
    let llm = ScriptedLlm::start(vec![
        call("execute_bash", json!({"command": "echo pwned > /etc/openhands-sandbox-agent", "security_risk": "LOW"})),
        call("str_replace_editor", json!({"command": "create", "path": "/etc/openhands-sandbox-agent", "file_text": "x", "security_risk": "LOW"})),
        text("I will write inside the workspace instead."),
    ])
    .await;
    let s = start(&[
        ("LLM_MODEL", "openai/scripted-model"),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_BASE_URL", llm.base_url.as_str()),
    ]);
    let mut c = Conv::open(&s.server).await;
    send_user_action(&mut c.ws, &message("write /etc/openhands-sandbox-agent")).await;
    loop {
        let p = tokio::time::timeout(std::time::Duration::from_secs(30), next_payload(&mut c.ws))
            .await
            .expect("the agent took too long");
        if p["observation"] == "agent_state_changed"
            && p["extras"]["agent_state"] == "awaiting_user_input"
            && llm.requests().len() >= 3
        {
            break;
        }
    }
    let reqs = llm.requests();
    let tool_text = |i: usize| -> String {
        reqs[i]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|m| m["role"] == "tool")
            .map(|m| m["content"].to_string())
            .unwrap_or_default()
    };
    let after_bash = tool_text(1);
    assert!(
        after_bash.contains("Permission denied") || after_bash.contains("Read-only file system"),
        "{after_bash}"
    );
    assert!(after_bash.contains("[Sandbox:"), "{after_bash}");
    let after_edit = tool_text(2);
    assert!(
        after_edit.contains("Permission denied") && after_edit.contains("workspace"),
        "{after_edit}"
    );
    assert!(!Path::new("/etc/openhands-sandbox-agent").exists());
}
