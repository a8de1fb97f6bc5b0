//! Jobs on the dispatch queue: publishing and consuming them, settling and redelivery, bodies and
//! headers, and the delay queues of retries.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use webhooks_bus::{BusError, DelayQueue, Outgoing, Topology};
use webhooks_model::trace::{TRACE_PARENT_HEADER, TraceParent};
use webhooks_test_support::bus::Backend;
use webhooks_test_support::test_matrix;

use crate::{job, job_on, new_bus, next, text, within};

test_matrix!(
    buses;
    a_thousand_persistent_jobs_published_together_are_all_consumed,
    two_consumers_on_one_queue_split_the_messages_without_duplicates,
    a_requeued_delivery_is_delivered_again_marked_redelivered,
    a_value_body_reads_back_equal_on_both_backends_and_as_its_json,
    a_trace_parent_travels_in_its_header_and_a_malformed_one_reads_as_none,
    an_unacked_delivery_of_a_dropped_consumer_is_redelivered_to_another,
    ack_through_settles_every_earlier_delivery_of_the_consumer,
    a_message_in_a_delay_queue_reaches_the_target_queue_after_the_ttl,
    a_message_leaves_a_delay_queue_at_its_own_shorter_expiration,
);

async fn a_thousand_persistent_jobs_published_together_are_all_consumed(backend: Backend) {
    let bus = new_bus(backend).await;
    let jobs: Vec<Outgoing> = (0..1000).map(|number| job_on(&bus, &number.to_string())).collect();
    within(bus.publish_all(jobs)).await.expect("publish all");

    let mut consumer = within(bus.consume(&bus.topology().dispatch_queue(), 100)).await.expect("consume");
    let mut seen = BTreeSet::new();
    for _ in 0..1000 {
        let delivery = next(&mut consumer).await;
        let number: u32 = text(&delivery).parse().expect("a number");
        assert!(seen.insert(number), "job {number} delivered twice");
        within(delivery.ack()).await.expect("ack");
    }
    assert_eq!(seen, (0..1000).collect());
    assert_eq!(within(bus.queue_depth(&bus.topology().dispatch_queue())).await.expect("depth"), 0);
}

async fn two_consumers_on_one_queue_split_the_messages_without_duplicates(backend: Backend) {
    let bus = new_bus(backend).await;
    let queue = bus.topology().dispatch_queue();
    let jobs: Vec<Outgoing> = (0..200).map(|number| job_on(&bus, &number.to_string())).collect();
    within(bus.publish_all(jobs)).await.expect("publish all");

    let mut first = within(bus.consume(&queue, 1)).await.expect("consume");
    let mut second = within(bus.consume(&queue, 1)).await.expect("consume");
    // With a prefetch of one, the first consumer cannot take a second message while it holds
    // one: the second consumer must get the next.
    let held_by_first = next(&mut first).await;
    let held_by_second = next(&mut second).await;
    let mut seen_by_first = vec![text(&held_by_first)];
    let mut seen_by_second = vec![text(&held_by_second)];
    within(held_by_first.ack()).await.expect("ack");
    within(held_by_second.ack()).await.expect("ack");

    // Both drain concurrently, which also exercises cancelling `next()` in a select.
    within(async {
        while seen_by_first.len() + seen_by_second.len() < 200 {
            let (delivery, seen) = tokio::select! {
                Some(delivery) = first.next() => (delivery, &mut seen_by_first),
                Some(delivery) = second.next() => (delivery, &mut seen_by_second),
            };
            seen.push(text(&delivery));
            delivery.ack().await.expect("ack");
        }
    })
    .await;
    assert!(!seen_by_first.is_empty() && !seen_by_second.is_empty());

    let mut all: Vec<u32> =
        seen_by_first.iter().chain(&seen_by_second).map(|body| body.parse().expect("a number")).collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<u32>>(), "every job exactly once");
}

async fn a_requeued_delivery_is_delivered_again_marked_redelivered(backend: Backend) {
    let bus = new_bus(backend).await;
    within(bus.publish(job_on(&bus, "again"))).await.expect("publish");
    let mut consumer = within(bus.consume(&bus.topology().dispatch_queue(), 5)).await.expect("consume");
    let first = next(&mut consumer).await;
    assert!(!first.redelivered);
    within(first.requeue()).await.expect("requeue");

    let again = next(&mut consumer).await;
    assert_eq!(text(&again), "again");
    assert!(again.redelivered);
    within(again.ack()).await.expect("ack");
    assert!(matches!(within(first.ack()).await, Err(BusError::Stale)), "a settled delivery cannot be settled again");
}

