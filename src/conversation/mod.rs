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

/// Builds `{"status_update":true,"type":…,"id":…,"message":…}`.
pub fn status_update(kind: &str, id: &str, message: &str) -> String {
    serde_json::json!({"status_update": true, "type": kind, "id": id, "message": message})
        .to_string()
}
