//! The delivery pipeline of one job batch: for each job (concurrently) sign, call out, classify,
//! decide, count failures and disable, build the attempt record and the retry; then publish the
//! retries, hand the records to the bookkeeping writer, and acknowledge the batch once the
//! broker has the retries. The database is never waited for: a callout made is never made again
//! because its bookkeeping could not be written (the writer keeps it until it can).
//!
//! A batch of the dispatch queue does not call slow hosts: their jobs are moved to the slow lane
//! (published with the retries, so confirmed before the acknowledgement), where they wait in
//! their own window, and one dead host cannot hold the dispatch queue's window with its timeouts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use tracing::Instrument;
use webhooks_bus::trace::continue_trace;
use webhooks_bus::{Bus, BusError, Delivery, Outgoing};
use webhooks_model::attempt::{Answer, SentRequest, attempt_document};
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_model::job::{DeliveryJob, JobBatch};
use webhooks_model::retry::{Decision, FailureLimits, MAX_RETRIES, Observed, RetryPolicy};
use webhooks_model::time::{gregorian_now, unix_now, unix_seconds};
use webhooks_model::trace::TraceParent;
use webhooks_storage::{NewAttempt, StorageError, Store};

use crate::cache::Refreshing;
use crate::client::CalloutClient;
use crate::delay::DelayQueues;
use crate::failures::FailureCounter;
use crate::metrics::DispatcherMetrics;
use crate::request::{build_request, encode_payloads};
use crate::settings::DispatcherSettings;
use crate::signing::SigningKey;
use crate::writer::{AttemptWriter, Failure, Records};

mod disable;

/// The reason recorded when a hook failed too often, as Kazoo words it.
pub const TOO_MANY_FAILURES: &str = "too many failed attempts";
/// The reason recorded when a receiver answered `410 Gone` (docs/kazoo.md#auto-disable).
pub const GONE: &str = "endpoint answered 410 gone";

/// How long a batch whose retries could not be published waits before going back to the queue,
/// so a broker outage does not turn into a hot redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);
/// The reason a job batch nobody can read is dead-lettered with.
const UNREADABLE_BATCH: &str = "unreadable_job_batch";

/// Entries per cache: plenty for the hooks and accounts active within a cache lifetime.
const CACHE_CAPACITY: u64 = 100_000;

/// What one job produced.
#[derive(Debug, Default)]
struct JobOutcome {
    /// The attempt record to store.
    attempt: Option<NewAttempt>,
    /// A hook whose failure count a success clears.
    cleared: Option<WebhookId>,
    /// A failure the store could not count at once.
    failure: Option<Failure>,
    /// Its next attempt (or this one again, when it could not be made) and the wait before it.
    retry: Option<(DeliveryJob, Duration)>,
    /// The job, not attempted: its host is slow, so it goes to the slow lane.
    slow: Option<DeliveryJob>,
}

/// Where a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// The dispatch queue: jobs of slow hosts move to the slow lane.
    Main,
    /// The slow lane: every job is attempted.
    Slow,
}

