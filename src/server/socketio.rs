//! Socket.IO v5 packets (the subset a single-namespace server needs).

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

/// `2["<name>",<json>]`: an event with one argument that is already JSON text.
pub fn event(name: &str, json: &str) -> String {
    format!("2[\"{name}\",{json}]")
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
}
