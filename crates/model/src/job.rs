//! Delivery jobs: what the router hands the dispatcher for one hook and one event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AccountId, WebhookId};
use crate::webhook::{Format, HttpVerb};

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
}

/// The body of one bus message: several jobs travel together, so one event fanning out to many
/// hooks costs one publish and one confirm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobBatch {
    /// The jobs.
    pub jobs: Vec<DeliveryJob>,
}
