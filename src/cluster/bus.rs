//! Messages between nodes over Redis: "conversation X stored event N" (with the event's
//! JSON when it is small), commands forwarded to a conversation's owner, and their
//! acknowledgements.
//!
//! Channels: `oh:ev:{id}` (published by the owner after each commit, read by every node
//! through one pattern subscription) and `oh:node:{node}` (one per node: inbox wake-ups
//! and acknowledgements). Forwarded commands wait in the list `oh:inbox:{id}` until the
//! owner takes them, so a command sent while the owner is dead is taken by the next one.
//! Taking one moves it atomically to `oh:taken:{id}` (`LMOVE`), where it stays until its
//! event is durable: an owner that dies in between leaves it there for the next owner,
//! which stores it again under the same key ([`Forwarded::key`]), so it is stored once.

use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::ClusterError;

/// Events above this size are announced by id only; followers read them from the database.
const INLINE_EVENT_BYTES: usize = 64 * 1024;

/// What a conversation's local task is woken with.
#[derive(Debug)]
pub enum Signal {
    /// The owner stored event `id` (its exact JSON when small enough to travel inline).
    Stored { id: u64, json: Option<Arc<str>> },
    /// Commands wait in the conversation's inbox.
    Inbox,
    /// A message of the owner's live output (its exact `oh_output` JSON).
    Output(Arc<str>),
}

/// A command forwarded to a conversation's owner (a user event and its sender's id).
#[derive(Debug, Serialize, Deserialize)]
pub struct Forwarded {
    /// Answered under this id on the sender's node channel.
    pub req: String,
    /// The sending node.
    pub from: String,
    /// The event's JSON as the client sent it.
    pub event: serde_json::Value,
    #[serde(default)]
    pub client_id: Option<String>,
}

impl Forwarded {
    /// The key that makes storing this command idempotent: the client's own message id,
    /// else one derived from the forwarding request.
    pub fn key(&self) -> String {
        match &self.client_id {
            Some(id) => id.clone(),
            None => format!("fwd:{}", self.req),
        }
    }
}

/// A forwarded command taken from the inbox, with its exact text (which removes it from
/// the taken list once its event is durable).
#[derive(Debug)]
pub struct Taken {
    pub raw: String,
    pub command: Forwarded,
}

/// The owner's answer to a forwarded command.
#[derive(Debug, Serialize, Deserialize)]
struct NodeMessage {
    #[serde(default)]
    inbox: Option<String>,
    #[serde(default)]
    ack: Option<String>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

type AckResult = Result<u64, String>;

/// This node's end of the bus.
pub struct Bus {
    redis: ConnectionManager,
    node: String,
    /// The local task of each conversation open on this node.
    watchers: Mutex<HashMap<String, mpsc::UnboundedSender<Signal>>>,
    /// Forwarded commands waiting for their owner's answer.
    acks: Mutex<HashMap<String, oneshot::Sender<AckResult>>>,
    /// Whether the subscription connection is up.
    subscribed: AtomicBool,
}

fn output_channel(conversation_id: &str) -> String {
    format!("oh:out:{conversation_id}")
}

fn events_channel(conversation_id: &str) -> String {
    format!("oh:ev:{conversation_id}")
}

fn node_channel(node: &str) -> String {
    format!("oh:node:{node}")
}

fn inbox_key(conversation_id: &str) -> String {
    format!("oh:inbox:{conversation_id}")
}

fn taken_key(conversation_id: &str) -> String {
    format!("oh:taken:{conversation_id}")
}

/// Removes a watcher when its conversation's task lets go of it.
pub struct WatchGuard {
    bus: Arc<Bus>,
    conversation_id: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Ok(mut w) = self.bus.watchers.lock() {
            w.remove(&self.conversation_id);
        }
    }
}

impl Bus {
    /// The bus of `node`; [`Bus::listen`] starts receiving.
    pub fn new(redis: ConnectionManager, node: String) -> Arc<Self> {
        Arc::new(Bus {
            redis,
            node,
            watchers: Mutex::default(),
            acks: Mutex::default(),
            subscribed: AtomicBool::new(false),
        })
    }

