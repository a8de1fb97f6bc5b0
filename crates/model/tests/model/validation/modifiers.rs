//! The modifiers in `custom_data`: object types and actions, notification types, hooks without
//! modifiers.

use serde_json::{Map, Value, json};

use super::{ADMIN, RESELLER, accepted, hook_with, refused, refused_as, validate_as};

fn object_hook(custom_data: Value) -> Value {
    hook_with(json!({"hook": "object", "custom_data": custom_data}))
}

fn notifications_hook(notification_type: &str) -> Value {
    hook_with(json!({"hook": "notifications", "custom_data": {"type": notification_type}}))
}

#[test]
fn object_hooks_need_valid_type_and_action_modifiers() {
    let object_types = json!([
        "all",
        "account",
        "callflow",
        "device",
        "faxbox",
        "media",
        "user",
        "vmbox",
        "fax",
        "mailbox_message",
        "call_recording"
    ]);
    let actions = json!(["all", "doc_created", "doc_edited", "doc_deleted"]);

    accepted(object_hook(json!({"type": "user", "action": "doc_created", "extra": "copied"})));
    accepted(object_hook(json!({"type": "all", "action": "all"})));

    let missing = json!({"message": "missing required modifier"});
    assert_eq!(
        refused(hook_with(json!({"hook": "object"}))),
        json!({"custom_data.type": {"required": missing}, "custom_data.action": {"required": missing}})
    );
    assert_eq!(refused(object_hook(json!({"type": "user"}))), json!({"custom_data.action": {"required": missing}}));
    assert_eq!(
        refused(object_hook(json!({"type": "queue", "action": "doc_renamed"}))),
        json!({
            "custom_data.type": {"enum": {"message": "value not found in enumerated list of values",
                                          "cause": "queue", "target": object_types}},
            "custom_data.action": {"enum": {"message": "value not found in enumerated list of values",
                                            "cause": "doc_renamed", "target": actions}},
        })
    );
}

#[test]
fn notification_types_are_checked_and_restricted_ones_refused_to_non_admins() {
    let definitions: Value =
        serde_json::from_str(include_str!("../../../data/hook-definitions.json")).expect("the definitions are JSON");
    let all_types: Vec<String> =
        definitions[2]["modifiers"]["type"]["items"].as_object().expect("notification types").keys().cloned().collect();
    let visible: Vec<String> =
        all_types.iter().filter(|name| *name != "system_alert" && *name != "webhook_disabled").cloned().collect();
    assert_eq!(all_types.len(), visible.len() + 2);

    let unknown = |target: &[String], cause: &str| {
        json!({"custom_data.type": {"enum": {"message": "value not found in enumerated list of values",
                                             "cause": cause, "target": target}}})
    };
    assert_eq!(refused_as(RESELLER, notifications_hook("fax_sent")), unknown(&visible, "fax_sent"));
    assert_eq!(refused_as(ADMIN, notifications_hook("fax_sent")), unknown(&all_types, "fax_sent"));

    // Unlike Kazoo, the restriction is enforced, not only cosmetic.
    for restricted in ["system_alert", "webhook_disabled"] {
        assert_eq!(refused_as(RESELLER, notifications_hook(restricted)), unknown(&visible, restricted));
        validate_as(ADMIN, notifications_hook(restricted)).expect("an admin may subscribe");
    }
    accepted(notifications_hook("voicemail_new"));
    accepted(notifications_hook("all"));
    assert_eq!(
        refused(hook_with(json!({"hook": "notifications", "custom_data": {}}))),
        json!({"custom_data.type": {"required": {"message": "missing required modifier"}}})
    );
}

#[test]
fn hooks_without_modifiers_and_the_all_hook_take_any_custom_data() {
    accepted(hook_with(json!({"hook": "all", "custom_data": {"type": "anything", "action": "at all"}})));
    accepted(hook_with(json!({"hook": "all"})));
    for hook in ["channel_answer", "channel_bridge", "channel_destroy", "parking", "sms", "mms"] {
        accepted(hook_with(json!({"hook": hook, "custom_data": {"type": "whatever"}})));
    }
}

#[test]
fn modifiers_are_only_checked_once_the_schema_passed() {
    assert_eq!(
        refused(hook_with(json!({"hook": "object", "http_verb": "delete"}))),
        json!({"http_verb": {"enum": {"message": "Value not found in enumerated list of values",
                                      "target": ["get", "post", "put"], "value": "delete"}}})
    );
    let uri_only = refused(hook_with(json!({"hook": "object", "uri": "http://10.0.0.1/"})));
    assert_eq!(uri_only.as_object().map(Map::len), Some(1), "got {uri_only}");
}
