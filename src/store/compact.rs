//! How an event's JSON is kept on disk: a message's text appears twice on the wire (the
//! top-level `message` and `args.content`), so a long one is stored once, with `"message":1`
//! in its place, and put back when read. Short texts, and any event not of that shape,
//! are stored as they are; what a client receives is byte-for-byte the same either way.

use std::borrow::Cow;

/// Texts shorter than this are not worth the splice.
const MIN_SHARED: usize = 256;

/// The key whose first occurrence is the event's top-level `message` (the keys before it,
/// `id`, `timestamp` and `source`, hold no such text).
const MESSAGE_KEY: &str = "\"message\":";
const CONTENT_KEY: &str = "\"content\":";
/// What stands for "the same as `content`"; the wire's `message` is always a string.
const SAME: &str = "1";

/// The length of the JSON string literal at the start of `s` (quotes included).
fn string_literal_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The form to store. A raw `"content":` cannot occur inside a string literal (its
/// quotes would be escaped), so the first one after `message` is a key.
pub fn pack(json: &str) -> Cow<'_, str> {
    let Some(m) = json.find(MESSAGE_KEY).map(|i| i + MESSAGE_KEY.len()) else {
        return Cow::Borrowed(json);
    };
    let Some(len) = string_literal_len(&json[m..]).filter(|l| *l >= MIN_SHARED) else {
        return Cow::Borrowed(json);
    };
    let literal = &json[m..m + len];
    let rest = &json[m + len..];
    let Some(c) = rest.find(CONTENT_KEY).map(|i| i + CONTENT_KEY.len()) else {
        return Cow::Borrowed(json);
    };
    if !rest[c..].starts_with(literal) || string_literal_len(&rest[c..]) != Some(len) {
        return Cow::Borrowed(json);
    }
    Cow::Owned(format!("{}{SAME}{rest}", &json[..m]))
}

/// The wire form of what [`pack`] stored.
pub fn unpack(stored: String) -> String {
    let Some(m) = stored.find(MESSAGE_KEY).map(|i| i + MESSAGE_KEY.len()) else {
        return stored;
    };
    if !stored[m..].starts_with(SAME) {
        return stored;
    }
    let rest = &stored[m + SAME.len()..];
    let Some(c) = rest.find(CONTENT_KEY).map(|i| i + CONTENT_KEY.len()) else {
        return stored;
    };
    let Some(len) = string_literal_len(&rest[c..]) else {
        return stored;
    };
    format!("{}{}{rest}", &stored[..m], &rest[c..c + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        let t = serde_json::to_string(text).unwrap();
        format!(
            r#"{{"id":3,"timestamp":"2025-10-10T12:00:00.000001","source":"user","message":{t},"action":"message","args":{{"content":{t},"file_urls":[],"image_urls":[],"wait_for_response":false,"security_risk":-1}}}}"#
        )
    }

    #[test]
    fn a_long_message_is_stored_once_and_read_back_byte_for_byte() {
        for text in [
            "a".repeat(5000),
            format!(
                "{}\"content\": \\\" quotes \\\\ and ünïcode ✓ \n",
                "b".repeat(300)
            ),
            format!("\"message\":1 {}", "c".repeat(400)),
        ] {
            let wire = message(&text);
            let stored = pack(&wire);
            assert!(stored.len() < wire.len() - text.len() / 2, "{stored}");
            assert_eq!(unpack(stored.into_owned()), wire);
        }
    }

    #[test]
    fn other_events_are_stored_as_they_are() {
        let short = message("hello");
        assert!(matches!(pack(&short), Cow::Borrowed(_)));
        let obs = r#"{"id":4,"timestamp":"t","source":"agent","message":"Command `ls` executed with exit code 0.","cause":3,"observation":"run","content":"x","extras":{}}"#;
        assert_eq!(pack(obs), obs);
        let long = format!(
            r#"{{"id":5,"source":"agent","message":"{}","action":"think","args":{{"thought":"other"}}}}"#,
            "m".repeat(400)
        );
        assert_eq!(pack(&long), long);
        assert_eq!(unpack(obs.to_string()), obs);
        assert_eq!(unpack("not json at all".into()), "not json at all");
    }
}
