//! Delivery of a conversation's stream to one client: replay after `latest_event_id`,
//! then live events, gap-free and without duplicates (docs/architecture.md, "Gap-free replay").

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::handle::Conversation;
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
