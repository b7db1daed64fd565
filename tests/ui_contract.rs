//! What the genuine OpenHands web UI (0.59) depends on, locked at the protocol level: the
//! UI itself cannot run in CI, so each behaviour it needs from the server is a test here
//! (`scripts/real-ui/` drives the real UI where an OpenHands checkout is at hand).

mod common;
use common::*;
use serde_json::{json, Value};

/// The UI's socket query: `providers_set` empty and `session_api_key` the string `null`.
fn ui_query(cid: &str, latest: i64) -> String {
    format!("latest_event_id={latest}&conversation_id={cid}&providers_set=&session_api_key=null")
}

/// Creates a conversation as the UI's "New conversation" button does (body `{}`).
async fn create(server: &Server) -> String {
    let (s, v) = send(
        server,
        reqwest::Method::POST,
        "/api/conversations",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["conversation_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_new_conversation_is_running_and_its_agent_becomes_ready_before_any_message() {
    let server = Server::start();
    let cid = create(&server).await;
    // The UI opens its socket only for RUNNING with a runtime_status other than STOPPED.
    let (s, info) = get(&server, &format!("/api/conversations/{cid}")).await;
    assert_eq!(s, 200);
    assert_eq!(info["status"], "RUNNING");
    assert_eq!(info["runtime_status"], "STATUS$READY");
    assert_eq!(info["url"], format!("/api/conversations/{cid}"));
    assert_eq!(info["session_api_key"], Value::Null);
    // It waits for an agent state other than loading before enabling its input.
    let mut ws = ws_connect(server.port, &ui_query(&cid, -1)).await;
    let mut startup = Vec::new();
    for _ in 0..STARTUP_EVENTS {
        startup.push(next_stored_event(&mut ws).await);
    }
    let kinds: Vec<(u64, &str, &str, &str)> = startup
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["source"].as_str().unwrap(),
                e["action"].as_str().or(e["observation"].as_str()).unwrap(),
                e["extras"]["agent_state"]
                    .as_str()
                    .or(e["args"]["agent_state"].as_str())
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (0, "environment", "agent_state_changed", "loading"),
            (
                1,
                "environment",
                "change_agent_state",
                "awaiting_user_input"
            ),
            (
                2,
                "environment",
                "agent_state_changed",
                "awaiting_user_input"
            ),
        ]
    );
    // Every payload the UI puts in its chat has id, source, message and timestamp.
    for e in &startup {
        for key in ["id", "source", "message", "timestamp"] {
            assert!(e.get(key).is_some(), "{key} missing: {e}");
        }
    }
    // A reloaded page (latest_event_id = the last id it has) gets nothing twice.
    let mut again = ws_connect(server.port, &ui_query(&cid, 2)).await;
    send_user_action(&mut again, &message("after reload")).await;
    let e = next_stored_event(&mut again).await;
    assert_eq!(
        (e["id"].as_u64(), e["source"].as_str()),
        (Some(3), Some("user"))
    );
}

