//! Per-hook finishing: modifiers, `custom_data` and `cluster_id`, on a copy of the base payload.

use super::*;
use webhooks_model::hooks::HookType;

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
        let hook = HookView { modifiers: Some(&modifiers), ..HookView::new(HookType::ChannelCreate) };
        assert_eq!(finish_payload(&payload, &hook, &Finishing::new(CLUSTER_ID)).is_some(), expected, "{modifiers:?}");
    }
}

#[test]
fn custom_data_drops_filters_overwrites_in_place_and_appends_in_reverse() {
    let custom_data = object(json!({"type": "x", "first": "1", "call_id": "mine", "action": "y", "second": "2"}));
    let mut payload = base();
    merge_custom_data(&mut payload, &custom_data, PayloadCompat::Master);
    assert_same_json(
        &payload,
        &json!({"call_direction": "inbound", "call_id": "mine", "timestamp": 5, "hook_event": "channel_create",
                "second": "2", "first": "1"}),
        "merge",
    );
}

#[test]
fn kazoo_4_3_payloads_carry_the_filter_keys_too() {
    let custom_data = object(json!({"type": "user", "first": "1", "action": "doc_edited"}));
    let hook = HookView { custom_data: Some(&custom_data), ..HookView::new(HookType::Object) };
    let finishing = Finishing { cluster_id: CLUSTER_ID, compat: PayloadCompat::Kazoo43 };
    let payload = finish_payload(&base(), &hook, &finishing).expect("delivered");
    assert_same_json(
        &payload,
        &json!({"call_direction": "inbound", "call_id": "c1", "timestamp": 5, "hook_event": "channel_create",
                "action": "doc_edited", "first": "1", "type": "user", "cluster_id": CLUSTER_ID}),
        "4.3",
    );
}

#[test]
fn cluster_id_is_set_last_and_always_wins() {
    let custom_data = object(json!({"cluster_id": "spoofed", "environment": "production"}));
    let hook = HookView { custom_data: Some(&custom_data), ..HookView::new(HookType::ChannelCreate) };
    let mut with_cluster = base();
    with_cluster.insert("cluster_id".to_owned(), json!("from-event"));
    for base in [base(), with_cluster] {
        let payload = finish_payload(&base, &hook, &Finishing::new(CLUSTER_ID)).expect("delivered");
        assert_eq!(payload.keys().next_back().map(String::as_str), Some("cluster_id"));
        assert_eq!(payload["cluster_id"], json!(CLUSTER_ID));
        assert_eq!(payload["environment"], json!("production"));
    }
}

#[test]
fn the_base_payload_is_left_untouched_for_the_next_hook() {
    let base = base();
    let custom_data = object(json!({"extra": "x"}));
    let hook = HookView { custom_data: Some(&custom_data), ..HookView::new(HookType::ChannelCreate) };
    let _ = finish_payload(&base, &hook, &Finishing::new(CLUSTER_ID));
    assert_eq!(base, super::finishing::base());
    assert!(!base.contains_key("extra"));
}
