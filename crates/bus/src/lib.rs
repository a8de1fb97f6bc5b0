//! The message bus: one narrow interface over RabbitMQ (AMQP 0-9-1, with lapin) and over an
//! in-process twin that needs no broker.
//!
//! The router consumes Kazoo events and publishes delivery jobs, the dispatcher consumes jobs
//! and parks retries in delay queues, the API publishes change notices; all of them only see
//! [`Bus`], [`Outgoing`], [`Consumer`] and [`Delivery`]. Which backend runs is decided once, by
//! [`Bus::connect`]: an AMQP URL selects RabbitMQ, no URL selects the twin, so the single binary
//! runs on a bare machine. The same test suite runs against both.
//!
//! Guarantees common to both backends:
//! - [`Bus::publish`] returns once the message is safely enqueued (publisher confirms on AMQP).
//! - Deliveries are acknowledged by hand; an unacknowledged delivery is redelivered when its
//!   consumer goes away.
//! - Every name the system uses comes from [`Topology`], declared in one place (`topology.rs`).

mod amqp;
mod body;
mod error;
mod memory;
mod topic;
mod topology;
pub mod trace;

use std::fmt;

use bytes::Bytes;
use webhooks_model::ids::random_id;
use webhooks_model::job::{DeliveryJob, JobBatch};
use webhooks_model::notice::Change;
use webhooks_model::trace::{TRACE_PARENT_HEADER, TraceParent};

pub use amqp::AmqpBus;
pub use body::{Body, MessageValue};
pub use error::{AmqpError, BusError};
pub use memory::InProcessBus;
pub use topic::topic_matches;
pub use topology::{
    ACCOUNT_WAIT_MS, DISPATCH_ROUTING_KEY, DelayQueue, KAZOO_EXCHANGES, NOTIFICATIONS_EXCHANGE, Topology,
    WEBHOOK_DISABLED_ROUTING_KEY,
};

/// The content type of a message that does not say otherwise.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// The header of a dead letter saying, as a short code, why it was set aside (`not_json`, ...).
pub const DEAD_LETTER_REASON_HEADER: &str = "x-webhooks-reason";
/// The header of a dead letter with the error, in words.
pub const DEAD_LETTER_ERROR_HEADER: &str = "x-webhooks-error";
/// The header of a dead letter naming the exchange it was first published to.
pub const DEAD_LETTER_EXCHANGE_HEADER: &str = "x-webhooks-original-exchange";

/// A queue [`migrate_queues`] converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMigration {
    /// The queue.
    pub queue: String,
    /// The messages it holds again, now declared as configured.
    pub messages: u64,
}

/// Converts each of the system's durable queues (those of `topology`, and `delay_queues`) that
/// exists on the RabbitMQ broker at `url` with other arguments than `topology` declares, such as
/// a classic queue once quorum queues are configured, keeping its messages (see
/// `amqp/migrate.rs`). Every service must be stopped: a queue still consumed is refused with
/// [`BusError::QueueInUse`]. The queues converted; none when everything was declared as
/// configured already. Running it again after an interruption finishes the work.
pub async fn migrate_queues(
    url: &str,
    topology: &Topology,
    delay_queues: &[DelayQueue],
) -> Result<Vec<QueueMigration>, BusError> {
    amqp::migrate_queues(url, topology, delay_queues).await
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Target exchange; `""` is the default exchange, which routes to the queue named by the
    /// routing key.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Payload, passed through untouched.
    pub body: Body,
    /// AMQP content type; `None` means [`DEFAULT_CONTENT_TYPE`].
    pub content_type: Option<String>,
    /// AMQP application headers, as text.
    pub headers: Vec<(String, String)>,
    /// Written to disk by the broker (delivery mode 2), so it survives a broker restart.
    pub persistent: bool,
    /// Per-message TTL in milliseconds: in a queue with a dead-letter exchange, the message is
    /// dead-lettered once it expires (how the dispatcher's delay queues schedule retries).
    pub expiration_ms: Option<u64>,
}

impl Outgoing {
    /// A transient JSON message without headers or expiration.
    pub fn new(exchange: &str, routing_key: &str, body: impl Into<Bytes>) -> Self {
        Self {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            body: Body::from(body.into()),
            content_type: None,
            headers: Vec::new(),
            persistent: false,
            expiration_ms: None,
        }
    }

    /// A persistent JSON message: written to disk by the broker.
    pub fn persistent(exchange: &str, routing_key: &str, body: impl Into<Bytes>) -> Self {
        Self {
            content_type: Some(DEFAULT_CONTENT_TYPE.to_owned()),
            persistent: true,
            ..Self::new(exchange, routing_key, body)
        }
    }

