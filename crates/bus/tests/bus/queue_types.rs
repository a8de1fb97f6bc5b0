//! Queue types on RabbitMQ: a queue that exists with the other type is refused by name, never
//! redeclared, and `migrate_queues` converts it keeping its messages. On the quorum tests' own
//! vhost (`quorum_amqp_url`).

use std::collections::BTreeMap;

use webhooks_bus::Topology;
use webhooks_bus::{Bus, BusError, DelayQueue, Outgoing, QueueMigration, migrate_queues};
use webhooks_model::config::QueueType;
use webhooks_test_support::bus::{quorum_amqp_url, topology, unique_prefix};

use crate::{job, job_on, next, text, unique_token, within};

/// A bus on the quorum tests' vhost with `topology`.
async fn connect(topology: Topology) -> Result<Bus, BusError> {
    within(Bus::connect(Some(&quorum_amqp_url()), topology)).await
}

/// `prefix`'s test topology with `queue_type`.
fn typed(prefix: &str, queue_type: QueueType) -> Topology {
    Topology { queue_type, ..topology(prefix) }
}

/// A delay queue of ten minutes under `prefix`: what waits in it stays there during a test.
fn delay_queue(bus: &Bus) -> DelayQueue {
    let topology = bus.topology();
    DelayQueue {
        name: format!("{}.delay.600000", topology.prefix),
        ttl_ms: 600_000,
        target_exchange: topology.jobs_exchange(),
        target_routing_key: topology.dispatch_routing_key().to_owned(),
    }
}

/// The connection refused for `queue`, with the broker's reason and the way out in its message.
fn assert_refused(connected: Result<Bus, BusError>, queue: &str) {
    let Err(error) = connected else { panic!("the connection is refused") };
    let message = error.to_string();
    assert!(matches!(&error, BusError::QueueMismatch { queue: refused, .. } if refused == queue), "{message}");
    assert!(message.contains("x-queue-type") && message.contains("webhooks queues migrate"), "{message}");
}

#[tokio::test]
async fn classic_queues_are_refused_by_a_quorum_configuration_then_converted_with_their_messages() {
    let prefix = unique_prefix("test-queue-types");
    let classic = connect(typed(&prefix, QueueType::Classic)).await.expect("classic queues");
    let delay = delay_queue(&classic);
    within(classic.declare_delay_queue(&delay)).await.expect("a classic delay queue");
    let token = unique_token();
    let mut messages = vec![
        Outgoing::persistent("callevt", &format!("call.CHANNEL_CREATE.{token}"), token.clone()),
        Outgoing::persistent(&classic.topology().dead_letter_exchange(), "", "set aside"),
        // Through the default exchange, as the dispatcher parks retries.
        Outgoing { routing_key: delay.name.clone(), ..job("waiting") },
    ];
    messages.extend((0..3).map(|n| job_on(&classic, &format!("job {n}"))));
    within(classic.publish_all(messages)).await.expect("published to the classic queues");
    classic.close().await;

    let quorum = typed(&prefix, QueueType::Quorum);
    assert_refused(connect(quorum.clone()).await, &quorum.dead_letter_queue());

    let migrated =
        within(migrate_queues(&quorum_amqp_url(), &quorum, std::slice::from_ref(&delay))).await.expect("converted");
    let kept: BTreeMap<String, u64> =
        migrated.into_iter().map(|QueueMigration { queue, messages }| (queue, messages)).collect();
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert_eq!(kept[&quorum.dead_letter_queue()], 1);
    assert_eq!(kept[&quorum.dispatch_queue()], 3);
    assert_eq!(kept[&delay.name], 1);
    // Kazoo's exchanges are shared: other tests' call events may have reached the queue too.
    assert!(kept[&quorum.router_queue()] >= 1, "{kept:?}");

    let bus = connect(quorum.clone()).await.expect("the quorum queues are accepted");
    within(bus.declare_delay_queue(&delay)).await.expect("and the delay queue");
    let mut jobs = within(bus.consume(&quorum.dispatch_queue(), 10)).await.expect("consume");
    for n in 0..3 {
        let delivery = next(&mut jobs).await;
        assert_eq!(text(&delivery), format!("job {n}"), "in their order");
        within(delivery.ack()).await.expect("ack");
    }
    assert_eq!(within(bus.queue_depth(&delay.name)).await.expect("depth"), 1);
    assert_eq!(within(bus.queue_depth(&quorum.dead_letter_queue())).await.expect("depth"), 1);
    let stand_in = within(bus.queue_depth(&format!("{}.migrating", quorum.dispatch_queue()))).await;
    assert!(matches!(stand_in, Err(BusError::QueueNotFound(_))), "no stand-in left: {stand_in:?}");
    bus.close().await;

    let again =
        within(migrate_queues(&quorum_amqp_url(), &quorum, std::slice::from_ref(&delay))).await.expect("nothing to do");
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn quorum_queues_are_refused_by_a_classic_configuration() {
    let prefix = unique_prefix("test-queue-types");
    connect(typed(&prefix, QueueType::Quorum)).await.expect("quorum queues").close().await;
    let classic = typed(&prefix, QueueType::Classic);
    assert_refused(connect(classic.clone()).await, &classic.dead_letter_queue());
}

#[tokio::test]
async fn a_queue_still_consumed_is_not_converted() {
    let prefix = unique_prefix("test-queue-types");
    let classic = connect(typed(&prefix, QueueType::Classic)).await.expect("classic queues");
    let _consumer = within(classic.consume(&classic.topology().dispatch_queue(), 1)).await.expect("consume");
    let quorum = typed(&prefix, QueueType::Quorum);
    let refused = within(migrate_queues(&quorum_amqp_url(), &quorum, &[])).await.expect_err("refused");
    assert!(matches!(&refused, BusError::QueueInUse { queue, .. } if *queue == quorum.dispatch_queue()), "{refused}");
    classic.close().await;
}
