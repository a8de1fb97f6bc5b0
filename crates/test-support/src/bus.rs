//! Buses for tests: the in-process one or the RabbitMQ server at `WEBHOOKS_TEST_AMQP_URL`
//! (default `amqp://guest:guest@127.0.0.1:5672/%2f`), each test on a topology prefix of its own
//! whose queues expire once unused, so tests neither see each other's messages nor leave queues
//! behind. Nothing here sleeps to wait for work: it polls with a deadline or waits with a timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;
use webhooks_bus::{Bus, Consumer, DISPATCH_ROUTING_KEY, Delivery, Outgoing, Topology};
use webhooks_model::job::{DeliveryJob, JobBatch};

/// How long a test waits for something before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Which bus a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The in-process bus: no broker.
    InProcess,
    /// The RabbitMQ server at [`amqp_url`].
    RabbitMq,
}

/// The broker tests use.
pub fn amqp_url() -> String {
    std::env::var("WEBHOOKS_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The vhost of the tests that declare quorum queues (see [`quorum_amqp_url`]); `make test`
/// creates it.
pub const QUORUM_VHOST: &str = "webhooks-quorum";

/// The broker of the tests that declare quorum queues: `WEBHOOKS_TEST_QUORUM_AMQP_URL`, default
/// the local RabbitMQ's [`QUORUM_VHOST`]. A vhost of their own because RabbitMQ 3.10 closes a
/// publisher's channel (`INTERNAL_ERROR`) when a quorum queue bound to the exchange it publishes
/// on is deleted as a message is routed to it: test queues expire while other tests publish on
/// Kazoo's shared exchanges, which a vhost keeps apart.
pub fn quorum_amqp_url() -> String {
    std::env::var("WEBHOOKS_TEST_QUORUM_AMQP_URL")
        .unwrap_or_else(|_| format!("amqp://guest:guest@127.0.0.1:5672/{QUORUM_VHOST}"))
}

/// A topology of its own for one test; unused queues vanish a minute after it.
pub fn topology(prefix: &str) -> Topology {
    let mut topology = Topology::new(prefix);
    topology.queue_expires = Some(Duration::from_secs(60));
    topology
}

/// A prefix no other test uses: `<what>-<random>`.
pub fn unique_prefix(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

/// A bus of `backend` on `prefix`. Each call makes a new one: on RabbitMQ a connection of its
/// own, like a separate node; in-process a separate broker (clone the bus to share one).
pub async fn connect(backend: Backend, prefix: &str) -> Bus {
    connect_to(backend, topology(prefix)).await
}

/// A bus of `backend` with `topology` (one of [`topology`]'s, changed): see [`connect`].
pub async fn connect_to(backend: Backend, topology: Topology) -> Bus {
    // `RUST_LOG=webhooks_router=debug` (or any crate) shows its logs for a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let url = match backend {
        Backend::InProcess => None,
        Backend::RabbitMq => Some(amqp_url()),
    };
    Bus::connect(url.as_deref(), topology).await.unwrap_or_else(|error| panic!("cannot connect the bus: {error}"))
}

/// Polls `condition` until it holds, failing the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The message of one job batch on the jobs exchange, as the router publishes it, written as the
/// JSON RabbitMQ carries even on the in-process bus, so consumers under test parse the wire form.
pub fn job_batch(bus: &Bus, jobs: Vec<DeliveryJob>) -> Outgoing {
    Outgoing::persistent(&bus.topology().jobs_exchange(), DISPATCH_ROUTING_KEY, JobBatch { jobs }.to_body())
}

/// Whether a message's routing key or body holds `text`.
fn mentions(routing_key: &str, body: &[u8], text: &str) -> bool {
    routing_key.contains(text) || body.windows(text.len().max(1)).any(|window| window == text.as_bytes())
}

/// Reads the messages of one queue, acknowledging each as it is taken.
pub struct Observer {
    consumer: Consumer,
}

impl Observer {
    /// Reads `queue`.
    pub async fn consume(bus: &Bus, queue: &str) -> Observer {
        Observer { consumer: bus.consume(queue, 100).await.expect("consume the queue") }
    }

    /// Reads a private queue bound to `exchange` with `routing_key`.
    pub async fn bind(bus: &Bus, exchange: &str, routing_key: &str) -> Observer {
        let queue = bus.private_queue(&[(exchange, routing_key.to_owned())]).await.expect("declare the observer queue");
        Self::consume(bus, &queue).await
    }

    /// The next message's routing key and body; fails after [`PATIENCE`].
    pub async fn next(&mut self) -> (String, Vec<u8>) {
        let delivery = self.next_delivery().await;
        (delivery.routing_key.clone(), delivery.body.to_vec())
    }

    /// The next message, acknowledged, with its headers; fails after [`PATIENCE`].
    pub async fn next_delivery(&mut self) -> Delivery {
        let delivery = tokio::time::timeout(PATIENCE, self.consumer.next())
            .await
            .expect("a message arrives in time")
            .expect("the consumer is open");
        delivery.ack().await.expect("acknowledge");
        delivery
    }

    /// The next message's routing key and JSON body; fails after [`PATIENCE`].
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> (String, T) {
        let (routing_key, body) = self.next().await;
        (routing_key, serde_json::from_slice(&body).expect("a JSON message"))
    }

    /// Whether no message arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.consumer.next()).await.is_err()
    }

    /// The next message whose routing key or body mentions `text` (an id of the test's own), as
    /// routing key and JSON body; the others are passed over: on RabbitMQ, Kazoo's exchanges
    /// carry the messages of every test running beside this one. Fails after [`PATIENCE`].
    pub async fn next_mentioning(&mut self, text: &str) -> (String, Value) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "no message mentioning {text} arrived in time");
            let (routing_key, body) = self.next().await;
            if mentions(&routing_key, &body, text) {
                return (routing_key, serde_json::from_slice(&body).expect("a JSON message"));
            }
        }
    }

    /// Whether no message mentioning `text` arrives within `wait` (others are passed over).
    pub async fn quiet_about(&mut self, text: &str, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Some(delivery)) = tokio::time::timeout_at(until, self.consumer.next()).await {
            delivery.ack().await.expect("acknowledge");
            if mentions(&delivery.routing_key, &delivery.body, text) {
                return false;
            }
        }
        true
    }
}
