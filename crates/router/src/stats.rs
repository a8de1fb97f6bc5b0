//! The router's metrics: what it did since it started, counted for tests, logs and Prometheus.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters of what the router did since it started, for tests, logs and metrics: each is a
/// Prometheus counter, exported once [`RouterStats::register`] puts them in a registry.
#[derive(Debug)]
pub struct RouterStats {
    events: IntCounter,
    events_by_name: IntCounterVec,
    jobs: IntCounter,
    messages: IntCounter,
    skipped: IntCounterVec,
    dead_lettered: IntCounterVec,
    waiting: IntCounter,
    publish_failures: IntCounter,
    changes: IntCounter,
    reloads: IntCounter,
    hooks: IntGauge,
}

/// A counter with a constant, valid name: creating it cannot fail.
fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("a valid constant metric name")
}

/// A counter by `reason`, with a constant, valid name.
fn counter_vec(name: &str, help: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &["reason"]).expect("a valid constant metric name")
}

fn add(counter: &IntCounter, amount: usize) {
    counter.inc_by(u64::try_from(amount).unwrap_or(u64::MAX));
}

impl Default for RouterStats {
    fn default() -> Self {
        Self {
            events: counter("router_events_total", "Events received from the event queue."),
            events_by_name: IntCounterVec::new(
                Opts::new("router_events_routed_total", "Events routed, by Kazoo event name."),
                &["event"],
            )
            .expect("a valid constant metric name"),
            jobs: counter("router_jobs_published_total", "Delivery jobs published and confirmed."),
            messages: counter("router_job_messages_total", "Job messages published and confirmed."),
            skipped: counter_vec(
                "router_events_skipped_total",
                "Well-formed events not delivered (not for webhooks, or of no known account), by reason.",
            ),
            dead_lettered: counter_vec(
                "router_events_dead_lettered_total",
                "Malformed events sent to the dead-letter queue, by reason.",
            ),
            waiting: counter(
                "router_events_awaiting_account_total",
                "Events set to wait a moment for an account the router does not know yet (Kazoo mode).",
            ),
            publish_failures: counter("router_publish_failures_total", "Batches whose jobs could not be published."),
            changes: counter("router_changes_applied_total", "Change notices applied to the hook index."),
            reloads: counter("router_index_reloads_total", "Full loads of the hook index."),
            hooks: IntGauge::new("router_hooks", "Enabled hooks in the index.").expect("a valid constant metric name"),
        }
    }
}

impl RouterStats {
    /// Puts every counter in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        for counters in [&self.events_by_name, &self.skipped, &self.dead_lettered] {
            registry.register(Box::new(counters.clone()))?;
        }
        registry.register(Box::new(self.hooks.clone()))?;
        for counter in [
            &self.events,
            &self.jobs,
            &self.messages,
            &self.waiting,
            &self.publish_failures,
            &self.changes,
            &self.reloads,
        ] {
            registry.register(Box::new(counter.clone()))?;
        }
        Ok(())
    }

    /// Events received (every delivery of the event queue, whatever became of it).
    pub fn events(&self) -> u64 {
        self.events.get()
    }

    /// Jobs published and confirmed.
    pub fn jobs(&self) -> u64 {
        self.jobs.get()
    }

    /// Job messages published and confirmed.
    pub fn messages(&self) -> u64 {
        self.messages.get()
    }

    /// Events acknowledged without routing for `reason` (an [`EventError::reason`](webhooks_model::event::EventError::reason), or
    /// `no_account`, `unknown_account`: in Kazoo mode after its wait, or at once when its account
    /// was looked up lately and stayed unknown).
    pub fn skipped(&self, reason: &str) -> u64 {
        self.skipped.with_label_values(&[reason]).get()
    }

    /// Events set to wait for their accounts (Kazoo mode).
    pub fn waiting(&self) -> u64 {
        self.waiting.get()
    }

    /// Malformed events sent to the dead-letter queue for `reason` (an [`EventError::reason`](webhooks_model::event::EventError::reason),
    /// or `not_json`).
    pub fn dead_lettered(&self, reason: &str) -> u64 {
        self.dead_lettered.with_label_values(&[reason]).get()
    }

    /// Batches whose jobs could not be published (their events were requeued).
    pub fn publish_failures(&self) -> u64 {
        self.publish_failures.get()
    }

    /// Change notices applied to the index.
    pub fn changes(&self) -> u64 {
        self.changes.get()
    }

    /// Full loads of the index, the first one included.
    pub fn reloads(&self) -> u64 {
        self.reloads.get()
    }

    /// Events received, `count` of them.
    pub(crate) fn count_events(&self, count: usize) {
        add(&self.events, count);
    }

    /// An event routed.
    pub(crate) fn count_routed(&self, event_name: &str) {
        self.events_by_name.with_label_values(&[event_name]).inc();
    }

    /// An event acknowledged without routing.
    pub(crate) fn count_skipped(&self, reason: &str) {
        self.skipped.with_label_values(&[reason]).inc();
    }

    /// An event set to wait for its account.
    pub(crate) fn count_waiting(&self) {
        self.waiting.inc();
    }

    /// A malformed event sent to the dead-letter queue.
    pub(crate) fn count_dead_lettered(&self, reason: &str) {
        self.dead_lettered.with_label_values(&[reason]).inc();
    }

    /// A batch's `jobs`, in `messages` messages, confirmed.
    pub(crate) fn count_published(&self, jobs: usize, messages: usize) {
        add(&self.jobs, jobs);
        add(&self.messages, messages);
    }

    /// A batch whose jobs could not be published.
    pub(crate) fn count_publish_failure(&self) {
        self.publish_failures.inc();
    }

    /// A change notice applied.
    pub(crate) fn count_change(&self) {
        self.changes.inc();
    }

    /// A full load of the index.
    pub(crate) fn count_reload(&self) {
        self.reloads.inc();
    }

    /// The enabled hooks the index holds now.
    pub(crate) fn set_hooks(&self, count: usize) {
        self.hooks.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
