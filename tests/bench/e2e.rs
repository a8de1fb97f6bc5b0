//! End-to-end benchmark: Kazoo events in, HTTP callouts out, beside the bus's own ceiling.
//!
//! `cargo run --release -p webhooks-e2e --example bench_e2e` (or `make bench-e2e`, which first
//! builds the `webhooks` binary and checks PostgreSQL and RabbitMQ). Phases, each a few seconds:
//!
//! - the local RabbitMQ's one-hop ceiling (the router benchmark's method, `bench.rs`);
//! - a real router and a real dispatcher in this process, on RabbitMQ (127.0.0.1:5672, a prefix of
//!   their own) and PostgreSQL, fed CHANNEL_CREATE events by a plain AMQP publisher on Kazoo's
//!   `callevt` exchange: deliveries/s at a local receiver (which reads each request whole and
//!   counts it, keeping nothing, so its own work weighs little) with 1 and with 100 hooks per event,
//!   publish-to-receipt latency at half the 1-hook rate (after a paced warm-up), and the healthy
//!   rate while 10% of the endpoints never answer, beside the rate those healthy endpoints get
//!   just before, when that tenth answers at once;
//! - `webhooks serve` (the release binary) on SQLite without RabbitMQ, hooks created through its
//!   API and events handed to `POST /v2/events`: deliveries/s with 1 and 100 hooks per event.
//!
//! Goals are printed beside the figures, not asserted: the machine's load decides too much.
//! `BENCH_PHASES=latency,failing` (any of `hundred`, `latency`, `failing`, `serve`) runs only
//! those phases besides the ceiling and the 1-hook phase.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../e2e/process.rs"]
#[expect(dead_code, reason = "the benchmark starts `serve` only; the other helpers serve the tests")]
mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use mimalloc::MiMalloc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use webhooks_bus::Bus;
use webhooks_dispatcher::DispatcherSettings;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_router::{Router, RouterSettings};
use webhooks_storage::Store;
use webhooks_test_support::bus::{amqp_url, topology, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::fixtures::{call_event, channel_create_body};
use webhooks_test_support::http::Client;
use webhooks_test_support::receiver::{Receiver, Reply};
use webhooks_test_support::store::{create_account, create_hook};

use crate::process::Webhooks;
use webhooks_test_support::bench::{
    CONFIRM_WINDOW, broker_ceiling, broker_latency, delete_queues, median, percentile, persistent_json,
    publish_confirmed,
};

/// The allocator of the production binary, so the in-process services run as they do there.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Messages per round of the ceiling, and rounds (the median is reported).
const CEILING_MESSAGES: usize = 10_000;
const CEILING_ROUNDS: usize = 3;
/// Events offered per throughput phase; publishing also stops at [`PUBLISH_LIMIT`].
const EVENTS_ONE_HOOK: usize = 20_000;
const EVENTS_HUNDRED_HOOKS: usize = 400;
/// Events handed to `webhooks serve`: its bus is in memory, so it can take more.
const SERVE_EVENTS_ONE_HOOK: usize = 40_000;
/// Hooks on the account of the fan-out phases.
const FAN_OUT: usize = 100;
/// Publishing stops after this, so a slow machine keeps the phase short.
const PUBLISH_LIMIT: Duration = Duration::from_secs(4);
/// The longest a phase waits for its deliveries, from its first publish.
const PHASE_LIMIT: Duration = Duration::from_secs(10);
/// How long the paced latency phase publishes.
const LATENCY_PHASE: Duration = Duration::from_secs(5);
/// How long it publishes at the same pace before measuring: the endpoint's first connections and
/// the broker's work left from the saturated phase before it (seconds of it) are not latency.
const LATENCY_WARM_UP: Duration = Duration::from_secs(3);
/// Accounts of the failing phase, one hook each; the first one's endpoint never answers.
const FAILING_ACCOUNTS: usize = 10;
/// Events per `POST /v2/events`, and requests in flight at once.
const EVENTS_PER_POST: usize = 100;
const POSTS_IN_FLIGHT: usize = 4;
/// The master key of the `serve` process.
const MASTER_KEY: &str = "bench-e2e-master-key-0123456789abcdef";
/// How long the hooks created through the API may take to reach the router.
const INDEX_PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    // As the `webhooks` binary does, so the in-process services fault their memory in as they do
    // there (not in 2 MiB pages, each zeroed whole).
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_thp_disable(true).expect("turn transparent huge pages off");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

/// The phases to run besides the ceiling and the 1-hook phase, which the others are measured
/// against: `BENCH_PHASES`, comma-separated among `hundred`, `latency`, `failing` and `serve`;
/// all of them when unset.
struct Phases(Option<Vec<String>>);

impl Phases {
    fn from_env() -> Self {
        Self(
            std::env::var("BENCH_PHASES").ok().map(|list| list.split(',').map(|name| name.trim().to_owned()).collect()),
        )
    }

    fn wants(&self, phase: &str) -> bool {
        self.0.as_ref().is_none_or(|chosen| chosen.iter().any(|name| name == phase))
    }
}

/// One line of the table: what, the figure, the goal and whether it is met.
struct Row {
    what: String,
    figure: String,
    goal: String,
    met: Option<bool>,
}

impl Row {
    fn new(what: impl Into<String>, figure: impl Into<String>, goal: impl Into<String>, met: Option<bool>) -> Row {
        Row { what: what.into(), figure: figure.into(), goal: goal.into(), met }
    }
}

async fn bench() {
    let template = channel_create_body();
    let mut rows = Vec::new();

    let mut ceilings = Vec::new();
    for _ in 0..CEILING_ROUNDS {
        let account = AccountId::generate();
        let bodies = (0..CEILING_MESSAGES).map(|sequence| event(&template, &account, sequence).1).collect();
        ceilings.push(broker_ceiling(&amqp_url(), bodies).await);
    }
    let ceiling = median(&mut ceilings);
    println!("RabbitMQ one-hop ceiling: rounds {ceilings:.0?} messages/s");
    rows.push(Row::new(
        "RabbitMQ one-hop ceiling (confirms, acks, persistent)",
        format!("{ceiling:.0} msg/s"),
        "",
        None,
    ));

    let phases = Phases::from_env();
    rows.extend(over_rabbitmq(&template, ceiling, &phases).await);
    if phases.wants("serve") {
        rows.extend(through_serve(&template).await);
    }

    println!();
    let widths = [
        rows.iter().map(|row| row.what.len()).max().unwrap_or(0),
        rows.iter().map(|row| row.figure.len()).max().unwrap_or(0),
        rows.iter().map(|row| row.goal.len()).max().unwrap_or(0),
    ];
    println!(
        "{:<w0$}  {:>w1$}  {:<w2$}  met",
        "figure",
        "measured",
        "goal",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2]
    );
    for row in &rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {met}",
            row.what,
            row.figure,
            row.goal,
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
}

