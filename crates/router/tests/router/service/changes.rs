//! Keeping the index current: change notices, and the periodic reload for changes made without one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;
use webhooks_bus::Bus;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::notice::{Action, Change};
use webhooks_model::webhook::SecretChange;
use webhooks_storage::WebhookChange;
use webhooks_test_support::bus::{Backend, connect, eventually, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::{create_account, create_hook, hook_document};
use webhooks_test_support::test_matrix;

use super::{Jobs, RunningRouter, channel_event, notify, one_hook_store, publish, settings};

test_matrix!(
    buses;
    change_notices_add_disable_delete_and_reenable_hooks_within_a_second,
    a_periodic_reload_picks_up_hooks_changed_without_a_notice,
);

async fn change_notices_add_disable_delete_and_reenable_hooks_within_a_second(backend: Backend) {
    change_notice_scenario(backend, TestDatabase::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_notices_add_disable_delete_and_reenable_hooks_on_postgresql() {
    change_notice_scenario(Backend::InProcess, TestDatabase::postgres().await).await;
}

/// A sentinel hook receives every event, so each event yields a batch and the absence of a hook's
/// job in it is observable without waiting. Each notice must be applied within a second.
async fn change_notice_scenario(backend: Backend, database: TestDatabase) {
    let store = database.store().await;
    let parent_id = AccountId::generate();
    let parent = create_account(&store, &parent_id, None, json!({})).await;
    let account = AccountId::generate();
    create_account(&store, &account, Some(&parent), json!({})).await;
    let sentinel =
        create_hook(&store, &WebhookId::generate(), &account, &hook_document("channel_create", json!({}))).await;
    let prefix = unique_prefix("test-router");
    let bus = connect(backend, &prefix).await;
    let router = RunningRouter::start(&store, &bus, settings("cluster")).await;
    let mut jobs = Jobs::consume(&bus).await;
    let mut calls = 0;
    // Publishes one event and returns the hooks that received it.
    let mut receivers = async |bus: &Bus, jobs: &mut Jobs| -> HashSet<WebhookId> {
        calls += 1;
        let (routing_key, body) = channel_event(&account, "CHANNEL_CREATE", &format!("call-{calls}"));
        publish(bus, "callevt", &routing_key, body).await;
        let batch = jobs.next_batch().await;
        assert!(batch.jobs.iter().all(|job| job.payload["call_id"] == format!("call-{calls}")));
        batch.jobs.into_iter().map(|job| job.hook_id).collect()
    };
    // Publishes a notice and waits until the router applied it, within a second.
    let applied = async |bus: &Bus, change: Change, router: &RunningRouter| {
        let before = router.stats.changes();
        let published = Instant::now();
        notify(bus, &change).await;
        eventually("the change is applied", || async { router.stats.changes() > before }).await;
        assert!(published.elapsed() < Duration::from_secs(1), "{change:?} took {:?}", published.elapsed());
    };

    assert_eq!(receivers(&bus, &mut jobs).await, HashSet::from([sentinel.id.clone()]));

    // Created on the parent with include_subaccounts: it receives the sub-account's events.
    let inherited = WebhookId::generate();
    let document = hook_document("all", json!({"include_subaccounts": true}));
    let created = create_hook(&store, &inherited, &parent_id, &document).await;
    applied(
        &bus,
        Change::Webhook { action: Action::Created, id: inherited.clone(), account_id: parent_id.clone() },
        &router,
    )
    .await;
    assert_eq!(receivers(&bus, &mut jobs).await, HashSet::from([sentinel.id.clone(), inherited.clone()]));

    // Disabled by hand: it stops.
    let change = WebhookChange {
        hook: created.hook.clone(),
        enabled: false,
        include_subaccounts: true,
        disabled_reason: None,
        doc: created.doc.clone(),
        secret: SecretChange::Keep,
    };
    let disabled = store.update_webhook(&parent_id, &inherited, &created.revision, &change).await.expect("update");
    assert!(disabled.is_some());
    applied(
        &bus,
        Change::Webhook { action: Action::Edited, id: inherited.clone(), account_id: parent_id.clone() },
        &router,
    )
    .await;
    assert_eq!(receivers(&bus, &mut jobs).await, HashSet::from([sentinel.id.clone()]));

    // Auto-disabled sentinel, then the bulk re-enable of the parent's subtree brings it back.
    assert!(store.disable_webhook(&account, &sentinel.id, "too many failures").await.expect("disable"));
    applied(
        &bus,
        Change::Webhook { action: Action::Edited, id: sentinel.id.clone(), account_id: account.clone() },
        &router,
    )
    .await;
    let replacement =
        create_hook(&store, &WebhookId::generate(), &account, &hook_document("channel_create", json!({}))).await;
    applied(
        &bus,
        Change::Webhook { action: Action::Created, id: replacement.id.clone(), account_id: account.clone() },
        &router,
    )
    .await;
    assert_eq!(receivers(&bus, &mut jobs).await, HashSet::from([replacement.id.clone()]));
    assert_eq!(store.reenable_webhooks(&parent_id, true).await.expect("reenable"), 1);
    applied(&bus, Change::Reenabled { account_id: parent_id.clone(), descendants: true }, &router).await;
    assert_eq!(receivers(&bus, &mut jobs).await, HashSet::from([replacement.id.clone(), sentinel.id.clone()]));

    // Deleted: it stops.
    assert!(store.delete_webhook(&account, &replacement.id).await.expect("delete").is_some());
    applied(
        &bus,
        Change::Webhook { action: Action::Deleted, id: replacement.id.clone(), account_id: account.clone() },
        &router,
    )
    .await;
    assert_eq!(receivers(&bus, &mut jobs).await, HashSet::from([sentinel.id.clone()]));

    // A hook of a new sub-account receives events once both notices are in.
    let newcomer = AccountId::generate();
    create_account(&store, &newcomer, Some(&parent), json!({})).await;
    let newcomer_hook =
        create_hook(&store, &WebhookId::generate(), &newcomer, &hook_document("channel_create", json!({}))).await;
    applied(&bus, Change::Account { action: Action::Created, id: newcomer.clone() }, &router).await;
    applied(
        &bus,
        Change::Webhook { action: Action::Created, id: newcomer_hook.id.clone(), account_id: newcomer.clone() },
        &router,
    )
    .await;
    let (routing_key, body) = channel_event(&newcomer, "CHANNEL_CREATE", "newcomer-call");
    publish(&bus, "callevt", &routing_key, body).await;
    let batch = jobs.next_batch().await;
    assert_eq!(batch.jobs.iter().map(|job| job.hook_id.clone()).collect::<Vec<_>>(), vec![newcomer_hook.id.clone()]);

    // The account deleted: its hooks stop.
    assert!(store.delete_webhook(&newcomer, &newcomer_hook.id).await.expect("delete").is_some());
    assert!(store.delete_account(&newcomer).await.expect("delete account"));
    applied(&bus, Change::Account { action: Action::Deleted, id: newcomer.clone() }, &router).await;
    assert_eq!(receivers(&bus, &mut jobs).await, HashSet::from([sentinel.id.clone()]));
    router.stop().await;
}

async fn a_periodic_reload_picks_up_hooks_changed_without_a_notice(backend: Backend) {
    // Added, then deleted and disabled, each behind the router's back: the reload applies them to
    // the index in place.
    let (_database, store, account, sentinel) = one_hook_store().await;
    // More hooks than a reload page, so the reload reads several pages.
    let mut silent = Vec::new();
    let prefix = unique_prefix("test-router");
    let bus = connect(backend, &prefix).await;
    let mut fast = settings("cluster");
    fast.reload_interval = Duration::from_millis(100);
    fast.reload_page_size = 2;
    let router = RunningRouter::start(&store, &bus, fast).await;
    let mut jobs = Jobs::consume(&bus).await;
    for _ in 0..5 {
        silent.push(
            create_hook(&store, &WebhookId::generate(), &account, &hook_document("channel_create", json!({}))).await,
        );
    }
    let reloads = router.stats.reloads();
    eventually("two more reloads have run", || async { router.stats.reloads() >= reloads + 2 }).await;
    let (routing_key, body) = channel_event(&account, "CHANNEL_CREATE", "after-reload");
    publish(&bus, "callevt", &routing_key, body).await;
    let received: HashSet<WebhookId> = jobs.take(6).await.into_iter().map(|job| job.hook_id).collect();
    let mut expected: HashSet<WebhookId> = silent.iter().map(|hook| hook.id.clone()).collect();
    expected.insert(sentinel.id.clone());
    assert_eq!(received, expected);

    let (deleted, disabled) = (&silent[0], &silent[1]);
    assert!(store.delete_webhook(&account, &deleted.id).await.expect("delete").is_some());
    let change = WebhookChange {
        hook: disabled.hook.clone(),
        enabled: false,
        include_subaccounts: false,
        disabled_reason: None,
        doc: disabled.doc.clone(),
        secret: SecretChange::Keep,
    };
    assert!(store.update_webhook(&account, &disabled.id, &disabled.revision, &change).await.expect("update").is_some());
    let reloads = router.stats.reloads();
    eventually("two more reloads have run", || async { router.stats.reloads() >= reloads + 2 }).await;
    let (routing_key, body) = channel_event(&account, "CHANNEL_CREATE", "after-removals");
    publish(&bus, "callevt", &routing_key, body).await;
    let received: HashSet<WebhookId> = jobs.take(4).await.into_iter().map(|job| job.hook_id).collect();
    expected.remove(&deleted.id);
    expected.remove(&disabled.id);
    assert_eq!(received, expected);
    router.stop().await;
}
