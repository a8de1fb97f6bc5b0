//! `PUT .../webhooks/{id}/test`: the job published for the dispatchers, the answer once the
//! attempt is recorded (the test plays the dispatcher's part), the answer when it is not, and
//! the refusals. Over HTTP on 127.0.0.1, SQLite and the in-process bus.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_bus::DISPATCH_ROUTING_KEY;
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_model::job::{DeliveryJob, JobBatch};
use webhooks_model::time::gregorian_from_unix;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_storage::NewAttempt;
use webhooks_test_support::app::{TEST_CLUSTER_ID, TestApp};
use webhooks_test_support::bus::Observer;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::object;

/// An app, an account with its token, and an observer of the jobs exchange.
async fn arrange() -> (TestApp, String, AccountId, Observer) {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let master = app.master_token().await;
    let (account, key) = app.client.create_account(&master, &app.master_id, "owner").await;
    let token = app.client.token(&key).await;
    let jobs = Observer::bind(&app.bus, &app.bus.topology().jobs_exchange(), DISPATCH_ROUTING_KEY).await;
    (app, token, account.parse().expect("an account id"), jobs)
}

/// The first object sample as a hook with `custom_data` `{"environment": "staging"}` receives it.
async fn expected_object_payload(app: &TestApp) -> Value {
    let samples = app.client.send(Method::GET, "/v2/webhooks/samples/webhooks_object", None, None).await;
    let mut payload = samples.data()[0].clone();
    let fields = payload.as_object_mut().expect("an object");
    fields.insert("environment".into(), json!("staging"));
    fields.insert("cluster_id".into(), json!(TEST_CLUSTER_ID));
    payload
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_sends_the_sample_once_whatever_the_state_and_answers_with_the_record() {
    let (app, token, account, mut jobs) = arrange().await;
    let document = json!({"name": "orders", "uri": "http://127.0.0.1:9/orders", "hook": "object",
                          "http_verb": "put", "format": "json", "retries": 3, "enabled": false,
                          "custom_request_headers": {"X-Tenant": "t1"},
                          "custom_data": {"type": "device", "action": "doc_deleted", "environment": "staging"}});
    let hook = app.client.create_hook(&token, account.as_str(), &document).await;
    let path = format!("/v2/accounts/{account}/webhooks/{hook}/test");

    // The dispatcher's part: take the job and record its attempt, on a clock an hour behind (the
    // record is found by its event id, whatever its time), after a newer record of another event.
    let dispatcher = async {
        let (_, batch) = jobs.next_json::<JobBatch>().await;
        let [job] = <[DeliveryJob; 1]>::try_from(batch.jobs).expect("one job");
        let published = gregorian_from_unix(i64::try_from(job.published_at_ms / 1000).expect("fits"));
        let record = |event_id: &str, created: i64| NewAttempt {
            id: random_id(),
            account_id: account.clone(),
            hook_id: hook.clone(),
            created,
            doc: object(json!({"hook_id": hook.as_str(), "event_id": event_id, "result": "success",
                               "resp_status_code": "204", "test": true})),
            job: None,
        };
        let records = [record(&random_id(), published), record(&job.event_id, published - 3600)];
        app.store.insert_attempts(&records).await.expect("recorded");
        let [_, tested] = records;
        (job, tested.id)
    };
    let (answer, (job, record_id)) = tokio::join!(app.client.send(Method::PUT, &path, Some(&token), None), dispatcher);

    // A disabled hook is tested too; the custom_data filters (a device deletion) do not stop it.
    let expected_job = DeliveryJob {
        event_id: job.event_id.clone(),
        hook_id: hook.clone(),
        account_id: account.clone(),
        hook_event: "object".into(),
        uri: "http://127.0.0.1:9/orders".into(),
        http_verb: HttpVerb::Put,
        format: Format::Json,
        retries: 0,
        attempt: 0,
        custom_request_headers: object(json!({"X-Tenant": "t1"})),
        custom_data: Some(object(json!({"type": "device", "action": "doc_deleted", "environment": "staging"}))),
        payload: object(expected_object_payload(&app).await).into(),
        published_at_ms: job.published_at_ms,
        test: true,
        trace_parent: None,
    };
    assert_eq!(job, expected_job);
    assert_eq!(job.event_id.len(), 32);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let data = answer.data();
    assert_eq!(
        (&data["event_id"], &data["result"], &data["resp_status_code"], &data["test"]),
        (&json!(job.event_id), &json!("success"), &json!("204"), &json!(true))
    );
    // The record's id, as the listings show it, so that a client can resend it.
    assert_eq!(data["id"], json!(record_id));
    assert!(data["timestamp"].is_i64());
    assert!(jobs.quiet_for(Duration::from_millis(300)).await, "one test, one job");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_not_recorded_in_time_answers_202_with_its_event_id() {
    let (app, token, account, mut jobs) = arrange().await;
    let document = json!({"name": "calls", "uri": "http://127.0.0.1:9/calls", "hook": "all", "http_verb": "get"});
    let hook = app.client.create_hook(&token, account.as_str(), &document).await;
    let started = SystemTime::now();
    let answer =
        app.client.send(Method::PUT, &format!("/v2/accounts/{account}/webhooks/{hook}/test"), Some(&token), None).await;
    assert!(started.elapsed().expect("time moves on") >= Duration::from_secs(2), "the configured wait is kept");
    let (_, batch) = jobs.next_json::<JobBatch>().await;
    let [job] = <[DeliveryJob; 1]>::try_from(batch.jobs).expect("one job");
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.data(), &json!({"event_id": job.event_id, "status": "pending"}));
    // `all` hooks are tested with a call's creation.
    assert_eq!((job.hook_event.as_str(), job.http_verb, job.test), ("CHANNEL_CREATE", HttpVerb::Get, true));
    assert_eq!(job.payload["cluster_id"], TEST_CLUSTER_ID);
}

#[tokio::test(flavor = "multi_thread")]
async fn tests_that_cannot_be_sent_are_refused_and_publish_nothing() {
    let (app, token, account, mut jobs) = arrange().await;
    let sms = app
        .client
        .create_hook(
            &token,
            account.as_str(),
            &json!({"name": "texts", "uri": "http://127.0.0.1:9/texts", "hook": "sms"}),
        )
        .await;
    let path = |hook: &str| format!("/v2/accounts/{account}/webhooks/{hook}/test");

    let refused = app.client.send(Method::PUT, &path(sms.as_str()), Some(&token), None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.body["message"], "no test payload");
    assert_eq!(refused.data()["message"], "hooks of type sms have no sample payload to send");

    let unknown = app.client.send(Method::PUT, &path(WebhookId::generate().as_str()), Some(&token), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let malformed = app.client.send(Method::PUT, &path("not-an-id"), Some(&token), None).await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);
    assert_eq!(app.client.send(Method::PUT, &path(sms.as_str()), None, None).await.status, StatusCode::UNAUTHORIZED);
    let master = app.master_token().await;
    let (_, sibling_key) = app.client.create_account(&master, &app.master_id, "sibling").await;
    let sibling = app.client.token(&sibling_key).await;
    assert_eq!(
        app.client.send(Method::PUT, &path(sms.as_str()), Some(&sibling), None).await.status,
        StatusCode::FORBIDDEN
    );
    let wrong_method = app.client.send(Method::POST, &path(sms.as_str()), Some(&token), None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.header("allow"), Some("PUT"));
    assert!(jobs.quiet_for(Duration::from_millis(300)).await, "refused tests publish nothing");
}
