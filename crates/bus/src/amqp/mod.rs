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
//!
//! Here: the bus and its operations. The connection and its supervisor are in `link`, topology
//! declarations in `declare`, message conversion for lapin in `message`, consuming in `consumer`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, ErrorKind};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::topology::{BindingSpec, QueueSpec, Topology};
use crate::{BusError, Outgoing};

mod consumer;
mod declare;
mod link;
mod message;
mod migrate;

use consumer::Subscription;
pub(crate) use consumer::{AmqpConsumer, settle};
use declare::{bind, close_quietly, declare_queue, passive_declare};
use link::{Link, close_connection, establish_in_time, supervise};
use message::{Prepared, short_string};
pub(crate) use migrate::migrate_queues;

/// First pause between reconnection (or re-subscription) attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts: a returning broker is found within half a second, so work
/// flows again within the two seconds clients are promised (at the cost of two attempts, and two
/// warnings, a second per service while it is away).
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long an operation waits for a lost connection to come back before failing.
const RECONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long a publish may wait for its confirmations. A broker that blocks publishers (memory
/// or disk alarm) would otherwise hold the caller, and the messages it is responsible for,
/// indefinitely; after this the caller gets an error and can requeue its input.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// The broker's addresses (a cluster's nodes), tried in turn.
    urls: Vec<String>,
    /// The address to try first: the one connected to, until its connection is lost.
    first_url: AtomicUsize,
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
        let urls: Vec<String> =
            url.split(',').map(str::trim).filter(|url| !url.is_empty()).map(str::to_owned).collect();
        if urls.is_empty() {
            return Err(BusError::NoAddress);
        }
        let connection_name = format!("webhooks {}", topology.prefix);
        let shared = Arc::new(Shared {
            urls,
            first_url: AtomicUsize::new(0),
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
        let channel = self.declaration_channel().await?;
        let declared = passive_declare(channel, queue, "read a queue's depth").await?;
        declared.map(|declared| declared.message_count()).ok_or_else(|| BusError::QueueNotFound(queue.to_owned()))
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

/// Whether the broker answered 404 (no such queue or exchange).
fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp) if amqp.kind() == &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
