//! The bookkeeping writer: attempt records, failures counted while the database was unreachable
//! (one row a hook, however many), and the failure counts successes clear, written in batches
//! behind the deliveries.
//!
//! Deliveries hand their bookkeeping over and go on: a callout needs no database, so a batch is
//! acknowledged once its retries are on the broker, whatever the database does. The writer
//! gathers what it is given for a few milliseconds and writes it in one go; when the database
//! cannot be reached it keeps everything, in order, and tries again (every second, then less
//! often), so an outage delays the attempt log without losing it or repeating a callout. What it
//! keeps is bounded, in rows and in bytes (an attempt record may carry a response body of tens
//! of KiB): once [`Bookkeeping::capacity`] rows or [`Bookkeeping::capacity_bytes`] wait, new
//! ones wait for room (the deliveries handing them over with them), which is logged and counted.
//! Only a crash during an outage loses what waits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::mpsc;
use tokio::time::Instant;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_storage::{NewAttempt, StorageError, Store};

/// Handovers waiting for the writer; beyond this, deliveries wait to hand theirs over.
const QUEUE_DEPTH: usize = 1024;
/// The first wait after a failed write; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// What a row weighs beside the text it carries: ids, numbers, allocations.
const ROW_OVERHEAD: usize = 256;

/// Failures of a hook counted while the database could not be reached, to be added to the
/// hook's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The hook's owner.
    pub account_id: AccountId,
    /// The hook.
    pub hook_id: WebhookId,
    /// How many.
    pub count: u64,
    /// When the latest failed, Unix milliseconds.
    pub at_ms: i64,
    /// The account's failure window then.
    pub window: Duration,
}

/// What one batch of deliveries leaves to write.
#[derive(Debug, Default)]
pub struct Records {
    /// Attempt records to insert.
    pub attempts: Vec<NewAttempt>,
    /// Failures to count (those that could not be counted at once).
    pub failures: Vec<Failure>,
    /// Hooks whose failure counts a success clears.
    pub cleared: Vec<WebhookId>,
}

impl Records {
    /// Rows these stand for.
    fn rows(&self) -> usize {
        self.attempts.len() + self.failures.len() + self.cleared.len()
    }

    /// About the memory the attempt records and failures take: the text of each record (its
    /// request and response bodies above all) and an overhead per row. The kept job is not
    /// counted: its payload is shared with the delivery's, which the broker holds anyway.
    fn weight(&self) -> usize {
        let attempts: usize = self.attempts.iter().map(|attempt| ROW_OVERHEAD + text_bytes(&attempt.doc)).sum();
        attempts + self.failures.len() * ROW_OVERHEAD
    }
}

/// The bytes of the keys and strings of `doc`, at every depth.
fn text_bytes(doc: &serde_json::Map<String, serde_json::Value>) -> usize {
    fn value_bytes(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(text) => text.len(),
            serde_json::Value::Array(items) => items.iter().map(value_bytes).sum(),
            serde_json::Value::Object(map) => text_bytes(map),
            _ => 8,
        }
    }
    doc.iter().map(|(key, value)| key.len() + value_bytes(value)).sum()
}

/// How the writer batches, retries and bounds what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct Bookkeeping {
    /// Rows written at once at most.
    pub batch_size: usize,
    /// How long the first waiting row waits for others to join it.
    pub gather_for: Duration,
    /// Rows kept at most while the database cannot be reached.
    pub capacity: usize,
    /// Bytes of attempt records and failures kept at most, likewise (see [`Records::weight`]).
    pub capacity_bytes: usize,
    /// On shutdown, how long the writer goes on trying to write what it still holds.
    pub drain_timeout: Duration,
}

/// What the writer exports to Prometheus.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    /// Rows waiting to be written.
    waiting: IntGauge,
    /// Times the writer held [`Bookkeeping::capacity`] rows and made deliveries wait.
    full: IntCounter,
    /// Writes that failed and will be tried again.
    failed_writes: IntCounter,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        Self {
            waiting: IntGauge::new(
                "dispatcher_bookkeeping_waiting",
                "Attempt records and failure-count changes waiting to be written.",
            )
            .expect("a valid constant metric name"),
            full: IntCounter::new(
                "dispatcher_bookkeeping_full_total",
                "Times the bookkeeping waiting for the database reached its bound, so deliveries waited.",
            )
            .expect("a valid constant metric name"),
            failed_writes: IntCounter::new(
                "dispatcher_bookkeeping_write_failures_total",
                "Bookkeeping writes that failed and were kept to be tried again.",
            )
            .expect("a valid constant metric name"),
        }
    }
}

