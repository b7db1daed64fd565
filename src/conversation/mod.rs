//! Conversations: one task each, owning its event stream; the manager that opens,
//! closes and reaps them; and the subscription that delivers a stream to a client.

mod executor;
mod handle;
mod host;
mod manager;
mod stream;
mod subscription;
mod task;

pub use handle::{AttachGuard, Conversation, ConversationError};
pub use manager::{ConversationManager, ManagerError, NewConversation};
pub use stream::{AppendCallback, EventStream, LIVE_BUFFER};
pub use subscription::{subscribe, Subscriber};

/// The status update sent to a conversation's clients when it is closed to make room.
pub const TOO_MANY_CONVERSATIONS: &str = "Too many conversations at once. If you are still using this one, try reactivating it by prompting the agent to continue";

/// What clients get when the server closes their conversation (upstream's stopped
/// agent state, without id: it is not stored).
pub const STOPPED_NOTICE: &str = r#"{"message":"","observation":"agent_state_changed","content":"","extras":{"agent_state":"stopped","reason":""}}"#;

/// Builds the title-change status update clients refresh the conversation on.
/// Whether `id` can name a conversation: 1 to 100 of `A-Z a-z 0-9 _ -`.
pub fn valid_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn title_update(conversation_id: &str, title: &str) -> String {
    serde_json::json!({"status_update": true, "type": "info", "message": conversation_id, "conversation_title": title}).to_string()
}

/// Builds `{"status_update":true,"type":…,"id":…,"message":…}`.
pub fn status_update(kind: &str, id: &str, message: &str) -> String {
    serde_json::json!({"status_update": true, "type": kind, "id": id, "message": message})
        .to_string()
}
