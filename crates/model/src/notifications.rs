//! Kazoo's notification types (docs/kazoo.md#notification-types): the `custom_data.type` values of
//! `notifications` hooks, the bus routing key each one is published on, and the fields without
//! which Kazoo drops it.
//!
//! One table serves the router (bindings, validation of incoming messages), the API (the modifier
//! list of the `notifications` hook) and the samples, so they cannot drift apart.

use serde::Serialize;

use crate::ids::{AccountId, WebhookId, random_id};
use crate::notice::{APP_NAME, APP_VERSION};

/// One notification type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationType {
    /// The `Event-Name` of the message and the `custom_data.type` a hook filters on.
    pub name: &'static str,
    /// Routing key on the `notifications` exchange.
    pub routing_key: &'static str,
    /// Human name served in the hook definition's modifiers.
    pub friendly_name: &'static str,
    /// Wire fields a message must carry; Kazoo drops it otherwise.
    pub required_fields: &'static [&'static str],
    /// Only super-duper admins see this type in listings and error targets
    /// (docs/kazoo.md#modifiers).
    pub super_admin_only: bool,
}

/// Fields any notification may carry beside its required ones.
pub const OPTIONAL_FIELDS: &[&str] =
    &["Account-DB", "Attachment-URL", "Bcc", "Cc", "From", "HTML", "Preview", "Reply-To", "Subject", "Text", "To"];

/// `Event-Category` of every notification message.
pub const EVENT_CATEGORY: &str = "notification";

/// Name of the callflow-triggered webhook notification, which is delivered to the hook it carries
/// rather than to registered hooks (docs/kazoo.md#callflow-webhook).
pub const CALLFLOW_WEBHOOK: &str = "webhook";

/// Shorthand for table rows, so the table below reads as one: name, routing key, friendly name,
/// required fields.
const fn row(
    name: &'static str,
    routing_key: &'static str,
    friendly_name: &'static str,
    required_fields: &'static [&'static str],
) -> NotificationType {
    NotificationType { name, routing_key, friendly_name, required_fields, super_admin_only: false }
}

