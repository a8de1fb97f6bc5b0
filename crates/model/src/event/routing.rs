//! Kazoo's routing-key conventions (spec 5.1).

/// Encodes one routing-key segment as Kazoo does for call ids and document ids: letters, digits,
/// `-`, `~`, `_` kept; space becomes `+`; every other byte (`.` included, since dots separate
/// segments) becomes `%XX` with upper-case hex.
pub fn encode_routing_key_segment(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'~' | b'_' => encoded.push(char::from(byte)),
            b' ' => encoded.push('+'),
            _ => {
                encoded.push('%');
                encoded.push(char::from(HEX[usize::from(byte >> 4)]));
                encoded.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
    encoded
}

/// Reverses [`encode_routing_key_segment`]; malformed escapes are kept literally and invalid
/// UTF-8 is replaced, since the result only serves as a fallback identifier.
pub fn decode_routing_key_segment(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let escaped = segment.get(index + 1..index + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(byte) = escaped {
                    decoded.push(byte);
                    index += 3;
                    continue;
                }
                decoded.push(b'%');
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The routing key of a call event: `call.<Event-Name>.<encoded call id>`.
pub fn call_event_routing_key(event_name: &str, call_id: &str) -> String {
    format!("call.{event_name}.{}", encode_routing_key_segment(call_id))
}

/// The event category implied by a routing key's shape, for messages whose body lacks
/// `Event-Category`.
pub(super) fn category_from_key(segments: &[&str]) -> Option<&'static str> {
    let first = *segments.first()?;
    match first {
        "call" => Some("call_event"),
        "notifications" => Some("notification"),
        "sms" => Some("sms"),
        "mms" => Some("mms"),
        _ if first.starts_with("doc_") || first.starts_with("db_") => Some("configuration"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_call_ids() {
        for call_id in ["4f9c@203.0.113.10", "a b+c%d", "naïve~_-", "100%"] {
            assert_eq!(decode_routing_key_segment(&encode_routing_key_segment(call_id)), call_id);
        }
        assert_eq!(decode_routing_key_segment("%4"), "%4");
        assert_eq!(decode_routing_key_segment("%zz"), "%zz");
    }
}
