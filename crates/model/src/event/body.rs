//! Message bodies read as far as parsing needs: a channel event keeps only the fields it reads.

use serde_json::{Map, Value};

use super::channel::{self, ChannelEventName};
use super::fields::text;
use super::sparse;

/// The JSON body of a message received with `routing_key`, read as far as [`super::KazooEvent::parse`]
/// needs: a channel event keeps only the fields it reads, the others are skipped unparsed; any
/// other message is read whole. Parsing either gives the same event.
pub fn read_body(routing_key: &str, body: &[u8]) -> serde_json::Result<Value> {
    let mut segments = routing_key.split('.');
    let channel_key =
        segments.next() == Some("call") && segments.next().and_then(ChannelEventName::from_wire).is_some();
    match channel_key.then(|| channel_fields(body, true)).flatten() {
        Some(fields) => Ok(Value::Object(fields)),
        None => serde_json::from_slice(body),
    }
}

/// An event handed over as JSON text without a routing key (`POST /v2/events`), read as far as
/// [`super::address`] and [`super::KazooEvent::parse`] need: as [`read_body`] does, a channel event (by its own
/// `Event-Category` and `Event-Name`) keeps only the fields they read.
pub fn read_event(body: &[u8]) -> serde_json::Result<Value> {
    match channel_fields(body, false) {
        Some(fields) => Ok(Value::Object(fields)),
        None => serde_json::from_slice(body),
    }
}

/// The fields of `body` a channel event needs, when it is one. The body is authoritative: one
/// that says it is something else is not; one that says nothing is a channel event only when its
/// routing key says so (`keyed`).
fn channel_fields(body: &[u8], keyed: bool) -> Option<Map<String, Value>> {
    let fields = sparse::read_object(body, &channel::FIELDS).ok()?;
    let says = |key: &str, channel: fn(&str) -> bool| match text(&fields, key) {
        Some(value) => channel(value),
        None => keyed,
    };
    (says("Event-Category", |category| category == "call_event")
        && says("Event-Name", |name| ChannelEventName::from_wire(name).is_some()))
    .then_some(fields)
}
