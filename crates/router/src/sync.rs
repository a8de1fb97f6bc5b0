//! Keeping the hook index current: loaded at start, changed by the API's change notices, and
//! reloaded in full periodically (the safety net), after a change could not be applied, and after
//! the bus reconnected (the change queue may have missed notices).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::Instrument;
use webhooks_bus::{Bus, Consumer, Delivery};
use webhooks_model::couch::changed_number;
use webhooks_model::ids::WebhookId;
use webhooks_model::notice::{Action, Change};
use webhooks_storage::{Account, StorageError, Store, Webhook};

use crate::index::{HookIndex, HookIndexBuilder, Refresh};
use crate::numbers::NumberOwners;
use crate::stats::RouterStats;
use crate::{RouterError, RouterSettings};

/// How often the router checks whether the bus reconnected (its change queue may have missed
/// notices meanwhile).
const RECONNECTION_CHECK: Duration = Duration::from_secs(1);
/// Change notices held unacknowledged at once: they are applied one by one anyway.
const CHANGE_PREFETCH: u16 = 50;

/// Reload steps read ahead of the one being applied: memory holds the index and this many pages.
const STEPS_AHEAD: usize = 1;

/// A full reload running: a task reads the store and hands over its steps, which the router's
/// task applies to the live index in place ([`Refresh`]) between its batches of events.
struct Reload {
    task: JoinHandle<()>,
    steps: mpsc::Receiver<ReloadStep>,
    refresh: Refresh,
    /// The next step is taken no earlier: after a step, the router's task routes events for as
    /// long as the step took, so that a reload slows routing down by at most a half.
    rest_until: Instant,
}

