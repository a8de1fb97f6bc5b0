//! Keeping the hook index current: loaded at start, changed by the API's change notices, and
//! reloaded in full periodically (the safety net), after a change could not be applied, and after
//! the bus reconnected (the change queue may have missed notices).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::Instrument;
use webhooks_bus::{Bus, Consumer, Delivery};
use webhooks_model::couch::changed_number;
use webhooks_model::ids::WebhookId;
use webhooks_model::notice::{Action, Change};
use webhooks_storage::{StorageError, Store};

use crate::index::{HookIndex, HookIndexBuilder};
use crate::numbers::NumberOwners;
use crate::stats::RouterStats;
use crate::{RouterError, RouterSettings};

/// How often the router checks whether the bus reconnected (its change queue may have missed
/// notices meanwhile).
const RECONNECTION_CHECK: Duration = Duration::from_secs(1);
/// Change notices held unacknowledged at once: they are applied one by one anyway.
const CHANGE_PREFETCH: u16 = 50;

/// A full load of the index, running in the background.
type Reload = JoinHandle<Result<HookIndex, StorageError>>;

/// The hook index and what keeps it current.
pub(crate) struct IndexSync {
    store: Store,
    bus: Bus,
    stats: Arc<RouterStats>,
    page_size: u32,
    /// Wait after a failed reload before trying again.
    retry_backoff: Duration,
    index: HookIndex,
    /// Change notices, on this router's private queue.
    changes: Consumer,
    /// The reload running, if any; the current index keeps serving meanwhile.
    reload: Option<Reload>,
    /// Changes applied while a reload runs: the reload may have read the store before them, so
    /// they are applied again to the reloaded index.
    changes_during_reload: Vec<Change>,
    reload_timer: Interval,
    reconnection_check: Interval,
    /// The bus's reconnections when last checked.
    reconnections: u64,
    /// The owners of numbers kept, forgotten on Kazoo's number notices.
    numbers: Option<Arc<NumberOwners>>,
}

/// What the index's keeper has to handle next.
pub(crate) enum Signal {
    /// A change notice, or `None` when its consumer ended.
    Change(Option<Delivery>),
    /// The running reload ended.
    Reloaded(Result<Result<HookIndex, StorageError>, JoinError>),
    /// Time for the periodic reload.
    ReloadDue,
    /// Time to check whether the bus reconnected.
    ReconnectionCheck,
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

impl IndexSync {
    /// Subscribes to change notices, then loads the index: declared before the index is read,
    /// the change queue receives a change made while the index loads, so it is applied afterwards
    /// rather than lost.
    pub(crate) async fn start(
        store: Store,
        bus: &Bus,
        settings: &RouterSettings,
        stats: Arc<RouterStats>,
        numbers: Option<Arc<NumberOwners>>,
    ) -> Result<Self, RouterError> {
        let change_queue = bus.private_queue(&bus.topology().change_notice_bindings()).await?;
        let changes = bus.consume(&change_queue, CHANGE_PREFETCH).await?;
        let index = load_index(&store, settings.reload_page_size).await?;
        stats.count_reload();
        stats.set_hooks(index.hook_count());
        tracing::info!(hooks = index.hook_count(), accounts = index.account_count(), "hook index loaded");
        let mut reconnection_check = tokio::time::interval(RECONNECTION_CHECK);
        reconnection_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Self {
            store,
            bus: bus.clone(),
            stats,
            page_size: settings.reload_page_size,
            retry_backoff: settings.retry_backoff,
            index,
            changes,
            reload: None,
            changes_during_reload: Vec::new(),
            reload_timer: reload_timer(settings.reload_interval),
            reconnection_check,
            reconnections: bus.reconnections(),
            numbers,
        })
    }

    /// The index as it is now.
    pub(crate) fn index(&self) -> &HookIndex {
        &self.index
    }

    /// Waits for the next thing to handle, change notices first so a disabled hook stops as soon
    /// as possible. Cancel-safe: nothing is taken before it is returned.
    pub(crate) async fn next_signal(&mut self) -> Signal {
        tokio::select! {
            biased;
            change = self.changes.next() => Signal::Change(change),
            loaded = reload_finished(&mut self.reload) => {
                self.reload = None;
                Signal::Reloaded(loaded)
            }
            _ = self.reload_timer.tick(), if self.reload.is_none() => Signal::ReloadDue,
            _ = self.reconnection_check.tick() => Signal::ReconnectionCheck,
        }
    }

    /// Handles what [`IndexSync::next_signal`] returned; fails only when the change consumer ended.
    pub(crate) async fn handle(&mut self, signal: Signal) -> Result<(), RouterError> {
        match signal {
            Signal::Change(delivery) => {
                let delivery = delivery.ok_or(RouterError::ConsumerClosed("change notice"))?;
                self.on_change(&delivery).await;
            }
            Signal::Reloaded(loaded) => self.on_reloaded(loaded).await,
            Signal::ReloadDue => self.reload_now(),
            Signal::ReconnectionCheck => self.check_reconnection(),
        }
        Ok(())
    }

