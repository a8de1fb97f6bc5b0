//! Sample payloads served by `GET /v2/webhooks/samples/{id}` (docs/kazoo.md#samples).
//!
//! Every sample is produced by the real parser and payload builder from an example bus message —
//! the project's fixtures, embedded at compile time — so samples cannot drift from deliveries.
//! Notification types without a fixture get a bus message synthesized from their required fields,
//! which the builder then turns into a payload like any other.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::event::{EventError, KazooEvent};
use crate::hooks::HookType;
use crate::ids::AccountId;
use crate::notifications::{CALLFLOW_WEBHOOK, NOTIFICATION_TYPES, NotificationType};
use crate::payload::{Finishing, HookView, PayloadContext, base_payload, finish_payload};

/// The sample ids, sorted, as Kazoo lists them.
const SAMPLE_IDS: &[&str] = &[
    "webhooks_channel_answer",
    "webhooks_channel_bridge",
    "webhooks_channel_create",
    "webhooks_channel_destroy",
    "webhooks_notifications",
    "webhooks_object",
    "webhooks_parking",
];

/// The example bus messages, by sample id.
const FIXTURES: &[(&str, &str)] = &[
    ("webhooks_channel_answer", include_str!("../fixtures/amqp-events/CHANNEL_ANSWER.json")),
    ("webhooks_channel_bridge", include_str!("../fixtures/amqp-events/CHANNEL_BRIDGE.json")),
    ("webhooks_channel_create", include_str!("../fixtures/amqp-events/CHANNEL_CREATE.json")),
    ("webhooks_channel_destroy", include_str!("../fixtures/amqp-events/CHANNEL_DESTROY.json")),
    ("webhooks_object", include_str!("../fixtures/amqp-events/object_doc_created_user.json")),
    ("webhooks_object", include_str!("../fixtures/amqp-events/object_doc_edited_user.json")),
    ("webhooks_object", include_str!("../fixtures/amqp-events/object_doc_deleted_user.json")),
    ("webhooks_parking", include_str!("../fixtures/amqp-events/parking_PARK_PARKED.json")),
];

/// The notification fixture; the other notification types are synthesized around it.
const NOTIFICATION_FIXTURE: &str = include_str!("../fixtures/amqp-events/notification_voicemail_new.json");

/// The parking events that share `PARK_PARKED`'s shape.
const OTHER_PARKING_EVENTS: &[&str] = &["PARK_RETRIEVED", "PARK_ABANDONED"];

