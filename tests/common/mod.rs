//! Test harness: the real binary on an ephemeral port with a temporary store, and
//! clients that speak raw WebSocket frames and HTTP.
#![allow(dead_code)]

pub mod postgres;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// Everything the server printed on stdout so far.
    pub stdout: std::sync::Arc<std::sync::Mutex<String>>,
    _tmp: Option<tempfile::TempDir>,
}

#[derive(Default)]
pub struct Options {
    pub env: Vec<(String, String)>,
    pub config: Option<String>,
    pub dir: Option<PathBuf>,
    /// The address to bind (default 127.0.0.1).
    pub host: Option<String>,
    /// More command-line arguments.
    pub args: Vec<String>,
    /// Start the server with an extra open descriptor (number 5, not close-on-exec), as a
    /// parent holding a lock or socket would.
    pub leak_fd: bool,
    /// Write the server's stderr (its log) to this file instead of the test's stderr.
    pub stderr_to: Option<PathBuf>,
    /// Store in this PostgreSQL database (`DATABASE_URL`) instead of SQLite.
    pub database_url: Option<String>,
}

/// With `OPENHANDS_TEST_STORE=postgres`, every test server without a database of its
/// own stores in a fresh database of the test binary's PostgreSQL: the tests written
/// against SQLite run against PostgreSQL too. A restart on the same directory finds the
/// same database (its URL is kept in the directory).
fn test_database_for(dir: &Path) -> Option<String> {
    if std::env::var("OPENHANDS_TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    let remembered = dir.join(".test-database-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return Some(url);
    }
    let url = postgres::Postgres::shared().fresh_database();
    std::fs::write(&remembered, &url).expect("remember the test database");
    Some(url)
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Options::default())
    }

    pub fn with_env(env: &[(&str, &str)]) -> Server {
        Self::start_with(Options {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
    }

    pub fn start_with(opts: Options) -> Server {
        let (tmp, dir) = match opts.dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        if let Some(c) = &opts.config {
            std::fs::write(dir.join("config.toml"), c).expect("write config");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_openhands-server"));
        let host = opts.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        cmd.args(["--host", host.as_str(), "--port", "0"])
            .args(&opts.args)
            .current_dir(&dir)
            .env("FILE_STORE_PATH", dir.join("store"))
            .env_remove("SESSION_API_KEY")
            .env_remove("LLM_API_KEY")
            .env_remove("LLM_MODEL")
            .env_remove("LLM_BASE_URL")
            .env_remove("WORKSPACE_BASE")
            .env_remove("CORS_ALLOWED_ORIGINS")
            .env_remove("PERMITTED_CORS_ORIGINS")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match opts
            .database_url
            .clone()
            .or_else(|| test_database_for(&dir))
        {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        if let Some(path) = &opts.stderr_to {
            cmd.stderr(std::fs::File::create(path).expect("log file"));
        }
        if opts.leak_fd {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let file = std::fs::File::open(dir.join(".")).expect("open");
            let fd = file.as_raw_fd();
            // SAFETY: dup2 is async-signal-safe; `file` outlives the spawn.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(fd, 5) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("spawn server");
            drop(file);
            return Self::started(child, dir, tmp);
        }
        let child = cmd.spawn().expect("spawn server");
        Self::started(child, dir, tmp)
    }

    fn started(mut child: Child, dir: PathBuf, tmp: Option<tempfile::TempDir>) -> Server {
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).expect("read listening line");
        // The rest of stdout is kept (and the pipe stays open) for as long as it runs.
        let printed = std::sync::Arc::new(std::sync::Mutex::new(line.clone()));
        let sink = printed.clone();
        std::thread::spawn(move || {
            let mut more = String::new();
            while reader.read_line(&mut more).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&more);
                more.clear();
            }
        });
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server {
            child,
            port,
            dir,
            stdout: printed,
            _tmp: tmp,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket&{query}",
            self.port
        )
    }

    /// Keeps the data directory when the server is dropped (for restarts).
    pub fn keep_dir(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        wait_exit(&mut self.child, Duration::from_secs(10))
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("server did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dir_of(s: &Server) -> &Path {
    &s.dir
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A masked client frame, as websocat writes it.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = *uuid::Uuid::new_v4().as_bytes();
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    let mut f = vec![0x80 | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Frames the server sent, parsed from raw bytes (text frames as strings; `None` for Close).
pub fn parse_server_frames(mut buf: &[u8]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    while buf.len() >= 2 {
        let opcode = buf[0] & 0x0f;
        let mut len = (buf[1] & 0x7f) as usize;
        let mut off = 2;
        if len == 126 {
            len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            off = 4;
        } else if len == 127 {
            len = u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize;
            off = 10;
        }
        if buf.len() < off + len {
            break;
        }
        let payload = &buf[off..off + len];
        match opcode {
            1 => out.push(Some(String::from_utf8_lossy(payload).to_string())),
            8 => out.push(None),
            _ => {}
        }
        buf = &buf[off + len..];
    }
    out
}

/// Does exactly what `echo FRAME | websocat URL` does: handshake, one text frame, then
/// Close at once; returns every frame the server sent before closing the connection.
pub async fn websocat_oneshot(port: u16, query: &str, text: &str) -> Vec<Option<String>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let req = format!(
        "GET /socket.io/?EIO=4&transport=websocket&{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    // Read the 101 response headers.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut frames = client_frame(1, text.as_bytes());
    frames.extend(client_frame(8, &1000u16.to_be_bytes()));
    s.write_all(&frames).await.expect("write frames");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    parse_server_frames(&buf)
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A raw Engine.IO websocket that has sent `40` and got the CONNECT ack.
pub async fn ws_connect(port: u16, query: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&{query}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    let open = next_text(&mut ws).await;
    assert!(open.starts_with("0{"), "{open}");
    ws.send(Message::Text("40".into())).await.expect("send 40");
    let ack = next_text(&mut ws).await;
    assert!(ack.starts_with("40{\"sid\":"), "{ack}");
    ws
}

/// How many events every new conversation stores as it opens: `agent_state_changed`
/// loading, the environment's `change_agent_state`, `agent_state_changed`
/// awaiting_user_input. The first event a client sends after that gets this id.
pub const STARTUP_EVENTS: u64 = 3;

/// [`ws_connect`], then waits until the conversation's agent is ready
/// (`awaiting_user_input`), as the OpenHands UI does before it enables its input.
pub async fn ws_ready(port: u16, query: &str) -> Ws {
    let mut ws = ws_connect(port, query).await;
    loop {
        let p = next_payload(&mut ws).await;
        if p["observation"] == "agent_state_changed"
            && p["extras"]["agent_state"] == "awaiting_user_input"
        {
            return ws;
        }
    }
}

/// The next text frame (answering pings), within 10 s.
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("stream ended")
            .expect("ws error");
        match msg {
            Message::Text(t) if t.as_str() == "2" => {
                ws.send(Message::Text("3".into())).await.expect("pong");
            }
            Message::Text(t) => return t.to_string(),
            Message::Close(_) => panic!("closed"),
            _ => {}
        }
    }
}

/// The next `oh_event` payload of any kind (stored event, status update, error notice).
pub async fn next_payload(ws: &mut Ws) -> Value {
    loop {
        let t = next_text(ws).await;
        if let Some(json) = t.strip_prefix("42") {
            let v: Value = serde_json::from_str(json).expect("event json");
            assert_eq!(v[0], "oh_event");
            return v[1].clone();
        }
    }
}

/// The next stored event (one with an integer id), skipping status updates.
pub async fn next_event(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_event_text(ws).await).expect("json")
}

/// The next stored event of any kind (agent state events included), skipping status
/// updates: for tests of dense id sequences.
pub async fn next_stored_event(ws: &mut Ws) -> Value {
    loop {
        let t = next_text(ws).await;
        if let Some(rest) = t.strip_prefix("42[\"oh_event\",") {
            let json = &rest[..rest.len() - 1];
            if json.starts_with("{\"id\":") {
                return serde_json::from_str(json).expect("json");
            }
        }
    }
}

/// Whether a stored event only records the agent's state (`agent_state_changed`, or the
/// environment's `change_agent_state`), which every conversation stores as it opens.
pub fn is_agent_state_event(json: &str) -> bool {
    json.contains("\"observation\":\"agent_state_changed\"")
        || json.contains("\"source\":\"environment\",\"message\":\"Agent state changed to")
}

/// The raw JSON text of the next stored event, skipping status updates and the agent's
/// state events (agent tests check those).
pub async fn next_event_text(ws: &mut Ws) -> String {
    loop {
        let t = next_text(ws).await;
        if let Some(rest) = t.strip_prefix("42[\"oh_event\",") {
            let json = &rest[..rest.len() - 1];
            if json.starts_with("{\"id\":") && !is_agent_state_event(json) {
                return json.to_string();
            }
        }
    }
}

pub async fn send_user_action(ws: &mut Ws, payload: &Value) {
    let frame = format!("42{}", serde_json::json!(["oh_user_action", payload]));
    ws.send(Message::Text(frame.into())).await.expect("send");
}

pub fn message(text: &str) -> Value {
    serde_json::json!({"action": "message", "args": {"content": text}})
}

/// Polls `GET …/events` until `n` events are stored.
pub async fn wait_events(server: &Server, cid: &str, n: usize) -> Vec<Value> {
    let client = http();
    let start = Instant::now();
    loop {
        let mut all = Vec::new();
        let mut start_id = 0;
        loop {
            let r: Value = client
                .get(server.url(&format!(
                    "/api/conversations/{cid}/events?start_id={start_id}&limit=100"
                )))
                .send()
                .await
                .expect("get events")
                .json()
                .await
                .expect("json");
            let evs = r["events"].as_array().cloned().unwrap_or_default();
            if let Some(last) = evs.last() {
                start_id = last["id"].as_u64().unwrap() + 1;
            }
            all.extend(evs);
            if r["has_more"] != true {
                break;
            }
        }
        if all.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Sends messages `prefix0`..`prefix{n-1}` and returns the raw JSON of every stored
/// event seen until the last one came back (the agent's state events included).
pub async fn send_messages(ws: &mut Ws, prefix: &str, n: usize) -> Vec<String> {
    for i in 0..n {
        send_user_action(ws, &message(&format!("{prefix}{i}"))).await;
    }
    let last = format!("{prefix}{}", n - 1);
    let mut seen = Vec::new();
    loop {
        let t = next_event_text(ws).await;
        let v: Value = serde_json::from_str(&t).expect("json");
        seen.push(t);
        if v["args"]["content"] == last.as_str() {
            return seen;
        }
    }
}

/// The `id` of an event's JSON text.
pub fn id_of(json: &str) -> u64 {
    serde_json::from_str::<Value>(json).expect("json")["id"]
        .as_u64()
        .expect("id")
}

/// Sends an action and returns its observation (the event whose cause is its id).
pub async fn act(ws: &mut Ws, action: &Value) -> Value {
    send_user_action(ws, action).await;
    let sent = next_event(ws).await;
    let id = sent["id"].as_u64().expect("action id");
    loop {
        let e = next_event(ws).await;
        if e["cause"] == id {
            return e;
        }
    }
}

/// `GET path`: status and JSON body (the response must say it is JSON).
pub async fn get(server: &Server, path: &str) -> (u16, Value) {
    let r = http().get(server.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "{path}: content-type {ct:?}"
    );
    (status, r.json().await.unwrap())
}

/// A request with an optional JSON body: status and JSON body.
pub async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http().request(method, server.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:?}"));
    (status, v)
}
