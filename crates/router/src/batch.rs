//! Routing a batch of inbound events: each is parsed, matched against the index and turned into
//! delivery jobs, which leave as `JobBatch` messages for the dispatch queue. Skipped events are
//! counted by reason; malformed ones are dead-lettered at once.

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use tokio::time::Instant;
use tracing::{Span, field};
use webhooks_bus::trace::continue_trace;
use webhooks_bus::{Bus, Consumer, Delivery, Outgoing};
use webhooks_model::event::{DEFAULT_OBJECT_TYPES, EventKind, InboundUserField, KazooEvent, read_body};
use webhooks_model::ids::{AccountId, MessageKey};
use webhooks_model::job::DeliveryJob;
use webhooks_model::payload::{Finishing, PayloadCompat, ReservedCcvKeys};
use webhooks_model::time::unix_millis;
use webhooks_model::trace::{TraceId, TraceParent};

use crate::RouterSettings;
use crate::index::HookIndex;
use crate::lookup::{AccountLookups, Verdict, lookup_message, wait_message};
use crate::numbers::NumberOwners;
use crate::route::{RouteContext, route_into};
use crate::stats::RouterStats;

/// The name of the span of one event; at debug level (the binary exports it by name).
pub const EVENT_SPAN: &str = "router.event";

/// Routes batches of events; what it holds is fixed for the router's life (the index is not: it
/// is lent per batch).
pub(crate) struct BatchRouter {
    bus: Bus,
    stats: Arc<RouterStats>,
    cluster_id: String,
    /// Which Kazoo release's payloads receivers get.
    payload_compat: PayloadCompat,
    reserved_ccv_keys: ReservedCcvKeys,
    max_jobs_per_message: usize,
    /// Events routed together at most.
    batch_limit: usize,
    /// The document types object hooks can name (docs/kazoo.md#object): the topology's, so what is
    /// bound and what is parsed agree.
    object_types: Vec<String>,
    /// In Kazoo mode, the accounts asked for lately: events of accounts the index does not know
    /// wait for them (`lookup`). Only the router's task takes the lock.
    lookups: Option<Mutex<AccountLookups>>,
    /// With Kazoo's CouchDB, the owners of numbers: a call event naming no account is routed
    /// to the account its dialled number belongs to.
    numbers: Option<Arc<NumberOwners>>,
}

/// A routed batch, ready to publish: its jobs, and its events still to settle.
pub(crate) struct RoutedBatch {
    pub(crate) batch: Vec<Delivery>,
    /// Positions in `batch` still to settle (the dead-lettered ones are settled already).
    pub(crate) pending: Vec<usize>,
    /// The job messages, then the events set to wait for their accounts and those accounts'
    /// lookups.
    pub(crate) messages: Vec<Outgoing>,
    /// Jobs in `messages`.
    pub(crate) jobs: usize,
    /// Job messages in `messages`.
    pub(crate) job_messages: usize,
}

/// The jobs of the batch being routed, and what all its events are routed with.
struct BatchJobs<'a> {
    index: &'a HookIndex,
    context: RouteContext<'a>,
    /// The publication time every job of the batch carries.
    published_at_ms: u64,
    jobs: Vec<DeliveryJob>,
    /// Events set to wait for their accounts, and the lookups of those accounts: published with
    /// the jobs, before the batch is acknowledged.
    waiting: Vec<Outgoing>,
}

impl BatchRouter {
    pub(crate) fn new(
        bus: Bus,
        settings: &RouterSettings,
        stats: Arc<RouterStats>,
        numbers: Option<Arc<NumberOwners>>,
    ) -> Self {
        let object_types = match &bus.topology().object_types {
            types if types.is_empty() => DEFAULT_OBJECT_TYPES.iter().map(|kind| (*kind).to_owned()).collect(),
            types => types.clone(),
        };
        Self {
            bus: bus.clone(),
            stats,
            cluster_id: settings.cluster_id.clone(),
            payload_compat: settings.payload_compat,
            reserved_ccv_keys: settings.reserved_ccv_keys.clone(),
            max_jobs_per_message: settings.max_jobs_per_message,
            // At most half the prefetch, so the broker keeps streaming the other half while this
            // batch is routed and confirmed.
            batch_limit: usize::from(settings.prefetch).div_ceil(2),
            object_types,
            lookups: bus.topology().accounts_from_kazoo.then(Mutex::default),
            numbers,
        }
    }