/// Every notification type, sorted by name.
pub const NOTIFICATION_TYPES: &[NotificationType] = &[
    row("account_zone_change", "notifications.account.zone_change", "Account Zone Change", &["Account-ID", "Zones"]),
    row(
        "bill_reminder",
        "notifications.account.reminder",
        "Bill Reminder",
        &["Account-ID", "Due-Date", "Items", "Timestamp"],
    ),
    row(
        "cf_notification",
        "notifications.account.cf_notification",
        "Customer defined notification",
        &["Account-ID", "Template-ID"],
    ),
    row("cnam_request", "notifications.number.cnam_request", "CNAM Update", &["Account-ID", "Number", "Cnam"]),
    row("customer_update", "notifications.user.customer_update", "Customer Update", &["Account-ID"]),
    row(
        "denied_emergency_bridge",
        "notifications.registration.denied_emergency_bridge",
        "Emergency Call Failed",
        &["Account-ID", "Call-ID"],
    ),
    row("deregister", "notifications.sip.deregister", "De-Registration", &["Account-ID", "Realm", "Username"]),
    row(
        "emergency_bridge",
        "notifications.registration.emergency_bridge",
        "Emergency Call Placed",
        &["Account-ID", "Call-ID"],
    ),
    row(
        "first_occurrence",
        "notifications.sip.first_occurrence",
        "Account First Occurrence",
        &["Account-ID", "Occurrence"],
    ),
    row(
        "inbound_fax",
        "notifications.fax.inbound",
        "Successful Fax Reception",
        &["Account-ID", "Fax-ID", "From-Realm", "From-User", "To-Realm", "To-User"],
    ),
    row(
        "inbound_fax_error",
        "notifications.fax.inbound_error",
        "Fax Reception Error",
        &["Account-ID", "From-Realm", "From-User", "To-Realm", "To-User"],
    ),
    row("low_balance", "notifications.account.low_balance", "Account Low Balance", &["Account-ID", "Current-Balance"]),
    row(
        "missed_call",
        "notifications.sip.missed_call",
        "Missed Call",
        &["Account-ID", "Call-Bridged", "Call-ID", "Message-Left"],
    ),
    row("new_account", "notifications.account.new", "New Account", &["Account-ID"]),
    row("new_user", "notifications.user.new", "New User", &["Account-ID", "User-ID"]),
    row(
        "number_feature_manual_action",
        "notifications.account.number_feature_manual_action",
        "Number Feature Manual Action Required",
        &["Account-ID", "Number", "Feature"],
    ),
    row(
        "outbound_fax",
        "notifications.fax.outbound",
        "Successful Fax Transmission",
        &["Account-ID", "Callee-ID-Number", "Caller-ID-Number", "Fax-ID", "Fax-JobId"],
    ),
    row("outbound_fax_error", "notifications.fax.outbound_error", "Fax Transmission Error", &["Fax-ID", "Fax-JobId"]),
    row(
        "outbound_smtp_fax_error",
        "notifications.fax.outbound_smtp_error",
        "Invalid Email-to-Fax Email",
        &["Account-ID", "Fax-From-Email", "Errors", "Timestamp"],
    ),
    row(
        "password_recovery",
        "notifications.user.password_recovery",
        "Password Recovery",
        &["Account-ID", "Email", "Password-Reset-Link"],
    ),
    row("port_cancel", "notifications.number.port_cancel", "Port Cancel", &["Account-ID", "Port-Request-ID"]),
    row(
        "port_comment",
        "notifications.number.port_comment",
        "Port Comment",
        &["Account-ID", "Comment", "Port-Request-ID"],
    ),
    row("port_pending", "notifications.number.port_pending", "Port Pending", &["Account-ID", "Port-Request-ID"]),
    row("port_rejected", "notifications.number.port_rejected", "Port Rejected", &["Account-ID", "Port-Request-ID"]),
    row("port_request", "notifications.number.port_request", "Port Request", &["Account-ID", "Port-Request-ID"]),
    row("port_scheduled", "notifications.number.port_scheduled", "Port Scheduled", &["Account-ID", "Port-Request-ID"]),
    row(
        "port_unconfirmed",
        "notifications.number.port_unconfirmed",
        "Port Unconfirmed",
        &["Account-ID", "Port-Request-ID"],
    ),
    row("ported", "notifications.number.ported", "Ported", &["Account-ID", "Port-Request-ID"]),
    row("register", "notifications.sip.register", "Registration", &["Account-ID", "Realm", "Username"]),
    row(
        "service_added",
        "notifications.account.service_added",
        "Service Added",
        &["Account-ID", "Audit-Log", "Items", "Timestamp"],
    ),
    NotificationType {
        name: "system_alert",
        routing_key: "notifications.system.alert",
        friendly_name: "System Alert",
        required_fields: &["Message", "Subject"],
        super_admin_only: true,
    },
    row(
        "topup",
        "notifications.account.topup",
        "Automatic Account Top-up",
        &["Account-ID", "Amount", "Response", "Success", "Timestamp"],
    ),
    row(
        "transaction",
        "notifications.account.transaction",
        "Transaction Completed",
        &["Account-ID", "Amount", "Response", "Success", "Timestamp"],
    ),
    row(
        "voicemail_full",
        "notifications.voicemail.full",
        "Voicemail Box Full",
        &["Account-ID", "Max-Message-Count", "Message-Count", "Voicemail-Box"],
    ),
    row(
        "voicemail_new",
        "notifications.voicemail.new",
        "New Voicemail Message",
        &[
            "Account-ID",
            "From-Realm",
            "From-User",
            "To-Realm",
            "To-User",
            "Voicemail-Box",
            "Voicemail-ID",
            "Voicemail-Timestamp",
        ],
    ),
    row(
        "voicemail_saved",
        "notifications.voicemail.saved",
        "Voicemail Message Saved",
        &[
            "Account-ID",
            "From-Realm",
            "From-User",
            "To-Realm",
            "To-User",
            "Voicemail-Box",
            "Voicemail-ID",
            "Voicemail-Timestamp",
        ],
    ),
    row(CALLFLOW_WEBHOOK, "notifications.webhook.callflow", "Callflow Webhook Triggered", &["Data", "Hook"]),
    WEBHOOK_DISABLED,
];