    /// Whether the subscription connection is up.
    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// Signals for `conversation_id` go to the returned receiver while the guard lives.
    pub fn watch(
        self: &Arc<Self>,
        conversation_id: &str,
    ) -> (WatchGuard, mpsc::UnboundedReceiver<Signal>) {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut w) = self.watchers.lock() {
            w.insert(conversation_id.to_string(), tx);
        }
        (
            WatchGuard {
                bus: self.clone(),
                conversation_id: conversation_id.to_string(),
            },
            rx,
        )
    }

    fn signal(&self, conversation_id: &str, signal: Signal) {
        if let Ok(w) = self.watchers.lock() {
            if let Some(tx) = w.get(conversation_id) {
                let _ = tx.send(signal);
            }
        }
    }

    /// Receives on this node's subscriptions until `shutdown`, reconnecting after Redis
    /// goes away (meanwhile the followers' polls keep clients up to date).
    pub async fn listen(self: Arc<Self>, client: redis::Client, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.clone().listen_once(&client) => {
                    if let Err(e) = r {
                        tracing::warn!("cluster subscription lost: {e}");
                    }
                }
            }
            self.subscribed.store(false, Ordering::Relaxed);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    async fn listen_once(self: Arc<Self>, client: &redis::Client) -> Result<(), ClusterError> {
        let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
            .await
            .map_err(|_| ClusterError::Timeout)??;
        pubsub.psubscribe("oh:ev:*").await?;
        pubsub.psubscribe("oh:out:*").await?;
        pubsub.subscribe(node_channel(&self.node)).await?;
        self.subscribed.store(true, Ordering::Relaxed);
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let channel = msg.get_channel_name();
            if let Some(conversation_id) = channel.strip_prefix("oh:ev:") {
                let payload = msg.get_payload_bytes();
                if let Some(signal) = parse_stored(payload) {
                    self.signal(conversation_id, signal);
                }
            } else if let Some(conversation_id) = channel.strip_prefix("oh:out:") {
                if let Ok(json) = std::str::from_utf8(msg.get_payload_bytes()) {
                    self.signal(conversation_id, Signal::Output(Arc::from(json)));
                }
            } else if let Ok(m) = serde_json::from_slice::<NodeMessage>(msg.get_payload_bytes()) {
                self.on_node_message(m);
            }
        }
        Ok(())
    }

    fn on_node_message(&self, m: NodeMessage) {
        if let Some(conversation_id) = m.inbox {
            self.signal(&conversation_id, Signal::Inbox);
        }
        if let Some(req) = m.ack {
            let waiter = self.acks.lock().ok().and_then(|mut a| a.remove(&req));
            if let Some(tx) = waiter {
                let _ = tx.send(match (m.id, m.error) {
                    (Some(id), _) => Ok(id),
                    (None, e) => Err(e.unwrap_or_else(|| "no answer".into())),
                });
            }
        }
    }

    /// Relays live output messages (their `oh_output` JSON) of `conversation_id` to the
    /// other nodes' clients, in order, in one round trip.
    pub async fn publish_output(
        &self,
        conversation_id: &str,
        messages: &[Arc<str>],
    ) -> Result<(), ClusterError> {
        let channel = output_channel(conversation_id);
        let mut pipe = redis::pipe();
        for json in messages {
            pipe.cmd("PUBLISH").arg(&channel).arg(&**json).ignore();
        }
        let () = pipe.query_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// Announces that events `(id, json)` of `conversation_id` are stored, in order, in
    /// one round trip.
    pub async fn publish_stored(
        &self,
        conversation_id: &str,
        events: &[(u64, &str)],
    ) -> Result<(), ClusterError> {
        let channel = events_channel(conversation_id);
        let mut pipe = redis::pipe();
        for (id, json) in events {
            let payload = if json.len() <= INLINE_EVENT_BYTES {
                format!("{id}\n{json}")
            } else {
                id.to_string()
            };
            pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        let () = pipe.query_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// Queues a user event for `conversation_id`'s owner (waking `owner` if known) and
    /// waits up to `wait` for the id it was stored under.
    pub async fn forward(
        &self,
        conversation_id: &str,
        owner: Option<&str>,
        event: serde_json::Value,
        client_id: Option<String>,
        wait: Duration,
    ) -> Result<u64, ClusterError> {
        let req = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut a) = self.acks.lock() {
            a.insert(req.clone(), tx);
        }
        let _forget = ForgetAck(self, req.clone());
        let item = Forwarded {
            req,
            from: self.node.clone(),
            event,
            client_id,
        };
        let text =
            serde_json::to_string(&item).map_err(|e| ClusterError::Protocol(e.to_string()))?;
        let _: i64 = redis::cmd("RPUSH")
            .arg(inbox_key(conversation_id))
            .arg(text)
            .query_async(&mut self.redis.clone())
            .await?;
        if let Some(owner) = owner {
            self.wake_inbox(conversation_id, owner).await?;
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Ok(id))) => Ok(id),
            Ok(Ok(Err(e))) => Err(ClusterError::Rejected(e)),
            Ok(Err(_)) | Err(_) => Err(ClusterError::Timeout),
        }
    }

    /// Tells `owner` that `conversation_id`'s inbox has commands.
    pub async fn wake_inbox(&self, conversation_id: &str, owner: &str) -> Result<(), ClusterError> {
        let msg = NodeMessage {
            inbox: Some(conversation_id.to_string()),
            ack: None,
            id: None,
            error: None,
        };
        self.send_node(owner, &msg).await
    }

    async fn send_node(&self, node: &str, msg: &NodeMessage) -> Result<(), ClusterError> {
        let text = serde_json::to_string(msg).map_err(|e| ClusterError::Protocol(e.to_string()))?;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(node_channel(node))
            .arg(text)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Takes the next command waiting in `conversation_id`'s inbox, moving it to the
    /// taken list in the same step.
    pub async fn take_forwarded(
        &self,
        conversation_id: &str,
    ) -> Result<Option<Taken>, ClusterError> {
        loop {
            let raw: Option<String> = redis::cmd("LMOVE")
                .arg(inbox_key(conversation_id))
                .arg(taken_key(conversation_id))
                .arg("LEFT")
                .arg("RIGHT")
                .query_async(&mut self.redis.clone())
                .await?;
            let Some(raw) = raw else { return Ok(None) };
            match serde_json::from_str(&raw) {
                Ok(command) => return Ok(Some(Taken { raw, command })),
                Err(e) => {
                    tracing::warn!(conversation = %conversation_id, "dropped a malformed forwarded command: {e}");
                    self.done_forwarded(conversation_id, &raw).await?;
                }
            }
        }
    }

    /// The commands taken from `conversation_id`'s inbox whose events were not yet
    /// confirmed durable (taken by this owner or by an earlier one that died).
    pub async fn taken_forwarded(&self, conversation_id: &str) -> Result<Vec<Taken>, ClusterError> {
        let raws: Vec<String> = redis::cmd("LRANGE")
            .arg(taken_key(conversation_id))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis.clone())
            .await?;
        let mut taken = Vec::with_capacity(raws.len());
        for raw in raws {
            match serde_json::from_str(&raw) {
                Ok(command) => taken.push(Taken { raw, command }),
                Err(_) => self.done_forwarded(conversation_id, &raw).await?,
            }
        }
        Ok(taken)
    }

    /// Forgets a taken command: its event is durable (or it can never be stored).
    pub async fn done_forwarded(
        &self,
        conversation_id: &str,
        raw: &str,
    ) -> Result<(), ClusterError> {
        let _: i64 = redis::cmd("LREM")
            .arg(taken_key(conversation_id))
            .arg(1)
            .arg(raw)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Answers a forwarded command on its sender's channel.
    pub async fn answer(&self, to: &Forwarded, result: Result<u64, String>) {
        let (id, error) = match result {
            Ok(id) => (Some(id), None),
            Err(e) => (None, Some(e)),
        };
        let msg = NodeMessage {
            inbox: None,
            ack: Some(to.req.clone()),
            id,
            error,
        };
        if let Err(e) = self.send_node(&to.from, &msg).await {
            tracing::warn!("cannot answer a forwarded command: {e}");
        }
    }
}

/// Forgets an acknowledgement nobody waits for any more.
struct ForgetAck<'a>(&'a Bus, String);

impl Drop for ForgetAck<'_> {
    fn drop(&mut self) {
        if let Ok(mut a) = self.0.acks.lock() {
            a.remove(&self.1);
        }
    }
}

/// `"{id}\n{json}"` or `"{id}"`.
fn parse_stored(payload: &[u8]) -> Option<Signal> {
    let text = std::str::from_utf8(payload).ok()?;
    let (id, json) = match text.split_once('\n') {
        Some((id, json)) => (id, Some(Arc::from(json))),
        None => (text, None),
    };
    Some(Signal::Stored {
        id: id.parse().ok()?,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_announcement_carries_the_exact_json_or_only_the_id() {
        match parse_stored(b"7\n{\"a\": 1}\n") {
            Some(Signal::Stored {
                id: 7,
                json: Some(j),
            }) => assert_eq!(&*j, "{\"a\": 1}\n"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_stored(b"12"),
            Some(Signal::Stored { id: 12, json: None })
        ));
        assert!(parse_stored(b"x\n{}").is_none());
        assert!(parse_stored(&[0xff, 0xfe]).is_none());
    }
}