    /// `first` and whatever else of `events` has arrived: under load batches fill up and cost one
    /// confirm wait and one acknowledgement; when idle, nothing waits.
    pub(crate) fn gather(&self, events: &mut Consumer, first: Delivery) -> Vec<Delivery> {
        let mut batch = Vec::with_capacity(self.batch_limit);
        batch.push(first);
        // `next` is cancel-safe: a delivery not ready now stays for the next poll.
        while batch.len() < self.batch_limit
            && let Some(Some(delivery)) = events.next().now_or_never()
        {
            batch.push(delivery);
        }
        batch
    }

    /// Routes `batch` against `index` into job messages; `None` when nothing is left to settle
    /// (every event was dead-lettered).
    pub(crate) async fn route(&self, batch: Vec<Delivery>, index: &HookIndex) -> Option<RoutedBatch> {
        self.stats.count_events(batch.len());
        let mut jobs = BatchJobs {
            index,
            context: RouteContext {
                finishing: Finishing { cluster_id: &self.cluster_id, compat: self.payload_compat },
                reserved_ccv_keys: &self.reserved_ccv_keys,
            },
            published_at_ms: unix_millis().unsigned_abs(),
            jobs: Vec::new(),
            waiting: Vec::new(),
        };
        // Deliveries still to settle: all but the dead-lettered ones, which are settled at once.
        let mut pending: Vec<usize> = Vec::with_capacity(batch.len());
        for (position, delivery) in batch.iter().enumerate() {
            if self.route_delivery(delivery, &mut jobs).await {
                pending.push(position);
            }
        }
        let BatchJobs { jobs, waiting, .. } = jobs;
        Span::current().record("jobs", jobs.len());
        if pending.is_empty() {
            return None;
        }
        let job_count = jobs.len();
        let mut messages = self.job_messages(jobs);
        let job_messages = messages.len();
        messages.extend(waiting);
        Some(RoutedBatch { batch, pending, messages, jobs: job_count, job_messages })
    }

    /// Routes one delivery into `jobs`; false when it was dead-lettered (settled already).
    async fn route_delivery(&self, delivery: &Delivery, jobs: &mut BatchJobs<'_>) -> bool {
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
        let by_number = self.numbers.is_some();
        match span.in_scope(|| parse(delivery, &self.object_types, by_number, trace.trace_id())) {
            Parsed::Event(mut event) => {
                if event.account_id.is_none() {
                    event.account_id = self.owner_of_number(&event).await;
                    if event.account_id.is_none() {
                        // As Kazoo does; counted apart, a number no account has in service.
                        self.stats.count_skipped("unknown_number");
                        return true;
                    }
                }
                self.route_event(&event, delivery, &span, &trace, jobs);
            }
            Parsed::Skipped(reason) => self.stats.count_skipped(reason),
            Parsed::Malformed { reason, error } => {
                self.dead_letter(delivery, reason, &error).await;
                return false;
            }
        }
        true
    }

