//! The database cut away for 30 s behind a proxy while events flow. The API answers at once with
//! 503 `datastore_unreachable` and recovers by itself when the database returns; routers route
//! and dispatchers deliver through the outage (a callout needs no database), signed hooks still
//! signed; no callout is repeated because its bookkeeping could not be written; and the attempt
//! records of the callouts that failed during the outage reach the attempt log once the database
//! is back.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::random_id;
use webhooks_test_support::http::Answer;
use webhooks_test_support::proxy::Proxy;
use webhooks_test_support::receiver::Receiver;

use super::cluster::{Cluster, Role, Setup, hook_document, server_address};
use super::ledger::{Ledger, event_hash};
use super::publisher::Publisher;
use super::{Goals, PATIENCE, POSTGRES, SIGNING_SECRET, events, figure, time_until};

const SCENARIO: &str = "database cut";
/// Publishing lasts this long; the cut starts once an eighth of the events is published.
const PUBLISH_FOR: f64 = 40.0;
const CUT_AFTER: f64 = 1.0 / 8.0;
const OUTAGE: Duration = Duration::from_secs(30);
/// How often the API is asked during the outage, and how soon it must answer.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const ANSWER_GOAL: Duration = Duration::from_secs(1);
/// How soon after the database's return the API must answer as before.
const RECOVERY_GOAL: Duration = Duration::from_secs(5);
/// Events confirmed up to this long before the database returns must have been delivered
/// before it returns.
const DELIVERY_LAG: Duration = Duration::from_secs(2);
/// How long the attempt records of the outage may take to reach the log once it is over.
const ATTEMPTS_PATIENCE: Duration = Duration::from_secs(30);
/// Hook positions: a plain hook, a signed one, and one whose receiver answers 500 (no retries,
/// so each event gets one callout and one attempt record there).
const PLAIN: usize = 0;
const SIGNED: usize = 1;
const FAILING: usize = 2;
const HOOKS: usize = 3;
const JOBS_PUBLISHED: &str = "webhooks_router_jobs_published_total";

/// One request to the API made while the database was cut.
struct Probe {
    sent_at: Instant,
    took: Duration,
    answer: Answer,
}