    /// A persistent JSON message carrying `value` itself: see [`Body::value`].
    pub fn persistent_value<T: MessageValue>(exchange: &str, routing_key: &str, value: T) -> Self {
        Self { body: Body::value(value), ..Self::persistent(exchange, routing_key, Bytes::new()) }
    }

    /// `jobs` as one batch message, as the router publishes delivery jobs and the dispatcher
    /// parks retries.
    pub fn jobs(exchange: &str, routing_key: &str, jobs: Vec<DeliveryJob>) -> Self {
        Self::persistent_value(exchange, routing_key, JobBatch { jobs })
    }

    /// The notice of `change`, as Kazoo publishes document changes, on the exchange `topology`
    /// gives it ([`Topology::change_notice_exchange`]); every router applies it to its index.
    pub fn change_notice(topology: &Topology, change: &Change, node: &str) -> Self {
        let (routing_key, body) = change.to_message(node, &random_id());
        Self::persistent(&topology.change_notice_exchange(change), &routing_key, body.to_string())
    }

    /// `jobs` as one batch for the dispatch queue, as the router publishes delivery jobs.
    pub fn job_batch(topology: &Topology, jobs: Vec<DeliveryJob>) -> Self {
        Self::jobs(&topology.jobs_exchange(), DISPATCH_ROUTING_KEY, jobs)
    }

    /// A persistent copy of `delivery` for `exchange`, with its routing key, content type,
    /// headers and body.
    pub fn copy_of(delivery: &Delivery, exchange: &str) -> Self {
        // The body itself: a value the in-process twin carries stays unwritten.
        let mut copy =
            Self { body: delivery.body.clone(), ..Self::persistent(exchange, &delivery.routing_key, Bytes::new()) };
        copy.content_type.clone_from(&delivery.content_type);
        copy.headers.clone_from(&delivery.headers);
        copy
    }

    /// The message carrying `trace` in its `traceparent` header, so its consumer continues the trace.
    pub fn with_trace_parent(mut self, trace: &TraceParent) -> Self {
        self.headers.push((TRACE_PARENT_HEADER.to_owned(), trace.to_string()));
        self
    }

    /// Whether an unroutable message is an error. On Kazoo's exchanges a message nobody listens
    /// to is normal (they are broadcasts); on ours (jobs, delay queues through the default
    /// exchange, dead letters) it means a missing queue and a lost message.
    pub(crate) fn mandatory(&self) -> bool {
        !KAZOO_EXCHANGES.contains(&self.exchange.as_str())
    }
}

/// A connection to the bus. Cheap to clone: clones share the connection (or the in-process
/// broker).
///
/// Two [`Bus::connect`] calls without a URL make two *separate* in-process brokers that see
/// nothing of each other; clone one `Bus` to share it. Two calls with the same URL share the
/// broker, as separate connections.
///
/// The bus closes when [`Bus::close`] is called or when the last clone, [`Consumer`] and
/// in-flight operation are gone.
#[derive(Clone)]
pub enum Bus {
    /// RabbitMQ, over one AMQP connection that reconnects by itself.
    Amqp(AmqpBus),
    /// The in-process twin.
    InProcess(InProcessBus),
}

impl fmt::Debug for Bus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self {
            Self::Amqp(_) => "amqp",
            Self::InProcess(_) => "in-process",
        };
        formatter.debug_struct("Bus").field("backend", &backend).field("prefix", &self.topology().prefix).finish()
    }
}

impl Bus {
    /// Connects (`url` is `Some`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`, or several such
    /// URLs separated by commas: the nodes of a cluster, tried in turn) or starts an
    /// in-process broker (`None`), then declares the whole topology: Kazoo's exchanges, the
    /// router queue and its bindings, the jobs exchange, the dispatch queue and the dead letters.
    ///
    /// The first connection is not retried (beyond trying each address once): a wrong URL or
    /// an absent broker fails here, for the caller to report (or retry). Later connection losses
    /// are repaired in the background, starting with the address after the one lost.
    pub async fn connect(url: Option<&str>, topology: Topology) -> Result<Bus, BusError> {
        match url {
            Some(url) => Ok(Self::Amqp(AmqpBus::connect(url, topology).await?)),
            None => Ok(Self::InProcess(InProcessBus::start(topology)?)),
        }
    }

    /// The names this bus was declared with.
    pub fn topology(&self) -> &Topology {
        match self {
            Self::Amqp(bus) => bus.topology(),
            Self::InProcess(bus) => bus.topology(),
        }
    }

