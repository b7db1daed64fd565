//! Attacks on the real binary, each of which must fail: cross-site websocket hijacking,
//! DNS rebinding, a network bind without a key, bad conversation ids, hostile pages,
//! key exfiltration through the base URL, secrets in the shell's environment, repository
//! programs run by the git routes, processes that outlive their conversation, missing
//! security headers and a readable store.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Opens a websocket to `url` with `origin`; the HTTP status of a refusal, or 101.
async fn upgrade_status(url: &str, origin: Option<&str>) -> u16 {
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("unexpected websocket error: {e}"),
    }
}

/// A raw HTTP/1.1 GET with exactly the given Host (and optional Origin) header.
fn raw_get(port: u16, path: &str, host: &str, origin: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out)
}

#[tokio::test]
async fn cross_site_pages_cannot_open_sockets_or_poll() {
    let server = Server::start();
    let cid = new_id();
    let sio = server.ws_url(&format!("conversation_id={cid}&latest_event_id=-1"));
    let raw = format!("ws://127.0.0.1:{}/ws", server.port);
    let own = format!("http://127.0.0.1:{}", server.port);
    for url in [&sio, &raw] {
        assert_eq!(
            upgrade_status(url, Some("http://evil.example")).await,
            403,
            "{url}"
        );
        assert_eq!(upgrade_status(url, Some("null")).await, 403, "{url}");
        assert_eq!(upgrade_status(url, Some(&own)).await, 101, "{url}");
        assert_eq!(upgrade_status(url, None).await, 101, "{url}");
    }
    // Long-polling too, before any session exists.
    let poll = format!("/socket.io/?EIO=4&transport=polling&conversation_id={cid}");
    let host = format!("127.0.0.1:{}", server.port);
    let (status, body) = raw_get(server.port, &poll, &host, Some("http://evil.example"));
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("\"sid\""));
    let (status, body) = raw_get(server.port, &poll, &host, None);
    assert_eq!(status, 200, "{body}");
    // REST refuses a foreign page too, and without CORS headers.
    let r = http()
        .get(server.url("/api/settings"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn rebound_host_names_are_refused() {
    let server = Server::with_env(&[("ALLOWED_HOSTS", "box.lan")]);
    let p = server.port;
    for host in [
        format!("rebind.evil.example:{p}"),
        format!("localhost.evil.example:{p}"),
    ] {
        let (status, body) = raw_get(p, "/api/settings", &host, None);
        assert_eq!(status, 403, "{host}: {body}");
        assert!(body.contains("ALLOWED_HOSTS"), "{body}");
        // Health checks and sockets are no exception.
        assert_eq!(raw_get(p, "/alive", &host, None).0, 403);
        assert_eq!(
            raw_get(
                p,
                "/socket.io/?EIO=4&transport=polling&conversation_id=x",
                &host,
                None
            )
            .0,
            403
        );
    }
    for host in [
        format!("localhost:{p}"),
        format!("127.0.0.1:{p}"),
        format!("box.lan:{p}"),
    ] {
        assert_eq!(
            raw_get(p, "/api/conversations", &host, None).0,
            200,
            "{host}"
        );
    }
}

#[tokio::test]
async fn a_network_bind_without_a_key_requires_a_generated_one() {
    let server = Server::start_with(Options {
        host: Some("0.0.0.0".into()),
        ..Default::default()
    });
    let printed = wait_for_output(&server, "session_api_key=").await;
    let key = printed
        .split("session_api_key=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(key.len() >= 40, "{printed}");
    let settings = || http().get(server.url("/api/conversations"));
    assert_eq!(settings().send().await.unwrap().status().as_u16(), 401);
    let ok = settings()
        .header("X-Session-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // The seeds' health check still answers without it, and a socket needs it.
    assert_eq!(
        http()
            .get(server.url("/api/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let frames =
        websocat_oneshot(server.port, &format!("conversation_id={}", new_id()), "40").await;
    assert!(
        frames.iter().flatten().any(|t| t.starts_with("44")),
        "{frames:?}"
    );
    // An explicit opt-out serves without a key (behind the deployment's own auth).
    let open = Server::start_with(Options {
        host: Some("0.0.0.0".into()),
        args: vec!["--no-auth".into()],
        ..Default::default()
    });
    assert_eq!(
        http()
            .get(open.url("/api/conversations"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

async fn wait_for_output(server: &Server, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let out = server.stdout.lock().unwrap().clone();
        if out.contains(needle) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never printed {needle:?}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn conversation_ids_are_one_safe_directory_name_everywhere() {
    let server = Server::start();
    // Another conversation with a file in its workspace.
    let mut ws = ws_ready(server.port, "conversation_id=victim&latest_event_id=-1").await;
    act(
        &mut ws,
        &json!({"action": "run", "args": {"command": "echo precious > keep.txt"}}),
    )
    .await;
    let victim = server.dir.join("store/workspaces/victim/keep.txt");
    assert!(victim.exists());
    for bad in [
        ".",
        "..",
        "a.b",
        "%2e",
        "a%2Fb",
        "a%20b",
        "%00",
        &"x".repeat(101),
    ] {
        for (method, path) in [
            (reqwest::Method::GET, format!("/api/conversations/{bad}")),
            (reqwest::Method::DELETE, format!("/api/conversations/{bad}")),
            (
                reqwest::Method::GET,
                format!("/api/conversations/{bad}/select-file?file=victim/keep.txt"),
            ),
            (
                reqwest::Method::GET,
                format!("/api/conversations/{bad}/list-files"),
            ),
        ] {
            let r = http()
                .request(method.clone(), server.url(&path))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                status == 400 || status == 404,
                "{method} {path}: {status} {body}"
            );
            assert!(body.is_object(), "{method} {path}: JSON body");
        }
        let frames = websocat_oneshot(server.port, &format!("conversation_id={bad}"), "40").await;
        assert!(
            frames.iter().flatten().any(|t| t.starts_with("44")),
            "{bad}: {frames:?}"
        );
        let ws_status = upgrade_status(
            &format!("ws://127.0.0.1:{}/ws?conversation_id={bad}", server.port),
            None,
        )
        .await;
        assert_eq!(ws_status, 400, "{bad}");
    }
    assert!(victim.exists(), "another conversation's workspace survived");
}

/// Serves `body` as text/html to every request, on a fresh port.
fn html_server(body: String) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn hostile_pages_become_error_observations_not_crashes() {
    let server = Server::start();
    let mut ws = ws_ready(server.port, "conversation_id=browser&latest_event_id=-1").await;
    for depth in [5_000, 100_000] {
        let port = html_server("<div>".repeat(depth) + "deep");
        let started = Instant::now();
        let obs = act(
            &mut ws,
            &json!({"action": "browse", "args": {"url": format!("http://127.0.0.1:{port}/")}}),
        )
        .await;
        assert_eq!(obs["observation"], "browse", "{obs}");
        assert_eq!(obs["extras"]["error"], true, "{obs}");
        assert!(
            obs["content"]
                .as_str()
                .unwrap()
                .contains("nested more than"),
            "{obs}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{depth} levels took {:?}",
            started.elapsed()
        );
    }
    // The process and the conversation are fine.
    let obs = act(
        &mut ws,
        &json!({"action": "run", "args": {"command": "echo alive"}}),
    )
    .await;
    assert_eq!(obs["content"].as_str().unwrap().trim(), "alive");
    assert!(server.child.id() > 0);
    assert_eq!(
        http()
            .get(server.url("/alive"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

/// A listener that counts the connections it receives (a would-be attacker's host).
fn counting_listener() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    (port, hits)
}

#[tokio::test]
async fn the_llm_key_never_goes_to_a_base_url_it_was_not_saved_with() {
    let (attacker, hits) = counting_listener();
    let server = Server::with_env(&[
        ("LLM_MODEL", "openai/some-model"),
        ("LLM_API_KEY", "sk-env-secret"),
        ("LLM_BASE_URL", "http://127.0.0.1:9/v1"),
    ]);
    let evil = format!("http://127.0.0.1:{attacker}/v1");
    // Through the settings route: refused with a clear error.
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"llm_base_url": evil})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("API key again"),
        "{body}"
    );
    // Through /ws `initialize` (a base URL without a key): the agent refuses to send.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", server.port))
            .await
            .unwrap();
    use futures::{SinkExt, StreamExt};
    for msg in [
        json!({"action": "initialize", "args": {"LLM_BASE_URL": evil}}),
        json!({"action": "start", "args": {"task": "hello"}}),
    ] {
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            msg.to_string().into(),
        ))
        .await
        .unwrap();
    }
    let reason = loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Ok(v) = serde_json::from_str::<Value>(m.to_text().unwrap()) else {
            continue;
        };
        if v["extras"]["agent_state"] == "error" {
            break v["extras"]["reason"].as_str().unwrap().to_string();
        }
    };
    assert!(reason.contains("API key again"), "{reason}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the attacker's host was contacted"
    );
}

#[tokio::test]
async fn the_agents_shell_does_not_see_the_servers_secrets() {
    let server = Server::with_env(&[
        ("LLM_API_KEY", "sk-llm-secret-1234"),
        ("SESSION_API_KEY", "session-secret-5678"),
        ("GITHUB_TOKEN", "ghp-secret-9012"),
    ]);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1&session_api_key=session-secret-5678"),
    )
    .await;
    let obs = act(&mut ws, &json!({"action": "run", "args": {"command": "env; cat /proc/self/environ | tr '\\\\0' '\\\\n'"}})).await;
    let out = obs["content"].as_str().unwrap();
    for secret in [
        "sk-llm-secret-1234",
        "session-secret-5678",
        "ghp-secret-9012",
        "LLM_API_KEY",
        "FILE_STORE_PATH",
    ] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    assert!(out.contains("PATH="), "{out}");
}

#[tokio::test]
async fn the_changes_tab_runs_no_program_of_an_untrusted_repository() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let marker = server.dir.join("pwned");
    let setup = format!(
        "git init -q repo && cd repo && echo a > f.txt && git add f.txt && git -c user.email=a@b -c user.name=n commit -qm i && \
         git config filter.evil.clean 'touch {m}; cat' && git config filter.evil.process 'touch {m}; cat' && \
         git config core.fsmonitor 'touch {m}; false' && echo '* filter=evil' > .gitattributes && echo b >> f.txt && cd ..",
        m = marker.display()
    );
    act(
        &mut ws,
        &json!({"action": "run", "args": {"command": setup}}),
    )
    .await;
    let (status, changes) = get(&server, &format!("/api/conversations/{cid}/git/changes")).await;
    assert_eq!(status, 200, "{changes}");
    assert!(changes.to_string().contains("repo/f.txt"), "{changes}");
    let (status, _) = get(
        &server,
        &format!("/api/conversations/{cid}/git/diff?path=repo/f.txt"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !marker.exists(),
        "opening the Changes tab ran the repository's program"
    );
    // Uploads cannot plant configuration in .git.
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(b"[core]\n\tfsmonitor = touch /tmp/x\n".to_vec())
            .file_name("repo/.git/config"),
    );
    let r: Value = http()
        .post(server.url(&format!("/api/conversations/{cid}/upload-files")))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["uploaded_files"], json!([]), "{r}");
    assert!(
        r["skipped_files"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(".git"),
        "{r}"
    );
}

/// Whether a process with exactly this command line is alive.
fn alive(cmdline: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn daemons_do_not_outlive_their_conversation() {
    let server = Server::start();
    for (how, secs) in [("stop", "32101"), ("delete", "32102")] {
        let cid = new_id();
        let mut ws = ws_ready(
            server.port,
            &format!("conversation_id={cid}&latest_event_id=-1"),
        )
        .await;
        let cmd = format!("setsid sleep {secs} & nohup sleep {secs}1 >/dev/null 2>&1 & (sleep {secs}2 &) ; sleep 0.3; echo started");
        act(&mut ws, &json!({"action": "run", "args": {"command": cmd}})).await;
        for s in [secs.to_string(), format!("{secs}1"), format!("{secs}2")] {
            assert!(alive(&format!("sleep {s}")), "sleep {s} did not start");
        }
        let (method, path) = if how == "stop" {
            (
                reqwest::Method::POST,
                format!("/api/conversations/{cid}/stop"),
            )
        } else {
            (reqwest::Method::DELETE, format!("/api/conversations/{cid}"))
        };
        assert_eq!(send(&server, method, &path, None).await.0, 200);
        let start = Instant::now();
        while [secs.to_string(), format!("{secs}1"), format!("{secs}2")]
            .iter()
            .any(|s| alive(&format!("sleep {s}")))
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{how}: a daemon outlived its conversation"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn responses_carry_security_headers_and_the_store_is_private() {
    let server = Server::start();
    for path in ["/", "/api/settings", "/alive"] {
        let r = http().get(server.url(path)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let store = server.dir.join("store");
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&store.join("openhands.db")), 0o600);
}

#[tokio::test]
async fn socket_sessions_are_bounded_and_unauthenticated_ones_are_small_and_short() {
    let server = Server::with_env(&[
        ("SESSION_API_KEY", "k3y"),
        ("LIMITS_MAX_ENGINEIO_SESSIONS_PER_CLIENT", "3"),
        ("LIMITS_AUTH_DEADLINE_SECONDS", "1"),
    ]);
    let handshake = |extra: &str| {
        http()
            .get(server.url(&format!(
                "/socket.io/?EIO=4&transport=polling&conversation_id=c{extra}"
            )))
            .send()
    };
    let mut sids = Vec::new();
    for _ in 0..3 {
        let r = handshake("").await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let text = r.text().await.unwrap();
        let open: Value = serde_json::from_str(&text[1..]).unwrap();
        sids.push(open["sid"].as_str().unwrap().to_string());
    }
    assert_eq!(
        handshake("").await.unwrap().status().as_u16(),
        503,
        "a 4th session from one client"
    );
    // Without the key, a session takes only small packets…
    let big = format!("40{{\"pad\":\"{}\"}}", "x".repeat(100_000));
    let r = http()
        .post(server.url(&format!(
            "/socket.io/?EIO=4&transport=polling&sid={}",
            sids[0]
        )))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // …and closes when it does not authenticate in time, freeing its place.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(handshake("").await.unwrap().status().as_u16(), 200);
    // Huge query strings are refused outright.
    let r = handshake(&"y".repeat(60_000)).await.unwrap();
    assert_eq!(r.status().as_u16(), 414);
}

#[tokio::test]
async fn slow_clients_cannot_hold_connections() {
    let server = Server::with_env(&[("LIMITS_HEADER_READ_TIMEOUT_SECONDS", "1")]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/settings HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
    )
    .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the connection stayed open {:?}",
        started.elapsed()
    );
    // The server still serves others.
    assert_eq!(
        http()
            .get(server.url("/alive"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn big_histories_come_back_in_bounded_pages() {
    let server = Server::with_env(&[("LIMITS_MAX_RESPONSE_BYTES", "3000")]);
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    for i in 0..10 {
        send_user_action(&mut ws, &message(&format!("{i}{}", "z".repeat(1000)))).await;
    }
    let all = wait_events(&server, &cid, 14).await;
    let (_, page) = get(
        &server,
        &format!("/api/conversations/{cid}/events?limit=100"),
    )
    .await;
    let n = page["events"].as_array().unwrap().len();
    assert!(n < all.len() && n >= 1, "{n}");
    assert_eq!(page["has_more"], true);
    // The trajectory pages through everything, once.
    let mut seen = 0;
    let mut start = 0;
    for _ in 0..20 {
        let (s, t) = get(
            &server,
            &format!("/api/conversations/{cid}/trajectory?start_id={start}"),
        )
        .await;
        assert_eq!(s, 200);
        let got = t["trajectory"].as_array().unwrap();
        assert!(!got.is_empty());
        assert!(got.iter().map(|e| e.to_string().len()).sum::<usize>() < 3000 + 2500);
        seen += got.len();
        if t["has_more"] != true {
            break;
        }
        start = t["next_start_id"].as_u64().unwrap();
    }
    assert_eq!(seen, wait_events(&server, &cid, all.len()).await.len());
}

#[tokio::test]
async fn the_number_of_conversations_is_bounded() {
    let server = Server::with_env(&[("LIMITS_MAX_CONVERSATIONS", "2")]);
    let create = || {
        send(
            &server,
            reqwest::Method::POST,
            "/api/conversations",
            Some(json!({})),
        )
    };
    assert_eq!(create().await.0, 200);
    assert_eq!(create().await.0, 200);
    let (status, body) = create().await;
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("at most 2"));
    let frames = websocat_oneshot(server.port, "conversation_id=third", "40").await;
    assert!(
        frames.iter().flatten().any(|t| t.starts_with("44")),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_long_message_is_stored_once_and_replayed_byte_for_byte() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let store_bytes = || {
        ["openhands.db", "openhands.db-wal"]
            .iter()
            .map(|f| {
                std::fs::metadata(server.dir.join("store").join(f))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum::<u64>()
    };
    let before = store_bytes();
    let text = "0123456789abcdef".repeat(200_000); // 3.2 MB
    send_user_action(&mut ws, &message(&text)).await;
    let live = next_event_text(&mut ws).await;
    assert!(live.len() > 2 * text.len(), "the wire has the text twice");
    let grown = store_bytes() - before;
    assert!(
        grown < text.len() as u64 * 3 / 2,
        "stored {grown} bytes for a {} byte text",
        text.len()
    );
    let mut again = ws_connect(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=2"),
    )
    .await;
    assert_eq!(next_event_text(&mut again).await, live);
}

#[tokio::test]
async fn descriptors_the_server_inherited_never_reach_the_agents_processes() {
    let server = Server::start_with(Options {
        leak_fd: true,
        ..Default::default()
    });
    let cid = "fdleak";
    let mut ws = ws_ready(
        server.port,
        &format!("conversation_id={cid}&latest_event_id=-1"),
    )
    .await;
    let obs = act(
        &mut ws,
        &json!({"action": "run", "args": {"command": "if [ -e /proc/$$/fd/5 ]; then echo leaked; else echo clean; fi"}}),
    )
    .await;
    assert_eq!(obs["content"].as_str().unwrap().trim(), "clean", "{obs}");
    // The check can fail: the server itself did inherit it.
    let pid = server.child.id();
    assert!(std::path::Path::new(&format!("/proc/{pid}/fd/5")).exists());
}
