//! Consuming over AMQP: a channel per consumer, subscribed again after every failure.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::types::AMQPValue;

use super::{AmqpBus, MAX_BACKOFF, MIN_BACKOFF, lock};
use crate::{Acker, BusError, Delivery, Settlement};

/// How long settling a delivery may take. On a live connection it is a frame written at once; the
/// bound only matters when the connection dies under it.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A consumer of one queue that subscribes again after failures.
pub(crate) struct AmqpConsumer {
    /// Keeps the bus open while consuming.
    pub(super) bus: AmqpBus,
    /// The queue read.
    pub(super) queue: String,
    /// Its prefetch.
    pub(super) prefetch: u16,
    /// The current subscription; `None` after a failure.
    pub(super) subscription: Option<Subscription>,
    /// Pause before the next subscription attempt; kept here so a cancelled `next()` does not
    /// reset the backoff.
    pub(super) pause: Duration,
    /// Failed subscription attempts in a row.
    pub(super) attempts: u32,
}

/// A channel and the lapin consumer on it. Dropping both closes the channel, and the broker
/// requeues what it had delivered unacknowledged.
pub(super) struct Subscription {
    /// Held so the channel stays open while consuming.
    pub(super) _channel: Channel,
    /// The delivery stream.
    pub(super) consumer: lapin::Consumer,
}

impl AmqpConsumer {
    /// The queue read.
    pub(crate) fn queue(&self) -> &str {
        &self.queue
    }

    /// The next delivery, subscribing again (with backoff) as often as needed; `None` at shutdown.
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        let shutdown = self.bus.inner.shared.shutdown.clone();
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            if let Some(subscription) = self.subscription.as_mut() {
                let item = tokio::select! {
                    () = shutdown.cancelled() => return None,
                    item = subscription.consumer.next() => item,
                };
                match item {
                    Some(Ok(delivery)) => return Some(convert(delivery)),
                    Some(Err(error)) => {
                        tracing::warn!(bus.queue = %self.queue, error = %error, "consumer failed; subscribing again");
                        self.bus.inner.shared.wake.notify_one();
                    }
                    None => tracing::warn!(bus.queue = %self.queue, "the broker ended the consumer; subscribing again"),
                }
                self.subscription = None;
                continue;
            }
            match self.bus.subscribe(&self.queue, self.prefetch).await {
                Ok(subscription) => {
                    tracing::info!(bus.queue = %self.queue, attempts = self.attempts + 1, "consuming again");
                    self.subscription = Some(subscription);
                    self.pause = MIN_BACKOFF;
                    self.attempts = 0;
                }
                Err(BusError::Closed) => return None,
                Err(error) => {
                    self.attempts += 1;
                    tracing::warn!(
                        bus.queue = %self.queue,
                        attempt = self.attempts,
                        retry_in_ms = u64::try_from(self.pause.as_millis()).unwrap_or(u64::MAX),
                        error = %error,
                        "cannot subscribe",
                    );
                    // A new connection is subscribed on at once, not after the pause.
                    let mut link = self.bus.inner.shared.link.subscribe();
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(self.pause) => {}
                        _ = link.changed() => {}
                    }
                    self.pause = (self.pause * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl Drop for AmqpConsumer {
    fn drop(&mut self) {
        // A private queue is auto-delete: with its consumer gone the broker deletes it, and it
        // must not be re-created after a reconnect.
        lock(&self.bus.inner.shared.registry).private_queues.remove(&self.queue);
    }
}

/// lapin's delivery as ours.
fn convert(delivery: lapin::message::Delivery) -> Delivery {
    let headers = delivery
        .properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .filter_map(|(name, value)| header_text(value).map(|text| (name.to_string(), text)))
                .collect()
        })
        .unwrap_or_default();
    Delivery {
        exchange: delivery.exchange.to_string(),
        routing_key: delivery.routing_key.to_string(),
        body: Bytes::from(delivery.data).into(),
        content_type: delivery.properties.content_type().as_ref().map(ToString::to_string),
        headers,
        redelivered: delivery.redelivered,
        acker: Acker::Amqp(delivery.acker),
    }
}

/// A header value as text; `None` for tables, arrays, byte arrays and other non-scalar values.
fn header_text(value: &AMQPValue) -> Option<String> {
    let text = match value {
        AMQPValue::LongString(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
        AMQPValue::ShortString(text) => text.to_string(),
        AMQPValue::Boolean(value) => value.to_string(),
        AMQPValue::ShortShortInt(value) => value.to_string(),
        AMQPValue::ShortShortUInt(value) => value.to_string(),
        AMQPValue::ShortInt(value) => value.to_string(),
        AMQPValue::ShortUInt(value) => value.to_string(),
        AMQPValue::LongInt(value) => value.to_string(),
        AMQPValue::LongUInt(value) => value.to_string(),
        AMQPValue::LongLongInt(value) => value.to_string(),
        AMQPValue::Float(value) => value.to_string(),
        AMQPValue::Double(value) => value.to_string(),
        AMQPValue::Timestamp(value) => value.to_string(),
        _ => return None,
    };
    Some(text)
}

/// Settles a delivery through lapin, within [`SETTLE_TIMEOUT`].
pub(crate) async fn settle(acker: &lapin::Acker, settlement: Settlement) -> Result<(), BusError> {
    let (action, settled) = match settlement {
        Settlement::Ack => ("ack", acker.ack(BasicAckOptions { multiple: false }).boxed()),
        Settlement::AckThrough => ("ack", acker.ack(BasicAckOptions { multiple: true }).boxed()),
        Settlement::Requeue => ("requeue", acker.reject(BasicRejectOptions { requeue: true }).boxed()),
        Settlement::DeadLetter => ("dead-letter", acker.reject(BasicRejectOptions { requeue: false }).boxed()),
    };
    // A settlement sent as the connection dies may never be answered by lapin; unbounded, it
    // would hold its caller (and the router or dispatcher loop waiting on it) forever after the
    // broker returns. The broker requeues what a dead channel had delivered anyway.
    let Ok(result) = tokio::time::timeout(SETTLE_TIMEOUT, settled).await else {
        return Err(BusError::Timeout { operation: "settle a delivery" });
    };
    match result {
        Ok(true) => Ok(()),
        // Already settled, or its channel is gone (the broker redelivers it).
        Ok(false) => Err(BusError::Stale),
        Err(source) => Err(BusError::Settle { action, source: source.into() }),
    }
}
