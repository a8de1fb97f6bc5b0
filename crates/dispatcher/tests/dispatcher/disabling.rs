//! Auto-disabling: a gone endpoint, the failure threshold and its limits, and the failure counts
//! behind them.

use std::time::Duration;

use serde_json::json;
use webhooks_dispatcher::{DispatcherSettings, GONE, TOO_MANY_FAILURES};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::notice::{Action, Change};
use webhooks_model::retry::FailureLimits;
use webhooks_model::time::unix_millis;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_test_support::bus::{Backend, Observer, connect, eventually};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::receiver::{Receiver, Reply};
use webhooks_test_support::test_matrix;

use crate::{RunningDispatcher, World, publish_batch, random_event_id, settings};

test_matrix!(
    buses;
    a_gone_endpoint_disables_its_hook_at_once_and_is_announced,
    the_failure_threshold_disables_the_hook_and_announces_it_once,
);

test_matrix!(
    databases;
    failure_counts_are_windowed_shared_and_cleared,
);

async fn a_gone_endpoint_disables_its_hook_at_once_and_is_announced(backend: Backend) {
    let world = World::new(backend).await;
    let mut changes = Observer::bind(&world.bus, "configuration", "doc_edited.webhooks.webhook.*").await;
    let mut notifications = Observer::bind(&world.bus, "notifications", "notifications.webhook.disabled").await;
    let receiver = Receiver::answering(410).await;
    let dispatcher = world.dispatcher(settings()).await;
    let job = world.hook(&receiver.url("/gone"), HttpVerb::Put, Format::Json, 4).await;
    world.publish(vec![job.clone()]).await;
    let recorded = world.wait_for_attempts(&job.hook_id, 1).await;
    assert_eq!((&recorded[0]["resp_status_code"], &recorded[0]["retries_left"]), (&json!("410"), &json!(0)));
    assert_eq!(world.hook_state(&job.hook_id).await, (false, Some(GONE.to_owned())));
    let (_, notice) = changes.next_mentioning(job.hook_id.as_str()).await;
    assert_eq!(
        Change::parse(&notice),
        Ok(Change::Webhook { action: Action::Edited, id: job.hook_id.clone(), account_id: world.account.clone() })
    );
    let (routing_key, notification) = notifications.next_mentioning(job.hook_id.as_str()).await;
    assert_eq!(routing_key, "notifications.webhook.disabled");
    assert_eq!(notification["Hook-ID"], job.hook_id.as_str());
    // No retry although four were allowed.
    assert_eq!(receiver.requests().len(), 1);
    dispatcher.stop().await;
}

