//! Faults: the system measured against what it promises under crashes and outages. Separate
//! `api`, `router` and `dispatcher` processes on PostgreSQL and RabbitMQ take Kazoo call events,
//! published on `callevt` with publisher confirms, while routers and dispatchers are killed
//! (`kill`), the broker or the database is cut away behind a proxy (`broker`, `database`), or
//! receivers misbehave (`receivers`); `soak` runs the system at a steady rate for a long time.
//! Each scenario prints its figures (deliveries lost, duplicates with the same and with a new
//! event id, recovery times, the peak memory of every process) before asserting its goals.
//!
//! `WEBHOOKS_FAULTS_EVENTS` sets how many events a scenario publishes (2,000 unless set; `make
//! faults` publishes 20,000). The kill and misbehaving-receiver scenarios publish at a fixed
//! rate, so more events make a longer run; the outage scenarios keep their durations (an outage
//! lasts as long whatever the size), so more events flow faster.

mod broker;
mod database;
mod kill;
mod receivers;
mod soak;

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Confirmation, Connection, ConnectionProperties};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webhooks_dispatcher::signing::SigningKey;
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_test_support::bench::{percentile, persistent_json};
use webhooks_test_support::bus::amqp_url;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::fixtures::{call_event, channel_create_body};
use webhooks_test_support::receiver::{Captured, Receiver};
use webhooks_test_support::store::create_account;

use crate::process::{Memory, Webhooks, rabbitmq, run_to_end};

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

/// A service of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Router,
    Dispatcher,
}

impl Role {
    /// Its command.
    fn command(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Router => "router",
            Role::Dispatcher => "dispatcher",
        }
    }
}

/// What a scenario runs on.
pub struct Setup {
    /// The hook documents (`data` of the create request) of each account, by position; events
    /// go to the accounts in turn.
    pub hooks: Vec<Vec<Value>>,
    /// Where the services find PostgreSQL instead of the server itself (a proxy).
    pub database_via: Option<SocketAddr>,
    /// Where the services find RabbitMQ instead of the server itself (a proxy).
    pub broker_via: Option<SocketAddr>,
    /// How long the broker keeps the cluster's queues once unused; [`QUEUE_EXPIRY`] unless set.
    pub queue_expiry: Option<Duration>,
}

/// A running process of the cluster.
struct Running {
    name: String,
    role: Role,
    process: Webhooks,
}

/// One `api`, `router` and `dispatcher` process on a database of their own, with accounts and
/// hooks created through the API.
pub struct Cluster {
    /// What the services run with.
    env: Vec<(&'static str, String)>,
    /// A master token.
    pub token: String,
    /// The accounts.
    pub accounts: Vec<AccountId>,
    /// Each account's hook ids, by position.
    pub hooks: Vec<Vec<WebhookId>>,
    running: Vec<Running>,
    /// Processes killed, with their memory just before.
    gone: Vec<(String, Memory)>,
    /// Processes started so far, to name the next one.
    started: usize,
    /// Dropped last: the processes go first.
    _database: TestDatabase,
}

impl Cluster {
    /// Migrates a fresh database, creates the accounts, starts the API, creates the hooks
    /// through it, then starts a router and a dispatcher (which load the hooks at start) and
    /// waits until all three are ready.
    pub async fn start(setup: Setup) -> Cluster {
        let database = TestDatabase::postgres().await;
        let database_url = match setup.database_via {
            Some(proxy) => via(database.url(), POSTGRES, proxy),
            None => database.url().to_owned(),
        };
        let mut env = vec![
            ("WEBHOOKS_DATABASE_URL", database_url),
            ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
            ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
            // Tests share the server: small pools.
            ("WEBHOOKS_DATABASE_POOL_SIZE", "3".to_owned()),
            // Failing hooks stay enabled however often they fail: the scenarios measure
            // deliveries, and a disabled hook would stop misbehaving.
            ("WEBHOOKS_DISPATCHER__FAILURE_THRESHOLD", "1000000".to_owned()),
        ];
        for (key, value) in rabbitmq(&format!("e2e-faults-{}", random_id())) {
            let value = match (key, setup.broker_via) {
                ("WEBHOOKS_AMQP_URL", Some(proxy)) => via(&value, RABBITMQ, proxy),
                ("WEBHOOKS_BUS_QUEUE_EXPIRES_SECONDS", _) => {
                    setup.queue_expiry.unwrap_or(QUEUE_EXPIRY).as_secs().to_string()
                }
                _ => value,
            };
            env.push((key, value));
        }
        assert!(run_to_end(&["migrate"], &env).await.success(), "migrations apply");
        let store = database.store().await;
        let mut accounts = Vec::new();
        for _ in &setup.hooks {
            let account = AccountId::generate();
            create_account(&store, &account, None, json!({})).await;
            accounts.push(account);
        }
        let mut cluster = Cluster {
            env,
            token: String::new(),
            accounts,
            hooks: Vec::new(),
            running: Vec::new(),
            gone: Vec::new(),
            started: 0,
            _database: database,
        };
        cluster.launch(Role::Api).await;
        cluster.token = cluster.process(Role::Api).client.token(MASTER_KEY).await;
        for (account, documents) in cluster.accounts.clone().iter().zip(&setup.hooks) {
            let mut ids = Vec::new();
            for document in documents {
                ids.push(cluster.api().create_hook(&cluster.token, account.as_str(), document).await);
            }
            cluster.hooks.push(ids);
        }
        cluster.launch(Role::Router).await;
        cluster.launch(Role::Dispatcher).await;
        cluster
    }

