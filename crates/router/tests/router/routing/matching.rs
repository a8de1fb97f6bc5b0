//! Which hooks an event reaches: the account tree and `include_subaccounts`, `all` hooks, and every
//! per-hook filter.

use serde_json::json;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_router::index::HookIndex;
use webhooks_router::route::route;

use super::{Tree, channel_event, hook, key, object_event, receivers, voicemail_full, voicemail_new};

#[test]
fn sub_account_events_reach_ancestors_only_through_include_subaccounts_in_root_to_parent_order() {
    let tree = Tree::new();
    let own = hook(&tree.child, "channel_create", json!({}));
    let parent_inherited = hook(&tree.parent, "channel_create", json!({"include_subaccounts": true}));
    let parent_own_only = hook(&tree.parent, "channel_create", json!({}));
    let master_all_inherited = hook(&tree.master, "all", json!({"include_subaccounts": true}));
    let master_all_own_only = hook(&tree.master, "all", json!({}));
    let reseller_other_type = hook(&tree.reseller, "channel_answer", json!({"include_subaccounts": true}));
    let sibling = hook(&tree.other, "channel_create", json!({"include_subaccounts": true}));
    let hooks = [
        own.clone(),
        parent_inherited.clone(),
        parent_own_only.clone(),
        master_all_inherited.clone(),
        master_all_own_only.clone(),
        reseller_other_type.clone(),
        sibling.clone(),
    ];
    let index = HookIndex::build(&tree.accounts(), &hooks);

    let event = channel_event(&tree.child, "CHANNEL_CREATE", json!({}));
    assert_eq!(
        receivers(&index, &event),
        vec![own.id.clone(), master_all_inherited.id.clone(), parent_inherited.id.clone()]
    );

    // Within an account, hooks with include_subaccounts come first.
    let parent_hooks = vec![parent_inherited.id.clone(), parent_own_only.id.clone(), master_all_inherited.id.clone()];
    assert_eq!(receivers(&index, &channel_event(&tree.parent, "CHANNEL_CREATE", json!({}))), parent_hooks);

    let answer = channel_event(&tree.child, "CHANNEL_ANSWER", json!({}));
    assert_eq!(receivers(&index, &answer), vec![master_all_inherited.id.clone(), reseller_other_type.id.clone()]);

    let master_event = channel_event(&tree.master, "CHANNEL_CREATE", json!({}));
    let master_hooks = vec![master_all_inherited.id.clone(), master_all_own_only.id.clone()];
    assert_eq!(receivers(&index, &master_event), master_hooks);
}

#[test]
fn all_hooks_receive_every_event_kind_and_bypass_the_object_and_notification_filters() {
    let tree = Tree::new();
    let all = hook(&tree.child, "all", json!({"custom_data": {"type": "device", "action": "doc_deleted"}}));
    let index = HookIndex::build(&tree.accounts(), std::slice::from_ref(&all));
    for event in [
        channel_event(&tree.child, "CHANNEL_DESTROY", json!({})),
        object_event(&tree.child, "doc_created", "user"),
        voicemail_new(&tree.child),
    ] {
        assert_eq!(receivers(&index, &event), vec![all.id.clone()], "{event:?}");
    }
    let jobs = route(&object_event(&tree.child, "doc_created", "user"), &index, "cluster", &key());
    assert_eq!(jobs[0].hook_event, "all", "an all hook records hook_event all");
}

#[test]
fn object_hooks_filter_on_type_and_action_with_a_missing_filter_meaning_all() {
    let tree = Tree::new();
    let users_created = hook(&tree.child, "object", json!({"custom_data": {"type": "user", "action": "doc_created"}}));
    let any_device = hook(&tree.child, "object", json!({"custom_data": {"type": "device", "action": "all"}}));
    let any_type_deleted =
        hook(&tree.child, "object", json!({"custom_data": {"type": "all", "action": "doc_deleted"}}));
    let without_action = hook(&tree.child, "object", json!({"custom_data": {"type": "user"}}));
    let without_filter = hook(&tree.child, "object", json!({}));
    let index = HookIndex::build(
        &tree.accounts(),
        &[
            users_created.clone(),
            any_device.clone(),
            any_type_deleted.clone(),
            without_action.clone(),
            without_filter.clone(),
        ],
    );
    let sorted = |mut ids: Vec<WebhookId>| {
        ids.sort();
        ids
    };
    let cases = [
        (object_event(&tree.child, "doc_created", "user"), vec![&users_created, &without_action, &without_filter]),
        (object_event(&tree.child, "doc_edited", "user"), vec![&without_action, &without_filter]),
        (object_event(&tree.child, "doc_deleted", "device"), vec![&any_device, &any_type_deleted, &without_filter]),
        (object_event(&tree.child, "doc_edited", "vmbox"), vec![&without_filter]),
    ];
    for (event, expected) in cases {
        let expected = sorted(expected.into_iter().map(|hook| hook.id.clone()).collect());
        assert_eq!(receivers(&index, &event), expected, "{event:?}");
    }
}

