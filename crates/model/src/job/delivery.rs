//! One delivery job: its fields, the one constructor, and its flat wire form.

use std::fmt;

use serde::de::{self, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::payload::Payload;
use super::slot;
use crate::ids::{AccountId, EventId, WebhookId};
use crate::payload::custom_data;
use crate::trace::TraceParent;
use crate::webhook::{CallbackUri, DeliveryTarget, Format, HttpVerb};

/// One HTTP callout to make, with everything needed to make it and to record the attempt, so the
/// dispatcher reads nothing per job.
///
/// On the wire its target's fields sit among its own, as they always have (see `JobWire`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "JobWire")]
pub struct DeliveryJob {
    /// Identifies this event for this hook: sent as `X-Event-ID`, stable across retries.
    pub event_id: EventId,
    /// The hook.
    pub hook_id: WebhookId,
    /// The hook's owner, sent as `X-Account-ID`.
    pub account_id: AccountId,
    /// The attempt record's `hook_event` (`CHANNEL_CREATE`, `object`, ...).
    pub hook_event: String,
    /// Where and how the hook is called.
    pub target: DeliveryTarget,
    /// This attempt's number, 0 for the first.
    pub attempt: u8,
    /// The hook's `custom_data`, recorded on attempts.
    pub custom_data: Option<Map<String, Value>>,
    /// The payload the hook receives, shared with the event's other jobs that receive the same.
    pub payload: Payload,
    /// When the router published the job, Unix milliseconds (delivery latency).
    pub published_at_ms: u64,
    /// A test callout (`PUT .../webhooks/{id}/test`): always recorded, never retried, and it
    /// leaves the hook's failure count and state alone.
    pub test: bool,
    /// The W3C `traceparent` of the event's trace, carried to the callout.
    pub trace_parent: Option<TraceParent>,
}

/// The event side of a delivery job: which event, recorded as which `hook_event`, with which
/// payload, published when.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// Identifies the event for the hook (see [`DeliveryJob::event_id`]).
    pub event_id: EventId,
    /// The attempt record's `hook_event`.
    pub hook_event: String,
    /// The payload, finished for the hook.
    pub payload: Payload,
    /// When the job is published, Unix milliseconds.
    pub published_at_ms: u64,
}

impl DeliveryJob {
    /// The first attempt of delivering `event` to the hook `hook_id` of `account_id`, called as
    /// `target` says; the hook's `custom_data` is recorded on its attempts.
    pub fn new(
        event: JobEvent,
        hook_id: WebhookId,
        account_id: AccountId,
        target: DeliveryTarget,
        custom_data: Option<Map<String, Value>>,
    ) -> Self {
        let JobEvent { event_id, hook_event, payload, published_at_ms } = event;
        Self {
            event_id,
            hook_id,
            account_id,
            hook_event,
            target,
            attempt: 0,
            custom_data,
            payload,
            published_at_ms,
            test: false,
            trace_parent: None,
        }
    }
}

/// A job as it travels and is kept with attempt records: flat, the target's fields in the order
/// jobs have always been written. Read through this shape; [`DeliveryJob`]'s `Serialize` writes
/// the same one without copying.
#[derive(Deserialize)]
struct JobWire {
    event_id: EventId,
    hook_id: WebhookId,
    account_id: AccountId,
    hook_event: String,
    uri: CallbackUri,
    http_verb: HttpVerb,
    format: Format,
    retries: u8,
    #[serde(default)]
    attempt: u8,
    #[serde(default)]
    custom_request_headers: Map<String, Value>,
    #[serde(default)]
    custom_data: Option<Map<String, Value>>,
    #[serde(with = "slot")]
    payload: Payload,
    published_at_ms: u64,
    #[serde(default)]
    test: bool,
    #[serde(default, deserialize_with = "lenient_trace_parent")]
    trace_parent: Option<TraceParent>,
}

