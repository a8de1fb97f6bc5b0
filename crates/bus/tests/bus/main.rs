//! The bus's behaviour, run twice: against RabbitMQ (`WEBHOOKS_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`) and against the in-process twin.
//!
//! Every test gets its own topology prefix, and its queues expire a minute after use, so runs
//! leave nothing behind on the broker. Nothing sleeps: every wait is bounded by [`WAIT`].

mod failures;
mod jobs;
mod kazoo;
mod queue_types;

use std::future::Future;
use std::time::Duration;

use webhooks_bus::{Bus, Consumer, Delivery, Outgoing};
use webhooks_test_support::bus::{Backend, connect, unique_prefix};

/// The longest any single step may take.
const WAIT: Duration = Duration::from_secs(15);

/// A bus of `backend` on a topology no other test uses, whose queues vanish after the test.
async fn new_bus(backend: Backend) -> Bus {
    within(connect(backend, &unique_prefix("test-bus"))).await
}

/// A second handle on the same broker: a new connection on AMQP, a clone in-process (two
/// in-process connects are two separate brokers).
async fn second_handle(backend: Backend, bus: &Bus) -> Bus {
    match backend {
        Backend::RabbitMq => within(connect(backend, &bus.topology().prefix)).await,
        Backend::InProcess => bus.clone(),
    }
}

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.expect("finished in time")
}

/// The next delivery, which must come.
async fn next(consumer: &mut Consumer) -> Delivery {
    within(consumer.next()).await.expect("the consumer delivers")
}

/// A token unique to one test, for the routing keys and bodies it sends to Kazoo's exchanges.
fn unique_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The next delivery whose body contains `token`. Kazoo's exchanges are shared by every test
/// (and every topology) on the broker, so a router queue also receives other tests' events:
/// those are acknowledged and skipped.
async fn next_with(consumer: &mut Consumer, token: &str) -> Delivery {
    within(async {
        loop {
            let delivery = consumer.next().await.expect("the consumer delivers");
            if text(&delivery).contains(token) {
                return delivery;
            }
            delivery.ack().await.expect("ack another test's message");
        }
    })
    .await
}

/// A job for the dispatch queue.
fn job(body: &str) -> Outgoing {
    let topology_free = Outgoing::new("", "", body.to_owned());
    Outgoing { persistent: true, ..topology_free }
}

/// A job addressed through `bus`'s jobs exchange.
fn job_on(bus: &Bus, body: &str) -> Outgoing {
    let topology = bus.topology();
    Outgoing {
        exchange: topology.jobs_exchange(),
        routing_key: topology.dispatch_routing_key().to_owned(),
        ..job(body)
    }
}

/// A body as text.
fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.body).into_owned()
}
