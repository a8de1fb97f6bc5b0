//! The per-hook filters: object types and actions, notification types, `all` hooks, hook types,
//! internal legs.

use super::*;

fn object_event(doc_type: &str, action: &str) -> KazooEvent {
    let mut body = Fixture::load("object_doc_created_user.json").body().clone();
    body["Type"] = json!(doc_type);
    body["Event-Name"] = json!(action);
    parse("k", &body)
}

fn object_hook(custom_data: &Map<String, Value>) -> HookView<'_> {
    HookView { custom_data: Some(custom_data), ..HookView::new("object") }
}

#[test]
fn object_hooks_filter_on_type_and_action() {
    let user_created = object_event("user", "doc_created");
    let cases = [
        (json!({"type": "user", "action": "doc_created"}), true),
        (json!({"type": "user", "action": "all"}), true),
        (json!({"type": "all", "action": "all"}), true),
        (json!({"type": "device", "action": "all"}), false),
        (json!({"type": "user", "action": "doc_deleted"}), false),
        // Unlike Kazoo, a missing filter key means all.
        (json!({"type": "user"}), true),
        (json!({"action": "doc_created"}), true),
        (json!({"action": "doc_edited"}), false),
        (json!({}), true),
        (json!({"type": ["user"], "action": "all"}), false),
    ];
    for (custom_data, expected) in cases {
        let custom_data = object(custom_data);
        assert_eq!(object_hook(&custom_data).accepts(&user_created), expected, "{custom_data:?}");
    }
    assert!(HookView::new("object").accepts(&user_created), "no custom_data passes");
}

#[test]
fn notification_hooks_filter_on_type() {
    let event = Fixture::load("notification_voicemail_new.json").event();
    let cases = [
        (json!({"type": "voicemail_new"}), true),
        (json!({"type": "all"}), true),
        (json!({"type": "voicemail_saved"}), false),
        // As in Kazoo: custom_data without type matches nothing.
        (json!({"crm": "zendesk"}), false),
    ];
    for (custom_data, expected) in cases {
        let custom_data = object(custom_data);
        let hook = HookView { custom_data: Some(&custom_data), ..HookView::new("notifications") };
        assert_eq!(hook.accepts(&event), expected, "{custom_data:?}");
    }
    assert!(HookView::new("notifications").accepts(&event), "no custom_data passes");
}

#[test]
fn all_hooks_receive_every_kind_and_bypass_the_type_filters() {
    let narrow = object(json!({"type": "device", "action": "doc_deleted"}));
    let all = HookView { custom_data: Some(&narrow), ..HookView::new("all") };
    for fixture in Fixture::all() {
        assert!(all.accepts(&fixture.event()), "{}", fixture.file);
    }
}

#[test]
fn hooks_of_another_type_do_not_receive_the_event() {
    let create = Fixture::load("CHANNEL_CREATE.json").event();
    assert!(HookView::new("channel_create").accepts(&create));
    assert!(HookView::new("CHANNEL_CREATE").accepts(&create), "hook types compare case-insensitively");
    for other in ["channel_answer", "object", "notifications", "parking", "sms", "mms"] {
        assert!(!HookView::new(other).accepts(&create), "{other}");
    }
}

#[test]
fn loopback_legs_are_skipped_by_hooks_excluding_internal_legs() {
    let mut loopback = channel_body("CHANNEL_CREATE");
    loopback["Channel-Is-Loopback"] = json!(true);
    let mut named_loopback = channel_body("CHANNEL_CREATE");
    named_loopback["Channel-Name"] = json!("loopback/1001-a");
    let external = parse("k", &channel_body("CHANNEL_CREATE"));
    for hook_type in ["channel_create", "all"] {
        let excluding = HookView { include_internal_legs: false, ..HookView::new(hook_type) };
        let including = HookView::new(hook_type);
        for body in [&loopback, &named_loopback] {
            let event = parse("k", body);
            assert!(!excluding.accepts(&event), "{hook_type}");
            assert!(including.accepts(&event), "{hook_type}");
        }
        assert!(excluding.accepts(&external), "{hook_type}");
    }
    let document = object(json!({"hook": "channel_create", "include_internal_legs": false}));
    assert!(!HookView::from_document(&document).expect("hook").accepts(&parse("k", &loopback)));
}
