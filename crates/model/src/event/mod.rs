//! Kazoo bus messages parsed into typed events (docs/kazoo.md#hook-types).
//!
//! The router parses each message once with [`KazooEvent::parse`], finds candidate hooks by
//! [`KazooEvent::lookup_key`], and hands the event to [`crate::payload`]. Parsing never rejects
//! unknown fields: Kazoo adds fields between releases and publishers differ.
//!
//! A message that is well-formed but deliberately not delivered (database events, document types
//! no hook can name, call events other than the four channel ones, ...) is an [`EventError`] too,
//! so the caller has one place to drop it; [`EventError::is_ignored`] tells the two cases apart.

mod body;
mod channel;
mod fields;
mod notification;
mod object;
mod routing;
mod sparse;

use serde_json::{Map, Number, Value};

use crate::hooks::HookType;
use crate::ids::AccountId;

use fields::{account_id_field, channel_vars, number_value, string_field, text};

pub use body::{read_body, read_event};
pub use channel::{ChannelEvent, ChannelEventName, InboundUserField};
pub use notification::{CallflowWebhookEvent, NotificationEvent};
pub use object::{DEFAULT_OBJECT_TYPES, ObjectAction, ObjectEvent, account_id_from_database};
pub use routing::{
    MAX_ROUTING_KEY_BYTES, address, call_event_routing_key, decode_routing_key_segment, encode_routing_key_segment,
};

/// Why a bus message yields no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not a JSON object.
    #[error("message body is not a json object")]
    NotAnObject,
    /// Neither the body nor the routing key says what kind of message this is.
    #[error("message has no event category and routing key '{0}' is not recognised")]
    UnknownKind(String),
    /// An `Event-Category` no hook type listens to.
    #[error("event category '{0}' is not delivered to webhooks")]
    UnsupportedCategory(String),
    /// An `Event-Name` of a known category that no hook type listens to.
    #[error("event '{name}' of category '{category}' is not delivered to webhooks")]
    UnsupportedEvent {
        /// The message's `Event-Category`.
        category: String,
        /// The message's `Event-Name`.
        name: String,
    },
    /// A field the event kind cannot do without is absent (or `null`).
    #[error("required field '{0}' is missing")]
    MissingField(&'static str),
    /// A field is present but unusable.
    #[error("field '{field}' is invalid: {reason}")]
    InvalidField {
        /// Wire name of the field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A whole-database change (`db_created`, ...): not delivered (docs/kazoo.md#object).
    #[error("database event '{0}' is not delivered")]
    DatabaseEvent(String),
    /// A document change of a type no object hook can name (docs/kazoo.md#object).
    #[error("changes of '{0}' documents are not delivered")]
    UnwatchedObjectType(String),
    /// An account document change seen in the account's own database; the copy in the `accounts`
    /// database is the one delivered, so that each change reaches hooks once.
    #[error("account document changes are delivered from the accounts database only")]
    DuplicateAccountChange,
    /// A document change in a database that belongs to no account.
    #[error("database '{0}' belongs to no account")]
    NotAccountScoped(String),
    /// A notification `Event-Name` that is not in the notification table.
    #[error("unknown notification '{0}'")]
    UnknownNotification(String),
    /// A field makes the routing key the event would be published with longer than the broker
    /// takes.
    #[error("'{field}' makes the routing key {length} bytes long; the broker takes at most {MAX_ROUTING_KEY_BYTES}")]
    RoutingKeyTooLong {
        /// Wire name of the field.
        field: &'static str,
        /// The length of the whole key, in bytes.
        length: usize,
    },
    /// A notification lacks one of its required fields; Kazoo drops it.
    #[error("notification '{notification}' lacks required field '{field}'")]
    IncompleteNotification {
        /// The notification's name.
        notification: &'static str,
        /// The missing wire field.
        field: &'static str,
    },
    /// The account id the message names is a string of another shape than Kazoo's ids: no
    /// account can be found by it, as none would be in Kazoo.
    #[error("account id '{0}' names no account")]
    UnknownAccountId(String),
}

impl EventError {
    /// True when the message is well-formed but deliberately not delivered, so callers can log it
    /// quietly; false when the message is malformed and worth a warning.
    pub fn is_ignored(&self) -> bool {
        match self {
            Self::UnsupportedCategory(_)
            | Self::UnsupportedEvent { .. }
            | Self::DatabaseEvent(_)
            | Self::UnwatchedObjectType(_)
            | Self::DuplicateAccountChange
            | Self::NotAccountScoped(_)
            | Self::UnknownNotification(_)
            | Self::UnknownAccountId(_) => true,
            Self::NotAnObject
            | Self::UnknownKind(_)
            | Self::MissingField(_)
            | Self::InvalidField { .. }
            | Self::RoutingKeyTooLong { .. }
            | Self::IncompleteNotification { .. } => false,
        }
    }

    /// A short code for why the message yields no event, for metric labels and dead-letter
    /// headers: the same few values whatever the message said.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotAnObject => "not_an_object",
            Self::UnknownKind(_) => "unknown_kind",
            Self::MissingField(_) => "missing_field",
            Self::InvalidField { .. } => "invalid_field",
            Self::RoutingKeyTooLong { .. } => "routing_key_too_long",
            Self::IncompleteNotification { .. } => "incomplete_notification",
            Self::UnsupportedCategory(_) | Self::UnsupportedEvent { .. } | Self::UnknownNotification(_) => {
                "not_delivered"
            }
            Self::DatabaseEvent(_) => "database_event",
            Self::UnwatchedObjectType(_) => "unwatched_document_type",
            Self::DuplicateAccountChange => "duplicate_account_change",
            Self::NotAccountScoped(_) => "no_account",
            Self::UnknownAccountId(_) => "unknown_account",
        }
    }
}

