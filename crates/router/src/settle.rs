//! Settling routed batches: each batch's jobs are published in the background while the next
//! batch is routed; once they are confirmed its events are acknowledged, or requeued when the
//! publish failed. Batches settle in the order they were routed.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tracing::Instrument;
use webhooks_bus::{Bus, Delivery};

use crate::batch::RoutedBatch;
use crate::stats::RouterStats;

/// Batches publishing at once: one confirming while the next is routed and published.
const MAX_IN_FLIGHT: usize = 2;

/// How a batch's publish ended: what its task returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Published {
    /// Every job confirmed; the events were acknowledged.
    Confirmed,
    /// Some job not confirmed; the events were requeued, at this moment.
    Failed(Instant),
}

/// The batches publishing or acknowledging.
pub(crate) struct InFlight {
    bus: Bus,
    stats: Arc<RouterStats>,
    /// The batches' tasks, oldest first; each waits for the one before it to be settled (`done`)
    /// before acknowledging.
    tasks: VecDeque<JoinHandle<Published>>,
    /// Fires when the newest batch in flight is settled.
    last_done: Option<oneshot::Receiver<()>>,
    /// When the latest batch whose publish failed ended.
    last_failure: Option<Instant>,
}

impl InFlight {
    pub(crate) fn new(bus: Bus, stats: Arc<RouterStats>) -> Self {
        Self { bus, stats, tasks: VecDeque::new(), last_done: None, last_failure: None }
    }

    /// Waits until another batch may start publishing: at most [`MAX_IN_FLIGHT`] publish at once,
    /// and waiting here lets the next batch fill up rather than leave as a trickle of small
    /// messages.
    pub(crate) async fn make_room(&mut self) {
        while self.tasks.len() >= MAX_IN_FLIGHT
            && let Some(oldest) = self.tasks.pop_front()
        {
            self.last_failure = self.last_failure.max(failed_at(oldest.await));
        }
    }

    /// When the latest batch whose publish failed ended, if one did; forgets the batches that
    /// have ended.
    pub(crate) fn last_failure(&mut self) -> Option<Instant> {
        let mut last = self.last_failure;
        self.tasks.retain_mut(|task| {
            // A finished task's outcome is ready: one poll reads it.
            let Some(joined) = task.is_finished().then(|| task.now_or_never()).flatten() else {
                return true;
            };
            last = last.max(failed_at(joined));
            false
        });
        self.last_failure = last;
        last
    }

    /// Publishes `routed`'s jobs in the background, then settles its events after the batch
    /// before it.
    pub(crate) fn start(&mut self, routed: RoutedBatch) {
        let (done, last_done) = oneshot::channel();
        let settle = Settle {
            bus: self.bus.clone(),
            stats: Arc::clone(&self.stats),
            routed,
            previous: self.last_done.replace(last_done),
            done,
        };
        // The publish and its confirms run in the background while the next batch is routed;
        // acknowledgements stay in batch order because each batch waits for the one before.
        self.tasks.push_back(tokio::spawn(settle.run().instrument(tracing::Span::current())));
    }

    /// Waits until every batch is settled.
    pub(crate) async fn finish(&mut self) {
        while let Some(task) = self.tasks.pop_front() {
            // Too late to back off: only a panic is worth a word.
            failed_at(task.await);
        }
    }
}

/// When a batch's task ended with a failed publish, if it did; a task that panicked is logged.
fn failed_at(joined: Result<Published, JoinError>) -> Option<Instant> {
    match joined {
        Ok(Published::Failed(at)) => Some(at),
        Ok(Published::Confirmed) => None,
        Err(error) => {
            tracing::error!(error = %error, "publishing a batch failed");
            None
        }
    }
}

/// The second half of a batch: publish its jobs, wait for the previous batch, then acknowledge
/// (or requeue) this one.
struct Settle {
    bus: Bus,
    stats: Arc<RouterStats>,
    routed: RoutedBatch,
    /// Fires when the previous batch is settled (or its task is gone).
    previous: Option<oneshot::Receiver<()>>,
    /// Fired once this batch is settled.
    done: oneshot::Sender<()>,
}

impl Settle {
    async fn run(self) -> Published {
        let RoutedBatch { batch, pending, messages, jobs, job_messages } = self.routed;
        let published = self.bus.publish_all(messages).await;
        // A multiple-acknowledgement covers every earlier delivery: the previous batch must be
        // settled first, or its events could be acknowledged before their jobs are confirmed.
        if let Some(previous) = self.previous {
            // An error only means the previous task is gone, which settles nothing more.
            let _ = previous.await;
        }
        let outcome = match published {
            Ok(()) => {
                self.stats.count_published(jobs, job_messages);
                acknowledge_through(&batch, &pending).await;
                Published::Confirmed
            }
            Err(error) => {
                self.stats.count_publish_failure();
                tracing::warn!(error = %error, events = pending.len(), jobs, "cannot publish jobs; requeueing the events");
                requeue(&batch, &pending).await;
                Published::Failed(Instant::now())
            }
        };
        // The next batch may acknowledge now; nobody waiting is fine.
        let _ = self.done.send(());
        outcome
    }
}

/// Acknowledges the `pending` deliveries of `batch` (and every earlier one) at once.
async fn acknowledge_through(batch: &[Delivery], pending: &[usize]) {
    if let Some(&last) = pending.last()
        && let Err(error) = batch[last].ack_through().await
    {
        // The events will be redelivered and routed again: duplicates, never losses.
        tracing::warn!(error = %error, "cannot acknowledge a routed batch");
    }
}

/// Requeues the `pending` deliveries of `batch`, one by one.
async fn requeue(batch: &[Delivery], pending: &[usize]) {
    for &position in pending {
        if let Err(error) = batch[position].requeue().await {
            // The broker redelivers unacknowledged messages when the channel closes.
            tracing::debug!(error = %error, "cannot requeue an event");
        }
    }
}
