//! The bus's behaviour, run twice: against RabbitMQ (`WEBHOOKS_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`) and against the in-process twin.
//!
//! Every test gets its own topology prefix, and its queues expire a minute after use, so runs
//! leave nothing behind on the broker. Nothing sleeps: every wait is bounded by [`WAIT`].

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use webhooks_bus::{Bus, BusError, Consumer, Delivery, Outgoing};
use webhooks_model::trace::{TRACE_PARENT_HEADER, TraceParent};
use webhooks_test_support::bus::{Backend, connect, unique_prefix};
use webhooks_test_support::test_matrix;

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

async fn a_channel_create_event_reaches_the_router_queue_and_an_unbound_key_does_not(backend: Backend) {
    let bus = new_bus(backend).await;
    let token = unique_token();
    let call_id = format!("{token}@203.0.113.10");
    let routing_key = format!("call.CHANNEL_CREATE.{token}%40203%2E0%2E113%2E10");
    let mut unbound = Outgoing::new("callevt", &format!("call.CHANNEL_HOLD.{token}"), format!("unbound {token}"));
    unbound.headers.push(("call-id".to_owned(), call_id.clone()));
    let mut bound = Outgoing::new("callevt", &routing_key, format!("bound {token}"));
    bound.headers.push(("call-id".to_owned(), call_id.clone()));
    // Kazoo's exchanges are broadcasts: nobody listening is not an error.
    within(bus.publish(unbound)).await.expect("an unbound call event is accepted");
    within(bus.publish(bound)).await.expect("a bound call event is accepted");

    let mut consumer = within(bus.consume(&bus.topology().router_queue(), 10)).await.expect("consume");
    let delivery = next_with(&mut consumer, &token).await;
    // One publisher, one queue: had the unbound event arrived, it would have come first.
    assert_eq!(text(&delivery), format!("bound {token}"));
    assert_eq!(delivery.exchange, "callevt");
    assert_eq!(delivery.routing_key, routing_key);
    assert_eq!(delivery.header("call-id"), Some(call_id.as_str()));
    assert_eq!(delivery.content_type.as_deref(), Some("application/json"));
    assert!(!delivery.redelivered);
    within(delivery.ack()).await.expect("ack");
}

async fn every_kind_of_kazoo_event_the_router_needs_reaches_the_router_queue(backend: Backend) {
    let bus = new_bus(backend).await;
    let token = unique_token();
    let events = [
        ("callevt", format!("call.PARK_PARKED.{token}")),
        ("configuration", format!("doc_edited.account%2F3a%2F4b%2F5c.vmbox.{token}")),
        ("notifications", "notifications.voicemail.new".to_owned()),
        ("im", format!("sms.inbound.offnet.{token}")),
    ];
    let messages =
        events.iter().map(|(exchange, key)| Outgoing::new(exchange, key, format!("{token} {key}"))).collect();
    within(bus.publish_all(messages)).await.expect("publish");
    let mut consumer = within(bus.consume(&bus.topology().router_queue(), 10)).await.expect("consume");
    for (exchange, key) in events {
        let delivery = next_with(&mut consumer, &token).await;
        assert_eq!((delivery.exchange.as_str(), delivery.routing_key.as_str()), (exchange, key.as_str()));
        within(delivery.ack()).await.expect("ack");
    }
}

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

    // One at a time, so the requeued message comes back first on both backends.
    let mut consumer = within(bus.consume(&bus.topology().dispatch_queue(), 1)).await.expect("consume");
    let traced = next(&mut consumer).await;
    assert_eq!((text(&traced).as_str(), traced.trace_parent()), ("traced", Some(trace)));
    assert_eq!(traced.header(TRACE_PARENT_HEADER), Some(trace.to_string().as_str()));
    // A requeued message keeps its headers.
    within(traced.requeue()).await.expect("requeue");
    let again = next(&mut consumer).await;
    assert_eq!((text(&again).as_str(), again.redelivered, again.trace_parent()), ("traced", true, Some(trace)));
    within(again.ack()).await.expect("ack");
    let malformed = next(&mut consumer).await;
    assert_eq!((text(&malformed).as_str(), malformed.trace_parent()), ("malformed", None));
    within(malformed.ack()).await.expect("ack");
    let untraced = next(&mut consumer).await;
    assert_eq!((text(&untraced).as_str(), untraced.trace_parent()), ("untraced", None));
    within(untraced.ack()).await.expect("ack");
}