/// Event `sequence` of `account`: its own Call-ID carries the sequence back in the payload.
fn event(template: &Value, account: &AccountId, sequence: usize) -> (String, Vec<u8>) {
    call_event(template, account, &format!("bench-{sequence}@203.0.113.10"))
}

/// The sequence an event was given by [`event`], read from a delivered JSON payload.
fn sequence_of(payload: &[u8]) -> Option<usize> {
    let payload: Value = serde_json::from_slice(payload).ok()?;
    payload["call_id"].as_str()?.strip_prefix("bench-")?.split('@').next()?.parse().ok()
}

/// A JSON hook on `channel_create` pointing at `uri`.
fn hook(uri: &str) -> Value {
    json!({"name": "bench", "uri": uri, "hook": "channel_create", "http_verb": "post", "format": "json",
        "retries": 2, "enabled": true})
}

/// Creates a top-level account with one hook per URI.
async fn account_with_hooks(store: &Store, uris: &[String]) -> AccountId {
    let account = AccountId::generate();
    create_account(store, &account, None, json!({})).await;
    for uri in uris {
        create_hook(store, &WebhookId::generate(), &account, &hook(uri)).await;
    }
    account
}

/// The dispatcher's settings in every in-process phase: the binary's defaults, except that one
/// local receiver stands for many hosts (a higher per-host limit), endpoints that hang are given
/// up after 1 s, and hooks are not disabled by the failing phase.
fn dispatcher_settings() -> DispatcherSettings {
    DispatcherSettings {
        allow_private_targets: true,
        max_connections_per_host: 256,
        total_timeout: Duration::from_secs(1),
        auto_disable: false,
        ..DispatcherSettings::default()
    }
}

