//! The RabbitMQ backend, on lapin.
//!
//! One connection per [`AmqpBus`]: a publishing channel in confirm mode, a short-lived channel
//! per declaration, a channel per consumer (so its prefetch and its failures are its own).
//!
//! Reconnection is ours rather than lapin's automatic recovery, because after a reconnect we must
//! declare the whole topology again (Kazoo's exchanges are not durable and vanish with a broker
//! restart, taking our bindings with them) and re-create private queues under the same names. A
//! supervisor task watches the connection; when it drops, the supervisor reconnects with
//! exponential backoff (100 ms doubling to 500 ms, forever, each attempt logged), redeclares
//! everything and publishes the new connection. Meanwhile publishes wait for it (bounded), and
//! consumers subscribe again on their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind, Event};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::topology::{BindingSpec, Declarations, ExchangeKind, ExchangeSpec, QueueSpec, Topology};
use crate::{Body, BusError, DEFAULT_CONTENT_TYPE, Outgoing};

mod consumer;

use consumer::Subscription;
pub(crate) use consumer::{AmqpConsumer, settle};

/// First pause between reconnection (or re-subscription) attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts: a returning broker is found within half a second, so work
/// flows again within the two seconds clients are promised (at the cost of two attempts, and two
/// warnings, a second per service while it is away).
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long an operation waits for a lost connection to come back before failing.
const RECONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long one connection attempt (TCP, handshake, declarations) may take: an unreachable host
/// can otherwise hold a connect for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a publish may wait for its confirmations. A broker that blocks publishers (memory
/// or disk alarm) would otherwise hold the caller, and the messages it is responsible for,
/// indefinitely; after this the caller gets an error and can requeue its input.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the connection even without an event (lapin does not
/// report every way a connection can end as an event).
const STATUS_POLL: Duration = Duration::from_secs(1);
/// AMQP reply code for a normal close.
const REPLY_SUCCESS: u16 = 200;

/// A RabbitMQ connection that repairs itself. Cheap to clone.
#[derive(Clone)]
pub struct AmqpBus {
    /// Shared by clones and consumers; dropping the last one stops the supervisor.
    inner: Arc<Inner>,
}

/// Owner of the shared state's lifetime.
struct Inner {
    /// What the supervisor also holds.
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The supervisor holds `shared` too; this is what tells it to close the connection.
        self.shared.shutdown.cancel();
    }
}

/// State shared with the supervisor task.
struct Shared {
    /// Where to connect.
    url: String,
    /// What to declare.
    topology: Topology,
    /// Shown by RabbitMQ (`connection_name`), so operators (and tests) can find the connection.
    connection_name: String,
    /// The current connection; `None` while reconnecting.
    link: watch::Sender<Option<Arc<Link>>>,
    /// Declared since connecting, to declare again after a reconnect.
    registry: Mutex<Registry>,
    /// Cancelled when the bus closes.
    shutdown: CancellationToken,
    /// Nudges the supervisor to look at the connection now (an operation just failed).
    wake: Notify,
    /// Successful reconnections.
    reconnections: AtomicU64,
}

/// Queues declared after connecting.
#[derive(Default)]
struct Registry {
    /// Delay queues, by name.
    delay_queues: HashMap<String, QueueSpec>,
    /// Private queues with their bindings, by name.
    private_queues: HashMap<String, (QueueSpec, Vec<BindingSpec>)>,
}

/// One live connection.
struct Link {
    /// The connection.
    connection: Connection,
    /// The confirm-mode channel for publishing, re-opened if the broker closed it (a channel
    /// error such as publishing to a missing exchange closes only the channel).
    publisher: tokio::sync::Mutex<Option<Channel>>,
}

impl Link {
    /// Whether the connection is open.
    fn alive(&self) -> bool {
        self.connection.status().connected()
    }

