//! Per-hook finishing: modifiers, `custom_data` and `cluster_id`, on a copy of the base payload.

use super::*;

fn base() -> Map<String, Value> {
    object(json!({"call_direction": "inbound", "call_id": "c1", "timestamp": 5, "hook_event": "channel_create"}))
}

#[test]
fn modifiers_compare_values_and_array_membership() {
    let payload = base();
    let cases = [
        (json!({"call_direction": "inbound"}), true),
        (json!({"call_direction": "outbound"}), false),
        (json!({"call_direction": ["outbound", "inbound"]}), true),
        (json!({"call_direction": ["outbound"]}), false),
        (json!({"call_direction": []}), true),
        (json!({"not_in_payload": "anything"}), true),
        (json!({"timestamp": 5}), true),
        (json!({"timestamp": "5"}), false),
        (json!({"call_direction": "inbound", "call_id": "other"}), false),
    ];
    for (modifiers, expected) in cases {
        let modifiers = object(modifiers);
        assert_eq!(modifiers_match(&payload, &modifiers), expected, "{modifiers:?}");
        let hook = HookView { modifiers: Some(&modifiers), ..HookView::new("channel_create") };
        assert_eq!(finish_payload(&payload, &hook, CLUSTER_ID).is_some(), expected, "{modifiers:?}");
    }
}

#[test]
fn custom_data_drops_filters_overwrites_in_place_and_appends_in_reverse() {
    let custom_data = object(json!({"type": "x", "first": "1", "call_id": "mine", "action": "y", "second": "2"}));
    let mut payload = base();
    merge_custom_data(&mut payload, &custom_data);
    assert_same_json(
        &payload,
        &json!({"call_direction": "inbound", "call_id": "mine", "timestamp": 5, "hook_event": "channel_create",
                "second": "2", "first": "1"}),
        "merge",
    );
}

#[test]
fn cluster_id_is_set_last_and_always_wins() {
    let custom_data = object(json!({"cluster_id": "spoofed", "environment": "production"}));
    let hook = HookView { custom_data: Some(&custom_data), ..HookView::new("channel_create") };
    let mut with_cluster = base();
    with_cluster.insert("cluster_id".to_owned(), json!("from-event"));
    for base in [base(), with_cluster] {
        let payload = finish_payload(&base, &hook, CLUSTER_ID).expect("delivered");
        assert_eq!(payload.keys().next_back().map(String::as_str), Some("cluster_id"));
        assert_eq!(payload["cluster_id"], json!(CLUSTER_ID));
        assert_eq!(payload["environment"], json!("production"));
    }
}

#[test]
fn the_base_payload_is_left_untouched_for_the_next_hook() {
    let base = base();
    let custom_data = object(json!({"extra": "x"}));
    let hook = HookView { custom_data: Some(&custom_data), ..HookView::new("channel_create") };
    let _ = finish_payload(&base, &hook, CLUSTER_ID);
    assert_eq!(base, super::finishing::base());
    assert!(!base.contains_key("extra"));
}
