//! Pure routing tests: the example bus messages of `crates/model/fixtures/amqp-events` route to
//! their hook with exactly the expected payload, and a table of matching cases covers the account
//! tree, `include_subaccounts`, `all` hooks and every per-hook filter.

use serde_json::{Map, Value, json};
use webhooks_model::event::KazooEvent;
use webhooks_model::ids::{AccountId, MessageKey, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_router::index::HookIndex;
use webhooks_router::route::route;
use webhooks_storage::{Account, Webhook};
use webhooks_test_support::fixtures::amqp_event_fixtures;

/// The key of a message routed once in a test: a fresh one per call, like distinct messages.
fn key() -> MessageKey {
    MessageKey::of("call.CHANNEL_CREATE.test", AccountId::generate().as_str().as_bytes())
}

/// An account under `tree` (root first), with extra document fields.
fn account(id: &AccountId, tree: &[&AccountId], doc: Value) -> Account {
    Account {
        id: id.clone(),
        name: format!("account {id}"),
        parent_id: tree.last().map(|parent| (*parent).clone()),
        tree: tree.iter().map(|ancestor| (*ancestor).clone()).collect(),
        api_key: String::new(),
        superduper_admin: false,
        doc: doc.as_object().cloned().unwrap_or_default(),
        created: 0,
        modified: 0,
        revision: "1-00000000000000000000000000000000".to_owned(),
    }
}

/// A stored hook built from a webhook document, the way the API stores it.
fn webhook(id: &WebhookId, owner: &AccountId, doc: Value) -> Webhook {
    let doc = doc.as_object().cloned().unwrap_or_default();
    Webhook {
        id: id.clone(),
        account_id: owner.clone(),
        hook: doc.get("hook").and_then(Value::as_str).unwrap_or_default().to_owned(),
        enabled: doc.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        include_subaccounts: doc.get("include_subaccounts").and_then(Value::as_bool).unwrap_or(false),
        disabled_reason: None,
        doc,
        signed: false,
        revision: "1-00000000000000000000000000000000".to_owned(),
        created: 0,
        modified: 0,
    }
}

fn account_id(text: &str) -> AccountId {
    text.parse().expect("fixture account id")
}

#[test]
fn every_fixture_routes_to_its_hook_with_exactly_the_expected_payload() {
    let fixtures = amqp_event_fixtures();
    assert!(fixtures.len() >= 9, "expected the nine example messages, found {}", fixtures.len());
    for (name, fixture) in fixtures {
        let context = &fixture["context"];
        let event_account = account_id(context["account_id"].as_str().expect("context account"));
        let tree: Vec<AccountId> = context["account_tree"]
            .as_array()
            .expect("context tree")
            .iter()
            .map(|id| account_id(id.as_str().expect("tree id")))
            .collect();
        let reseller = context["reseller_id"].as_str().map(account_id);
        // The tree's accounts, each under the ones before it; the context's reseller is flagged so
        // that the index derives the same `reseller_id` Kazoo's services document held.
        let mut accounts: Vec<Account> = tree
            .iter()
            .enumerate()
            .map(|(depth, id)| {
                let ancestors: Vec<&AccountId> = tree[..depth].iter().collect();
                let doc = if Some(id) == reseller.as_ref() { json!({"is_reseller": true}) } else { json!({}) };
                account(id, &ancestors, doc)
            })
            .collect();
        accounts.push(account(&event_account, &tree.iter().collect::<Vec<_>>(), json!({})));
        let hook_doc = &fixture["hook"];
        let hook_id: WebhookId = hook_doc["id"].as_str().expect("hook id").parse().expect("hook id shape");
        let owner = account_id(hook_doc["pvt_account_id"].as_str().expect("hook owner"));
        let index = HookIndex::build(&accounts, &[webhook(&hook_id, &owner, hook_doc.clone())]);

        let routing_key = fixture["routing_key"].as_str().expect("routing key");
        let event = KazooEvent::parse(routing_key, &fixture["body"]).expect("fixture parses");
        let cluster_id = context["cluster_id"].as_str().expect("cluster id");
        let jobs = route(&event, &index, cluster_id, &key());

        assert_eq!(jobs.len(), 1, "{name}: one job for the fixture's hook");
        let job = &jobs[0];
        assert_eq!(
            serde_json::to_string(&job.payload).expect("payload serializes"),
            serde_json::to_string(&fixture["expected_http_payload"]).expect("expected serializes"),
            "{name}: payload, key order included"
        );
        let request = &fixture["expected_http_request"];
        assert_eq!(job.hook_id.as_str(), request["headers"]["X-Hook-ID"], "{name}");
        assert_eq!(job.account_id.as_str(), request["headers"]["X-Account-ID"], "{name}");
        assert_eq!(job.uri, hook_doc["uri"], "{name}");
        assert_eq!(job.http_verb.as_str().to_ascii_uppercase(), request["method"], "{name}");
        assert_eq!(Value::from(job.format.as_str()), hook_doc["format"], "{name}");
        assert_eq!(job.hook_event, event.attempt_hook_event(hook_doc["hook"].as_str().expect("hook type")), "{name}");
        assert_eq!(job.custom_data.as_ref(), hook_doc["custom_data"].as_object(), "{name}");
        assert_eq!(job.attempt, 0);
        assert!(job.event_id.parse::<WebhookId>().is_ok(), "{name}: event id has the id shape");
    }
}

/// A tree three levels below the master, with a sibling branch:
///
/// ```text
/// master ── reseller (is_reseller) ── parent ── child
///                                  └─ other
/// ```
struct Tree {
    master: AccountId,
    reseller: AccountId,
    parent: AccountId,
    child: AccountId,
    other: AccountId,
}

impl Tree {
    fn new() -> Self {
        Self {
            master: AccountId::generate(),
            reseller: AccountId::generate(),
            parent: AccountId::generate(),
            child: AccountId::generate(),
            other: AccountId::generate(),
        }
    }

    fn accounts(&self) -> Vec<Account> {
        vec![
            account(&self.master, &[], json!({})),
            account(&self.reseller, &[&self.master], json!({"is_reseller": true})),
            account(&self.parent, &[&self.master, &self.reseller], json!({})),
            account(&self.child, &[&self.master, &self.reseller, &self.parent], json!({})),
            account(&self.other, &[&self.master, &self.reseller], json!({})),
        ]
    }
}

/// A hook of `hook_type` owned by `owner` with extra document fields.
fn hook(owner: &AccountId, hook_type: &str, extra: Value) -> Webhook {
    let mut doc = json!({"name": format!("{hook_type} hook"), "uri": "https://hooks.example.com/x", "hook": hook_type,
        "http_verb": "post", "format": "json", "retries": 1});
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    webhook(&WebhookId::generate(), owner, doc)
}

fn channel_event(account: &AccountId, event_name: &str, extra: Value) -> KazooEvent {
    let mut body = json!({"Event-Category": "call_event", "Event-Name": event_name, "Call-ID": "call-1",
        "Call-Direction": "inbound", "Channel-Name": "sofia/sipinterface_1/1001@realm",
        "Custom-Channel-Vars": {"Account-ID": account}});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    KazooEvent::parse(&format!("call.{event_name}.call-1"), &body).expect("channel event parses")
}

fn database_of(account: &AccountId) -> String {
    let id = account.as_str();
    format!("account%2F{}%2F{}%2F{}", &id[..2], &id[2..4], &id[4..])
}

fn object_event(account: &AccountId, action: &str, doc_type: &str) -> KazooEvent {
    let body = json!({"Event-Category": "configuration", "Event-Name": action, "Type": doc_type, "ID": "doc-1",
        "Database": database_of(account)});
    KazooEvent::parse(&format!("{action}.{}.{doc_type}.doc-1", database_of(account)), &body).expect("object parses")
}

fn voicemail_new(account: &AccountId) -> KazooEvent {
    let body = json!({"Event-Category": "notification", "Event-Name": "voicemail_new", "Account-ID": account,
        "From-User": "1", "From-Realm": "r", "To-User": "2", "To-Realm": "r", "Voicemail-Box": "b",
        "Voicemail-ID": "m", "Voicemail-Timestamp": 1, "Caller-ID-Number": "1", "Caller-ID-Name": "n",
        "Voicemail-Length": 1, "Call-ID": "c", "Account-DB": database_of(account)});
    KazooEvent::parse("notifications.voicemail.new", &body).expect("notification parses")
}

fn voicemail_full(account: &AccountId) -> KazooEvent {
    let body = json!({"Event-Category": "notification", "Event-Name": "voicemail_full", "Account-ID": account,
        "Max-Message-Count": 10, "Message-Count": 10, "Voicemail-Box": "b"});
    KazooEvent::parse("notifications.voicemail.full", &body).expect("notification parses")
}

/// The ids of the hooks that receive `event`, in delivery order.
fn receivers(index: &HookIndex, event: &KazooEvent) -> Vec<WebhookId> {
    index.matches(event).into_iter().map(|hook| hook.id.clone()).collect()
}

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

#[test]
fn incremental_changes_add_replace_disable_and_remove_hooks_and_accounts() {
    let tree = Tree::new();
    let mut index = HookIndex::build(&tree.accounts(), &[]);
    let event = channel_event(&tree.child, "CHANNEL_CREATE", json!({}));
    let mut created = hook(&tree.parent, "channel_create", json!({}));
    index.upsert_hook(&created);
    assert!(receivers(&index, &event).is_empty(), "not yet inherited");

    created.include_subaccounts = true;
    index.upsert_hook(&created);
    assert_eq!(receivers(&index, &event), vec![created.id.clone()]);
    assert_eq!(index.hook_count(), 1);

    created.enabled = false;
    index.upsert_hook(&created);
    assert!(receivers(&index, &event).is_empty(), "a disabled hook stops at once");
    assert_eq!(index.hook_count(), 0);

    created.enabled = true;
    index.upsert_hook(&created);
    assert!(index.remove_hook(&created.id));
    assert!(!index.remove_hook(&created.id));
    assert!(receivers(&index, &event).is_empty());

    index.upsert_hook(&created);
    let own = hook(&tree.child, "channel_create", json!({}));
    index.upsert_hook(&own);
    assert_eq!(index.remove_account(&tree.parent), 1);
    assert_eq!(receivers(&index, &event), vec![own.id.clone()], "the deleted account's hooks are gone");
    assert!(!index.contains_account(&tree.parent));
    assert!(receivers(&index, &channel_event(&tree.parent, "CHANNEL_CREATE", json!({}))).is_empty());

    let newcomer = AccountId::generate();
    let newcomer_hook = hook(&newcomer, "channel_create", json!({}));
    index.upsert_hook(&newcomer_hook);
    index.upsert_account(&account(&newcomer, &[&tree.master], json!({})));
    assert_eq!(receivers(&index, &channel_event(&newcomer, "CHANNEL_CREATE", json!({}))), vec![newcomer_hook.id]);
}

#[test]
fn the_reseller_is_the_nearest_flagged_ancestor_else_the_master() {
    let tree = Tree::new();
    let mut index = HookIndex::build(&tree.accounts(), &[]);
    assert_eq!(index.reseller_of(&tree.child), Some(&tree.reseller));
    assert_eq!(index.reseller_of(&tree.other), Some(&tree.reseller));
    assert_eq!(index.reseller_of(&tree.reseller), Some(&tree.master), "an account is not its own reseller");
    assert_eq!(index.reseller_of(&tree.master), Some(&tree.master));
    assert_eq!(index.reseller_of(&AccountId::generate()), None);

    index.upsert_account(&account(&tree.parent, &[&tree.master, &tree.reseller], json!({"pvt_reseller": true})));
    assert_eq!(index.reseller_of(&tree.child), Some(&tree.parent));
    index.upsert_account(&account(&tree.reseller, &[&tree.master], json!({})));
    index.upsert_account(&account(&tree.parent, &[&tree.master, &tree.reseller], json!({})));
    assert_eq!(index.reseller_of(&tree.child), Some(&tree.master));

    let own = hook(&tree.child, "channel_create", json!({}));
    index.upsert_hook(&own);
    let jobs = route(&channel_event(&tree.child, "CHANNEL_CREATE", json!({})), &index, "cluster", &key());
    assert_eq!(jobs[0].payload["reseller_id"], tree.master.as_str());
}

#[test]
fn jobs_carry_the_hook_settings_and_an_event_id_per_hook() {
    let tree = Tree::new();
    let first = hook(
        &tree.child,
        "channel_create",
        json!({"http_verb": "put", "format": "form-data", "retries": 4,
               "custom_request_headers": {"X-Tenant": "acme"}, "custom_data": {"cluster_id": "mine", "extra": 1}}),
    );
    let second = hook(&tree.child, "all", json!({"http_verb": "GET", "retries": 0}));
    let index = HookIndex::build(&tree.accounts(), &[first.clone(), second.clone()]);
    let jobs: Vec<DeliveryJob> =
        route(&channel_event(&tree.child, "CHANNEL_CREATE", json!({})), &index, "the-cluster", &key());
    assert_eq!(jobs.len(), 2);
    let job = jobs.iter().find(|job| job.hook_id == first.id).expect("first hook routed");
    assert_eq!((job.http_verb, job.format, job.retries), (HttpVerb::Put, Format::FormData, 4));
    assert_eq!(job.custom_request_headers.get("X-Tenant"), Some(&json!("acme")));
    assert_eq!(job.payload["cluster_id"], "the-cluster", "the cluster id always wins");
    assert_eq!(job.payload["extra"], 1);
    assert_eq!(job.hook_event, "CHANNEL_CREATE");
    assert_eq!(job.account_id, tree.child);
    let other = jobs.iter().find(|job| job.hook_id == second.id).expect("second hook routed");
    assert_eq!((other.http_verb, other.retries, other.hook_event.as_str()), (HttpVerb::Get, 0, "all"));
    assert_ne!(job.event_id, other.event_id);
    assert!(other.custom_request_headers.is_empty() && other.custom_data.is_none());
}

#[test]
fn the_same_message_routed_again_gets_the_same_event_ids_and_another_message_other_ones() {
    let tree = Tree::new();
    let first = hook(&tree.child, "channel_create", json!({}));
    let second = hook(&tree.child, "all", json!({}));
    let index = HookIndex::build(&tree.accounts(), &[first.clone(), second.clone()]);
    let event = channel_event(&tree.child, "CHANNEL_CREATE", json!({}));
    let message = key();
    let ids = |key: &MessageKey| -> Vec<String> {
        let mut jobs = route(&event, &index, "cluster", key);
        jobs.sort_by(|left, right| left.hook_id.cmp(&right.hook_id));
        jobs.into_iter().map(|job| job.event_id).collect()
    };
    let once = ids(&message);
    assert_eq!(once.len(), 2);
    assert_eq!(ids(&message), once, "a redelivered message keeps its event ids");
    let elsewhere = ids(&key());
    assert!(elsewhere.iter().all(|id| !once.contains(id)), "another message gets other ids");
}

#[test]
fn the_callflow_webhook_goes_to_the_hook_its_message_carries() {
    let tree = Tree::new();
    let registered = hook(&tree.child, "notifications", json!({}));
    let index = HookIndex::build(&tree.accounts(), std::slice::from_ref(&registered));
    let body = json!({"Event-Category": "notification", "Event-Name": "webhook",
        "Hook": {"_id": "63877219205", "uri": "https://crm.example.com/hook", "http_verb": "get", "retries": 3,
                 "hook": "notifications", "pvt_account_id": tree.child,
                 "custom_data": {"source": "callflow"}},
        "Data": {"Caller-ID-Number": "+14085550199", "Call-ID": "abc"}});
    let event = KazooEvent::parse("notifications.webhook.callflow", &body).expect("callflow webhook parses");
    let jobs = route(&event, &index, "cluster", &key());
    assert_eq!(jobs.len(), 1, "registered hooks are not consulted");
    let job = &jobs[0];
    assert_ne!(job.hook_id, registered.id);
    assert_eq!(job.uri, "https://crm.example.com/hook");
    assert_eq!((job.http_verb, job.retries), (HttpVerb::Get, 3));
    assert_eq!(job.account_id, tree.child);
    let expected: Map<String, Value> = serde_json::from_value(
        json!({"caller_id_number": "+14085550199", "call_id": "abc", "source": "callflow", "cluster_id": "cluster"}),
    )
    .expect("expected payload");
    assert_eq!(serde_json::to_string(&job.payload).ok(), serde_json::to_string(&expected).ok());
}

#[test]
fn a_disabled_accounts_hooks_fire_neither_for_it_nor_for_its_descendants() {
    let tree = Tree::new();
    let own = hook(&tree.parent, "channel_create", json!({}));
    let inherited = hook(&tree.parent, "channel_create", json!({"include_subaccounts": true}));
    let mut index = HookIndex::build(&tree.accounts(), &[own.clone(), inherited.clone()]);
    let parent_event = channel_event(&tree.parent, "CHANNEL_CREATE", json!({}));
    let child_event = channel_event(&tree.child, "CHANNEL_CREATE", json!({}));
    assert_eq!(receivers(&index, &child_event), std::slice::from_ref(&inherited.id));

    let disabled = account(&tree.parent, &[&tree.master, &tree.reseller], json!({"enabled": false}));
    index.upsert_account(&disabled);
    assert!(receivers(&index, &parent_event).is_empty());
    assert!(receivers(&index, &child_event).is_empty());
    let rebuilt = HookIndex::build(&[disabled], &[own.clone(), inherited.clone()]);
    assert!(receivers(&rebuilt, &parent_event).is_empty(), "a full reload keeps it silent");

    index.upsert_account(&account(&tree.parent, &[&tree.master, &tree.reseller], json!({"enabled": true})));
    assert_eq!(receivers(&index, &parent_event).len(), 2);
    assert_eq!(receivers(&index, &child_event), [inherited.id]);
}
