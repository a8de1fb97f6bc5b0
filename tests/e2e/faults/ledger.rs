//! What the receivers got: each event's first arrival at each hook, duplicates, signatures, and
//! the figures drawn from them.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use webhooks_dispatcher::signing::SigningKey;
use webhooks_test_support::bench::percentile;
use webhooks_test_support::receiver::Captured;

use super::publisher::Published;
use super::{SIGNING_SECRET, STRAGGLERS};

/// The first arrival of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Its event id, hashed.
    pub event: u64,
    pub at: Instant,
}

/// A hash of an event id: the ledger keeps millions of them.
pub fn event_hash(event_id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    event_id.hash(&mut hasher);
    hasher.finish()
}

/// Every callout of a run as the receivers saw it: the first arrival of each (event, hook
/// position) and counts of the rest. Receivers hand it their requests as they come.
pub struct Ledger {
    /// The signing key of each hook position (`None`: unsigned).
    keys: Vec<Option<SigningKey>>,
    state: Mutex<LedgerState>,
}

#[derive(Default)]
struct LedgerState {
    /// The run's Call-ID prefix: callouts of other runs are unexpected.
    run: String,
    /// By position, then event sequence.
    first: Vec<Vec<Option<Arrival>>>,
    callouts: usize,
    same_id: usize,
    new_id: usize,
    unexpected: usize,
    /// Callouts to a signed position that carried a valid signature, and those that did not.
    signed: usize,
    badly_signed: usize,
}

impl Ledger {
    /// A ledger for run `run` with one position per entry of `keys`.
    pub fn new(run: &str, keys: Vec<Option<SigningKey>>) -> Arc<Ledger> {
        let ledger = Arc::new(Ledger { keys, state: Mutex::default() });
        ledger.begin(run);
        ledger
    }

    /// Forgets everything and records run `run` from now on.
    pub fn begin(&self, run: &str) {
        let first = vec![Vec::new(); self.keys.len()];
        *self.state.lock().expect("ledger") = LedgerState { run: run.to_owned(), first, ..LedgerState::default() };
    }

    /// The signing key of signed hooks.
    pub fn signing_key() -> SigningKey {
        SigningKey::from_secret(SIGNING_SECRET).expect("a valid secret")
    }

    /// What a receiver of hook position `position` hands each request to.
    pub fn observer(self: &Arc<Self>, position: usize) -> impl Fn(&Captured) + Send + Sync + 'static {
        let ledger = self.clone();
        move |request| ledger.record(position, request)
    }

    /// Records one callout to `position`.
    fn record(&self, position: usize, request: &Captured) {
        let call_id = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|payload| payload["call_id"].as_str().map(str::to_owned));
        let event_id = request.header("x-event-id").unwrap_or_default();
        let signature_valid = self.keys[position].as_ref().map(|key| {
            let (id, timestamp, signature) = (
                request.header("webhook-id"),
                request.header("webhook-timestamp"),
                request.header("webhook-signature"),
            );
            match (id, timestamp.and_then(|timestamp| timestamp.parse::<i64>().ok()), signature) {
                (Some(id), Some(timestamp), Some(signature)) => {
                    id == event_id && signature == key.sign(id, timestamp, &request.body)
                }
                _ => false,
            }
        });
        let mut state = self.state.lock().expect("ledger");
        state.callouts += 1;
        match signature_valid {
            Some(true) => state.signed += 1,
            Some(false) => state.badly_signed += 1,
            None => {}
        }
        let sequence = call_id
            .as_deref()
            .and_then(|call_id| call_id.strip_prefix(state.run.as_str())?.strip_prefix('-')?.parse::<usize>().ok());
        let Some(sequence) = sequence else {
            state.unexpected += 1;
            return;
        };
        let event = event_hash(event_id);
        let arrivals = &mut state.first[position];
        if arrivals.len() <= sequence {
            arrivals.resize(sequence + 1, None);
        }
        match arrivals[sequence] {
            None => arrivals[sequence] = Some(Arrival { event, at: request.at }),
            Some(first) if first.event == event => state.same_id += 1,
            Some(_) => state.new_id += 1,
        }
    }

    /// The first arrival of event `sequence` at `position`.
    pub fn arrival(&self, sequence: usize, position: usize) -> Option<Arrival> {
        self.state.lock().expect("ledger").first[position].get(sequence).copied().flatten()
    }

    /// How many of `expected` (sequence, position) have not arrived.
    pub fn missing(&self, expected: &[(usize, usize)]) -> usize {
        let state = self.state.lock().expect("ledger");
        expected
            .iter()
            .filter(|&&(sequence, position)| state.first[position].get(sequence).copied().flatten().is_none())
            .count()
    }

    /// Waits until every one of `expected` has arrived, or `patience` has passed; then listens
    /// a little longer for late duplicates.
    pub async fn settle(&self, expected: &[(usize, usize)], patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        while self.missing(expected) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A duplicate may come after the last original: listening a little is the only way to
        // see it.
        tokio::time::sleep(STRAGGLERS).await;
    }

    /// The counts so far against `expected`.
    pub fn tally(&self, expected: &[(usize, usize)]) -> Tally {
        let lost = self.missing(expected);
        let state = self.state.lock().expect("ledger");
        Tally {
            expected: expected.len(),
            callouts: state.callouts,
            lost,
            same_id: state.same_id,
            new_id: state.new_id,
            unexpected: state.unexpected,
            signed: state.signed,
            badly_signed: state.badly_signed,
        }
    }
}

/// What arrived against what was expected.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub expected: usize,
    /// Callouts received.
    pub callouts: usize,
    /// Expected deliveries that never arrived.
    pub lost: usize,
    /// Repeated callouts with the event id of the first one, and with another.
    pub same_id: usize,
    pub new_id: usize,
    /// Callouts of no event of the run.
    pub unexpected: usize,
    /// Callouts to signed hooks with a valid signature, and without.
    pub signed: usize,
    pub badly_signed: usize,
}

impl Tally {
    /// Repeated callouts.
    pub fn duplicates(&self) -> usize {
        self.same_id + self.new_id
    }

    /// Repeated callouts as a share of all callouts.
    pub fn duplicate_share(&self) -> f64 {
        self.duplicates() as f64 / self.callouts.max(1) as f64
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} callouts for {} expected deliveries: {} lost, {} duplicates ({:.2}% of callouts): {} with the same \
             event id, {} with a new one; {} unexpected",
            self.callouts,
            self.expected,
            self.lost,
            self.duplicates(),
            self.duplicate_share() * 100.0,
            self.same_id,
            self.new_id,
            self.unexpected,
        )?;
        if self.signed + self.badly_signed > 0 {
            write!(f, "; {} signed callouts, {} badly or not signed", self.signed, self.badly_signed)?;
        }
        Ok(())
    }
}

/// Latencies in milliseconds from publishing to first arrival of every delivered one of
/// `deliveries`.
pub fn latencies(ledger: &Ledger, published: &Published, deliveries: &[(usize, usize)]) -> Vec<f64> {
    deliveries
        .iter()
        .filter_map(|&(sequence, position)| {
            let arrival = ledger.arrival(sequence, position)?;
            Some(arrival.at.saturating_duration_since(published.sent[sequence]).as_secs_f64() * 1000.0)
        })
        .collect()
}

/// p50, p99 and max of `latencies` (milliseconds), as one line.
pub fn latency_summary(latencies: &[f64]) -> String {
    let max = latencies.iter().copied().fold(f64::NAN, f64::max);
    format!(
        "latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        max
    )
}
