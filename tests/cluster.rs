//! Cluster mode: three real server processes sharing one real PostgreSQL database and
//! one real Redis, driven by a scripted LLM.

mod common;
#[allow(dead_code)]
#[path = "common/llm.rs"]
mod llm;
#[path = "common/redis.rs"]
mod redis_server;

use common::*;

use common::postgres::Postgres;
use llm::{call, Reply, ScriptedLlm};
use redis_server::Redis;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const LEASE_MS: u64 = 2000;

/// A node of the cluster: the real binary on `db` and `redis`, with the scripted LLM,
/// all nodes sharing `workspace`.
fn node(llm: &ScriptedLlm, db: &str, redis: &Redis, workspace: &std::path::Path) -> Server {
    node_with(llm, db, redis, workspace, &[])
}

/// [`node`] with more settings.
fn node_with(
    llm: &ScriptedLlm,
    db: &str,
    redis: &Redis,
    workspace: &std::path::Path,
    extra: &[(&str, &str)],
) -> Server {
    let url = redis.url();
    let lease = LEASE_MS.to_string();
    let mut env = vec![
        ("LLM_MODEL", "openai/scripted-model"),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_BASE_URL", llm.base_url.as_str()),
        ("DATABASE_URL", db),
        ("REDIS_URL", &url),
        ("CLUSTER_LEASE_MS", &lease),
        ("CLUSTER_POLL_MS", "200"),
        ("WORKSPACE_BASE", workspace.to_str().unwrap()),
        ("SANDBOX_NO_CHANGE_TIMEOUT", "30"),
    ];
    env.extend_from_slice(extra);
    Server::with_env(&env)
}

/// The raw JSON of the next stored event, or a notice's JSON (prefixed `notice:`).
async fn next_frame(ws: &mut Ws) -> String {
    loop {
        let t = next_text(ws).await;
        if let Some(rest) = t.strip_prefix("42[\"oh_event\",") {
            let json = &rest[..rest.len() - 1];
            if json.starts_with("{\"id\":") {
                return json.to_string();
            }
        }
    }
}

/// Stored events (raw JSON) up to and including the first `run` action, within 20 s.
async fn until_run(ws: &mut Ws) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), next_frame(ws))
            .await
            .expect("the command");
        let run = e.contains("\"action\":\"run\"");
        seen.push(e);
        if run {
            return seen;
        }
    }
}

/// The next Socket.IO event: its name (`oh_event`, `oh_output`, …) and its payload.
async fn next_named(ws: &mut Ws) -> (String, Value) {
    loop {
        let t = next_text(ws).await;
        if let Some(rest) = t.strip_prefix("42[\"") {
            if let Some((name, payload)) = rest.split_once("\",") {
                let v: Value = serde_json::from_str(&payload[..payload.len() - 1]).unwrap();
                return (name.to_string(), v);
            }
        }
    }
}

/// Stored events (raw JSON) until the agent reaches `state`, within `limit`.
async fn until_state(ws: &mut Ws, state: &str, limit: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let json = tokio::time::timeout(left, next_frame(ws))
            .await
            .unwrap_or_else(|_| panic!("no {state} state; saw {seen:#?}"));
        let v: Value = serde_json::from_str(&json).unwrap();
        seen.push(json);
        if v["observation"] == "agent_state_changed" && v["extras"]["agent_state"] == state {
            return seen;
        }
    }
}

/// Who holds conversation `cid`'s lease, as Redis says (`host-pid-…`).
async fn lease_holder(redis: &Redis, cid: &str) -> Option<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(format!("oh:lease:{cid}"))
        .query_async(&mut con)
        .await
        .unwrap()
}

fn ids(events: &[String]) -> Vec<u64> {
    events.iter().map(|e| id_of(e)).collect()
}

fn assert_dense(events: &[String]) {
    let ids = ids(events);
    assert_eq!(
        ids,
        (ids[0]..ids[0] + ids.len() as u64).collect::<Vec<_>>(),
        "ids not dense: {events:#?}"
    );
}