/// Why the samples could not be built; only a broken embedded fixture can cause it, which the
/// crate's tests catch.
#[derive(Debug, thiserror::Error)]
enum SampleError {
    #[error("embedded fixture is not valid json")]
    Json(#[from] serde_json::Error),
    #[error("embedded fixture lacks '{0}'")]
    Missing(&'static str),
    #[error("embedded fixture is not a deliverable event")]
    Event(#[from] EventError),
    #[error("embedded fixture names no hook type")]
    NoHookType,
}

/// The sample ids, sorted.
pub fn sample_ids() -> &'static [&'static str] {
    SAMPLE_IDS
}

/// The sample payloads of `id`, or `None` for an unknown id.
pub fn sample(id: &str) -> Option<Vec<Value>> {
    samples().as_ref().ok()?.get(id).cloned()
}

/// What a test callout of a hook sends (`PUT .../webhooks/{id}/test`).
#[derive(Debug, Clone, PartialEq)]
pub struct TestDelivery {
    /// The attempt record's `hook_event` (`CHANNEL_CREATE`, `object`, ...).
    pub hook_event: &'static str,
    /// The payload, finished for the hook.
    pub payload: Map<String, Value>,
}

/// The test callout of `hook`: its type's first sample event (`CHANNEL_CREATE` for `all`
/// hooks), finished for the hook as a delivery is (its `custom_data` merged, `cluster_id` last),
/// except that its filters and modifiers do not reject it: a test always sends. `None` for a
/// type without samples (sms, mms).
pub fn test_delivery(hook: &HookView<'_>, finishing: &Finishing<'_>) -> Option<TestDelivery> {
    let sample_type = if hook.hook_type == HookType::All { HookType::ChannelCreate } else { hook.hook_type };
    let sample_id = format!("webhooks_{sample_type}");
    let text = if sample_id == "webhooks_notifications" {
        NOTIFICATION_FIXTURE
    } else {
        FIXTURES.iter().find(|(id, _)| *id == sample_id)?.1
    };
    let fixture = Fixture::parse(text).ok()?;
    let event = KazooEvent::parse(&fixture.routing_key, &fixture.body).ok()?;
    let base = base_payload(&event, &PayloadContext::new(fixture.reseller_id.as_ref()));
    let payload = finish_payload(&base, &HookView { modifiers: None, ..*hook }, finishing)?;
    Some(TestDelivery { hook_event: event.hook_event(), payload })
}

/// All samples, built on first use.
fn samples() -> &'static Result<BTreeMap<&'static str, Vec<Value>>, SampleError> {
    static SAMPLES: OnceLock<Result<BTreeMap<&'static str, Vec<Value>>, SampleError>> = OnceLock::new();
    SAMPLES.get_or_init(build)
}

/// Builds every sample from the embedded messages.
fn build() -> Result<BTreeMap<&'static str, Vec<Value>>, SampleError> {
    let mut samples: BTreeMap<&'static str, Vec<Value>> = SAMPLE_IDS.iter().map(|id| (*id, Vec::new())).collect();
    for (id, fixture) in FIXTURES {
        let fixture = Fixture::parse(fixture)?;
        let list = samples.entry(id).or_default();
        list.push(fixture.payload(&fixture.body)?);
        if *id == "webhooks_parking" {
            for event_name in OTHER_PARKING_EVENTS {
                let mut body = fixture.body.clone();
                if let Some(object) = body.as_object_mut() {
                    object.insert("Event-Name".to_owned(), Value::from(*event_name));
                }
                list.push(fixture.payload(&body)?);
            }
        }
    }
    let notification = Fixture::parse(NOTIFICATION_FIXTURE)?;
    let fixture_name = notification.body.get("Event-Name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let list = samples.entry("webhooks_notifications").or_default();
    // Registered hooks never receive the callflow webhook, so it has no sample
    // (docs/kazoo.md#callflow-webhook).
    for notification_type in NOTIFICATION_TYPES.iter().filter(|entry| entry.name != CALLFLOW_WEBHOOK) {
        if notification_type.name == fixture_name {
            list.push(notification.payload(&notification.body)?);
        } else {
            list.push(notification.payload(&synthesize_notification(notification_type, &notification.body))?);
        }
    }
    Ok(samples)
}

/// The parts of a fixture file a sample needs.
struct Fixture {
    routing_key: String,
    body: Value,
    reseller_id: Option<AccountId>,
    cluster_id: String,
}

impl Fixture {
    /// Reads a fixture file.
    fn parse(text: &str) -> Result<Self, SampleError> {
        let fixture: Value = serde_json::from_str(text)?;
        let routing_key =
            fixture.get("routing_key").and_then(Value::as_str).ok_or(SampleError::Missing("routing_key"))?;
        let body = fixture.get("body").cloned().ok_or(SampleError::Missing("body"))?;
        let context = fixture.get("context").ok_or(SampleError::Missing("context"))?;
        let reseller_id = context.get("reseller_id").and_then(Value::as_str).and_then(|id| id.parse().ok());
        let cluster_id = context.get("cluster_id").and_then(Value::as_str).ok_or(SampleError::Missing("cluster_id"))?;
        Ok(Self { routing_key: routing_key.to_owned(), body, reseller_id, cluster_id: cluster_id.to_owned() })
    }

    /// The payload a plain hook of the event's type (no custom data, no modifiers) receives for
    /// `body` published on this fixture's routing key.
    fn payload(&self, body: &Value) -> Result<Value, SampleError> {
        let event = KazooEvent::parse(&self.routing_key, body)?;
        let hook_type = event.lookup_key().ok_or(SampleError::NoHookType)?;
        let base = base_payload(&event, &PayloadContext::new(self.reseller_id.as_ref()));
        let payload = finish_payload(&base, &HookView::new(hook_type), &Finishing::new(&self.cluster_id))
            .ok_or(SampleError::NoHookType)?;
        Ok(Value::Object(payload))
    }
}

/// A bus message of `notification_type` carrying its required fields (example values) and the
/// envelope of the fixture `template`.
fn synthesize_notification(notification_type: &NotificationType, template: &Value) -> Value {
    let mut message = Map::new();
    for field in notification_type.required_fields {
        message.insert((*field).to_owned(), example_value(field, template));
    }
    for envelope in ["App-Name", "App-Version", "Node", "Msg-ID", "Event-Category"] {
        if let Some(value) = template.get(envelope) {
            message.insert(envelope.to_owned(), value.clone());
        }
    }
    message.insert("Event-Name".to_owned(), Value::from(notification_type.name));
    Value::Object(message)
}

/// An example value of a notification field, in the type Kazoo publishes it with. Fields the
/// template message has reuse its value, so all samples describe the same account and call.
fn example_value(field: &str, template: &Value) -> Value {
    if let Some(value) = template.get(field) {
        return value.clone();
    }
    match field {
        "Zones" => json!({"home": "us-east"}),
        "Due-Date" => json!(63_877_651_200_i64),
        "Items" => json!([{"category": "phone_numbers", "item": "did_us", "quantity": 2}]),
        "Timestamp" => json!(63_877_219_205_i64),
        "Template-ID" => json!("customer_welcome"),
        "Number" => json!("+14155550100"),
        "Cnam" => json!({"display_name": "ACME Corp"}),
        "Realm" => json!("acme.sip.example.net"),
        "Username" => json!("user_k3j9x2"),
        "Occurrence" => json!("registration"),
        "Fax-ID" | "Fax-JobId" => json!("c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8"),
        "Current-Balance" => json!(4.5),
        "Call-Bridged" => json!(false),
        "Message-Left" => json!(true),
        "User-ID" => json!("e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7"),
        "Feature" => json!("e911"),
        "Fax-From-Email" => json!("scanner@acme.example.com"),
        "Errors" => json!(["no fax attachment found"]),
        "Email" => json!("alice@acme.example.com"),
        "Password-Reset-Link" => json!("https://portal.example.net/reset/7d1c0b9a"),
        "Port-Request-ID" => json!("a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0"),
        "Comment" => json!({"author": "Alice Smith", "content": "Carrier confirmed the port date"}),
        "Audit-Log" => json!({"phone_numbers": {"did_us": 1}}),
        "Message" => json!("Disk usage above 90% on db1.example.net"),
        "Subject" => json!("System alert"),
        "Amount" => json!(25),
        "Response" => json!("Approved"),
        "Success" => json!(true),
        "Max-Message-Count" | "Message-Count" => json!(100),
        "Hook-ID" => json!("5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"),
        _ => json!("example"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_fixture_builds_a_sample() {
        let samples = build().expect("samples build");
        assert_eq!(samples.keys().copied().collect::<Vec<_>>(), SAMPLE_IDS);
        assert!(samples.values().all(|list| !list.is_empty()));
    }

    #[test]
    fn a_test_delivery_is_the_first_sample_of_the_hook_type_finished_for_the_hook() {
        let custom_data = json!({"environment": "staging", "type": "device"});
        let custom_data = custom_data.as_object().expect("an object");
        let modifiers = json!({"call_direction": "no direction matches"});
        let hook = HookView {
            custom_data: Some(custom_data),
            modifiers: modifiers.as_object(),
            ..HookView::new(HookType::Object)
        };
        let delivery = test_delivery(&hook, &Finishing::new("cluster-1")).expect("object hooks have samples");
        assert_eq!(delivery.hook_event, "object");
        let mut expected = sample("webhooks_object").expect("a sample").swap_remove(0);
        let fields = expected.as_object_mut().expect("an object");
        fields.shift_remove("cluster_id");
        // `type` and `action` are filter keys, never copied into the payload.
        fields.insert("environment".into(), json!("staging"));
        fields.insert("cluster_id".into(), json!("cluster-1"));
        assert_eq!(Value::Object(delivery.payload), expected);
        let all =
            test_delivery(&HookView::new(HookType::All), &Finishing::new("c")).expect("all hooks get a channel sample");
        assert_eq!(all.hook_event, "CHANNEL_CREATE");
        assert_eq!(
            test_delivery(&HookView::new(HookType::Notifications), &Finishing::new("c")).map(|test| test.hook_event),
            Some("notifications")
        );
        assert_eq!(test_delivery(&HookView::new(HookType::Sms), &Finishing::new("c")), None);
    }
}
