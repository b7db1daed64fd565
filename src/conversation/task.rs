//! The per-conversation task: the only writer of the conversation's event stream.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::handle::{Command, Conversation, ConversationError};
use super::stream::EventStream;
use crate::events::{Action, EventSource, Payload};
use crate::store::{metadata_utc_now, EventStore};

/// How often `last_updated_at` is written back while events flow.
const METADATA_FLUSH: Duration = Duration::from_secs(1);

/// Runs until the conversation is closed, then drains what was already queued.
pub(super) async fn run(
    conversation: Arc<Conversation>,
    mut stream: EventStream,
    mut commands: mpsc::Receiver<Command>,
    store: Arc<dyn EventStore>,
) {
    let mut dirty = false;
    // Whether the title may still need to come from a first message (checked once).
    let mut untitled = true;
    let mut tick = tokio::time::interval(METADATA_FLUSH);
    loop {
        // Commands are the work; the tick writes metadata back; closing ends the loop
        // (queued commands are still drained below, so nothing accepted is lost).
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => {
                    handle(&conversation, &mut stream, &store, &mut untitled, cmd).await;
                    dirty = true;
                }
                None => break,
            },
            _ = tick.tick() => {
                if std::mem::take(&mut dirty) {
                    touch_metadata(&store, &conversation.id).await;
                }
            }
            _ = conversation.closed.cancelled() => break,
        }
    }
    commands.close();
    while let Some(cmd) = commands.recv().await {
        handle(&conversation, &mut stream, &store, &mut untitled, cmd).await;
        dirty = true;
    }
    if dirty {
        touch_metadata(&store, &conversation.id).await;
    }
    if let Err(e) = store.flush().await {
        tracing::error!(conversation = %conversation.id, "flush on close failed: {e}");
    }
}

async fn handle(
    conversation: &Arc<Conversation>,
    stream: &mut EventStream,
    store: &Arc<dyn EventStore>,
    untitled: &mut bool,
    cmd: Command,
) {
    match cmd {
        Command::UserEvent { event, reply } => {
            let first_text = match &event.payload {
                Payload::Action(Action::Message(m)) => Some(m.content.clone()),
                _ => None,
            };
            let done = reply.map(|tx| {
                Box::new(move |r: Result<u64, crate::store::StoreError>| {
                    let _ = tx.send(r.map_err(ConversationError::from));
                }) as super::AppendCallback
            });
            stream.append(event, EventSource::User, done);
            if let Some(text) = first_text.filter(|_| *untitled) {
                *untitled = false;
                auto_title(conversation, store, &text).await;
            }
        }
    }
}

/// Gives a conversation still titled `Conversation xxxxx` a title from the user's first
/// message (its first 30 characters), and tells its clients.
async fn auto_title(conversation: &Arc<Conversation>, store: &Arc<dyn EventStore>, text: &str) {
    let Ok(Some(mut meta)) = store.conversation(&conversation.id).await else {
        return;
    };
    if !meta.has_default_title() || text.trim().is_empty() {
        return;
    }
    let trimmed = text.trim();
    let mut title: String = trimmed.chars().take(30).collect();
    if trimmed.chars().count() > 30 {
        title.push_str("...");
    }
    meta.title = title.clone();
    meta.last_updated_at = metadata_utc_now();
    if store.put_conversation(meta).await.is_ok() {
        conversation.notify(
            serde_json::json!({"status_update": true, "type": "info", "message": &*conversation.id, "conversation_title": title})
                .to_string(),
        );
    }
}

async fn touch_metadata(store: &Arc<dyn EventStore>, id: &str) {
    if let Ok(Some(mut meta)) = store.conversation(id).await {
        meta.last_updated_at = metadata_utc_now();
        if let Err(e) = store.put_conversation(meta).await {
            tracing::warn!(conversation = %id, "cannot update metadata: {e}");
        }
    }
}
