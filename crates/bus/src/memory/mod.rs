//! The in-process twin of RabbitMQ: the subset of AMQP semantics the services rely on, so the
//! binary runs without a broker and the test suite can run twice.
//!
//! What it keeps: topic (with `*` and `#`), direct and fanout exchanges, the default exchange,
//! named queues with competing consumers, per-consumer prefetch, requeue to the head of the queue,
//! dead-lettering (with `x-first-death-*` headers), per-queue and per-message TTL followed by
//! dead-lettering, auto-delete queues, and redelivery of what a dropped consumer left unsettled.
//! What it drops: durability (everything lives in memory), `x-expires`, and connections (so
//! "exclusive" means nothing more than auto-delete).
//!
//! Here: the broker, its routing, expiry and dead-lettering; consumers and the settlement of
//! their deliveries are in `consumer`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::topology::{BindingSpec, Declarations, ExchangeKind, QueueSpec, Topology};
use crate::{Body, BusError, DEFAULT_CONTENT_TYPE, Outgoing, topic_matches};

mod consumer;

use consumer::ConsumerState;
pub(crate) use consumer::{MemoryAcker, MemoryConsumer};

/// The longest name AMQP allows; enforced here too so a name that works in-process works on
/// RabbitMQ.
const MAX_NAME_BYTES: usize = 255;

/// A handle on an in-process broker. Clones share the broker; [`InProcessBus::start`] makes a new
/// one, which no other broker can see.
#[derive(Clone)]
pub struct InProcessBus {
    /// Shared by clones; the broker closes when the last one goes.
    inner: Arc<Inner>,
}

/// What clones of one bus share.
struct Inner {
    /// The broker.
    broker: Arc<Broker>,
    /// The names it was declared with.
    topology: Topology,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Timers and consumers hold the broker itself; closing tells them to stop.
        self.broker.closed.cancel();
    }
}

impl InProcessBus {
    /// A fresh broker with the whole topology declared.
    pub(crate) fn start(topology: Topology) -> Result<Self, BusError> {
        let broker = Arc::new(Broker::default());
        broker.declare(&topology.declarations())?;
        Ok(Self { inner: Arc::new(Inner { broker, topology }) })
    }

    /// The names it was declared with.
    pub(crate) fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Enqueues every message, stopping at the first failure.
    pub(crate) fn publish_all(&self, messages: Vec<Outgoing>) -> Result<(), BusError> {
        messages.into_iter().try_for_each(|message| self.inner.broker.publish(message))
    }

    /// A consumer of `queue`.
    pub(crate) fn consume(&self, queue: &str, prefetch: u16) -> Result<MemoryConsumer, BusError> {
        let broker = &self.inner.broker;
        broker.ensure_open()?;
        let queue = broker.queue(queue)?;
        queue.consumers.fetch_add(1, Ordering::SeqCst);
        let state = Arc::new(ConsumerState {
            broker: Arc::clone(broker),
            queue,
            // AMQP's prefetch 0 means no limit.
            window: (prefetch > 0).then(|| Arc::new(Semaphore::new(usize::from(prefetch)))),
            unacked: Mutex::new(BTreeMap::new()),
            next_tag: AtomicU64::new(1),
        });
        Ok(MemoryConsumer { state, _bus: self.clone() })
    }

    /// Declares and binds a new auto-delete queue.
    pub(crate) fn private_queue<E: AsRef<str>>(&self, bindings: &[(E, String)]) -> Result<String, BusError> {
        let broker = &self.inner.broker;
        broker.ensure_open()?;
        let name = self.inner.topology.private_queue_name();
        broker.declare_queue(self.inner.topology.private_queue(name.clone()))?;
        for (exchange, routing_key) in bindings {
            let binding = BindingSpec {
                queue: name.clone(),
                exchange: exchange.as_ref().to_owned(),
                routing_key: routing_key.clone(),
            };
            if let Err(error) = broker.bind(binding) {
                broker.delete_queue(&name);
                return Err(error);
            }
        }
        Ok(name)
    }

    /// Declares a TTL queue dead-lettering to the target.
    pub(crate) fn declare_delay_queue(&self, spec: QueueSpec) -> Result<(), BusError> {
        self.inner.broker.ensure_open()?;
        check_name(&spec.name, "queue name")?;
        self.inner.broker.declare_queue(spec)
    }

    /// Until closed.
    pub(crate) fn is_connected(&self) -> bool {
        !self.inner.broker.closed.is_cancelled()
    }

    /// Ready messages in `queue`.
    pub(crate) fn queue_depth(&self, queue: &str) -> Result<u32, BusError> {
        self.inner.broker.ensure_open()?;
        let queue = self.inner.broker.queue(queue)?;
        let depth = lock(&queue.ready).len();
        Ok(u32::try_from(depth).unwrap_or(u32::MAX))
    }

    /// Ends every consumer.
    pub(crate) fn close(&self) {
        self.inner.broker.closed.cancel();
    }
}

