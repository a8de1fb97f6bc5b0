//! The running router: one task owns the index and alternates between change notices, reloads
//! and batches of events, so the index needs no lock and a change is applied between two batches.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use webhooks_bus::{Bus, Consumer, Delivery};
use webhooks_model::ids::WebhookId;
use webhooks_model::notice::{Action, Change};
use webhooks_storage::{StorageError, Store};

use crate::batch::BatchRouter;
use crate::index::{HookIndex, HookIndexBuilder};
use crate::settle::InFlight;
use crate::stats::RouterStats;
use crate::{RouterError, RouterSettings};

/// How often the router checks whether the bus reconnected (its change queue may have missed
/// notices meanwhile).
const RECONNECTION_CHECK: Duration = Duration::from_secs(1);
/// Change notices held unacknowledged at once: they are applied one by one anyway.
const CHANGE_PREFETCH: u16 = 50;

/// A router that is ready: its index is loaded and its queues are consumed. Created by
/// [`Router::start`]; does its work in [`Router::run`].
pub struct Router {
    store: Store,
    bus: Bus,
    settings: RouterSettings,
    routing: BatchRouter,
    index: HookIndex,
    stats: Arc<RouterStats>,
    /// Kazoo events. Dropped with the router (even mid-batch), so the broker redelivers what was
    /// not acknowledged.
    events: Consumer,
    /// Change notices, on this router's private queue.
    changes: Consumer,
    in_flight: InFlight,
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
        let change_queue = bus.private_queue(&bus.topology().change_notice_bindings()).await?;
        let change_consumer = bus.consume(&change_queue, CHANGE_PREFETCH).await?;
        let stats = Arc::new(RouterStats::default());
        let index = load_index(&store, settings.reload_page_size).await?;
        stats.count_reload();
        stats.set_hooks(index.hook_count());
        tracing::info!(hooks = index.hook_count(), accounts = index.account_count(), "hook index loaded");
        let event_queue = bus.topology().router_queue();
        let event_consumer = bus.consume(&event_queue, settings.prefetch).await?;
        let routing = BatchRouter::new(bus.clone(), &settings, Arc::clone(&stats));
        let in_flight = InFlight::new(bus.clone(), Arc::clone(&stats));
        Ok(Router {
            store,
            bus,
            settings,
            routing,
            in_flight,
            index,
            stats,
            events: event_consumer,
            changes: change_consumer,
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
        let mut reload_timer = reload_timer(self.settings.reload_interval);
        let mut reload: Option<JoinHandle<Result<HookIndex, StorageError>>> = None;
        // Changes applied while a reload runs: the reload may have read the store before them,
        // so they are applied again to the reloaded index.
        let mut changes_during_reload: Vec<Change> = Vec::new();
        let mut reconnection_check = tokio::time::interval(RECONNECTION_CHECK);
        reconnection_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reconnections = self.bus.reconnections();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                change = self.changes.next() => {
                    let delivery = change.ok_or(RouterError::ConsumerClosed("change notice"))?;
                    match self.on_change(&delivery).await {
                        ChangeOutcome::Applied(change) if reload.is_some() => changes_during_reload.push(change),
                        ChangeOutcome::Applied(_) | ChangeOutcome::Ignored => {}
                        // The index may have missed a change: reload it in full.
                        ChangeOutcome::Failed if reload.is_none() => reload = Some(self.spawn_reload()),
                        // The running reload may have read the store before the change: the timer
                        // starts another one once it is done.
                        ChangeOutcome::Failed => reload_timer.reset_after(self.settings.retry_backoff),
                    }
                }
                loaded = async { match reload.as_mut() { Some(task) => task.await, None => std::future::pending().await } } => {
                    reload = None;
                    match loaded {
                        Ok(Ok(index)) => {
                            self.index = index;
                            self.stats.count_reload();
                            for change in std::mem::take(&mut changes_during_reload) {
                                if let Err(error) = self.apply(&change).await {
                                    tracing::warn!(error = %error, "cannot re-apply a change after a reload");
                                    reload_timer.reset_after(self.settings.retry_backoff);
                                }
                            }
                            self.stats.set_hooks(self.index.hook_count());
                            tracing::info!(hooks = self.index.hook_count(), accounts = self.index.account_count(), "hook index reloaded");
                        }
                        Ok(Err(error)) => {
                            changes_during_reload.clear();
                            tracing::warn!(error = %error, "cannot reload the hook index; keeping the current one");
                            reload_timer.reset_after(self.settings.retry_backoff);
                        }
                        Err(error) => {
                            changes_during_reload.clear();
                            tracing::error!(error = %error, "the hook index reload task failed");
                            reload_timer.reset_after(self.settings.retry_backoff);
                        }
                    }
                }
                _ = reload_timer.tick(), if reload.is_none() => {
                    reload = Some(self.spawn_reload());
                }
                _ = reconnection_check.tick() => {
                    let now = self.bus.reconnections();
                    if now != reconnections {
                        // The private change queue was declared anew: notices published while
                        // the connection was down are lost, so resynchronise from the store.
                        tracing::info!(reconnections = now, "bus reconnected; reloading the hook index");
                        reconnections = now;
                        if reload.is_none() {
                            reload = Some(self.spawn_reload());
                        } else {
                            reload_timer.reset_after(self.settings.retry_backoff);
                        }
                    }
                }
                delivery = self.events.next() => {
                    let first = delivery.ok_or(RouterError::ConsumerClosed("event"))?;
                    // At most MAX_IN_FLIGHT batches publish at once: waiting here lets the next
                    // batch fill up rather than leave as a trickle of small messages.
                    self.in_flight.make_room().await;
                    let batch = self.routing.gather(&mut self.events, first);
                    // After a failed publish, give the bus time to recover instead of spinning
                    // on requeued events.
                    if self.in_flight.take_failure() {
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            () = tokio::time::sleep(self.settings.retry_backoff) => {}
                        }
                    }
                    self.process(batch).await;
                }
            }
        }
        if let Some(task) = reload {
            task.abort();
        }
        Ok(())
    }

    /// Starts a full reload in the background; the current index keeps serving meanwhile.
    fn spawn_reload(&self) -> JoinHandle<Result<HookIndex, StorageError>> {
        let store = self.store.clone();
        let page_size = self.settings.reload_page_size;
        tokio::spawn(
            async move { load_index(&store, page_size).await }.instrument(tracing::debug_span!("router.reload")),
        )
    }

    /// Reads and applies one change notice, then acknowledges it.
    async fn on_change(&mut self, delivery: &Delivery) -> ChangeOutcome {
        let body: Result<Value, _> = serde_json::from_slice(delivery.body.as_ref());
        let change = match body.as_ref().map(Change::parse) {
            Ok(Ok(change)) => change,
            Ok(Err(error)) => {
                // The bindings can also catch Kazoo's own traffic: not every message is ours.
                tracing::debug!(routing_key = %delivery.routing_key, error = %error, "not a change notice");
                acknowledge(delivery).await;
                return ChangeOutcome::Ignored;
            }
            Err(error) => {
                tracing::warn!(routing_key = %delivery.routing_key, error = %error, "change notice is not json");
                acknowledge(delivery).await;
                return ChangeOutcome::Ignored;
            }
        };
        let result = self.apply(&change).await;
        // Acknowledged either way: requeueing would spin while the store is down, and the reload
        // the caller starts on failure reads the same state.
        acknowledge(delivery).await;
        match result {
            Ok(()) => {
                self.stats.count_change();
                self.stats.set_hooks(self.index.hook_count());
                ChangeOutcome::Applied(change)
            }
            Err(error) => {
                tracing::warn!(error = %error, ?change, "cannot apply a change notice; reloading the index");
                ChangeOutcome::Failed
            }
        }
    }

    /// Applies a change to the index, reading the changed document from the store.
    #[tracing::instrument(level = "debug", skip(self))]
    async fn apply(&mut self, change: &Change) -> Result<(), StorageError> {
        match change {
            Change::Webhook { action: Action::Deleted, id, .. } => {
                self.index.remove_hook(id);
            }
            Change::Webhook { id, .. } => match self.store.webhook_by_id(id).await? {
                Some(webhook) => self.index.upsert_hook(&webhook),
                None => {
                    self.index.remove_hook(id);
                }
            },
            Change::Account { action: Action::Deleted, id } => {
                self.index.remove_account(id);
            }
            Change::Account { id, .. } => match self.store.account(id).await? {
                Some(account) => self.index.upsert_account(&account),
                None => {
                    self.index.remove_account(id);
                }
            },
            Change::Reenabled { account_id, descendants } => {
                for webhook in self.store.enabled_webhooks_of(account_id, *descendants).await? {
                    self.index.upsert_hook(&webhook);
                }
            }
        }
        Ok(())
    }

    /// Routes a batch of events and starts publishing their jobs ([`InFlight::start`]); the batch is
    /// acknowledged only once every job is confirmed, with one multiple-acknowledgement through
    /// its last delivery. Malformed events are dead-lettered at once.
    #[tracing::instrument(name = "router.batch", level = "debug", skip_all, fields(batch.size = batch.len(), jobs))]
    async fn process(&mut self, batch: Vec<Delivery>) {
        let Some(routed) = self.routing.route(batch, &self.index).await else {
            return;
        };
        self.in_flight.start(routed);
    }
}

