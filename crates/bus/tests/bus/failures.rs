//! What goes wrong: unroutable jobs, missing exchanges and queues, names too long, a closed bus,
//! a connection the broker closes, and one cut under deliveries being settled.

use std::collections::BTreeSet;

use webhooks_bus::{Bus, BusError, Outgoing};
use webhooks_test_support::bus::{Backend, amqp_url};
use webhooks_test_support::proxy::{Proxy, via};
use webhooks_test_support::test_matrix;

use crate::{job_on, new_bus, next, text, within};

/// The broker tests use, as the default test URL names it; a proxy forwards to it.
const RABBITMQ: &str = "127.0.0.1:5672";

test_matrix!(
    buses;
    a_job_that_no_queue_receives_is_refused_as_unroutable,
    publishing_to_a_missing_exchange_fails_and_the_bus_carries_on,
    a_queue_that_does_not_exist_cannot_be_consumed_or_measured,
    a_routing_key_longer_than_amqp_allows_is_an_error_not_a_panic,
    closing_the_bus_ends_its_consumers,
);

async fn a_job_that_no_queue_receives_is_refused_as_unroutable(backend: Backend) {
    let bus = new_bus(backend).await;
    let lost = Outgoing { routing_key: "nowhere".to_owned(), ..job_on(&bus, "lost") };
    let result = within(bus.publish(lost)).await;
    assert!(matches!(result, Err(BusError::Unroutable { .. })), "got {result:?}");
    // The bus is still usable afterwards.
    within(bus.publish(job_on(&bus, "found"))).await.expect("publish");
    assert_eq!(within(bus.queue_depth(&bus.topology().dispatch_queue())).await.expect("depth"), 1);
}

async fn publishing_to_a_missing_exchange_fails_and_the_bus_carries_on(backend: Backend) {
    let bus = new_bus(backend).await;
    let nowhere = Outgoing::new(&format!("{}.missing", bus.topology().prefix), "dispatch", "{}");
    let result = within(bus.publish(nowhere)).await;
    assert!(matches!(result, Err(BusError::Publish { .. } | BusError::ExchangeNotFound(_))), "got {result:?}");
    // On AMQP the broker closed the publishing channel; the next publish opens another.
    within(bus.publish(job_on(&bus, "next"))).await.expect("publish");
    assert_eq!(within(bus.queue_depth(&bus.topology().dispatch_queue())).await.expect("depth"), 1);
}

async fn a_queue_that_does_not_exist_cannot_be_consumed_or_measured(backend: Backend) {
    let bus = new_bus(backend).await;
    let missing = format!("{}.missing", bus.topology().prefix);
    assert!(matches!(within(bus.consume(&missing, 1)).await, Err(BusError::QueueNotFound(_))));
    assert!(matches!(within(bus.queue_depth(&missing)).await, Err(BusError::QueueNotFound(_))));
    // Neither failure harmed the connection.
    within(bus.publish(job_on(&bus, "still fine"))).await.expect("publish");
}

async fn a_routing_key_longer_than_amqp_allows_is_an_error_not_a_panic(backend: Backend) {
    let bus = new_bus(backend).await;
    let long = Outgoing::new("callevt", &format!("call.CHANNEL_CREATE.{}", "x".repeat(300)), "{}");
    assert!(matches!(within(bus.publish(long)).await, Err(BusError::NameTooLong { .. })));
}

async fn closing_the_bus_ends_its_consumers(backend: Backend) {
    let bus = new_bus(backend).await;
    let mut consumer = within(bus.consume(&bus.topology().dispatch_queue(), 1)).await.expect("consume");
    assert!(bus.is_connected());
    within(bus.close()).await;
    assert!(within(consumer.next()).await.is_none());
    assert!(!bus.is_connected());
    assert!(matches!(within(bus.publish(job_on(&bus, "too late"))).await, Err(BusError::Closed)));
}