/// `webhook_disabled`: a hook was disabled for failing (docs/kazoo.md#auto-disable).
pub const WEBHOOK_DISABLED: NotificationType = NotificationType {
    name: "webhook_disabled",
    routing_key: "notifications.webhook.disabled",
    friendly_name: "Webhook Disabled",
    required_fields: &["Account-ID", "Hook-ID"],
    super_admin_only: true,
};

/// The `webhook_disabled` notification of one hook, as Kazoo publishes it when it disables a
/// hook (docs/kazoo.md#auto-disable): the owner and the hook, in Kazoo's usual envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDisabled<'a> {
    #[serde(rename = "Account-ID")]
    account_id: &'a AccountId,
    #[serde(rename = "Hook-ID")]
    hook_id: &'a WebhookId,
    #[serde(rename = "Event-Category")]
    event_category: &'static str,
    #[serde(rename = "Event-Name")]
    event_name: &'static str,
    #[serde(rename = "App-Name")]
    app_name: &'static str,
    #[serde(rename = "App-Version")]
    app_version: &'static str,
    #[serde(rename = "Node")]
    node: &'a str,
    #[serde(rename = "Msg-ID")]
    msg_id: String,
}

impl<'a> WebhookDisabled<'a> {
    /// The notification that `node` disabled the hook `hook_id` of `account_id`, with a fresh
    /// message id.
    pub fn new(account_id: &'a AccountId, hook_id: &'a WebhookId, node: &'a str) -> Self {
        Self {
            account_id,
            hook_id,
            event_category: EVENT_CATEGORY,
            event_name: WEBHOOK_DISABLED.name,
            app_name: APP_NAME,
            app_version: APP_VERSION,
            node,
            msg_id: random_id(),
        }
    }

    /// The message body.
    pub fn to_json(&self) -> String {
        // Strings only: writing them cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The notification type named `name` (its `Event-Name`), if Kazoo has one.
pub fn by_name(name: &str) -> Option<&'static NotificationType> {
    // The table is sorted by name; a binary search keeps the per-event lookup cheap.
    NOTIFICATION_TYPES.binary_search_by(|entry| entry.name.cmp(name)).ok().map(|index| &NOTIFICATION_TYPES[index])
}

/// The notification type published on `routing_key`, if any.
pub fn by_routing_key(routing_key: &str) -> Option<&'static NotificationType> {
    NOTIFICATION_TYPES.iter().find(|entry| entry.routing_key == routing_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_unique_so_binary_search_works() {
        for pair in NOTIFICATION_TYPES.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
        }
        assert_eq!(NOTIFICATION_TYPES.len(), 38);
        for entry in NOTIFICATION_TYPES {
            assert_eq!(by_name(entry.name), Some(entry));
            assert_eq!(by_routing_key(entry.routing_key), Some(entry));
        }
        assert_eq!(by_name("skel"), None);
    }

    #[test]
    fn webhook_disabled_carries_the_owner_and_the_hook_in_kazoos_envelope() {
        let (account, hook) = (AccountId::generate(), WebhookId::generate());
        let written = WebhookDisabled::new(&account, &hook, "dispatcher@host").to_json();
        let read: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&written).expect("JSON");
        let keys: Vec<&str> = read.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["Account-ID", "Hook-ID", "Event-Category", "Event-Name", "App-Name", "App-Version", "Node", "Msg-ID"]
        );
        assert_eq!(
            (read["Account-ID"].as_str(), read["Hook-ID"].as_str()),
            (Some(account.as_str()), Some(hook.as_str()))
        );
        assert_eq!(
            (read["Event-Category"].as_str(), read["Event-Name"].as_str()),
            (Some("notification"), Some("webhook_disabled"))
        );
        assert_eq!((read["App-Name"].as_str(), read["Node"].as_str()), (Some("webhooks"), Some("dispatcher@host")));
        assert!(read["Msg-ID"].as_str().is_some_and(|id| id.parse::<WebhookId>().is_ok()), "a Kazoo-shaped message id");
        let missing: Vec<&&str> =
            WEBHOOK_DISABLED.required_fields.iter().filter(|field| !read.contains_key(**field)).collect();
        assert!(missing.is_empty(), "{missing:?}");
    }
}