    /// The publishing channel, opened (in confirm mode) if needed.
    async fn publisher(&self) -> Result<Channel, lapin::Error> {
        let mut slot = self.publisher.lock().await;
        if let Some(channel) = slot.as_ref().filter(|channel| channel.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = self.connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }
}

impl Shared {
    /// The current connection, if any.
    fn current(&self) -> Option<Arc<Link>> {
        self.link.borrow().clone()
    }
}

impl AmqpBus {
    /// Connects, declares the topology and starts the supervisor.
    #[tracing::instrument(name = "bus.connect", skip_all, fields(bus.prefix = %topology.prefix))]
    pub(crate) async fn connect(url: &str, topology: Topology) -> Result<Self, BusError> {
        let connection_name = format!("webhooks {}", topology.prefix);
        let shared = Arc::new(Shared {
            url: url.to_owned(),
            topology,
            connection_name,
            link: watch::channel(None).0,
            registry: Mutex::new(Registry::default()),
            shutdown: CancellationToken::new(),
            wake: Notify::new(),
            reconnections: AtomicU64::new(0),
        });
        let link = establish_in_time(&shared).await?;
        shared.link.send_replace(Some(Arc::new(link)));
        tokio::spawn(supervise(Arc::clone(&shared)));
        tracing::info!("connected to the message broker");
        Ok(Self { inner: Arc::new(Inner { shared }) })
    }

    /// The names it was declared with.
    pub(crate) fn topology(&self) -> &Topology {
        &self.inner.shared.topology
    }

    /// Whether the connection is open right now.
    pub(crate) fn is_connected(&self) -> bool {
        self.inner.shared.current().is_some_and(|link| link.alive())
    }

    /// Successful reconnections so far.
    pub(crate) fn reconnections(&self) -> u64 {
        self.inner.shared.reconnections.load(Ordering::Relaxed)
    }

    /// The open connection, waiting (bounded) for the supervisor to restore a lost one.
    async fn live_link(&self) -> Result<Arc<Link>, BusError> {
        let shared = &self.inner.shared;
        if shared.shutdown.is_cancelled() {
            return Err(BusError::Closed);
        }
        if let Some(link) = shared.current().filter(|link| link.alive()) {
            return Ok(link);
        }
        // The supervisor may not have noticed yet.
        shared.wake.notify_one();
        let mut receiver = shared.link.subscribe();
        let restored = async {
            match receiver.wait_for(|link| link.as_ref().is_some_and(|link| link.alive())).await {
                Ok(link) => link.clone(),
                Err(_) => None,
            }
        };
        tokio::select! {
            () = shared.shutdown.cancelled() => Err(BusError::Closed),
            restored = tokio::time::timeout(RECONNECT_WAIT, restored) => restored.ok().flatten().ok_or(BusError::Disconnected),
        }
    }

    /// Publishes every message on the confirm channel, then awaits every confirmation.
    pub(crate) async fn publish_all(&self, messages: Vec<Outgoing>) -> Result<(), BusError> {
        let prepared = messages.into_iter().map(Prepared::new).collect::<Result<Vec<_>, _>>()?;
        let link = self.live_link().await?;
        tokio::time::timeout(CONFIRM_TIMEOUT, self.publish_on(&link, &prepared))
            .await
            .unwrap_or(Err(BusError::Timeout { operation: "wait for the broker to confirm a publish" }))
    }