/// What the reload task read.
pub(crate) enum ReloadStep {
    /// A page of the accounts.
    Accounts(Vec<Account>),
    /// A page of enabled hooks.
    Hooks(Vec<Webhook>),
    /// Everything was read.
    Done,
    /// The store could not be read.
    Failed(StorageError),
}

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
    /// The reload running, if any; the index keeps serving meanwhile.
    reload: Option<Reload>,
    /// Changes applied while a reload runs: a step may have read the store before them, so they
    /// are applied again once it ends.
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
    /// The running reload's next step, or `None` when its task ended without a last step.
    Reload(Option<ReloadStep>),
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
            step = next_step(&mut self.reload) => Signal::Reload(step),
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
            Signal::Reload(step) => self.on_reload_step(step).await,
            Signal::ReloadDue => self.reload_now(),
            Signal::ReconnectionCheck => self.check_reconnection(),
        }
        Ok(())
    }

    /// Stops the reload running, if any.
    pub(crate) fn stop(&mut self) {
        if let Some(reload) = self.reload.take() {
            reload.task.abort();
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

    /// Applies a step of the running reload, or ends it.
    async fn on_reload_step(&mut self, step: Option<ReloadStep>) {
        let Some(reload) = self.reload.as_mut() else {
            return;
        };
        let started = Instant::now();
        match step {
            Some(ReloadStep::Accounts(accounts)) => self.index.refresh_accounts(&mut reload.refresh, &accounts),
            Some(ReloadStep::Hooks(hooks)) => self.index.refresh_hooks(&mut reload.refresh, &hooks),
            Some(ReloadStep::Done) => return self.end_reload(Ok(())).await,
            Some(ReloadStep::Failed(error)) => return self.end_reload(Err(error.to_string())).await,
            None => return self.end_reload(Err("the reload task ended early".to_owned())).await,
        }
        reload.rest_until = Instant::now() + started.elapsed();
    }

    /// Ends the running reload, then applies again the changes made meanwhile. A failed reload
    /// leaves the index as its steps so far made it (each hook as the store held it at some
    /// point), and is tried again later.
    async fn end_reload(&mut self, outcome: Result<(), String>) {
        let Some(reload) = self.reload.take() else {
            return;
        };
        let reloaded = match outcome {
            Ok(()) => {
                self.index.finish_refresh(reload.refresh);
                self.stats.count_reload();
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reload the hook index; keeping it as it is");
                self.retry_later();
                false
            }
        };
        for change in std::mem::take(&mut self.changes_during_reload) {
            if let Err(error) = self.apply(&change).await {
                tracing::warn!(error = %error, "cannot re-apply a change after a reload");
                self.retry_later();
            }
        }
        self.stats.set_hooks(self.index.hook_count());
        if reloaded {
            tracing::info!(
                hooks = self.index.hook_count(),
                accounts = self.index.account_count(),
                "hook index reloaded"
            );
        }
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

    /// Starts a full reload: a task reads the store, the steps are applied as they come. When one
    /// runs already, it may have read the store too early: the timer starts another one once it
    /// is done.
    fn reload_now(&mut self) {
        if self.reload.is_some() {
            return self.retry_later();
        }
        let (sender, steps) = mpsc::channel(STEPS_AHEAD);
        let task = tokio::spawn(
            read_reload(self.store.clone(), self.page_size, sender).instrument(tracing::debug_span!("router.reload")),
        );
        self.reload = Some(Reload { task, steps, refresh: Refresh::default(), rest_until: Instant::now() });
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

/// The next step of `reload` once its rest is over; never, when none runs.
async fn next_step(reload: &mut Option<Reload>) -> Option<ReloadStep> {
    match reload.as_mut() {
        Some(reload) => {
            tokio::time::sleep_until(reload.rest_until).await;
            reload.steps.recv().await
        }
        None => std::future::pending().await,
    }
}

/// The reload's task: reads every account, then every enabled hook, handing them over page by
/// page; ends with [`ReloadStep::Done`] or [`ReloadStep::Failed`].
async fn read_reload(store: Store, page_size: u32, steps: mpsc::Sender<ReloadStep>) {
    let read = async {
        // In pages too, so that no step holds routing up for long.
        let mut accounts = store.all_accounts().await?.into_iter().peekable();
        while accounts.peek().is_some() {
            let page = accounts.by_ref().take(page_size.max(1) as usize).collect();
            // A closed channel means the router stopped: nothing is left to do.
            if steps.send(ReloadStep::Accounts(page)).await.is_err() {
                return Ok(());
            }
        }
        let mut pages = HookPages::new(page_size);
        while let Some(page) = pages.next(&store).await? {
            if steps.send(ReloadStep::Hooks(page)).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    };
    let last = match read.await {
        Ok(()) => ReloadStep::Done,
        Err(error) => ReloadStep::Failed(error),
    };
    // Only fails when the router stopped.
    let _ = steps.send(last).await;
}

/// Reads every account, then every enabled hook page by page, into a fresh index.
async fn load_index(store: &Store, page_size: u32) -> Result<HookIndex, StorageError> {
    let accounts = store.all_accounts().await?;
    let mut builder = HookIndexBuilder::new(&accounts);
    drop(accounts);
    let mut pages = HookPages::new(page_size);
    while let Some(page) = pages.next(store).await? {
        builder.add_hooks(&page);
    }
    Ok(builder.finish())
}

/// The store's enabled hooks, page by page in id order.
struct HookPages {
    page_size: u32,
    /// The last id read, or `None` before the first page.
    after: Option<WebhookId>,
    done: bool,
}

impl HookPages {
    fn new(page_size: u32) -> Self {
        Self { page_size: page_size.max(1), after: None, done: false }
    }

    /// The next page, or `None` after the last.
    async fn next(&mut self, store: &Store) -> Result<Option<Vec<Webhook>>, StorageError> {
        if self.done {
            return Ok(None);
        }
        let page = store.enabled_webhooks_page(self.after.as_ref(), self.page_size).await?;
        match page.last() {
            Some(last) if page.len() == self.page_size as usize => self.after = Some(last.id.clone()),
            _ => self.done = true,
        }
        Ok(Some(page))
    }
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
