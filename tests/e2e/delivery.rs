//! Events in, callouts out, through the real binary: Kazoo-format events published by a plain
//! AMQP client reach a local receiver as exactly the requests their example messages expect,
//! through separate `api`, `router` and `dispatcher` processes on RabbitMQ and PostgreSQL; and the
//! same flow through `webhooks serve` on SQLite, with the events handed to `POST /v2/events`.

use std::collections::BTreeMap;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::{AccountId, random_id};
use webhooks_storage::{Account, Store};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::fixtures::amqp_event_fixtures;
use webhooks_test_support::http::Client;
use webhooks_test_support::receiver::{Captured, Receiver};
use webhooks_test_support::store::create_account;

use crate::process::{Webhooks, rabbitmq, run_to_end};

const MASTER_KEY: &str = "e2e-delivery-master-key-0123456789";
/// How long a change made through the API may take to reach the routers.
const CHANGE_DELAY: Duration = Duration::from_millis(1500);
const PATIENCE: Duration = Duration::from_secs(20);

/// One fixture as this test uses it: the event, and the hook it must reach.
struct Case {
    name: String,
    fixture: Value,
    /// Where the fixture's hook points on the receiver.
    path: String,
}

/// The fixtures' accounts, written to the store with the fixtures' ids (the payloads carry them),
/// each under the ones before it in its tree; the context's reseller is flagged as Kazoo does.
async fn create_fixture_accounts(store: &Store) {
    let mut created: BTreeMap<String, Account> = BTreeMap::new();
    for (_, fixture) in amqp_event_fixtures() {
        let context = &fixture["context"];
        let mut lineage: Vec<&str> =
            context["account_tree"].as_array().expect("a tree").iter().filter_map(Value::as_str).collect();
        lineage.push(context["account_id"].as_str().expect("an account"));
        let mut parent: Option<Account> = None;
        for id in lineage {
            if !created.contains_key(id) {
                let doc = if context["reseller_id"] == id { json!({"is_reseller": true}) } else { json!({}) };
                let account_id: AccountId = id.parse().expect("an account id");
                let account = create_account(store, &account_id, parent.as_ref(), doc).await;
                created.insert(id.to_owned(), account);
            }
            parent = created.get(id).cloned();
        }
    }
}

/// Creates, through the API, one hook per distinct fixture hook (several fixtures share one),
/// pointing at `receiver`; the cases with the id of the hook each must reach.
async fn create_fixture_hooks(
    client: &Client,
    token: &str,
    receiver: &Receiver,
) -> (Vec<Case>, BTreeMap<String, String>) {
    let mut hooks: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut cases = Vec::new();
    for (name, fixture) in amqp_event_fixtures() {
        let mut document = fixture["hook"].as_object().cloned().expect("a hook document");
        document.retain(|key, _| key != "id" && key != "uri" && !key.starts_with("pvt_"));
        let owner = fixture["hook"]["pvt_account_id"].as_str().expect("an owner").to_owned();
        let key = format!("{owner}/{}", Value::Object(document.clone()));
        if !hooks.contains_key(&key) {
            let (path, _) = split_url(fixture["expected_http_request"]["url"].as_str().expect("a url"));
            let path = format!("/hook{}{path}", hooks.len());
            document.insert("uri".into(), json!(receiver.url(&path)));
            let id = client.create_hook(token, &owner, &Value::Object(document)).await;
            hooks.insert(key.clone(), (id.to_string(), path));
        }
        let (_, path) = &hooks[&key];
        cases.push(Case { name, fixture, path: path.clone() });
    }
    let ids = hooks.into_values().map(|(id, path)| (path, id)).collect();
    (cases, ids)
}

/// `(path, query)` of an absolute URL.
fn split_url(url: &str) -> (String, Option<String>) {
    let without_origin = url.splitn(4, '/').nth(3).map(|rest| format!("/{rest}")).unwrap_or_else(|| "/".to_owned());
    match without_origin.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (without_origin, None),
    }
}