/// What became of a change notice.
enum ChangeOutcome {
    /// Applied to the index.
    Applied(Change),
    /// Not a change notice of ours.
    Ignored,
    /// The store could not be read: the index may be stale.
    Failed,
}

/// Reads every account, then every enabled hook page by page, into a fresh index.
async fn load_index(store: &Store, page_size: u32) -> Result<HookIndex, StorageError> {
    let page_size = page_size.max(1);
    let accounts = store.all_accounts().await?;
    let mut builder = HookIndexBuilder::new(&accounts);
    drop(accounts);
    let mut after: Option<WebhookId> = None;
    loop {
        let page = store.enabled_webhooks_page(after.as_ref(), page_size).await?;
        builder.add_hooks(&page);
        match page.last() {
            Some(last) if page.len() == page_size as usize => after = Some(last.id.clone()),
            _ => break,
        }
    }
    Ok(builder.finish())
}

/// Acknowledges one delivery, logging a failure (the broker then redelivers it).
async fn acknowledge(delivery: &Delivery) {
    if let Err(error) = delivery.ack().await {
        tracing::debug!(error = %error, routing_key = %delivery.routing_key, "cannot acknowledge a change notice");
    }
}

/// The timer of periodic reloads; the first tick comes one interval after start.
fn reload_timer(interval: Duration) -> Interval {
    let mut timer = tokio::time::interval_at(Instant::now() + interval, interval);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}