    /// Sends the messages pipelined, then awaits their confirmations in order.
    async fn publish_on(&self, link: &Link, prepared: &[Prepared]) -> Result<(), BusError> {
        let channel = link.publisher().await.map_err(|source| {
            self.inner.shared.wake.notify_one();
            BusError::Broker { operation: "open a publishing channel", source: source.into() }
        })?;
        let mut confirms = Vec::with_capacity(prepared.len());
        for message in prepared {
            let options = BasicPublishOptions { mandatory: message.mandatory, immediate: false };
            let sent = channel
                .basic_publish(
                    message.exchange.clone(),
                    message.routing_key.clone(),
                    options,
                    &message.body,
                    message.properties.clone(),
                )
                .await;
            match sent {
                Ok(confirm) => confirms.push((message, confirm)),
                Err(source) => return Err(self.publish_failed(message, source)),
            }
        }
        for (message, confirm) in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(None)) => {}
                Ok(Confirmation::Ack(Some(_))) => {
                    return Err(BusError::Unroutable {
                        exchange: message.exchange.to_string(),
                        routing_key: message.routing_key.to_string(),
                    });
                }
                // NotRequested cannot happen on a confirm channel; never take it for success.
                Ok(Confirmation::Nack(_) | Confirmation::NotRequested) => {
                    return Err(BusError::Unconfirmed {
                        exchange: message.exchange.to_string(),
                        routing_key: message.routing_key.to_string(),
                    });
                }
                Err(source) => return Err(self.publish_failed(message, source)),
            }
        }
        Ok(())
    }

    /// The error for a publish cut short; nudges the supervisor in case the connection died.
    fn publish_failed(&self, message: &Prepared, source: lapin::Error) -> BusError {
        self.inner.shared.wake.notify_one();
        BusError::Publish {
            exchange: message.exchange.to_string(),
            routing_key: message.routing_key.to_string(),
            source: source.into(),
        }
    }

    /// Subscribes to `queue`.
    #[tracing::instrument(name = "bus.consume", skip(self), fields(bus.queue = queue))]
    pub(crate) async fn consume(&self, queue: &str, prefetch: u16) -> Result<AmqpConsumer, BusError> {
        let subscription = self.subscribe(queue, prefetch).await?;
        Ok(AmqpConsumer {
            bus: self.clone(),
            queue: queue.to_owned(),
            prefetch,
            subscription: Some(subscription),
            pause: MIN_BACKOFF,
            attempts: 0,
        })
    }

    /// A channel with `prefetch` and a manual-ack consumer of `queue` on it.
    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Subscription, BusError> {
        let name = short_string(queue, "queue name")?;
        let link = self.live_link().await?;
        let failed = |source: lapin::Error| {
            if is_not_found(&source) {
                BusError::QueueNotFound(queue.to_owned())
            } else {
                BusError::Consume { queue: queue.to_owned(), source: source.into() }
            }
        };
        let channel = link.connection.create_channel().await.map_err(failed)?;
        // A private queue whose only consumer was cancelled is gone (auto-delete); declaring it
        // again is harmless when it still exists.
        let private = lock(&self.inner.shared.registry).private_queues.get(queue).cloned();
        if let Some((spec, bindings)) = private {
            declare_queue(&channel, &spec).await?;
            for binding in &bindings {
                bind(&channel, binding).await?;
            }
        }
        // Per consumer (not global): each consumer gets its own window.
        channel.basic_qos(prefetch, BasicQosOptions { global: false }).await.map_err(failed)?;
        let tag = format!("webhooks.{}", uuid::Uuid::new_v4().simple());
        // Default options: manual acknowledgement, not exclusive (competing consumers).
        let consumer = channel
            .basic_consume(name, tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(failed)?;
        Ok(Subscription { _channel: channel, consumer })
    }

    /// Declares and binds a private queue, remembered for reconnects.
    #[tracing::instrument(name = "bus.private_queue", skip_all)]
    pub(crate) async fn private_queue<E: AsRef<str>>(&self, bindings: &[(E, String)]) -> Result<String, BusError> {
        let topology = &self.inner.shared.topology;
        let name = topology.private_queue_name();
        let spec = topology.private_queue(name.clone());
        let bindings: Vec<BindingSpec> = bindings
            .iter()
            .map(|(exchange, routing_key)| BindingSpec {
                queue: name.clone(),
                exchange: exchange.as_ref().to_owned(),
                routing_key: routing_key.clone(),
            })
            .collect();
        let channel = self.declaration_channel().await?;
        declare_queue(&channel, &spec).await?;
        for binding in &bindings {
            bind(&channel, binding).await?;
        }
        close_quietly(&channel).await;
        lock(&self.inner.shared.registry).private_queues.insert(name.clone(), (spec, bindings));
        Ok(name)
    }

    /// Declares a delay queue, remembered for reconnects.
    #[tracing::instrument(name = "bus.declare_delay_queue", skip(self), fields(bus.queue = %spec.name))]
    pub(crate) async fn declare_delay_queue(&self, spec: QueueSpec) -> Result<(), BusError> {
        let channel = self.declaration_channel().await?;
        declare_queue(&channel, &spec).await?;
        close_quietly(&channel).await;
        lock(&self.inner.shared.registry).delay_queues.insert(spec.name.clone(), spec);
        Ok(())
    }

    /// Ready messages in `queue` (a passive declaration).
    pub(crate) async fn queue_depth(&self, queue: &str) -> Result<u32, BusError> {
        let name = short_string(queue, "queue name")?;
        let channel = self.declaration_channel().await?;
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let declared = channel.queue_declare(name, options, FieldTable::default()).await;
        close_quietly(&channel).await;
        match declared {
            Ok(declared) => Ok(declared.message_count()),
            Err(source) if is_not_found(&source) => Err(BusError::QueueNotFound(queue.to_owned())),
            Err(source) => Err(BusError::Broker { operation: "read a queue's depth", source: source.into() }),
        }
    }

    /// A fresh channel for declarations: a refused declaration closes its channel, and must not
    /// take the publishing channel or a consumer with it.
    async fn declaration_channel(&self) -> Result<Channel, BusError> {
        let link = self.live_link().await?;
        link.connection.create_channel().await.map_err(|source| {
            self.inner.shared.wake.notify_one();
            BusError::Broker { operation: "open a channel", source: source.into() }
        })
    }

    /// Stops the supervisor and closes the connection; unacknowledged deliveries are requeued by
    /// the broker.
    pub(crate) async fn close(&self) {
        let shared = &self.inner.shared;
        shared.shutdown.cancel();
        if let Some(link) = shared.link.send_replace(None) {
            close_connection(&link).await;
        }
    }
}