/// Asks RabbitMQ to close the connection whose client-provided name is `connection_name`, with
/// `rabbitmqctl` (only that connection: other tests share the broker). False without the tool.
async fn close_connection_on_the_broker(connection_name: &str) -> bool {
    let listed = tokio::process::Command::new("rabbitmqctl")
        .args(["list_connections", "--quiet", "--no-table-headers", "pid", "client_properties"])
        .output()
        .await;
    let Ok(listed) = listed else { return false };
    let listing = String::from_utf8_lossy(&listed.stdout);
    let quoted = format!("\"{connection_name}\"");
    let pids: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains(&quoted))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(!pids.is_empty(), "connection {connection_name:?} not found in:\n{listing}");
    for pid in pids {
        let closed = tokio::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "closed by the bus test"])
            .output()
            .await
            .expect("rabbitmqctl runs");
        assert!(closed.status.success(), "rabbitmqctl close_connection failed: {closed:?}");
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_consumer_and_publisher_survive_a_connection_closed_by_the_broker() {
    let bus = new_bus(Backend::RabbitMq).await;
    let topology = bus.topology().clone();
    let mut consumer = within(bus.consume(&topology.dispatch_queue(), 5)).await.expect("consume");
    within(bus.publish(job_on(&bus, "before"))).await.expect("publish");
    let before = next(&mut consumer).await;
    within(before.ack()).await.expect("ack");

    if !close_connection_on_the_broker(&format!("webhooks {}", topology.prefix)).await {
        eprintln!("skipped: rabbitmqctl is not available to close the connection from the broker");
        return;
    }

    // The first publish may race the broker's close; the bus reconnects underneath, so a publish
    // succeeds again within the wait.
    within(async {
        while let Err(error) = bus.publish(job_on(&bus, "after")).await {
            assert!(
                matches!(error, BusError::Publish { .. } | BusError::Disconnected | BusError::Broker { .. }),
                "unexpected error {error:?}"
            );
        }
    })
    .await;
    let after = next(&mut consumer).await;
    assert_eq!(text(&after), "after");
    within(after.ack()).await.expect("ack");
    assert!(bus.reconnections() >= 1);
    assert!(bus.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_deliveries_as_their_connection_is_cut_ends_promptly_and_the_broker_redelivers_them() {
    const SENT: usize = 200;
    let direct = new_bus(Backend::RabbitMq).await;
    let topology = direct.topology().clone();
    let proxy = Proxy::start(RABBITMQ.parse().expect("a socket address")).await;
    let url = via(&amqp_url(), RABBITMQ, proxy.address());
    let cut = within(Bus::connect(Some(&url), topology.clone())).await.expect("connect through the proxy");
    let mut consumer = within(cut.consume(&topology.dispatch_queue(), 500)).await.expect("consume");
    within(direct.publish_all((0..SENT).map(|n| job_on(&direct, &n.to_string())).collect())).await.expect("publish");
    let mut held = Vec::new();
    for _ in 0..SENT {
        held.push(next(&mut consumer).await);
    }

    // Settled while the connection dies under them: each ends (most with an error) rather than
    // wait forever for a connection that is gone.
    proxy.cut();
    let settled = held.iter().enumerate().map(|(n, delivery)| async move {
        match n % 3 {
            0 => delivery.ack().await,
            1 => delivery.requeue().await,
            _ => delivery.ack_through().await,
        }
    });
    within(futures_util::future::join_all(settled)).await;

    // The broker saw no settlement arrive: it has every message back for another consumer.
    let mut other = within(direct.consume(&topology.dispatch_queue(), 500)).await.expect("consume");
    let mut bodies = BTreeSet::new();
    while bodies.len() < SENT {
        let delivery = next(&mut other).await;
        bodies.insert(text(&delivery));
        within(delivery.ack()).await.expect("ack");
    }
    assert_eq!(bodies, (0..SENT).map(|n| n.to_string()).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_broker_addresses_the_bus_connects_to_one_that_answers_and_moves_on_when_it_goes() {
    let direct = new_bus(Backend::RabbitMq).await;
    let topology = direct.topology().clone();
    let (first, second) = (
        Proxy::start(RABBITMQ.parse().expect("a socket address")).await,
        Proxy::start(RABBITMQ.parse().expect("a socket address")).await,
    );
    // A node that does not answer at all is passed over, at start as later.
    first.cut();
    let urls = format!(
        "{},{},{}",
        via(&amqp_url(), RABBITMQ, first.address()),
        via(&amqp_url(), RABBITMQ, second.address()),
        via(&amqp_url(), RABBITMQ, "127.0.0.1:1".parse().expect("a socket address")),
    );
    let bus = within(Bus::connect(Some(&urls), topology.clone())).await.expect("connects through the second address");
    let mut consumer = within(bus.consume(&topology.dispatch_queue(), 5)).await.expect("consume");
    within(bus.publish(job_on(&bus, "through the second"))).await.expect("publish");
    let delivery = next(&mut consumer).await;
    assert_eq!(text(&delivery), "through the second");
    within(delivery.ack()).await.expect("ack");

    // The second node goes and the first comes back: the bus reconnects there, and consumes again.
    first.restore();
    second.cut();
    within(async {
        while bus.publish(job_on(&bus, "through the first")).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    // An acknowledgement is not answered: the first message's may have been cut off with the
    // second address, and the broker then delivers that message again, marked as redelivered.
    let mut delivery = next(&mut consumer).await;
    if text(&delivery) == "through the second" {
        assert!(delivery.redelivered, "only a redelivery of the unacknowledged message comes first");
        within(delivery.ack()).await.expect("ack");
        delivery = next(&mut consumer).await;
    }
    assert_eq!(text(&delivery), "through the first");
    within(delivery.ack()).await.expect("ack");
    assert!(bus.reconnections() >= 1);
    assert!(first.forwarded() > 0, "nothing went through the first address");
}
