//! Consuming in-process: prefetch windows, unsettled deliveries and their settlement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Broker, InProcessBus, Message, Queue, lock};
use crate::{Acker, BusError, Delivery, Settlement};

/// A subscription to an in-process queue.
pub(crate) struct MemoryConsumer {
    /// Shared with its deliveries.
    pub(super) state: Arc<ConsumerState>,
    /// Keeps the bus open while consuming.
    pub(super) _bus: InProcessBus,
}

/// What a consumer and its deliveries share.
pub(super) struct ConsumerState {
    /// For dead-lettering.
    pub(super) broker: Arc<Broker>,
    /// The queue read.
    pub(super) queue: Arc<Queue>,
    /// One permit per delivery that may be outstanding; `None` for no limit.
    pub(super) window: Option<Arc<Semaphore>>,
    /// Delivered, not yet settled, by delivery tag. Each holds its prefetch permit.
    pub(super) unacked: Mutex<BTreeMap<u64, Held>>,
    /// The next delivery tag.
    pub(super) next_tag: AtomicU64,
}

/// An unsettled delivery.
pub(super) struct Held {
    /// The message, to requeue or dead-letter.
    message: Message,
    /// Released with the entry, freeing a prefetch slot.
    _permit: Option<OwnedSemaphorePermit>,
}

impl MemoryConsumer {
    /// The queue read.
    pub(crate) fn queue(&self) -> &str {
        &self.state.queue.spec.name
    }

    /// Waits for a prefetch slot and a message.
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        let state = &self.state;
        let closed = &state.broker.closed;
        let mut permit = match &state.window {
            Some(window) => tokio::select! {
                () = closed.cancelled() => return None,
                permit = Arc::clone(window).acquire_owned() => Some(permit.ok()?),
            },
            None => None,
        };
        loop {
            // Registered before looking, so a message enqueued in between still wakes us.
            let arrived = state.queue.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if closed.is_cancelled() {
                return None;
            }
            // Taken and recorded without an await in between: cancelling next() loses nothing.
            let message = lock(&state.queue.ready).pop_front();
            if let Some(message) = message {
                let tag = state.next_tag.fetch_add(1, Ordering::Relaxed);
                lock(&state.unacked).insert(tag, Held { message: message.clone(), _permit: permit.take() });
                return Some(Delivery {
                    exchange: message.exchange,
                    routing_key: message.routing_key,
                    body: message.body,
                    content_type: message.content_type,
                    headers: message.headers,
                    redelivered: message.redelivered,
                    acker: Acker::InProcess(MemoryAcker { state: Arc::clone(state), tag }),
                });
            }
            tokio::select! {
                () = closed.cancelled() => return None,
                () = &mut arrived => {}
            }
        }
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        // As when an AMQP channel closes: whatever was not settled goes back, in order, at the head.
        let held = std::mem::take(&mut *lock(&self.state.unacked));
        if !held.is_empty() {
            let mut ready = lock(&self.state.queue.ready);
            for (_, held) in held.into_iter().rev() {
                let mut message = held.message;
                message.redelivered = true;
                ready.push_front(message);
            }
            drop(ready);
            self.state.queue.arrived.notify_waiters();
        }
        let queue = &self.state.queue;
        if queue.consumers.fetch_sub(1, Ordering::SeqCst) == 1 && queue.spec.auto_delete {
            self.state.broker.delete_queue(&queue.spec.name);
        }
    }
}

/// Settles one in-process delivery.
pub(crate) struct MemoryAcker {
    /// Its consumer's bookkeeping.
    state: Arc<ConsumerState>,
    /// Its delivery tag.
    tag: u64,
}

impl MemoryAcker {
    /// Applies `settlement`; [`BusError::Stale`] if the delivery is no longer held.
    pub(crate) fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        let state = &self.state;
        if settlement == Settlement::AckThrough {
            let mut unacked = lock(&state.unacked);
            if !unacked.contains_key(&self.tag) {
                return Err(BusError::Stale);
            }
            let later = unacked.split_off(&(self.tag + 1));
            // Dropping the earlier entries releases their prefetch permits.
            drop(std::mem::replace(&mut *unacked, later));
            return Ok(());
        }
        let held = lock(&state.unacked).remove(&self.tag).ok_or(BusError::Stale)?;
        match settlement {
            Settlement::Ack | Settlement::AckThrough => {}
            Settlement::Requeue => Broker::requeue(&state.queue, held.message),
            Settlement::DeadLetter => state.broker.dead_letter(&state.queue, held.message, "rejected"),
        }
        Ok(())
    }
}
