//! Channel events from the media layer (docs/kazoo.md#channel-events).

use serde_json::{Map, Value};

use super::fields::{account_id_field, channel_vars, integer_value, is_true, string_value};
use super::{EventError, EventKind, KazooEvent};
use crate::hooks::HookType;

/// The four channel events hooks can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelEventName {
    /// `CHANNEL_CREATE`.
    Create,
    /// `CHANNEL_ANSWER`.
    Answer,
    /// `CHANNEL_BRIDGE`.
    Bridge,
    /// `CHANNEL_DESTROY` (and `CHANNEL_DISCONNECTED`, which Kazoo treats the same).
    Destroy,
}

impl ChannelEventName {
    /// The channel event of a wire `Event-Name`, if webhooks deliver it.
    pub fn from_wire(event_name: &str) -> Option<Self> {
        match event_name {
            "CHANNEL_CREATE" => Some(Self::Create),
            "CHANNEL_ANSWER" => Some(Self::Answer),
            "CHANNEL_BRIDGE" => Some(Self::Bridge),
            "CHANNEL_DESTROY" | "CHANNEL_DISCONNECTED" => Some(Self::Destroy),
            _ => None,
        }
    }

    /// The hook type receiving it, which is also the payload's `hook_event` value.
    pub fn hook_type(self) -> HookType {
        match self {
            Self::Create => HookType::ChannelCreate,
            Self::Answer => HookType::ChannelAnswer,
            Self::Bridge => HookType::ChannelBridge,
            Self::Destroy => HookType::ChannelDestroy,
        }
    }

    /// The upper-case key recorded as an attempt's `hook_event`.
    pub fn hook_event(self) -> &'static str {
        match self {
            Self::Create => "CHANNEL_CREATE",
            Self::Answer => "CHANNEL_ANSWER",
            Self::Bridge => "CHANNEL_BRIDGE",
            Self::Destroy => "CHANNEL_DESTROY",
        }
    }
}

/// Which SIP field carries the dialled number of an inbound call (`stepswitch.inbound_user_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboundUserField {
    /// The request URI (Kazoo's default).
    #[default]
    Request,
    /// The `To` header.
    To,
}

/// The fields of a channel event that reach the payload, already converted to the types the
/// payload wants (strings from numbers, integers from numeric strings).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelEvent {
    /// Which of the four events this is.
    pub name: ChannelEventName,
    /// `Call-ID`.
    pub call_id: String,
    /// `Other-Leg-Call-ID`.
    pub other_leg_call_id: Option<String>,
    /// `Call-Direction`, relative to the switch.
    pub call_direction: Option<String>,
    /// `Caller-ID-Name`.
    pub caller_id_name: Option<String>,
    /// `Caller-ID-Number`.
    pub caller_id_number: Option<String>,
    /// `Callee-ID-Name`.
    pub callee_id_name: Option<String>,
    /// `Callee-ID-Number`.
    pub callee_id_number: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `Request`: a string on the wire (an object is kept too, as Kazoo would emit it).
    pub request: Option<Value>,
    /// Top-level `Inception`; current switches leave it out.
    pub inception: Option<String>,
    /// `To-DID`, the last resort for finding the account by dialled number.
    pub to_did: Option<String>,
    /// `Timestamp`, gregorian seconds.
    pub timestamp: Option<i64>,
    /// `Channel-Name`; `loopback/...` for internal legs.
    pub channel_name: Option<String>,
    /// `Channel-Is-Loopback`.
    pub is_loopback: bool,
    /// CCV `Authorizing-ID`.
    pub authorizing_id: Option<String>,
    /// CCV `Authorizing-Type`.
    pub authorizing_type: Option<String>,
    /// CCV `Owner-ID`.
    pub owner_id: Option<String>,
    /// CCV `Call-Forward` as a flag; `None` when the CCV is absent.
    pub call_forwarded: Option<bool>,
    /// CCV `Emergency-Resource` is true.
    pub emergency_resource: bool,
    /// CCV `Global-Resource` is true.
    pub global_resource: bool,
    /// CCV `Resource-ID`.
    pub resource_id: Option<String>,
    /// CCV `Original-Number` (bridge payloads).
    pub original_number: Option<String>,
    /// `Other-Leg-Destination-Number` (bridge payloads).
    pub other_leg_destination_number: Option<String>,
    /// `Hangup-Cause` (destroy payloads).
    pub hangup_cause: Option<String>,
    /// `Hangup-Code` (destroy payloads).
    pub hangup_code: Option<String>,
    /// `Duration-Seconds` (destroy payloads).
    pub duration_seconds: Option<i64>,
    /// `Ringing-Seconds` (destroy payloads).
    pub ringing_seconds: Option<i64>,
    /// `Billing-Seconds` (destroy payloads).
    pub billing_seconds: Option<i64>,
    /// All `Custom-Channel-Vars`, in wire order; reserved keys are removed when the payload is
    /// built, because the reserved list is configuration.
    pub custom_channel_vars: Map<String, Value>,
    /// `Custom-Application-Vars`, when it is an object.
    pub custom_application_vars: Option<Map<String, Value>>,
}

