//! Socket.IO v5 packets (the subset a single-namespace server needs), carried in
//! Engine.IO messages.

use std::sync::Arc;

use super::packet::OutPacket;

/// A parsed Socket.IO packet; `data` is the raw JSON text that follows the header.
#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    Connect {
        nsp: &'a str,
        data: &'a str,
    },
    Disconnect {
        nsp: &'a str,
    },
    Event {
        nsp: &'a str,
        ack: Option<u64>,
        data: &'a str,
    },
    Ack {
        nsp: &'a str,
    },
    BinaryEvent {
        nsp: &'a str,
        attachments: usize,
    },
    BinaryAck {
        nsp: &'a str,
        attachments: usize,
    },
}

/// Parses the text of an Engine.IO message as a Socket.IO packet.
pub fn parse(text: &str) -> Option<Packet<'_>> {
    let kind = text.as_bytes().first().filter(|k| k.is_ascii_digit())?;
    let mut rest = text.get(1..)?;
    let mut attachments = 0;
    if matches!(kind, b'5' | b'6') {
        let dash = rest.find('-')?;
        attachments = rest[..dash].parse().ok()?;
        rest = &rest[dash + 1..];
    }
    let nsp = if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        let nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        nsp
    } else {
        "/"
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 {
        rest[..digits].parse().ok()
    } else {
        None
    };
    let data = &rest[digits..];
    Some(match kind {
        b'0' => Packet::Connect { nsp, data: rest },
        b'1' => Packet::Disconnect { nsp },
        b'2' => Packet::Event { nsp, ack, data },
        b'3' => Packet::Ack { nsp },
        b'5' => Packet::BinaryEvent { nsp, attachments },
        b'6' => Packet::BinaryAck { nsp, attachments },
        _ => return None,
    })
}

/// `0{"sid":…}`: the CONNECT ack for the main namespace.
pub fn connect_ack(sid: &str) -> String {
    format!("0{}", serde_json::json!({ "sid": sid }))
}

/// `4{"message":…[,"data":…]}`: CONNECT_ERROR for `nsp`.
pub fn connect_error(nsp: &str, message: &str, data: Option<serde_json::Value>) -> String {
    let mut body = serde_json::json!({ "message": message });
    if let Some(d) = data {
        body["data"] = d;
    }
    if nsp == "/" {
        format!("4{body}")
    } else {
        format!("4{nsp},{body}")
    }
}

/// `3<id>[]`: an empty ACK for the main namespace.
pub fn ack(id: u64) -> String {
    format!("3{id}[]")
}

/// The name of the events an application sends, with its frame head (`42["<name>",`)
/// built once, so that one event's JSON is queued for many clients without a copy.
#[derive(Debug, Clone)]
pub struct EventName {
    /// `42["<name>",`: Engine.IO message, Socket.IO EVENT, main namespace.
    head: Arc<str>,
}

impl EventName {
    pub fn new(name: &str) -> Self {
        let quoted = serde_json::Value::from(name).to_string();
        EventName {
            head: Arc::from(format!("42[{quoted},")),
        }
    }

    /// The event with `json` as its one argument, the JSON shared, not copied.
    pub fn packet(&self, json: Arc<str>) -> OutPacket {
        self.timed_packet(json, None)
    }

    /// [`EventName::packet`], timed from `since`: the engine reports when it is written
    /// (`EngineHandler::written`).
    pub fn timed_packet(&self, json: Arc<str>, since: Option<std::time::Instant>) -> OutPacket {
        OutPacket::Shared {
            head: self.head.clone(),
            body: json,
            tail: "]",
            since,
        }
    }

