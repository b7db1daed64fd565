//! REST routes of docs/protocol.md that need no agent.

mod common;
use common::*;
use serde_json::{json, Value};

fn event_ids(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn health_routes_answer_with_json() {
    let server = Server::start();
    assert_eq!(
        get(&server, "/api/health").await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(get(&server, "/alive").await, (200, json!({"status": "ok"})));
    assert_eq!(get(&server, "/health").await, (200, json!("OK")));
    let (s, info) = get(&server, "/server_info").await;
    assert_eq!(s, 200);
    assert!(info["uptime"].as_f64().is_some());
    assert!(info["resources"]["memory"]["rss"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn conversation_lifecycle_over_rest() {
    let server = Server::start();
    let (s, created) = send(
        &server,
        reqwest::Method::POST,
        "/api/conversations",
        Some(json!({"initial_user_msg": "Build a todo app please, with tests and docs"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(created["status"], "ok");
    let cid = created["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(cid.len(), 32);
    // Stored as upstream does: loading, then the initial message.
    let events = wait_events(&server, &cid, 2).await;
    assert_eq!(events[0]["extras"]["agent_state"], "loading");
    assert_eq!(
        events[1]["args"]["content"],
        "Build a todo app please, with tests and docs"
    );
    assert_eq!(events[1]["source"], "user");

    let (s, info) = get(&server, &format!("/api/conversations/{cid}")).await;
    assert_eq!(s, 200);
    assert_eq!(info["status"], "RUNNING");
    assert_eq!(info["url"], format!("/api/conversations/{cid}"));
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "conversation_id",
            "title",
            "last_updated_at",
            "status",
            "runtime_status",
            "selected_repository",
            "selected_branch",
            "git_provider",
            "trigger",
            "num_connections",
            "url",
            "session_api_key",
            "created_at",
            "pr_number",
            // Ours after upstream's fields: the LLM usage its metadata keeps.
            "llm_model",
            "accumulated_cost",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens"
        ]
    );
    // The title comes from the first message once it is stored.
    let mut title = String::new();
    for _ in 0..50 {
        title = get(&server, &format!("/api/conversations/{cid}")).await.1["title"]
            .as_str()
            .unwrap()
            .to_string();
        if title != format!("Conversation {}", &cid[..5]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(title, "Build a todo app please, with ...");

    let (s, v) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/conversations/{cid}"),
        Some(json!({"title": "Renamed"})),
    )
    .await;
    assert_eq!((s, v), (200, json!(true)));
    assert_eq!(
        get(&server, &format!("/api/conversations/{cid}")).await.1["title"],
        "Renamed"
    );
    let (s, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/conversations/{cid}"),
        Some(json!({"title": "x", "extra": 1})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/conversations/{cid}"),
        Some(json!({"title": ""})),
    )
    .await;
    assert_eq!(s, 422);

    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/stop"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["message"], "Conversation stopped successfully");
    assert_eq!(
        get(&server, &format!("/api/conversations/{cid}")).await.1["status"],
        "STOPPED"
    );
    let (_, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/stop"),
        None,
    )
    .await;
    assert_eq!(v["message"], "Conversation was not running");
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/start"),
        Some(json!({"providers_set": null})),
    )
    .await;
    assert_eq!(
        (s, v["conversation_status"].clone()),
        (200, json!("RUNNING"))
    );
    assert_eq!(
        get(&server, &format!("/api/conversations/{cid}")).await.1["status"],
        "RUNNING"
    );

    let (s, v) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/conversations/{cid}"),
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!(true)));
    let (s, v) = get(&server, &format!("/api/conversations/{cid}")).await;
    assert_eq!(s, 404);
    assert_eq!(v["msg_id"], "CONVERSATION$NOT_FOUND");
    let (s, v) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/conversations/{cid}"),
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!(false)));
}

#[tokio::test]
async fn listing_pages_newest_first() {
    let server = Server::start();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (_, c) = send(
            &server,
            reqwest::Method::POST,
            "/api/conversations",
            Some(json!({})),
        )
        .await;
        ids.push(c["conversation_id"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let (_, p1) = get(&server, "/api/conversations?limit=2").await;
    let got: Vec<&str> = p1["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    let next = p1["next_page_id"].as_str().unwrap();
    assert_eq!(next, "Mg==");
    let (_, p2) = get(
        &server,
        &format!("/api/conversations?limit=2&page_id={next}"),
    )
    .await;
    assert_eq!(p2["results"][0]["conversation_id"], ids[2].as_str());
    let (_, p3) = get(&server, "/api/conversations?limit=2&page_id=NA==").await;
    assert_eq!(p3["results"].as_array().unwrap().len(), 1);
    assert_eq!(p3["next_page_id"], Value::Null);
    assert_eq!(get(&server, "/api/conversations?limit=0").await.0, 400);
    assert_eq!(get(&server, "/api/conversations?page_id=@@").await.0, 400);
}

#[tokio::test]
async fn events_route_filters_and_pages() {
    let server = Server::start();
    let (_, c) = send(
        &server,
        reqwest::Method::POST,
        "/api/conversations",
        Some(json!({})),
    )
    .await;
    let cid = c["conversation_id"].as_str().unwrap();
    // The agent is ready (loading, change_agent_state, awaiting_user_input) first.
    let startup = wait_events(&server, cid, 3).await;
    assert_eq!(startup[2]["extras"]["agent_state"], "awaiting_user_input");
    for i in 0..30 {
        let (s, v) = send(
            &server,
            reqwest::Method::POST,
            &format!("/api/conversations/{cid}/message"),
            Some(json!({"message": format!("m{i}")})),
        )
        .await;
        assert_eq!((s, v), (200, json!({"success": true})));
    }
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/events"),
        Some(json!({"action": "change_agent_state", "args": {"agent_state": "paused"}})),
    )
    .await;
    assert_eq!((s, v), (200, json!({"success": true})));
    // The start-up states, 30 messages, the agent's error state (no LLM) after the first,
    // the pause and its state.
    let all = wait_events(&server, cid, 36).await;
    assert_eq!(all.len(), 36);
    let (_, page) = get(&server, &format!("/api/conversations/{cid}/events")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 20);
    assert_eq!(page["has_more"], true);
    let (_, page) = get(
        &server,
        &format!("/api/conversations/{cid}/events?start_id=28&limit=100"),
    )
    .await;
    let ids = event_ids(&page);
    assert_eq!(ids, [28, 29, 30, 31, 32, 33, 34, 35]);
    assert_eq!(
        page["events"][6]["message"],
        "Agent state changed to paused"
    );
    assert_eq!(page["events"][7]["extras"]["agent_state"], "paused");
    assert_eq!(page["has_more"], false);
    let (_, page) = get(
        &server,
        &format!("/api/conversations/{cid}/events?reverse=true&limit=3"),
    )
    .await;
    let ids = event_ids(&page);
    assert_eq!(ids, [35, 34, 33]);
    let (_, page) = get(
        &server,
        &format!("/api/conversations/{cid}/events?start_id=2&end_id=4"),
    )
    .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    let (s, v) = get(
        &server,
        &format!("/api/conversations/{cid}/events?limit=101"),
    )
    .await;
    assert_eq!((s, v), (400, json!({"detail": "Invalid limit"})));
    assert_eq!(
        get(
            &server,
            &format!("/api/conversations/{cid}/events?start_id=x")
        )
        .await
        .0,
        400
    );
    let (_, t) = get(&server, &format!("/api/conversations/{cid}/trajectory")).await;
    assert_eq!(t["trajectory"].as_array().unwrap().len(), 36);
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/events"),
        Some(json!({"action": "teleport"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["detail"].as_str().unwrap().contains("teleport"));
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/message"),
        Some(json!({"text": "wrong key"})),
    )
    .await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn unknown_conversations_and_bad_ids_get_json_errors() {
    let server = Server::start();
    let missing = new_id();
    // One body for an unknown conversation, whatever the route.
    let not_found = json!({"status": "error", "message": "Conversation not found", "msg_id": "CONVERSATION$NOT_FOUND"});
    for path in [
        format!("/api/conversations/{missing}"),
        format!("/api/conversations/{missing}/events"),
        format!("/api/conversations/{missing}/trajectory"),
        format!("/api/conversations/{missing}/config"),
        format!("/api/conversations/{missing}/list-files"),
    ] {
        assert_eq!(
            get(&server, &path).await,
            (404, not_found.clone()),
            "{path}"
        );
    }
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{missing}/start"),
        None,
    )
    .await;
    assert_eq!((s, v["status"].clone()), (404, json!("error")));
    assert_eq!(v, not_found);
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{missing}/message"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!((s, v), (404, not_found));
    assert_eq!(get(&server, "/api/conversations/a..b").await.0, 400);
    assert_eq!(get(&server, "/api/conversations/x%2e%2ey").await.0, 400);
    assert_eq!(
        get(&server, "/api/nothing-here").await,
        (404, json!({"detail": "Not Found"}))
    );
    let (s, _) = send(&server, reqwest::Method::PUT, "/api/health", None).await;
    assert_eq!(s, 405);
    // Malformed JSON bodies are 4xx with JSON, never 500.
    let r = http()
        .post(server.url("/api/conversations"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let _: Value = r.json().await.unwrap();
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/conversations",
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn runtime_information_routes_answer() {
    let server = Server::start();
    let (_, c) = send(
        &server,
        reqwest::Method::POST,
        "/api/conversations",
        Some(json!({})),
    )
    .await;
    let cid = c["conversation_id"].as_str().unwrap();
    assert_eq!(
        get(&server, &format!("/api/conversations/{cid}/config"))
            .await
            .1,
        json!({"runtime_id": null, "session_id": cid})
    );
    assert_eq!(
        get(&server, &format!("/api/conversations/{cid}/vscode-url"))
            .await
            .1,
        json!({"vscode_url": null})
    );
    assert_eq!(
        get(&server, &format!("/api/conversations/{cid}/web-hosts"))
            .await
            .1,
        json!({"hosts": {}})
    );
    assert_eq!(
        get(&server, &format!("/api/conversations/{cid}/list-files")).await,
        (200, json!([]))
    );
}

#[tokio::test]
async fn options_and_settings_round_trip() {
    let server = Server::with_env(&[
        ("LLM_MODEL", "openai/gpt-4o"),
        ("LLM_API_KEY", "sk-secret"),
        ("LLM_BASE_URL", "http://127.0.0.1:9/v1"),
    ]);
    let (_, config) = get(&server, "/api/options/config").await;
    assert_eq!(config["APP_MODE"], "oss");
    let (_, models) = get(&server, "/api/options/models").await;
    assert!(models.as_array().unwrap().contains(&json!("openai/gpt-4o")));
    assert_eq!(
        get(&server, "/api/options/agents").await.1,
        json!(["CodeActAgent"])
    );
    assert_eq!(get(&server, "/api/options/security-analyzers").await.0, 200);

    // No settings file: the server config is the default settings.
    let (s, st) = get(&server, "/api/settings").await;
    assert_eq!(s, 200);
    assert_eq!(st["llm_model"], "openai/gpt-4o");
    assert_eq!(st["llm_base_url"], "http://127.0.0.1:9/v1");
    assert_eq!(st["llm_api_key"], Value::Null, "keys are never shown back");
    assert_eq!(st["llm_api_key_set"], true);
    assert_eq!(st["confirmation_mode"], false);
    assert_eq!(st["max_iterations"], 500);

    let (s, v) = send(&server, reqwest::Method::POST, "/api/settings", Some(json!({"llm_model": "anthropic/claude-sonnet-4-20250514", "confirmation_mode": true, "max_iterations": 42}))).await;
    assert_eq!((s, v), (200, json!({"message": "Settings stored"})));
    let (_, st) = get(&server, "/api/settings").await;
    assert_eq!(st["llm_model"], "anthropic/claude-sonnet-4-20250514");
    assert_eq!(st["confirmation_mode"], true);
    assert_eq!(st["max_iterations"], 42);
    assert_eq!(
        st["llm_base_url"], "http://127.0.0.1:9/v1",
        "keys not posted are kept"
    );
    assert_eq!(st["llm_api_key_set"], true);
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"condenser_max_size": 5})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!({"confirmation_mode": "yes"})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/settings",
        Some(json!([1, 2])),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        send(&server, reqwest::Method::POST, "/api/reset-settings", None)
            .await
            .0,
        410
    );
}

#[tokio::test]
async fn session_api_key_guards_rest_but_not_health() {
    let server = Server::with_env(&[("SESSION_API_KEY", "s3cret")]);
    let (s, v) = get(&server, "/api/conversations").await;
    assert_eq!(s, 401);
    assert!(v["detail"].is_string());
    let r = http()
        .get(server.url("/api/conversations"))
        .header("X-Session-API-Key", "s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http()
        .get(server.url("/api/conversations"))
        .header("X-Session-API-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    for path in ["/api/health", "/alive", "/health", "/server_info"] {
        assert_eq!(get(&server, path).await.0, 200, "{path}");
    }
    // Raw sockets: refused with CONNECT_ERROR without the key, accepted with it.
    let cid = new_id();
    let frames = websocat_oneshot(server.port, &format!("conversation_id={cid}"), "40{}").await;
    assert!(
        frames
            .iter()
            .flatten()
            .any(|t| t == r#"44{"message":"invalid_session_api_key"}"#),
        "{frames:?}"
    );
    let frames = websocat_oneshot(
        server.port,
        &format!("conversation_id={cid}"),
        r#"40{"session_api_key":"s3cret"}"#,
    )
    .await;
    assert!(
        frames.iter().flatten().any(|t| t.starts_with("40{\"sid\"")),
        "{frames:?}"
    );
    let frames = websocat_oneshot(
        server.port,
        &format!("conversation_id={cid}&session_api_key=s3cret"),
        "40",
    )
    .await;
    assert!(
        frames.iter().flatten().any(|t| t.starts_with("40{\"sid\"")),
        "{frames:?}"
    );
}

/// A CORS preflight for `POST /api/conversations` from `origin`: status and the
/// allow-origin and allow-credentials headers.
async fn preflight(port: u16, origin: &str) -> (u16, Option<String>, Option<String>) {
    let r = http()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://127.0.0.1:{port}/api/conversations"),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    (
        r.status().as_u16(),
        header("access-control-allow-origin"),
        header("access-control-allow-credentials"),
    )
}

#[tokio::test]
async fn cors_trusts_only_configured_origins_and_never_pairs_a_wildcard_with_credentials() {
    // By default only the server's own pages (same origin, no CORS needed) are trusted.
    let server = Server::start();
    for origin in ["http://localhost:12001", "https://evil.example"] {
        let (status, allow, _) = preflight(server.port, origin).await;
        assert_eq!((status, allow), (403, None), "{origin}");
    }
    let server = Server::with_env(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]);
    assert_eq!(
        preflight(server.port, "https://app.example").await,
        (200, Some("https://app.example".into()), Some("true".into()))
    );
    assert_eq!(
        preflight(server.port, "http://localhost:12001").await.1,
        None
    );
    let server = Server::with_env(&[("CORS_ALLOWED_ORIGINS", "*")]);
    assert_eq!(
        preflight(server.port, "https://any.example").await,
        (200, Some("*".into()), None)
    );
}

#[tokio::test]
async fn opening_the_ui_with_the_key_stores_it_in_a_cookie_for_rest_and_sockets() {
    let server = Server::with_env(&[("SESSION_API_KEY", "s3cret")]);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(server.url("/?session_api_key=s3cret"))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("openhands_session_api_key=s3cret;")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    // The key leaves the address bar (and the history) through a redirect.
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/");
    let r = no_redirects
        .get(server.url("/conversations/abc?x=1&session_api_key=s3cret"))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/conversations/abc?x=1");
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    let r = no_redirects
        .get(server.url("/?session_api_key=wrong"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    let with_cookie = |path: &str| {
        http()
            .get(server.url(path))
            .header("Cookie", "openhands_session_api_key=s3cret")
    };
    assert_eq!(
        with_cookie("/api/conversations")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let r = http()
        .get(server.url("/api/conversations"))
        .header("Cookie", "openhands_session_api_key=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The browser sends the cookie with the Socket.IO handshake too.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server
        .ws_url(&format!("conversation_id={}", new_id()))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Cookie",
        "openhands_session_api_key=s3cret".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let _open = next_text(&mut ws).await;
    futures::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::Text("40".into()),
    )
    .await
    .unwrap();
    assert!(next_text(&mut ws).await.starts_with("40{\"sid\""));
}

#[tokio::test]
async fn a_copied_binary_serves_the_ui_it_finds_beside_itself() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("openhands-server");
    std::fs::copy(env!("CARGO_BIN_EXE_openhands-server"), &bin).unwrap();
    std::fs::create_dir_all(dir.path().join("frontend")).unwrap();
    std::fs::write(
        dir.path().join("frontend/index.html"),
        "<!doctype html><title>beside the binary</title>",
    )
    .unwrap();
    let mut child = std::process::Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("FILE_STORE_PATH", dir.path().join("store"))
        .env_remove("OPENHANDS_FRONTEND_DIR")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().to_string();
    let page = http()
        .get(format!("http://127.0.0.1:{port}/conversations/x"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.contains("beside the binary"), "{page}");
}