/// One Kazoo bus message, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct KazooEvent {
    /// What happened, with the fields the payload builder needs.
    pub kind: EventKind,
    /// The account the event belongs to. `None` means the message named no valid
    /// account: for channel events the router may still find it by the dialled number
    /// ([`ChannelEvent::dialled_number`]) and set it here; otherwise the event is dropped.
    pub account_id: Option<AccountId>,
}

/// The kinds of event webhooks deliver, one per hook type (docs/kazoo.md#hook-types).
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "channel events are the common case; an event is built once and rarely moved, so a box would only add an allocation"
)]
pub enum EventKind {
    /// `CHANNEL_CREATE`, `CHANNEL_ANSWER`, `CHANNEL_BRIDGE`, `CHANNEL_DESTROY`.
    Channel(ChannelEvent),
    /// A document change on the `configuration` exchange.
    Object(ObjectEvent),
    /// A notification (other than the callflow webhook).
    Notification(NotificationEvent),
    /// The callflow `webhook` action: delivered only to the hook the message carries.
    CallflowWebhook(CallflowWebhookEvent),
    /// `PARK_PARKED`, `PARK_RETRIEVED`, `PARK_ABANDONED`; the payload is the normalized message.
    Parking(Map<String, Value>),
    /// An inbound off-net SMS.
    Sms(InstantMessage),
    /// An inbound off-net MMS.
    Mms(InstantMessage),
}

/// The fields of an inbound SMS or MMS that reach the payload (docs/kazoo.md#sms-and-mms).
#[derive(Debug, Clone, PartialEq)]
pub struct InstantMessage {
    /// `Message-ID`.
    pub message_id: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `Body`.
    pub body: Option<String>,
    /// `Route-Type` (sent as `origin`).
    pub route_type: Option<String>,
    /// `Charges`, as a number even when published as a numeric string.
    pub charges: Option<Number>,
}

impl KazooEvent {
    /// Parses a message received with `routing_key`, treating Kazoo's default `object_types` as
    /// the document types object hooks can name.
    pub fn parse(routing_key: &str, body: &Value) -> Result<Self, EventError> {
        Self::parse_with_object_types(routing_key, body, DEFAULT_OBJECT_TYPES)
    }

    /// Parses a message; document changes are delivered only for `object_types` (the
    /// `webhooks.object_types` setting; docs/kazoo.md#object).
    ///
    /// The body is authoritative; the routing key only fills in what the body lacks (category,
    /// event name, document coordinates), because publishers always set both and a hand-published
    /// test message may omit envelope fields.
    pub fn parse_with_object_types<S: AsRef<str>>(
        routing_key: &str,
        body: &Value,
        object_types: &[S],
    ) -> Result<Self, EventError> {
        let body = body.as_object().ok_or(EventError::NotAnObject)?;
        // An envelope field of another type is an error, not absent: the routing key must not
        // stand in for what the body says wrongly.
        for field in ["Event-Category", "Event-Name"] {
            if body.get(field).is_some_and(|value| !value.is_string() && !value.is_null()) {
                return Err(EventError::InvalidField { field, reason: "not a string" });
            }
        }
        let segments: Vec<&str> = routing_key.split('.').collect();
        let category = match text(body, "Event-Category") {
            Some(category) => category,
            None => {
                routing::category_from_key(&segments).ok_or_else(|| EventError::UnknownKind(routing_key.to_owned()))?
            }
        };
        match category {
            "call_event" => {
                let name = text(body, "Event-Name")
                    .or_else(|| segments.get(1).copied().filter(|_| segments[0] == "call"))
                    .ok_or(EventError::MissingField("Event-Name"))?;
                if let Some(channel_name) = ChannelEventName::from_wire(name) {
                    channel::parse(channel_name, body)
                } else if matches!(name, "PARK_PARKED" | "PARK_RETRIEVED" | "PARK_ABANDONED") {
                    parse_parking(body)
                } else {
                    Err(EventError::UnsupportedEvent { category: category.to_owned(), name: name.to_owned() })
                }
            }
            "configuration" => object::parse(&segments, body, object_types),
            "notification" => notification::parse(body),
            "sms" | "mms" => parse_instant_message(category, &segments, body),
            other => Err(EventError::UnsupportedCategory(other.to_owned())),
        }
    }