#[test]
fn cluster_mode_refuses_to_start_without_the_postgresql_store() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openhands-server"))
        .args(["--port", "0", "--redis-url", "redis://127.0.0.1:1/"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_give_every_client_the_same_stream_and_the_owner_runs_a_message_sent_through_another_node(
) {
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "echo ran-on-$PPID", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "done"})),
    ])
    .await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let c = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    // A opens it first and so owns it; B and C follow.
    let mut wa = ws_ready(a.port, &query).await;
    let holder = lease_holder(&redis, &cid).await.expect("a lease");
    assert!(holder.contains(&format!("-{}-", a.child.id())), "{holder}");
    let mut wb = ws_ready(b.port, &query).await;
    let mut wc = ws_ready(c.port, &query).await;
    send_user_action(&mut wb, &message("run it")).await;
    let limit = Duration::from_secs(30);
    let (ea, eb, ec) = tokio::join!(
        until_state(&mut wa, "finished", limit),
        until_state(&mut wb, "finished", limit),
        until_state(&mut wc, "finished", limit),
    );
    // Byte-identical from the message on, with no gap and no duplicate.
    let from = |events: &[String]| -> Vec<String> {
        let i = events
            .iter()
            .position(|e| e.contains("\"run it\""))
            .expect("the message");
        events[i..].to_vec()
    };
    assert_eq!(from(&ea), from(&eb));
    assert_eq!(from(&ea), from(&ec));
    assert_dense(&ea);
    assert_dense(&eb);
    // The message went through B but was stored and run by A.
    let message = ea.iter().find(|e| e.contains("\"run it\"")).unwrap();
    assert!(message.contains("\"source\":\"user\""), "{message}");
    let obs: Value = serde_json::from_str(
        ea.iter()
            .find(|e| e.contains("\"observation\":\"run\""))
            .expect("the command's output"),
    )
    .unwrap();
    assert!(
        obs["content"].as_str().unwrap().starts_with("ran-on-"),
        "{obs}"
    );
    assert_eq!(llm.requests().len(), 2);
    // Every node reads the same stored events.
    let stored_a = wait_events(&a, &cid, ea.len()).await;
    let stored_c = wait_events(&c, &cid, ea.len()).await;
    assert_eq!(stored_a, stored_c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owner_is_killed_another_node_takes_over_within_the_lease_and_acts_on_a_message_sent_after_the_kill(
) {
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "sleep 30", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "continued"})),
    ])
    .await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let mut a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let c = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    let mut wa = ws_ready(a.port, &query).await;
    let mut wb = ws_ready(b.port, &query).await;
    let mut wc = ws_ready(c.port, &query).await;
    send_user_action(&mut wa, &message("start the long command")).await;
    // Wait until the command runs on A (B sees its action).
    let before_b = until_run(&mut wb).await;
    drop(wa);
    a.sigkill();
    let killed = Instant::now();
    // Sent to a surviving node right after the kill: acted on after the takeover.
    send_user_action(&mut wc, &message("please continue")).await;
    // B's client sees the new owner's notice within the lease time and a second.
    let mut after_b = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), next_frame(&mut wb))
            .await
            .expect("the takeover");
        let notice = e.contains("STATUS$RUNTIME_LOST");
        after_b.push(e);
        if notice {
            break;
        }
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(LEASE_MS + 1000),
        "takeover took {took:?}"
    );
    let limit = Duration::from_secs(30);
    let (rest_b, after_c) = tokio::join!(
        until_state(&mut wb, "finished", limit),
        until_state(&mut wc, "finished", limit),
    );
    after_b.extend(rest_b);
    let notice_at = |events: &[String]| {
        events
            .iter()
            .position(|e| e.contains("STATUS$RUNTIME_LOST"))
            .unwrap_or_else(|| panic!("no takeover notice: {events:#?}"))
    };
    notice_at(&after_b);
    // The new owner is B or C and took over within the lease time and a second.
    let holder = lease_holder(&redis, &cid).await.expect("a new owner");
    assert!(
        holder.contains(&format!("-{}-", b.child.id()))
            || holder.contains(&format!("-{}-", c.child.id())),
        "{holder}"
    );
    // B saw everything once, in order, across the takeover.
    let mut all_b = before_b.clone();
    all_b.extend(after_b.iter().cloned());
    assert_dense(&all_b);
    // C's tail equals B's.
    let tail = |events: &[String]| -> Vec<String> {
        let i = notice_at(events);
        events[i..].to_vec()
    };
    assert_eq!(tail(&after_b), tail(&after_c));
    let msg = after_b
        .iter()
        .position(|e| e.contains("please continue"))
        .expect("the message was stored");
    assert!(msg > notice_at(&after_b));
    // The model was told the shell was lost, and saw the message after it.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let text = requests[1]["messages"].to_string();
    let lost = text
        .find("shell's state")
        .expect("the model saw the notice");
    assert!(text.find("please continue").unwrap() > lost);
    // What the database holds is what the clients saw.
    let stored = wait_events(&b, &cid, id_of(all_b.last().unwrap()) as usize + 1).await;
    let stored_ids: Vec<u64> = stored.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(stored_ids, (0..stored_ids.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_that_lost_its_lease_cannot_append_when_it_resumes() {
    let llm = ScriptedLlm::start(vec![call(
        "execute_bash",
        json!({"command": "sleep 4; echo late-from-the-old-owner", "security_risk": "LOW"}),
    )])
    .await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    let mut wa = ws_ready(a.port, &query).await;
    let mut wb = ws_ready(b.port, &query).await;
    send_user_action(&mut wa, &message("start")).await;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), next_frame(&mut wb))
            .await
            .expect("the command");
        if e.contains("\"action\":\"run\"") {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(a.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // B takes the conversation over while A sleeps.
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), next_frame(&mut wb))
            .await
            .expect("the takeover");
        if e.contains("STATUS$RUNTIME_LOST") {
            break;
        }
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    // A's command ends after it resumed: its output must never be stored.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stored = wait_events(&b, &cid, 1).await;
    let outputs: Vec<&Value> = stored
        .iter()
        .filter(|e| e["observation"] == "run")
        .collect();
    assert!(outputs.is_empty(), "the old owner stored {outputs:?}");
    let ids: Vec<u64> = stored.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    let holder = lease_holder(&redis, &cid).await.expect("an owner");
    assert!(holder.contains(&format!("-{}-", b.child.id())), "{holder}");
    // The new owner still works: a message through A (now a follower) is stored by B.
    send_user_action(&mut wa, &message("after the pause")).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = next_frame(&mut wb).await;
            if e.contains("after the pause") {
                return e;
            }
        }
    })
    .await
    .expect("the message reached B");
    assert!(id_of(&seen) >= ids.len() as u64);
}

