//! Notification events: required fields, names and categories, the account, the payload, the
//! callflow webhook, the table of types.

use super::*;
use webhooks_model::hooks::HookType;

fn voicemail() -> Value {
    Fixture::load("notification_voicemail_new.json").body().clone()
}

#[test]
fn a_missing_required_field_drops_the_notification() {
    let mut body = voicemail();
    body.as_object_mut().expect("object").remove("Voicemail-Box");
    assert_eq!(
        KazooEvent::parse("notifications.voicemail.new", &body),
        Err(EventError::IncompleteNotification { notification: "voicemail_new", field: "Voicemail-Box" })
    );
    body["Voicemail-Box"] = Value::Null;
    assert!(KazooEvent::parse("notifications.voicemail.new", &body).is_err(), "null counts as missing");
}

#[test]
fn unknown_names_and_wrong_categories_are_refused() {
    let mut body = voicemail();
    body["Event-Name"] = json!("skel");
    assert_eq!(KazooEvent::parse("notifications.skel", &body), Err(EventError::UnknownNotification("skel".to_owned())));
    let mut body = voicemail();
    body.as_object_mut().expect("object").remove("Event-Category");
    assert_eq!(
        KazooEvent::parse("notifications.voicemail.new", &body),
        Err(EventError::MissingField("Event-Category"))
    );
}

#[test]
fn the_account_follows_kazoos_lookup_order() {
    let other = "1f0e2d3c4b5a69788796a5b4c3d2e1f0";
    let mut body = voicemail();
    body["account_id"] = json!(other);
    assert_eq!(parse("k", &body).account_id, Some(account(other)), "account_id before Account-ID");

    let mut body = json!({"Event-Category": "notification", "Event-Name": "system_alert", "Message": "m",
                          "Subject": "s", "Details": {"Account-ID": other}});
    assert_eq!(parse("k", &body).account_id, Some(account(other)), "Details.Account-ID as a fallback");
    body["Details"] = json!({"Custom-Channel-Vars": {"Account-ID": other}});
    assert_eq!(parse("k", &body).account_id, Some(account(other)));
    body.as_object_mut().expect("object").remove("Details");
    assert_eq!(parse("k", &body).account_id, None, "system alerts may have no account");
}

#[test]
fn the_payload_is_the_whole_message_normalized() {
    let mut body = voicemail();
    body["Caller-ID-Name"] = Value::Null;
    body["Extra-Info"] = json!({"Nested-Key": [{"Deep-Key": 1, "Gone": null}]});
    let payload = build(&parse("k", &body));
    assert!(!payload.contains_key("caller_id_name"));
    assert_eq!(payload["extra_info"], json!({"nested_key": [{"deep_key": 1}]}));
    assert_eq!(payload["event_category"], json!("notification"));
    assert_eq!(payload["msg_id"], json!("9e4a3b2c1d0f5e6a7b8c9d0e1f2a3b4c"));
}

#[test]
fn the_callflow_webhook_is_its_own_kind_for_its_own_hook_only() {
    let body = json!({
        "Event-Category": "notification", "Event-Name": "webhook",
        "Hook": {"_id": "63877219205", "uri": "https://hooks.example.com/cf", "http_verb": "post",
                 "hook": "notifications", "custom_data": {"source": "callflow"}, "pvt_account_id": ACCOUNT_ID},
        "Data": {"Call-ID": "abc", "Caller-ID-Name": "Bob", "Empty": null}
    });
    let event = parse("notifications.webhook.callflow", &body);
    assert!(matches!(event.kind, EventKind::CallflowWebhook(_)));
    assert_eq!(event.lookup_key(), None);
    assert_eq!(event.account_id, Some(account(ACCOUNT_ID)));
    assert!(!HookView::new(HookType::All).accepts(&event), "registered hooks never receive it");
    assert!(!HookView::new(HookType::Notifications).accepts(&event));

    let EventKind::CallflowWebhook(webhook) = &event.kind else { panic!("callflow webhook") };
    let hook = HookView::from_document(&webhook.hook).expect("on-the-fly hook");
    let payload = finish_payload(&build(&event), &hook, &Finishing::new(CLUSTER_ID)).expect("delivered");
    assert_same_json(
        &payload,
        &json!({"call_id": "abc", "caller_id_name": "Bob", "source": "callflow", "cluster_id": CLUSTER_ID}),
        "callflow webhook",
    );
}

#[test]
fn the_table_has_all_38_kazoo_types() {
    assert_eq!(NOTIFICATION_TYPES.len(), 38);
    let webhook_disabled = notifications::by_name("webhook_disabled").expect("present");
    assert_eq!(webhook_disabled.routing_key, "notifications.webhook.disabled");
    assert_eq!(webhook_disabled.required_fields, ["Account-ID", "Hook-ID"]);
    assert!(webhook_disabled.super_admin_only);
    assert!(notifications::by_name("system_alert").expect("present").super_admin_only);
    assert!(!notifications::by_name("voicemail_new").expect("present").super_admin_only);
    assert_eq!(
        notifications::by_routing_key("notifications.account.reminder").map(|entry| entry.name),
        Some("bill_reminder")
    );
}