async fn the_failure_threshold_disables_the_hook_and_announces_it_once(backend: Backend) {
    let world = World::new(backend).await;
    let mut changes = Observer::bind(&world.bus, "configuration", "doc_edited.webhooks.webhook.*").await;
    let mut notifications = Observer::bind(&world.bus, "notifications", "notifications.webhook.disabled").await;
    let receiver = Receiver::answering(503).await;
    let limits = FailureLimits { threshold: 4, window: Duration::from_secs(60) };
    let dispatcher = world.dispatcher(DispatcherSettings { failure_limits: limits, ..settings() }).await;
    let template = world.hook(&receiver.url("/down"), HttpVerb::Post, Format::Json, 0).await;
    // Six events for the hook; the fourth failure disables it.
    let jobs: Vec<_> = (0..6).map(|_| DeliveryJob { event_id: random_event_id(), ..template.clone() }).collect();
    for job in jobs {
        world.publish(vec![job]).await;
    }
    eventually("the hook is disabled", || async { !world.hook_state(&template.hook_id).await.0 }).await;
    assert_eq!(world.hook_state(&template.hook_id).await.1.as_deref(), Some(TOO_MANY_FAILURES));
    let (_, notification) = notifications.next_mentioning(template.hook_id.as_str()).await;
    assert_eq!(
        notification.as_object().map(|fields| fields.keys().cloned().collect::<Vec<_>>()),
        Some(
            ["Account-ID", "Hook-ID", "Event-Category", "Event-Name", "App-Name", "App-Version", "Node", "Msg-ID"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(notification["Account-ID"], world.account.as_str());
    assert_eq!(notification["Hook-ID"], template.hook_id.as_str());
    assert_eq!(notification["Event-Name"], "webhook_disabled");
    assert_eq!(notification["Event-Category"], "notification");
    assert_eq!(notification["Node"], "webhooks-dispatcher@test");
    let (_, notice) = changes.next_mentioning(template.hook_id.as_str()).await;
    assert_eq!(notice["ID"], template.hook_id.as_str());
    // Disabled once, announced once, and later jobs of the hook are dropped.
    assert!(notifications.quiet_about(template.hook_id.as_str(), Duration::from_millis(300)).await);
    let recorded = world.attempts(&template.hook_id).await;
    assert!(recorded.len() >= 4 && recorded.len() <= 6, "{} attempts", recorded.len());
    assert!(receiver.requests().len() <= 6);
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_share_one_failure_count() {
    // Two dispatchers, each with its own connection, queue and database pool, on one database:
    // each sees only half of the failures, so only a shared count reaches the threshold.
    let world = World::new(Backend::RabbitMq).await;
    let mut notifications = Observer::bind(&world.bus, "notifications", "notifications.webhook.disabled").await;
    let other_prefix = format!("{}-b", world.prefix);
    let other_bus = connect(Backend::RabbitMq, &other_prefix).await;
    let receiver = Receiver::answering(500).await;
    let limits = FailureLimits { threshold: 4, window: Duration::from_secs(60) };
    let shared = DispatcherSettings { failure_limits: limits, ..settings() };
    let first = world.dispatcher(shared.clone()).await;
    let second = RunningDispatcher::start(&world.store, &other_bus, shared).await;
    let template = world.hook(&receiver.url("/shared"), HttpVerb::Post, Format::Json, 0).await;
    for round in 0..2 {
        for bus in [&world.bus, &other_bus] {
            let job = DeliveryJob { event_id: random_event_id(), ..template.clone() };
            publish_batch(bus, vec![job]).await;
        }
        world.wait_for_attempts(&template.hook_id, 2 * (round + 1)).await;
    }
    eventually("the hook is disabled", || async { !world.hook_state(&template.hook_id).await.0 }).await;
    assert_eq!(receiver.requests().len(), 4);
    let (_, notification) = notifications.next_mentioning(template.hook_id.as_str()).await;
    assert_eq!(notification["Hook-ID"], template.hook_id.as_str());
    assert!(notifications.quiet_about(template.hook_id.as_str(), Duration::from_millis(300)).await, "announced once");
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_clears_the_failure_count() {
    let world = World::new(Backend::InProcess).await;
    // Fails, fails, succeeds, fails, fails: never three failures in a row.
    let receiver = Receiver::start(|_, seen| if seen == 2 { Reply::status(200) } else { Reply::status(500) }).await;
    let limits = FailureLimits { threshold: 3, window: Duration::from_secs(60) };
    let dispatcher = world.dispatcher(DispatcherSettings { failure_limits: limits, ..settings() }).await;
    let template = world.hook(&receiver.url("/mixed"), HttpVerb::Post, Format::Json, 0).await;
    for sent in 1..=5 {
        world.publish(vec![DeliveryJob { event_id: random_event_id(), ..template.clone() }]).await;
        world.wait_for_attempts(&template.hook_id, sent).await;
    }
    assert!(world.hook_state(&template.hook_id).await.0, "still enabled");
    let count = world.store.failure_count(&template.hook_id, unix_millis(), limits.window).await.expect("count");
    assert_eq!(count, 2);
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_own_failure_limits_override_the_system_ones() {
    let world = World::new(Backend::InProcess).await;
    let account = world.store.account(&world.account).await.expect("read").expect("the account");
    let doc = json!({"webhooks": {"attempt_failure_count": 2, "attempt_failure_expiry_ms": 60_000}});
    world
        .store
        .update_account(&world.account, &account.name, doc.as_object().expect("an object"))
        .await
        .expect("update the account");
    // The system threshold (6) is never reached: the account's 2 applies.
    two_failures_disable_a_hook(&world).await;
}

/// With limits of two failures in force, a hook failing twice is disabled.
async fn two_failures_disable_a_hook(world: &World) {
    let receiver = Receiver::answering(500).await;
    let dispatcher = world.dispatcher(settings()).await;
    let template = world.hook(&receiver.url("/strict"), HttpVerb::Post, Format::Json, 0).await;
    for sent in 1..=2 {
        world.publish(vec![DeliveryJob { event_id: random_event_id(), ..template.clone() }]).await;
        world.wait_for_attempts(&template.hook_id, sent).await;
    }
    eventually("the hook is disabled", || async { !world.hook_state(&template.hook_id).await.0 }).await;
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_system_failure_limits_override_the_configured_ones() {
    let world = World::new(Backend::InProcess).await;
    let stored = FailureLimits { threshold: 2, window: Duration::from_secs(60) };
    world.store.set_system_failure_limits(stored).await.expect("stored");
    // The configured threshold (6) is never reached: the stored 2 applies.
    two_failures_disable_a_hook(&world).await;
}

async fn failure_counts_are_windowed_shared_and_cleared(database: TestDatabase) {
    let store = database.store().await;
    let account = AccountId::generate();
    let hook = WebhookId::generate();
    let other = WebhookId::generate();
    let window = Duration::from_secs(60);
    let mut counts = Vec::new();
    for at in [1_000, 2_000, 3_000] {
        counts.push(store.record_failures(&account, &hook, 1, at, window).await.expect("count"));
    }
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(store.record_failures(&account, &other, 1, 3_000, window).await.expect("count"), 1);
    // Past the window opened by the first failure, counting starts over.
    assert_eq!(store.record_failures(&account, &hook, 1, 61_001, window).await.expect("count"), 1);
    assert_eq!(store.failure_count(&hook, 61_002, window).await.expect("count"), 1);
    assert_eq!(store.failure_count(&hook, 200_000, window).await.expect("count"), 0);
    // Concurrent failures are all counted.
    let concurrent = (0..20).map(|_| {
        let (store, account, hook) = (store.clone(), account.clone(), hook.clone());
        tokio::spawn(async move { store.record_failures(&account, &hook, 1, 62_000, window).await.expect("count") })
    });
    let mut seen = futures_util::future::join_all(concurrent)
        .await
        .into_iter()
        .map(|result| result.expect("task"))
        .collect::<Vec<_>>();
    seen.sort_unstable();
    assert_eq!(seen, (2..=21).collect::<Vec<u64>>());
    store.clear_failures(&hook).await.expect("clear");
    assert_eq!(store.failure_count(&hook, 62_000, window).await.expect("count"), 0);
    assert_eq!(store.failure_count(&other, 3_000, window).await.expect("count"), 1);
    // Several failures counted at once add up, and open a window with their count.
    assert_eq!(store.record_failures(&account, &other, 4, 3_500, window).await.expect("count"), 5);
    assert_eq!(store.record_failures(&account, &hook, 3, 63_000, window).await.expect("count"), 3);
    store.clear_failures(&hook).await.expect("clear");
    store.clear_failures_of(std::slice::from_ref(&other)).await.expect("clear");
    assert_eq!(store.failure_count(&other, 3_500, window).await.expect("count"), 0);
    store.record_failures(&account, &other, 1, 5_000, window).await.expect("count");
    assert_eq!(store.prune_failures(6_000).await.expect("prune"), 1);
}
