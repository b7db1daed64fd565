//! The event vocabulary: wire-exact serde types for every action and observation of the
//! OpenHands V0 protocol, and the parsing of what clients send.
//!
//! This module depends on nothing else of ours.

mod action;
mod client;
mod client_id;
mod event;
mod notice;
mod observation;
mod state;
#[cfg(test)]
mod tests;

pub use action::*;
pub use client::parse_client_event;
pub use client_id::{take_client_message_id, ClientIdError, CLIENT_MESSAGE_ID};
pub use event::{Event, EventSource, Payload};
pub use notice::{Notice, NoticeKind};
pub use observation::*;
pub use state::AgentState;

/// Current local time in the naive ISO format OpenHands stores (`2025-10-10T12:00:00.123456`).
pub fn local_timestamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}