/// Watches the connection and replaces it when it drops, until shutdown.
async fn supervise(shared: Arc<Shared>) {
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        if let Some(link) = shared.current() {
            watch_until_lost(&shared, &link).await;
            if shared.shutdown.is_cancelled() {
                // Whoever takes the link closes it: `close` may have taken it already, and two
                // closes racing on one connection can wait forever for the broker's close-ok.
                if let Some(link) = shared.link.send_replace(None) {
                    close_connection(&link).await;
                }
                return;
            }
            tracing::warn!(bus.prefix = %shared.topology.prefix, "connection to the message broker lost; reconnecting");
            shared.link.send_replace(None);
        }
        if !reconnect(&shared).await {
            return;
        }
    }
}

/// Returns once `link` is no longer connected, or at shutdown.
async fn watch_until_lost(shared: &Shared, link: &Link) {
    let mut events = link.connection.events_listener();
    let mut events_open = true;
    while link.alive() {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = shared.wake.notified() => {}
            event = events.next(), if events_open => match event {
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(reason = %reason, "the message broker blocks publishing");
                }
                Some(Event::ConnectionUnblocked) => tracing::info!("the message broker accepts publishing again"),
                // Any other event is a reason to look at the connection.
                Some(_) => {}
                // An ended stream leaves the polling.
                None => events_open = false,
            },
            () = tokio::time::sleep(STATUS_POLL) => {}
        }
    }
}