#[tokio::test]
async fn a_reopened_conversation_announces_its_agent_again() {
    let server = Server::start();
    let cid = create(&server).await;
    wait_events(&server, &cid, STARTUP_EVENTS as usize).await;
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/stop"),
        None,
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (_, info) = get(&server, &format!("/api/conversations/{cid}")).await;
    assert_eq!(info["status"], "STOPPED");
    // The UI calls /start for a STOPPED conversation, then connects after its last id.
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("/api/conversations/{cid}/start"),
        Some(json!({"providers_set": []})),
    )
    .await;
    assert_eq!(
        (s, v["conversation_status"].as_str()),
        (200, Some("RUNNING"))
    );
    let mut ws = ws_connect(server.port, &ui_query(&cid, 2)).await;
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("awaiting_user_input") {
        let e = next_stored_event(&mut ws).await;
        assert!(e["id"].as_u64().unwrap() > 2, "nothing the page has: {e}");
        if e["observation"] == "agent_state_changed" {
            states.push(e["extras"]["agent_state"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(states, ["loading", "awaiting_user_input"]);
}

#[tokio::test]
async fn the_options_and_settings_the_ui_reads_have_the_shapes_it_needs() {
    let server = Server::start();
    let (_, config) = get(&server, "/api/options/config").await;
    // Without APP_MODE "oss" the UI takes the SaaS paths; FEATURE_FLAGS is read unguarded.
    assert_eq!(config["APP_MODE"], "oss");
    for flag in ["ENABLE_BILLING", "HIDE_LLM_SETTINGS"] {
        assert_eq!(config["FEATURE_FLAGS"][flag], false, "{config}");
    }
    for path in [
        "/api/options/models",
        "/api/options/agents",
        "/api/options/security-analyzers",
    ] {
        let (s, v) = get(&server, path).await;
        assert_eq!(s, 200);
        assert!(v.as_array().unwrap().iter().all(Value::is_string), "{v}");
    }
    // Nothing saved and no LLM configured: a 404, which opens the UI's first-run dialog.
    assert_eq!(
        get(&server, "/api/settings").await,
        (404, json!({"error": "Settings not found"}))
    );
    // The MCP page posts only `mcp_config`; the LLM page sends search_api_key "" each time.
    let post = |body: Value| send(&server, reqwest::Method::POST, "/api/settings", Some(body));
    assert_eq!(post(json!({"language": "en"})).await.0, 200);
    let (s, settings) = get(&server, "/api/settings").await;
    assert_eq!(s, 200);
    // An object (the integrations page indexes it); false here would loop the UI.
    assert!(settings["provider_tokens_set"].is_object(), "{settings}");
    assert_ne!(settings["email_verified"], false);
    assert!(settings["mcp_config"].is_null(), "{settings}");
    assert!(settings["user_consents_to_analytics"].is_boolean());
    assert!(settings["llm_model"].is_null(), "{settings}");
    // With an LLM in the server's configuration, that is the settings (no dialog).
    let configured = Server::with_env(&[("LLM_MODEL", "openai/from-env")]);
    let (s, v) = get(&configured, "/api/settings").await;
    assert_eq!((s, v["llm_model"].as_str()), (200, Some("openai/from-env")));
    assert_eq!(
        post(json!({"llm_model": "openai/m1", "llm_api_key": "k1", "search_api_key": "s1", "confirmation_mode": true}))
            .await
            .0,
        200
    );
    let mcp = json!({"sse_servers": [], "stdio_servers": [], "shttp_servers": []});
    assert_eq!(post(json!({"mcp_config": mcp})).await.0, 200);
    assert_eq!(
        post(json!({"search_api_key": "", "language": "de"}))
            .await
            .0,
        200
    );
    let (_, settings) = get(&server, "/api/settings").await;
    assert_eq!(settings["llm_model"], "openai/m1");
    assert_eq!(settings["confirmation_mode"], true);
    assert_eq!(settings["mcp_config"], mcp);
    assert_eq!(settings["language"], "de");
    assert_eq!(
        (
            settings["llm_api_key_set"].as_bool(),
            settings["search_api_key_set"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert!(!settings.to_string().contains("k1") && !settings.to_string().contains("s1"));
}

#[tokio::test]
async fn the_side_panels_get_their_normal_empty_states() {
    let server = Server::start();
    let cid = create(&server).await;
    let base = format!("/api/conversations/{cid}");
    let (s, v) = get(&server, &format!("{base}/config")).await;
    assert_eq!(s, 200);
    assert!(v.get("runtime_id").is_some(), "{v}");
    assert_eq!(
        get(&server, &format!("{base}/web-hosts")).await,
        (200, json!({"hosts": {}}))
    );
    assert_eq!(
        get(&server, &format!("{base}/vscode-url")).await,
        (200, json!({"vscode_url": null}))
    );
    assert_eq!(
        get(&server, &format!("{base}/microagents")).await,
        (200, json!({"microagents": []}))
    );
    // The Changes tab recognises "not a git repository" in `error` and says so.
    let (s, v) = get(&server, &format!("{base}/git/changes")).await;
    assert_eq!(s, 404);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("not a git repository"),
        "{v}"
    );
    // The list of conversations has what the home page's cards show.
    let (_, list) = get(&server, "/api/conversations?limit=10").await;
    let card = &list["results"][0];
    for key in [
        "conversation_id",
        "title",
        "status",
        "created_at",
        "last_updated_at",
    ] {
        assert!(card[key].is_string(), "{key}: {card}");
    }
    assert!(list.get("next_page_id").is_some());
    // Feedback goes nowhere from this server: a clear error the UI shows as a toast.
    let (s, v) = send(
        &server,
        reqwest::Method::POST,
        &format!("{base}/submit-feedback"),
        Some(json!({"polarity": "positive"})),
    )
    .await;
    assert_eq!(s, 501);
    assert!(v["error"].as_str().unwrap().contains("not available"));
}

#[tokio::test]
async fn a_stopped_agent_resumes_on_the_next_message_as_the_ui_resumes_it() {
    let server = Server::start();
    let cid = new_id();
    let mut ws = ws_ready(server.port, &ui_query(&cid, -1)).await;
    send_user_action(
        &mut ws,
        &json!({"action": "change_agent_state", "args": {"agent_state": "stopped"}}),
    )
    .await;
    let mut last_state = String::new();
    while last_state != "stopped" {
        let p = next_payload(&mut ws).await;
        if p["observation"] == "agent_state_changed" {
            last_state = p["extras"]["agent_state"].as_str().unwrap().into();
        }
    }
    // The UI's Resume button sends a plain message; without an LLM the agent then says
    // clearly why it cannot run, with the reason the UI shows in its banner.
    send_user_action(&mut ws, &message("continue")).await;
    loop {
        let p = next_payload(&mut ws).await;
        if p["observation"] == "agent_state_changed" {
            assert_eq!(p["extras"]["agent_state"], "error", "{p}");
            assert!(p["extras"]["reason"].as_str().unwrap().contains("LLM"));
            break;
        }
    }
}

#[tokio::test]
async fn secrets_are_listed_without_values_and_reach_the_shell() {
    let server = Server::start();
    let post = |body: Value| send(&server, reqwest::Method::POST, "/api/secrets", Some(body));
    let (s, v) =
        post(json!({"name": "MY_TOKEN", "value": "s3cr3t-value", "description": "for the API"}))
            .await;
    assert_eq!(
        (s, v),
        (201, json!({"message": "Secret created successfully"}))
    );
    assert_eq!(post(json!({"name": "MY_TOKEN", "value": "x"})).await.0, 400);
    assert_eq!(post(json!({"name": "bad name", "value": "x"})).await.0, 400);
    assert_eq!(
        post(json!({"name": "HUGE", "value": "x".repeat(70_000)}))
            .await
            .0,
        400
    );
    assert_eq!(post(json!({"name": "X"})).await.0, 422);
    let (s, list) = get(&server, "/api/secrets").await;
    assert_eq!(s, 200);
    assert_eq!(
        list,
        json!({"custom_secrets": [{"name": "MY_TOKEN", "description": "for the API"}]})
    );
    let (_, settings) = get(&server, "/api/settings").await;
    assert!(!settings.to_string().contains("s3cr3t"), "{settings}");
    assert!(!settings.to_string().contains("MY_TOKEN"), "{settings}");
    // A conversation's shell has it as an environment variable.
    let cid = new_id();
    let mut ws = ws_ready(server.port, &ui_query(&cid, -1)).await;
    let obs = act(
        &mut ws,
        &json!({"action": "run", "args": {"command": "echo \"[$MY_TOKEN]\""}}),
    )
    .await;
    assert_eq!(obs["content"].as_str().unwrap().trim(), "[s3cr3t-value]");
    // Renamed (its value kept), then deleted.
    let (s, _) = send(
        &server,
        reqwest::Method::PUT,
        "/api/secrets/MY_TOKEN",
        Some(json!({"name": "RENAMED", "description": "d"})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, list) = get(&server, "/api/secrets").await;
    assert_eq!(list["custom_secrets"][0]["name"], "RENAMED");
    let del = |path: &'static str| send(&server, reqwest::Method::DELETE, path, None);
    assert_eq!(del("/api/secrets/RENAMED").await.0, 200);
    assert_eq!(del("/api/secrets/RENAMED").await.0, 404);
    assert_eq!(
        get(&server, "/api/secrets").await,
        (200, json!({"custom_secrets": []}))
    );
}

#[tokio::test]
async fn with_a_session_key_the_uis_socket_connects_on_its_cookie_despite_session_api_key_null() {
    let server = Server::with_env(&[("SESSION_API_KEY", "k3y")]);
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let connect = |cookie: &'static str| {
        let mut req = server
            .ws_url(&ui_query(&new_id(), -1))
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("Cookie", cookie.parse().unwrap());
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let _open = next_text(&mut ws).await;
            futures::SinkExt::send(
                &mut ws,
                tokio_tungstenite::tungstenite::Message::Text("40".into()),
            )
            .await
            .unwrap();
            next_text(&mut ws).await
        }
    };
    assert!(connect("openhands_session_api_key=k3y")
        .await
        .starts_with("40{\"sid\""));
    assert!(connect("openhands_session_api_key=nope")
        .await
        .starts_with("44"));
}

/// The field names of `interface NAME` in our web UI's wire types.
fn ui_interface_fields(name: &str) -> Vec<String> {
    let ts = include_str!("../frontend/src/lib/types.ts");
    let start = ts
        .find(&format!("export interface {name} {{"))
        .unwrap_or_else(|| panic!("interface {name} in types.ts"));
    let body = &ts[start..start + ts[start..].find("\n}").unwrap()];
    body.lines()
        .skip(1)
        .filter_map(|l| {
            l.trim()
                .split_once([':', '?'])
                .map(|(k, _)| k.trim().to_string())
        })
        .filter(|k| !k.starts_with('[') && !k.starts_with("//") && !k.is_empty())
        .collect()
}

#[tokio::test]
async fn every_field_our_ui_reads_from_a_conversation_is_served() {
    let server = Server::start();
    let cid = create(&server).await;
    let (_, info) = get(&server, &format!("/api/conversations/{cid}")).await;
    let fields = ui_interface_fields("ConversationInfo");
    assert!(fields.len() >= 5, "{fields:?}");
    for f in fields {
        assert!(info.get(&f).is_some(), "{f} missing from {info}");
    }
}

#[tokio::test]
async fn every_field_our_ui_reads_from_settings_and_notices_is_served() {
    let server = Server::with_env(&[("LLM_MODEL", "openai/m")]);
    let (_, settings) = get(&server, "/api/settings").await;
    for f in ui_interface_fields("Settings") {
        assert!(settings.get(&f).is_some(), "{f} missing from {settings}");
    }
    // Status updates and error notices as the socket sends them.
    let cid = new_id();
    let mut ws = ws_ready(server.port, &ui_query(&cid, -1)).await;
    send_user_action(&mut ws, &json!({"action": "teleport"})).await;
    let error = next_payload(&mut ws).await;
    for f in ui_interface_fields("ErrorNotice") {
        if f != "error_code" {
            assert!(error.get(&f).is_some(), "{f} missing from {error}");
        }
    }
    let (s, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/conversations/{cid}"),
        Some(json!({"title": "Renamed"})),
    )
    .await;
    assert_eq!(s, 200);
    let title = loop {
        let p = next_payload(&mut ws).await;
        if p.get("conversation_title").is_some() {
            break p;
        }
    };
    for f in ui_interface_fields("StatusUpdate") {
        // A title change has no `id` (it is not a RuntimeStatus).
        if f != "id" {
            assert!(title.get(&f).is_some(), "{f} missing from {title}");
        }
    }
}
