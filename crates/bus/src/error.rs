//! The bus's one error type.

/// What can go wrong on the bus. Messages are lowercase; the broker's error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The initial connection (or its topology) could not be established.
    #[error("cannot connect to the message broker")]
    Connect(#[source] AmqpError),
    /// The broker URL names no address (it is empty, or only commas).
    #[error("the message broker URL names no address")]
    NoAddress,
    /// The broker refused a declaration (often: the object exists with other arguments).
    #[error("cannot declare {what} {name:?}")]
    Declare {
        /// `exchange`, `queue` or `binding`.
        what: &'static str,
        /// The object's name.
        name: String,
        /// The broker's answer.
        #[source]
        source: AmqpError,
    },
    /// The in-process twin's equivalent of a refused declaration.
    #[error("queue {0:?} already exists with other arguments")]
    QueueConflict(String),
    /// One of our queues exists with other arguments than this configuration declares: of the
    /// other type (`bus.queue_type`), or declared otherwise by an earlier version. It is never
    /// redeclared: deleting it would lose its messages.
    #[error(
        "queue {queue:?} exists on the broker with other arguments than this configuration declares \
         ({detail}); convert it, keeping its messages, with `webhooks queues migrate` while no \
         service consumes it, or set WEBHOOKS_BUS__QUEUE_TYPE to the type it has"
    )]
    QueueMismatch {
        /// The queue.
        queue: String,
        /// The broker's words.
        detail: String,
    },
    /// A queue to convert is still used: stopped services neither consume nor publish to it.
    #[error("queue {queue:?} is in use ({why}): stop every service before `webhooks queues migrate`")]
    QueueInUse {
        /// The queue.
        queue: String,
        /// What uses it.
        why: String,
    },
    /// Publishing failed before the broker confirmed the message; it may or may not have been
    /// enqueued, so a retry may duplicate it.
    #[error("cannot publish to exchange {exchange:?} with routing key {routing_key:?}")]
    Publish {
        /// Target exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
        /// The broker's or the connection's error.
        #[source]
        source: AmqpError,
    },
    /// The broker negatively acknowledged the message: it was not enqueued.
    #[error("the broker did not accept the message to exchange {exchange:?} with routing key {routing_key:?}")]
    Unconfirmed {
        /// Target exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
    },
    /// No queue is bound for the message on one of our own exchanges (where a message without a
    /// queue would be lost silently).
    #[error("no queue receives messages on exchange {exchange:?} with routing key {routing_key:?}")]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
    },
    /// The in-process twin has no such exchange (the broker's answer is a [`BusError::Publish`]).
    #[error("exchange {0:?} does not exist")]
    ExchangeNotFound(String),
    /// The queue does not exist.
    #[error("queue {0:?} does not exist")]
    QueueNotFound(String),
    /// An exchange name, queue name or routing key longer than AMQP allows (255 bytes).
    #[error("{what} is longer than 255 bytes")]
    NameTooLong {
        /// Which name.
        what: &'static str,
    },
    /// Consuming could not start.
    #[error("cannot consume from queue {queue:?}")]
    Consume {
        /// The queue.
        queue: String,
        /// The broker's answer.
        #[source]
        source: AmqpError,
    },
    /// Acknowledging, requeueing or rejecting a delivery failed.
    #[error("cannot {action} the delivery")]
    Settle {
        /// `ack`, `requeue` or `dead-letter`.
        action: &'static str,
        /// The connection's error.
        #[source]
        source: AmqpError,
    },
    /// The delivery was already settled, or its consumer (or channel) is gone; the broker
    /// redelivers it.
    #[error("the delivery is no longer held: already settled, or its consumer is gone")]
    Stale,
    /// A broker operation (such as reading a queue's depth) failed.
    #[error("cannot {operation}")]
    Broker {
        /// What was attempted.
        operation: &'static str,
        /// The broker's answer.
        #[source]
        source: AmqpError,
    },
    /// The broker did not answer in time (a connection attempt, confirmations while the broker
    /// blocks publishers, e.g. under a memory alarm), or a settlement went unanswered as its
    /// connection died.
    #[error("timed out: {operation}")]
    Timeout {
        /// What was attempted.
        operation: &'static str,
    },
    /// The broker is unreachable and did not come back within the wait.
    #[error("not connected to the message broker")]
    Disconnected,
    /// [`crate::Bus::close`] was called.
    #[error("the bus is closed")]
    Closed,
}

/// The AMQP client's error, boxed so that [`BusError`] stays small.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AmqpError(Box<lapin::Error>);

impl From<lapin::Error> for AmqpError {
    fn from(error: lapin::Error) -> Self {
        Self(Box::new(error))
    }
}