impl WriterMetrics {
    /// Puts them in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.waiting.clone()))?;
        registry.register(Box::new(self.full.clone()))?;
        registry.register(Box::new(self.failed_writes.clone()))
    }

    /// Rows waiting to be written.
    pub fn waiting(&self) -> i64 {
        self.waiting.get()
    }

    /// Times the bound was reached.
    pub fn full(&self) -> u64 {
        self.full.get()
    }
}

/// The handle deliveries hand their bookkeeping to; cheap to clone.
#[derive(Clone)]
pub struct AttemptWriter {
    /// The writer task's inbox.
    requests: mpsc::Sender<Records>,
}

/// The writer has stopped: the dispatcher is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the bookkeeping writer has stopped")]
pub struct Stopped;

impl AttemptWriter {
    /// Starts the writer task on `store`. The task ends when every handle is dropped, once what
    /// it holds is written or [`Bookkeeping::drain_timeout`] has passed.
    pub fn start(store: Store, settings: Bookkeeping, metrics: WriterMetrics) -> (Self, tokio::task::JoinHandle<()>) {
        let (requests, inbox) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            store,
            settings,
            metrics,
            waiting: VecDeque::new(),
            queued: 0,
            weight: 0,
            failures: HashMap::new(),
            cleared: HashSet::new(),
        };
        let task = tokio::spawn(writer.run(inbox));
        (Self { requests }, task)
    }

    /// Hands `records` over to be written; returns at once unless the writer holds as many rows
    /// as it may (then once there is room).
    pub async fn write(&self, records: Records) -> Result<(), Stopped> {
        if records.rows() == 0 {
            return Ok(());
        }
        self.requests.send(records).await.map_err(|_| Stopped)
    }
}

/// The writer task's state.
struct Writer {
    store: Store,
    settings: Bookkeeping,
    metrics: WriterMetrics,
    /// Attempt records waiting to be written, oldest first (their failures and `cleared` taken
    /// out), each with its weight.
    waiting: VecDeque<(Records, usize)>,
    /// Attempt records in `waiting`.
    queued: usize,
    /// Their weight (see [`Records::weight`]).
    weight: usize,
    /// Failures waiting to be counted, by hook: one row a hook, however long the outage and
    /// however many callouts fail meanwhile.
    failures: HashMap<WebhookId, Failure>,
    /// Hooks whose failure counts successes cleared: one row a hook however many successes
    /// it had meanwhile (each success of a busy hook clears the same count).
    cleared: HashSet<WebhookId>,
}