/// Each case arrived once, at its hook, exactly as the fixture expects it.
fn assert_delivered(cases: &[Case], hook_ids: &BTreeMap<String, String>, received: &[Captured]) {
    assert_eq!(received.len(), cases.len(), "one callout per fixture, no more");
    for case in cases {
        let (name, expected) = (&case.name, &case.fixture["expected_http_request"]);
        let (_, query) = split_url(expected["url"].as_str().expect("a url"));
        let matches = |request: &&Captured| {
            request.path() == case.path
                && match expected["method"].as_str() {
                    Some("GET") => request.target.split_once('?').map(|(_, query)| query.to_owned()) == query,
                    _ => match expected["body"].as_str() {
                        Some(form) => request.body == form.as_bytes(),
                        None => {
                            serde_json::from_slice::<Value>(&request.body).ok().as_ref()
                                == Some(&case.fixture["expected_http_payload"])
                        }
                    },
                }
        };
        let request = received.iter().find(matches).unwrap_or_else(|| panic!("{name}: no callout as expected"));
        assert_eq!(request.method, expected["method"], "{name}");
        assert_eq!(request.header("x-hook-id"), Some(hook_ids[&case.path].as_str()), "{name}");
        assert_eq!(request.header("x-account-id"), expected["headers"]["X-Account-ID"].as_str(), "{name}");
        assert_eq!(request.header("content-type"), expected["headers"]["Content-Type"].as_str(), "{name}");
        assert!(request.header("x-event-id").is_some(), "{name}: an event id");
    }
}

fn cluster_id() -> String {
    let fixtures = amqp_event_fixtures();
    fixtures[0].1["context"]["cluster_id"].as_str().expect("a cluster id").to_owned()
}

/// Publishes every fixture to Kazoo's exchange with its routing key, as Kazoo does.
async fn publish_over_amqp(cases: &[Case]) {
    let connection = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers");
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    for case in cases {
        let body = serde_json::to_vec(&case.fixture["body"]).expect("a body");
        channel
            .basic_publish(
                case.fixture["exchange"].as_str().expect("an exchange").into(),
                case.fixture["routing_key"].as_str().expect("a routing key").into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_content_type("application/json".into()),
            )
            .await
            .expect("published");
    }
    channel.wait_for_confirms().await.expect("confirmed");
    connection.close(200, "done".into()).await.expect("closed");
}

async fn publish_over_http(client: &Client, token: &str, cases: &[Case]) {
    let events: Vec<Value> = cases.iter().map(|case| case.fixture["body"].clone()).collect();
    let answer = client.send(Method::POST, "/v2/events", Some(token), Some(&Value::Array(events))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.data()["accepted"], cases.len());
}

/// Waits until `router` has every hook of `hook_ids` but `disabled` of them in its index, within
/// [`CHANGE_DELAY`].
async fn wait_for_index(router: &Webhooks, hook_ids: &BTreeMap<String, String>, disabled: usize) {
    router.wait_for_index(hook_ids.len() - disabled, tokio::time::Instant::now() + CHANGE_DELAY).await;
}

/// Disables the hook of the first case through the API; once `router` has applied the change,
/// its events no longer arrive while the others still do.
async fn disable_first_hook(
    client: &Client,
    token: &str,
    cases: &[Case],
    hook_ids: &BTreeMap<String, String>,
    router: &Webhooks,
) -> usize {
    let first = &cases[0];
    let owner = first.fixture["hook"]["pvt_account_id"].as_str().expect("an owner");
    let path = format!("/v2/accounts/{owner}/webhooks/{}", hook_ids[&first.path]);
    let disabled = client.send(Method::PATCH, &path, Some(token), Some(&json!({"data": {"enabled": false}}))).await;
    assert_eq!(disabled.status, StatusCode::OK);
    wait_for_index(router, hook_ids, 1).await;
    cases.iter().filter(|case| case.path != first.path).count()
}