    /// Starts one more process of `role` and waits until it is ready.
    async fn launch(&mut self, role: Role) {
        let process = Webhooks::start(&[role.command()], &self.env).await;
        process.wait_ready().await;
        self.started += 1;
        let name = format!("{} #{}", role.command(), self.started);
        self.running.push(Running { name, role, process });
    }

    /// The (first) running process of `role`.
    pub fn process(&self, role: Role) -> &Webhooks {
        &self.running.iter().find(|running| running.role == role).expect("a process of that role").process
    }

    /// A client for the API.
    pub fn api(&self) -> &webhooks_test_support::http::Client {
        &self.process(Role::Api).client
    }

    /// Every running process with its name.
    pub fn processes(&self) -> impl Iterator<Item = (&str, &Webhooks)> {
        self.running.iter().map(|running| (running.name.as_str(), &running.process))
    }

    /// Kills the process of `role` with SIGKILL, starts a replacement and waits until it is
    /// ready.
    pub async fn crash_and_restart(&mut self, role: Role) -> Restart {
        let index = self.running.iter().position(|running| running.role == role).expect("a process of that role");
        let victim = self.running.remove(index);
        let memory = victim.process.memory();
        let killed_at = Instant::now();
        victim.process.kill().await;
        let killed = format!("{} (killed)", victim.name);
        self.gone.push((killed.clone(), memory));
        self.launch(role).await;
        Restart { killed, killed_at, ready_at: Instant::now() }
    }

    /// The peak memory of every process, running or gone, as one line.
    pub fn memory_report(&self) -> String {
        let running = self.running.iter().map(|running| (running.name.clone(), running.process.memory()));
        let every: Vec<String> = self
            .gone
            .iter()
            .cloned()
            .chain(running)
            .map(|(name, memory)| format!("{name} {:.1} MiB", mib(memory.peak_kib)))
            .collect();
        format!("peak RSS: {}", every.join(", "))
    }
}

/// A process killed and replaced.
pub struct Restart {
    /// The killed process's name.
    pub killed: String,
    pub killed_at: Instant,
    /// When its replacement was ready.
    pub ready_at: Instant,
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `url` with the server address `server` replaced by `proxy`.
fn via(url: &str, server: &str, proxy: SocketAddr) -> String {
    assert!(url.contains(server), "{url} does not name {server}, which the proxy forwards to");
    url.replacen(server, &proxy.to_string(), 1)
}

/// The server address `server` (`host:port`).
pub fn server_address(server: &str) -> SocketAddr {
    server.parse().expect("a socket address")
}

/// A hook document: `name`, a `channel_create` hook posting JSON to `uri`, no retries unless
/// `extra` sets them, and whatever else `extra` holds.
/// One receiver answering 200 per position of `positions`, each recording into `ledger` at its
/// position, and the documents of the hooks calling them, named `<name> <position>`.
pub async fn recorded_hooks(ledger: &Arc<Ledger>, positions: &[usize], name: &str) -> (Vec<Receiver>, Vec<Value>) {
    let mut receivers = Vec::new();
    for &position in positions {
        receivers.push(Receiver::observing(200, ledger.observer(position)).await);
    }
    let hooks = receivers
        .iter()
        .zip(positions)
        .map(|(receiver, position)| hook_document(&format!("{name} {position}"), &receiver.url("/"), json!({})))
        .collect();
    (receivers, hooks)
}

pub fn hook_document(name: &str, uri: &str, extra: Value) -> Value {
    let mut document = json!({"name": name, "uri": uri, "hook": "channel_create", "http_verb": "post",
        "format": "json", "retries": 0});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        document[key] = value;
    }
    document
}

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

/// What the publisher did.
pub struct Published {
    pub started: Instant,
    /// When each event was published.
    pub sent: Vec<Instant>,
    /// When the broker confirmed each (queued it), if it did.
    pub confirmed: Vec<Option<Instant>>,
}

impl Published {
    /// The events the broker confirmed.
    pub fn confirmed_events(&self) -> impl Iterator<Item = usize> + '_ {
        self.confirmed.iter().enumerate().filter_map(|(sequence, confirmed)| confirmed.map(|_| sequence))
    }