    /// The hook type whose hooks receive this event (beside `all` hooks). `None` for the callflow
    /// webhook, which registered hooks never receive.
    pub fn lookup_key(&self) -> Option<HookType> {
        match &self.kind {
            EventKind::Channel(channel) => Some(channel.name.hook_type()),
            EventKind::Object(_) => Some(HookType::Object),
            EventKind::Notification(_) => Some(HookType::Notifications),
            EventKind::CallflowWebhook(_) => None,
            EventKind::Parking(_) => Some(HookType::Parking),
            EventKind::Sms(_) => Some(HookType::Sms),
            EventKind::Mms(_) => Some(HookType::Mms),
        }
    }

    /// The event key Kazoo records as `hook_event`: `CHANNEL_CREATE` ... for channel
    /// events, else the hook type.
    pub fn hook_event(&self) -> &'static str {
        match &self.kind {
            EventKind::Channel(channel) => channel.name.hook_event(),
            _ => self.lookup_key().unwrap_or(HookType::Notifications).as_str(),
        }
    }

    /// The `hook_event` of an attempt record for a hook of type `hook_type`: Kazoo derives it from
    /// the hook, so an `all` hook records `all` whatever the event.
    pub fn attempt_hook_event(&self, hook_type: HookType) -> &'static str {
        if hook_type == HookType::All { hook_type.as_str() } else { self.hook_event() }
    }

    /// The call the event is about, for logs: channel and parking events name one.
    pub fn call_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Channel(channel) => Some(&channel.call_id),
            EventKind::Parking(message) => text(message, "Call-ID"),
            _ => None,
        }
    }

    /// The event's name for logs: `CHANNEL_CREATE`, `doc_edited`, `voicemail_new`, `PARK_PARKED`...
    pub fn event_name(&self) -> &str {
        match &self.kind {
            EventKind::Channel(channel) => channel.name.hook_event(),
            EventKind::Object(object) => object.action.as_str(),
            EventKind::Notification(notification) => notification.notification.name,
            EventKind::CallflowWebhook(_) => crate::notifications::CALLFLOW_WEBHOOK,
            EventKind::Parking(message) => text(message, "Event-Name").unwrap_or("parking"),
            EventKind::Sms(_) | EventKind::Mms(_) => "inbound",
        }
    }
}

/// Parking events: the payload is the message itself, so keep it whole (docs/kazoo.md#parking).
fn parse_parking(body: &Map<String, Value>) -> Result<KazooEvent, EventError> {
    if text(body, "Call-ID").is_none() {
        return Err(EventError::MissingField("Call-ID"));
    }
    let account_id = match channel_vars(body.get("Custom-Channel-Vars"))? {
        Some(ccvs) => account_id_field(ccvs.get("Account-ID"), "Custom-Channel-Vars.Account-ID")?,
        None => None,
    };
    Ok(KazooEvent { kind: EventKind::Parking(body.clone()), account_id })
}