/// The value of the unlabelled metric `name` in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn separate_processes_over_rabbitmq_and_postgres_deliver_every_fixture_exactly() {
    let database = TestDatabase::postgres().await;
    let mut env = vec![
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("WEBHOOKS_CLUSTER_ID", cluster_id()),
    ];
    env.extend(rabbitmq(&format!("e2e-delivery-{}", random_id())));
    assert!(run_to_end(&["migrate"], &env).await.success());
    create_fixture_accounts(&database.store().await).await;

    let router = Webhooks::start(&["router"], &env).await;
    let dispatcher = Webhooks::start(&["dispatcher"], &env).await;
    let api = Webhooks::start(&["api"], &env).await;
    router.wait_ready().await;
    let token = api.client.token(MASTER_KEY).await;
    let receiver = Receiver::answering(200).await;
    let (cases, hook_ids) = create_fixture_hooks(&api.client, &token, &receiver).await;
    wait_for_index(&router, &hook_ids, 0).await;

    publish_over_amqp(&cases).await;
    assert_delivered(&cases, &hook_ids, &receiver.wait_for(cases.len(), PATIENCE).await);

    let still_delivered = disable_first_hook(&api.client, &token, &cases, &hook_ids, &router).await;
    publish_over_amqp(&cases).await;
    let total = cases.len() + still_delivered;
    let received = receiver.wait_for(total, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), total, "the disabled hook got nothing");
    assert!(received[cases.len()..].iter().all(|request| request.path() != cases[0].path));

    // Every service exports metrics Prometheus accepts, counting what was just done.
    let routed = metric(&router.checked_metrics().await, "webhooks_router_jobs_published_total");
    assert_eq!(routed, total as f64, "one job per delivered callout");
    let api_metrics = api.checked_metrics().await;
    assert!(api_metrics.contains(
        r#"webhooks_api_requests_total{method="PUT",route="/v2/accounts/{account_id}/webhooks",status="201"}"#
    ));
    let dispatcher_metrics = dispatcher.checked_metrics().await;
    assert_eq!(metric(&dispatcher_metrics, "webhooks_bus_connected"), 1.0);
    let delivered = format!(r#"webhooks_dispatcher_deliveries_total{{outcome="success",status="200"}} {total}"#);
    assert!(dispatcher_metrics.contains(&delivered), "{delivered} missing from:\n{dispatcher_metrics}");
    assert_eq!(metric(&dispatcher_metrics, "webhooks_dispatcher_delivery_latency_seconds_count"), total as f64);
    let callouts = r#"webhooks_dispatcher_callout_duration_seconds_count{outcome="success"}"#;
    assert_eq!(metric(&dispatcher_metrics, callouts), total as f64, "one duration a callout");
    // Every crate takes the workspace's version.
    let build = format!(r#"webhooks_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"));
    assert_eq!(metric(&dispatcher_metrics, &build), 1.0);
    assert!(metric(&dispatcher_metrics, "process_resident_memory_bytes") > 0.0);

    for process in [api, dispatcher, router] {
        assert!(process.stop().await.success(), "SIGTERM stops each service cleanly");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_sqlite_delivers_every_fixture_handed_over_http() {
    let database = TestDatabase::sqlite().await;
    let env = [
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("WEBHOOKS_CLUSTER_ID", cluster_id()),
    ];
    assert!(run_to_end(&["migrate"], &env).await.success());
    create_fixture_accounts(&database.store().await).await;
    let serve = Webhooks::start(&["serve"], &env).await;
    serve.wait_ready().await;
    let token = serve.client.token(MASTER_KEY).await;
    let receiver = Receiver::answering(200).await;
    let (cases, hook_ids) = create_fixture_hooks(&serve.client, &token, &receiver).await;
    wait_for_index(&serve, &hook_ids, 0).await;

    publish_over_http(&serve.client, &token, &cases).await;
    assert_delivered(&cases, &hook_ids, &receiver.wait_for(cases.len(), PATIENCE).await);

    let still_delivered = disable_first_hook(&serve.client, &token, &cases, &hook_ids, &serve).await;
    publish_over_http(&serve.client, &token, &cases).await;
    let total = cases.len() + still_delivered;
    receiver.wait_for(total, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), total, "the disabled hook got nothing");
    assert!(serve.stop().await.success());
}
