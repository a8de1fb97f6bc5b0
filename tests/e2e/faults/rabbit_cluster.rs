//! The node leading the queues of a three-node RabbitMQ cluster stopped for 10 s, then started
//! again, while events keep being published: nothing the broker confirmed is lost, deliveries
//! resume within 5 s of the stop and of the return, and a repeated callout carries its original's
//! event id.
//!
//! The cluster is the scenario's own (three `rabbitmq-server` nodes on this machine, see
//! `webhooks_test_support::rabbit_cluster`); the services are given all three nodes, node 1
//! first, and declare their queues as quorum queues (classic queues, which live on one node,
//! stall deliveries until that node returns). Events are published, with confirms, on a node
//! that is not stopped. `make test` publishes 2,000 events; `make bench-cluster` 20,000 on the
//! release build.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use webhooks_bus::Topology;
use webhooks_model::ids::random_id;
use webhooks_test_support::rabbit_cluster::RabbitCluster;

use super::cluster::{Brokers, Cluster, Setup, recorded_hooks};
use super::ledger::{Ledger, latencies, latency_summary};
use super::publisher::Publisher;
use super::{Goals, PATIENCE, events, figure};

const SCENARIO: &str = "rabbit cluster";
const NODES: usize = 3;
/// Publishing lasts this long: an eighth of it before the stop, then the node's shutdown (3 to
/// 8 s), its time down and its restart (10 to 25 s on a busy machine), and a good while after
/// its return.
const PUBLISH_FOR: f64 = 80.0;
const STOP_AFTER: f64 = 1.0 / 8.0;
/// How long the node stays down once stopped.
const DOWN: Duration = Duration::from_secs(10);
/// How soon deliveries must flow again after the stop and after the return.
const RESUME_GOAL: Duration = Duration::from_secs(5);
/// How long after the node's return a service may still reconnect, for the figures (a service
/// whose connection was on another node never does).
const RECONNECT_GRACE: Duration = Duration::from_secs(10);
const ACCOUNTS: usize = 2;
const POSITIONS: [usize; 2] = [0, 1];
const RECONNECTIONS: &str = "webhooks_bus_reconnections_total";

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_node_leading_the_queues_loses_nothing_and_deliveries_resume_within_5_s() {
    let events = events();
    let run = random_id();
    // Declared first, dropped last: the services go before their brokers.
    let mut rabbit = RabbitCluster::launch(NODES).await;
    figure(SCENARIO, format!("{NODES} RabbitMQ nodes started and clustered in {:.1?}", rabbit.launch_time()));
    let ledger = Ledger::new(&run, vec![None; POSITIONS.len()]);
    let (_receivers, hooks) = recorded_hooks(&ledger, &POSITIONS, "rabbit cluster").await;
    let cluster = Cluster::start_on(
        Setup { hooks: vec![hooks; ACCOUNTS], database_via: None, broker_via: None, queue_expiry: None },
        Brokers { urls: rabbit.amqp_urls(), env: vec![("WEBHOOKS_BUS__QUEUE_TYPE", "quorum".to_owned())] },
    )
    .await;
    let topology = Topology::new(cluster.prefix());
    let (router_queue, dispatch_queue) = (topology.router_queue(), topology.dispatch_queue());

    // The publisher stays on a node that leads neither queue, so the stop does not cut it off.
    // Each question is a CLI call, seconds on a busy machine: they are asked together.
    let (router_leader, dispatch_leader) =
        tokio::join!(rabbit.leader_of(&router_queue), rabbit.leader_of(&dispatch_queue));
    let publishing = (0..NODES)
        .find(|&node| node != router_leader && node != dispatch_leader)
        .expect("two queues lead on at most two of three nodes");
    let mut publisher =
        Publisher::start_on(&rabbit.url(publishing), &run, &cluster.accounts, events, events as f64 / PUBLISH_FOR);
    publisher.reached((events as f64 * STOP_AFTER) as usize).await;
    let (router_leader, dispatch_leader) =
        tokio::join!(rabbit.leader_of(&router_queue), rabbit.leader_of(&dispatch_queue));
    assert_ne!(router_leader, publishing, "the router queue's leader moved to the publisher's node");
    let mut reconnections_before = Vec::new();
    for (_, process) in cluster.processes() {
        reconnections_before.push(process.metric(RECONNECTIONS).await);
    }

    let (returned, on_return) = watch::channel(None::<Instant>);
    let stop_at = Instant::now();
    let watchers = futures_util::future::join_all(cluster.processes().zip(&reconnections_before).map(
        |((name, process), &before)| {
            let on_return = on_return.clone();
            async move {
                loop {
                    if process.metric(RECONNECTIONS).await > before {
                        return (name, Some(stop_at.elapsed()));
                    }
                    if on_return.borrow().is_some_and(|at| at.elapsed() > RECONNECT_GRACE) {
                        return (name, None);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        },
    ));
    let outage = async {
        rabbit.stop(router_leader).await;
        let stopped_at = Instant::now();
        // The outage itself: its length is the scenario.
        tokio::time::sleep(DOWN).await;
        let starting_at = Instant::now();
        rabbit.start(router_leader).await;
        let returned_at = Instant::now();
        returned.send_replace(Some(returned_at));
        (stopped_at, starting_at, returned_at)
    };
    let (reconnected, (stopped_at, starting_at, returned_at)) = tokio::join!(watchers, outage);
    let (router_leader_after, dispatch_leader_after) =
        tokio::join!(rabbit.leader_of(&router_queue), rabbit.leader_of(&dispatch_queue));

    let published = publisher.finish().await;
    let expected = published.expected(&POSITIONS, |_| true);
    ledger.settle(&expected, PATIENCE).await;
    let tally = ledger.tally(&expected);
    let away = published.sent.iter().filter(|&&sent| sent >= stop_at && sent < returned_at).count();
    let after = published.sent.iter().filter(|&&sent| sent >= returned_at).count();
    let last_sent = published.sent.last().copied().unwrap_or(returned_at);
    let mut arrivals: Vec<Instant> = expected
        .iter()
        .filter_map(|&(sequence, position)| ledger.arrival(sequence, position))
        .map(|arrival| arrival.at)
        .collect();
    arrivals.sort();
    let first_after = |from: Instant| arrivals.iter().find(|&&at| at > from).map(|&at| at.duration_since(from));
    let (resumed_after_stop, resumed_after_return) = (first_after(stop_at), first_after(returned_at));
    let gap_from_stop = longest_gap(&arrivals, stop_at, last_sent);
    let gap_from_return = longest_gap(&arrivals, returned_at, last_sent);

    let node = |index: usize| format!("node {} ({})", index + 1, rabbit.node(index));
    figure(
        SCENARIO,
        format!(
            "{router_queue} led by {}, {dispatch_queue} by {} ({}); publishing on {}",
            node(router_leader),
            node(dispatch_leader),
            if router_leader == dispatch_leader { "the same node" } else { "another node" },
            node(publishing)
        ),
    );
    figure(
        SCENARIO,
        format!(
            "{} stopped {:.1?} after the start of publishing, its shutdown took {:.1?}; down {DOWN:?}; back {:.1?} \
             after its start, {:.1?} after the stop; then the router queue is led by node {}, the dispatch queue by \
             node {}",
            node(router_leader),
            stop_at.duration_since(published.started),
            stopped_at.duration_since(stop_at),
            returned_at.duration_since(starting_at),
            returned_at.duration_since(stop_at),
            router_leader_after + 1,
            dispatch_leader_after + 1,
        ),
    );
    figure(
        SCENARIO,
        format!("{}; {away} of them from the stop to the return, {after} after the return", published.summary()),
    );
    figure(SCENARIO, tally);
    figure(SCENARIO, latency_summary(&latencies(&ledger, &published, &expected)));
    figure(
        SCENARIO,
        format!(
            "first delivery {} after the stop, {} after the return",
            describe(resumed_after_stop),
            describe(resumed_after_return)
        ),
    );
    figure(
        SCENARIO,
        format!(
            "longest gap between deliveries from the stop to the last publish: {}; from the return: {}",
            describe_gap(gap_from_stop, "stop"),
            describe_gap(gap_from_return, "return")
        ),
    );
    for (name, took) in &reconnected {
        match took {
            Some(took) => figure(SCENARIO, format!("{name} reconnected {took:.2?} after the stop")),
            None => figure(SCENARIO, format!("{name} did not reconnect (its connection was on a node that stayed)")),
        }
    }
    figure(SCENARIO, cluster.memory_report());

    let mut goals = Goals::new(SCENARIO);
    goals.check(tally.lost == 0, format!("no confirmed event lost on any hook ({} lost)", tally.lost));
    goals.check(
        tally.new_id == 0,
        format!("every duplicate carries its original's X-Event-ID ({} carry a new one)", tally.new_id),
    );
    goals.check(tally.unexpected == 0, format!("no callout of an unknown event ({})", tally.unexpected));
    // Without events published well after the return, a stall there would go unseen.
    goals.check(
        last_sent >= returned_at + RESUME_GOAL,
        format!(
            "publishing goes on for at least {RESUME_GOAL:?} after the node's return ({:.1?})",
            last_sent.saturating_duration_since(returned_at)
        ),
    );
    goals.check(
        gap_from_stop.is_some_and(|(gap, _)| gap <= RESUME_GOAL),
        format!(
            "deliveries resume within {RESUME_GOAL:?} of the stop and of the return: no longer gap between \
             deliveries from the stop on ({})",
            describe_gap(gap_from_stop, "stop")
        ),
    );
    goals.assert_all();
}

/// The longest time without a delivery from `from` to `until`, counting from `from` to the first
/// delivery, between consecutive deliveries, and from the last one to `until`, with how long
/// after `from` it began; `None` if `until` is not after `from`. `arrivals` are sorted.
fn longest_gap(arrivals: &[Instant], from: Instant, until: Instant) -> Option<(Duration, Duration)> {
    if until <= from {
        return None;
    }
    let within = arrivals.iter().copied().filter(|&at| at > from && at < until);
    let points: Vec<Instant> = std::iter::once(from).chain(within).chain(std::iter::once(until)).collect();
    points
        .windows(2)
        .map(|pair| (pair[1].duration_since(pair[0]), pair[0].duration_since(from)))
        .max_by_key(|&(gap, _)| gap)
}

/// A duration, or "never".
fn describe(duration: Option<Duration>) -> String {
    duration.map_or("never".to_owned(), |duration| format!("{duration:.2?}"))
}

/// A gap of [`longest_gap`] as words.
fn describe_gap(gap: Option<(Duration, Duration)>, from: &str) -> String {
    match gap {
        Some((gap, began)) => format!("{gap:.2?}, from {began:.2?} after the {from}"),
        None => "none (publishing had ended)".to_owned(),
    }
}