/// Inbound SMS/MMS (docs/kazoo.md#sms-and-mms).
fn parse_instant_message(
    category: &str,
    segments: &[&str],
    body: &Map<String, Value>,
) -> Result<KazooEvent, EventError> {
    let name =
        text(body, "Event-Name").or_else(|| segments.get(1).copied()).ok_or(EventError::MissingField("Event-Name"))?;
    if name != "inbound" {
        return Err(EventError::UnsupportedEvent { category: category.to_owned(), name: name.to_owned() });
    }
    let message = InstantMessage {
        message_id: string_field(body, "Message-ID"),
        from: string_field(body, "From"),
        to: string_field(body, "To"),
        body: string_field(body, "Body"),
        route_type: string_field(body, "Route-Type"),
        charges: body.get("Charges").and_then(number_value),
    };
    let account_id = account_id_field(body.get("Account-ID"), "Account-ID")?;
    let kind = if category == "sms" { EventKind::Sms(message) } else { EventKind::Mms(message) };
    Ok(KazooEvent { kind, account_id })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ACCOUNT: &str = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d";

    fn outcome(routing_key: &str, body: Value) -> Result<Option<AccountId>, &'static str> {
        KazooEvent::parse(routing_key, &body).map(|event| event.account_id).map_err(|error| error.reason())
    }

    #[test]
    fn fields_of_the_wrong_type_are_malformed_and_absent_accounts_are_no_account() {
        let channel = |extra: Value| {
            let mut body = json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": "c1"});
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            outcome("call.CHANNEL_CREATE.c1", body)
        };
        let cases: Vec<(&str, Result<Option<AccountId>, &str>)> = vec![
            ("an account id", channel(json!({"Custom-Channel-Vars": {"Account-ID": ACCOUNT}}))),
            ("no channel variables", channel(json!({}))),
            ("null channel variables", channel(json!({"Custom-Channel-Vars": null}))),
            ("no account id", channel(json!({"Custom-Channel-Vars": {}}))),
            ("an empty account id", channel(json!({"Custom-Channel-Vars": {"Account-ID": ""}}))),
            ("a numeric account id", channel(json!({"Custom-Channel-Vars": {"Account-ID": 42}}))),
            ("an account id object", channel(json!({"Custom-Channel-Vars": {"Account-ID": {"id": ACCOUNT}}}))),
            ("channel variables as a list", channel(json!({"Custom-Channel-Vars": [ACCOUNT]}))),
            ("channel variables as text", channel(json!({"Custom-Channel-Vars": ACCOUNT}))),
            ("an account id of another shape", channel(json!({"Custom-Channel-Vars": {"Account-ID": "acme"}}))),
            ("a numeric event name", channel(json!({"Event-Name": 7}))),
            ("a numeric category", channel(json!({"Event-Category": ["call_event"]}))),
            (
                "a parking event with a numeric account id",
                outcome(
                    "call.PARK_PARKED.c1",
                    json!({"Event-Category": "call_event", "Event-Name": "PARK_PARKED", "Call-ID": "c1",
                           "Custom-Channel-Vars": {"Account-ID": true}}),
                ),
            ),
            (
                "an sms with a numeric account id",
                outcome("sms.inbound.x", json!({"Event-Category": "sms", "Event-Name": "inbound", "Account-ID": 1})),
            ),
            (
                "a notification with a numeric account id",
                outcome(
                    "notifications.voicemail.new",
                    json!({"Event-Category": "notification", "Event-Name": "voicemail_new", "Account-ID": 5,
                           "From-User": "u", "From-Realm": "r", "To-User": "u", "To-Realm": "r",
                           "Voicemail-Box": "b", "Voicemail-ID": "v", "Voicemail-Timestamp": 1}),
                ),
            ),
        ];
        let account: AccountId = ACCOUNT.parse().expect("an account id");
        let expected: Vec<(&str, Result<Option<AccountId>, &str>)> = vec![
            ("an account id", Ok(Some(account))),
            ("no channel variables", Ok(None)),
            ("null channel variables", Ok(None)),
            ("no account id", Ok(None)),
            ("an empty account id", Ok(None)),
            ("a numeric account id", Err("invalid_field")),
            ("an account id object", Err("invalid_field")),
            ("channel variables as a list", Err("invalid_field")),
            ("channel variables as text", Err("invalid_field")),
            ("an account id of another shape", Err("unknown_account")),
            ("a numeric event name", Err("invalid_field")),
            ("a numeric category", Err("invalid_field")),
            ("a parking event with a numeric account id", Err("invalid_field")),
            ("an sms with a numeric account id", Err("invalid_field")),
            ("a notification with a numeric account id", Err("invalid_field")),
        ];
        assert_eq!(cases, expected);
    }

    #[test]
    fn a_non_string_event_name_is_not_read_from_the_routing_key() {
        let body = json!({"Event-Category": "call_event", "Event-Name": 1, "Call-ID": "c1"});
        assert_eq!(
            KazooEvent::parse("call.CHANNEL_CREATE.c1", &body),
            Err(EventError::InvalidField { field: "Event-Name", reason: "not a string" })
        );
        let unnamed = json!({"Event-Category": "call_event", "Call-ID": "c1"});
        assert!(
            KazooEvent::parse("call.CHANNEL_CREATE.c1", &unnamed).is_ok(),
            "an absent name still comes from the key"
        );
    }
}
