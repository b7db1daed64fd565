//! Conversations: one task each, owning its event stream; the manager that opens,
//! closes and reaps them; and the subscription that delivers a stream to a client.

mod clustered;
mod executor;
mod handle;
mod host;
mod manager;
pub mod output_feed;
mod stream;
mod subscription;
mod task;
mod usage;

pub use clustered::scan_orphans;
pub use handle::{AttachGuard, Conversation, ConversationError};
pub use manager::{ConversationManager, ManagerError, NewConversation};
pub use stream::AppendCallback;
pub use subscription::{subscribe, Subscriber};

/// The status update sent to a conversation's clients when it is closed to make room.
pub const TOO_MANY_CONVERSATIONS: &str = "Too many conversations at once. If you are still using this one, try reactivating it by prompting the agent to continue";

/// Sets a conversation's title (only while it is still `only_if`, when given) and tells
/// its live clients; false if nothing changed. The one title path: renames, the
/// first-message title and the LLM's title all go through it.
pub async fn set_title(
    store: &std::sync::Arc<dyn crate::store::EventStore>,
    conversation_id: &str,
    live: Option<&Conversation>,
    title: &str,
    only_if: Option<String>,
) -> Result<bool, crate::store::StoreError> {
    let patch =
        serde_json::json!({"title": title, "last_updated_at": crate::store::metadata_utc_now()});
    let changed = store
        .patch_conversation(conversation_id, patch, only_if)
        .await?;
    if changed {
        if let Some(c) = live {
            c.notify(
                crate::events::Notice::Title {
                    conversation_id: conversation_id.to_string(),
                    title: title.to_string(),
                }
                .to_json(),
            );
        }
    }
    Ok(changed)
}

/// Whether `id` can name a conversation: 1 to 100 of `A-Z a-z 0-9 _ -`.
pub fn valid_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
