//! The dispatcher end to end: jobs published on the bus (in-process and RabbitMQ), callouts to
//! real HTTP receivers on 127.0.0.1, attempts and failure counts in real databases (SQLite and
//! PostgreSQL). Tests poll for conditions; none sleeps to wait for work.

mod callouts;
mod disabling;
mod retries;
mod service;
mod signing;

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webhooks_bus::Bus;
use webhooks_dispatcher::{DispatcherError, DispatcherSettings};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_storage::{PageRequest, Store};
use webhooks_test_support::bus::{Backend, PATIENCE, connect, eventually, job_batch, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::{create_account, create_hook};

/// A database, a bus and an account with hooks.
struct World {
    /// Kept for its lifetime: dropped, the database goes.
    _database: TestDatabase,
    store: Store,
    bus: Bus,
    prefix: String,
    account: AccountId,
}

impl World {
    /// The in-process bus over SQLite (one process), or RabbitMQ over PostgreSQL (production).
    async fn new(backend: Backend) -> World {
        let database = match backend {
            Backend::InProcess => TestDatabase::sqlite().await,
            Backend::RabbitMq => TestDatabase::postgres().await,
        };
        let store = database.store().await;
        let prefix = unique_prefix("test-dispatcher");
        let bus = connect(backend, &prefix).await;
        let account = AccountId::generate();
        create_account(&store, &account, None, json!({})).await;
        World { _database: database, store, bus, prefix, account }
    }

    /// Stores an enabled hook calling `uri` and returns the job template of its deliveries.
    async fn hook(&self, uri: &str, verb: HttpVerb, format: Format, retries: u8) -> DeliveryJob {
        let id = WebhookId::generate();
        let doc = json!({"name": "test hook", "uri": uri, "hook": "object", "http_verb": verb.as_str(),
                         "format": format.as_str(), "retries": retries});
        create_hook(&self.store, &id, &self.account, &doc).await;
        DeliveryJob {
            event_id: random_event_id(),
            hook_id: id,
            account_id: self.account.clone(),
            hook_event: "object".into(),
            uri: uri.to_owned(),
            http_verb: verb,
            format,
            retries,
            attempt: 0,
            custom_request_headers: Map::new(),
            custom_data: None,
            payload: json!({"id": "a1", "action": "doc_created", "type": "user"})
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into(),
            published_at_ms: 0,
            test: false,
            trace_parent: None,
        }
    }

    /// Publishes `jobs` as one batch, as the router does.
    async fn publish(&self, jobs: Vec<DeliveryJob>) {
        publish_batch(&self.bus, jobs).await;
    }

    /// A dispatcher on this world's store and bus.
    async fn dispatcher(&self, settings: DispatcherSettings) -> RunningDispatcher {
        RunningDispatcher::start(&self.store, &self.bus, settings).await
    }

    /// The attempt records of `hook`, oldest first.
    async fn attempts(&self, hook: &WebhookId) -> Vec<Map<String, Value>> {
        attempts(&self.store, &self.account, hook).await
    }

    /// Waits until `hook` has `count` attempt records; returns them oldest first.
    async fn wait_for_attempts(&self, hook: &WebhookId, count: usize) -> Vec<Map<String, Value>> {
        eventually(&format!("{count} attempts are recorded"), || async { self.attempts(hook).await.len() >= count })
            .await;
        self.attempts(hook).await
    }

    /// Whether `hook` is enabled, and its disable reason.
    async fn hook_state(&self, hook: &WebhookId) -> (bool, Option<String>) {
        let found = self.store.webhook(&self.account, hook).await.expect("read the hook").expect("the hook exists");
        (found.enabled, found.disabled_reason)
    }
}

/// Publishes one job batch to the jobs exchange.
async fn publish_batch(bus: &Bus, jobs: Vec<DeliveryJob>) {
    bus.publish(job_batch(bus, jobs)).await.expect("publish the batch");
}

/// The attempt records of `hook` of `account`, oldest first.
async fn attempts(store: &Store, account: &AccountId, hook: &WebhookId) -> Vec<Map<String, Value>> {
    let page = PageRequest { ascending: true, ..PageRequest::default() };
    let mut found = store.list_attempts(account, Some(hook), 0, i64::MAX, &page).await.expect("list attempts").items;
    // Records of one second share `created`; the attempt number orders them.
    found.sort_by_key(|attempt| (attempt.doc.get("attempt").and_then(Value::as_u64), attempt.created));
    found.into_iter().map(|attempt| attempt.doc).collect()
}

/// A Kazoo-like event id: 10 lowercase hex characters.
fn random_event_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// Settings for tests: callouts to 127.0.0.1 allowed, short retry delays, every attempt logged.
fn settings() -> DispatcherSettings {
    DispatcherSettings {
        allow_private_targets: true,
        log_successful_attempts: true,
        retry_delays: vec![Duration::from_millis(200), Duration::from_millis(400)],
        retry_jitter: 0.1,
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        prefetch: 20,
        drain_timeout: Duration::from_secs(10),
        node: "webhooks-dispatcher@test".into(),
        ..DispatcherSettings::default()
    }
}

/// A running dispatcher.
struct RunningDispatcher {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), DispatcherError>>,
}

impl RunningDispatcher {
    async fn start(store: &Store, bus: &Bus, settings: DispatcherSettings) -> RunningDispatcher {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(webhooks_dispatcher::run(
            store.clone(),
            bus.clone(),
            settings,
            webhooks_dispatcher::DispatcherMetrics::default(),
            shutdown.clone(),
        ));
        RunningDispatcher { shutdown, task }
    }

    /// Stops the dispatcher and waits until it has drained.
    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task).await.expect("the dispatcher stops in time");
        result.expect("the dispatcher does not panic").expect("the dispatcher stops cleanly");
    }
}