#[test]
fn notification_hooks_filter_on_the_notification_type() {
    let tree = Tree::new();
    let new_only = hook(&tree.child, "notifications", json!({"custom_data": {"type": "voicemail_new"}}));
    let every = hook(&tree.child, "notifications", json!({"custom_data": {"type": "all"}}));
    let unfiltered = hook(&tree.child, "notifications", json!({}));
    let typeless = hook(&tree.child, "notifications", json!({"custom_data": {"crm": "x"}}));
    let index =
        HookIndex::build(&tree.accounts(), &[new_only.clone(), every.clone(), unfiltered.clone(), typeless.clone()]);
    let mut expected_new = vec![new_only.id.clone(), every.id.clone(), unfiltered.id.clone()];
    expected_new.sort();
    assert_eq!(receivers(&index, &voicemail_new(&tree.child)), expected_new);
    let mut expected_full = vec![every.id.clone(), unfiltered.id.clone()];
    expected_full.sort();
    assert_eq!(receivers(&index, &voicemail_full(&tree.child)), expected_full);
}

#[test]
fn the_modifiers_field_skips_hooks_whose_values_the_payload_does_not_match() {
    let tree = Tree::new();
    let inbound = hook(&tree.child, "channel_create", json!({"modifiers": {"call_direction": "inbound"}}));
    let outbound = hook(&tree.child, "channel_create", json!({"modifiers": {"call_direction": "outbound"}}));
    let either = hook(&tree.child, "channel_create", json!({"modifiers": {"call_direction": ["outbound", "inbound"]}}));
    let empty_list = hook(&tree.child, "channel_create", json!({"modifiers": {"call_direction": []}}));
    let absent_key = hook(&tree.child, "channel_create", json!({"modifiers": {"no_such_key": "x"}}));
    let index = HookIndex::build(
        &tree.accounts(),
        &[inbound.clone(), outbound.clone(), either.clone(), empty_list.clone(), absent_key.clone()],
    );
    let jobs = route(&channel_event(&tree.child, "CHANNEL_CREATE", json!({})), &index, "cluster", &key());
    let mut routed: Vec<WebhookId> = jobs.iter().map(|job| job.hook_id.clone()).collect();
    routed.sort();
    let mut expected = vec![inbound.id, either.id, empty_list.id, absent_key.id];
    expected.sort();
    assert_eq!(routed, expected);
}

#[test]
fn loopback_legs_skip_hooks_that_exclude_internal_legs_even_all_hooks() {
    let tree = Tree::new();
    let excluding = hook(&tree.child, "channel_create", json!({"include_internal_legs": false}));
    let all_excluding = hook(&tree.child, "all", json!({"include_internal_legs": false}));
    let including = hook(&tree.child, "channel_create", json!({}));
    let index = HookIndex::build(&tree.accounts(), &[excluding.clone(), all_excluding.clone(), including.clone()]);
    for loopback in [json!({"Channel-Is-Loopback": true}), json!({"Channel-Name": "loopback/1001-a"})] {
        let event = channel_event(&tree.child, "CHANNEL_CREATE", loopback);
        assert_eq!(receivers(&index, &event), vec![including.id.clone()]);
    }
    let event = channel_event(&tree.child, "CHANNEL_CREATE", json!({}));
    assert_eq!(receivers(&index, &event).len(), 3);
}

#[test]
fn disabled_hooks_other_accounts_hooks_and_unknown_accounts_match_nothing() {
    let tree = Tree::new();
    let disabled = hook(&tree.child, "channel_create", json!({"enabled": false}));
    let others = hook(&tree.other, "channel_create", json!({"include_subaccounts": true}));
    let index = HookIndex::build(&tree.accounts(), &[disabled.clone(), others]);
    assert!(receivers(&index, &channel_event(&tree.child, "CHANNEL_CREATE", json!({}))).is_empty());
    assert_eq!(index.hook_count(), 1, "the disabled hook is not even held");

    let stranger = AccountId::generate();
    let mut index = HookIndex::build(&tree.accounts(), &[]);
    index.upsert_hook(&hook(&stranger, "channel_create", json!({})));
    assert!(receivers(&index, &channel_event(&stranger, "CHANNEL_CREATE", json!({}))).is_empty());
    assert!(route(&channel_event(&stranger, "CHANNEL_CREATE", json!({})), &index, "cluster", &key()).is_empty());
}