async fn a_value_body_reads_back_equal_on_both_backends_and_as_its_json(backend: Backend) {
    let bus = new_bus(backend).await;
    let topology = bus.topology().clone();
    let event = json!({"Event-Name": "CHANNEL_CREATE", "Call-ID": "c1", "Custom-Channel-Vars": {"Account-ID": "a"}});
    let message = Outgoing::persistent_value(&topology.jobs_exchange(), topology.dispatch_routing_key(), event.clone());
    within(bus.publish(message)).await.expect("publish");
    let mut consumer = within(bus.consume(&topology.dispatch_queue(), 5)).await.expect("consume");
    let first = next(&mut consumer).await;
    let read = first.body.read::<Value>().expect("the value");
    // In process the consumer gets the published value itself; from RabbitMQ, its JSON parsed.
    assert_eq!(matches!(read, Cow::Borrowed(_)), backend == Backend::InProcess);
    assert_eq!(*read, event);
    assert_eq!(serde_json::from_slice::<Value>(&first.body).expect("JSON bytes"), event);
    within(first.requeue()).await.expect("requeue");

    let again = next(&mut consumer).await;
    assert!(again.redelivered);
    assert_eq!(*again.body.read::<Value>().expect("the value"), event);
    within(again.dead_letter()).await.expect("dead-letter");
    let mut dead = within(bus.consume(&topology.dead_letter_queue(), 5)).await.expect("consume dead letters");
    let dead_letter = next(&mut dead).await;
    assert_eq!(serde_json::from_slice::<Value>(&dead_letter.body).expect("JSON bytes"), event);
    within(dead_letter.ack()).await.expect("ack");
}

async fn a_trace_parent_travels_in_its_header_and_a_malformed_one_reads_as_none(backend: Backend) {
    let bus = new_bus(backend).await;
    let trace: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid");
    within(bus.publish(job_on(&bus, "traced").with_trace_parent(&trace))).await.expect("publish");
    let mut malformed = job_on(&bus, "malformed");
    malformed.headers.push((TRACE_PARENT_HEADER.to_owned(), "00-not-a-trace-01".to_owned()));
    within(bus.publish(malformed)).await.expect("publish");
    within(bus.publish(job_on(&bus, "untraced"))).await.expect("publish");

    let mut consumer = within(bus.consume(&bus.topology().dispatch_queue(), 1)).await.expect("consume");
    let traced = next(&mut consumer).await;
    assert_eq!((text(&traced).as_str(), traced.trace_parent()), ("traced", Some(trace)));
    assert_eq!(traced.header(TRACE_PARENT_HEADER), Some(trace.to_string().as_str()));
    // A requeued message keeps its headers. Where it goes back depends on the queue type (the
    // head of a classic queue, the tail of a quorum queue), so the three are read in any order.
    within(traced.requeue()).await.expect("requeue");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let delivery = next(&mut consumer).await;
        seen.push((text(&delivery), delivery.redelivered, delivery.trace_parent()));
        within(delivery.ack()).await.expect("ack");
    }
    seen.sort_by(|one, other| one.0.cmp(&other.0));
    assert_eq!(
        seen,
        [
            ("malformed".to_owned(), false, None),
            ("traced".to_owned(), true, Some(trace)),
            ("untraced".to_owned(), false, None),
        ]
    );
}

async fn an_unacked_delivery_of_a_dropped_consumer_is_redelivered_to_another(backend: Backend) {
    let bus = new_bus(backend).await;
    let queue = bus.topology().dispatch_queue();
    within(bus.publish(job_on(&bus, "orphan"))).await.expect("publish");
    let mut first = within(bus.consume(&queue, 1)).await.expect("consume");
    let mut second = within(bus.consume(&queue, 1)).await.expect("consume");
    let taken = next(&mut first).await;
    assert_eq!(text(&taken), "orphan");
    drop(first);

    let redelivered = next(&mut second).await;
    assert_eq!(text(&redelivered), "orphan");
    assert!(redelivered.redelivered);
    within(redelivered.ack()).await.expect("ack");
    // The first consumer's copy went back to the queue; it can no longer be settled.
    assert!(within(taken.ack()).await.is_err());
}