/// Exchanges and queues.
#[derive(Default)]
struct Broker {
    /// The tables; never locked across an await, nor while a queue's lock is held.
    state: Mutex<State>,
    /// Cancelled when the bus closes.
    closed: CancellationToken,
    /// Message identities, so an expiry timer finds its message.
    next_message: AtomicU64,
}

/// The broker's tables.
#[derive(Default)]
struct State {
    /// By name; the default exchange `""` is implicit.
    exchanges: HashMap<String, Exchange>,
    /// By name.
    queues: HashMap<String, Arc<Queue>>,
}

/// An exchange and its bindings.
struct Exchange {
    /// How it routes.
    kind: ExchangeKind,
    /// `(queue, binding key)`.
    bindings: Vec<(String, String)>,
}

/// A queue.
struct Queue {
    /// How it was declared.
    spec: QueueSpec,
    /// Messages waiting for a consumer, head first.
    ready: Mutex<VecDeque<Message>>,
    /// Signalled whenever a message becomes ready.
    arrived: Notify,
    /// Live consumers, for auto-delete.
    consumers: AtomicUsize,
}

/// A message inside the broker.
#[derive(Clone)]
struct Message {
    /// Identity, for expiry.
    id: u64,
    /// The exchange it was last published (or dead-lettered) to.
    exchange: String,
    /// Its routing key there.
    routing_key: String,
    /// Payload.
    body: Body,
    /// Content type.
    content_type: Option<String>,
    /// Application headers.
    headers: Vec<(String, String)>,
    /// Delivered before.
    redelivered: bool,
    /// Per-message TTL.
    expiration_ms: Option<u64>,
}

impl Broker {
    /// Fails once closed.
    fn ensure_open(&self) -> Result<(), BusError> {
        if self.closed.is_cancelled() { Err(BusError::Closed) } else { Ok(()) }
    }

    /// Applies a topology: exchanges, queues, bindings.
    fn declare(&self, declarations: &Declarations) -> Result<(), BusError> {
        {
            let mut state = lock(&self.state);
            for exchange in &declarations.exchanges {
                // Like a redeclaration with the same arguments: the existing exchange stays.
                state
                    .exchanges
                    .entry(exchange.name.clone())
                    .or_insert_with(|| Exchange { kind: exchange.kind, bindings: Vec::new() });
            }
        }
        for queue in &declarations.queues {
            self.declare_queue(queue.clone())?;
        }
        for binding in &declarations.bindings {
            self.bind(binding.clone())?;
        }
        Ok(())
    }

    /// Creates a queue, or checks that the existing one was declared the same way.
    fn declare_queue(&self, spec: QueueSpec) -> Result<(), BusError> {
        let mut state = lock(&self.state);
        if let Some(existing) = state.queues.get(&spec.name) {
            return if existing.spec == spec { Ok(()) } else { Err(BusError::QueueConflict(spec.name)) };
        }
        let queue =
            Queue { spec, ready: Mutex::new(VecDeque::new()), arrived: Notify::new(), consumers: AtomicUsize::new(0) };
        state.queues.insert(queue.spec.name.clone(), Arc::new(queue));
        Ok(())
    }

    /// Binds a queue (idempotent).
    fn bind(&self, binding: BindingSpec) -> Result<(), BusError> {
        check_name(&binding.routing_key, "routing key")?;
        let mut state = lock(&self.state);
        if !state.queues.contains_key(&binding.queue) {
            return Err(BusError::QueueNotFound(binding.queue));
        }
        let Some(exchange) = state.exchanges.get_mut(&binding.exchange) else {
            return Err(BusError::ExchangeNotFound(binding.exchange));
        };
        let entry = (binding.queue, binding.routing_key);
        if !exchange.bindings.contains(&entry) {
            exchange.bindings.push(entry);
        }
        Ok(())
    }

    /// Removes a queue and its bindings; its messages are dropped.
    fn delete_queue(&self, name: &str) {
        let mut state = lock(&self.state);
        state.queues.remove(name);
        for exchange in state.exchanges.values_mut() {
            exchange.bindings.retain(|(queue, _)| queue != name);
        }
    }

    /// The queue called `name`.
    fn queue(&self, name: &str) -> Result<Arc<Queue>, BusError> {
        lock(&self.state).queues.get(name).cloned().ok_or_else(|| BusError::QueueNotFound(name.to_owned()))
    }

    /// The queues a message published to `exchange` with `routing_key` reaches, each once even if
    /// several bindings match.
    fn route(&self, exchange: &str, routing_key: &str) -> Result<Vec<Arc<Queue>>, BusError> {
        let state = lock(&self.state);
        if exchange.is_empty() {
            return Ok(state.queues.get(routing_key).cloned().into_iter().collect());
        }
        let Some(exchange_entry) = state.exchanges.get(exchange) else {
            return Err(BusError::ExchangeNotFound(exchange.to_owned()));
        };
        let mut targets: Vec<Arc<Queue>> = Vec::new();
        for (queue, binding_key) in &exchange_entry.bindings {
            let matches = match exchange_entry.kind {
                ExchangeKind::Topic => topic_matches(binding_key, routing_key),
                ExchangeKind::Direct => binding_key == routing_key,
                ExchangeKind::Fanout => true,
            };
            if matches
                && !targets.iter().any(|target| &target.spec.name == queue)
                && let Some(target) = state.queues.get(queue)
            {
                targets.push(Arc::clone(target));
            }
        }
        Ok(targets)
    }

