//! Channel payloads (docs/kazoo.md#channel-events).

use serde_json::{Map, Value};

use super::{PayloadContext, insert_account_id, insert_text};
use crate::event::{ChannelEvent, ChannelEventName};
use crate::ids::AccountId;

/// Room for every key a channel payload can have (30, for a destroy) and a few added per hook.
const PAYLOAD_CAPACITY: usize = 36;

/// Builds the payload in Kazoo's key order; fields whose source is missing are left out, except the
/// three flags and `custom_channel_vars`, which receivers can rely on.
pub(super) fn payload(
    event: &ChannelEvent,
    account_id: Option<&AccountId>,
    context: &PayloadContext<'_>,
) -> Map<String, Value> {
    // Sized for the largest (destroy) payload plus `cluster_id` and some `custom_data`, so neither
    // building it nor finishing a copy of it regrows the map.
    let mut payload = Map::with_capacity(PAYLOAD_CAPACITY);
    insert_account_id(&mut payload, account_id);
    insert_text(&mut payload, "authorizing_id", event.authorizing_id.as_deref());
    insert_text(&mut payload, "authorizing_type", event.authorizing_type.as_deref());
    insert_text(&mut payload, "call_direction", event.call_direction.as_deref());
    if let Some(forwarded) = event.call_forwarded {
        payload.insert("call_forwarded".to_owned(), Value::Bool(forwarded));
    }
    insert_text(&mut payload, "call_id", Some(&event.call_id));
    insert_text(&mut payload, "callee_id_name", event.callee_id_name.as_deref());
    insert_text(&mut payload, "callee_id_number", event.callee_id_number.as_deref());
    insert_text(&mut payload, "caller_id_name", event.caller_id_name.as_deref());
    insert_text(&mut payload, "caller_id_number", event.caller_id_number.as_deref());
    let mut custom_channel_vars = Map::with_capacity(event.custom_channel_vars.len());
    for (key, value) in &event.custom_channel_vars {
        if !context.reserved_ccv_keys.contains(key) {
            custom_channel_vars.insert(key.clone(), value.clone());
        }
    }
    payload.insert("custom_channel_vars".to_owned(), Value::Object(custom_channel_vars));
    if let Some(custom_application_vars) = &event.custom_application_vars {
        payload.insert("custom_application_vars".to_owned(), Value::Object(custom_application_vars.clone()));
    }
    payload.insert("emergency_resource_used".to_owned(), Value::Bool(event.emergency_resource));
    insert_text(&mut payload, "from", event.from.as_deref());
    insert_text(&mut payload, "inception", event.inception.as_deref());
    if !event.global_resource {
        insert_text(&mut payload, "local_resource_id", event.resource_id.as_deref());
    }
    payload.insert("local_resource_used".to_owned(), Value::Bool(!event.global_resource));
    payload.insert("is_internal_leg".to_owned(), Value::Bool(event.is_loopback));
    insert_text(&mut payload, "other_leg_call_id", event.other_leg_call_id.as_deref());
    insert_text(&mut payload, "owner_id", event.owner_id.as_deref());
    // The wire string is sent: Kazoo copied `Request` only when it was an object, so never sent it.
    if let Some(request) = &event.request {
        payload.insert("request".to_owned(), request.clone());
    }
    insert_text(&mut payload, "reseller_id", context.reseller_id.map(AccountId::as_str));
    insert_integer(&mut payload, "timestamp", event.timestamp);
    insert_text(&mut payload, "to", event.to.as_deref());
    payload.insert("hook_event".to_owned(), Value::from(event.name.hook_type().as_str()));
    match event.name {
        ChannelEventName::Bridge => {
            insert_text(&mut payload, "original_number", event.original_number.as_deref());
            insert_text(&mut payload, "other_leg_destination_number", event.other_leg_destination_number.as_deref());
        }
        ChannelEventName::Destroy => {
            insert_text(&mut payload, "hangup_cause", event.hangup_cause.as_deref());
            insert_text(&mut payload, "hangup_code", event.hangup_code.as_deref());
            insert_integer(&mut payload, "duration_seconds", event.duration_seconds);
            insert_integer(&mut payload, "ringing_seconds", event.ringing_seconds);
            insert_integer(&mut payload, "billing_seconds", event.billing_seconds);
        }
        ChannelEventName::Create | ChannelEventName::Answer => {}
    }
    payload
}

/// Inserts an integer value when present.
fn insert_integer(payload: &mut Map<String, Value>, key: &str, value: Option<i64>) {
    if let Some(value) = value {
        payload.insert(key.to_owned(), Value::from(value));
    }
}
