//! Three nodes on one PostgreSQL and one Redis (all on this machine): fan-out to clients
//! spread over the nodes, and the time a surviving node takes to own a conversation
//! after its owner is killed.

use super::{connect, fan_out, start_with, tempfile_dir, test_postgres::Postgres, Server};
use futures::{SinkExt, StreamExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The lease the takeover run uses (short, so the figure is quick to take).
const LEASE_MS: u64 = 2_000;

/// A redis-server on a free port, without persistence; killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile_dir::Dir,
}

impl Redis {
    fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = tempfile_dir::Dir::new();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis {
            child,
            port,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn run() {
    let Some(redis) = Redis::start() else {
        println!("cluster: skipped (redis-server is not installed)");
        return;
    };
    let pg = Postgres::start();
    let db = pg.fresh_database();
    let workspace = tempfile_dir::Dir::new();
    let lease = LEASE_MS.to_string();
    let redis_url = redis.url();
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("REDIS_URL", redis_url.as_str()),
        ("CLUSTER_LEASE_MS", lease.as_str()),
        ("WORKSPACE_BASE", workspace.0.to_str().unwrap_or("/tmp")),
    ];
    let mut nodes: Vec<Server> = Vec::new();
    for _ in 0..3 {
        nodes.push(start_with(&env).await.0);
    }
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    println!("cluster: three nodes, one PostgreSQL, one Redis (lease {LEASE_MS} ms)");

    // 1. Fan-out: the writer is on the first node (which comes to own the
    //    conversation); 200 readers are spread over the three nodes.
    for (i, rate) in [100u64, 500].into_iter().enumerate() {
        fan_out(
            &ports,
            &format!("bench_cluster_fanout_{i}"),
            200,
            1_000,
            rate,
        )
        .await;
    }
    // The same with every client on the owner: the cluster's store and lease alone,
    // without the hop to the other nodes.
    for (i, rate) in [100u64, 500].into_iter().enumerate() {
        let name = format!("bench_cluster_owner_{i}");
        fan_out(&ports[..1], &name, 200, 1_000, rate).await;
    }

    // 2. Takeover: a conversation owned by the first node, with a client on each of the
    //    others; the owner is killed, and the clock runs until a client on a surviving
    //    node receives the new owner's takeover notice.
    let mut took = Vec::new();
    for round in 0..3 {
        let cid = format!("bench_takeover_{round}");
        let owner_port = nodes[0].port;
        let mut owner_ws = connect(owner_port, &cid, -1).await;
        owner_ws
            .send(super::message_frame("own it"))
            .await
            .expect("send");
        // The message is back: the first node owns the conversation.
        while let Some(Ok(Message::Text(t))) = owner_ws.next().await {
            if t.contains("own it") {
                break;
            }
        }
        let mut watchers = Vec::new();
        for n in &nodes[1..] {
            watchers.push(connect(n.port, &cid, -1).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = nodes[0].child.kill();
        let _ = nodes[0].child.wait();
        let killed = Instant::now();
        let notice = futures::future::select_all(watchers.iter_mut().map(|ws| {
            Box::pin(async move {
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        if t.as_str() == "2" {
                            let _ = ws.send(Message::Text("3".into())).await;
                        } else if t.contains("STATUS$RUNTIME_LOST") {
                            return true;
                        }
                    }
                }
                false
            })
        }));
        match tokio::time::timeout(Duration::from_millis(LEASE_MS * 5), notice).await {
            Ok((true, _, _)) => took.push(killed.elapsed().as_secs_f64() * 1000.0),
            _ => println!("  takeover {round}: no notice within {} ms", LEASE_MS * 5),
        }
        // A fresh first node for the next round.
        drop(watchers);
        nodes[0] = start_with(&env).await.0;
    }
    took.sort_by(|a, b| a.total_cmp(b));
    if !took.is_empty() {
        println!(
            "takeover after SIGKILL of the owner (kill → takeover notice at a client of a surviving node): median {:.0} ms, max {:.0} ms ({} rounds; lease {LEASE_MS} ms, target < lease + 1 s)",
            super::median(took.clone()),
            took[took.len() - 1],
            took.len()
        );
    }
}
