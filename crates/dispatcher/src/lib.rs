//! The dispatcher: takes the job batches the router publishes on the jobs exchange and makes the
//! HTTP callouts (docs/kazoo.md#delivery, docs/kazoo.md#auto-disable).
//!
//! - Jobs of one batch are delivered concurrently, many batches are in flight (prefetch), and
//!   callouts are bounded overall and per host.
//! - Jobs of slow hosts go to a slow lane with a window of its own, so a dead host's timeouts
//!   do not hold back the batches of healthy ones.
//! - Failures are retried with exponential backoff and jitter through broker delay queues
//!   ([`delay`]): no worker sleeps, and pending retries survive restarts.
//! - Each attempt is recorded (failures always, successes on request) through a batching writer
//!   that keeps what it cannot write yet ([`writer`]); a batch is acknowledged once its retries
//!   are confirmed, never waiting for the database, so a database outage stops no delivery and
//!   repeats no callout.
//! - Failure counts are shared by all replicas through the store; a hook failing too often, or
//!   answering `410 Gone`, is disabled, announced to the routers, and notified.
//! - Targets are checked against the address actually connected to ([`client`]).
//!
//! [`run`] is the whole service; the modules are public for tests and tools.

mod cache;
pub mod client;
pub mod delay;
mod engine;
mod failures;
pub mod metrics;
pub mod request;
pub mod retry_after;
pub mod settings;
pub mod signing;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use webhooks_bus::{Bus, BusError, Consumer};
use webhooks_model::retry::PolicyError;
use webhooks_model::time::{gregorian_from_unix, unix_now};
use webhooks_storage::{StorageError, Store};

use crate::client::{CalloutClient, ClientSettings, ClientSetupError};
use crate::delay::DelayQueues;
use crate::engine::{Engine, Lane};
pub use crate::engine::{GONE, TOO_MANY_FAILURES};
pub use crate::metrics::DispatcherMetrics;
pub use crate::settings::{DispatcherSettings, SettingError};
use crate::writer::{AttemptWriter, Bookkeeping};