    /// Publishes one message and returns once the broker confirmed it (in-process: once it is
    /// enqueued).
    ///
    /// Fails if the broker refuses it, or if it is unroutable on one of our own exchanges (see
    /// [`BusError::Unroutable`]). While the AMQP connection is down this waits (up to ten
    /// seconds) for it to come back, then publishes once: a publish cut by a connection loss is
    /// not retried here but returned as an error, because its fate is unknown and only the caller
    /// knows whether a duplicate is acceptable (the router and dispatcher requeue their input).
    pub async fn publish(&self, message: Outgoing) -> Result<(), BusError> {
        self.publish_all(vec![message]).await
    }

    /// Publishes several messages, pipelined, then waits for every confirmation. On error some of
    /// them may have been published; retrying all of them gives duplicates, never losses.
    pub async fn publish_all(&self, messages: Vec<Outgoing>) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        match self {
            Self::Amqp(bus) => bus.publish_all(messages).await,
            Self::InProcess(bus) => bus.publish_all(messages),
        }
    }

    /// Sets `delivery` aside in the dead-letter queue with why (`reason`, a short code, and
    /// `error`, in words, in [`DEAD_LETTER_REASON_HEADER`] and [`DEAD_LETTER_ERROR_HEADER`]): a
    /// copy is published there, with its routing key, headers and body, and the delivery is
    /// acknowledged once the broker has the copy. When the copy cannot be published, the delivery
    /// is rejected instead, so the broker dead-letters it without the reason: never lost.
    pub async fn dead_letter(&self, delivery: &Delivery, reason: &str, error: &str) -> Result<(), BusError> {
        let mut copy = Outgoing::copy_of(delivery, &self.topology().dead_letter_exchange());
        copy.headers.extend([
            (DEAD_LETTER_REASON_HEADER.to_owned(), reason.to_owned()),
            (DEAD_LETTER_ERROR_HEADER.to_owned(), error.to_owned()),
            (DEAD_LETTER_EXCHANGE_HEADER.to_owned(), delivery.exchange.clone()),
        ]);
        match self.publish(copy).await {
            Ok(()) => delivery.ack().await,
            Err(publish_error) => {
                tracing::warn!(error = %publish_error, reason, "dead letter not published; rejected to the broker's dead-letter exchange");
                delivery.dead_letter().await
            }
        }
    }

    /// Starts consuming `queue` with at most `prefetch` unacknowledged deliveries (0: no limit).
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        let inner = match self {
            Self::Amqp(bus) => ConsumerInner::Amqp(Box::new(bus.consume(queue, prefetch).await?)),
            Self::InProcess(bus) => ConsumerInner::InProcess(bus.consume(queue, prefetch)?),
        };
        Ok(Consumer { inner })
    }

    /// Declares a queue private to this replica, bound with `bindings` (`(exchange, routing key)`),
    /// and returns its name (`<prefix>.private.<random>`). Used for change notices, which every
    /// replica must see.
    ///
    /// The queue is exclusive and auto-delete: it disappears with the connection, or when its
    /// consumer is dropped. After a reconnect the AMQP backend declares it again under the same
    /// name, but messages published while the connection was down are lost; watch
    /// [`Bus::reconnections`] to know when to resynchronise.
    pub async fn private_queue<E: AsRef<str>>(&self, bindings: &[(E, String)]) -> Result<String, BusError> {
        match self {
            Self::Amqp(bus) => bus.private_queue(bindings).await,
            Self::InProcess(bus) => bus.private_queue(bindings),
        }
    }

    /// Declares (idempotently) `delay`, a queue retries wait in.
    pub async fn declare_delay_queue(&self, delay: &DelayQueue) -> Result<(), BusError> {
        // Built once here, so both backends declare the very same queue.
        let spec = self.topology().delay_queue(delay);
        match self {
            Self::Amqp(bus) => bus.declare_delay_queue(spec).await,
            Self::InProcess(bus) => bus.declare_delay_queue(spec),
        }
    }

    /// True while connected (in-process: until closed).
    pub fn is_connected(&self) -> bool {
        match self {
            Self::Amqp(bus) => bus.is_connected(),
            Self::InProcess(bus) => bus.is_connected(),
        }
    }

    /// How many times the AMQP connection was re-established since [`Bus::connect`] (always 0
    /// in-process). Private queues may have missed messages across each one.
    pub fn reconnections(&self) -> u64 {
        match self {
            Self::Amqp(bus) => bus.reconnections(),
            Self::InProcess(_) => 0,
        }
    }

    /// Messages ready (not delivered) in `queue`, for metrics and tests.
    pub async fn queue_depth(&self, queue: &str) -> Result<u32, BusError> {
        match self {
            Self::Amqp(bus) => bus.queue_depth(queue).await,
            Self::InProcess(bus) => bus.queue_depth(queue),
        }
    }

    /// Closes the bus: consumers end ([`Consumer::next`] returns `None`), further operations fail
    /// with [`BusError::Closed`], unacknowledged deliveries go back to their queues.
    pub async fn close(&self) {
        match self {
            Self::Amqp(bus) => bus.close().await,
            Self::InProcess(bus) => bus.close(),
        }
    }
}

