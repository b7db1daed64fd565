//! The envelope every action and observation travels in (docs/protocol.md, "Top-level keys").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::action::{Action, ACTION_KINDS};
use super::observation::{Observation, ObservationKind};

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Agent,
    User,
    Environment,
}

/// An action or an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Action(Action),
    Observation(Observation),
}

/// One event of a conversation's stream, as stored and as sent on `oh_event`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Dense per-conversation id, assigned when the event is appended.
    pub id: Option<u64>,
    pub timestamp: Option<String>,
    pub source: Option<EventSource>,
    /// The id of the action an observation answers.
    pub cause: Option<u64>,
    pub payload: Payload,
    pub tool_call_metadata: Option<Value>,
    pub llm_metrics: Option<Value>,
    /// Hard timeout of a command, in seconds (actions only).
    pub timeout: Option<f64>,
}

/// Why a JSON value is not a valid event.
#[derive(Debug, Error, PartialEq)]
pub enum EventError {
    #[error("Expected a JSON object for the event, got {0}")]
    NotAnObject(&'static str),
    #[error("Unknown event type: the event has neither an `action` nor an `observation` key")]
    UnknownEventType,
    #[error("Unknown action type: {0:?}")]
    UnknownAction(String),
    #[error("Unknown observation type: {0:?}")]
    UnknownObservation(String),
    #[error("action={0} has the wrong arguments: {1}")]
    WrongArguments(String, String),
    #[error("observation={0} has the wrong extras: {1}")]
    WrongExtras(String, String),
    #[error("`{0}` must be {1}")]
    BadField(&'static str, &'static str),
}

/// The JSON type name of a value, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Event {
    /// A new, not yet appended event carrying an action.
    pub fn action(action: Action) -> Self {
        Self::new(Payload::Action(action))
    }

    /// A new, not yet appended event carrying an observation.
    pub fn observation(observation: Observation, cause: Option<u64>) -> Self {
        let mut e = Self::new(Payload::Observation(observation));
        e.cause = cause;
        e
    }

    fn new(payload: Payload) -> Self {
        Event {
            id: None,
            timestamp: None,
            source: None,
            cause: None,
            payload,
            tool_call_metadata: None,
            llm_metrics: None,
            timeout: None,
        }
    }

    /// The human summary for the `message` key.
    pub fn message(&self) -> String {
        match &self.payload {
            Payload::Action(a) => a.message(),
            Payload::Observation(o) => o.message(),
        }
    }

    /// The wire JSON object, with keys in the reference order.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        if let Some(id) = self.id {
            m.insert("id".into(), id.into());
        }
        if let Some(ts) = &self.timestamp {
            m.insert("timestamp".into(), ts.clone().into());
        }
        if let Some(src) = self.source {
            m.insert(
                "source".into(),
                serde_json::to_value(src).unwrap_or(Value::Null),
            );
        }
        m.insert("message".into(), self.message().into());
        if let Some(cause) = self.cause {
            m.insert("cause".into(), cause.into());
        }
        let (tag, body) = match &self.payload {
            Payload::Action(a) => ("action", serde_json::to_value(a)),
            Payload::Observation(o) => ("observation", serde_json::to_value(&o.kind)),
        };
        // Serializing our own derive-generated types to a Value cannot fail.
        let mut body = match body {
            Ok(Value::Object(b)) => b,
            _ => Map::new(),
        };
        m.insert(tag.into(), body.remove(tag).unwrap_or(Value::Null));
        if let Some(t) = &self.tool_call_metadata {
            m.insert("tool_call_metadata".into(), t.clone());
        }
        if let Some(l) = &self.llm_metrics {
            m.insert("llm_metrics".into(), l.clone());
        }
        match &self.payload {
            Payload::Action(_) => {
                m.insert("args".into(), body.remove("args").unwrap_or_default());
                if let Some(t) = self.timeout {
                    m.insert("timeout".into(), t.into());
                }
            }
            Payload::Observation(o) => {
                m.insert("content".into(), o.content.clone().into());
                m.insert("extras".into(), body.remove("extras").unwrap_or_default());
                if let Some(s) = o.success() {
                    m.insert("success".into(), s.into());
                }
            }
        }
        Value::Object(m)
    }

    /// The wire JSON text.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// Parses a full event dict (as stored, or as another OpenHands server sent it).
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let Value::Object(mut m) = value else {
            return Err(EventError::NotAnObject(type_name(&value)));
        };
        let payload = if let Some(kind) = m.remove("action") {
            let args = m
                .remove("args")
                .unwrap_or_else(|| Value::Object(Map::new()));
            Payload::Action(parse_action(kind, args)?)
        } else if let Some(kind) = m.remove("observation") {
            let content = match m.remove("content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s,
                Some(_) => return Err(EventError::BadField("content", "a string")),
            };
            let extras = m
                .remove("extras")
                .unwrap_or_else(|| Value::Object(Map::new()));
            Payload::Observation(Observation {
                content,
                kind: parse_observation_kind(kind, extras)?,
            })
        } else {
            return Err(EventError::UnknownEventType);
        };
        let mut e = Event::new(payload);
        e.id = opt_u64(&m, "id")?;
        e.cause = opt_u64(&m, "cause")?;
        e.timestamp = match m.remove("timestamp") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(EventError::BadField("timestamp", "a string")),
        };
        e.source = match m.remove("source") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|_| EventError::BadField("source", "agent, user or environment"))?,
            ),
        };
        e.tool_call_metadata = m.remove("tool_call_metadata").filter(|v| !v.is_null());
        e.llm_metrics = m.remove("llm_metrics").filter(|v| !v.is_null());
        e.timeout = match m.remove("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => return Err(EventError::BadField("timeout", "a number")),
        };
        Ok(e)
    }
}

fn opt_u64(m: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, EventError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or(EventError::BadField(key, "a non-negative integer")),
    }
}

/// Builds an [`Action`] from its wire name and args object.
pub(crate) fn parse_action(kind: Value, args: Value) -> Result<Action, EventError> {
    let Value::String(kind) = kind else {
        return Err(EventError::BadField("action", "a string"));
    };
    if !ACTION_KINDS.contains(&kind.as_str()) {
        return Err(EventError::UnknownAction(kind));
    }
    if !args.is_object() {
        return Err(EventError::WrongArguments(
            kind,
            format!("args must be an object, got {}", type_name(&args)),
        ));
    }
    let mut tagged = Map::new();
    tagged.insert("action".into(), Value::String(kind.clone()));
    tagged.insert("args".into(), args);
    serde_json::from_value(Value::Object(tagged))
        .map_err(|e| EventError::WrongArguments(kind, e.to_string()))
}

fn parse_observation_kind(kind: Value, extras: Value) -> Result<ObservationKind, EventError> {
    let Value::String(kind) = kind else {
        return Err(EventError::BadField("observation", "a string"));
    };
    if !extras.is_object() {
        return Err(EventError::WrongExtras(
            kind,
            format!("extras must be an object, got {}", type_name(&extras)),
        ));
    }
    let mut tagged = Map::new();
    tagged.insert("observation".into(), Value::String(kind.clone()));
    tagged.insert("extras".into(), extras);
    serde_json::from_value(Value::Object(tagged)).map_err(|e| {
        if e.to_string().starts_with("unknown variant") {
            EventError::UnknownObservation(kind)
        } else {
            EventError::WrongExtras(kind, e.to_string())
        }
    })
}
