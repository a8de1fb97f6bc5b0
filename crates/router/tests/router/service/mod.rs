//! Integration tests of the running router, each on the in-process bus and on the RabbitMQ server at
//! `WEBHOOKS_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`), with a fresh SQLite
//! store (one case also on PostgreSQL). Every test uses its own topology prefix, with queues that
//! expire once unused, so tests neither see each other's messages nor leave queues behind.
//!
//! Nothing sleeps to wait for work: tests poll for a condition with a deadline ([`eventually`]) or
//! wait for the next message with a timeout.

mod accounts;
mod changes;
mod events;
mod numbers;

use std::collections::HashMap;
use std::sync::Arc;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webhooks_bus::{Bus, Outgoing};
use webhooks_model::event::call_event_routing_key;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::{DeliveryJob, JobBatch};
use webhooks_model::notice::Change;
use webhooks_model::trace::TRACE_PARENT_HEADER;
use webhooks_router::{Router, RouterError, RouterSettings, RouterStats};
use webhooks_storage::{Store, Webhook};
use webhooks_test_support::bus::{Backend, Observer, PATIENCE, amqp_url};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::{create_account, create_hook, hook_document};

/// A running router.
struct RunningRouter {
    stats: Arc<RouterStats>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), RouterError>>,
}

impl RunningRouter {
    /// Starts a router and returns once it is ready.
    async fn start(store: &Store, bus: &Bus, settings: RouterSettings) -> RunningRouter {
        let router = Router::start(store.clone(), bus.clone(), settings)
            .await
            .unwrap_or_else(|error| panic!("router does not start: {error}"));
        let stats = router.stats();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(router.run(shutdown.clone()));
        RunningRouter { stats, shutdown, task }
    }

    /// Cancels the router and waits until it has finished its batch and stopped.
    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task).await.expect("router stops in time");
        result.expect("router task does not panic").expect("router stops cleanly");
    }
}

/// Settings for tests: small prefetch so batches are visible, the fixtures' cluster id.
fn settings(cluster_id: &str) -> RouterSettings {
    let mut settings = RouterSettings::new(cluster_id);
    settings.prefetch = 50;
    settings
}

/// Reads job batches from the dispatch queue, acknowledging them.
struct Jobs {
    queue: Observer,
}

impl Jobs {
    async fn consume(bus: &Bus) -> Jobs {
        Jobs { queue: Observer::consume(bus, &bus.topology().dispatch_queue()).await }
    }

    /// The next batch; fails after [`PATIENCE`].
    async fn next_batch(&mut self) -> JobBatch {
        self.queue.next_json().await.1
    }

    /// Jobs until `count` have arrived.
    async fn take(&mut self, count: usize) -> Vec<DeliveryJob> {
        let mut jobs = Vec::new();
        while jobs.len() < count {
            jobs.extend(self.next_batch().await.jobs);
        }
        jobs
    }
}

/// Publishes a Kazoo message through the bus.
async fn publish(bus: &Bus, exchange: &str, routing_key: &str, body: Vec<u8>) {
    bus.publish(Outgoing::new(exchange, routing_key, body)).await.expect("publish");
}

/// Publishes Kazoo messages with a plain AMQP client, as Kazoo itself would.
async fn publish_with_lapin(messages: &[(String, String, Vec<u8>)]) {
    let untraced: Vec<_> = messages
        .iter()
        .map(|(exchange, routing_key, body)| (exchange.clone(), routing_key.clone(), body.clone(), None))
        .collect();
    publish_traced_with_lapin(&untraced).await;
}

/// Publishes messages with a plain AMQP client, each with its `traceparent` header if given, as
/// a publisher other than Kazoo may.
async fn publish_traced_with_lapin(messages: &[(String, String, Vec<u8>, Option<String>)]) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("lapin connects");
    let channel = connection.create_channel().await.expect("lapin channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    for (exchange, routing_key, body, trace_parent) in messages {
        let mut properties = BasicProperties::default().with_content_type("application/json".into());
        if let Some(trace_parent) = trace_parent {
            let mut headers = FieldTable::default();
            headers.insert(TRACE_PARENT_HEADER.into(), AMQPValue::LongString(LongString::from(trace_parent.as_str())));
            properties = properties.with_headers(headers);
        }
        channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("lapin publishes")
            .await
            .expect("lapin publish confirmed");
    }
    let _ = connection.close(200, "done".into()).await;
}

/// Publishes a change notice as the API does.
async fn notify(bus: &Bus, change: &Change) {
    bus.publish(Outgoing::change_notice(bus.topology(), change, "test-node")).await.expect("publish the notice");
}

/// A channel event of `account` with a unique call id: `(routing key, body)`.
fn channel_event(account: &AccountId, event_name: &str, call_id: &str) -> (String, Vec<u8>) {
    let body = json!({"Event-Category": "call_event", "Event-Name": event_name, "Call-ID": call_id,
        "Call-Direction": "inbound", "Custom-Channel-Vars": {"Account-ID": account}});
    (call_event_routing_key(event_name, call_id), body.to_string().into_bytes())
}

/// Publishes `count` CHANNEL_CREATE events of `account`, with call ids `<tag>-<n>`.
async fn publish_calls(backend: Backend, bus: &Bus, account: &AccountId, tag: &str, count: usize) {
    let messages: Vec<(String, String, Vec<u8>)> = (0..count)
        .map(|sequence| {
            let (routing_key, body) = channel_event(account, "CHANNEL_CREATE", &format!("{tag}-{sequence}"));
            ("callevt".to_owned(), routing_key, body)
        })
        .collect();
    match backend {
        Backend::RabbitMq => publish_with_lapin(&messages).await,
        Backend::InProcess => {
            for (exchange, routing_key, body) in messages {
                publish(bus, &exchange, &routing_key, body).await;
            }
        }
    }
}

/// The call ids of jobs, counted.
fn call_ids(jobs: &[DeliveryJob]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for job in jobs {
        let call_id = job.payload.get("call_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        *counts.entry(call_id).or_insert(0) += 1;
    }
    counts
}

/// An account with one hook receiving every CHANNEL_CREATE, in a fresh SQLite store.
async fn one_hook_store() -> (TestDatabase, Store, AccountId, Webhook) {
    let database = TestDatabase::sqlite().await;
    let store = database.store().await;
    let account = AccountId::generate();
    create_account(&store, &account, None, json!({})).await;
    let hook = create_hook(&store, &WebhookId::generate(), &account, &hook_document("channel_create", json!({}))).await;
    (database, store, account, hook)
}
