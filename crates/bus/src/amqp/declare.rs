//! Declaring the topology: exchanges, queues and bindings from their specs.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ErrorKind};
use webhooks_model::config::QueueType;

use super::message::{long_string, short_string};
use super::{REPLY_SUCCESS, is_not_found};
use crate::BusError;
use crate::topology::{BindingSpec, Declarations, ExchangeKind, ExchangeSpec, QueueSpec};

/// Declares exchanges, then queues, then bindings.
pub(super) async fn declare_all(channel: &Channel, declarations: &Declarations) -> Result<(), BusError> {
    for exchange in &declarations.exchanges {
        declare_exchange(channel, exchange).await?;
    }
    for queue in &declarations.queues {
        declare_queue(channel, queue).await?;
    }
    for binding in &declarations.bindings {
        bind(channel, binding).await?;
    }
    Ok(())
}

/// `exchange.declare` from a spec.
pub(super) async fn declare_exchange(channel: &Channel, spec: &ExchangeSpec) -> Result<(), BusError> {
    let kind = match spec.kind {
        ExchangeKind::Topic => lapin::ExchangeKind::Topic,
        ExchangeKind::Direct => lapin::ExchangeKind::Direct,
        ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
    };
    let options = ExchangeDeclareOptions {
        passive: false,
        durable: spec.durable,
        auto_delete: spec.auto_delete,
        // Publishers reach it directly.
        internal: false,
        // Wait for the answer, so a conflict is reported here.
        nowait: false,
    };
    channel
        .exchange_declare(short_string(&spec.name, "exchange name")?, kind, options, FieldTable::default())
        .await
        .map_err(|source| BusError::Declare { what: "exchange", name: spec.name.clone(), source: source.into() })
}

/// `queue.declare` from a spec, with its `x-` arguments.
pub(super) async fn declare_queue(channel: &Channel, spec: &QueueSpec) -> Result<(), BusError> {
    let arguments = arguments(spec);
    let options = QueueDeclareOptions {
        passive: false,
        durable: spec.durable,
        exclusive: spec.exclusive,
        auto_delete: spec.auto_delete,
        nowait: false,
    };
    channel.queue_declare(short_string(&spec.name, "queue name")?, options, arguments).await.map(|_| ()).map_err(
        |source| match mismatch(&source) {
            Some(detail) => BusError::QueueMismatch { queue: spec.name.clone(), detail },
            None => BusError::Declare { what: "queue", name: spec.name.clone(), source: source.into() },
        },
    )
}

/// The `x-` arguments of a queue's declaration.
fn arguments(spec: &QueueSpec) -> FieldTable {
    let mut arguments = FieldTable::default();
    // Classic queues carry no `x-queue-type`, as they were declared before the type was
    // configurable: such a queue is declared again unchanged.
    if spec.queue_type == QueueType::Quorum {
        arguments.insert("x-queue-type".into(), long_string("quorum"));
        if spec.dead_letter.is_some() {
            // The broker keeps a dead letter until the dead-letter queue has it, instead of
            // dropping it when that queue is unavailable; it requires reject-publish overflow.
            arguments.insert("x-dead-letter-strategy".into(), long_string("at-least-once"));
            arguments.insert("x-overflow".into(), long_string("reject-publish"));
        }
    }
    if let Some(dead_letter) = &spec.dead_letter {
        arguments.insert("x-dead-letter-exchange".into(), long_string(&dead_letter.exchange));
        if let Some(routing_key) = &dead_letter.routing_key {
            arguments.insert("x-dead-letter-routing-key".into(), long_string(routing_key));
        }
    }
    if let Some(ttl) = spec.message_ttl_ms {
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(i64::try_from(ttl).unwrap_or(i64::MAX)));
    }
    if let Some(expires) = spec.expires {
        // RabbitMQ refuses 0.
        let milliseconds = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX).max(1);
        arguments.insert("x-expires".into(), AMQPValue::LongLongInt(milliseconds));
    }
    arguments
}

/// The broker's words when it refused a declaration because the queue exists with other
/// arguments (406 PRECONDITION_FAILED, "inequivalent arg ...").
fn mismatch(error: &lapin::Error) -> Option<String> {
    let ErrorKind::ProtocolError(amqp) = error.kind() else { return None };
    let message = amqp.get_message().as_str();
    (amqp.kind() == &AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) && message.contains("inequivalent arg"))
        .then(|| message.strip_prefix("PRECONDITION_FAILED - ").unwrap_or(message).to_owned())
}

/// `queue.bind` from a spec.
pub(super) async fn bind(channel: &Channel, binding: &BindingSpec) -> Result<(), BusError> {
    channel
        .queue_bind(
            short_string(&binding.queue, "queue name")?,
            short_string(&binding.exchange, "exchange name")?,
            short_string(&binding.routing_key, "routing key")?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| BusError::Declare {
            what: "binding",
            name: format!("{} -> {} ({})", binding.exchange, binding.queue, binding.routing_key),
            source: source.into(),
        })
}

/// `queue` as the broker has it (ready messages and consumers), or `None` when it does not exist:
/// a passive declaration, which answers whatever the queue's arguments. The channel is used up
/// (a refusal closes it anyway), so it is closed here.
pub(super) async fn passive_declare(
    channel: Channel,
    queue: &str,
    operation: &'static str,
) -> Result<Option<lapin::Queue>, BusError> {
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    match channel.queue_declare(short_string(queue, "queue name")?, options, FieldTable::default()).await {
        Ok(declared) => {
            close_quietly(&channel).await;
            Ok(Some(declared))
        }
        Err(source) if is_not_found(&source) => Ok(None),
        Err(source) => Err(BusError::Broker { operation, source: source.into() }),
    }
}

/// Closes a helper channel; a failure only means it is already gone.
pub(super) async fn close_quietly(channel: &Channel) {
    if let Err(error) = channel.close(REPLY_SUCCESS, "done".into()).await {
        tracing::debug!(error = %error, "closing a channel failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    /// The arguments of `queue` in `topology`'s declarations, as `name=value` texts.
    fn arguments_of(topology: &Topology, queue: &str) -> Vec<String> {
        let declarations = topology.declarations();
        let spec = declarations.queues.iter().find(|spec| spec.name == queue).expect("the queue is declared");
        let mut texts: Vec<String> = arguments(spec)
            .inner()
            .iter()
            .map(|(name, value)| match value {
                AMQPValue::LongString(text) => format!("{name}={text}"),
                other => format!("{name}={other:?}"),
            })
            .collect();
        texts.sort();
        texts
    }

    #[test]
    fn quorum_queues_dead_letter_at_least_once_and_classic_ones_name_no_type() {
        let quorum = Topology { queue_type: QueueType::Quorum, ..Topology::new("t") };
        assert_eq!(
            arguments_of(&quorum, "t.dispatch"),
            [
                "x-dead-letter-exchange=t.dead_letter",
                "x-dead-letter-strategy=at-least-once",
                "x-overflow=reject-publish",
                "x-queue-type=quorum",
            ]
        );
        assert_eq!(arguments_of(&quorum, "t.dead_letter"), ["x-queue-type=quorum"], "nothing to dead-letter to");
        let classic = Topology { queue_type: QueueType::Classic, ..Topology::new("t") };
        assert_eq!(arguments_of(&classic, "t.dispatch"), ["x-dead-letter-exchange=t.dead_letter"]);
        assert!(arguments_of(&classic, "t.dead_letter").is_empty());
    }
}
