//! The sender's own id of a message (`args.client_message_id`): what makes a retried
//! send idempotent (docs/protocol.md, "Message delivery").

use serde_json::Value;
use std::sync::Arc;
use thiserror::Error;

/// The args key a client sets; upstream's `MessageAction` has no field of that name.
pub const CLIENT_MESSAGE_ID: &str = "client_message_id";

/// Longest client message id accepted, in bytes.
pub const MAX_CLIENT_MESSAGE_ID: usize = 128;

/// Why a client message id was refused; the text is sent back to that client.
#[derive(Debug, Error, PartialEq)]
pub enum ClientIdError {
    #[error("`client_message_id` must be a non-empty string of at most {MAX_CLIENT_MESSAGE_ID} printable characters")]
    Invalid,
}

/// Removes `args.client_message_id` from a client payload (it is not part of the
/// stored action) and returns it; `None` when the payload has none.
pub fn take_client_message_id(payload: &mut Value) -> Result<Option<Arc<str>>, ClientIdError> {
    let Some(args) = payload.get_mut("args").and_then(Value::as_object_mut) else {
        return Ok(None);
    };
    match args.remove(CLIENT_MESSAGE_ID) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id))
            if !id.is_empty()
                && id.len() <= MAX_CLIENT_MESSAGE_ID
                && !id.chars().any(char::is_control) =>
        {
            Ok(Some(Arc::from(id)))
        }
        Some(_) => Err(ClientIdError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_id_is_taken_out_of_the_args() {
        let mut p =
            json!({"action": "message", "args": {"content": "hi", "client_message_id": "c-1"}});
        assert_eq!(take_client_message_id(&mut p), Ok(Some(Arc::from("c-1"))));
        assert_eq!(p, json!({"action": "message", "args": {"content": "hi"}}));
    }

    #[test]
    fn payloads_without_an_id_are_untouched() {
        let mut p = json!({"action": "message", "args": {"content": "hi"}});
        assert_eq!(take_client_message_id(&mut p), Ok(None));
        let mut simplified = json!({"type": "message", "message": "hi"});
        assert_eq!(take_client_message_id(&mut simplified), Ok(None));
    }

    #[test]
    fn hostile_ids_are_refused() {
        for bad in [
            json!(""),
            json!("x".repeat(MAX_CLIENT_MESSAGE_ID + 1)),
            json!("a\nb"),
            json!(7),
            json!({"nested": true}),
        ] {
            let mut p =
                json!({"action": "message", "args": {"content": "hi", "client_message_id": bad}});
            assert_eq!(take_client_message_id(&mut p), Err(ClientIdError::Invalid));
        }
    }
}
