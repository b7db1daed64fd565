//! Delivery of a conversation's stream to one client: replay after `latest_event_id`,
//! then live events, gap-free and without duplicates (docs/architecture.md, "Gap-free replay").

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::handle::Conversation;
use super::output_feed::{OutputFeed, OutputMessage, StreamId, WatchGuard};
use crate::store::{EventRange, EventStore, StoredEvent};

/// How many stored events one replay read fetches.
const REPLAY_PAGE: usize = 256;
/// At most about this many bytes of events are held for one client's replay at a time.
const REPLAY_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// A client receiving a conversation's events. Each method may wait (back-pressure);
/// returning false means the client is gone.
#[async_trait]
pub trait Subscriber: Send + Sync {
    async fn event(&self, event: &StoredEvent) -> bool;
    /// A payload that is not stored (status update, error notice).
    async fn notice(&self, json: &str) -> bool;
    /// The conversation was closed by the server (or its events cannot be read).
    async fn closed(&self);
    /// Whether this client asked for output as it happens (`stream_output=true`).
    fn wants_output(&self) -> bool {
        false
    }
    /// A live output message (`oh_output`), never stored.
    async fn output(&self, _json: &Arc<str>) -> bool {
        true
    }
}

/// The error notice a client gets when its events cannot be read.
fn read_failure_notice() -> String {
    crate::events::Notice::error(
        "The conversation's events could not be read; reconnect to try again.",
    )
    .to_json()
}

/// Delivers every stored event with id > `after` (all if `None`), then live ones, until
/// `cancel` fires, the subscriber goes away or the conversation closes.
pub async fn subscribe(
    conversation: Arc<Conversation>,
    store: Arc<dyn EventStore>,
    after: Option<u64>,
    subscriber: Arc<dyn Subscriber>,
    cancel: CancellationToken,
) {
    // Join the live feed before reading the store, so nothing falls between the two.
    let mut live = conversation.live.subscribe();
    let mut notices = conversation.notices.subscribe();
    let mut output = subscriber
        .wants_output()
        .then(|| OutputCursor::new(&conversation.output));
    let mut last = after;
    match catch_up(
        &conversation,
        &store,
        &mut last,
        None,
        &*subscriber,
        &cancel,
    )
    .await
    {
        CatchUp::Done => {}
        CatchUp::Gone => return,
        CatchUp::Failed => return fail(&*subscriber).await,
    }
    if !send_backlog(&conversation, &mut output, last, &*subscriber).await {
        return;
    }
    // Created once, not per turn: registering waiters costs a lock each time.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let closed = conversation.closed.cancelled();
    tokio::pin!(closed);
    loop {
        // Live events and notices are delivered as they come; cancellation (client gone)
        // and closing (server side) end the subscription.
        tokio::select! {
            biased;
            _ = &mut cancelled => return,
            _ = &mut closed => {
                // The task stores its last events (observations of killed commands)
                // before it finishes: deliver them, and pending notices, then say goodbye.
                conversation.finished().await;
                while let Ok(json) = notices.try_recv() {
                    if !subscriber.notice(&json).await {
                        return;
                    }
                }
                match catch_up(&conversation, &store, &mut last, None, &*subscriber, &cancel).await {
                    CatchUp::Done | CatchUp::Failed => subscriber.closed().await,
                    CatchUp::Gone => {}
                }
                return;
            }
            // Notices before events: a notice sent before an event was stored (the
            // error status before the error state) reaches the client first.
            n = notices.recv() => match n {
                Ok(json) => {
                    if !subscriber.notice(&json).await {
                        return;
                    }
                }
                // Notices are ephemeral: a slow client may miss some.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {}
            },
            // Output before events: the last chunk of a command is made before its
            // observation is stored.
            m = next_output(&mut output) => {
                let delivered = match (m, output.as_mut()) {
                    (Ok(m), Some(cursor)) => cursor.offer(&m, last, &conversation, &*subscriber).await,
                    // Too slow for the output channel: resend from the kept output.
                    (Err(RecvError::Lagged(_)), _) => send_backlog(&conversation, &mut output, last, &*subscriber).await,
                    (Err(RecvError::Closed), _) | (Ok(_), None) => true,
                };
                if !delivered {
                    return;
                }
            },
            ev = live.recv() => match ev {
                Ok(ev) => {
                    if last.is_some_and(|l| ev.id <= l) {
                        continue;
                    }
                    // A gap means we missed events (cannot happen with commit-ordered
                    // broadcasts, but the store is the truth): fill it from there.
                    let expected = last.map_or(0, |l| l + 1);
                    if ev.id > expected {
                        match catch_up(&conversation, &store, &mut last, Some(ev.id - 1), &*subscriber, &cancel).await {
                            CatchUp::Done => {}
                            CatchUp::Gone => return,
                            CatchUp::Failed => return fail(&*subscriber).await,
                        }
                    }
                    if !subscriber.event(&ev).await {
                        return;
                    }
                    conversation.metrics.live_sent(ev.json.len());
                    last = Some(ev.id);
                    if !send_backlog(&conversation, &mut output, last, &*subscriber).await {
                        return;
                    }
                }
                // Too slow for the live buffer: the store has everything we skipped.
                Err(RecvError::Lagged(_)) => {
                    match catch_up(&conversation, &store, &mut last, None, &*subscriber, &cancel).await {
                        CatchUp::Done => {}
                        CatchUp::Gone => return,
                        CatchUp::Failed => return fail(&*subscriber).await,
                    }
                }
                Err(RecvError::Closed) => {
                    subscriber.closed().await;
                    return;
                }
            },
        }
    }
}