async fn a_dead_lettered_event_lands_in_the_dead_letter_queue(backend: Backend) {
    let bus = new_bus(backend).await;
    let token = unique_token();
    let routing_key = format!("call.CHANNEL_DESTROY.{token}");
    let malformed = format!("not json {token}");
    within(bus.publish(Outgoing::new("callevt", &routing_key, malformed.clone()))).await.expect("publish");
    let mut events = within(bus.consume(&bus.topology().router_queue(), 5)).await.expect("consume");
    let delivery = next_with(&mut events, &token).await;
    assert_eq!(text(&delivery), malformed, "a malformed message is delivered as it is");
    within(delivery.dead_letter()).await.expect("dead-letter");

    let mut dead = within(bus.consume(&bus.topology().dead_letter_queue(), 5)).await.expect("consume");
    let delivery = next(&mut dead).await;
    assert_eq!(text(&delivery), malformed);
    assert_eq!(delivery.exchange, bus.topology().dead_letter_exchange());
    assert_eq!(delivery.routing_key, routing_key);
    assert_eq!(delivery.header("x-first-death-queue"), Some(bus.topology().router_queue().as_str()));
    assert_eq!(delivery.header("x-first-death-reason"), Some("rejected"));
    within(delivery.ack()).await.expect("ack");
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

async fn private_queues_of_two_handles_both_receive_a_change_notice(backend: Backend) {
    let bus = new_bus(backend).await;
    let other = second_handle(backend, &bus).await;
    let bindings = bus.topology().change_notice_bindings();
    let mine = within(bus.private_queue(&bindings)).await.expect("private queue");
    let theirs = within(other.private_queue(&bindings)).await.expect("private queue");
    assert_ne!(mine, theirs);
    let mut my_notices = within(bus.consume(&mine, 10)).await.expect("consume");
    let mut their_notices = within(other.consume(&theirs, 10)).await.expect("consume");

    // A change nobody listens for, then one everybody does. The configuration exchange is
    // shared with other tests, hence the token.
    let token = unique_token();
    let ignored = format!("doc_edited.webhooks.faxbox.{token}");
    let notice = format!("doc_edited.webhooks.webhook.{token}");
    within(bus.publish(Outgoing::new("configuration", &ignored, format!("fax {token}")))).await.expect("publish");
    within(bus.publish(Outgoing::new("configuration", &notice, format!("hook {token}")))).await.expect("publish");
    for consumer in [&mut my_notices, &mut their_notices] {
        let delivery = next_with(consumer, &token).await;
        assert_eq!(text(&delivery), format!("hook {token}"));
        assert_eq!(delivery.routing_key, notice);
        within(delivery.ack()).await.expect("ack");
    }
    within(other.close()).await;
}

async fn a_message_in_a_delay_queue_reaches_the_target_queue_after_the_ttl(backend: Backend) {
    let bus = new_bus(backend).await;
    let topology = bus.topology().clone();
    let delay_queue = format!("{}.delay.300", topology.prefix);
    let ttl = Duration::from_millis(300);
    let jobs_exchange = topology.jobs_exchange();
    let declare = || bus.declare_delay_queue(&delay_queue, 300, &jobs_exchange, topology.dispatch_routing_key());
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
    within(bus.declare_delay_queue(&delay_queue, 600_000, &topology.jobs_exchange(), topology.dispatch_routing_key()))
        .await
        .expect("declare");
    let early = Outgoing { routing_key: delay_queue.clone(), expiration_ms: Some(100), ..job("early") };
    within(bus.publish(early)).await.expect("publish");
    let mut consumer = within(bus.consume(&topology.dispatch_queue(), 5)).await.expect("consume");
    // The queue's own TTL is ten minutes; only the message's expiration can bring it in time.
    let delivery = next(&mut consumer).await;
    assert_eq!(text(&delivery), "early");
    within(delivery.ack()).await.expect("ack");
}

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

test_matrix!(
    in_process => Backend::InProcess,
    rabbitmq => Backend::RabbitMq;
    a_channel_create_event_reaches_the_router_queue_and_an_unbound_key_does_not,
    every_kind_of_kazoo_event_the_router_needs_reaches_the_router_queue,
    a_thousand_persistent_jobs_published_together_are_all_consumed,
    two_consumers_on_one_queue_split_the_messages_without_duplicates,
    a_requeued_delivery_is_delivered_again_marked_redelivered,
    a_value_body_reads_back_equal_on_both_backends_and_as_its_json,
    a_trace_parent_travels_in_its_header_and_a_malformed_one_reads_as_none,
    a_dead_lettered_event_lands_in_the_dead_letter_queue,
    an_unacked_delivery_of_a_dropped_consumer_is_redelivered_to_another,
    ack_through_settles_every_earlier_delivery_of_the_consumer,
    private_queues_of_two_handles_both_receive_a_change_notice,
    a_message_in_a_delay_queue_reaches_the_target_queue_after_the_ttl,
    a_message_leaves_a_delay_queue_at_its_own_shorter_expiration,
    a_job_that_no_queue_receives_is_refused_as_unroutable,
    publishing_to_a_missing_exchange_fails_and_the_bus_carries_on,
    a_queue_that_does_not_exist_cannot_be_consumed_or_measured,
    a_routing_key_longer_than_amqp_allows_is_an_error_not_a_panic,
    closing_the_bus_ends_its_consumers,
);

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