/// The phases on RabbitMQ and PostgreSQL, with the router and the dispatcher in this process.
async fn over_rabbitmq(template: &Value, ceiling: f64, phases: &Phases) -> Vec<Row> {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let single = Receiver::counting(200).await;
    let hundred = Receiver::counting(200).await;
    let paced = Receiver::answering(200).await;
    let healthy = Receiver::counting(200).await;
    let hanging = Receiver::start(|_, _| Reply::Hang).await;

    let single_account = account_with_hooks(&store, &[single.url("/single")]).await;
    let fan_out: Vec<String> = (0..FAN_OUT).map(|index| hundred.url(&format!("/hook{index}"))).collect();
    let hundred_account = account_with_hooks(&store, &fan_out).await;
    let paced_account = account_with_hooks(&store, &[paced.url("/paced")]).await;
    let mut failing_accounts = Vec::new();
    for index in 0..FAILING_ACCOUNTS {
        let uri = if index == 0 { hanging.url("/hang") } else { healthy.url(&format!("/healthy{index}")) };
        failing_accounts.push(account_with_hooks(&store, &[uri]).await);
    }
    // The clean counterpart of the hanging endpoint: it answers at once, on a receiver of its own.
    let stand_in = Receiver::counting(200).await;
    let mut clean_accounts = failing_accounts.clone();
    clean_accounts[0] = account_with_hooks(&store, &[stand_in.url("/stand-in")]).await;

    // Each service on a connection of its own, as separate processes would be.
    let prefix = unique_prefix("bench-e2e");
    let router_bus = Bus::connect(Some(&amqp_url()), topology(&prefix)).await.expect("router bus");
    let dispatcher_bus = Bus::connect(Some(&amqp_url()), topology(&prefix)).await.expect("dispatcher bus");
    let cluster_id = "0d4c8e2a6b1f5a9c3e7d2b6f0a4c8e1d";
    let router =
        Router::start(store.clone(), router_bus.clone(), RouterSettings::new(cluster_id)).await.expect("router");
    let shutdown = CancellationToken::new();
    let routing = tokio::spawn(router.run(shutdown.clone()));
    let settings = dispatcher_settings();
    println!(
        "in-process router and dispatcher on RabbitMQ and PostgreSQL: dispatcher prefetch {}, concurrency {}, per host {}, total timeout {:?}",
        settings.prefetch, settings.concurrency, settings.max_connections_per_host, settings.total_timeout
    );
    let dispatching = tokio::spawn(webhooks_dispatcher::run(
        store.clone(),
        dispatcher_bus.clone(),
        settings,
        webhooks_dispatcher::DispatcherMetrics::default(),
        shutdown.clone(),
    ));

    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("publisher");
    let publisher = connection.create_channel().await.expect("channel");
    publisher.confirm_select(ConfirmSelectOptions::default()).await.expect("confirm mode");

    // Warm-up: connections, pools, caches.
    let warm_up: Vec<_> = (0..500).map(|sequence| event(template, &single_account, sequence)).collect();
    throughput(&publisher, &warm_up, &single, |sent| sent).await;

    let events: Vec<_> = (0..EVENTS_ONE_HOOK).map(|sequence| event(template, &single_account, sequence)).collect();
    let one_hook = throughput(&publisher, &events, &single, |sent| sent).await;
    println!("1 hook per event: {one_hook:.0} deliveries/s");
    let ratio = one_hook / ceiling;
    let mut rows = vec![Row::new(
        "AMQP -> router -> dispatcher -> HTTP, 1 hook per event",
        format!("{one_hook:.0} /s ({:.0}%)", 100.0 * ratio),
        format!(">= 70% of ceiling ({:.0} /s)", 0.7 * ceiling),
        Some(ratio >= 0.7),
    )];

    if phases.wants("hundred") {
        let events: Vec<_> =
            (0..EVENTS_HUNDRED_HOOKS).map(|sequence| event(template, &hundred_account, sequence)).collect();
        let hundred_hooks = throughput(&publisher, &events, &hundred, |sent| sent * FAN_OUT).await;
        println!("{FAN_OUT} hooks per event: {hundred_hooks:.0} deliveries/s");
        rows.push(Row::new(
            format!("AMQP -> router -> dispatcher -> HTTP, {FAN_OUT} hooks per event"),
            format!("{hundred_hooks:.0} /s"),
            ">= 20000 /s",
            Some(hundred_hooks >= 20_000.0),
        ));
    }

    if phases.wants("latency") {
        let paced_rate = (one_hook / 2.0).max(1.0);
        latency(&publisher, template, &paced_account, &paced, paced_rate, LATENCY_WARM_UP).await;
        let latencies = latency(&publisher, template, &paced_account, &paced, paced_rate, LATENCY_PHASE).await;
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
        println!(
            "latency at {paced_rate:.0} events/s: p50 {p50:.1} ms, p99 {p99:.1} ms ({} deliveries)",
            latencies.len()
        );
        rows.push(Row::new(
            format!("publish-to-receipt latency p50 at {paced_rate:.0} events/s"),
            format!("{p50:.1} ms"),
            "",
            None,
        ));
        rows.push(Row::new(
            format!("publish-to-receipt latency p99 at {paced_rate:.0} events/s"),
            format!("{p99:.1} ms"),
            "< 20 ms",
            Some(p99 < 20.0),
        ));
        // The floor under those figures: the broker's own single hop at the same rate (the
        // events travel two, one to the router and one to the dispatcher).
        let bodies: Vec<_> = (0..latencies.len()).map(|sequence| event(template, &paced_account, sequence).1).collect();
        let hop = broker_latency(&amqp_url(), &bodies, paced_rate).await;
        let (hop50, hop99) = (percentile(&hop, 0.50), percentile(&hop, 0.99));
        println!("RabbitMQ one hop at {paced_rate:.0} messages/s: p50 {hop50:.1} ms, p99 {hop99:.1} ms");
        rows.push(Row::new(
            format!("RabbitMQ one-hop latency p50 / p99 at {paced_rate:.0} messages/s"),
            format!("{hop50:.1} / {hop99:.1} ms"),
            "",
            None,
        ));
    }

    if phases.wants("failing") {
        // Round robin over the accounts: every tenth event goes to the first account's endpoint.
        // The healthy endpoints' rate is measured twice, back to back: with that endpoint
        // answering at once, then with it never answering.
        let stream = |accounts: &[AccountId]| -> Vec<_> {
            (0..EVENTS_ONE_HOOK)
                .map(|sequence| event(template, &accounts[sequence % FAILING_ACCOUNTS], sequence))
                .collect()
        };
        let healthy_share = |sent: usize| sent - sent.div_ceil(FAILING_ACCOUNTS);
        let clean = throughput(&publisher, &stream(&clean_accounts), &healthy, healthy_share).await;
        let with_failures = throughput(&publisher, &stream(&failing_accounts), &healthy, healthy_share).await;
        println!("10% of endpoints timing out: {with_failures:.0} healthy deliveries/s (clean: {clean:.0})");
        let kept = with_failures / clean;
        rows.push(Row::new(
            "healthy deliveries, 10% of endpoints timing out (1 s)",
            format!("{with_failures:.0} /s ({:.0}%)", 100.0 * kept),
            format!(">= 90% of the same endpoints' clean rate ({clean:.0} /s)"),
            Some(kept >= 0.9),
        ));
    }

    // The hanging callouts end with their receiver, so the dispatcher drains quickly.
    drop(hanging);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), routing).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), dispatching).await;
    delete_queues(&publisher, router_bus.topology()).await;
    let _ = connection.close(200, "done".into()).await;
    router_bus.close().await;
    dispatcher_bus.close().await;
    // The store first: its connections would keep the database from being dropped.
    drop(store);
    drop(database);

    rows
}

