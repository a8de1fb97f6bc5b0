//! Dispatcher benchmark: deliveries per second from job publish to HTTP receipt at a local fake
//! receiver, latency at half the top rate, and throughput while 10% of endpoints time out.
//!
//! Run with `cargo run --release -p webhooks-dispatcher --example bench_dispatch` (in-process bus
//! over SQLite), or add `-- --amqp` for RabbitMQ (`WEBHOOKS_TEST_AMQP_URL`) over PostgreSQL
//! (`WEBHOOKS_TEST_POSTGRES_URL`). Every phase is bounded to a few seconds.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use webhooks_bus::Bus;
use webhooks_dispatcher::DispatcherSettings;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::webhook::{DeliveryTarget, Format, HttpVerb};
use webhooks_test_support::bench::percentile;
use webhooks_test_support::bus::{amqp_url, job_batch, topology, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::receiver::{Receiver, Reply};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// The longest any phase may wait for its deliveries.
const PHASE_LIMIT: Duration = Duration::from_secs(8);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let amqp = std::env::args().any(|argument| argument == "--amqp");
    let database = if amqp { TestDatabase::postgres().await } else { TestDatabase::sqlite().await };
    let store = database.store().await;
    let url = amqp_url();
    // Not the tests' `connect`: that one sends logs to the test output.
    let bus =
        Bus::connect(amqp.then_some(url.as_str()), topology(&unique_prefix("bench-dispatch"))).await.expect("bus");
    let healthy = Receiver::answering(200).await;
    let hanging = Receiver::start(|_, _| Reply::Hang).await;
    let settings = DispatcherSettings {
        allow_private_targets: true,
        prefetch: 256,
        concurrency: 1024,
        max_connections_per_host: 256,
        total_timeout: Duration::from_secs(1),
        auto_disable: false,
        ..DispatcherSettings::default()
    };
    println!(
        "bench_dispatch: bus={} database={} prefetch={} concurrency={} per-host={} total_timeout={:?}",
        if amqp { "rabbitmq" } else { "in-process" },
        if amqp { "postgresql" } else { "sqlite" },
        settings.prefetch,
        settings.concurrency,
        settings.max_connections_per_host,
        settings.total_timeout
    );
    let shutdown = CancellationToken::new();
    let dispatcher = tokio::spawn(webhooks_dispatcher::run(
        store.clone(),
        bus.clone(),
        settings,
        webhooks_dispatcher::DispatcherMetrics::default(),
        shutdown.clone(),
    ));
    let account = AccountId::generate();
    let mut sequence = 0_u64;
    let mut job = |uri: &str| {
        sequence += 1;
        DeliveryJob {
            event_id: format!("{sequence:010x}").into(),
            hook_id: WebhookId::generate(),
            account_id: account.clone(),
            hook_event: "object".into(),
            target: DeliveryTarget {
                uri: uri.into(),
                http_verb: HttpVerb::Post,
                format: Format::Json,
                retries: 0,
                custom_request_headers: None,
            },
            attempt: 0,
            custom_data: None,
            payload: json!({"seq": sequence, "type": "user", "action": "doc_edited"})
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into(),
            published_at_ms: 0,
            test: false,
            trace_parent: None,
        }
    };
    let healthy_uri = healthy.url("/hook");
    let hanging_uri = hanging.url("/hook");

    // Warm-up: connections, pools, caches.
    let warm: Vec<_> = (0..200).map(|_| vec![job(&healthy_uri)]).collect();
    let (_, _) = deliver(&bus, &healthy, warm).await;

    let singles: Vec<_> = (0..5_000).map(|_| vec![job(&healthy_uri)]).collect();
    let (rate_single, _) = deliver(&bus, &healthy, singles).await;
    println!("throughput, 1 job per batch:    {rate_single:>9.0} deliveries/s");

    let hundreds: Vec<_> = (0..200).map(|_| (0..100).map(|_| job(&healthy_uri)).collect()).collect();
    let (rate_hundred, _) = deliver(&bus, &healthy, hundreds).await;
    println!("throughput, 100 jobs per batch: {rate_hundred:>9.0} deliveries/s");

    // Latency at half the single-job rate, for about three seconds.
    let paced_rate = (rate_single / 2.0).max(1.0);
    let count = ((paced_rate * 3.0) as usize).clamp(10, 50_000);
    let paced: Vec<_> = (0..count).map(|_| vec![job(&healthy_uri)]).collect();
    let latencies = deliver_paced(&bus, &healthy, paced, paced_rate).await;
    println!(
        "latency at {paced_rate:.0} deliveries/s: p50 {:.1} ms, p99 {:.1} ms ({} deliveries)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.len()
    );

    // 10% of the endpoints never answer (each holds a callout for the total timeout).
    let mixed: Vec<_> =
        (0..5_000).map(|index| vec![job(if index % 10 == 0 { &hanging_uri } else { &healthy_uri })]).collect();
    let (rate_mixed, _) = deliver(&bus, &healthy, mixed).await;
    println!("throughput, 10% timing out:     {rate_mixed:>9.0} healthy deliveries/s");

    shutdown.cancel();
    drop(hanging);
    let _ = tokio::time::timeout(Duration::from_secs(30), dispatcher).await;
}

/// Publishes `batches` as fast as the bus takes them and waits for the healthy receiver to get
/// every job addressed to it; returns deliveries per second and the elapsed time.
async fn deliver(bus: &Bus, healthy: &Receiver, batches: Vec<Vec<DeliveryJob>>) -> (f64, Duration) {
    let before = healthy.count();
    let expected =
        batches.iter().flatten().filter(|job| job.target.uri.as_str().starts_with(&healthy.url("/"))).count();
    let started = Instant::now();
    let messages: Vec<_> = batches.into_iter().map(|jobs| job_batch(bus, jobs)).collect();
    for chunk in messages.chunks(500) {
        bus.publish_all(chunk.to_vec()).await.expect("publish");
    }
    let received = wait_until(healthy, before + expected).await - before;
    let elapsed = started.elapsed();
    (received as f64 / elapsed.as_secs_f64(), elapsed)
}

/// Publishes `batches` at `rate` batches per second; returns each delivery's latency in ms.
async fn deliver_paced(bus: &Bus, healthy: &Receiver, batches: Vec<Vec<DeliveryJob>>, rate: f64) -> Vec<f64> {
    let before = healthy.count();
    let total = batches.len();
    let started = Instant::now();
    let mut sent_at = std::collections::HashMap::new();
    for (index, jobs) in batches.into_iter().enumerate() {
        let due = started + Duration::from_secs_f64(index as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        for job in &jobs {
            sent_at.insert(job.payload["seq"].as_u64().unwrap_or_default(), Instant::now());
        }
        bus.publish(job_batch(bus, jobs)).await.expect("publish");
    }
    wait_until(healthy, before + total).await;
    healthy.requests()[before..]
        .iter()
        .filter_map(|request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
            let sent = sent_at.get(&body["seq"].as_u64()?)?;
            Some(request.at.duration_since(*sent).as_secs_f64() * 1000.0)
        })
        .collect()
}

/// Waits until `receiver` has `count` requests or the phase limit passes; returns how many it has.
async fn wait_until(receiver: &Receiver, count: usize) -> usize {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let received = receiver.count();
        if received >= count || Instant::now() >= deadline {
            if received < count {
                println!("  (phase cut at {PHASE_LIMIT:?}: {received} of {count} received)");
            }
            return received.min(count);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