    /// Routes a parsed event into `jobs`, in its `span` and `trace`.
    fn route_event(
        &self,
        event: &KazooEvent,
        delivery: &Delivery,
        span: &Span,
        trace: &TraceParent,
        jobs: &mut BatchJobs<'_>,
    ) {
        let key = message_key(delivery);
        let routed = span.in_scope(|| jobs.add(event, &key, trace));
        if routed == 0
            && let Some(account) = unknown_account(event, jobs.index)
        {
            let verdict = self.lookups.as_ref().map(|lookups| {
                lookups.lock().unwrap_or_else(PoisonError::into_inner).verdict(account, delivery, Instant::now())
            });
            if let Some(Verdict::Wait { ask }) = verdict {
                span.in_scope(
                    || tracing::debug!(account.id = %account, ask, "event of an account not known yet; waiting"),
                );
                let topology = self.bus.topology();
                jobs.waiting.push(wait_message(topology, delivery));
                if ask {
                    jobs.waiting.push(lookup_message(topology, account));
                }
                self.stats.count_waiting();
                return;
            }
            // As Kazoo does, an event of an account nobody knows is skipped; counted apart, since
            // a steady stream of them suggests a stale index.
            span.in_scope(|| tracing::debug!(account.id = %account, "event of an unknown account; skipped"));
            self.stats.count_skipped("unknown_account");
            return;
        }
        self.stats.count_routed(event.event_name());
        span.record("event.name", event.event_name());
        span.record("account.id", event.account_id.as_ref().map(field::display));
        span.record("call.id", event.call_id());
        span.record("jobs", routed);
        tracing::trace!(
            trace_id = %trace.trace_id(),
            event.name = event.event_name(),
            account.id = ?event.account_id,
            call.id = event.call_id(),
            jobs = routed,
            "event routed",
        );
    }

    /// Sends a malformed event to the dead-letter queue, with why.
    async fn dead_letter(&self, delivery: &Delivery, reason: &'static str, error: &str) {
        self.stats.count_dead_lettered(reason);
        if let Err(error) = self.bus.dead_letter(delivery, reason, error).await {
            // Unsettled, it is redelivered when the consumer goes away, and judged again.
            tracing::warn!(routing_key = %delivery.routing_key, error = %error, "cannot dead-letter a malformed event");
        }
    }

    /// The jobs as persistent messages of at most `max_jobs_per_message` jobs each, for the
    /// dispatch queue.
    fn job_messages(&self, jobs: Vec<DeliveryJob>) -> Vec<Outgoing> {
        let per_message = self.max_jobs_per_message.max(1);
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

impl BatchJobs<'_> {
    /// Adds the jobs of `event`, received as the message `key`, and returns how many.
    fn add(&mut self, event: &KazooEvent, key: &MessageKey, trace: &TraceParent) -> usize {
        let first_job = self.jobs.len();
        let routed = route_into(event, key, self.index, &self.context, self.published_at_ms, &mut self.jobs);
        // Every job of the event goes on in its trace, as a child of the event's span.
        for job in &mut self.jobs[first_job..] {
            job.trace_parent = Some(*trace);
        }
        routed
    }
}

impl BatchRouter {
    /// The account the dialled number of `event` (a call event naming no account) belongs to.
    async fn owner_of_number(&self, event: &KazooEvent) -> Option<AccountId> {
        let (EventKind::Channel(channel), Some(numbers)) = (&event.kind, &self.numbers) else { return None };
        // Kazoo's default `stepswitch.inbound_user_field`.
        numbers.owner(channel.dialled_number(InboundUserField::Request)?).await
    }
}

/// The account `event` names when the index does not know it; a callflow notification names its
/// hook instead, so its account is never unknown.
fn unknown_account<'e>(event: &'e KazooEvent, index: &HookIndex) -> Option<&'e AccountId> {
    if matches!(event.kind, EventKind::CallflowWebhook(_)) {
        return None;
    }
    event.account_id.as_ref().filter(|account| !index.contains_account(account))
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
/// With `by_number`, a call event naming no account is kept, for its account to be found by its
/// dialled number.
fn parse(delivery: &Delivery, object_types: &[String], by_number: bool, trace_id: TraceId) -> Parsed {
    let routing_key = delivery.routing_key.as_str();
    let body = match delivery.body.read_with(|bytes| read_body(routing_key, bytes)) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(routing_key, trace_id = %trace_id, error = %error, "event body is not json; dead-lettering it");
            return Parsed::Malformed { reason: "not_json", error: error.to_string() };
        }
    };
    match KazooEvent::parse_with_object_types(routing_key, &body, object_types) {
        Ok(event) if event.account_id.is_none() && !(by_number && matches!(event.kind, EventKind::Channel(_))) => {
            // Kazoo looks the account up by the dialled number: here only with its CouchDB.
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