    /// Every (event, position) of `positions` of the confirmed events, for which `wanted` holds.
    pub fn expected(&self, positions: &[usize], wanted: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
        self.confirmed_events()
            .filter(|&sequence| wanted(sequence))
            .flat_map(|sequence| positions.iter().map(move |&position| (sequence, position)))
            .collect()
    }

    /// One line: how many were published and confirmed, in how long.
    pub fn summary(&self) -> String {
        let last = self.sent.last().map_or(Duration::ZERO, |sent| sent.duration_since(self.started));
        format!(
            "{} events published in {last:.1?}, {} confirmed",
            self.sent.len(),
            self.confirmed.iter().filter(|confirmed| confirmed.is_some()).count()
        )
    }
}

/// Publishes call events to Kazoo's `callevt` exchange on the RabbitMQ server itself (never
/// through a proxy), paced, with publisher confirms.
pub struct Publisher {
    /// Events published and answered by the broker so far.
    progress: watch::Receiver<usize>,
    task: JoinHandle<Published>,
}

impl Publisher {
    /// Starts publishing `count` events of run `run` at `rate` per second (as fast as the
    /// broker confirms when infinite), event `n` to `accounts[n % accounts.len()]`.
    pub fn start(run: &str, accounts: &[AccountId], count: usize, rate: f64) -> Publisher {
        let (sender, progress) = watch::channel(0);
        let task = tokio::spawn(publish(run.to_owned(), accounts.to_vec(), count, rate, sender));
        Publisher { progress, task }
    }

    /// Waits until `count` events are published and answered.
    pub async fn reached(&mut self, count: usize) {
        self.progress.wait_for(|&published| published >= count).await.expect("the publisher runs");
    }

    /// Waits until every event is published; what was published.
    pub async fn finish(self) -> Published {
        self.task.await.expect("the publisher finishes")
    }
}

async fn publish(
    run: String,
    accounts: Vec<AccountId>,
    count: usize,
    rate: f64,
    progress: watch::Sender<usize>,
) -> Published {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("RabbitMQ answers");
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let template = channel_create_body();
    let started = Instant::now();
    let mut sent = Vec::with_capacity(count);
    let mut confirmed = vec![None; count];
    let mut next = 0;
    while next < count {
        let due = if rate.is_finite() { (started.elapsed().as_secs_f64() * rate) as usize + 1 } else { count };
        let due = due.min(count).min(next + CONFIRM_WINDOW);
        if due <= next {
            // Pacing: the next event is not due yet.
            tokio::time::sleep_until((started + Duration::from_secs_f64(next as f64 / rate)).into()).await;
            continue;
        }
        let mut confirms = Vec::with_capacity(due - next);
        for sequence in next..due {
            let (routing_key, bytes) =
                call_event(&template, &accounts[sequence % accounts.len()], &call_id(&run, sequence));
            // Mandatory: an event no router queue is bound for comes back instead of vanishing.
            let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            sent.push(Instant::now());
            let confirm = channel
                .basic_publish("callevt".into(), routing_key.as_str().into(), options, &bytes, persistent_json())
                .await
                .expect("published");
            confirms.push((sequence, confirm));
        }
        for (sequence, confirm) in confirms {
            if matches!(confirm.await.expect("a confirmation"), Confirmation::Ack(None)) {
                confirmed[sequence] = Some(Instant::now());
            }
        }
        next = due;
        progress.send_replace(next);
    }
    let _ = connection.close(200, "done".into()).await;
    Published { started, sent, confirmed }
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
