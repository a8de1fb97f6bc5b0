//! The dispatcher's Prometheus metrics: deliveries by outcome class and status code, how long
//! each callout took by outcome class, the delay from the event's publication by the router to
//! the receiver's answer, retries scheduled and
//! hooks auto-disabled, job batches dead-lettered, and the bookkeeping waiting for the database.
//! Labels are closed sets (classes, status codes), never hooks or URIs.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use webhooks_model::attempt::Answer;

use crate::writer::WriterMetrics;

/// Bucket bounds of the time histograms, in seconds: from a local receiver's answer to the
/// callout timeout's range.
const LATENCY_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0];

/// The dispatcher's metrics. Cheap to clone: clones share the counters.
#[derive(Debug, Clone)]
pub struct DispatcherMetrics {
    deliveries: IntCounterVec,
    callouts: HistogramVec,
    latency: Histogram,
    retries: IntCounter,
    disabled: IntCounter,
    dead_lettered: IntCounter,
    /// The bookkeeping writer's.
    pub writer: WriterMetrics,
}

impl Default for DispatcherMetrics {
    fn default() -> Self {
        let valid = "a valid constant metric name";
        Self {
            deliveries: IntCounterVec::new(
                Opts::new("dispatcher_deliveries_total", "Callouts made, by outcome class and HTTP status."),
                &["outcome", "status"],
            )
            .expect(valid),
            callouts: HistogramVec::new(
                HistogramOpts::new(
                    "dispatcher_callout_duration_seconds",
                    "Time each callout took, from its start (waiting for a connection to its host included) to the answer or the failure, by outcome class.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["outcome"],
            )
            .expect(valid),
            latency: Histogram::with_opts(
                HistogramOpts::new(
                    "dispatcher_delivery_latency_seconds",
                    "Time from the router publishing a job to the receiver's answer (first attempts).",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect(valid),
            retries: IntCounter::new("dispatcher_retries_scheduled_total", "Retries put on a delay queue.")
                .expect(valid),
            disabled: IntCounter::new(
                "dispatcher_hooks_disabled_total",
                "Hooks disabled for failing or answering 410.",
            )
            .expect(valid),
            dead_lettered: IntCounter::new(
                "dispatcher_job_batches_dead_lettered_total",
                "Job batches that could not be read, sent to the dead-letter queue.",
            )
            .expect(valid),
            writer: WriterMetrics::default(),
        }
    }
}

impl DispatcherMetrics {
    /// Puts every metric in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.deliveries.clone()))?;
        registry.register(Box::new(self.callouts.clone()))?;
        registry.register(Box::new(self.latency.clone()))?;
        registry.register(Box::new(self.retries.clone()))?;
        registry.register(Box::new(self.disabled.clone()))?;
        registry.register(Box::new(self.dead_lettered.clone()))?;
        self.writer.register(registry)
    }

    /// One callout ended with `answer` after `took`; `since_published` is set on first attempts.
    pub(crate) fn delivered(&self, answer: &Answer, took: Duration, since_published: Option<Duration>) {
        let status = match answer {
            Answer::Response { status, .. } => status.to_string(),
            Answer::ClientError { .. } => "none".to_owned(),
        };
        let class = answer.class();
        self.deliveries.with_label_values(&[class.as_str(), status.as_str()]).inc();
        self.callouts.with_label_values(&[class.as_str()]).observe(took.as_secs_f64());
        if let Some(elapsed) = since_published {
            self.latency.observe(elapsed.as_secs_f64());
        }
    }

    /// A retry was scheduled.
    pub(crate) fn retry_scheduled(&self) {
        self.retries.inc();
    }

    /// A hook was disabled.
    pub(crate) fn hook_disabled(&self) {
        self.disabled.inc();
    }

    /// An unreadable job batch was dead-lettered.
    pub(crate) fn batch_dead_lettered(&self) {
        self.dead_lettered.inc();
    }

    /// Job batches dead-lettered since start.
    pub fn batches_dead_lettered(&self) -> u64 {
        self.dead_lettered.get()
    }
}