/// Reconnects with exponential backoff; false at shutdown.
async fn reconnect(shared: &Arc<Shared>) -> bool {
    let mut pause = MIN_BACKOFF;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let established = tokio::select! {
            () = shared.shutdown.cancelled() => return false,
            established = establish_in_time(shared) => established,
        };
        match established {
            Ok(link) => {
                shared.link.send_replace(Some(Arc::new(link)));
                shared.reconnections.fetch_add(1, Ordering::Relaxed);
                tracing::info!(bus.prefix = %shared.topology.prefix, attempt, "reconnected to the message broker");
                return true;
            }
            Err(error) => {
                tracing::warn!(
                    bus.prefix = %shared.topology.prefix,
                    attempt,
                    retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    error = %error,
                    "cannot reconnect to the message broker",
                );
            }
        }
        tokio::select! {
            () = shared.shutdown.cancelled() => return false,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// [`establish`], bounded by [`CONNECT_TIMEOUT`].
async fn establish_in_time(shared: &Shared) -> Result<Link, BusError> {
    tokio::time::timeout(CONNECT_TIMEOUT, establish(shared))
        .await
        .unwrap_or(Err(BusError::Timeout { operation: "connect to the message broker" }))
}

/// Opens a connection and declares everything on it: the topology, then what was declared since
/// connecting (delay and private queues).
async fn establish(shared: &Shared) -> Result<Link, BusError> {
    let properties = ConnectionProperties::default().with_connection_name(shared.connection_name.as_str().into());
    let connection =
        Connection::connect(&shared.url, properties).await.map_err(|source| BusError::Connect(source.into()))?;
    let channel = connection.create_channel().await.map_err(|source| BusError::Connect(source.into()))?;
    declare_all(&channel, &shared.topology.declarations()).await?;
    let (delay_queues, private_queues) = {
        let registry = lock(&shared.registry);
        (
            registry.delay_queues.values().cloned().collect::<Vec<_>>(),
            registry.private_queues.values().cloned().collect::<Vec<_>>(),
        )
    };
    for spec in &delay_queues {
        declare_queue(&channel, spec).await?;
    }
    for (spec, bindings) in &private_queues {
        declare_queue(&channel, spec).await?;
        for binding in bindings {
            bind(&channel, binding).await?;
        }
    }
    close_quietly(&channel).await;
    let link = Link { connection, publisher: tokio::sync::Mutex::new(None) };
    // Opened now so the first publish does not pay for it, and a broker refusing confirm mode
    // fails the connection rather than every publish.
    link.publisher().await.map_err(|source| BusError::Connect(source.into()))?;
    Ok(link)
}

/// Declares exchanges, then queues, then bindings.
async fn declare_all(channel: &Channel, declarations: &Declarations) -> Result<(), BusError> {
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
async fn declare_queue(channel: &Channel, spec: &QueueSpec) -> Result<(), BusError> {
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
async fn bind(channel: &Channel, binding: &BindingSpec) -> Result<(), BusError> {
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
async fn close_quietly(channel: &Channel) {
    if let Err(error) = channel.close(REPLY_SUCCESS, "done".into()).await {
        tracing::debug!(error = %error, "closing a channel failed");
    }
}

/// Closes a connection politely, waiting a bounded time for the broker's answer so a process
/// never hangs on exit.
async fn close_connection(link: &Link) {
    if !link.alive() {
        return;
    }
    match tokio::time::timeout(CLOSE_TIMEOUT, link.connection.close(REPLY_SUCCESS, "bus closed".into())).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(error = %error, "closing the broker connection failed"),
        Err(_) => tracing::debug!("the broker did not answer the close in time"),
    }
}

/// How long closing the connection may wait for the broker.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A message converted for lapin, names checked.
struct Prepared {
    /// Target exchange.
    exchange: ShortString,
    /// Routing key.
    routing_key: ShortString,
    /// See [`Outgoing::mandatory`].
    mandatory: bool,
    /// Payload.
    body: Body,
    /// Content type, delivery mode, headers, expiration.
    properties: BasicProperties,
}

impl Prepared {
    /// Checks names and builds the properties.
    fn new(message: Outgoing) -> Result<Self, BusError> {
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
fn short_string(text: &str, what: &'static str) -> Result<ShortString, BusError> {
    ShortString::try_new(text).map_err(|_| BusError::NameTooLong { what })
}

/// A header or argument value.
fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// Whether the broker answered 404 (no such queue or exchange).
fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp) if amqp.kind() == &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
