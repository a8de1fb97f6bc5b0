//! The running router: one task owns the index and alternates between change notices, reloads
//! and batches of events, so the index needs no lock and a change is applied between two batches.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use webhooks_bus::{Bus, Consumer, Delivery};
use webhooks_storage::Store;

use crate::batch::BatchRouter;
use crate::numbers::NumberOwners;
use crate::settle::InFlight;
use crate::stats::RouterStats;
use crate::sync::IndexSync;
use crate::{RouterError, RouterSettings};

/// A router that is ready: its index is loaded and its queues are consumed. Created by
/// [`Router::start`]; does its work in [`Router::run`].
pub struct Router {
    sync: IndexSync,
    routing: BatchRouter,
    in_flight: InFlight,
    stats: Arc<RouterStats>,
    /// Kazoo events. Dropped with the router (even mid-batch), so the broker redelivers what was
    /// not acknowledged.
    events: Consumer,
    /// Wait after a failed publish before routing again.
    retry_backoff: Duration,
}

/// Runs a router until `shutdown` is cancelled: [`Router::start`] then [`Router::run`].
pub async fn run(
    store: Store,
    bus: Bus,
    settings: RouterSettings,
    shutdown: CancellationToken,
) -> Result<(), RouterError> {
    Router::start(store, bus, settings).await?.run(shutdown).await
}

impl Router {
    /// Subscribes to change notices, loads the index, and starts consuming events. When this
    /// returns, the router is ready: every change published from now on will be applied, and
    /// events are being received (they are routed once [`Router::run`] is polled).
    ///
    /// The change queue is declared before the index is read, so a change made while the index
    /// loads is applied afterwards rather than lost.
    #[tracing::instrument(name = "router.start", skip_all, fields(bus.prefix = %bus.topology().prefix))]
    pub async fn start(store: Store, bus: Bus, settings: RouterSettings) -> Result<Router, RouterError> {
        let stats = Arc::new(RouterStats::default());
        let numbers = settings.numbers.clone().map(|couch| Arc::new(NumberOwners::new(couch)));
        let sync = IndexSync::start(store, &bus, &settings, Arc::clone(&stats), numbers.clone()).await?;
        let events = bus.consume(&bus.topology().router_queue(), settings.prefetch).await?;
        Ok(Router {
            sync,
            routing: BatchRouter::new(bus.clone(), &settings, Arc::clone(&stats), numbers),
            in_flight: InFlight::new(bus, Arc::clone(&stats)),
            stats,
            events,
            retry_backoff: settings.retry_backoff,
        })
    }

    /// The router's counters, shared: they keep counting while [`Router::run`] runs.
    pub fn stats(&self) -> Arc<RouterStats> {
        Arc::clone(&self.stats)
    }

    /// Routes events until `shutdown` is cancelled; the batch in progress is finished first.
    /// Returns an error only when a consumer ends on its own (the bus is gone for good).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RouterError> {
        let result = self.serve(&shutdown).await;
        // The batches already routed are published and acknowledged before the consumers go.
        self.in_flight.finish().await;
        tracing::info!(events = self.stats.events(), jobs = self.stats.jobs(), "router stopped");
        result
    }

    /// The loop. Change notices go first so a disabled hook stops as soon as possible.
    async fn serve(&mut self, shutdown: &CancellationToken) -> Result<(), RouterError> {
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                signal = self.sync.next_signal() => self.sync.handle(signal).await?,
                delivery = self.events.next() => self.on_event(delivery, shutdown).await?,
            }
        }
        self.sync.stop();
        Ok(())
    }

    /// Routes the batch `first` opens, joined by whatever else has arrived.
    async fn on_event(&mut self, first: Option<Delivery>, shutdown: &CancellationToken) -> Result<(), RouterError> {
        let first = first.ok_or(RouterError::ConsumerClosed("event"))?;
        self.in_flight.make_room().await;
        let batch = self.routing.gather(&mut self.events, first);
        // After a failed publish, give the bus time to recover instead of spinning on requeued
        // events; counted from the failure, so events arriving long after it (a broker back from
        // an outage) are not held up.
        if let Some(failed_at) = self.in_flight.last_failure() {
            // Cut short by a shutdown: the batch is still routed.
            let _ = tokio::time::timeout_at(failed_at + self.retry_backoff, shutdown.cancelled()).await;
        }
        self.process(batch).await;
        Ok(())
    }

    /// Routes a batch of events and starts publishing their jobs ([`InFlight::start`]); the batch is
    /// acknowledged only once every job is confirmed, with one multiple-acknowledgement through
    /// its last delivery. Malformed events are dead-lettered at once.
    #[tracing::instrument(name = "router.batch", level = "debug", skip_all, fields(batch.size = batch.len(), jobs))]
    async fn process(&mut self, batch: Vec<Delivery>) {
        let Some(routed) = self.routing.route(batch, self.sync.index()).await else {
            return;
        };
        self.in_flight.start(routed);
    }
}
