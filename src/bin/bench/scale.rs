//! One node at scale: 10,000 sockets over 1,000 conversations, then a command in each of
//! those 1,000 conversations, with the memory of the server and of its shells.

use super::{rss_kb, start_configured, Ws};
use futures::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

const CONVERSATIONS: usize = 1_000;
const SOCKETS: usize = 10_000;
/// Connections being set up at once.
const CONNECTING: usize = 256;

/// What a socket saw that the run waits for.
#[derive(Clone, Copy)]
enum Seen {
    Probe,
    Ran,
    Failed,
}

pub async fn run() {
    raise_fd_limit();
    // The defaults allow 4,096 sessions (512 from one address): lifted for this run.
    let config = format!(
        "[core]\nmax_concurrent_conversations = {}\n[limits]\nmax_engineio_sessions = {n}\nmax_engineio_sessions_per_client = {n}\nmax_connections = {n}\n",
        CONVERSATIONS + 100,
        n = SOCKETS + 500
    );
    let (server, _) = start_configured(&[], Some(&config)).await;
    let (port, pid) = (server.port, server.child.id());
    println!("scale: one node, {SOCKETS} sockets over {CONVERSATIONS} conversations");

    // 1. Open the sockets, 256 handshakes at a time.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let t0 = Instant::now();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let mut opening = Vec::with_capacity(SOCKETS);
    for i in 0..SOCKETS {
        let gate = gate.clone();
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            handshake(port, &format!("scale_{}", i % CONVERSATIONS)).await
        }));
    }
    let mut senders = Vec::with_capacity(CONVERSATIONS);
    let mut failures = 0usize;
    for (i, task) in opening.into_iter().enumerate() {
        match task.await.ok().flatten() {
            Some(ws) => {
                let (out_tx, out_rx) = mpsc::unbounded_channel();
                if i < CONVERSATIONS {
                    senders.push(out_tx);
                }
                tokio::spawn(hold(ws, out_rx, seen_tx.clone(), stop_rx.clone()));
            }
            None => failures += 1,
        }
    }
    let opened = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "  {} sockets connected in {:.1} s, {failures} failed; server RSS {:.1} MB",
        SOCKETS - failures,
        opened.as_secs_f64(),
        rss_kb(pid) as f64 / 1024.0
    );

    // 2. One message in each conversation must reach every one of its sockets.
    let t0 = Instant::now();
    for (i, tx) in senders.iter().enumerate() {
        let _ = tx.send(Message::Text(
            format!(r#"42["oh_user_action",{{"action":"message","args":{{"content":"scale probe {i}"}}}}]"#).into(),
        ));
    }
    let probes = wait_for(&mut seen_rx, SOCKETS - failures, |s| {
        matches!(s, Seen::Probe)
    })
    .await;
    println!(
        "  a message in each conversation reached {probes} of {} sockets in {:.0} ms",
        SOCKETS - failures,
        t0.elapsed().as_secs_f64() * 1000.0
    );

    // 3. A command in each conversation: 1,000 shells.
    let t0 = Instant::now();
    for tx in &senders {
        let _ = tx.send(Message::Text(
            r#"42["oh_user_action",{"action":"run","args":{"command":"echo hi"}}]"#.into(),
        ));
    }
    // Every socket of a conversation sees its observation; count conversations.
    let per_conversation = (SOCKETS - failures) / CONVERSATIONS;
    let ran = wait_for(&mut seen_rx, SOCKETS - failures, |s| {
        matches!(s, Seen::Ran | Seen::Failed)
    })
    .await;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let children = descendants(pid);
    let shells_kb: u64 = children.iter().map(|p| rss_kb(*p)).sum();
    println!(
        "  `echo hi` in each of {CONVERSATIONS} conversations: observations on {ran} sockets (≈{} conversations) in {:.1} s",
        ran / per_conversation.max(1),
        took.as_secs_f64()
    );
    println!(
        "  with {CONVERSATIONS} open conversations: server RSS {:.1} MB; {} runtime processes, {:.0} MB RSS in all ({:.2} MB each)",
        rss_kb(pid) as f64 / 1024.0,
        children.len(),
        shells_kb as f64 / 1024.0,
        shells_kb as f64 / 1024.0 / children.len().max(1) as f64
    );
    let _ = stop_tx.send(true);
}

/// Connects one Socket.IO client to `cid`; none if any step fails or takes over 30 s.
async fn handshake(port: u16, cid: &str) -> Option<Ws> {
    let url = format!(
        "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&conversation_id={cid}&latest_event_id=-1"
    );
    let connect = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        ws.next().await?.ok()?;
        ws.send(Message::Text("40".into())).await.ok()?;
        loop {
            if let Message::Text(t) = ws.next().await?.ok()? {
                if t.starts_with("40") {
                    return Some(ws);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), connect)
        .await
        .ok()
        .flatten()
}

/// Keeps a socket alive (answers pings), sends what it is given and reports what it saw.
async fn hold(
    mut ws: Ws,
    mut outbox: mpsc::UnboundedReceiver<Message>,
    seen: mpsc::UnboundedSender<Seen>,
    mut stop: watch::Receiver<bool>,
) {
    let (mut probe, mut ran) = (false, false);
    loop {
        tokio::select! {
            // The run is over: drop the socket.
            _ = stop.changed() => break,
            // The run wants this socket to send something.
            Some(msg) = outbox.recv() => {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
            // The server wrote: a ping to answer, or an event the run counts.
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() == "2" {
                        let _ = ws.send(Message::Text("3".into())).await;
                    } else if !probe && t.contains("scale probe") {
                        probe = true;
                        let _ = seen.send(Seen::Probe);
                    } else if !ran && t.contains(r#""observation":"run""#) {
                        ran = true;
                        let _ = seen.send(Seen::Ran);
                    } else if !ran && t.contains(r#""observation":"error""#) {
                        ran = true;
                        eprintln!("scale: {}", &t[..t.len().min(400)]);
                        let _ = seen.send(Seen::Failed);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}

/// Counts reports matching `want` until `n` arrived or none came for 60 s.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    n: usize,
    want: impl Fn(Seen) -> bool,
) -> usize {
    let mut count = 0;
    while count < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(s)) if want(s) => count += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    count
}

/// Every process below `pid` (its runtime's shells and what they started).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Lifts the soft open-files limit to the hard one (each socket is a descriptor here and
/// in the server, which inherits the limit).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