/// Whether `body` is Crossbar's error envelope for an unreachable datastore.
fn is_unreachable_envelope(body: &Value) -> bool {
    body["status"] == "error"
        && body["error"] == "503"
        && body["message"] == "datastore_unreachable"
        && body["data"] == json!({"message": "datastore timeout"})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_of_30_s_leaves_deliveries_flowing_once_and_the_api_answering_503_at_once() {
    let events = events();
    let run = random_id();
    let proxy = Proxy::start(server_address(POSTGRES)).await;
    let ledger = Ledger::new(&run, vec![None, Some(Ledger::signing_key()), None]);
    let receivers = [
        Receiver::observing(200, ledger.observer(PLAIN)).await,
        Receiver::observing(200, ledger.observer(SIGNED)).await,
        Receiver::observing(500, ledger.observer(FAILING)).await,
    ];
    let hooks = vec![
        hook_document("plain", &receivers[PLAIN].url("/"), json!({})),
        hook_document("signed", &receivers[SIGNED].url("/"), json!({"signing_secret": SIGNING_SECRET})),
        hook_document("failing", &receivers[FAILING].url("/"), json!({})),
    ];
    let cluster = Cluster::start(Setup {
        hooks: vec![hooks],
        database_via: Some(proxy.address()),
        broker_via: None,
        queue_expiry: None,
    })
    .await;
    assert!(proxy.forwarded() >= 3, "every service talks to the database through the proxy");
    let account = cluster.accounts[0].clone();
    let probe_path = format!("/v2/accounts/{account}/webhooks/{}", cluster.hooks[0][PLAIN]);
    let before = cluster.api().send(Method::GET, &probe_path, Some(&cluster.token), None).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);

    let mut publisher = Publisher::start(&run, &cluster.accounts, events, events as f64 / PUBLISH_FOR);
    publisher.reached((events as f64 * CUT_AFTER) as usize).await;
    let router = cluster.process(Role::Router);
    let jobs_before = router.metric(JOBS_PUBLISHED).await;
    proxy.cut();
    let cut_at = Instant::now();
    let mut probes = Vec::new();
    while cut_at.elapsed() + ANSWER_GOAL < OUTAGE {
        let (client, token, path) = (cluster.api().clone(), cluster.token.clone(), probe_path.clone());
        probes.push(tokio::spawn(async move {
            let sent_at = Instant::now();
            let answer = client.send(Method::GET, &path, Some(&token), None).await;
            Probe { sent_at, took: sent_at.elapsed(), answer }
        }));
        // The probes' own pace: one every PROBE_EVERY, through the outage's length.
        tokio::time::sleep(PROBE_EVERY.min(OUTAGE.saturating_sub(cut_at.elapsed()))).await;
    }
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    let jobs_during = router.metric(JOBS_PUBLISHED).await - jobs_before;
    proxy.restore();
    let restored_at = Instant::now();
    let recovered = time_until(Duration::from_secs(60), || async {
        cluster.api().send(Method::GET, &probe_path, Some(&cluster.token), None).await.status == StatusCode::OK
    })
    .await;
    let mut answered = Vec::new();
    for probe in probes {
        answered.push(probe.await.expect("a probe"));
    }

    let published = publisher.finish().await;
    let expected = published.expected(&[PLAIN, SIGNED, FAILING], |_| true);
    ledger.settle(&expected, PATIENCE).await;
    let tally = ledger.tally(&expected);
    // Delivered during the outage: the events confirmed while it lasted (but for its last
    // moments), at the healthy hooks, before the database returned.
    let confirmed_during: Vec<usize> = published
        .confirmed_events()
        .filter(|&sequence| {
            published.confirmed[sequence].is_some_and(|at| at >= cut_at && at + DELIVERY_LAG <= restored_at)
        })
        .collect();
    let late = |position: usize| {
        confirmed_during
            .iter()
            .filter(|&&sequence| ledger.arrival(sequence, position).is_none_or(|arrival| arrival.at >= restored_at))
            .count()
    };
    let (plain_late, signed_late) = (late(PLAIN), late(SIGNED));
    // Each event the router takes becomes one job per hook.
    let jobs_wanted = (confirmed_during.len() * HOOKS) as f64;
    // The callouts that failed during the outage, by event id, and when their records were all
    // in the attempt log.
    let failed_during: HashSet<u64> = (0..published.sent.len())
        .filter_map(|sequence| ledger.arrival(sequence, FAILING))
        .filter(|arrival| arrival.at >= cut_at && arrival.at < restored_at)
        .map(|arrival| arrival.event)
        .collect();
    let attempts_path =
        format!("/v2/accounts/{account}/webhooks/{}/attempts?paginate=false", cluster.hooks[0][FAILING]);
    let logged_since = Instant::now();
    let (attempts_logged, recorded) = loop {
        let listed = cluster.api().send(Method::GET, &attempts_path, Some(&cluster.token), None).await;
        let logged: HashSet<u64> = listed
            .data()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|attempt| attempt["event_id"].as_str())
            .map(event_hash)
            .collect();
        let recorded = failed_during.iter().filter(|event| logged.contains(event)).count();
        if recorded == failed_during.len() {
            break (Some(logged_since.elapsed()), recorded);
        }
        if logged_since.elapsed() > ATTEMPTS_PATIENCE {
            break (None, recorded);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    figure(SCENARIO, published.summary());
    figure(SCENARIO, tally);
    for probe in &answered {
        figure(
            SCENARIO,
            format!(
                "API asked {:.1?} into the outage: {} in {:.2?}, message {}, data {}",
                probe.sent_at.duration_since(cut_at),
                probe.answer.status,
                probe.took,
                probe.answer.body["message"],
                probe.answer.body["data"]
            ),
        );
    }
    figure(SCENARIO, format!("API answering 200 again {recovered:.2?} after the database's return"));
    figure(SCENARIO, format!("the router published {jobs_during} jobs during the outage"));
    figure(
        SCENARIO,
        format!(
            "{} events confirmed during the outage: {plain_late} not delivered to the plain hook before the \
             database returned, {signed_late} not to the signed one",
            confirmed_during.len()
        ),
    );
    figure(
        SCENARIO,
        format!(
            "{} callouts failed during the outage; {recorded} of them in the attempt log after {attempts_logged:.2?}",
            failed_during.len()
        ),
    );
    figure(SCENARIO, cluster.memory_report());

    let mut goals = Goals::new(SCENARIO);
    for probe in answered.iter().filter(|probe| probe.sent_at + ANSWER_GOAL <= restored_at) {
        goals.check(
            probe.took <= ANSWER_GOAL
                && probe.answer.status == StatusCode::SERVICE_UNAVAILABLE
                && is_unreachable_envelope(&probe.answer.body),
            format!(
                "the API answers 503 datastore_unreachable within {ANSWER_GOAL:?} {:.1?} into the outage ({} in {:.2?})",
                probe.sent_at.duration_since(cut_at),
                probe.answer.status,
                probe.took
            ),
        );
    }
    goals.check(
        recovered.is_some_and(|recovered| recovered <= RECOVERY_GOAL),
        format!("the API answers again within {RECOVERY_GOAL:?} of the database's return ({recovered:.2?})"),
    );
    goals.check(
        !confirmed_during.is_empty() && jobs_during >= jobs_wanted,
        format!(
            "the router routes the events confirmed during the outage ({jobs_during} of their {jobs_wanted} jobs \
             published)"
        ),
    );
    goals.check(
        !confirmed_during.is_empty() && plain_late == 0 && signed_late == 0,
        format!(
            "the dispatcher delivers the events confirmed during the outage during it, signed or not ({plain_late} and \
             {signed_late} of {} late)",
            confirmed_during.len()
        ),
    );
    goals.check(tally.lost == 0, format!("no confirmed event lost on any hook ({} lost)", tally.lost));
    goals.check(
        tally.duplicates() == 0,
        format!("no callout repeated because its bookkeeping failed ({} repeated)", tally.duplicates()),
    );
    goals.check(
        tally.signed > 0 && tally.badly_signed == 0,
        format!(
            "every callout to the signed hook is signed ({} of {})",
            tally.signed,
            tally.signed + tally.badly_signed
        ),
    );
    goals.check(
        !failed_during.is_empty() && attempts_logged.is_some(),
        format!(
            "the attempt records of the callouts failed during the outage reach the log ({recorded} of {})",
            failed_during.len()
        ),
    );
    goals.check(tally.unexpected == 0, format!("no callout of an unknown event ({})", tally.unexpected));
    goals.assert_all();
}
