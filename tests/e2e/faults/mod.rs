//! Faults: the system measured against what it promises under crashes and outages. Separate
//! `api`, `router` and `dispatcher` processes on PostgreSQL and RabbitMQ take Kazoo call events,
//! published on `callevt` with publisher confirms, while routers and dispatchers are killed
//! (`kill`), the broker or the database is cut away behind a proxy (`broker`, `database`),
//! receivers misbehave (`receivers`), or the node leading the queues of a three-node RabbitMQ
//! cluster of the scenario's own is stopped and started again (`rabbit_cluster`); `soak` runs
//! the system at a steady rate for a long time.
//! Each scenario prints its figures (deliveries lost, duplicates with the same and with a new
//! event id, recovery times, the peak memory of every process) before asserting its goals.
//!
//! `WEBHOOKS_FAULTS_EVENTS` sets how many events a scenario publishes (2,000 unless set; `make
//! faults` publishes 20,000). The kill and misbehaving-receiver scenarios publish at a fixed
//! rate, so more events make a longer run; the outage scenarios keep their durations (an outage
//! lasts as long whatever the size), so more events flow faster.

mod broker;
mod cluster;
mod database;
mod kill;
mod ledger;
mod publisher;
mod rabbit_cluster;
mod receivers;
mod soak;

use std::fmt;
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "e2e-faults-master-key-0123456789";

/// The machine's PostgreSQL and RabbitMQ, as the test URLs name them; proxies forward to them.
const POSTGRES: &str = "127.0.0.1:5432";

const RABBITMQ: &str = "127.0.0.1:5672";

/// Events of a scenario unless `WEBHOOKS_FAULTS_EVENTS` says otherwise.
const DEFAULT_EVENTS: usize = 2_000;

/// Publishes in flight before the publisher waits for their confirms.
const CONFIRM_WINDOW: usize = 500;

/// The secret of signed hooks (Standard Webhooks' published example).
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long the last deliveries may take to arrive once publishing is over.
const PATIENCE: Duration = Duration::from_secs(90);

/// How long the broker keeps a cluster's queues once unused. RabbitMQ counts a queue without
/// consumers as unused even while messages are published to it, so the delay queues, which
/// never have consumers, expire this long after the dispatcher declared them, however busy:
/// it must outlast the scenario.
const QUEUE_EXPIRY: Duration = Duration::from_secs(600);

/// How long to keep listening for late duplicates once every delivery has arrived.
const STRAGGLERS: Duration = Duration::from_secs(2);

/// How many events a scenario publishes.
pub fn events() -> usize {
    setting("WEBHOOKS_FAULTS_EVENTS").unwrap_or(DEFAULT_EVENTS)
}

/// The number in environment variable `name`, if set.
pub fn setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

/// The Call-ID of event `sequence` of run `run`; payloads carry it back as `call_id`.
fn call_id(run: &str, sequence: usize) -> String {
    format!("{run}-{sequence}")
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Polls `condition` every 20 ms until it holds; how long that took, or `None` after `limit`.
pub async fn time_until<F, Fut>(limit: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The goals of a scenario, checked together so that one not met does not hide the others.
pub struct Goals {
    scenario: &'static str,
    unmet: Vec<String>,
}

impl Goals {
    pub fn new(scenario: &'static str) -> Goals {
        Goals { scenario, unmet: Vec::new() }
    }

    /// Prints whether `goal` is met, and remembers it if not.
    pub fn check(&mut self, met: bool, goal: impl Into<String>) {
        let goal = goal.into();
        eprintln!("[{}] {} {goal}", self.scenario, if met { "met:" } else { "NOT MET:" });
        if !met {
            self.unmet.push(goal);
        }
    }

    /// Fails the test if any goal was not met.
    pub fn assert_all(self) {
        assert!(self.unmet.is_empty(), "[{}] goals not met:\n  {}", self.scenario, self.unmet.join("\n  "));
    }
}

/// Prints one figure line of `scenario`.
pub fn figure(scenario: &str, line: impl fmt::Display) {
    eprintln!("[{scenario}] {line}");
}