/// What one client has been sent of the live output: the last seq of each stream.
struct OutputCursor {
    rx: tokio::sync::broadcast::Receiver<Arc<OutputMessage>>,
    seen: HashMap<StreamId, u64>,
    _watching: WatchGuard,
}

impl OutputCursor {
    fn new(feed: &Arc<OutputFeed>) -> Self {
        OutputCursor {
            rx: feed.subscribe(),
            seen: HashMap::new(),
            _watching: feed.watch(),
        }
    }

    /// Sends a live message if the client has its anchor and not the message yet; a
    /// gap is filled from the feed's kept output first. False if the client is gone.
    async fn offer(
        &mut self,
        m: &OutputMessage,
        last: Option<u64>,
        conversation: &Conversation,
        subscriber: &dyn Subscriber,
    ) -> bool {
        if last.is_none_or(|l| m.anchor > l) {
            // Sent from the kept output once its anchor event has been delivered.
            return true;
        }
        let had = self.seen.get(&m.stream).copied().unwrap_or(0);
        if m.seq > had + 1 && !self.send_kept(conversation, last, subscriber).await {
            return false;
        }
        let had = self.seen.get(&m.stream).copied().unwrap_or(0);
        if m.seq > had {
            if !subscriber.output(&m.json).await {
                return false;
            }
            self.seen.insert(m.stream, m.seq);
        }
        if m.done {
            self.seen.remove(&m.stream);
        }
        true
    }

    /// Sends the kept output of open streams anchored at or before `last`.
    async fn send_kept(
        &mut self,
        conversation: &Conversation,
        last: Option<u64>,
        subscriber: &dyn Subscriber,
    ) -> bool {
        for m in conversation.output.backlog(last, &self.seen) {
            if !subscriber.output(&m.json).await {
                return false;
            }
            self.seen.insert(m.stream, m.seq);
        }
        if self.seen.len() > 16 {
            // Streams whose end this client never saw (it lagged past it).
            self.seen.retain(|id, _| conversation.output.is_open(*id));
        }
        true
    }
}

/// The next live output message, or never for a client that did not ask for output.
async fn next_output(output: &mut Option<OutputCursor>) -> Result<Arc<OutputMessage>, RecvError> {
    match output {
        Some(cursor) => cursor.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends the kept output the client can now have (its anchors delivered); true for a
/// client that did not ask for output. False if the client is gone.
async fn send_backlog(
    conversation: &Conversation,
    output: &mut Option<OutputCursor>,
    last: Option<u64>,
    subscriber: &dyn Subscriber,
) -> bool {
    match output {
        Some(cursor) => cursor.send_kept(conversation, last, subscriber).await,
        None => true,
    }
}

/// How a catch-up from the store ended.
enum CatchUp {
    Done,
    /// The subscriber went away or was cancelled.
    Gone,
    /// The store could not be read.
    Failed,
}

async fn fail(subscriber: &dyn Subscriber) {
    subscriber.notice(&read_failure_notice()).await;
    subscriber.closed().await;
}

/// Sends stored events after `last` (up to `until`, inclusive) and advances `last`.
async fn catch_up(
    conversation: &Conversation,
    store: &Arc<dyn EventStore>,
    last: &mut Option<u64>,
    until: Option<u64>,
    subscriber: &dyn Subscriber,
    cancel: &CancellationToken,
) -> CatchUp {
    loop {
        let start = last.map_or(0, |l| l + 1);
        if until.is_some_and(|u| start > u) {
            return CatchUp::Done;
        }
        let range = EventRange {
            start,
            end: until,
            limit: REPLAY_PAGE,
            reverse: false,
            max_bytes: REPLAY_PAGE_BYTES,
        };
        let page = match store.events(&conversation.id, range).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(conversation = %conversation.id, "replay failed: {e}");
                return CatchUp::Failed;
            }
        };
        if page.is_empty() {
            return CatchUp::Done;
        }
        for ev in &page {
            if cancel.is_cancelled() || !subscriber.event(ev).await {
                return CatchUp::Gone;
            }
            conversation.metrics.replay_sent(ev.json.len());
            *last = Some(ev.id);
        }
    }
}