/// A connection to the test Redis, to look at (or plant) the cluster's keys.
async fn redis_con(redis: &Redis) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_taken_by_an_owner_that_died_before_storing_it_is_stored_once_by_the_next_owner()
{
    let llm = ScriptedLlm::start(vec![call("finish", json!({"message": "acted on it"}))]).await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let mut a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    let wa = ws_ready(a.port, &query).await;
    let holder = lease_holder(&redis, &cid).await.expect("a lease");
    assert!(holder.contains(&format!("-{}-", a.child.id())), "{holder}");
    let mut wb = ws_ready(b.port, &query).await;
    drop(wa);
    a.sigkill();
    // As if A had moved the command out of the inbox and died before storing it; the
    // same command was also delivered twice more (a retried forward).
    let item = json!({
        "req": "req-before-the-crash",
        "from": "a-node-that-is-gone",
        "event": message("taken before the crash"),
    })
    .to_string();
    let mut con = redis_con(&redis).await;
    for key in ["taken", "taken", "inbox"] {
        let _: i64 = redis::cmd("RPUSH")
            .arg(format!("oh:{key}:{cid}"))
            .arg(&item)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let events = until_state(&mut wb, "finished", Duration::from_secs(20)).await;
    let copies = events
        .iter()
        .filter(|e| e.contains("taken before the crash"))
        .count();
    assert_eq!(copies, 1, "{events:#?}");
    assert_dense(&events);
    let stored = wait_events(&b, &cid, id_of(events.last().unwrap()) as usize + 1).await;
    let stored_copies = stored
        .iter()
        .filter(|e| {
            e["message"] == "taken before the crash"
                || e["args"]["content"] == "taken before the crash"
        })
        .count();
    assert_eq!(stored_copies, 1, "{stored:#?}");
    assert_eq!(llm.requests().len(), 1);
    // Nothing is left waiting once the event is durable.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in ["taken", "inbox"] {
        let len: i64 = redis::cmd("LLEN")
            .arg(format!("oh:{key}:{cid}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(len, 0, "oh:{key}");
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

/// `POST /api/conversations`: its status and JSON body.
async fn create_conversation(server: &Server) -> (u16, Value) {
    let r = http()
        .post(server.url("/api/conversations"))
        .json(&json!({}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_during_a_run_refuses_new_work_clearly_keeps_the_run_and_every_stream_whole(
) {
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "sleep 5; echo survived-redis", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "first done"})),
        call("finish", json!({"message": "second done"})),
    ])
    .await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    let mut wa = ws_ready(a.port, &query).await;
    let mut wb = ws_ready(b.port, &query).await;
    send_user_action(&mut wb, &message("start")).await;
    let mut seen_b = until_run(&mut wb).await;
    redis.stop();
    let body = wait_health(&b, 503).await;
    assert!(body.contains("unhealthy"), "{body}");
    // New work is refused with a clear JSON error, and quickly.
    let started = Instant::now();
    let (status, err) = create_conversation(&b).await;
    assert_eq!(status, 503, "{err}");
    assert!(err.to_string().contains("Redis is unreachable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A socket to a conversation nobody has open here is refused with the reason.
    let url = format!(
        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket&conversation_id={}",
        b.port,
        new_id()
    );
    let (mut refused, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(next_text(&mut refused).await.starts_with("0{"));
    use futures::SinkExt;
    refused
        .send(tokio_tungstenite::tungstenite::Message::Text("40".into()))
        .await
        .unwrap();
    let answer = next_text(&mut refused).await;
    assert!(answer.starts_with("44"), "{answer}");
    assert!(answer.contains("Redis is unreachable"), "{answer}");
    // Down for longer than a lease.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 500)).await;
    redis.restart();
    wait_health(&a, 200).await;
    wait_health(&b, 200).await;
    let limit = Duration::from_secs(30);
    let (rest_a, rest_b) = tokio::join!(
        until_state(&mut wa, "finished", limit),
        until_state(&mut wb, "finished", limit),
    );
    seen_b.extend(rest_b);
    assert_dense(&seen_b);
    assert_eq!(
        &rest_a[rest_a.len() - 3..],
        &seen_b[seen_b.len() - 3..],
        "the same stream on both nodes"
    );
    // The run went on on its owner: its output is there, no takeover happened.
    assert!(
        seen_b.iter().any(|e| e.contains("survived-redis")),
        "{seen_b:#?}"
    );
    assert!(!seen_b.iter().any(|e| e.contains("STATUS$RUNTIME_LOST")));
    let holder = lease_holder(&redis, &cid).await.expect("the lease is back");
    assert!(holder.contains(&format!("-{}-", a.child.id())), "{holder}");
    // Work goes on: a message through B is run by A; new conversations start again.
    send_user_action(&mut wb, &message("after redis")).await;
    let more = until_state(&mut wb, "finished", limit).await;
    seen_b.extend(more);
    assert_dense(&seen_b);
    assert!(seen_b.iter().any(|e| e.contains("second done")));
    assert_eq!(llm.requests().len(), 3);
    let (status, created) = create_conversation(&b).await;
    assert_eq!(status, 200, "{created}");
    let stored = wait_events(&a, &cid, id_of(seen_b.last().unwrap()) as usize + 1).await;
    let ids: Vec<u64> = stored.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarting_between_turns_is_survived_by_every_node_without_a_gap() {
    let llm = ScriptedLlm::start(vec![
        call("finish", json!({"message": "before the outage"})),
        call("finish", json!({"message": "after the outage"})),
    ])
    .await;
    let pg = Postgres::start();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    let mut wa = ws_ready(a.port, &query).await;
    let mut wb = ws_ready(b.port, &query).await;
    send_user_action(&mut wb, &message("one")).await;
    let limit = Duration::from_secs(30);
    let (mut seen_a, mut seen_b) = tokio::join!(
        until_state(&mut wa, "finished", limit),
        until_state(&mut wb, "finished", limit),
    );
    pg.stop();
    wait_health(&a, 503).await;
    wait_health(&b, 503).await;
    let (status, err) = create_conversation(&b).await;
    assert!(status >= 500, "{status} {err}");
    // Down for longer than a lease: the owner keeps its lease (Redis is up).
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 500)).await;
    pg.restart();
    wait_health(&a, 200).await;
    wait_health(&b, 200).await;
    send_user_action(&mut wb, &message("two")).await;
    let (more_a, more_b) = tokio::join!(
        until_state(&mut wa, "finished", limit),
        until_state(&mut wb, "finished", limit),
    );
    seen_a.extend(more_a);
    seen_b.extend(more_b);
    assert_dense(&seen_b);
    let from = |events: &[String]| -> Vec<String> {
        let i = events.iter().position(|e| e.contains("\"one\"")).unwrap();
        events[i..].to_vec()
    };
    assert_eq!(from(&seen_a), from(&seen_b));
    assert!(seen_b.iter().any(|e| e.contains("after the outage")));
    assert!(!seen_b.iter().any(|e| e.contains("STATUS$RUNTIME_LOST")));
    let holder = lease_holder(&redis, &cid).await.expect("an owner");
    assert!(holder.contains(&format!("-{}-", a.child.id())), "{holder}");
    let stored = wait_events(&b, &cid, id_of(seen_b.last().unwrap()) as usize + 1).await;
    let ids: Vec<u64> = stored.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_node_sees_the_owners_command_output_as_it_is_produced() {
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "for i in 1 2 3 4; do echo tick$i; sleep 0.5; done", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "counted"})),
    ])
    .await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let mut wa = ws_ready(a.port, &format!("conversation_id={cid}&latest_event_id=-1")).await;
    let mut wb = ws_ready(
        b.port,
        &format!("conversation_id={cid}&latest_event_id=-1&stream_output=true"),
    )
    .await;
    send_user_action(&mut wa, &message("count slowly")).await;
    // On B: the run action, then its output as it grows, then the observation.
    let (mut run_id, mut chunks, mut observation) = (None, Vec::new(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while observation.is_none() {
        assert!(Instant::now() < deadline, "no observation on B");
        let (name, v) = next_named(&mut wb).await;
        if name == "oh_output" {
            assert_eq!(v["kind"], "command", "{v}");
            assert_eq!(
                v["action_id"].as_u64(),
                run_id,
                "output after its action: {v}"
            );
            chunks.push(v);
        } else if name == "oh_event" {
            if v["action"] == "run" {
                run_id = v["id"].as_u64();
            } else if v["observation"] == "run" {
                observation = Some(v);
            }
        }
    }
    let text: String = chunks
        .iter()
        .map(|c| c["chunk"].as_str().unwrap())
        .collect();
    assert!(
        text.contains("tick1") && text.contains("tick3"),
        "{chunks:#?}"
    );
    let seqs: Vec<u64> = chunks.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(
        chunks.len() >= 2,
        "it grew in several messages: {chunks:#?}"
    );
    assert!(observation.unwrap()["content"]
        .as_str()
        .unwrap()
        .contains("tick4"));
    // A client of the owner without the flag gets no output messages.
    let mut got_output = false;
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        if let Ok(t) = tokio::time::timeout(Duration::from_millis(100), next_text(&mut wa)).await {
            got_output |= t.starts_with("42[\"oh_output\"");
        }
    }
    assert!(!got_output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_answer_streams_to_a_watching_client_of_another_node() {
    let words = ["Thinking ", "across ", "nodes ", "now."];
    let mut chunks: Vec<Value> = words
        .iter()
        .map(|w| json!({"id": "s1", "choices": [{"delta": {"content": w}}]}))
        .collect();
    chunks.push(
        json!({"id": "s1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
    );
    let llm = ScriptedLlm::start(vec![Reply::SsePaced(chunks, Duration::from_millis(200))]).await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    // Nobody on the owner watches; a client of B does.
    let mut wa = ws_ready(a.port, &format!("conversation_id={cid}&latest_event_id=-1")).await;
    let mut wb = ws_ready(
        b.port,
        &format!("conversation_id={cid}&latest_event_id=-1&stream_output=true"),
    )
    .await;
    // The owner learns of B's watcher within a few polls.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    send_user_action(&mut wa, &message("think aloud")).await;
    let mut thoughts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        assert!(Instant::now() < deadline, "no answer on B");
        let (name, v) = next_named(&mut wb).await;
        if name == "oh_output" {
            assert_eq!(v["kind"], "thought", "{v}");
            thoughts.push(v);
        } else if name == "oh_event" && v["source"] == "agent" && v["action"] == "message" {
            break v;
        }
    };
    assert_eq!(answer["args"]["content"], "Thinking across nodes now.");
    let text: String = thoughts
        .iter()
        .map(|o| o["chunk"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Thinking across nodes now.", "{thoughts:#?}");
    assert!(thoughts.len() >= 2, "as it was written: {thoughts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarting_while_a_command_runs_delays_its_observation_without_a_gap() {
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "sleep 2; echo done-during-the-outage", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "after the outage"})),
    ])
    .await;
    let pg = Postgres::start();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    let mut wa = ws_ready(a.port, &query).await;
    let mut wb = ws_ready(b.port, &query).await;
    send_user_action(&mut wa, &message("run the command")).await;
    // The command runs on A (B sees its action), then the database goes away.
    let mut seen_b = until_run(&mut wb).await;
    pg.stop();
    wait_health(&a, 503).await;
    // The command ends while the database is down; its observation waits for it.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    pg.restart();
    wait_health(&a, 200).await;
    let limit = Duration::from_secs(30);
    let (seen_a, more_b) = tokio::join!(
        until_state(&mut wa, "finished", limit),
        until_state(&mut wb, "finished", limit),
    );
    seen_b.extend(more_b);
    assert_dense(&seen_b);
    assert_dense(&seen_a);
    let from_run = |events: &[String]| -> Vec<String> {
        let i = events
            .iter()
            .position(|e| e.contains("\"action\":\"run\""))
            .unwrap();
        events[i..].to_vec()
    };
    assert_eq!(
        from_run(&seen_a),
        from_run(&seen_b),
        "the same stream on both nodes"
    );
    let observation = seen_b
        .iter()
        .find(|e| e.contains("\"observation\":\"run\""))
        .expect("the command's observation");
    assert!(
        observation.contains("done-during-the-outage"),
        "{observation}"
    );
    assert!(!seen_b.iter().any(|e| e.contains("STATUS$RUNTIME_LOST")));
    let stored = wait_events(&b, &cid, id_of(seen_b.last().unwrap()) as usize + 1).await;
    let ids: Vec<u64> = stored.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_conversation_whose_owner_died_is_taken_over_and_continued_with_nobody_watching()
{
    let llm = ScriptedLlm::start(vec![
        call(
            "execute_bash",
            json!({"command": "sleep 30", "security_risk": "LOW"}),
        ),
        call("finish", json!({"message": "continued unwatched"})),
    ])
    .await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let mut a = node(&llm, &db, &redis, workspace.path());
    let b = node(&llm, &db, &redis, workspace.path());
    let cid = new_id();
    let query = format!("conversation_id={cid}&latest_event_id=-1");
    // Only A ever has the conversation open.
    let mut wa = ws_ready(a.port, &query).await;
    send_user_action(&mut wa, &message("work on it")).await;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), next_frame(&mut wa))
            .await
            .expect("the command");
        if e.contains("\"action\":\"run\"") {
            break;
        }
    }
    // The owner's next renewal records the run in the registry.
    let mut con = redis_con(&redis).await;
    let started = Instant::now();
    loop {
        let running: bool = redis::cmd("SISMEMBER")
            .arg("oh:running")
            .arg(&cid)
            .query_async(&mut con)
            .await
            .unwrap();
        if running {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(wa);
    a.sigkill();
    let killed = Instant::now();
    // B, which never had it open, takes it over and the agent goes on by itself.
    let finished = loop {
        let (status, page) = get(&b, &format!("/api/conversations/{cid}/events?limit=100")).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events
            .iter()
            .any(|e| e["extras"]["agent_state"] == "finished")
        {
            break events;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "not continued: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let holder = lease_holder(&redis, &cid).await.expect("a new owner");
    assert!(holder.contains(&format!("-{}-", b.child.id())), "{holder}");
    let notices = finished
        .iter()
        .filter(|e| e["extras"]["error_id"] == "STATUS$RUNTIME_LOST")
        .count();
    assert_eq!(notices, 1, "{finished:#?}");
    assert!(finished
        .iter()
        .any(|e| e["action"] == "finish" && e.to_string().contains("continued unwatched")));
    let ids: Vec<u64> = finished.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1]["messages"]
        .to_string()
        .contains("shell's state"));
    // Once it finished, it is no longer listed as running.
    let started = Instant::now();
    loop {
        let running: bool = redis::cmd("SISMEMBER")
            .arg("oh:running")
            .arg(&cid)
            .query_async(&mut con)
            .await
            .unwrap();
        if !running {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_conversations_counts_only_the_conversations_a_node_runs() {
    let llm = ScriptedLlm::start(vec![
        call("finish", json!({"message": "ok 1"})),
        call("finish", json!({"message": "ok 2"})),
    ])
    .await;
    let pg = Postgres::shared();
    let db = pg.fresh_database();
    let redis = Redis::start();
    let workspace = tempfile::tempdir().unwrap();
    let a = node(&llm, &db, &redis, workspace.path());
    let b = node_with(
        &llm,
        &db,
        &redis,
        workspace.path(),
        &[("MAX_CONCURRENT_CONVERSATIONS", "1")],
    );
    let q = |cid: &str| format!("conversation_id={cid}&latest_event_id=-1");
    let (c1, c2, c3, c4) = (new_id(), new_id(), new_id(), new_id());
    // A runs c1 and c2; B follows both, and runs c3: within B's limit of one.
    let _wa1 = ws_ready(a.port, &q(&c1)).await;
    let _wa2 = ws_ready(a.port, &q(&c2)).await;
    let mut wb1 = ws_ready(b.port, &q(&c1)).await;
    let mut wb2 = ws_ready(b.port, &q(&c2)).await;
    let mut wb3 = ws_ready(b.port, &q(&c3)).await;
    let holder = lease_holder(&redis, &c3).await.expect("c3 runs somewhere");
    assert!(holder.contains(&format!("-{}-", b.child.id())), "{holder}");
    // The followers still work: a message through B is run by A.
    send_user_action(&mut wb1, &message("via a follower")).await;
    until_state(&mut wb1, "finished", Duration::from_secs(20)).await;
    // A second conversation run by B goes past its limit: its idle one (c3) is closed,
    // not a follower.
    let _wb4 = ws_ready(b.port, &q(&c4)).await;
    let p = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let p = next_payload(&mut wb3).await;
            if p["status_update"] == true {
                return p;
            }
        }
    })
    .await
    .expect("c3 is closed");
    assert_eq!(p["id"], "AGENT_ERROR$TOO_MANY_CONVERSATIONS");
    send_user_action(&mut wb2, &message("followers stay")).await;
    let events = until_state(&mut wb2, "finished", Duration::from_secs(20)).await;
    assert!(events.iter().any(|e| e.contains("followers stay")));
    assert!(!events.iter().any(|e| e.contains("TOO_MANY")));
}
