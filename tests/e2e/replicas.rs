//! Replicas in production: two `api`, two `router` and two `dispatcher` processes on one RabbitMQ
//! and one PostgreSQL deliver 10,000 Kazoo events to two hooks each exactly once, while one
//! replica of each service is stopped with SIGTERM halfway through and publishing goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Confirmation, Connection, ConnectionProperties};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use webhooks_model::ids::{AccountId, random_id};
use webhooks_test_support::bench::persistent_json;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::fixtures::{call_event, channel_create_body};
use webhooks_test_support::http::Client;
use webhooks_test_support::receiver::{Captured, Receiver};
use webhooks_test_support::store::create_account;

use crate::process::{Webhooks, rabbitmq, run_to_end};

const MASTER_KEY: &str = "e2e-replicas-master-key-0123456789";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Events published, and hooks each one fires.
const EVENTS: usize = 10_000;
const HOOKS: usize = 2;
/// One replica of each service is stopped once this many events are confirmed.
const STOP_AFTER: usize = EVENTS / 2;
/// Events published per confirm wait, and the least time between windows: about as fast as the
/// broker confirms, which outpaces the services, so the replicas are stopped with their windows
/// full (a router's prefetch, a dispatcher's batches) and a backlog queued behind.
const WINDOW: usize = 1_000;
const PACE: Duration = Duration::from_millis(10);
/// How long every delivery may take to arrive, and how long to keep listening for late
/// duplicates afterwards.
const PATIENCE: Duration = Duration::from_secs(120);
const STRAGGLERS: Duration = Duration::from_secs(2);
/// How long a hook created through the API may take to reach both routers.
const INDEX_PATIENCE: Duration = Duration::from_secs(10);

/// The Call-ID of event `sequence`; payloads carry it back as `call_id`.
fn call_id(sequence: usize) -> String {
    format!("replicas-{sequence}@203.0.113.10")
}

/// Publishes the events of `account` to Kazoo's `callevt` exchange, paced, with publisher
/// confirms; `confirmed` follows how many the broker has taken.
async fn publish(account: AccountId, confirmed: watch::Sender<usize>) {
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default()).await.expect("RabbitMQ answers");
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let template = channel_create_body();
    let mut pace = tokio::time::interval(PACE);
    for start in (0..EVENTS).step_by(WINDOW) {
        pace.tick().await;
        let end = (start + WINDOW).min(EVENTS);
        let mut confirms = Vec::with_capacity(WINDOW);
        for sequence in start..end {
            let (routing_key, bytes) = call_event(&template, &account, &call_id(sequence));
            // Mandatory: an event no router queue is bound for comes back instead of vanishing.
            let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            let confirm = channel
                .basic_publish("callevt".into(), routing_key.as_str().into(), options, &bytes, persistent_json())
                .await
                .expect("published");
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = confirm.await.expect("a confirmation");
            assert!(matches!(confirmation, Confirmation::Ack(None)), "event not queued: {confirmation:?}");
        }
        confirmed.send_replace(end);
    }
    connection.close(200, "done".into()).await.expect("closed");
}

/// Waits until every router has `hooks` hooks in its index: each learns of them from the change
/// notices on its own queue.
async fn wait_for_index(routers: &[Webhooks], hooks: usize) {
    let deadline = tokio::time::Instant::now() + INDEX_PATIENCE;
    for router in routers {
        router.wait_for_index(hooks, deadline).await;
    }
}

/// `(call_id, X-Hook-ID)` of a callout.
fn delivery_key(request: &Captured) -> (String, String) {
    let payload: Value = serde_json::from_slice(&request.body).expect("a JSON payload");
    let call_id = payload["call_id"].as_str().expect("a call_id").to_owned();
    (call_id, request.header("x-hook-id").expect("an X-Hook-ID").to_owned())
}

/// How many times each `(call_id, X-Hook-ID)` arrived.
fn tally(requests: &[Captured]) -> HashMap<(String, String), usize> {
    let mut seen = HashMap::new();
    for request in requests {
        *seen.entry(delivery_key(request)).or_default() += 1;
    }
    seen
}