/// Publishes `events` as fast as the broker confirms them (for [`PUBLISH_LIMIT`] at most) and
/// waits until `receiver` has what `expected(sent)` says the events sent must produce; returns
/// deliveries per second from the first publish to the last receipt.
async fn throughput(
    publisher: &Channel,
    events: &[(String, Vec<u8>)],
    receiver: &Receiver,
    expected: impl Fn(usize) -> usize,
) -> f64 {
    let before = receiver.count();
    let started = Instant::now();
    let mut sent = 0;
    for window in events.chunks(CONFIRM_WINDOW) {
        if started.elapsed() >= PUBLISH_LIMIT {
            break;
        }
        publish_confirmed(publisher, "callevt", window).await;
        sent += window.len();
    }
    let (received, elapsed) = wait_for(receiver, before, expected(sent), started).await;
    received as f64 / elapsed.as_secs_f64()
}

/// Waits until `receiver` has `expected` requests more than `before`, or until [`PHASE_LIMIT`]
/// after `started`; how many arrived and when the wait ended.
async fn wait_for(receiver: &Receiver, before: usize, expected: usize, started: Instant) -> (usize, Duration) {
    loop {
        let received = receiver.count() - before;
        let elapsed = started.elapsed();
        if received >= expected || elapsed >= PHASE_LIMIT {
            if received < expected {
                println!("  (phase cut at {PHASE_LIMIT:?}: {received} of {expected} deliveries)");
            }
            return (received, elapsed);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Publishes events of `account` at `rate` per second for `duration`; each delivery's time from
/// its publish to its receipt, in milliseconds.
async fn latency(
    publisher: &Channel,
    template: &Value,
    account: &AccountId,
    receiver: &Receiver,
    rate: f64,
    duration: Duration,
) -> Vec<f64> {
    let count = (rate * duration.as_secs_f64()) as usize;
    let events: Vec<_> = (0..count).map(|sequence| event(template, account, sequence)).collect();
    let before = receiver.count();
    let mut sent_at = Vec::with_capacity(count);
    let started = Instant::now();
    for (index, (routing_key, body)) in events.iter().enumerate() {
        tokio::time::sleep_until((started + Duration::from_secs_f64(index as f64 / rate)).into()).await;
        sent_at.push(Instant::now());
        // Confirms are awaited at the end: waiting for each would pace the publisher, not the rate.
        let _confirm = publisher
            .basic_publish(
                "callevt".into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                body,
                persistent_json(),
            )
            .await
            .expect("publish");
    }
    publisher.wait_for_confirms().await.expect("publisher confirms");
    wait_for(receiver, before, count, started).await;
    receiver.requests()[before..]
        .iter()
        .filter_map(|request| {
            let sent = sent_at.get(sequence_of(&request.body)?)?;
            Some(request.at.duration_since(*sent).as_secs_f64() * 1000.0)
        })
        .collect()
}

/// The phases through `webhooks serve` on SQLite, with the in-memory bus.
async fn through_serve(template: &Value) -> Vec<Row> {
    let database = TestDatabase::sqlite().await;
    let env = [
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        // As in the in-process phases: one local receiver stands for many hosts.
        ("WEBHOOKS_DISPATCHER__MAX_CONNECTIONS_PER_HOST", "256".to_owned()),
    ];
    let serve = Webhooks::start(&["serve"], &env).await;
    serve.wait_ready().await;
    let client = &serve.client;
    let auth = client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": MASTER_KEY}}))).await;
    assert_eq!(auth.status, StatusCode::CREATED, "api_auth: {}", auth.body);
    let token = auth.body["auth_token"].as_str().expect("a token").to_owned();
    let master = auth.data()["account_id"].as_str().expect("the master account").to_owned();
    let (single_account, _) = client.create_account(&token, &master, "bench one hook").await;
    let (hundred_account, _) = client.create_account(&token, &master, "bench hundred hooks").await;
    let single = Receiver::counting(200).await;
    let hundred = Receiver::counting(200).await;
    client.create_hook(&token, &single_account, &api_hook(&single.url("/single"))).await;
    for index in 0..FAN_OUT {
        client.create_hook(&token, &hundred_account, &api_hook(&hundred.url(&format!("/hook{index}")))).await;
    }
    println!("webhooks serve on SQLite, in-memory bus: {} hooks created through the API", FAN_OUT + 1);
    serve.wait_for_index(FAN_OUT + 1, tokio::time::Instant::now() + INDEX_PATIENCE).await;

    let single_account: AccountId = single_account.parse().expect("an account id");
    let hundred_account: AccountId = hundred_account.parse().expect("an account id");
    let posts = |account: &AccountId, count: usize, per_post: usize| -> Vec<Vec<u8>> {
        let events: Vec<Value> = (0..count)
            .map(|sequence| serde_json::from_slice(&event(template, account, sequence).1).expect("JSON"))
            .collect();
        events.chunks(per_post).map(|chunk| serde_json::to_vec(chunk).expect("serialize")).collect()
    };
    // Warm-up, and a check that the hooks have reached the router.
    feed(client, &token, &posts(&single_account, 500, EVENTS_PER_POST), &single, 1).await;

    let one_hook =
        feed(client, &token, &posts(&single_account, SERVE_EVENTS_ONE_HOOK, EVENTS_PER_POST), &single, 1).await;
    println!("serve, 1 hook per event: {one_hook:.0} deliveries/s");
    // Fewer events per request: each makes FAN_OUT deliveries.
    let hundred_posts = posts(&hundred_account, EVENTS_HUNDRED_HOOKS, EVENTS_PER_POST / 10);
    let hundred_hooks = feed(client, &token, &hundred_posts, &hundred, FAN_OUT).await;
    println!("serve, {FAN_OUT} hooks per event: {hundred_hooks:.0} deliveries/s");

    let _ = serve.stop().await;
    drop(database);
    vec![
        Row::new(
            "webhooks serve (SQLite, POST /v2/events), 1 hook per event",
            format!("{one_hook:.0} /s"),
            ">= 20000 /s",
            Some(one_hook >= 20_000.0),
        ),
        Row::new(
            format!("webhooks serve (SQLite, POST /v2/events), {FAN_OUT} hooks per event"),
            format!("{hundred_hooks:.0} /s"),
            ">= 20000 /s",
            Some(hundred_hooks >= 20_000.0),
        ),
    ]
}

/// A JSON `channel_create` hook to `uri`, as created through the API.
fn api_hook(uri: &str) -> Value {
    json!({"name": "bench", "uri": uri, "hook": "channel_create", "format": "json"})
}

/// Hands `posts` (JSON arrays of events) to `POST /v2/events`, [`POSTS_IN_FLIGHT`] at once, for
/// [`PUBLISH_LIMIT`] at most, and waits until `receiver` has `hooks` deliveries per accepted
/// event; returns deliveries per second from the first request to the last receipt.
async fn feed(client: &Client, token: &str, posts: &[Vec<u8>], receiver: &Receiver, hooks: usize) -> f64 {
    let before = receiver.count();
    let posts = Arc::new(posts.to_vec());
    let (next, accepted) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let mut posting = tokio::task::JoinSet::new();
    for _ in 0..POSTS_IN_FLIGHT {
        let (client, token, posts, next, accepted) =
            (client.clone(), token.to_owned(), posts.clone(), next.clone(), accepted.clone());
        posting.spawn(async move {
            while started.elapsed() < PUBLISH_LIMIT {
                let Some(body) = posts.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                let answer =
                    client.send_raw(Method::POST, "/v2/events", Some(&token), "application/json", body.clone()).await;
                assert_eq!(answer.status, StatusCode::ACCEPTED, "POST /v2/events: {}", answer.body);
                let count = answer.data()["accepted"].as_u64().expect("an accepted count");
                accepted.fetch_add(usize::try_from(count).expect("a count"), Ordering::Relaxed);
            }
        });
    }
    while let Some(finished) = posting.join_next().await {
        finished.expect("posting task");
    }
    let expected = accepted.load(Ordering::Relaxed) * hooks;
    let (received, elapsed) = wait_for(receiver, before, expected, started).await;
    received as f64 / elapsed.as_secs_f64()
}