    /// Routes and enqueues one message.
    fn publish(self: &Arc<Self>, message: Outgoing) -> Result<(), BusError> {
        self.ensure_open()?;
        check_name(&message.exchange, "exchange name")?;
        check_name(&message.routing_key, "routing key")?;
        let targets = self.route(&message.exchange, &message.routing_key)?;
        if targets.is_empty() && message.mandatory() {
            return Err(BusError::Unroutable { exchange: message.exchange, routing_key: message.routing_key });
        }
        let message = Message {
            id: self.next_message.fetch_add(1, Ordering::Relaxed),
            exchange: message.exchange,
            routing_key: message.routing_key,
            body: message.body,
            // As on the wire: the AMQP backend always sends a content type.
            content_type: Some(message.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())),
            headers: message.headers,
            redelivered: false,
            expiration_ms: message.expiration_ms,
        };
        for target in targets {
            self.enqueue(&target, message.clone());
        }
        Ok(())
    }

    /// Appends a message to a queue and starts its expiry timer, if it has a TTL.
    fn enqueue(self: &Arc<Self>, queue: &Arc<Queue>, message: Message) {
        let ttl = match (queue.spec.message_ttl_ms, message.expiration_ms) {
            (Some(queue_ttl), Some(own)) => Some(queue_ttl.min(own)),
            (queue_ttl, own) => queue_ttl.or(own),
        };
        if let Some(ttl) = ttl {
            tokio::spawn(expire(Arc::downgrade(self), Arc::downgrade(queue), message.id, Duration::from_millis(ttl)));
        }
        lock(&queue.ready).push_back(message);
        queue.arrived.notify_waiters();
    }

    /// Puts a message back at the head of its queue.
    fn requeue(queue: &Queue, mut message: Message) {
        message.redelivered = true;
        lock(&queue.ready).push_front(message);
        queue.arrived.notify_waiters();
    }

    /// Sends a message that `queue` rejected or expired to the queue's dead-letter exchange, as
    /// RabbitMQ does: the first death is recorded in headers, the expiration is removed (so it
    /// does not expire again), the routing key is replaced if the queue says so.
    fn dead_letter(self: &Arc<Self>, queue: &Queue, mut message: Message, reason: &str) {
        let Some(target) = &queue.spec.dead_letter else {
            tracing::debug!(bus.queue = %queue.spec.name, reason, "no dead-letter exchange; message dropped");
            return;
        };
        if !message.headers.iter().any(|(name, _)| name == "x-first-death-queue") {
            message.headers.push(("x-first-death-exchange".to_owned(), message.exchange.clone()));
            message.headers.push(("x-first-death-queue".to_owned(), queue.spec.name.clone()));
            message.headers.push(("x-first-death-reason".to_owned(), reason.to_owned()));
        }
        message.expiration_ms = None;
        message.redelivered = false;
        message.exchange = target.exchange.clone();
        if let Some(routing_key) = &target.routing_key {
            message.routing_key = routing_key.clone();
        }
        match self.route(&message.exchange, &message.routing_key) {
            Ok(targets) => {
                for target in targets {
                    self.enqueue(&target, message.clone());
                }
            }
            Err(error) => {
                // RabbitMQ drops it silently too; say so at least.
                tracing::warn!(bus.queue = %queue.spec.name, error = %error, "cannot dead-letter a message; dropped");
            }
        }
    }
}

/// Expires message `id` from `queue` after `ttl` unless a consumer took it first.
async fn expire(broker: Weak<Broker>, queue: Weak<Queue>, id: u64, ttl: Duration) {
    let Some(closed) = broker.upgrade().map(|broker| broker.closed.clone()) else { return };
    tokio::select! {
        () = closed.cancelled() => return,
        () = tokio::time::sleep(ttl) => {}
    }
    let (Some(broker), Some(queue)) = (broker.upgrade(), queue.upgrade()) else { return };
    let expired = {
        let mut ready = lock(&queue.ready);
        let position = ready.iter().position(|message| message.id == id);
        position.and_then(|position| ready.remove(position))
    };
    if let Some(message) = expired {
        broker.dead_letter(&queue, message, "expired");
    }
}

/// Refuses names AMQP cannot carry.
fn check_name(name: &str, what: &'static str) -> Result<(), BusError> {
    if name.len() > MAX_NAME_BYTES { Err(BusError::NameTooLong { what }) } else { Ok(()) }
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