async fn ack_through_settles_every_earlier_delivery_of_the_consumer(backend: Backend) {
    let bus = new_bus(backend).await;
    let queue = bus.topology().dispatch_queue();
    let jobs: Vec<Outgoing> = (0..10).map(|number| job_on(&bus, &number.to_string())).collect();
    within(bus.publish_all(jobs)).await.expect("publish all");

    // A window of five: the next five can only come once all of the first five are settled.
    let mut consumer = within(bus.consume(&queue, 5)).await.expect("consume");
    let mut first_batch = Vec::new();
    for _ in 0..5 {
        first_batch.push(next(&mut consumer).await);
    }
    within(first_batch[4].ack_through()).await.expect("ack through");
    let mut second_batch = Vec::new();
    for _ in 0..5 {
        second_batch.push(next(&mut consumer).await);
    }
    let bodies: Vec<String> = first_batch.iter().chain(&second_batch).map(text).collect();
    assert_eq!(bodies, (0..10).map(|number| number.to_string()).collect::<Vec<_>>());
    within(second_batch[4].ack_through()).await.expect("ack through");
    drop(consumer);

    // Nothing was requeued by the drop: a marker published now is the first thing delivered.
    within(bus.publish(job_on(&bus, "marker"))).await.expect("publish");
    let mut after = within(bus.consume(&queue, 5)).await.expect("consume");
    let delivery = next(&mut after).await;
    // (It may come marked redelivered: on AMQP the dropped consumer's channel closes
    // asynchronously and can receive the marker, then give it back.)
    assert_eq!(text(&delivery), "marker");
    within(delivery.ack()).await.expect("ack");
}

async fn a_message_in_a_delay_queue_reaches_the_target_queue_after_the_ttl(backend: Backend) {
    let bus = new_bus(backend).await;
    let topology = bus.topology().clone();
    let delay_queue = format!("{}.delay.300", topology.prefix);
    let ttl = Duration::from_millis(300);
    let delay = delay_queue_of(&topology, &delay_queue, 300);
    let declare = || bus.declare_delay_queue(&delay);
    within(declare()).await.expect("declare");
    within(declare()).await.expect("declaring again is harmless");

    let started = Instant::now();
    // Through the default exchange, which routes by queue name.
    within(bus.publish(Outgoing { routing_key: delay_queue.clone(), ..job("later") })).await.expect("publish");
    let mut consumer = within(bus.consume(&topology.dispatch_queue(), 5)).await.expect("consume");
    let delivery = next(&mut consumer).await;
    assert!(started.elapsed() >= ttl, "arrived after {:?}, before the TTL", started.elapsed());
    assert_eq!(text(&delivery), "later");
    assert_eq!(delivery.exchange, topology.jobs_exchange());
    assert_eq!(delivery.routing_key, "dispatch");
    within(delivery.ack()).await.expect("ack");
    assert_eq!(within(bus.queue_depth(&delay_queue)).await.expect("depth"), 0);
}

async fn a_message_leaves_a_delay_queue_at_its_own_shorter_expiration(backend: Backend) {
    let bus = new_bus(backend).await;
    let topology = bus.topology().clone();
    let delay_queue = format!("{}.delay.600000", topology.prefix);
    within(bus.declare_delay_queue(&delay_queue_of(&topology, &delay_queue, 600_000))).await.expect("declare");
    let early = Outgoing { routing_key: delay_queue.clone(), expiration_ms: Some(100), ..job("early") };
    within(bus.publish(early)).await.expect("publish");
    let mut consumer = within(bus.consume(&topology.dispatch_queue(), 5)).await.expect("consume");
    // The queue's own TTL is ten minutes; only the message's expiration can bring it in time.
    let delivery = next(&mut consumer).await;
    assert_eq!(text(&delivery), "early");
    within(delivery.ack()).await.expect("ack");
}

/// A delay queue `name` of `ttl_ms` sending its messages back to the dispatch queue.
fn delay_queue_of(topology: &Topology, name: &str, ttl_ms: u64) -> DelayQueue {
    DelayQueue {
        name: name.to_owned(),
        ttl_ms,
        target_exchange: topology.jobs_exchange(),
        target_routing_key: topology.dispatch_routing_key().to_owned(),
    }
}
