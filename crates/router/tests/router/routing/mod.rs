//! Pure routing tests: the example bus messages of `crates/model/fixtures/amqp-events` route to
//! their hook with exactly the expected payload; the index follows changes; jobs carry their hook's
//! settings and event ids. A table of matching cases covers the account tree, `include_subaccounts`,
//! `all` hooks and every per-hook filter (`matching`).

mod matching;

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use webhooks_model::event::KazooEvent;
use webhooks_model::hooks::HookType;
use webhooks_model::ids::{AccountId, EventId, MessageKey, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::payload::{Finishing, PayloadCompat};
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_router::index::{HookIndex, IndexedHook};
use webhooks_router::route::{RouteContext, route, route_into};
use webhooks_storage::{Account, Webhook};
use webhooks_test_support::fixtures::amqp_event_fixtures;
use webhooks_test_support::store::{hook_document, stored_webhook};

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

fn account_id(text: &str) -> AccountId {
    text.parse().expect("fixture account id")
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
    stored_webhook(&WebhookId::generate(), owner, &hook_document(hook_type, extra))
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
    index.matches(event).into_iter().map(IndexedHook::id).collect()
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
        let index = HookIndex::build(&accounts, &[stored_webhook(&hook_id, &owner, hook_doc)]);

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
        assert_eq!(job.target.uri.as_str(), hook_doc["uri"], "{name}");
        assert_eq!(job.target.http_verb.as_str().to_ascii_uppercase(), request["method"], "{name}");
        assert_eq!(Value::from(job.target.format.as_str()), hook_doc["format"], "{name}");
        assert_eq!(
            job.hook_event,
            event.attempt_hook_event(hook_doc["hook"].as_str().and_then(HookType::parse).expect("hook type")),
            "{name}"
        );
        assert_eq!(job.custom_data.as_ref(), hook_doc["custom_data"].as_object(), "{name}");
        assert_eq!(job.attempt, 0);
        assert!(job.event_id.as_str().parse::<WebhookId>().is_ok(), "{name}: event id has the id shape");
    }
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
    assert_eq!((job.target.http_verb, job.target.format, job.target.retries), (HttpVerb::Put, Format::FormData, 4));
    assert_eq!(
        job.target.custom_request_headers.as_ref().and_then(|headers| headers.get("X-Tenant")),
        Some(&json!("acme"))
    );
    assert_eq!(job.payload["cluster_id"], "the-cluster", "the cluster id always wins");
    assert_eq!(job.payload["extra"], 1);
    assert_eq!(job.hook_event, "CHANNEL_CREATE");
    assert_eq!(job.account_id, tree.child);
    let other = jobs.iter().find(|job| job.hook_id == second.id).expect("second hook routed");
    assert_eq!((other.target.http_verb, other.target.retries, other.hook_event.as_str()), (HttpVerb::Get, 0, "all"));
    assert_ne!(job.event_id, other.event_id);
    assert!(other.target.custom_request_headers.is_none() && other.custom_data.is_none());
}

#[test]
fn the_same_message_routed_again_gets_the_same_event_ids_and_another_message_other_ones() {
    let tree = Tree::new();
    let first = hook(&tree.child, "channel_create", json!({}));
    let second = hook(&tree.child, "all", json!({}));
    let index = HookIndex::build(&tree.accounts(), &[first.clone(), second.clone()]);
    let event = channel_event(&tree.child, "CHANNEL_CREATE", json!({}));
    let message = key();
    let ids = |key: &MessageKey| -> Vec<EventId> {
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
    assert_eq!(job.target.uri.as_str(), "https://crm.example.com/hook");
    assert_eq!((job.target.http_verb, job.target.retries), (HttpVerb::Get, 3));
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

/// Kazoo 4.3 merged a hook's `custom_data` whole: its `type` and `action` reach the payload, the
/// hook's `action: all` over the event's own (`object_doc_edited_user`), and a notification's
/// `type` after the hook's other keys (`notification_voicemail_new`).
#[test]
fn kazoo_4_3_payloads_carry_custom_datas_type_and_action() {
    let fixtures: HashMap<String, Value> = amqp_event_fixtures().into_iter().collect();
    let route_as_4_3 = |name: &str| {
        let fixture = &fixtures[name];
        let context = &fixture["context"];
        let tree: Vec<AccountId> = context["account_tree"]
            .as_array()
            .expect("tree")
            .iter()
            .map(|id| account_id(id.as_str().expect("id")))
            .collect();
        let mut accounts: Vec<Account> = tree
            .iter()
            .enumerate()
            .map(|(depth, id)| account(id, &tree[..depth].iter().collect::<Vec<_>>(), json!({})))
            .collect();
        let event_account = account_id(context["account_id"].as_str().expect("account"));
        accounts.push(account(&event_account, &tree.iter().collect::<Vec<_>>(), json!({})));
        let hook = &fixture["hook"];
        let hook_id: WebhookId = hook["id"].as_str().expect("hook id").parse().expect("hook id shape");
        let owner = account_id(hook["pvt_account_id"].as_str().expect("owner"));
        let index = HookIndex::build(&accounts, &[stored_webhook(&hook_id, &owner, hook)]);
        let event = KazooEvent::parse(fixture["routing_key"].as_str().expect("key"), &fixture["body"]).expect("parses");
        let cluster_id = context["cluster_id"].as_str().expect("cluster id");
        let context = RouteContext {
            finishing: Finishing { cluster_id, compat: PayloadCompat::Kazoo43 },
            ..RouteContext::new(cluster_id)
        };
        let mut jobs = Vec::new();
        route_into(&event, &key(), &index, &context, 0, &mut jobs);
        let [job] = jobs.try_into().expect("one job");
        (serde_json::to_value(&job.payload).expect("a payload"), fixture["expected_http_payload"].clone())
    };

    let (object, mut expected) = route_as_4_3("object_doc_edited_user.json");
    expected["action"] = json!("all");
    assert_eq!(object.to_string(), expected.to_string(), "key order included");

    let (notification, master) = route_as_4_3("notification_voicemail_new.json");
    let mut expected = master.as_object().cloned().expect("an object");
    let cluster_id = expected.shift_remove("cluster_id").expect("a cluster id");
    // Kazoo's merge appends custom data's keys in reverse: `crm` is there already, `type` comes last.
    expected.insert("type".into(), json!("voicemail_new"));
    expected.insert("cluster_id".into(), cluster_id);
    assert_eq!(notification.to_string(), Value::Object(expected).to_string(), "key order included");
}
