//! Misbehaving receivers beside healthy ones, on hooks of the same account: one never answers,
//! one resets the connection, one answers with a body that never ends, one answers with a redirect
//! to the very URL called. The healthy hooks still get every event, once, in good time.

use serde_json::json;
use webhooks_model::ids::random_id;
use webhooks_test_support::receiver::{Receiver, Reply};

use super::cluster::{Cluster, Setup, hook_document, recorded_hooks};
use super::ledger::{Ledger, latencies, latency_summary};
use super::publisher::Publisher;
use super::{Goals, PATIENCE, events, figure};

const SCENARIO: &str = "misbehaving receivers";
/// Events per second: a rate this machine's debug build delivers to the healthy hooks within
/// 50 ms when no receiver misbehaves, so what slows them down is the misbehaving ones.
const RATE: f64 = 100.0;
/// The healthy hooks' positions on the ledger; the misbehaving hooks come after them.
const HEALTHY: [usize; 2] = [0, 1];
/// The longest a healthy delivery may take from publishing to arrival: far below the 15 s a
/// callout to the hanging receiver lasts, so a healthy one never waits behind it.
const TIMELY_MS: f64 = 2_000.0;
/// The run the latency goal is held at (`make faults`, release build). The short run of `make
/// test` (debug build, right after the other tests) checks what arrives and prints its latency:
/// there it measures how busy the machine still is more than the system.
const TIMED_FROM_EVENTS: usize = 20_000;

#[tokio::test(flavor = "multi_thread")]
async fn healthy_hooks_get_every_event_in_time_while_receivers_beside_them_hang_reset_stream_and_redirect() {
    let events = events();
    let run = random_id();
    let ledger = Ledger::new(&run, vec![None; HEALTHY.len()]);
    let (_healthy, mut hooks) = recorded_hooks(&ledger, &HEALTHY, "healthy").await;
    let misbehaving = [
        ("hanging", Receiver::start(|_, _| Reply::Hang).await),
        ("resetting", Receiver::resetting().await),
        ("streaming", Receiver::streaming_endlessly().await),
        (
            "redirecting",
            Receiver::start(|request, _| {
                Reply::Answer(302, vec![("Location".to_owned(), request.target.clone())], String::new())
            })
            .await,
        ),
    ];
    // Retried, so the misbehaving receivers keep being called after the events stop.
    hooks.extend(
        misbehaving.iter().map(|(name, receiver)| hook_document(name, &receiver.url("/"), json!({"retries": 2}))),
    );
    let cluster =
        Cluster::start(Setup { hooks: vec![hooks], database_via: None, broker_via: None, queue_expiry: None }).await;

    let publisher = Publisher::start(&run, &cluster.accounts, events, RATE);
    let published = publisher.finish().await;
    let expected = published.expected(&HEALTHY, |_| true);
    ledger.settle(&expected, PATIENCE).await;
    let tally = ledger.tally(&expected);
    let latencies = latencies(&ledger, &published, &expected);
    let slowest = latencies.iter().copied().fold(0.0, f64::max);

    figure(SCENARIO, published.summary());
    figure(SCENARIO, format!("healthy hooks: {tally}"));
    figure(SCENARIO, format!("healthy hooks: {}", latency_summary(&latencies)));
    let called: Vec<String> =
        misbehaving.iter().map(|(name, receiver)| format!("{name} {}", receiver.count())).collect();
    figure(SCENARIO, format!("callouts to the misbehaving receivers: {}", called.join(", ")));
    figure(SCENARIO, cluster.memory_report());

    let mut goals = Goals::new(SCENARIO);
    goals.check(tally.lost == 0, format!("the healthy hooks get every confirmed event ({} lost)", tally.lost));
    goals.check(tally.duplicates() == 0, format!("the healthy hooks get each once ({} repeated)", tally.duplicates()));
    let timely =
        format!("every healthy delivery arrives within {TIMELY_MS} ms of publishing (slowest {slowest:.0} ms)");
    if events >= TIMED_FROM_EVENTS {
        goals.check(slowest <= TIMELY_MS, timely);
    } else {
        figure(SCENARIO, format!("{timely}: held to the goal from {TIMED_FROM_EVENTS} events"));
    }
    for (name, receiver) in &misbehaving {
        goals.check(receiver.count() > 0, format!("the {name} receiver is called ({} callouts)", receiver.count()));
    }
    goals.check(tally.unexpected == 0, format!("no callout of an unknown event ({})", tally.unexpected));
    goals.assert_all();
}
