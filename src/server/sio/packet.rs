//! The Engine.IO v4 packet codec: packets from clients, polling payloads, and the
//! packets the server queues for a client.

use base64::Engine as _;
use bytes::Bytes;
use std::sync::Arc;

/// The polling payload separator between packets.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// A packet on its way to a client.
#[derive(Debug, Clone)]
pub enum OutPacket {
    /// A full Engine.IO text packet (`4…` for messages).
    Text(String),
    /// A text packet `head + body + tail` whose `body` is shared by the queues of every
    /// session it goes to (one event's JSON for many clients); joined only when written.
    Shared {
        head: Arc<str>,
        body: Arc<str>,
        tail: &'static str,
        /// When the application wants to hear that it was written (see
        /// `EngineHandler::written`): the moment it counts from.
        since: Option<std::time::Instant>,
    },
    /// Binary data: a binary websocket frame, or `b<base64>` when polling.
    Binary(Bytes),
    /// Ends a pending poll during an upgrade (`6`).
    Noop,
}

impl OutPacket {
    /// A Socket.IO packet (`sio`) inside an Engine.IO message: `4<sio>`.
    pub fn message(sio: &str) -> Self {
        OutPacket::Text(format!("4{sio}"))
    }

    /// The packet's length on the wire as text (binary counted as base64, about).
    pub fn wire_len(&self) -> usize {
        match self {
            OutPacket::Text(t) => t.len(),
            OutPacket::Shared {
                head, body, tail, ..
            } => head.len() + body.len() + tail.len(),
            OutPacket::Binary(b) => b.len() * 4 / 3 + 1,
            OutPacket::Noop => 1,
        }
    }

    /// The packet as one text (`b<base64>` for binary), appended to `out`.
    fn write_text(&self, out: &mut String) {
        match self {
            OutPacket::Text(t) => out.push_str(t),
            OutPacket::Shared {
                head, body, tail, ..
            } => {
                out.push_str(head);
                out.push_str(body);
                out.push_str(tail);
            }
            OutPacket::Binary(b) => {
                out.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, out);
            }
            OutPacket::Noop => out.push('6'),
        }
    }

    /// The moment a shared packet's writing is counted from, if it is timed.
    pub fn since(&self) -> Option<std::time::Instant> {
        match self {
            OutPacket::Shared { since, .. } => *since,
            _ => None,
        }
    }

    /// The packet as a websocket frame's text, or its binary data.
    pub fn into_frame(self) -> Frame {
        match self {
            OutPacket::Text(t) => Frame::Text(t),
            OutPacket::Binary(b) => Frame::Binary(b),
            shared => {
                let mut text = String::with_capacity(shared.wire_len());
                shared.write_text(&mut text);
                Frame::Text(text)
            }
        }
    }
}

/// What one [`OutPacket`] becomes on a websocket.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Bytes),
}

/// Joins packets into one polling response body, separated by [`RECORD_SEPARATOR`].
pub fn encode_payload(packets: &[OutPacket]) -> String {
    let len: usize = packets.iter().map(|p| p.wire_len() + 1).sum();
    let mut out = String::with_capacity(len);
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        p.write_text(&mut out);
    }
    out
}

/// One packet of a polling request body.
#[derive(Debug, PartialEq)]
pub enum PayloadPart<'a> {
    Text(&'a str),
    Binary(Bytes),
}

/// Splits a polling request body into its packets, lazily; a `b…` packet whose base64 is
/// invalid is an error where it stands.
pub fn decode_payload(
    body: &str,
) -> impl Iterator<Item = Result<PayloadPart<'_>, base64::DecodeError>> {
    body.split(RECORD_SEPARATOR)
        .map(|part| match part.strip_prefix('b') {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|data| PayloadPart::Binary(Bytes::from(data))),
            None => Ok(PayloadPart::Text(part)),
        })
}

/// An Engine.IO text packet from a client.
#[derive(Debug, PartialEq)]
pub enum ClientPacket<'a> {
    /// `1`
    Close,
    /// `2<payload>`: answered `3<payload>`.
    Ping(&'a str),
    /// `3…`
    Pong,
    /// `4<payload>`: for the handler.
    Message(&'a str),
    /// `5…`
    Upgrade,
    /// `6…`
    Noop,
}

/// Reads a text packet from a client; a trailing newline (as `echo` adds) is ignored.
/// `None` for anything a client may not send (the session is then closed).
pub fn decode_packet(text: &str) -> Option<ClientPacket<'_>> {
    let text = text.trim_end_matches(['\n', '\r']);
    let rest = text.get(1..).unwrap_or("");
    Some(match text.as_bytes().first()? {
        b'1' => ClientPacket::Close,
        b'2' => ClientPacket::Ping(rest),
        b'3' => ClientPacket::Pong,
        b'4' => ClientPacket::Message(rest),
        b'5' => ClientPacket::Upgrade,
        b'6' => ClientPacket::Noop,
        _ => return None,
    })
}

