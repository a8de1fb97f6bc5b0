//! With Kazoo's CouchDB (a `pouchdb-server` seeded with Kazoo's number documents), a call event
//! naming no account is routed to the account its dialled number belongs to; a number no account
//! has in service is skipped; a change to a number's document, announced as Kazoo announces it,
//! is followed.

use std::time::Duration;

use serde_json::json;
use webhooks_bus::Outgoing;
use webhooks_model::event::call_event_routing_key;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_storage::couch::CouchDb;
use webhooks_test_support::bus::{Backend, connect_to, eventually, topology, unique_prefix};
use webhooks_test_support::couch::{CouchStandIn, couch_fixtures};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::{create_account, create_hook, hook_document};
use webhooks_test_support::test_matrix;

use super::{Jobs, RunningRouter, call_ids, publish, settings};

test_matrix!(buses; a_call_naming_no_account_goes_to_the_owner_of_its_dialled_number);

/// A CHANNEL_CREATE whose channel variables name no account, dialled to `number`.
async fn call_to(bus: &webhooks_bus::Bus, number: &str, call_id: &str) {
    let body = json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": call_id,
        "Call-Direction": "inbound", "Request": format!("{number}@10.0.0.11"), "Custom-Channel-Vars": {}});
    publish(bus, "callevt", &call_event_routing_key("CHANNEL_CREATE", call_id), body.to_string().into_bytes()).await;
}

async fn a_call_naming_no_account_goes_to_the_owner_of_its_dialled_number(backend: Backend) {
    let database = TestDatabase::sqlite().await;
    let store = database.store().await;
    // The fixtures' numbers belong to sub1; another account takes one over later.
    let sub1: AccountId = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("an id");
    let other = AccountId::generate();
    let mut hooks = Vec::new();
    for account in [&sub1, &other] {
        create_account(&store, account, None, json!({})).await;
        let hook = WebhookId::generate();
        create_hook(&store, &hook, account, &hook_document("channel_create", json!({}))).await;
        hooks.push(hook);
    }
    let couch = CouchStandIn::start().await;
    let numbers = couch_fixtures("numbers");
    for (_, doc) in &numbers {
        couch.put(doc["pvt_db_name"].as_str().expect("a numbers database"), doc).await;
    }

    let mut kazoo = topology(&unique_prefix("test-router-numbers"));
    kazoo.kazoo_couch = true;
    let bus = connect_to(backend, kazoo).await;
    let mut router_settings = settings("cluster");
    router_settings.numbers = Some(CouchDb::new(couch.url()).expect("a CouchDB url"));
    let router = RunningRouter::start(&store, &bus, router_settings).await;
    let mut jobs = Jobs::consume(&bus).await;

    // Dialled without `+1`, as a carrier may send it.
    call_to(&bus, "4155550100", "dialled-1").await;
    let routed = jobs.take(1).await;
    assert_eq!((&routed[0].hook_id, &routed[0].account_id), (&hooks[0], &sub1));
    assert_eq!(routed[0].payload.get("account_id").and_then(|id| id.as_str()), Some(sub1.as_str()));

    // A released number, and one Kazoo does not have: skipped.
    call_to(&bus, "+14155559876", "released").await;
    call_to(&bus, "+19995550000", "unknown").await;
    let stats = std::sync::Arc::clone(&router.stats);
    eventually("both calls are skipped", || {
        let skipped = stats.skipped("unknown_number");
        async move { skipped == 2 }
    })
    .await;

    // Kazoo moves the number to the other account, and says so.
    let (_, mut moved) = numbers.into_iter().find(|(name, _)| name == "%2B14155550100").expect("the number");
    moved["pvt_assigned_to"] = json!(other.as_str());
    couch.put("numbers%2F%2B1415", &moved).await;
    let notice = json!({"ID": "+14155550100", "Type": "number", "Database": "numbers%2F%2B1415",
        "Event-Category": "configuration", "Event-Name": "doc_edited", "App-Name": "datamgr"});
    let key = "doc_edited.numbers%2F%2B1415.number.%2B14155550100";
    bus.publish(Outgoing::new("configuration", key, notice.to_string())).await.expect("announced");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let call = format!("after-move-{attempt}");
        call_to(&bus, "+14155550100", &call).await;
        let routed = jobs.take(1).await;
        assert_eq!(call_ids(&routed).get(&call), Some(&1));
        if routed[0].account_id == other {
            assert_eq!(routed[0].hook_id, hooks[1]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the notice was not followed");
    }
    router.stop().await;
}
