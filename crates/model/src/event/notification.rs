//! Notifications (docs/kazoo.md#notifications): validated against the table of
//! `crate::notifications`.

use serde_json::{Map, Value};

use super::fields::{account_id_field, text};
use super::{EventError, EventKind, KazooEvent};
use crate::ids::AccountId;
use crate::notifications::{self, CALLFLOW_WEBHOOK, EVENT_CATEGORY, NotificationType};

/// A notification for registered `notifications` hooks; the payload is the whole message
/// normalized, so the message is kept as published.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationEvent {
    /// Its entry in the notification table.
    pub notification: &'static NotificationType,
    /// The bus message.
    pub message: Map<String, Value>,
}

/// The callflow `webhook` action's message: a hook built on the fly and the data to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallflowWebhookEvent {
    /// The on-the-fly hook (`uri`, `http_verb`, `retries`, `custom_data`, `pvt_account_id`, ...).
    pub hook: Map<String, Value>,
    /// The call snapshot; normalized, it is the payload.
    pub data: Map<String, Value>,
}

/// Where Kazoo looks for a notification's account id, first match wins
/// (docs/kazoo.md#notifications).
const ACCOUNT_ID_PATHS: &[&[&str]] = &[
    &["account_id"],
    &["account", "_id"],
    &["pvt_account_id"],
    &["_id"],
    &["id"],
    &["Account-ID"],
    &["details", "account_id"],
    &["Details", "Account-ID"],
    &["details", "custom_channel_vars", "account_id"],
    &["Details", "Custom-Channel-Vars", "Account-ID"],
];

/// Validates a notification and finds its account.
pub(super) fn parse(body: &Map<String, Value>) -> Result<KazooEvent, EventError> {
    // Kazoo validates the envelope too, so a message that only looks like a notification by its
    // routing key is refused.
    match text(body, "Event-Category") {
        Some(EVENT_CATEGORY) => {}
        Some(_) => return Err(EventError::InvalidField { field: "Event-Category", reason: "not a notification" }),
        None => return Err(EventError::MissingField("Event-Category")),
    }
    let name = text(body, "Event-Name").ok_or(EventError::MissingField("Event-Name"))?;
    let notification = notifications::by_name(name).ok_or_else(|| EventError::UnknownNotification(name.to_owned()))?;
    if let Some(field) = notification.required_fields.iter().find(|field| is_absent(body.get(**field))) {
        return Err(EventError::IncompleteNotification { notification: notification.name, field });
    }
    if notification.name == CALLFLOW_WEBHOOK {
        let hook = body
            .get("Hook")
            .and_then(Value::as_object)
            .ok_or(EventError::InvalidField { field: "Hook", reason: "not an object" })?;
        let data = body
            .get("Data")
            .and_then(Value::as_object)
            .ok_or(EventError::InvalidField { field: "Data", reason: "not an object" })?;
        let account_id = account_id_field(hook.get("pvt_account_id"), "Hook.pvt_account_id")?;
        let event = CallflowWebhookEvent { hook: hook.clone(), data: data.clone() };
        return Ok(KazooEvent { kind: EventKind::CallflowWebhook(event), account_id });
    }
    let account_id = notification_account_id(body)?;
    let event = NotificationEvent { notification, message: body.clone() };
    Ok(KazooEvent { kind: EventKind::Notification(event), account_id })
}

/// The account of a notification: the first defined value along [`ACCOUNT_ID_PATHS`]. Like
/// Kazoo, the first defined value decides: a string that is not an account id names no account.
fn notification_account_id(body: &Map<String, Value>) -> Result<Option<AccountId>, EventError> {
    let found = ACCOUNT_ID_PATHS.iter().find_map(|path| lookup(body, path).filter(|value| !value.is_null()));
    account_id_field(found, "Account-ID")
}

/// The value at a nested `path` of `object`.
fn lookup<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(object.get(*first)?, |value, key| value.get(*key))
}

/// Kazoo treats a missing field and a `null` one alike.
fn is_absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}
