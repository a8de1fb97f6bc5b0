//! Payload building (docs/kazoo.md#hook-types) and per-hook finishing
//! (docs/kazoo.md#per-hook-finishing).
//!
//! The router builds the event's base payload once with [`base_payload`], then for each candidate
//! hook checks [`HookView::accepts`] and calls [`finish_payload`], which copies the base only for
//! hooks that really receive it.

mod channel;
mod hook;
mod normalize;

use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::event::{EventKind, InstantMessage, KazooEvent, ObjectEvent};
use crate::ids::AccountId;

pub use hook::{
    Finishing, HookView, PayloadCompat, custom_data, finish_payload, include_internal_legs, merge_custom_data,
    modifiers_match, passes_filters,
};
pub use normalize::{normalize_key, normalize_object, normalize_value};

/// Kazoo's running default of `call_command.reserved_ccv_keys`: CCVs that Kazoo uses
/// internally and keeps out of `custom_channel_vars`.
pub const DEFAULT_RESERVED_CCV_KEYS: &[&str] = &[
    "Account-ID",
    "Account-Name",
    "Account-Realm",
    "Authorizing-ID",
    "Authorizing-Type",
    "Auto-Answer",
    "Call-Forward",
    "Call-Interaction-ID",
    "Ecallmgr-Node",
    "Call-Waiting-Disabled",
    "Confirm-Cancel-Timeout",
    "Confirm-File",
    "Confirm-Key",
    "Fax-Enabled",
    "Fetch-ID",
    "Loopback-Bowout",
    "Media-Encryption-Enforce-Security",
    "Media-Webrtc",
    "Owner-ID",
    "Presence-ID",
    "RTCP-MUX",
    "Realm",
    "Require-Ignore-Early-Media",
    "Retain-CID",
    "SIP-Invite-Domain",
    "Simplify-Loopback",
    "Username",
];

/// Message keys dropped from parking payloads before normalizing.
const PARKING_DROPPED_KEYS: &[&str] =
    &["Node", "Msg-ID", "App-Version", "App-Name", "Event-Category", "Custom-Channel-Vars"];

/// The CCV keys stripped from channel payloads; configurable because Kazoo's list is a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedCcvKeys(Vec<String>);

impl ReservedCcvKeys {
    /// A custom list (from configuration).
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(keys.into_iter().map(Into::into).collect())
    }

    /// Kazoo's default list, shared so callers need not build it per event.
    pub fn kazoo_default() -> &'static Self {
        static DEFAULT: LazyLock<ReservedCcvKeys> = LazyLock::new(ReservedCcvKeys::default);
        &DEFAULT
    }

    /// True when `key` is reserved (exact spelling, as Kazoo compares).
    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|reserved| reserved == key)
    }
}

impl Default for ReservedCcvKeys {
    fn default() -> Self {
        Self::new(DEFAULT_RESERVED_CCV_KEYS.iter().copied())
    }
}

/// Facts the payload needs that are not in the message.
#[derive(Debug, Clone, Copy)]
pub struct PayloadContext<'a> {
    /// Reseller of the event's account (docs/kazoo.md#accounts), for channel payloads.
    pub reseller_id: Option<&'a AccountId>,
    /// CCV keys kept out of `custom_channel_vars`.
    pub reserved_ccv_keys: &'a ReservedCcvKeys,
}

impl<'a> PayloadContext<'a> {
    /// A context with Kazoo's default reserved CCV keys.
    pub fn new(reseller_id: Option<&'a AccountId>) -> Self {
        Self { reseller_id, reserved_ccv_keys: ReservedCcvKeys::kazoo_default() }
    }
}

/// The event's payload before any hook-specific change, keys in Kazoo's order.
pub fn base_payload(event: &KazooEvent, context: &PayloadContext<'_>) -> Map<String, Value> {
    let account_id = event.account_id.as_ref();
    match &event.kind {
        EventKind::Channel(channel) => channel::payload(channel, account_id, context),
        EventKind::Object(object) => object_payload(object, account_id),
        EventKind::Notification(notification) => normalize_object(&notification.message),
        EventKind::CallflowWebhook(webhook) => normalize_object(&webhook.data),
        EventKind::Parking(message) => parking_payload(message, account_id),
        EventKind::Sms(message) => instant_message_payload("sms", message, account_id),
        EventKind::Mms(message) => instant_message_payload("mms", message, account_id),
    }
}

/// `{"id", "account_id", "action", "type"}`.
fn object_payload(object: &ObjectEvent, account_id: Option<&AccountId>) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("id".to_owned(), Value::String(object.doc_id.clone()));
    insert_account_id(&mut payload, account_id);
    payload.insert("action".to_owned(), Value::from(object.action.as_str()));
    payload.insert("type".to_owned(), Value::String(object.doc_type.clone()));
    payload
}

/// The message normalized without its envelope and CCVs, with the account lifted out of the CCVs
/// (docs/kazoo.md#parking). `parking_slot` stays whatever the publisher sent (a string).
fn parking_payload(message: &Map<String, Value>, account_id: Option<&AccountId>) -> Map<String, Value> {
    let mut payload = Map::new();
    for (key, value) in message {
        if PARKING_DROPPED_KEYS.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        payload.insert(normalize_key(key), normalize_value(value));
    }
    // Replaces a published `Account-ID` in place, else appends, as Kazoo's set_value does.
    insert_account_id(&mut payload, account_id);
    payload
}

/// `{"id", "account_id", "type", "from", "to", "body", "origin", "charges"}`.
fn instant_message_payload(
    kind: &'static str,
    message: &InstantMessage,
    account_id: Option<&AccountId>,
) -> Map<String, Value> {
    let mut payload = Map::new();
    insert_text(&mut payload, "id", message.message_id.as_deref());
    insert_account_id(&mut payload, account_id);
    payload.insert("type".to_owned(), Value::from(kind));
    insert_text(&mut payload, "from", message.from.as_deref());
    insert_text(&mut payload, "to", message.to.as_deref());
    insert_text(&mut payload, "body", message.body.as_deref());
    insert_text(&mut payload, "origin", message.route_type.as_deref());
    if let Some(charges) = &message.charges {
        payload.insert("charges".to_owned(), Value::Number(charges.clone()));
    }
    payload
}

/// Inserts `account_id` when the event has one.
fn insert_account_id(payload: &mut Map<String, Value>, account_id: Option<&AccountId>) {
    insert_text(payload, "account_id", account_id.map(AccountId::as_str));
}

/// Inserts a string value when present: payloads omit missing fields rather than send `null`.
fn insert_text(payload: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        payload.insert(key.to_owned(), Value::from(value));
    }
}
