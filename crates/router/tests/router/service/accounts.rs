//! Kazoo mode: an event of an account the index does not know yet waits a moment on the bus
//! while the account sync (played here by the test) is asked for the account; it is then routed
//! to its ancestors' hooks, or skipped when the account stays unknown.

use std::time::Duration;

use serde_json::json;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::notice::{Action, Change};
use webhooks_test_support::bus::{Backend, Observer, connect_to, eventually, topology, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::{create_account, create_hook, hook_document};
use webhooks_test_support::test_matrix;

use super::{Jobs, RunningRouter, call_ids, notify, publish_calls, settings};

test_matrix!(buses; an_event_of_an_account_not_known_yet_is_routed_once_the_account_sync_answers);

async fn an_event_of_an_account_not_known_yet_is_routed_once_the_account_sync_answers(backend: Backend) {
    let database = TestDatabase::sqlite().await;
    let store = database.store().await;
    let reseller = AccountId::generate();
    let reseller_account = create_account(&store, &reseller, None, json!({})).await;
    let hook = WebhookId::generate();
    let document = hook_document("channel_create", json!({"include_subaccounts": true}));
    create_hook(&store, &hook, &reseller, &document).await;

    let mut kazoo = topology(&unique_prefix("test-router-lookup"));
    kazoo.accounts_from_kazoo = true;
    let bus = connect_to(backend, kazoo).await;
    let router = RunningRouter::start(&store, &bus, settings("cluster")).await;
    let mut jobs = Jobs::consume(&bus).await;
    let mut lookups = Observer::consume(&bus, &bus.topology().kazoo_accounts_queue()).await;

    // Kazoo has just created a customer under the reseller; its notice has not come yet.
    let customer = AccountId::generate();
    publish_calls(backend, &bus, &customer, "new", 1).await;
    let (routing_key, _) = lookups.next_mentioning(customer.as_str()).await;
    assert_eq!(routing_key, bus.topology().account_lookup_routing_key(&customer));
    // The account sync reads it from Crossbar, stores it and announces it.
    create_account(&store, &customer, Some(&reseller_account), json!({})).await;
    notify(&bus, &Change::Account { action: Action::Edited, id: customer.clone() }).await;

    let routed = jobs.take(1).await;
    assert_eq!(routed[0].hook_id, hook, "the reseller's hook gets the customer's event");
    assert_eq!(call_ids(&routed), [("new-0".to_owned(), 1)].into());
    assert_eq!(router.stats.waiting(), 1);

    // An account nobody has: looked up once, its events skipped after their wait.
    let nobody = AccountId::generate();
    publish_calls(backend, &bus, &nobody, "nobody", 2).await;
    lookups.next_mentioning(nobody.as_str()).await;
    let stats = std::sync::Arc::clone(&router.stats);
    eventually("both events are skipped after their wait", || {
        let skipped = stats.skipped("unknown_account");
        async move { skipped == 2 }
    })
    .await;
    assert!(lookups.quiet_about(nobody.as_str(), Duration::from_millis(500)).await, "asked for once");
    assert!(jobs.queue.quiet_for(Duration::from_millis(200)).await, "no job for an account nobody has");
    assert_eq!(router.stats.waiting(), 3);
    router.stop().await;
}
