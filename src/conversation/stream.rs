//! A conversation's one event stream: append → persist → broadcast.

use std::sync::Arc;
use tokio::sync::broadcast;

use crate::events::{local_timestamp, Event, EventSource};
use crate::store::{Append, EventStore, StoreError, StoredEvent};

/// How many live events a subscriber may fall behind before it catches up from the store.
pub const LIVE_BUFFER: usize = 1024;

/// Called with the appended event's id once it is durable (or with the error).
pub type AppendCallback = Box<dyn FnOnce(Result<u64, StoreError>) + Send>;

/// The single writer of a conversation's events. Ids are dense from 0 and survive restarts.
pub struct EventStream {
    conversation_id: Arc<str>,
    store: Arc<dyn EventStore>,
    next_id: u64,
    live: broadcast::Sender<StoredEvent>,
}

impl EventStream {
    /// Opens the stream, continuing after the highest stored id.
    pub async fn open(
        conversation_id: Arc<str>,
        store: Arc<dyn EventStore>,
        live: broadcast::Sender<StoredEvent>,
    ) -> Result<Self, StoreError> {
        let next_id = store
            .max_event_id(&conversation_id)
            .await?
            .map_or(0, |m| m + 1);
        Ok(EventStream {
            conversation_id,
            store,
            next_id,
            live,
        })
    }

    /// The id the next appended event gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Stamps `event` with the next id, the time and `source`, and queues it for the
    /// store. It is broadcast to subscribers only once durable, in id order.
    pub fn append(
        &mut self,
        event: Event,
        source: EventSource,
        done: Option<AppendCallback>,
    ) -> u64 {
        self.append_keyed(event, source, None, done)
    }

    /// [`EventStream::append`] for a user message carrying the sender's own id, which
    /// the store remembers in the same transaction as the event.
    pub fn append_keyed(
        &mut self,
        mut event: Event,
        source: EventSource,
        client_message_id: Option<Arc<str>>,
        done: Option<AppendCallback>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        event.id = Some(id);
        event.timestamp = Some(local_timestamp());
        event.source = Some(source);
        let mut stored = StoredEvent {
            id,
            json: Arc::from(event.to_json()),
            durable_at: None,
        };
        let for_store = stored.clone();
        let live = self.live.clone();
        let conversation = self.conversation_id.clone();
        let on_durable = Box::new(move |result: Result<(), StoreError>| {
            match &result {
                // No subscriber is fine: replay will find the event in the store.
                Ok(()) => {
                    stored.durable_at = Some(std::time::Instant::now());
                    drop(live.send(stored))
                }
                Err(e) => tracing::error!(%conversation, id, "event not stored: {e}"),
            }
            if let Some(done) = done {
                done(result.map(|()| id));
            }
        });
        self.store.append(Append {
            conversation_id: self.conversation_id.clone(),
            event: for_store,
            client_message_id,
            on_durable,
        });
        id
    }
}