/// Why a batch was not completed: its retries were not confirmed by the broker.
#[derive(Debug, thiserror::Error)]
#[error("retries could not be scheduled")]
struct BatchError(#[source] BusError);

/// Everything a delivery needs, shared by all in-flight batches.
pub(crate) struct Engine {
    /// The database.
    pub(crate) store: Store,
    /// The bus, for retries, change notices and notifications.
    pub(crate) bus: Bus,
    /// The HTTP client.
    pub(crate) client: CalloutClient,
    /// When retries happen.
    pub(crate) policy: RetryPolicy,
    /// Where retries wait.
    pub(crate) delays: DelayQueues,
    /// The settings.
    pub(crate) settings: DispatcherSettings,
    /// The bookkeeping writer.
    pub(crate) writer: AttemptWriter,
    /// Signing keys by hook (`None`: unsigned), each read once however many jobs wait for it,
    /// and kept through a database outage.
    pub(crate) keys: Refreshing<WebhookId, Option<Arc<SigningKey>>>,
    /// Failure limits by account, kept likewise.
    pub(crate) limits: Refreshing<AccountId, FailureLimits>,
    /// Counts failures in the store, one statement per hook at a time.
    pub(crate) failures: FailureCounter,
    /// Whether a hook is enabled, as last read or as this dispatcher left it.
    pub(crate) hook_states: Cache<WebhookId, bool>,
    /// What it exports to Prometheus.
    pub(crate) metrics: DispatcherMetrics,
}

impl Engine {
    /// An engine; caches are sized and timed from `settings`; its metrics registered nowhere.
    pub(crate) fn new(
        store: Store,
        bus: Bus,
        client: CalloutClient,
        policy: RetryPolicy,
        delays: DelayQueues,
        settings: DispatcherSettings,
        writer: AttemptWriter,
    ) -> Self {
        Self {
            metrics: DispatcherMetrics::default(),
            keys: Refreshing::new(settings.cache_ttl, settings.cache_keep_for),
            limits: Refreshing::new(settings.cache_ttl, settings.cache_keep_for),
            hook_states: Cache::builder().max_capacity(CACHE_CAPACITY).time_to_live(settings.hook_state_ttl).build(),
            failures: FailureCounter::new(store.clone()),
            store,
            bus,
            client,
            policy,
            delays,
            settings,
            writer,
        }
    }

    /// Handles one bus delivery: a job batch, acknowledged once its retries are confirmed; put
    /// back on the queue when they are not; dead-lettered when unreadable.
    pub(crate) async fn handle(self: Arc<Self>, delivery: Delivery, lane: Lane) {
        // Read in place: from the in-process bus the batch is the router's own, not a copy.
        let batch = match delivery.body.read::<JobBatch>() {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(error = %error, "unreadable job batch dead-lettered");
                self.metrics.batch_dead_lettered();
                if let Err(error) = self.bus.dead_letter(&delivery, UNREADABLE_BATCH, &error.to_string()).await {
                    tracing::warn!(error = %error, "dead-lettering a job batch failed");
                }
                return;
            }
        };
        match self.process(&batch.jobs, lane).await {
            Ok(()) => {
                if let Err(error) = delivery.ack().await {
                    // The broker will deliver the batch again; attempts may repeat.
                    tracing::warn!(error = %error, "acknowledging a job batch failed");
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "job batch not completed; it goes back to the queue");
                tokio::time::sleep(REQUEUE_PAUSE).await;
                if let Err(error) = delivery.requeue().await {
                    tracing::warn!(error = %error, "requeueing a job batch failed");
                }
            }
        }
    }

    /// Delivers every job of `batch` concurrently, then schedules the retries and the moves to
    /// the slow lane (awaited) and hands the records to the writer (awaited only while the
    /// writer is full).
    async fn process(&self, jobs: &[DeliveryJob], lane: Lane) -> Result<(), BatchError> {
        let encoded = encode_payloads(jobs);
        let deliveries = jobs.iter().zip(encoded).map(|(job, encoded)| self.deliver(job, encoded, lane));
        let outcomes = futures_util::future::join_all(deliveries).await;
        let mut records = Records::default();
        let mut retries = Vec::new();
        let mut slow = Vec::new();
        for outcome in outcomes {
            records.attempts.extend(outcome.attempt);
            records.failures.extend(outcome.failure);
            records.cleared.extend(outcome.cleared);
            retries.extend(outcome.retry);
            slow.extend(outcome.slow);
        }
        let mut retries = self.delayed(retries);
        if !slow.is_empty() {
            retries.push(self.to_slow_lane(slow));
        }
        let (written, published) = tokio::join!(self.writer.write(records), async {
            if retries.is_empty() { Ok(()) } else { self.bus.publish_all(retries).await }
        });
        if let Err(error) = written {
            // Only at shutdown; the callouts are made, so the batch is done all the same.
            tracing::error!(error = %error, "attempt records of a batch not kept");
        }
        published.map_err(BatchError)
    }

    /// One job: everything but storing and publishing.
    async fn deliver(&self, job: &DeliveryJob, encoded: Bytes, lane: Lane) -> JobOutcome {
        let span = tracing::info_span!(
            "deliver",
            hook.id = %job.hook_id,
            account.id = %job.account_id,
            event.id = %job.event_id,
            call.id = job.payload.call_id(),
            attempt = job.attempt,
            trace_id = tracing::field::Empty,
            http.status = tracing::field::Empty,
        );
        // Each attempt is a span of its own in the job's trace (retries keep the job's trace
        // parent); a job without one (from before traces were carried, or carrying a malformed
        // one) starts one.
        let trace_parent = continue_trace(&span, job.trace_parent.as_ref());
        self.deliver_in_span(job, encoded, lane, &trace_parent).instrument(span).await
    }

    /// [`Engine::deliver`] inside its span; the callout carries `trace_parent`.
    async fn deliver_in_span(
        &self,
        job: &DeliveryJob,
        encoded: Bytes,
        lane: Lane,
        trace_parent: &TraceParent,
    ) -> JobOutcome {
        // A test callout is sent whatever the hook's state: its owner may be checking the
        // endpoint before enabling the hook again, and is waiting for the answer.
        if !job.test && !self.still_enabled(job).await {
            tracing::debug!("hook disabled meanwhile; job dropped");
            return JobOutcome::default();
        }
        if lane == Lane::Main && !job.test && self.client.host_is_slow(&job.target.uri) {
            tracing::debug!("slow host; job moved to the slow lane");
            return JobOutcome { slow: Some(job.clone()), ..JobOutcome::default() };
        }
        let key = match self.signing_key(&job.hook_id).await {
            Ok(key) => key,
            Err(error) => {
                // Without its key the job cannot be sent as configured: it waits and comes back.
                tracing::warn!(error = %error, "signing secret unavailable; job postponed");
                return JobOutcome { retry: Some(self.postponed(job)), ..JobOutcome::default() };
            }
        };
        let request = build_request(job, encoded, trace_parent, key.as_deref(), unix_seconds());
        for (name, why) in &request.skipped_headers {
            tracing::warn!(header = %name, why, "custom request header left out");
        }
        let result = self.client.send(&request).await;
        let since_published = (job.attempt == 0).then(|| {
            let published = Duration::from_millis(job.published_at_ms);
            unix_now().saturating_sub(published)
        });
        self.metrics.delivered(&result.answer, result.duration, since_published);
        let observed = match &result.answer {
            Answer::Response { status, .. } => {
                tracing::Span::current().record("http.status", status);
                Observed::Answered { status: *status, retry_after: result.retry_after }
            }
            Answer::ClientError { class, text } => {
                tracing::debug!(class = %class, error = %text, "callout failed");
                Observed::Failed
            }
        };
        // Our own queueing says nothing of the receiver: its callouts in flight are counted.
        let counts = !result.host_saturated;
        let decision = self.policy.decide(observed, job.attempt, job.target.retries, rand::random::<f64>());
        let mut outcome = JobOutcome::default();
        let mut retries_left = 0;
        // A test's outcome is only reported: the hook's state and failure count stay as they are.
        match decision {
            _ if job.test => {}
            Decision::Delivered => {
                if self.settings.auto_disable {
                    outcome.cleared = Some(job.hook_id.clone());
                }
            }
            Decision::Gone => {
                if self.settings.auto_disable {
                    self.disable(job, GONE).await;
                }
            }
            Decision::Retry { delay } => {
                if !(counts && self.count_failure(job, &mut outcome).await) {
                    outcome.retry = Some(self.retry(job, delay));
                    retries_left = job.target.retries.min(MAX_RETRIES).saturating_sub(job.attempt);
                }
            }
            Decision::Exhausted => {
                if counts {
                    self.count_failure(job, &mut outcome).await;
                }
            }
        }
        tracing::debug!(?decision, duration_ms = result.duration.as_millis(), "callout done");
        if job.test || !result.answer.is_success() || self.settings.log_successful_attempts {
            let duration_ms = u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX);
            let sent = SentRequest { headers: &request.headers, body: &request.body };
            let doc = attempt_document(job, sent, &result.answer, retries_left, duration_ms);
            outcome.attempt = Some(NewAttempt {
                id: random_id(),
                account_id: job.account_id.clone(),
                hook_id: job.hook_id.clone(),
                created: gregorian_now(),
                doc,
                // Kept with the record so the delivery can be resent or replayed later.
                job: Some(job.clone()),
            });
        }
        outcome
    }

    /// Whether the job's hook may still be called. A hook this dispatcher saw disabled is
    /// skipped at once; a retry also checks the store (cached briefly, and read once however many
    /// retries of the hook ask together), because its hook may have been disabled or deleted
    /// since the first attempt.
    async fn still_enabled(&self, job: &DeliveryJob) -> bool {
        if job.attempt == 0 {
            // The router matched it moments ago against its current index.
            return self.hook_states.get(&job.hook_id).await.unwrap_or(true);
        }
        let read = async {
            let found = self.store.webhook(&job.account_id, &job.hook_id).await?;
            Ok::<_, StorageError>(found.is_some_and(|hook| hook.enabled))
        };
        match self.hook_states.try_get_with_by_ref(&job.hook_id, read).await {
            Ok(enabled) => enabled,
            Err(error) => {
                // Delivering once too often beats dropping a retry over a passing outage.
                tracing::warn!(error = %error, "hook state unavailable; retry delivered");
                true
            }
        }
    }

    /// The hook's signing key, cached. The jobs of one hook in a batch ask for it together: one
    /// of them reads the store while the others wait for its answer, rather than each reading
    /// it. When the store cannot be read, the key last read is used.
    async fn signing_key(&self, hook: &WebhookId) -> Result<Option<Arc<SigningKey>>, Arc<StorageError>> {
        self.keys.get(hook, self.read_signing_key(hook)).await
    }

    /// The hook's signing key, from the store.
    async fn read_signing_key(&self, hook: &WebhookId) -> Result<Option<Arc<SigningKey>>, StorageError> {
        Ok(match self.store.signing_secret(hook).await? {
            None => None,
            Some(secret) => match SigningKey::from_secret(&secret) {
                Ok(key) => Some(Arc::new(key)),
                Err(error) => {
                    tracing::warn!(hook.id = %hook, error = %error, "stored signing secret unusable; sending unsigned");
                    None
                }
            },
        })
    }

    /// The job's next attempt, to wait `delay`.
    fn retry(&self, job: &DeliveryJob, delay: Duration) -> (DeliveryJob, Duration) {
        self.metrics.retry_scheduled();
        let mut next = job.clone();
        next.attempt = job.attempt.saturating_add(1);
        (next, delay)
    }

    /// The same attempt again after the shortest delay (it could not be made now).
    fn postponed(&self, job: &DeliveryJob) -> (DeliveryJob, Duration) {
        (job.clone(), self.policy.delays().first().copied().unwrap_or(Duration::from_secs(5)))
    }

    /// The messages scheduling `retries`: one per delay queue, holding every job bound for it.
    /// Each message expires after the longest wait among its jobs, so none comes back early;
    /// within one queue they differ by jitter at most. A host failing a whole batch thus costs
    /// the broker one message per batch, not one per job.
    fn delayed(&self, retries: Vec<(DeliveryJob, Duration)>) -> Vec<Outgoing> {
        let mut by_queue: Vec<(String, u64, Vec<DeliveryJob>)> = Vec::new();
        for (job, delay) in retries {
            let (queue, expiration_ms) = self.delays.route(delay);
            match by_queue.iter_mut().find(|(name, ..)| *name == queue) {
                Some((_, longest, jobs)) => {
                    *longest = (*longest).max(expiration_ms);
                    jobs.push(job);
                }
                None => by_queue.push((queue, expiration_ms, vec![job])),
            }
        }
        by_queue
            .into_iter()
            // The default exchange routes by queue name.
            .map(|(queue, expiration_ms, jobs)| Outgoing {
                expiration_ms: Some(expiration_ms),
                ..Outgoing::jobs("", &queue, jobs)
            })
            .collect()
    }

    /// `jobs`, unattempted, as one batch of the slow lane.
    fn to_slow_lane(&self, jobs: Vec<DeliveryJob>) -> Outgoing {
        Outgoing::jobs("", &self.delays.slow_lane(), jobs)
    }
}