/// Reads a job's `trace_parent`. Text that is no valid trace parent reads as none, as such text
/// was always ignored: each attempt then starts a trace of its own.
fn lenient_trace_parent<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<TraceParent>, D::Error> {
    struct Lenient;

    impl<'de> Visitor<'de> for Lenient {
        type Value = Option<TraceParent>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a traceparent string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(text.parse().ok())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    deserializer.deserialize_option(Lenient)
}

impl From<JobWire> for DeliveryJob {
    fn from(wire: JobWire) -> Self {
        let custom_request_headers =
            (!wire.custom_request_headers.is_empty()).then(|| Box::new(wire.custom_request_headers));
        Self {
            event_id: wire.event_id,
            hook_id: wire.hook_id,
            account_id: wire.account_id,
            hook_event: wire.hook_event,
            target: DeliveryTarget {
                uri: wire.uri,
                http_verb: wire.http_verb,
                format: wire.format,
                retries: wire.retries,
                custom_request_headers,
            },
            attempt: wire.attempt,
            custom_data: wire.custom_data,
            payload: wire.payload,
            published_at_ms: wire.published_at_ms,
            test: wire.test,
            trace_parent: wire.trace_parent,
        }
    }
}

impl Serialize for DeliveryJob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let target = &self.target;
        let headers = target.custom_request_headers.as_deref().filter(|headers| !headers.is_empty());
        let mut job = serializer.serialize_struct("DeliveryJob", 15)?;
        job.serialize_field("event_id", &self.event_id)?;
        job.serialize_field("hook_id", &self.hook_id)?;
        job.serialize_field("account_id", &self.account_id)?;
        job.serialize_field("hook_event", &self.hook_event)?;
        job.serialize_field("uri", &target.uri)?;
        job.serialize_field("http_verb", &target.http_verb)?;
        job.serialize_field("format", &target.format)?;
        job.serialize_field("retries", &target.retries)?;
        job.serialize_field("attempt", &self.attempt)?;
        match headers {
            Some(headers) => job.serialize_field("custom_request_headers", headers)?,
            None => job.skip_field("custom_request_headers")?,
        }
        match &self.custom_data {
            Some(custom_data) => job.serialize_field("custom_data", custom_data)?,
            None => job.skip_field("custom_data")?,
        }
        job.serialize_field("payload", &slot::Slot(&self.payload))?;
        job.serialize_field("published_at_ms", &self.published_at_ms)?;
        if self.test {
            job.serialize_field("test", &self.test)?;
        } else {
            job.skip_field("test")?;
        }
        match &self.trace_parent {
            Some(trace_parent) => job.serialize_field("trace_parent", trace_parent)?,
            None => job.skip_field("trace_parent")?,
        }
        job.end()
    }
}

/// The first attempt of delivering `event` to the hook `hook_id` of `account_id`, called as its
/// stored document `hook` says now (URI, verb, format, retries, headers, custom data).
pub fn job_for_document(
    event: JobEvent,
    hook_id: WebhookId,
    account_id: AccountId,
    hook: &Map<String, Value>,
) -> DeliveryJob {
    let target = DeliveryTarget::from_document(hook);
    DeliveryJob::new(event, hook_id, account_id, target, custom_data(hook).cloned())
}

