//! Declaring the topology: exchanges, queues and bindings from their specs.

use lapin::Channel;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

use super::REPLY_SUCCESS;
use super::message::{long_string, short_string};
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
async fn declare_exchange(channel: &Channel, spec: &ExchangeSpec) -> Result<(), BusError> {
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
    let mut arguments = FieldTable::default();
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
    let options = QueueDeclareOptions {
        passive: false,
        durable: spec.durable,
        exclusive: spec.exclusive,
        auto_delete: spec.auto_delete,
        nowait: false,
    };
    channel
        .queue_declare(short_string(&spec.name, "queue name")?, options, arguments)
        .await
        .map(|_| ())
        .map_err(|source| BusError::Declare { what: "queue", name: spec.name.clone(), source: source.into() })
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

/// Closes a helper channel; a failure only means it is already gone.
pub(super) async fn close_quietly(channel: &Channel) {
    if let Err(error) = channel.close(REPLY_SUCCESS, "done".into()).await {
        tracing::debug!(error = %error, "closing a channel failed");
    }
}