/// The sample `series` of each replica.
async fn per_replica(processes: &[Webhooks], series: &str) -> Vec<f64> {
    let mut values = Vec::new();
    for process in processes {
        values.push(process.metric(series).await);
    }
    values
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_of_each_service_deliver_every_event_exactly_once_while_one_of_each_stops() {
    let database = TestDatabase::postgres().await;
    let mut env = vec![
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        // Six processes share the test server with the other tests: small pools.
        ("WEBHOOKS_DATABASE_POOL_SIZE", "3".to_owned()),
    ];
    env.extend(rabbitmq(&format!("e2e-replicas-{}", random_id())));
    assert!(run_to_end(&["migrate"], &env).await.success());
    let account = AccountId::generate();
    create_account(&database.store().await, &account, None, json!({})).await;

    // All six start at once, as a deployment rolls them out (their migrations serialize).
    let (router_a, router_b, dispatcher_a, dispatcher_b, api_a, api_b) = tokio::join!(
        Webhooks::start(&["router"], &env),
        Webhooks::start(&["router"], &env),
        Webhooks::start(&["dispatcher"], &env),
        Webhooks::start(&["dispatcher"], &env),
        Webhooks::start(&["api"], &env),
        Webhooks::start(&["api"], &env),
    );
    let (mut routers, mut dispatchers, mut apis) =
        (vec![router_a, router_b], vec![dispatcher_a, dispatcher_b], vec![api_a, api_b]);
    for process in routers.iter().chain(&dispatchers).chain(&apis) {
        process.wait_ready().await;
    }

    // The token comes from one API replica and creates the hooks through the other: replicas
    // share the token secret.
    let token = apis[0].client.token(MASTER_KEY).await;
    let receiver = Receiver::answering(200).await;
    let mut hook_ids = Vec::new();
    for hook in 0..HOOKS {
        let uri = receiver.url(&format!("/hook{hook}"));
        let document = json!({"name": format!("replica hook {hook}"), "uri": uri, "hook": "channel_create",
            "http_verb": "post", "format": "json", "retries": 2});
        hook_ids.push(apis[1].client.create_hook(&token, account.as_str(), &document).await.to_string());
    }
    wait_for_index(&routers, HOOKS).await;

    let started = Instant::now();
    let (confirmed, mut progress) = watch::channel(0);
    let publisher = tokio::spawn(publish(account.clone(), confirmed));
    progress.wait_for(|&count| count >= STOP_AFTER).await.expect("the publisher runs");
    let (published_at_stop, received_at_stop) = (*progress.borrow(), receiver.count());

    // Both replicas of each service have been taking work (the broker spreads it among
    // consumers), so stopping one really takes work from it. Routers also count the events other
    // tests publish on Kazoo's shared `callevt` exchange.
    let routed = per_replica(&routers, "webhooks_router_events_total").await;
    let delivered =
        per_replica(&dispatchers, r#"webhooks_dispatcher_deliveries_total{outcome="success",status="200"}"#).await;
    eprintln!(
        "stopping one replica of each at {:.1?}: {published_at_stop} events confirmed, {received_at_stop} callouts \
         received ({} behind); events taken per router {routed:?}, callouts per dispatcher {delivered:?}",
        started.elapsed(),
        (published_at_stop * HOOKS).saturating_sub(received_at_stop),
    );
    assert!(routed.iter().all(|&count| count > 0.0), "both routers route: {routed:?}");
    assert!(delivered.iter().all(|&count| count > 0.0), "both dispatchers deliver: {delivered:?}");
    assert!(published_at_stop < EVENTS, "publishing still goes on when the replicas are stopped");

    // The API replica that issued the token goes; the token still works on the other one.
    let (router, dispatcher, api) = (routers.remove(0), dispatchers.remove(0), apis.remove(0));
    let stopping = Instant::now();
    let (router_status, dispatcher_status, api_status) = tokio::join!(router.stop(), dispatcher.stop(), api.stop());
    eprintln!("stopped in {:.1?}", stopping.elapsed());
    assert!(router_status.success(), "the router exits 0 on SIGTERM: {router_status}");
    assert!(dispatcher_status.success(), "the dispatcher exits 0 on SIGTERM: {dispatcher_status}");
    assert!(api_status.success(), "the API exits 0 on SIGTERM: {api_status}");
    // A fresh client: a pooled connection left idle past the server's keep-alive (5 s) may be
    // closed just as it is reused.
    let survivor = Client::new(apis[0].client.base_url());
    let listed = survivor.send(Method::GET, &format!("/v2/accounts/{account}/webhooks"), Some(&token), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);

    publisher.await.expect("every event published and confirmed");
    let published = started.elapsed();
    let expected_keys: Vec<(String, String)> = (0..EVENTS)
        .flat_map(|sequence| hook_ids.iter().map(move |hook_id| (call_id(sequence), hook_id.clone())))
        .collect();
    // Counting alone would stop early if duplicates made up for missing callouts: once enough
    // have arrived, every expected one is looked for.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let all_expected = |seen: HashMap<(String, String), usize>| expected_keys.iter().all(|key| seen.contains_key(key));
    while tokio::time::Instant::now() < deadline
        && (receiver.count() < expected_keys.len() || !all_expected(tally(&receiver.requests())))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_arrived = started.elapsed();
    // A duplicate may come after the last original: keep listening a little.
    tokio::time::sleep(STRAGGLERS).await;

    let requests = receiver.requests();
    let seen = tally(&requests);
    let missing: Vec<_> = expected_keys.iter().filter(|key| !seen.contains_key(*key)).collect();
    let mut duplicated: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
    duplicated.sort();
    let unexpected = seen.len() + missing.len() - expected_keys.len();
    eprintln!(
        "published in {published:.1?}, {} callouts received in {all_arrived:.1?}: {} distinct, {} missing, {} \
         duplicated ({} extra callouts), {unexpected} unexpected",
        requests.len(),
        seen.len(),
        missing.len(),
        duplicated.len(),
        requests.len() - seen.len(),
    );
    assert!(missing.is_empty(), "{} deliveries lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert_eq!(unexpected, 0, "callouts nobody expected");
    // At-least-once allows a duplicate only when a process dies between a broker confirm and an
    // acknowledgement; a graceful SIGTERM must finish or return everything it holds.
    assert!(
        duplicated.is_empty(),
        "{} deliveries arrived more than once although every replica stopped gracefully (SIGTERM), e.g. {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(5)]
    );

    // Named, so a replica that does not stop (`stop` panics after 30 s) is known.
    let survivors = [("router", routers), ("dispatcher", dispatchers), ("api", apis)];
    for (service, process) in
        survivors.into_iter().flat_map(|(service, list)| list.into_iter().map(move |process| (service, process)))
    {
        eprintln!("stopping the remaining {service}");
        assert!(process.stop().await.success(), "SIGTERM stops the remaining {service} cleanly");
    }
}
