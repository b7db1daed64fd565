//! The persistent shell: state persists, exit codes, timeouts that kill the whole
//! group, input to a running process, big outputs, stop and close without orphans.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A connected client plus helpers to run actions and read their observations.
struct Client {
    ws: Ws,
}

impl Client {
    async fn new(server: &Server) -> (Client, String) {
        let cid = new_id();
        let ws = ws_ready(
            server.port,
            &format!("conversation_id={cid}&latest_event_id=-1"),
        )
        .await;
        (Client { ws }, cid)
    }

    /// Sends an action and returns its observation (the event whose cause is its id).
    async fn act(&mut self, action: Value) -> Value {
        act(&mut self.ws, &action).await
    }

    async fn run(&mut self, command: &str) -> Value {
        self.act(json!({"action": "run", "args": {"command": command}}))
            .await
    }
}

fn shell_server() -> Server {
    Server::with_env(&[("SANDBOX_NO_CHANGE_TIMEOUT", "2")])
}

fn exit_code(obs: &Value) -> i64 {
    obs["extras"]["metadata"]["exit_code"].as_i64().unwrap()
}

fn alive_with(marker: &str) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn cwd_env_and_functions_persist_and_exit_codes_are_reported() {
    let server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    let o = c
        .run("mkdir -p sub && cd sub && export GREETING=hi && twice() { echo \"$1$1\"; }")
        .await;
    assert_eq!(exit_code(&o), 0);
    assert_eq!(o["observation"], "run");
    assert_eq!(o["success"], true);
    let o = c
        .run("echo $GREETING; twice ab; basename $(pwd); false")
        .await;
    assert_eq!(o["content"], "hi\nabab\nsub\n");
    assert_eq!(exit_code(&o), 1);
    assert_eq!(o["success"], false);
    assert!(o["extras"]["metadata"]["working_dir"]
        .as_str()
        .unwrap()
        .ends_with("/sub"));
    assert_eq!(
        o["extras"]["metadata"]["suffix"],
        "\n[The command completed with exit code 1.]"
    );
    assert_eq!(
        o["message"],
        "Command `echo $GREETING; twice ab; basename $(pwd); false` executed with exit code 1."
    );
    assert_eq!(o["source"], "user");
    let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "timestamp",
            "source",
            "message",
            "cause",
            "observation",
            "content",
            "extras",
            "success"
        ]
    );
    // A virtualenv-like activation persists too.
    c.run("printf 'export VENV_ON=1\\n' > act.sh && . ./act.sh")
        .await;
    assert_eq!(c.run("echo ${VENV_ON:-no}").await["content"], "1\n");
    // Multi-line commands and heredocs are one command.
    let o = c
        .run("for i in 1 2 3; do\n  echo n$i\ndone\ncat <<EOF\nheredoc\nEOF")
        .await;
    assert_eq!(o["content"], "n1\nn2\nn3\nheredoc\n");
}

#[tokio::test]
async fn a_shell_that_exits_is_restarted_on_the_next_command_with_a_notice() {
    let server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    c.run("export GONE=1; cd /").await;
    let ended = c.run("exit").await;
    assert!(
        ended["observation"] == "error" || ended["observation"] == "run",
        "{ended}"
    );
    let next = c.run("echo \"again:$GONE:$PWD\"").await;
    let out = next["content"].as_str().unwrap();
    assert!(out.contains("previous shell had exited"), "{out}");
    let line = out.lines().find(|l| l.starts_with("again:")).unwrap();
    assert!(
        line.starts_with("again::/") && line.contains("workspaces"),
        "a fresh shell in the workspace: {out}"
    );
    assert_eq!(exit_code(&next), 0);
    // And it goes on as a normal shell.
    let after = c.run("echo fine").await;
    assert_eq!(after["content"].as_str().unwrap().trim(), "fine");
}