/// The open packet: `0{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`.
pub fn open_packet(
    sid: &str,
    upgrades: bool,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: usize,
) -> String {
    let upgrades: &[&str] = if upgrades { &["websocket"] } else { &[] };
    format!(
        "0{}",
        serde_json::json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": max_payload,
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(head: &str, body: &str) -> OutPacket {
        OutPacket::Shared {
            head: Arc::from(head),
            body: Arc::from(body),
            tail: "]",
            since: None,
        }
    }

    #[test]
    fn client_packets_are_read_by_their_type_digit() {
        assert_eq!(decode_packet("1"), Some(ClientPacket::Close));
        assert_eq!(decode_packet("2"), Some(ClientPacket::Ping("")));
        assert_eq!(decode_packet("2probe"), Some(ClientPacket::Ping("probe")));
        assert_eq!(decode_packet("3"), Some(ClientPacket::Pong));
        assert_eq!(decode_packet("3probe"), Some(ClientPacket::Pong));
        assert_eq!(decode_packet("4"), Some(ClientPacket::Message("")));
        assert_eq!(
            decode_packet("42[\"x\",{}]"),
            Some(ClientPacket::Message("2[\"x\",{}]"))
        );
        assert_eq!(decode_packet("5"), Some(ClientPacket::Upgrade));
        assert_eq!(decode_packet("6"), Some(ClientPacket::Noop));
    }

    #[test]
    fn a_trailing_newline_from_echo_is_ignored() {
        assert_eq!(decode_packet("40\n"), Some(ClientPacket::Message("0")));
        assert_eq!(decode_packet("40\r\n"), Some(ClientPacket::Message("0")));
        assert_eq!(decode_packet("2probe\n"), Some(ClientPacket::Ping("probe")));
    }

    #[test]
    fn packets_a_client_may_not_send_are_rejected() {
        for bad in ["", "\n", "0", "0{}", "7", "9x", "x", "é4", " 4"] {
            assert_eq!(decode_packet(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_polling_payload_joins_packets_with_the_record_separator() {
        let body = encode_payload(&[
            OutPacket::Text("40{\"sid\":\"a\"}".into()),
            shared("42[\"ev\",", "{\"id\":1}"),
            OutPacket::Noop,
            OutPacket::Text("2".into()),
        ]);
        assert_eq!(
            body,
            "40{\"sid\":\"a\"}\u{1e}42[\"ev\",{\"id\":1}]\u{1e}6\u{1e}2"
        );
        assert_eq!(encode_payload(&[OutPacket::Text("3".into())]), "3");
        assert_eq!(encode_payload(&[]), "");
    }

    #[test]
    fn binary_is_base64_with_a_b_prefix_when_polling() {
        let body = encode_payload(&[
            OutPacket::Binary(Bytes::from_static(&[0, 1, 2, 255])),
            OutPacket::Text("4x".into()),
        ]);
        assert_eq!(body, "bAAEC/w==\u{1e}4x");
    }

    #[test]
    fn a_polling_body_splits_into_text_and_binary_packets() {
        let parts: Vec<_> = decode_payload("40\u{1e}bAAEC/w==\u{1e}42[\"a\"]").collect();
        assert_eq!(
            parts,
            vec![
                Ok(PayloadPart::Text("40")),
                Ok(PayloadPart::Binary(Bytes::from_static(&[0, 1, 2, 255]))),
                Ok(PayloadPart::Text("42[\"a\"]")),
            ]
        );
        let single: Vec<_> = decode_payload("3").collect();
        assert_eq!(single, vec![Ok(PayloadPart::Text("3"))]);
    }

    #[test]
    fn invalid_base64_is_an_error_in_its_place() {
        let mut parts = decode_payload("40\u{1e}b!!!\u{1e}41");
        assert_eq!(parts.next(), Some(Ok(PayloadPart::Text("40"))));
        assert!(matches!(parts.next(), Some(Err(_))));
        assert_eq!(parts.next(), Some(Ok(PayloadPart::Text("41"))));
    }

    #[test]
    fn a_shared_packet_is_joined_only_when_written() {
        let body: Arc<str> = Arc::from("{\"id\":7}");
        let p = OutPacket::Shared {
            head: Arc::from("42[\"ev\","),
            body: body.clone(),
            tail: "]",
            since: None,
        };
        assert_eq!(p.wire_len(), "42[\"ev\",{\"id\":7}]".len());
        let copy = p.clone();
        // Queuing the packet for another client shares the body.
        match &copy {
            OutPacket::Shared { body: b, .. } => assert!(Arc::ptr_eq(b, &body)),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.into_frame(), Frame::Text("42[\"ev\",{\"id\":7}]".into()));
        assert_eq!(
            OutPacket::Binary(Bytes::from_static(b"x")).into_frame(),
            Frame::Binary(Bytes::from_static(b"x"))
        );
    }

    #[test]
    fn the_open_packet_announces_sid_upgrades_and_timings() {
        assert_eq!(
            open_packet("abc", true, 25000, 20000, 10_000_000),
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":10000000}"#
        );
        assert_eq!(
            open_packet("abc", false, 1, 2, 3),
            r#"0{"sid":"abc","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3}"#
        );
    }
}