    /// The event as one Engine.IO message text: `42["<name>",<json>]`.
    pub fn message(&self, json: &str) -> String {
        let mut text = String::with_capacity(self.head.len() + json.len() + 1);
        text.push_str(&self.head);
        text.push_str(json);
        text.push(']');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_packets_clients_send() {
        assert_eq!(parse("0"), Some(Packet::Connect { nsp: "/", data: "" }));
        assert_eq!(
            parse("0{}"),
            Some(Packet::Connect {
                nsp: "/",
                data: "{}"
            })
        );
        assert_eq!(
            parse("0/admin,{}"),
            Some(Packet::Connect {
                nsp: "/admin",
                data: "{}"
            })
        );
        assert_eq!(
            parse("2[\"oh_user_action\",{}]"),
            Some(Packet::Event {
                nsp: "/",
                ack: None,
                data: "[\"oh_user_action\",{}]"
            })
        );
        assert_eq!(
            parse("212[\"x\"]"),
            Some(Packet::Event {
                nsp: "/",
                ack: Some(12),
                data: "[\"x\"]"
            })
        );
        assert_eq!(
            parse("51-[\"x\",{\"_placeholder\":true,\"num\":0}]"),
            Some(Packet::BinaryEvent {
                nsp: "/",
                attachments: 1
            })
        );
        assert_eq!(parse("1"), Some(Packet::Disconnect { nsp: "/" }));
        assert_eq!(parse("9"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("5x"), None);
        assert_eq!(parse("é"), None);
        assert_eq!(
            parse("2é"),
            Some(Packet::Event {
                nsp: "/",
                ack: None,
                data: "é"
            })
        );
        assert_eq!(parse("599999999999999999999-[]"), None);
    }

    #[test]
    fn namespaces_and_ack_ids_are_read_in_that_order() {
        assert_eq!(
            parse("2/admin,7[\"x\",1]"),
            Some(Packet::Event {
                nsp: "/admin",
                ack: Some(7),
                data: "[\"x\",1]"
            })
        );
        assert_eq!(
            parse("2/admin"),
            Some(Packet::Event {
                nsp: "/admin",
                ack: None,
                data: ""
            })
        );
        assert_eq!(
            parse("1/admin,"),
            Some(Packet::Disconnect { nsp: "/admin" })
        );
        assert_eq!(parse("3/admin,4[]"), Some(Packet::Ack { nsp: "/admin" }));
        assert_eq!(
            parse("62-/admin,5[{\"_placeholder\":true,\"num\":0}]"),
            Some(Packet::BinaryAck {
                nsp: "/admin",
                attachments: 2
            })
        );
    }

    #[test]
    fn malformed_packets_are_refused() {
        for bad in ["", "x", "7", "4{}", "5", "5-[]", "5a-[]", "6", "é", " 2[]"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn connect_ack_and_connect_error_have_the_wire_shape() {
        assert_eq!(connect_ack("s1"), r#"0{"sid":"s1"}"#);
        assert_eq!(
            connect_error("/", "invalid_session_api_key", None),
            r#"4{"message":"invalid_session_api_key"}"#
        );
        assert_eq!(
            connect_error("/admin", "Invalid namespace", None),
            r#"4/admin,{"message":"Invalid namespace"}"#
        );
        assert_eq!(
            connect_error("/", "no", Some(serde_json::json!({"why": 1}))),
            r#"4{"message":"no","data":{"why":1}}"#
        );
        assert_eq!(ack(12), "312[]");
    }

    #[test]
    fn an_event_is_framed_with_its_name_and_shares_its_json() {
        let name = EventName::new("oh_event");
        assert_eq!(name.message("{\"id\":1}"), r#"42["oh_event",{"id":1}]"#);
        let json: Arc<str> = Arc::from("{\"id\":2}");
        let packet = name.packet(json.clone());
        assert_eq!(packet.wire_len(), r#"42["oh_event",{"id":2}]"#.len());
        match packet {
            OutPacket::Shared { body, .. } => assert!(Arc::ptr_eq(&body, &json)),
            other => panic!("{other:?}"),
        }
        // Names are JSON strings, quotes and all.
        assert_eq!(EventName::new("a\"b").message("1"), r#"42["a\"b",1]"#);
    }
}
