//! A long run at a steady rate with 5% of the receivers failing (`make soak`): throughput, p99
//! latency and every process's memory over time, and any loss. It lasts `WEBHOOKS_SOAK_SECONDS`
//! (1,800 unless set) at `WEBHOOKS_SOAK_RATE` events/s, or else at half the maximum measured
//! first: a burst of `WEBHOOKS_SOAK_BURST` events (10,000 unless set) published as fast as the
//! broker confirms, the maximum being the burst's events over the time from its first publish to
//! its last delivery.

use std::time::{Duration, Instant};

use serde_json::json;
use webhooks_model::ids::random_id;
use webhooks_test_support::bench::percentile;
use webhooks_test_support::receiver::Receiver;

use super::cluster::{Cluster, Setup, hook_document};
use super::ledger::{Ledger, latencies, latency_summary};
use super::publisher::Publisher;
use super::{Goals, PATIENCE, QUEUE_EXPIRY, figure, mib, setting};

const SCENARIO: &str = "soak";
/// Twenty accounts with one hook each; the first one's receiver answers 500 (5% of receivers).
const ACCOUNTS: usize = 20;
const FAILING_ACCOUNT: usize = 0;
/// How many memory samples a run takes at least, and how far apart at least.
const SAMPLES: u64 = 30;
const LEAST_SAMPLE_GAP: Duration = Duration::from_secs(5);
/// The longest a delivery may take from publishing to arrival: a system that keeps up with the
/// rate delivers far faster, one falling behind ends up far slower.
const KEEPING_UP: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs for half an hour unless told otherwise: `make soak`"]
async fn soak_at_a_steady_rate_with_failing_receivers() {
    let seconds: u64 = setting("WEBHOOKS_SOAK_SECONDS").unwrap_or(1_800);
    let burst: usize = setting("WEBHOOKS_SOAK_BURST").unwrap_or(10_000);
    let ledger = Ledger::new(&random_id(), vec![None]);
    let healthy = Receiver::observing(200, ledger.observer(0)).await;
    let failing = Receiver::counting(500).await;
    let hooks = (0..ACCOUNTS)
        .map(|account| {
            let receiver = if account == FAILING_ACCOUNT { &failing } else { &healthy };
            vec![hook_document(&format!("soak {account}"), &receiver.url("/"), json!({"retries": 2}))]
        })
        .collect();
    let cluster = Cluster::start(Setup {
        hooks,
        database_via: None,
        broker_via: None,
        // The delay queues must outlive the run.
        queue_expiry: Some(Duration::from_secs(seconds) + QUEUE_EXPIRY),
    })
    .await;
    let healthy_events = |sequence: usize| sequence % ACCOUNTS != FAILING_ACCOUNT;

    let rate = match setting::<f64>("WEBHOOKS_SOAK_RATE") {
        Some(rate) => rate,
        None => {
            let run = random_id();
            ledger.begin(&run);
            let published = Publisher::start(&run, &cluster.accounts, burst, f64::INFINITY).finish().await;
            let expected = published.expected(&[0], healthy_events);
            ledger.settle(&expected, PATIENCE).await;
            assert_eq!(ledger.missing(&expected), 0, "every healthy event of the burst is delivered");
            let last = expected
                .iter()
                .filter_map(|&(sequence, position)| ledger.arrival(sequence, position))
                .map(|arrival| arrival.at)
                .max()
                .expect("deliveries");
            let maximum = burst as f64 / last.duration_since(published.started).as_secs_f64();
            figure(SCENARIO, format!("maximum: {burst} events delivered at {maximum:.0} events/s"));
            maximum / 2.0
        }
    };
    let count = (rate * seconds as f64) as usize;
    figure(SCENARIO, format!("{count} events at {rate:.0} events/s for {seconds} s"));
    let run = random_id();
    ledger.begin(&run);
    let started = Instant::now();
    let mut publisher = Publisher::start(&run, &cluster.accounts, count, rate);
    let gap = Duration::from_secs(seconds / SAMPLES).max(LEAST_SAMPLE_GAP);
    let sample = || {
        let memory: Vec<String> = cluster
            .processes()
            .map(|(name, process)| format!("{name} {:.1} MiB", mib(process.memory().rss_kib)))
            .collect();
        (started.elapsed(), memory.join(", "))
    };
    let mut samples = vec![sample()];
    // The sampling pace; publishing goes on meanwhile.
    while tokio::time::timeout(gap, publisher.reached(count)).await.is_err() {
        samples.push(sample());
    }
    let published = publisher.finish().await;
    let expected = published.expected(&[0], healthy_events);
    ledger.settle(&expected, PATIENCE).await;
    samples.push(sample());
    let tally = ledger.tally(&expected);
    let all_latencies = latencies(&ledger, &published, &expected);

    figure(SCENARIO, published.summary());
    figure(SCENARIO, format!("t={:>5.0} s: RSS {}", samples[0].0.as_secs_f64(), samples[0].1));
    for pair in samples.windows(2) {
        let ((since, _), (at, memory)) = (&pair[0], &pair[1]);
        // Deliveries that arrived since the previous sample: their rate and p99.
        let window: Vec<f64> = expected
            .iter()
            .filter_map(|&(sequence, position)| {
                let arrival = ledger.arrival(sequence, position)?;
                let arrived = arrival.at.saturating_duration_since(started);
                (arrived > *since && arrived <= *at)
                    .then(|| arrival.at.saturating_duration_since(published.sent[sequence]).as_secs_f64() * 1000.0)
            })
            .collect();
        let throughput = window.len() as f64 / at.saturating_sub(*since).as_secs_f64().max(f64::EPSILON);
        figure(
            SCENARIO,
            format!(
                "t={:>5.0} s: {throughput:>6.0} deliveries/s, p99 {:>5.0} ms; RSS {memory}",
                at.as_secs_f64(),
                percentile(&window, 0.99),
            ),
        );
    }
    figure(SCENARIO, format!("healthy hooks: {tally}"));
    figure(SCENARIO, format!("healthy hooks: {}", latency_summary(&all_latencies)));
    figure(SCENARIO, format!("callouts to the failing receiver: {}", failing.count()));
    figure(SCENARIO, cluster.memory_report());

    let slowest = all_latencies.iter().copied().fold(0.0, f64::max);
    let mut goals = Goals::new(SCENARIO);
    goals.check(tally.lost == 0, format!("every confirmed healthy event is delivered ({} lost)", tally.lost));
    goals.check(tally.duplicates() == 0, format!("each once ({} repeated)", tally.duplicates()));
    goals.check(
        slowest <= KEEPING_UP.as_secs_f64() * 1000.0,
        format!("the system keeps up: every delivery within {KEEPING_UP:?} of publishing (slowest {slowest:.0} ms)"),
    );
    goals.check(failing.count() > 0, "the failing receiver is called");
    goals.assert_all();
}