    /// Stops the reload running, if any.
    pub(crate) fn stop(&mut self) {
        if let Some(task) = self.reload.take() {
            task.abort();
        }
    }

    async fn on_change(&mut self, delivery: &Delivery) {
        match self.read_change(delivery).await {
            ChangeOutcome::Applied(change) if self.reload.is_some() => self.changes_during_reload.push(change),
            ChangeOutcome::Applied(_) | ChangeOutcome::Ignored => {}
            // The index may have missed a change: reload it in full.
            ChangeOutcome::Failed => self.reload_now(),
        }
    }

    /// Reads and applies one change notice, then acknowledges it.
    async fn read_change(&mut self, delivery: &Delivery) -> ChangeOutcome {
        if let (Some(numbers), Some(number)) = (&self.numbers, changed_number(&delivery.routing_key)) {
            numbers.forget(&number).await;
            acknowledge(delivery).await;
            return ChangeOutcome::Ignored;
        }
        let Some(change) = parse_change(delivery) else {
            acknowledge(delivery).await;
            return ChangeOutcome::Ignored;
        };
        let result = self.apply(&change).await;
        // Acknowledged either way: requeueing would spin while the store is down, and the reload
        // the caller starts on failure reads the same state.
        acknowledge(delivery).await;
        if let Err(error) = result {
            tracing::warn!(error = %error, ?change, "cannot apply a change notice; reloading the index");
            return ChangeOutcome::Failed;
        }
        self.stats.count_change();
        self.stats.set_hooks(self.index.hook_count());
        ChangeOutcome::Applied(change)
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

    /// Puts the reloaded index in place, with the changes applied meanwhile; keeps the current
    /// one when the reload failed.
    async fn on_reloaded(&mut self, loaded: Result<Result<HookIndex, StorageError>, JoinError>) {
        let changes = std::mem::take(&mut self.changes_during_reload);
        let index = match loaded {
            Ok(Ok(index)) => index,
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "cannot reload the hook index; keeping the current one");
                return self.retry_later();
            }
            Err(error) => {
                tracing::error!(error = %error, "the hook index reload task failed");
                return self.retry_later();
            }
        };
        std::mem::replace(&mut self.index, index).retire();
        self.stats.count_reload();
        for change in changes {
            if let Err(error) = self.apply(&change).await {
                tracing::warn!(error = %error, "cannot re-apply a change after a reload");
                self.retry_later();
            }
        }
        self.stats.set_hooks(self.index.hook_count());
        tracing::info!(hooks = self.index.hook_count(), accounts = self.index.account_count(), "hook index reloaded");
    }

    fn check_reconnection(&mut self) {
        let now = self.bus.reconnections();
        if now == self.reconnections {
            return;
        }
        // The private change queue was declared anew: notices published while the connection
        // was down are lost, so resynchronise from the store.
        tracing::info!(reconnections = now, "bus reconnected; reloading the hook index");
        self.reconnections = now;
        self.reload_now();
    }

    /// Starts a full reload in the background. When one runs already, it may have read the store
    /// too early: the timer starts another one once it is done.
    fn reload_now(&mut self) {
        if self.reload.is_some() {
            return self.retry_later();
        }
        let store = self.store.clone();
        let page_size = self.page_size;
        self.reload = Some(tokio::spawn(
            async move { load_index(&store, page_size).await }.instrument(tracing::debug_span!("router.reload")),
        ));
    }

    /// Lets the timer start the next reload a back-off from now (once the running one is done).
    fn retry_later(&mut self) {
        self.reload_timer.reset_after(self.retry_backoff);
    }
}

/// The change notice `delivery` carries; `None` (logged) when it carries none.
fn parse_change(delivery: &Delivery) -> Option<Change> {
    let body: Value = match serde_json::from_slice(delivery.body.as_ref()) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(routing_key = %delivery.routing_key, error = %error, "change notice is not json");
            return None;
        }
    };
    match Change::parse(&body) {
        Ok(change) => Some(change),
        Err(error) => {
            // The bindings can also catch Kazoo's own traffic: not every message is ours.
            tracing::debug!(routing_key = %delivery.routing_key, error = %error, "not a change notice");
            None
        }
    }
}

/// The end of `reload`; never, when none runs.
async fn reload_finished(reload: &mut Option<Reload>) -> Result<Result<HookIndex, StorageError>, JoinError> {
    match reload.as_mut() {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
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

/// Acknowledges one change notice, logging a failure (the broker then redelivers it).
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