/// Failure-count rows untouched for this long are pruned: far beyond any sensible window.
const FAILURE_ROW_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why the dispatcher stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    /// The retry settings are invalid.
    #[error("invalid retry settings")]
    Settings(#[from] PolicyError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientSetupError),
    /// Declaring the delay queues or consuming the dispatch queue failed at start.
    #[error("bus operation failed")]
    Bus(#[from] BusError),
    /// The bus was closed while the dispatcher ran.
    #[error("the bus closed under the dispatcher")]
    BusClosed,
}

/// Runs the dispatcher until `shutdown` is cancelled: consumes the dispatch queue of `bus`'s
/// topology, delivers, records and schedules retries. On shutdown it stops taking batches, lets
/// in-flight ones finish for up to `settings.drain_timeout` (the rest go back to the broker
/// unacknowledged), and returns. It also stops, with [`DispatcherError::BusClosed`], when the bus
/// is closed under it.
pub async fn run(
    store: Store,
    bus: Bus,
    settings: DispatcherSettings,
    metrics: DispatcherMetrics,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let policy = settings.retry_policy()?;
    let client = CalloutClient::new(ClientSettings {
        connect_timeout: settings.connect_timeout,
        total_timeout: settings.total_timeout,
        concurrency: settings.concurrency,
        max_connections_per_host: settings.max_connections_per_host,
        slow_after: settings.slow_lane_after,
        pool_idle_timeout: settings.pool_idle_timeout,
        max_response_body: settings.max_response_body,
        allow_private_targets: settings.allow_private_targets,
    })?;
    let delays = DelayQueues::new(bus.topology(), &policy);
    delays.declare(&bus).await?;
    let queue = bus.topology().dispatch_queue();
    let consumer = bus.consume(&queue, settings.prefetch).await?;
    let slow_consumer = bus.consume(&delays.slow_lane(), settings.slow_lane_prefetch).await?;
    let bookkeeping = Bookkeeping {
        batch_size: settings.attempt_batch_size,
        gather_for: settings.attempt_batch_delay,
        capacity: settings.bookkeeping_capacity,
        capacity_bytes: settings.bookkeeping_capacity_bytes,
        drain_timeout: settings.drain_timeout,
    };
    let (writer, writer_task) = AttemptWriter::start(store.clone(), bookkeeping, metrics.writer.clone());
    // A child token: the pruner also stops when the dispatcher stops for another reason.
    let stop_pruner = shutdown.child_token();
    let pruner = tokio::spawn(prune_periodically(store.clone(), settings.clone(), stop_pruner.clone()));
    tracing::info!(queue = %queue, prefetch = settings.prefetch, "dispatcher consuming");
    let drain_timeout = settings.drain_timeout;
    let engine =
        Arc::new(Engine { metrics, ..Engine::new(store, bus.clone(), client, policy, delays, settings, writer) });
    // Both lanes end together: on shutdown, or when the bus closes (which ends both consumers).
    let ((mut in_flight, consumer, bus_closed), (mut slow_in_flight, slow_consumer, _)) = tokio::join!(
        consume(&engine, consumer, Lane::Main, &shutdown),
        consume(&engine, slow_consumer, Lane::Slow, &shutdown)
    );
    stop_pruner.cancel();
    drop(engine);
    let drained = tokio::time::timeout(drain_timeout, async {
        while in_flight.join_next().await.is_some() {}
        while slow_in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left = in_flight.len() + slow_in_flight.len();
        tracing::warn!(left, "in-flight batches abandoned at shutdown; the broker redelivers them");
        for tasks in [&mut in_flight, &mut slow_in_flight] {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
    // Deliveries taken but not started go back to their queues with the consumers.
    drop((consumer, slow_consumer));
    // Every writer handle is gone once the batches are: the writer finishes what it holds.
    if let Err(error) = writer_task.await {
        tracing::error!(error = %error, "attempt writer failed");
    }
    if let Err(error) = pruner.await {
        tracing::error!(error = %error, "pruner failed");
    }
    if bus_closed {
        tracing::error!("the bus closed; dispatcher stopped");
        return Err(DispatcherError::BusClosed);
    }
    tracing::info!("dispatcher stopped");
    Ok(())
}

/// Takes deliveries of `lane` until shutdown (or until the bus closes, which ends the consumer),
/// each handled in a task of its own. Returns the tasks still in flight, the consumer, which must
/// outlive them (their acknowledgements go through its channel), and whether the bus closed.
async fn consume(
    engine: &Arc<Engine>,
    mut consumer: Consumer,
    lane: Lane,
    shutdown: &CancellationToken,
) -> (JoinSet<()>, Consumer, bool) {
    let mut in_flight = JoinSet::new();
    let closed = loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break false,
            Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(error) = finished {
                    tracing::error!(error = %error, "a batch task failed");
                }
                continue;
            }
            // The AMQP consumer subscribes again by itself after a connection loss; it only
            // ends when the bus is closed.
            delivery = consumer.next() => delivery,
        };
        match next {
            Some(delivery) => {
                in_flight.spawn(Arc::clone(engine).handle(delivery, lane));
            }
            None => break true,
        }
    };
    (in_flight, consumer, closed)
}

/// What one prune removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Attempt records older than the retention.
    pub attempts: u64,
    /// Stale failure counts.
    pub failure_counts: u64,
}

/// Deletes attempt records older than `settings.attempt_retention` and failure counts nobody
/// touched for a week.
pub async fn prune(store: &Store, settings: &DispatcherSettings) -> Result<Pruned, StorageError> {
    let now = unix_now();
    let cutoff = now.saturating_sub(settings.attempt_retention);
    let attempts = store.prune_attempts(gregorian_from_unix(i64::try_from(cutoff.as_secs()).unwrap_or(0))).await?;
    let stale = now.saturating_sub(FAILURE_ROW_RETENTION);
    let failure_counts = store.prune_failures(i64::try_from(stale.as_millis()).unwrap_or(0)).await?;
    Ok(Pruned { attempts, failure_counts })
}

/// Prunes every `settings.prune_interval` until shutdown.
async fn prune_periodically(store: Store, settings: DispatcherSettings, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(settings.prune_interval.max(Duration::from_secs(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => match prune(&store, &settings).await {
                Ok(pruned) if pruned.attempts > 0 || pruned.failure_counts > 0 => {
                    tracing::info!(attempts = pruned.attempts, failure_counts = pruned.failure_counts, "pruned");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "pruning failed"),
            },
        }
    }
}