/// A subscription to one queue.
pub struct Consumer {
    /// The backend's consumer.
    inner: ConsumerInner,
}

/// The backends' consumers.
enum ConsumerInner {
    /// Re-subscribes by itself after connection losses. Boxed: lapin's consumer is large.
    Amqp(Box<amqp::AmqpConsumer>),
    /// Reads the in-process queue.
    InProcess(memory::MemoryConsumer),
}

impl fmt::Debug for Consumer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = match &self.inner {
            ConsumerInner::Amqp(consumer) => consumer.queue(),
            ConsumerInner::InProcess(consumer) => consumer.queue(),
        };
        formatter.debug_struct("Consumer").field("queue", &queue).finish()
    }
}

impl Consumer {
    /// The next delivery; `None` once the bus is closed.
    ///
    /// On AMQP this survives connection losses: it subscribes again once the connection is back
    /// (with exponential backoff, logging each attempt). Deliveries received before a loss can
    /// no longer be settled ([`BusError::Stale`]); the broker redelivers them.
    ///
    /// Cancel-safe: dropping the future loses no message, so it can sit in a `select!`.
    pub async fn next(&mut self) -> Option<Delivery> {
        match &mut self.inner {
            ConsumerInner::Amqp(consumer) => consumer.next().await,
            ConsumerInner::InProcess(consumer) => consumer.next().await,
        }
    }
}

/// One received message. Settle it exactly once: [`Delivery::ack`], [`Delivery::ack_through`],
/// [`Delivery::requeue`] or [`Delivery::dead_letter`]; one never settled is redelivered after its
/// consumer goes away.
pub struct Delivery {
    /// The exchange it was published to (for a dead-lettered message: the dead-letter exchange).
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// The payload, untouched: a malformed message is still delivered, for the caller to judge.
    pub body: Body,
    /// AMQP content type, if any.
    pub content_type: Option<String>,
    /// AMQP application headers with a text or number value (tables and arrays, such as
    /// RabbitMQ's `x-death`, are left out; `x-first-death-queue` and friends are kept).
    pub headers: Vec<(String, String)>,
    /// Delivered before (requeued, or its consumer went away without settling it).
    pub redelivered: bool,
    /// How to settle it.
    acker: Acker,
}

/// The backends' handles for settling a delivery.
enum Acker {
    /// lapin's acker: the delivery tag on its channel.
    Amqp(lapin::Acker),
    /// The in-process consumer's bookkeeping.
    InProcess(memory::MemoryAcker),
}

/// The four ways to settle a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Done with it.
    Ack,
    /// Done with it and with every earlier unsettled delivery of the same consumer.
    AckThrough,
    /// Put it back for any consumer.
    Requeue,
    /// Reject it to the queue's dead-letter exchange.
    DeadLetter,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body stays out of logs: it may carry personal data.
        formatter
            .debug_struct("Delivery")
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("body", &self.body)
            .field("redelivered", &self.redelivered)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// The value of application header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The trace its publisher continues, from a valid `traceparent` header (Kazoo sets none).
    pub fn trace_parent(&self) -> Option<TraceParent> {
        self.header(TRACE_PARENT_HEADER)?.parse().ok()
    }

    /// Acknowledges it: the queue forgets it.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.settle(Settlement::Ack).await
    }

    /// Acknowledges it and every earlier unsettled delivery of the same consumer (AMQP
    /// `multiple`), so a batch costs one acknowledgement. Do not settle the earlier ones again.
    pub async fn ack_through(&self) -> Result<(), BusError> {
        self.settle(Settlement::AckThrough).await
    }

    /// Puts it back at the head of its queue for redelivery to any consumer.
    pub async fn requeue(&self) -> Result<(), BusError> {
        self.settle(Settlement::Requeue).await
    }

    /// Rejects it without requeueing: the queue's dead-letter exchange receives it (RabbitMQ adds
    /// `x-death`; both backends set `x-first-death-queue` and `x-first-death-reason`). Without a
    /// dead-letter exchange it is dropped. [`Bus::dead_letter`] also says why.
    pub async fn dead_letter(&self) -> Result<(), BusError> {
        self.settle(Settlement::DeadLetter).await
    }

    /// Settles through the backend.
    async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        match &self.acker {
            Acker::Amqp(acker) => amqp::settle(acker, settlement).await,
            Acker::InProcess(acker) => acker.settle(settlement),
        }
    }
}
