//! `PUT .../webhooks/{id}/test` through `webhooks serve`: the API hands the callout to the real
//! dispatcher and answers with the attempt it recorded, and a test leaves the hook as it was.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::WebhookId;
use webhooks_model::time::unix_millis;
use webhooks_storage::Store;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::receiver::{Receiver, Reply};

use crate::process::{Webhooks, run_to_end};

const MASTER_KEY: &str = "e2e-test-callout-master-key-0123456789";
const CLUSTER_ID: &str = "e2e-test-cluster";

/// Failures counted for `hook` within the last hour.
async fn failures(store: &Store, hook: &WebhookId) -> u64 {
    store.failure_count(hook, unix_millis(), Duration::from_secs(3600)).await.expect("counted")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_reaches_the_endpoint_once_and_answers_with_the_recorded_attempt() {
    let database = TestDatabase::sqlite().await;
    let env = [
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("WEBHOOKS_CLUSTER_ID", CLUSTER_ID.to_owned()),
        ("WEBHOOKS_API__TEST_WAIT_SECONDS", "3".to_owned()),
        // One failure would disable a hook, if tests counted.
        ("WEBHOOKS_DISPATCHER__FAILURE_THRESHOLD", "1".to_owned()),
    ];
    assert!(run_to_end(&["migrate"], &env).await.success());
    let serve = Webhooks::start(&["serve"], &env).await;
    serve.wait_ready().await;
    let receiver = Receiver::start(|request, _| match request.path() {
        "/ok" => Reply::Answer(200, vec![("content-type".into(), "text/plain".into())], "received".into()),
        "/broken" => Reply::status(500),
        _ => Reply::Hang,
    })
    .await;
    let client = &serve.client;
    let auth = client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": MASTER_KEY}}))).await;
    let master = auth.body["auth_token"].as_str().expect("a token").to_owned();
    let master_id = auth.data()["account_id"].as_str().expect("the master's id").to_owned();
    let (account, key) = client.create_account(&master, &master_id, "tested").await;
    let token = client.token(&key).await;

    // A working endpoint: one request with the sample, and the success record in the answer.
    let ok = client
        .create_hook(
            &token,
            &account,
            &json!({"name": "ok", "uri": receiver.url("/ok"), "hook": "channel_create", "format": "json",
               "custom_data": {"environment": "e2e"}, "retries": 3}),
        )
        .await;
    let answer =
        client.send(Method::PUT, &format!("/v2/accounts/{account}/webhooks/{ok}/test"), Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let [request] = <[_; 1]>::try_from(receiver.wait_for(1, Duration::from_secs(5)).await).expect("one request");
    let record = answer.data();
    assert_eq!(
        (&record["result"], &record["resp_status_code"], &record["resp_body"], &record["hook_event"], &record["test"]),
        (&json!("success"), &json!("200"), &json!("received"), &json!("CHANNEL_CREATE"), &json!(true))
    );
    assert_eq!(record["retries_left"], 0);
    assert_eq!(request.header("x-event-id"), record["event_id"].as_str());
    assert_eq!(request.header("x-hook-id"), Some(ok.as_str()));
    let mut expected =
        client.send(Method::GET, "/v2/webhooks/samples/webhooks_channel_create", None, None).await.data()[0].clone();
    let fields = expected.as_object_mut().expect("an object");
    fields.insert("environment".into(), json!("e2e"));
    fields.insert("cluster_id".into(), json!(CLUSTER_ID));
    let sent: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(sent, expected);

    // A failing endpoint of a disabled hook: tested all the same, once, not retried, not counted.
    let broken = client
        .create_hook(
            &token,
            &account,
            &json!({"name": "broken", "uri": receiver.url("/broken"), "hook": "object", "enabled": false, "retries": 2,
               "custom_data": {"type": "user", "action": "all"}}),
        )
        .await;
    let hook_path = format!("/v2/accounts/{account}/webhooks/{broken}");
    let answer = client.send(Method::PUT, &format!("{hook_path}/test"), Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        (&answer.data()["result"], &answer.data()["resp_status_code"], &answer.data()["hook_event"]),
        (&json!("failure"), &json!("500"), &json!("object"))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.requests().iter().filter(|request| request.path() == "/broken").count(), 1);
    let store = database.store().await;
    assert_eq!(failures(&store, &broken).await, 0);
    let shown = client.send(Method::GET, &hook_path, Some(&token), None).await;
    assert_eq!((&shown.data()["enabled"], shown.data().get("disable_reason")), (&json!(false), None));
    let listed = client.send(Method::GET, &format!("{hook_path}/attempts"), Some(&token), None).await;
    let listed = listed.data().as_array().expect("a listing").clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], *answer.data());

    // An endpoint slower than the wait: 202 with the event id.
    let slow = client
        .create_hook(&token, &account, &json!({"name": "slow", "uri": receiver.url("/slow"), "hook": "all"}))
        .await;
    let answer =
        client.send(Method::PUT, &format!("/v2/accounts/{account}/webhooks/{slow}/test"), Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let slow_request = receiver.wait_for(3, Duration::from_secs(5)).await.pop().expect("the slow request");
    assert_eq!(answer.data(), &json!({"event_id": slow_request.header("x-event-id"), "status": "pending"}));
    // The hung request ends with the receiver, so the dispatcher stops at once.
    drop(receiver);
    assert!(serve.stop().await.success());
}
