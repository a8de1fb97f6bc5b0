//! Kazoo's routing-key conventions (docs/kazoo.md#routing-keys).

use serde_json::Value;

use super::EventError;
use super::fields::text;
use crate::notifications;

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

/// The longest routing key the broker takes (an AMQP short string).
pub const MAX_ROUTING_KEY_BYTES: usize = 255;

/// One segment of a routing key: the event field it is written from (`None` for a fixed word),
/// and its text in the key.
type Segment<'a> = (Option<&'static str>, &'a str);

/// The segments joined by dots.
fn join(segments: &[Segment<'_>]) -> String {
    segments.iter().map(|(_, text)| *text).collect::<Vec<_>>().join(".")
}

/// The segments joined by dots, unless the key is longer than the broker takes; the error then
/// names the field with the longest segment, the one to shorten.
fn checked_key(segments: &[Segment<'_>]) -> Result<String, EventError> {
    let key = join(segments);
    if key.len() <= MAX_ROUTING_KEY_BYTES {
        return Ok(key);
    }
    let longest = segments
        .iter()
        .filter_map(|(field, text)| field.map(|field| (field, text.len())))
        .reduce(|longest, candidate| if candidate.1 > longest.1 { candidate } else { longest });
    // Fixed words alone never reach the limit, so some field is there.
    let field = longest.map_or("Event-Name", |(field, _)| field);
    Err(EventError::RoutingKeyTooLong { field, length: key.len() })
}

/// The segments of a call event's routing key, the call id already encoded.
fn call_event_segments<'a>(event_name: &'a str, call_id_field: &'static str, call_id: &'a str) -> [Segment<'a>; 3] {
    [(None, "call"), (Some("Event-Name"), event_name), (Some(call_id_field), call_id)]
}

/// The routing key of a call event: `call.<Event-Name>.<encoded call id>`.
pub fn call_event_routing_key(event_name: &str, call_id: &str) -> String {
    join(&call_event_segments(event_name, "Call-ID", &encode_routing_key_segment(call_id)))
}

/// The exchange and routing key a Kazoo publisher would use for `body`, derived from its
/// envelope: for publishers that hand events over HTTP instead of AMQP. A key longer than the
/// broker takes is refused, naming the field that makes it so.
pub fn address(body: &Value) -> Result<(&'static str, String), EventError> {
    let object = body.as_object().ok_or(EventError::NotAnObject)?;
    let field = |key: &'static str| text(object, key).ok_or(EventError::MissingField(key));
    let category = field("Event-Category")?;
    let name = field("Event-Name")?;
    match category {
        "call_event" => {
            let (call_id_field, call_id) = ["Origination-Call-ID", "Call-ID", "Unique-ID"]
                .into_iter()
                .find_map(|key| text(object, key).map(|call_id| (key, call_id)))
                .ok_or(EventError::MissingField("Call-ID"))?;
            let call_id = encode_routing_key_segment(call_id);
            Ok(("callevt", checked_key(&call_event_segments(name, call_id_field, &call_id))?))
        }
        "configuration" => {
            let database = field("Database")?;
            // Kazoo names databases in their encoded form (`account%2F3a%2F...`); a raw name
            // (`account/3a/...`) is encoded here so the key keeps its four segments.
            let database =
                if database.contains(['/', '.']) { encode_routing_key_segment(database) } else { database.to_owned() };
            let (kind, id) = (field("Type")?, encode_routing_key_segment(field("ID")?));
            let segments =
                [(Some("Event-Name"), name), (Some("Database"), &database), (Some("Type"), kind), (Some("ID"), &id)];
            Ok(("configuration", checked_key(&segments)?))
        }
        "notification" => notifications::by_name(name)
            .map(|notification| ("notifications", notification.routing_key.to_owned()))
            .ok_or_else(|| EventError::UnknownNotification(name.to_owned())),
        "sms" | "mms" => {
            let route_type = text(object, "Route-Type").unwrap_or("offnet").to_ascii_lowercase();
            let message_id = encode_routing_key_segment(field("Message-ID")?);
            let segments = [
                (None, category),
                (Some("Event-Name"), name),
                (Some("Route-Type"), &route_type),
                (Some("Message-ID"), &message_id),
            ];
            Ok(("im", checked_key(&segments)?))
        }
        other => Err(EventError::UnsupportedCategory(other.to_owned())),
    }
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
    fn every_fixture_is_addressed_as_kazoo_publishes_it() {
        let fixtures = [
            include_str!("../../fixtures/amqp-events/CHANNEL_ANSWER.json"),
            include_str!("../../fixtures/amqp-events/CHANNEL_BRIDGE.json"),
            include_str!("../../fixtures/amqp-events/CHANNEL_CREATE.json"),
            include_str!("../../fixtures/amqp-events/CHANNEL_DESTROY.json"),
            include_str!("../../fixtures/amqp-events/notification_voicemail_new.json"),
            include_str!("../../fixtures/amqp-events/object_doc_created_user.json"),
            include_str!("../../fixtures/amqp-events/object_doc_deleted_user.json"),
            include_str!("../../fixtures/amqp-events/object_doc_edited_user.json"),
            include_str!("../../fixtures/amqp-events/parking_PARK_PARKED.json"),
        ];
        for fixture in fixtures {
            let fixture: Value = serde_json::from_str(fixture).expect("fixture JSON");
            let (exchange, routing_key) = address(&fixture["body"]).expect("addressable");
            assert_eq!(exchange, fixture["exchange"]);
            assert_eq!(routing_key, fixture["routing_key"]);
        }
    }

    #[test]
    fn raw_database_names_are_encoded_and_unknown_categories_refused() {
        let body = serde_json::json!({"Event-Category": "configuration", "Event-Name": "doc_edited",
            "Database": "account/3a/4b/5c6d7e8f9a0b1c2d3e4f5a6b7c8d", "Type": "device", "ID": "abc"});
        let (_, key) = address(&body).expect("addressable");
        assert_eq!(key, "doc_edited.account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d.device.abc");
        let sms = serde_json::json!({"Event-Category": "sms", "Event-Name": "inbound", "Message-ID": "m.1", "Route-Type": "OffNet"});
        assert_eq!(address(&sms).expect("addressable"), ("im", "sms.inbound.offnet.m%2E1".to_owned()));
        let other = serde_json::json!({"Event-Category": "media", "Event-Name": "x"});
        assert!(matches!(address(&other), Err(EventError::UnsupportedCategory(_))));
        assert!(matches!(address(&serde_json::json!([])), Err(EventError::NotAnObject)));
    }

    #[test]
    fn keys_over_the_brokers_limit_name_the_field_that_makes_them_so() {
        let call = |field: &str, call_id: &str| serde_json::json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", field: call_id});
        // `call.CHANNEL_CREATE.` is 20 bytes: 235 more make the longest key the broker takes.
        let (_, key) = address(&call("Call-ID", &"c".repeat(235))).expect("addressable");
        assert_eq!(key.len(), MAX_ROUTING_KEY_BYTES);
        assert_eq!(
            address(&call("Call-ID", &"c".repeat(236))),
            Err(EventError::RoutingKeyTooLong { field: "Call-ID", length: 256 })
        );
        // Encoded, 80 `@` take 240 bytes.
        assert_eq!(
            address(&call("Origination-Call-ID", &"@".repeat(80))),
            Err(EventError::RoutingKeyTooLong { field: "Origination-Call-ID", length: 260 })
        );
        let long_name =
            serde_json::json!({"Event-Category": "call_event", "Event-Name": "X".repeat(300), "Call-ID": "c"});
        assert_eq!(address(&long_name), Err(EventError::RoutingKeyTooLong { field: "Event-Name", length: 307 }));

        let document = serde_json::json!({"Event-Category": "configuration", "Event-Name": "doc_edited",
            "Database": "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d", "Type": "device", "ID": "i".repeat(200)});
        assert!(matches!(address(&document), Err(EventError::RoutingKeyTooLong { field: "ID", .. })));
        let sms = serde_json::json!({"Event-Category": "sms", "Event-Name": "inbound", "Message-ID": "m".repeat(250)});
        assert!(matches!(address(&sms), Err(EventError::RoutingKeyTooLong { field: "Message-ID", .. })));
        let error = address(&call("Call-ID", &"c".repeat(236))).expect_err("too long");
        assert_eq!(error.to_string(), "'Call-ID' makes the routing key 256 bytes long; the broker takes at most 255");
    }

    #[test]
    fn round_trips_awkward_call_ids() {
        for call_id in ["4f9c@203.0.113.10", "a b+c%d", "naïve~_-", "100%"] {
            assert_eq!(decode_routing_key_segment(&encode_routing_key_segment(call_id)), call_id);
        }
        assert_eq!(decode_routing_key_segment("%4"), "%4");
        assert_eq!(decode_routing_key_segment("%zz"), "%zz");
    }
}
