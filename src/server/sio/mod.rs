//! Engine.IO v4 and Socket.IO v5 for axum, written like a library: nothing here knows
//! about OpenHands. The application implements [`EngineHandler`] and names its own events
//! ([`socketio::EventName`]); see docs/engineio.md.
//!
//! - `packet`: the Engine.IO packet codec (client packets, polling payloads, outgoing
//!   packets);
//! - `session`: one Engine.IO session and its queues (control replies ahead of data,
//!   back-pressure on data);
//! - `engine`: the server: handshake, polling, websocket, upgrade, heartbeat, limits;
//! - `socketio`: Socket.IO packets inside Engine.IO messages.

mod engine;
mod packet;
mod session;
pub mod socketio;

pub use engine::{Engine, EngineConfig, EngineHandler, EngineRequest};
pub use packet::OutPacket;
pub use session::Session;

/// A random 128-bit id, URL-safe base64 (Engine.IO session ids and Socket.IO socket ids).
pub fn new_sid() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

#[cfg(test)]
mod tests;