#[tokio::test]
async fn hard_timeout_kills_every_process_of_the_command() {
    let server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    let marker = format!("sleep 10{}", std::process::id() % 1000 + 1000);
    let started = Instant::now();
    let o = c
        .act(json!({"action": "run", "args": {"command": format!("{marker} & {marker}")}, "timeout": 2}))
        .await;
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(exit_code(&o), -1);
    assert!(
        o["extras"]["metadata"]["suffix"]
            .as_str()
            .unwrap()
            .contains("timed out after 2 seconds"),
        "{o}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alive_with(&marker), 0, "no process of the command survives");
    // The shell is still usable.
    assert_eq!(c.run("echo ok").await["content"], "ok\n");
}

#[tokio::test]
async fn soft_timeout_then_input_reaches_the_running_process() {
    let server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    let o = c.run("python3 -c 'print(\"got\", input())'").await;
    assert_eq!(exit_code(&o), -1);
    assert!(o["extras"]["metadata"]["suffix"]
        .as_str()
        .unwrap()
        .contains("no new output after 2 seconds"));
    // A new command is refused while it runs.
    let o = c.run("echo nope").await;
    assert!(
        o["content"].as_str().unwrap().contains("NOT executed"),
        "{o}"
    );
    let o = c
        .act(json!({"action": "run", "args": {"command": "hello", "is_input": true}}))
        .await;
    assert_eq!(o["content"], "got hello\n");
    assert_eq!(exit_code(&o), 0);
    assert_eq!(
        o["extras"]["metadata"]["prefix"],
        "[Below is the output of the previous command.]\n"
    );
    // C-c interrupts a running command.
    let o = c.run("sleep 30").await;
    assert_eq!(exit_code(&o), -1);
    let o = c
        .act(json!({"action": "run", "args": {"command": "C-c", "is_input": true}}))
        .await;
    assert_eq!(exit_code(&o), 130, "{o}");
    assert_eq!(c.run("echo after").await["content"], "after\n");
}

#[tokio::test]
async fn background_servers_keep_running_between_commands() {
    let server = shell_server();
    let (mut c, cid) = Client::new(&server).await;
    let marker = format!("sleep 20{}", std::process::id() % 1000 + 1000);
    let o = c.run(&format!("{marker} &")).await;
    assert_eq!(exit_code(&o), 0);
    c.run("echo later").await;
    assert_eq!(alive_with(&marker), 1);
    // Closing the conversation (stop) kills it: no orphans.
    let r = http()
        .post(server.url(&format!("/api/conversations/{cid}/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alive_with(&marker), 0);
}

#[tokio::test]
async fn a_big_output_arrives_whole_and_other_conversations_keep_going() {
    let server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    let (mut other, _) = Client::new(&server).await;
    let big = c.run("python3 -c \"import sys; sys.stdout.write('x' * 150000 + '\\nend\\n')\"");
    let quick = other.run("echo quick");
    let (big, quick) = tokio::join!(big, quick);
    assert_eq!(quick["content"], "quick\n");
    let content = big["content"].as_str().unwrap();
    assert_eq!(content.len(), 150_005, "full output for clients");
    assert!(content.ends_with("x\nend\n"));
}

#[tokio::test]
async fn stop_kills_the_running_command() {
    let server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    let marker = format!("sleep 30{}", std::process::id() % 1000 + 1000);
    send_user_action(&mut c.ws, &json!({"action": "run", "args": {"command": format!("{marker} & {marker}")}, "timeout": 60})).await;
    let run = next_event(&mut c.ws).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alive_with(&marker), 2);
    let started = Instant::now();
    send_user_action(
        &mut c.ws,
        &json!({"action": "change_agent_state", "args": {"agent_state": "stopped"}}),
    )
    .await;
    loop {
        let e = next_event(&mut c.ws).await;
        if e["cause"] == run["id"] {
            assert_ne!(exit_code(&e), 0);
            break;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        alive_with(&marker),
        0,
        "stop leaves no process of the command"
    );
}

#[tokio::test]
async fn server_shutdown_leaves_no_orphans() {
    let mut server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    let marker = format!("sleep 40{}", std::process::id() % 1000 + 1000);
    c.run(&format!("{marker} &")).await;
    assert_eq!(alive_with(&marker), 1);
    assert!(server.sigterm().success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(alive_with(&marker), 0);
}

#[tokio::test]
async fn a_run_without_a_command_is_an_error_observation() {
    let server = shell_server();
    let (mut c, _) = Client::new(&server).await;
    send_user_action(&mut c.ws, &json!({"action": "run", "args": {}})).await;
    let p = next_payload(&mut c.ws).await;
    assert_eq!(p["error"], true);
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("missing field `command`"),
        "{p}"
    );
    // An empty command with nothing running says so.
    let o = c.run("").await;
    assert!(
        o["content"]
            .as_str()
            .unwrap()
            .contains("No previous running command"),
        "{o}"
    );
    let _ = Instant::now();
}

#[tokio::test]
async fn closing_during_a_command_delivers_its_observation_then_reopens_with_dense_ids() {
    let server = shell_server();
    let (mut c, cid) = Client::new(&server).await;
    send_user_action(
        &mut c.ws,
        &json!({"action": "run", "args": {"command": "sleep 30"}, "timeout": 60}),
    )
    .await;
    let run = next_event(&mut c.ws).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = http()
        .post(server.url(&format!("/api/conversations/{cid}/stop")))
        .send();
    // Reopen right away, racing the close.
    let start = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        http()
            .post(server.url(&format!("/api/conversations/{cid}/start")))
            .send()
            .await
            .unwrap()
    };
    let (stop, start) = tokio::join!(stop, start);
    assert_eq!(stop.unwrap().status().as_u16(), 200);
    assert_eq!(start.status().as_u16(), 200);
    // The live client got the killed command's observation before being let go.
    let obs = next_event(&mut c.ws).await;
    assert_eq!(obs["cause"], run["id"], "{obs}");
    let r = http()
        .post(server.url(&format!("/api/conversations/{cid}/message")))
        .json(&json!({"message": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Ids stay dense across the close and the reopening (whose start-up states come
    // between), and the message is stored after the killed command's observation.
    let mut n = 1;
    let events = loop {
        let events = wait_events(&server, &cid, n).await;
        if events.iter().any(|e| e["args"]["content"] == "after") {
            break events;
        }
        n = events.len() + 1;
    };
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], i as u64, "{events:?}");
    }
    let after = events
        .iter()
        .position(|e| e["args"]["content"] == "after")
        .unwrap();
    assert!(after as u64 > obs["id"].as_u64().unwrap());
}

#[tokio::test]
async fn sixty_conversations_starting_their_shells_together_all_get_one() {
    // Shells start a few at a time, so a burst does not starve every one of them past
    // the prompt deadline (a thousand at once failed a fifth of them before).
    let server = shell_server();
    let mut runs = Vec::new();
    // 60: under the default limit of 64 open conversations.
    for i in 0..60 {
        let port = server.port;
        runs.push(tokio::spawn(async move {
            let mut ws = ws_ready(
                port,
                &format!("conversation_id={}&latest_event_id=-1", new_id()),
            )
            .await;
            let cmd = format!("echo started-{i}");
            let obs = act(&mut ws, &json!({"action": "run", "args": {"command": cmd}})).await;
            (i, obs)
        }));
    }
    for run in runs {
        let (i, obs) = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("every shell starts within two minutes")
            .unwrap();
        assert_eq!(obs["observation"], "run", "conversation {i}: {obs}");
        assert_eq!(obs["content"], format!("started-{i}\n"));
    }
}