impl Writer {
    /// The writer loop: gather, write, and on failure keep and wait before trying again.
    async fn run(mut self, mut inbox: mpsc::Receiver<Records>) {
        let mut backoff = FIRST_BACKOFF;
        let mut failing_since: Option<Instant> = None;
        let mut open = true;
        let mut drain_until: Option<Instant> = None;
        loop {
            if self.rows() == 0 {
                if !open {
                    break;
                }
                match inbox.recv().await {
                    Some(records) => self.keep(records),
                    None => break,
                }
            }
            // Let others join the first waiting rows for a moment.
            let deadline = Instant::now() + self.settings.gather_for;
            while open && self.rows() < self.settings.batch_size && !self.full() {
                tokio::select! {
                    next = inbox.recv() => match next {
                        Some(records) => self.keep(records),
                        None => open = false,
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            match self.write_some().await {
                Ok(()) => {
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            waited_ms = since.elapsed().as_millis() as u64,
                            still_waiting = self.rows(),
                            "the database answers again; kept bookkeeping is being written"
                        );
                    }
                    backoff = FIRST_BACKOFF;
                }
                Err(StorageError::Pool(error)) if open => {
                    // Every connection stayed busy for the pool's whole wait: the database is
                    // busy, not gone (once a connection fails, calls fail at once instead), so
                    // the writer tries again at once rather than falling behind.
                    self.metrics.failed_writes.inc();
                    tracing::debug!(error = %error, waiting = self.rows(), "no connection free for bookkeeping; trying again");
                }
                Err(error) => {
                    self.metrics.failed_writes.inc();
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        tracing::warn!(error = %error, waiting = self.rows(), "bookkeeping not written; kept to try again");
                    }
                    if !open {
                        let until = *drain_until.get_or_insert_with(|| Instant::now() + self.settings.drain_timeout);
                        if Instant::now() >= until {
                            tracing::error!(
                                lost = self.rows(),
                                "the database stayed unreachable at shutdown; bookkeeping lost"
                            );
                            break;
                        }
                    }
                    open = self.wait(&mut inbox, backoff, open).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Waits `backoff` before the next try, meanwhile taking new rows while there is room.
    /// Returns whether the inbox is still open.
    async fn wait(&mut self, inbox: &mut mpsc::Receiver<Records>, backoff: Duration, mut open: bool) -> bool {
        let retry_at = Instant::now() + backoff;
        let mut reported_full = false;
        loop {
            let full = self.full();
            if open && full && !reported_full {
                reported_full = true;
                self.metrics.full.inc();
                tracing::warn!(
                    waiting = self.rows(),
                    waiting_bytes = self.weight,
                    capacity = self.settings.capacity,
                    capacity_bytes = self.settings.capacity_bytes,
                    "bookkeeping waiting for the database is at its bound; deliveries wait for room"
                );
            }
            let room = open && !full;
            tokio::select! {
                next = inbox.recv(), if room => match next {
                    Some(records) => self.keep(records),
                    None => open = false,
                },
                () = tokio::time::sleep_until(retry_at) => return open,
            }
        }
    }

    /// Rows waiting: attempt records, hooks whose failures to count and hooks whose counts to
    /// clear.
    fn rows(&self) -> usize {
        self.queued + self.failures.len() + self.cleared.len()
    }

    /// Whether what waits has reached either bound.
    fn full(&self) -> bool {
        let weight = self.weight + self.failures.len() * ROW_OVERHEAD;
        self.rows() >= self.settings.capacity || weight >= self.settings.capacity_bytes
    }

    /// Adds `records` to what waits.
    fn keep(&mut self, mut records: Records) {
        self.cleared.extend(records.cleared.drain(..));
        for failure in records.failures.drain(..) {
            match self.failures.get_mut(&failure.hook_id) {
                Some(kept) => {
                    kept.count += failure.count;
                    kept.at_ms = kept.at_ms.max(failure.at_ms);
                    kept.window = failure.window;
                }
                None => {
                    self.failures.insert(failure.hook_id.clone(), failure);
                }
            }
        }
        if records.rows() > 0 {
            let weight = records.weight();
            self.queued += records.rows();
            self.weight += weight;
            self.waiting.push_back((records, weight));
        }
        self.report_waiting();
    }

    /// Exports the number of rows waiting.
    fn report_waiting(&self) {
        self.metrics.waiting.set(i64::try_from(self.rows()).unwrap_or(i64::MAX));
    }

    /// Counts the failures waiting, clears the counts of every hook waiting for it, then inserts
    /// up to a batch of the oldest attempt records. What is written leaves the queue; on an
    /// error the rest stays, in order. Inserting an attempt record again is harmless (its id is
    /// its key), so a write whose success went unheard is simply repeated.
    async fn write_some(&mut self) -> Result<(), StorageError> {
        let mut attempts = Vec::new();
        let mut taken = 0;
        while taken < self.waiting.len() && attempts.len() < self.settings.batch_size {
            attempts.extend(self.waiting[taken].0.attempts.iter().cloned());
            taken += 1;
        }
        let counted: Vec<WebhookId> = self.failures.keys().cloned().collect();
        for hook in counted {
            if let Some(failure) = self.failures.get(&hook) {
                let Failure { account_id, count, at_ms, window, .. } = failure;
                self.store.record_failures(account_id, &hook, *count, *at_ms, *window).await?;
                // Counted: it leaves now, so a later step failing does not count it twice.
                self.failures.remove(&hook);
            }
        }
        let mut cleared: Vec<WebhookId> = self.cleared.iter().cloned().collect();
        cleared.sort_unstable_by(|left, right| left.as_str().cmp(right.as_str()));
        self.store.clear_failures_of(&cleared).await?;
        self.cleared.clear();
        // Last, so that a visible attempt record means its failure count is settled too: a
        // client (or test) that sees a success's record and makes the hook fail again finds the
        // count already cleared.
        self.store.insert_attempts(&attempts).await?;
        for (records, weight) in self.waiting.drain(..taken) {
            self.queued -= records.rows();
            self.weight -= weight;
        }
        self.report_waiting();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
