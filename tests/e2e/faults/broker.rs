//! The broker cut away for 20 s behind a proxy while events keep being published to it
//! directly: every service reconnects within 2 s of the broker's return and deliveries resume,
//! nothing the broker confirmed is lost, and a repeated callout carries its original's event id.

use std::time::{Duration, Instant};

use webhooks_model::ids::random_id;
use webhooks_test_support::proxy::Proxy;

use super::cluster::{Cluster, Setup, recorded_hooks, server_address};
use super::ledger::{Ledger, latencies, latency_summary};
use super::publisher::Publisher;
use super::{Goals, PATIENCE, RABBITMQ, events, figure, time_until};

const SCENARIO: &str = "broker cut";
/// Publishing lasts this long; the cut starts once a sixth of the events is published.
const PUBLISH_FOR: f64 = 30.0;
const CUT_AFTER: f64 = 1.0 / 6.0;
const OUTAGE: Duration = Duration::from_secs(20);
/// How soon after the broker's return every service must be connected and deliveries flow.
const RECONNECT_GOAL: Duration = Duration::from_secs(2);
/// How long to wait for a reconnection at all.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(30);
const ACCOUNTS: usize = 2;
const POSITIONS: [usize; 2] = [0, 1];
const RECONNECTIONS: &str = "webhooks_bus_reconnections_total";

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_outage_of_20_s_loses_nothing_and_every_service_reconnects_within_2_s() {
    let events = events();
    let run = random_id();
    let proxy = Proxy::start(server_address(RABBITMQ)).await;
    let ledger = Ledger::new(&run, vec![None; POSITIONS.len()]);
    let (_receivers, hooks) = recorded_hooks(&ledger, &POSITIONS, "broker").await;
    let cluster = Cluster::start(Setup {
        hooks: vec![hooks; ACCOUNTS],
        database_via: None,
        broker_via: Some(proxy.address()),
        queue_expiry: None,
    })
    .await;
    assert!(proxy.forwarded() >= 3, "every service talks to the broker through the proxy");

    let mut publisher = Publisher::start(&run, &cluster.accounts, events, events as f64 / PUBLISH_FOR);
    publisher.reached((events as f64 * CUT_AFTER) as usize).await;
    let mut reconnections_before = Vec::new();
    for (_, process) in cluster.processes() {
        reconnections_before.push(process.metric(RECONNECTIONS).await);
    }
    proxy.cut();
    let cut_at = Instant::now();
    // The outage itself: its length is the scenario.
    tokio::time::sleep(OUTAGE).await;
    proxy.restore();
    let restored_at = Instant::now();
    let reconnected = futures_util::future::join_all(cluster.processes().zip(&reconnections_before).map(
        |((name, process), &before)| async move {
            let took = time_until(RECONNECT_PATIENCE, || async { process.metric(RECONNECTIONS).await > before }).await;
            (name, took)
        },
    ))
    .await;

    let published = publisher.finish().await;
    let expected = published.expected(&POSITIONS, |_| true);
    ledger.settle(&expected, PATIENCE).await;
    let tally = ledger.tally(&expected);
    let during = published.sent.iter().filter(|&&sent| sent >= cut_at && sent < restored_at).count();
    // The first delivery after the return: routers and dispatchers consume again.
    let resumed = expected
        .iter()
        .filter_map(|&(sequence, position)| ledger.arrival(sequence, position))
        .filter(|arrival| arrival.at > restored_at)
        .map(|arrival| arrival.at.duration_since(restored_at))
        .min();

    figure(SCENARIO, format!("{}; {during} of them while the broker was cut", published.summary()));
    figure(SCENARIO, tally);
    figure(SCENARIO, latency_summary(&latencies(&ledger, &published, &expected)));
    for (name, took) in &reconnected {
        figure(SCENARIO, format!("{name} reconnected {took:.2?} after the broker's return"));
    }
    figure(SCENARIO, format!("first delivery {resumed:.2?} after the broker's return"));
    figure(SCENARIO, cluster.memory_report());

    let mut goals = Goals::new(SCENARIO);
    for (name, took) in &reconnected {
        goals.check(
            took.is_some_and(|took| took <= RECONNECT_GOAL),
            format!("{name} reconnects within {RECONNECT_GOAL:?} of the broker's return ({took:.2?})"),
        );
    }
    goals.check(
        resumed.is_some_and(|resumed| resumed <= RECONNECT_GOAL),
        format!("deliveries resume within {RECONNECT_GOAL:?} of the broker's return ({resumed:.2?})"),
    );
    goals.check(tally.lost == 0, format!("no confirmed event lost on any hook ({} lost)", tally.lost));
    goals.check(
        tally.new_id == 0,
        format!("every duplicate carries its original's X-Event-ID ({} carry a new one)", tally.new_id),
    );
    goals.check(tally.unexpected == 0, format!("no callout of an unknown event ({})", tally.unexpected));
    goals.assert_all();
}
