//! What the server sends on `oh_event` besides stored events: status updates, title
//! changes, error notices and the stopped notice. None is stored and none has an id.
//! One enum, serialized here only, with upstream's key order.

use serde::Serialize;

/// Whether a status update informs or reports an error (`type` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    Info,
    Error,
}

/// A non-stored payload for clients.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// `{"status_update":true,"type":…,"id":…,"message":…}`: runtime and agent status
    /// (`STATUS$READY`, `STATUS$LLM_RETRY`, errors such as `STATUS$ERROR_LLM_AUTHENTICATION`).
    Status {
        kind: NoticeKind,
        id: String,
        message: String,
    },
    /// `{"status_update":true,"type":"info","message":<conversation id>,"conversation_title":…}`:
    /// the OpenHands UI refetches the conversation named in `message`.
    Title {
        conversation_id: String,
        title: String,
    },
    /// `{"error":true,"message":…}`: what the sender of a bad payload gets.
    Error { message: String },
    /// The agent state `stopped` without id, timestamp or source: the server closed the
    /// conversation (upstream sends the same when it ends a session).
    Stopped,
}

#[derive(Serialize)]
struct StatusWire<'a> {
    status_update: bool,
    #[serde(rename = "type")]
    kind: NoticeKind,
    id: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct TitleWire<'a> {
    status_update: bool,
    #[serde(rename = "type")]
    kind: NoticeKind,
    message: &'a str,
    conversation_title: &'a str,
}

#[derive(Serialize)]
struct ErrorWire<'a> {
    error: bool,
    message: &'a str,
}

/// The stopped notice, as upstream serializes it.
const STOPPED: &str = r#"{"message":"","observation":"agent_state_changed","content":"","extras":{"agent_state":"stopped","reason":""}}"#;

impl Notice {
    /// A status update.
    pub fn status(kind: NoticeKind, id: impl Into<String>, message: impl Into<String>) -> Self {
        Notice::Status {
            kind,
            id: id.into(),
            message: message.into(),
        }
    }

    /// An error notice.
    pub fn error(message: impl Into<String>) -> Self {
        Notice::Error {
            message: message.into(),
        }
    }

    /// The JSON clients receive.
    pub fn to_json(&self) -> String {
        let json = match self {
            Notice::Status { kind, id, message } => serde_json::to_string(&StatusWire {
                status_update: true,
                kind: *kind,
                id,
                message,
            }),
            Notice::Title {
                conversation_id,
                title,
            } => serde_json::to_string(&TitleWire {
                status_update: true,
                kind: NoticeKind::Info,
                message: conversation_id,
                conversation_title: title,
            }),
            Notice::Error { message } => serde_json::to_string(&ErrorWire {
                error: true,
                message,
            }),
            Notice::Stopped => return STOPPED.to_string(),
        };
        // Serializing these structs of strings and booleans cannot fail.
        json.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_have_upstreams_shapes_and_key_order() {
        assert_eq!(
            Notice::status(
                NoticeKind::Error,
                "STATUS$ERROR_LLM_AUTHENTICATION",
                "bad \"key\""
            )
            .to_json(),
            r#"{"status_update":true,"type":"error","id":"STATUS$ERROR_LLM_AUTHENTICATION","message":"bad \"key\""}"#
        );
        assert_eq!(
            Notice::Title {
                conversation_id: "abc".into(),
                title: "Fix the bug".into()
            }
            .to_json(),
            r#"{"status_update":true,"type":"info","message":"abc","conversation_title":"Fix the bug"}"#
        );
        assert_eq!(
            Notice::error("Invalid JSON").to_json(),
            r#"{"error":true,"message":"Invalid JSON"}"#
        );
        let stopped: serde_json::Value = serde_json::from_str(&Notice::Stopped.to_json()).unwrap();
        assert_eq!(stopped["extras"]["agent_state"], "stopped");
        assert!(stopped.get("id").is_none());
    }
}
