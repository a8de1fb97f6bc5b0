//! Kazoo's exchanges: the events the router needs reach its queue, a dead-lettered event lands in
//! the dead-letter queue, and every handle's private queue gets the change notices.

use webhooks_bus::Outgoing;
use webhooks_test_support::bus::Backend;
use webhooks_test_support::test_matrix;

use crate::{new_bus, next, next_with, second_handle, text, unique_token, within};

test_matrix!(
    buses;
    a_channel_create_event_reaches_the_router_queue_and_an_unbound_key_does_not,
    every_kind_of_kazoo_event_the_router_needs_reaches_the_router_queue,
    a_dead_lettered_event_lands_in_the_dead_letter_queue,
    private_queues_of_two_handles_both_receive_a_change_notice,
);

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
