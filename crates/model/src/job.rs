//! Delivery jobs: what the router hands the dispatcher for one hook and one event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AccountId, WebhookId};
use crate::retry::MAX_RETRIES;
use crate::webhook::{DEFAULT_RETRIES, Format, HttpVerb};

/// One HTTP callout to make, with everything needed to make it and to record the attempt, so the
/// dispatcher reads nothing per job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    /// Identifies this event for this hook: sent as `X-Event-ID`, stable across retries.
    pub event_id: String,
    /// The hook.
    pub hook_id: WebhookId,
    /// The hook's owner, sent as `X-Account-ID`.
    pub account_id: AccountId,
    /// The attempt record's `hook_event` (`CHANNEL_CREATE`, `object`, ...).
    pub hook_event: String,
    /// The hook's URI.
    pub uri: String,
    /// The hook's verb.
    pub http_verb: HttpVerb,
    /// The hook's body format.
    pub format: Format,
    /// Retries after the first attempt (0..=4).
    pub retries: u8,
    /// This attempt's number, 0 for the first.
    #[serde(default)]
    pub attempt: u8,
    /// Extra request headers of the hook.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom_request_headers: Map<String, Value>,
    /// The hook's `custom_data`, recorded on attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Map<String, Value>>,
    /// The payload the hook receives.
    pub payload: Map<String, Value>,
    /// When the router published the job, Unix milliseconds (delivery latency).
    pub published_at_ms: u64,
    /// A test callout (`PUT .../webhooks/{id}/test`): always recorded, never retried, and it
    /// leaves the hook's failure count and state alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// The W3C `traceparent` of the event's trace, carried to the callout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

/// The body of one bus message: several jobs travel together, so one event fanning out to many
/// hooks costs one publish and one confirm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobBatch {
    /// The jobs.
    pub jobs: Vec<DeliveryJob>,
}

/// Jobs per bus message when many redeliveries are published at once (a replay), so that one
/// message stays small.
pub const REDELIVERY_BATCH: usize = 50;

impl JobBatch {
    /// The message body carrying the batch.
    pub fn to_body(&self) -> Vec<u8> {
        // Jobs are strings, numbers and JSON maps: serializing them cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A first attempt of `payload` for the hook `hook_id` of `account_id`, called as its stored
/// document `hook` says now (URI, verb, format, retries, headers, custom data).
pub fn job_for_document(
    event_id: String,
    hook_id: WebhookId,
    account_id: AccountId,
    hook_event: String,
    hook: &Map<String, Value>,
    payload: Map<String, Value>,
    published_at_ms: u64,
) -> DeliveryJob {
    let text = |key: &str| hook.get(key).and_then(Value::as_str);
    let object = |key: &str| hook.get(key).and_then(Value::as_object).cloned();
    DeliveryJob {
        event_id,
        hook_id,
        account_id,
        hook_event,
        uri: text("uri").unwrap_or_default().to_owned(),
        http_verb: text("http_verb").and_then(|verb| verb.parse().ok()).unwrap_or_default(),
        format: text("format").and_then(|format| format.parse().ok()).unwrap_or_default(),
        retries: document_retries(hook.get("retries")),
        attempt: 0,
        custom_request_headers: object("custom_request_headers").unwrap_or_default(),
        custom_data: object("custom_data"),
        payload,
        published_at_ms,
        test: false,
        trace_parent: None,
    }
}

/// The job delivering `attempted` again to its hook as the hook's document `hook` says now (its
/// owner may have fixed the endpoint since): the same event id, so receivers can de-duplicate,
/// the same payload in the same trace, and the attempt counter back at the first attempt.
pub fn redelivery(attempted: &DeliveryJob, hook: &Map<String, Value>, published_at_ms: u64) -> DeliveryJob {
    DeliveryJob {
        trace_parent: attempted.trace_parent.clone(),
        ..job_for_document(
            attempted.event_id.clone(),
            attempted.hook_id.clone(),
            attempted.account_id.clone(),
            attempted.hook_event.clone(),
            hook,
            attempted.payload.clone(),
            published_at_ms,
        )
    }
}

/// `retries` of a stored hook document: a number (or the numeric string of older documents)
/// clamped to the schema's range, else the schema default.
pub fn document_retries(value: Option<&Value>) -> u8 {
    let number = match value {
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    number.map_or(DEFAULT_RETRIES, |retries| u8::try_from(retries).unwrap_or(MAX_RETRIES).min(MAX_RETRIES))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attempted() -> DeliveryJob {
        DeliveryJob {
            event_id: "0a1b2c3d4e".into(),
            hook_id: "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".parse().expect("hook id"),
            account_id: "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("account id"),
            hook_event: "CHANNEL_CREATE".into(),
            uri: "https://old.example.com/in".into(),
            http_verb: HttpVerb::Get,
            format: Format::FormData,
            retries: 4,
            attempt: 3,
            custom_request_headers: json!({"X-Old": "1"}).as_object().cloned().unwrap_or_default(),
            custom_data: None,
            payload: json!({"call_id": "c1"}).as_object().cloned().unwrap_or_default(),
            published_at_ms: 10,
            test: false,
            trace_parent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        }
    }

    #[test]
    fn a_redelivery_keeps_the_event_payload_and_trace_and_takes_the_hook_as_it_is_now() {
        let hook = json!({"uri": "https://new.example.com/in", "http_verb": "PUT", "format": "json", "retries": 1,
                          "custom_request_headers": {"X-New": "2"}, "custom_data": {"env": "prod"}});
        let again = redelivery(&attempted(), hook.as_object().expect("an object"), 99);
        let expected = DeliveryJob {
            uri: "https://new.example.com/in".into(),
            http_verb: HttpVerb::Put,
            format: Format::Json,
            retries: 1,
            attempt: 0,
            custom_request_headers: json!({"X-New": "2"}).as_object().cloned().unwrap_or_default(),
            custom_data: json!({"env": "prod"}).as_object().cloned(),
            published_at_ms: 99,
            ..attempted()
        };
        assert_eq!(again, expected);
    }

    #[test]
    fn missing_or_odd_hook_fields_fall_back_to_the_schema_defaults() {
        let again = redelivery(&attempted(), &Map::new(), 0);
        assert_eq!((again.http_verb, again.format, again.retries), (HttpVerb::Post, Format::FormData, 2));
        assert!(again.custom_request_headers.is_empty() && again.custom_data.is_none());
        assert_eq!(document_retries(Some(&json!("3"))), 3);
        assert_eq!(document_retries(Some(&json!(200))), MAX_RETRIES);
        assert_eq!(document_retries(Some(&json!(true))), DEFAULT_RETRIES);
    }
}