impl ChannelEvent {
    /// True for internal (loopback) legs, which hooks with `include_internal_legs: false` skip.
    pub fn is_loopback_leg(&self) -> bool {
        self.is_loopback || self.channel_name.as_deref().is_some_and(|name| name.starts_with("loopback/"))
    }

    /// The dialled number Kazoo uses to find the account of a call whose CCVs name none: the user
    /// part of `Request` (or `To`), else `To-DID`. The caller normalizes it and looks it up.
    pub fn dialled_number(&self, field: InboundUserField) -> Option<&str> {
        let uri = match field {
            InboundUserField::Request => self.request.as_ref().and_then(Value::as_str),
            InboundUserField::To => self.to.as_deref(),
        };
        uri.map(|uri| uri.split_once('@').map_or(uri, |(user, _)| user))
            .filter(|user| !user.is_empty())
            .or(self.to_did.as_deref())
    }
}

/// Every field [`parse`] reads, the envelope fields that say what the event is, and those
/// [`super::address`] takes its routing key from: the rest of a channel event (often most of it)
/// need not be parsed.
pub(super) const FIELDS: [&str; 27] = [
    "Event-Category",
    "Event-Name",
    "Call-ID",
    "Origination-Call-ID",
    "Unique-ID",
    "Other-Leg-Call-ID",
    "Call-Direction",
    "Caller-ID-Name",
    "Caller-ID-Number",
    "Callee-ID-Name",
    "Callee-ID-Number",
    "From",
    "To",
    "Request",
    "Inception",
    "To-DID",
    "Timestamp",
    "Channel-Name",
    "Channel-Is-Loopback",
    "Other-Leg-Destination-Number",
    "Hangup-Cause",
    "Hangup-Code",
    "Duration-Seconds",
    "Ringing-Seconds",
    "Billing-Seconds",
    "Custom-Channel-Vars",
    "Custom-Application-Vars",
];

/// Builds the channel event; fails without `Call-ID`, which every call event carries, and on
/// channel variables or an account id of the wrong type.
pub(super) fn parse(name: ChannelEventName, body: &Map<String, Value>) -> Result<KazooEvent, EventError> {
    let field = |key: &str| listed(body, key);
    let text = |key: &str| field(key).and_then(string_value);
    let call_id = text("Call-ID").ok_or(EventError::MissingField("Call-ID"))?;
    let empty = Map::new();
    let ccvs = channel_vars(field("Custom-Channel-Vars"))?.unwrap_or(&empty);
    let ccv = |key: &str| ccvs.get(key).and_then(string_value);
    let integer = |key: &str| field(key).and_then(integer_value);
    let request = match field("Request") {
        Some(Value::String(text)) if !text.is_empty() => Some(Value::String(text.clone())),
        Some(Value::Object(object)) => Some(Value::Object(object.clone())),
        _ => None,
    };
    let call_forwarded = match ccvs.get("Call-Forward") {
        None | Some(Value::Null) => None,
        value => Some(is_true(value)),
    };
    let event = ChannelEvent {
        name,
        call_id,
        other_leg_call_id: text("Other-Leg-Call-ID"),
        call_direction: text("Call-Direction"),
        caller_id_name: text("Caller-ID-Name"),
        caller_id_number: text("Caller-ID-Number"),
        callee_id_name: text("Callee-ID-Name"),
        callee_id_number: text("Callee-ID-Number"),
        from: text("From"),
        to: text("To"),
        request,
        inception: text("Inception"),
        to_did: text("To-DID"),
        timestamp: integer("Timestamp"),
        channel_name: text("Channel-Name"),
        is_loopback: is_true(field("Channel-Is-Loopback")),
        authorizing_id: ccv("Authorizing-ID"),
        authorizing_type: ccv("Authorizing-Type"),
        owner_id: ccv("Owner-ID"),
        call_forwarded,
        emergency_resource: is_true(ccvs.get("Emergency-Resource")),
        global_resource: is_true(ccvs.get("Global-Resource")),
        resource_id: ccv("Resource-ID"),
        original_number: ccv("Original-Number"),
        other_leg_destination_number: text("Other-Leg-Destination-Number"),
        hangup_cause: text("Hangup-Cause"),
        hangup_code: text("Hangup-Code"),
        duration_seconds: integer("Duration-Seconds"),
        ringing_seconds: integer("Ringing-Seconds"),
        billing_seconds: integer("Billing-Seconds"),
        custom_channel_vars: ccvs.clone(),
        custom_application_vars: field("Custom-Application-Vars").and_then(Value::as_object).cloned(),
    };
    let account_id = account_id_field(ccvs.get("Account-ID"), "Custom-Channel-Vars.Account-ID")?;
    Ok(KazooEvent { kind: EventKind::Channel(event), account_id })
}

/// `key` of `body`, for [`parse`]: every key it reads must be in [`FIELDS`], or the sparse
/// reader would leave it out; debug builds (every test) check it.
fn listed<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    debug_assert!(FIELDS.contains(&key), "channel::parse reads {key}, which channel::FIELDS does not list");
    body.get(key)
}