/// The job delivering `attempted` again to its hook as the hook's document `hook` says now (its
/// owner may have fixed the endpoint since): the same event id, so receivers can de-duplicate,
/// the same payload in the same trace, and the attempt counter back at the first attempt.
pub fn redelivery(attempted: &DeliveryJob, hook: &Map<String, Value>, published_at_ms: u64) -> DeliveryJob {
    let event = JobEvent {
        event_id: attempted.event_id.clone(),
        hook_event: attempted.hook_event.clone(),
        payload: attempted.payload.clone(),
        published_at_ms,
    };
    DeliveryJob {
        trace_parent: attempted.trace_parent,
        ..job_for_document(event, attempted.hook_id.clone(), attempted.account_id.clone(), hook)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// A job of a channel event on its fourth attempt, for tests across the crate.
    pub(crate) fn attempted() -> DeliveryJob {
        DeliveryJob {
            event_id: "0a1b2c3d4e".into(),
            hook_id: "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".parse().expect("hook id"),
            account_id: "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("account id"),
            hook_event: "CHANNEL_CREATE".into(),
            target: DeliveryTarget {
                uri: "https://old.example.com/in".into(),
                http_verb: HttpVerb::Get,
                format: Format::FormData,
                retries: 4,
                custom_request_headers: json!({"X-Old": "1"}).as_object().cloned().map(Box::new),
            },
            attempt: 3,
            custom_data: None,
            payload: json!({"call_id": "c1"}).as_object().cloned().unwrap_or_default().into(),
            published_at_ms: 10,
            test: false,
            trace_parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().ok(),
        }
    }

    #[test]
    fn a_redelivery_keeps_the_event_payload_and_trace_and_takes_the_hook_as_it_is_now() {
        let hook = json!({"uri": "https://new.example.com/in", "http_verb": "PUT", "format": "json", "retries": 1,
                          "custom_request_headers": {"X-New": "2"}, "custom_data": {"env": "prod"}});
        let again = redelivery(&attempted(), hook.as_object().expect("an object"), 99);
        let expected = DeliveryJob {
            target: DeliveryTarget {
                uri: "https://new.example.com/in".into(),
                http_verb: HttpVerb::Put,
                format: Format::Json,
                retries: 1,
                custom_request_headers: json!({"X-New": "2"}).as_object().cloned().map(Box::new),
            },
            attempt: 0,
            custom_data: json!({"env": "prod"}).as_object().cloned(),
            published_at_ms: 99,
            ..attempted()
        };
        assert_eq!(again, expected);
    }

    #[test]
    fn missing_or_odd_hook_fields_fall_back_to_the_schema_defaults() {
        let again = redelivery(&attempted(), &Map::new(), 0);
        let target = &again.target;
        assert_eq!((target.http_verb, target.format, target.retries), (HttpVerb::Post, Format::FormData, 2));
        assert!(target.custom_request_headers.is_none() && again.custom_data.is_none());
    }

    #[test]
    fn a_job_is_written_flat_with_its_target_among_its_fields() {
        let text = concat!(
            r#"{"event_id":"0a1b2c3d4e","hook_id":"5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b","#,
            r#""account_id":"3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d","hook_event":"CHANNEL_CREATE","#,
            r#""uri":"https://old.example.com/in","http_verb":"get","format":"form-data","retries":4,"attempt":3,"#,
            r#""custom_request_headers":{"X-Old":"1"},"payload":{"call_id":"c1"},"published_at_ms":10,"#,
            r#""trace_parent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#
        );
        assert_eq!(serde_json::to_string(&attempted()).expect("JSON"), text);
        assert_eq!(serde_json::from_str::<DeliveryJob>(text).expect("a job"), attempted());
        let plain = DeliveryJob {
            target: DeliveryTarget { custom_request_headers: None, ..attempted().target },
            test: true,
            ..attempted()
        };
        let written = serde_json::to_value(&plain).expect("JSON");
        assert!(written.get("custom_request_headers").is_none() && written["test"] == true);
        let unreachable = json!({"uri": "no uri at all", "http_verb": "post", "format": "json", "retries": 0,
                                 "event_id": "e", "hook_id": plain.hook_id, "account_id": plain.account_id,
                                 "hook_event": "object", "payload": {}, "published_at_ms": 0});
        let read: DeliveryJob = serde_json::from_value(unreachable.clone()).expect("any uri is read");
        assert!(read.target.uri.callout().is_err());
        let mut untraced = unreachable;
        untraced["trace_parent"] = json!("not a trace parent");
        let read: DeliveryJob = serde_json::from_value(untraced.clone()).expect("a malformed trace parent is read");
        assert_eq!(read.trace_parent, None);
        untraced["trace_parent"] = json!(7);
        assert!(serde_json::from_value::<DeliveryJob>(untraced).is_err(), "a trace parent is text");
    }
}
