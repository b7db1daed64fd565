//! Parsing of what clients send in `oh_user_action` and `POST …/events`.

use serde_json::{Map, Value};
use thiserror::Error;

use super::action::{Action, MessageArgs};
use super::event::{parse_action, type_name, Event, EventError};

/// Why a client payload was refused; the text is sent back to that client.
#[derive(Debug, Error, PartialEq)]
pub enum ClientEventError {
    #[error("Invalid event: {0}")]
    Invalid(#[from] EventError),
    #[error("Clients may only send actions, not observations")]
    ObservationFromClient,
    #[error("Unknown message type {0:?}: the simplified shape supports only \"message\"")]
    UnknownSimplifiedType(String),
    #[error("`message` must be a string in a {{\"type\":\"message\"}} payload")]
    SimplifiedMessageNotString,
}

/// Args keys the reference drops or renames before building an action (docs/protocol.md, "Accepted payload shapes").
const DROPPED_ARGS: &[&str] = &[
    "timestamp",
    "keep_prompt",
    "task_completed",
    "translated_ipython_code",
];

/// Parses one client payload into an action event (not yet appended).
///
/// Accepts the OpenHands shape `{"action":…,"args":{…}}` and the seeds' simplified
/// `{"type":"message","source":"user","message":"…"}`. Client-supplied `id`, `timestamp`
/// and `source` are ignored: the stream assigns them.
pub fn parse_client_event(value: Value) -> Result<Event, ClientEventError> {
    let Value::Object(mut m) = value else {
        return Err(EventError::NotAnObject(type_name(&value)).into());
    };
    if m.contains_key("observation") && !m.contains_key("action") {
        return Err(ClientEventError::ObservationFromClient);
    }
    let Some(kind) = m.remove("action") else {
        return parse_simplified(m);
    };
    let args = match m.remove("args") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(args)) => Value::Object(normalize_args(args)),
        Some(other) => other,
    };
    let action = parse_action(kind, args)?;
    let mut event = Event::action(action);
    event.timeout = match m.get("timeout") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().filter(|t| *t > 0.0),
        Some(_) => return Err(EventError::BadField("timeout", "a number").into()),
    };
    Ok(event)
}

fn parse_simplified(m: Map<String, Value>) -> Result<Event, ClientEventError> {
    match m.get("type") {
        Some(Value::String(t)) if t == "message" => {}
        Some(Value::String(t)) => return Err(ClientEventError::UnknownSimplifiedType(t.clone())),
        _ => return Err(EventError::UnknownEventType.into()),
    }
    let Some(Value::String(text)) = m.get("message") else {
        return Err(ClientEventError::SimplifiedMessageNotString);
    };
    let mut args = MessageArgs::text(text.clone());
    args.file_urls = Some(Vec::new());
    args.image_urls = Some(Vec::new());
    Ok(Event::action(Action::Message(args)))
}

fn normalize_args(mut args: Map<String, Value>) -> Map<String, Value> {
    for key in DROPPED_ARGS {
        args.remove(*key);
    }
    if let Some(v) = args.remove("is_confirmed") {
        args.insert("confirmation_state".into(), v);
    }
    if let Some(v) = args.remove("images_urls") {
        args.insert("image_urls".into(), v);
    }
    let risk_ok = match args.get("security_risk") {
        None => true,
        Some(v) => v.as_i64().is_some_and(|r| (-1..=2).contains(&r)),
    };
    if !risk_ok {
        args.remove("security_risk");
    }
    args
}
