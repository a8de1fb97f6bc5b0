//! The running router: one task owns the index and alternates between change notices, reloads
//! and batches of events, so the index needs no lock and a change is applied between two batches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field};
use webhooks_bus::trace::continue_trace;
use webhooks_bus::{Bus, Consumer, Delivery, Outgoing};
use webhooks_model::event::{DEFAULT_OBJECT_TYPES, EventKind, KazooEvent, read_body};
use webhooks_model::ids::{MessageKey, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::notice::{Action, Change};
use webhooks_model::time::unix_millis;
use webhooks_model::trace::TraceId;
use webhooks_storage::{StorageError, Store};

use crate::index::{HookIndex, HookIndexBuilder};
use crate::route::{RouteContext, route_into};
use crate::stats::RouterStats;
use crate::{RouterError, RouterSettings};

/// Batches publishing at once: one confirming while the next is routed and published.
const MAX_IN_FLIGHT: usize = 2;
/// How often the router checks whether the bus reconnected (its change queue may have missed
/// notices meanwhile).
const RECONNECTION_CHECK: Duration = Duration::from_secs(1);
/// Change notices held unacknowledged at once: they are applied one by one anyway.
const CHANGE_PREFETCH: u16 = 50;
/// The name of the span of one event; at debug level (the binary exports it by name).
pub const EVENT_SPAN: &str = "router.event";

/// A router that is ready: its index is loaded and its queues are consumed. Created by
/// [`Router::start`]; does its work in [`Router::run`].
pub struct Router {
    store: Store,
    bus: Bus,
    settings: RouterSettings,
    /// The document types object hooks can name (decision 28): the topology's, so what is bound
    /// and what is parsed agree.
    object_types: Vec<String>,
    index: HookIndex,
    stats: Arc<RouterStats>,
    /// Kazoo events. Dropped with the router (even mid-batch), so the broker redelivers what was
    /// not acknowledged.
    events: Consumer,
    /// Change notices, on this router's private queue.
    changes: Consumer,
    /// The batches still publishing or acknowledging, oldest first; each waits for the one
    /// before it to be settled (`done`) before acknowledging.
    in_flight: VecDeque<JoinHandle<()>>,
    /// Fires when the newest batch in flight is settled.
    last_done: Option<oneshot::Receiver<()>>,
    /// [`RouterStats::publish_failures`] when the loop last looked.
    failures_seen: u64,
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
        let object_types = match &bus.topology().object_types {
            types if types.is_empty() => DEFAULT_OBJECT_TYPES.iter().map(|kind| (*kind).to_owned()).collect(),
            types => types.clone(),
        };
        Ok(Router {
            store,
            bus,
            settings,
            object_types,
            index,
            stats,
            events: event_consumer,
            changes: change_consumer,
            in_flight: VecDeque::new(),
            last_done: None,
            failures_seen: 0,
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
        while let Some(in_flight) = self.in_flight.pop_front() {
            if let Err(error) = in_flight.await {
                tracing::error!(error = %error, "publishing a batch failed");
            }
        }
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
                    while self.in_flight.len() >= MAX_IN_FLIGHT
                        && let Some(oldest) = self.in_flight.pop_front()
                    {
                        if let Err(error) = oldest.await {
                            tracing::error!(error = %error, "publishing a batch failed");
                        }
                    }
                    self.in_flight.retain(|task| !task.is_finished());
                    // Whatever else has arrived joins the batch: under load batches fill up and
                    // cost one confirm wait and one acknowledgement; when idle, nothing waits.
                    // At most half the prefetch, so the broker keeps streaming the other half
                    // while this batch is routed and confirmed.
                    let limit = usize::from(self.settings.prefetch).div_ceil(2);
                    let mut batch = Vec::with_capacity(limit);
                    batch.push(first);
                    // `next` is cancel-safe: a delivery not ready now stays for the next poll.
                    while batch.len() < limit
                        && let Some(Some(delivery)) = self.events.next().now_or_never()
                    {
                        batch.push(delivery);
                    }
                    // After a failed publish, give the bus time to recover instead of spinning
                    // on requeued events.
                    let failures = self.stats.publish_failures();
                    if failures != self.failures_seen {
                        self.failures_seen = failures;
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

    /// Routes a batch of events and starts publishing their jobs ([`Settle`]); the batch is
    /// acknowledged only once every job is confirmed, with one multiple-acknowledgement through
    /// its last delivery. Malformed events are dead-lettered at once.
    #[tracing::instrument(name = "router.batch", level = "debug", skip_all, fields(batch.size = batch.len(), jobs))]
    async fn process(&mut self, batch: Vec<Delivery>) {
        self.stats.count_events(batch.len());
        let context =
            RouteContext { cluster_id: &self.settings.cluster_id, reserved_ccv_keys: &self.settings.reserved_ccv_keys };
        let published_at_ms = unix_millis().unsigned_abs();
        let mut jobs: Vec<DeliveryJob> = Vec::new();
        // Deliveries still to settle: all but the dead-lettered ones, which are settled at once.
        let mut pending: Vec<usize> = Vec::with_capacity(batch.len());
        for (position, delivery) in batch.iter().enumerate() {
            // At debug level, so it costs nothing per event unless logs ask for it or spans are exported.
            let span = tracing::debug_span!(
                EVENT_SPAN,
                trace_id = field::Empty,
                event.name = field::Empty,
                account.id = field::Empty,
                call.id = field::Empty,
                jobs = field::Empty,
            );
            // Kazoo publishers send no trace parent: their events' traces start here.
            let trace = continue_trace(&span, delivery.trace_parent().as_ref());
            let trace_id = trace.trace_id();
            match span.in_scope(|| parse(delivery, &self.object_types, trace_id)) {
                Parsed::Event(event) => {
                    let first_job = jobs.len();
                    let key = message_key(delivery);
                    let routed =
                        span.in_scope(|| route_into(&event, &key, &self.index, &context, published_at_ms, &mut jobs));
                    pending.push(position);
                    if routed == 0
                        && let Some(account) = event.account_id.as_ref()
                        && !matches!(event.kind, EventKind::CallflowWebhook(_))
                        && !self.index.contains_account(account)
                    {
                        // As Kazoo does, an event of an account nobody knows is skipped; counted
                        // apart, since a steady stream of them suggests a stale index.
                        span.in_scope(
                            || tracing::debug!(account.id = %account, "event of an unknown account; skipped"),
                        );
                        self.stats.count_skipped("unknown_account");
                        continue;
                    }
                    // Every job of the event goes on in its trace, as a child of this span.
                    if routed > 0 {
                        let trace_parent = trace.to_string();
                        for job in &mut jobs[first_job..] {
                            job.trace_parent = Some(trace_parent.clone());
                        }
                    }
                    self.stats.count_routed(event.event_name());
                    span.record("event.name", event.event_name());
                    span.record("account.id", event.account_id.as_ref().map(field::display));
                    span.record("call.id", event.call_id());
                    span.record("jobs", routed);
                    tracing::trace!(
                        trace_id = %trace_id,
                        event.name = event.event_name(),
                        account.id = ?event.account_id,
                        call.id = event.call_id(),
                        jobs = routed,
                        "event routed",
                    );
                }
                Parsed::Skipped(reason) => {
                    self.stats.count_skipped(reason);
                    pending.push(position);
                }
                Parsed::Malformed { reason, error } => {
                    self.stats.count_dead_lettered(reason);
                    if let Err(error) = self.bus.dead_letter(delivery, reason, &error).await {
                        // Unsettled, it is redelivered when the consumer goes away, and judged again.
                        tracing::warn!(routing_key = %delivery.routing_key, error = %error, "cannot dead-letter a malformed event");
                    }
                }
            }
        }
        tracing::Span::current().record("jobs", jobs.len());
        if pending.is_empty() {
            return;
        }
        let job_count = jobs.len();
        let messages = self.job_messages(jobs);
        let (done, last_done) = oneshot::channel();
        let outcome = Settle {
            bus: self.bus.clone(),
            stats: Arc::clone(&self.stats),
            batch,
            pending,
            messages,
            jobs: job_count,
            previous: self.last_done.replace(last_done),
            done,
        };
        // The publish and its confirms run in the background while the next batch is routed;
        // acknowledgements stay in batch order because each batch waits for the one before.
        self.in_flight.push_back(tokio::spawn(outcome.run().instrument(tracing::Span::current())));
    }

    /// The jobs as persistent messages of at most `max_jobs_per_message` jobs each, for the
    /// dispatch queue.
    fn job_messages(&self, jobs: Vec<DeliveryJob>) -> Vec<Outgoing> {
        let per_message = self.settings.max_jobs_per_message.max(1);
        let mut messages = Vec::with_capacity(jobs.len().div_ceil(per_message));
        // Each job is moved once, in order: a batch of a busy fan-out holds tens of thousands.
        let mut jobs = jobs.into_iter();
        loop {
            let chunk: Vec<DeliveryJob> = jobs.by_ref().take(per_message).collect();
            if chunk.is_empty() {
                return messages;
            }
            messages.push(Outgoing::job_batch(self.bus.topology(), chunk));
        }
    }
}

/// The second half of a batch: publish its jobs, wait for the previous batch, then acknowledge
/// (or requeue) this one.
struct Settle {
    bus: Bus,
    stats: Arc<RouterStats>,
    batch: Vec<Delivery>,
    /// Positions in `batch` still to settle (the dead-lettered ones are settled already).
    pending: Vec<usize>,
    messages: Vec<Outgoing>,
    /// Jobs in `messages`.
    jobs: usize,
    /// Fires when the previous batch is settled (or its task is gone).
    previous: Option<oneshot::Receiver<()>>,
    /// Fired once this batch is settled.
    done: oneshot::Sender<()>,
}

impl Settle {
    async fn run(self) {
        let message_count = self.messages.len();
        let published = self.bus.publish_all(self.messages).await;
        // A multiple-acknowledgement covers every earlier delivery: the previous batch must be
        // settled first, or its events could be acknowledged before their jobs are confirmed.
        if let Some(previous) = self.previous {
            // An error only means the previous task is gone, which settles nothing more.
            let _ = previous.await;
        }
        match published {
            Ok(()) => {
                self.stats.count_published(self.jobs, message_count);
                if let Some(&last) = self.pending.last()
                    && let Err(error) = self.batch[last].ack_through().await
                {
                    // The events will be redelivered and routed again: duplicates, never losses.
                    tracing::warn!(error = %error, "cannot acknowledge a routed batch");
                }
            }
            Err(error) => {
                self.stats.count_publish_failure();
                tracing::warn!(error = %error, events = self.pending.len(), jobs = self.jobs, "cannot publish jobs; requeueing the events");
                for position in self.pending {
                    if let Err(error) = self.batch[position].requeue().await {
                        // The broker redelivers unacknowledged messages when the channel closes.
                        tracing::debug!(error = %error, "cannot requeue an event");
                    }
                }
            }
        }
        // The next batch may acknowledge now; nobody waiting is fine.
        let _ = self.done.send(());
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

/// What became of a delivery after parsing.
#[expect(
    clippy::large_enum_variant,
    reason = "built and matched at once per delivery, never stored: boxing would only add an allocation"
)]
enum Parsed {
    /// An event to route.
    Event(KazooEvent),
    /// Acknowledged without routing, for this reason.
    Skipped(&'static str),
    /// To the dead-letter queue, for this reason, with the error in words.
    Malformed {
        /// A short code, for the metric and the dead letter's header.
        reason: &'static str,
        /// What is wrong.
        error: String,
    },
}

/// Parses one event delivery; logs what is not routed, with the event's trace.
fn parse(delivery: &Delivery, object_types: &[String], trace_id: TraceId) -> Parsed {
    let routing_key = delivery.routing_key.as_str();
    let body = match delivery.body.read_with(|bytes| read_body(routing_key, bytes)) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(routing_key, trace_id = %trace_id, error = %error, "event body is not json; dead-lettering it");
            return Parsed::Malformed { reason: "not_json", error: error.to_string() };
        }
    };
    match KazooEvent::parse_with_object_types(routing_key, &body, object_types) {
        Ok(event) if event.account_id.is_none() => {
            // Kazoo would look the account up by the dialled number; not supported here.
            tracing::debug!(
                routing_key,
                trace_id = %trace_id,
                event.name = event.event_name(),
                call.id = event.call_id(),
                "event names no account; skipped",
            );
            Parsed::Skipped("no_account")
        }
        Ok(event) if matches!(event.kind, EventKind::CallflowWebhook(_)) || event.lookup_key().is_some() => {
            Parsed::Event(event)
        }
        Ok(_) => Parsed::Skipped("not_delivered"),
        Err(error) if error.is_ignored() => {
            tracing::debug!(routing_key, trace_id = %trace_id, reason = %error, "event not delivered to webhooks");
            Parsed::Skipped(error.reason())
        }
        Err(error) => {
            tracing::warn!(routing_key, trace_id = %trace_id, error = %error, "malformed event; dead-lettering it");
            Parsed::Malformed { reason: error.reason(), error: error.to_string() }
        }
    }
}

/// What identifies `delivery` however often the broker delivers it: its routing key and body.
fn message_key(delivery: &Delivery) -> MessageKey {
    MessageKey::written(&delivery.routing_key, |digest| {
        // A digest takes every byte: writing into it cannot fail.
        let _ = delivery.body.write_to(digest);
    })
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
