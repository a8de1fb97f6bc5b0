//! Messages as lapin takes them, and AMQP's string types.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::{Body, BusError, DEFAULT_CONTENT_TYPE, Outgoing};

/// A message converted for lapin, names checked.
pub(super) struct Prepared {
    /// Target exchange.
    pub(super) exchange: ShortString,
    /// Routing key.
    pub(super) routing_key: ShortString,
    /// See [`Outgoing::mandatory`].
    pub(super) mandatory: bool,
    /// Payload.
    pub(super) body: Body,
    /// Content type, delivery mode, headers, expiration.
    pub(super) properties: BasicProperties,
}

impl Prepared {
    /// Checks names and builds the properties.
    pub(super) fn new(message: Outgoing) -> Result<Self, BusError> {
        let mandatory = message.mandatory();
        let content_type = message.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE);
        let mut properties = BasicProperties::default()
            .with_content_type(short_string(content_type, "content type")?)
            // 2 = persistent (written to disk in a durable queue), 1 = transient.
            .with_delivery_mode(if message.persistent { 2 } else { 1 });
        if !message.headers.is_empty() {
            let mut headers = FieldTable::default();
            for (name, value) in &message.headers {
                headers.insert(short_string(name, "header name")?, long_string(value));
            }
            properties = properties.with_headers(headers);
        }
        if let Some(expiration) = message.expiration_ms {
            // AMQP carries the per-message TTL as a decimal string of milliseconds.
            properties = properties.with_expiration(expiration.to_string().into());
        }
        Ok(Self {
            exchange: short_string(&message.exchange, "exchange name")?,
            routing_key: short_string(&message.routing_key, "routing key")?,
            mandatory,
            body: message.body,
            properties,
        })
    }
}

/// A name as AMQP's short string, refusing what does not fit instead of panicking.
pub(super) fn short_string(text: &str, what: &'static str) -> Result<ShortString, BusError> {
    ShortString::try_new(text).map_err(|_| BusError::NameTooLong { what })
}

/// A header or argument value.
pub(super) fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}
