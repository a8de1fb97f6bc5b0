//! Resending one attempt and replaying a hook's failed deliveries: what is published on the jobs
//! exchange, what is refused, and that the stored job never shows in the attempts listing. Over
//! HTTP on 127.0.0.1, SQLite and the in-process bus.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use webhooks_bus::DISPATCH_ROUTING_KEY;
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_model::job::{DeliveryJob, JobBatch};
use webhooks_model::time::{gregorian_now, iso8601_from_unix, unix_seconds};
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_storage::NewAttempt;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::Observer;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::object;

/// The job an earlier attempt made: the hook's old endpoint, a payload naming `event`.
fn attempted(account: &AccountId, hook: &WebhookId, event: &str, attempt: u8) -> DeliveryJob {
    DeliveryJob {
        event_id: event.to_owned(),
        hook_id: hook.clone(),
        account_id: account.clone(),
        hook_event: "CHANNEL_CREATE".into(),
        uri: "http://127.0.0.1:9/old".into(),
        http_verb: HttpVerb::Get,
        format: Format::FormData,
        retries: 0,
        attempt,
        custom_request_headers: Map::new(),
        custom_data: None,
        payload: object(json!({"call_id": event, "attempt": attempt})).into(),
        published_at_ms: 1,
        test: false,
        trace_parent: None,
    }
}

/// A record of `event` made `ago` seconds before now, with `result`, keeping `job` when given.
fn record(
    account: &AccountId,
    hook: &WebhookId,
    ago: i64,
    event: &str,
    result: &str,
    job: Option<DeliveryJob>,
) -> NewAttempt {
    NewAttempt {
        id: random_id(),
        account_id: account.clone(),
        hook_id: hook.clone(),
        created: gregorian_now() - ago,
        doc: object(json!({"event_id": event, "result": result, "hook_id": hook.as_str()})),
        job,
    }
}

/// An app with an account holding one hook, the account's token, and an observer of the jobs
/// exchange.
async fn arrange() -> (TestApp, String, AccountId, WebhookId, Observer) {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let master = app.master_token().await;
    let (account, key) = app.client.create_account(&master, &app.master_id, "owner").await;
    let token = app.client.token(&key).await;
    let document = json!({"name": "n", "uri": "http://127.0.0.1:9/fixed", "hook": "channel_create",
                          "http_verb": "put", "format": "json", "retries": 3,
                          "custom_request_headers": {"X-Fixed": "yes"}});
    let hook = app.client.create_hook(&token, &account, &document).await;
    let jobs = Observer::bind(&app.bus, &app.bus.topology().jobs_exchange(), DISPATCH_ROUTING_KEY).await;
    (app, token, account.parse().expect("an account id"), hook, jobs)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resend_publishes_the_stored_payload_to_the_hook_as_configured_now() {
    let (app, token, account, hook, mut jobs) = arrange().await;
    let kept = record(&account, &hook, 60, "e1", "failure", Some(attempted(&account, &hook, "e1", 2)));
    let old = record(&account, &hook, 50, "e0", "failure", None);
    app.store.insert_attempts(&[kept.clone(), old.clone()]).await.expect("stored");

    let path = |attempt: &str| format!("/v2/accounts/{account}/webhooks/{hook}/attempts/{attempt}/resend");
    let resent = app.client.send(Method::PUT, &path(&kept.id), Some(&token), None).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    assert_eq!(resent.data(), &json!({"resent": 1, "event_id": "e1"}));
    let (_, batch) = jobs.next_json::<JobBatch>().await;
    let [job] = <[DeliveryJob; 1]>::try_from(batch.jobs).expect("one job");
    assert!(job.published_at_ms > 1);
    let headers = object(json!({"X-Fixed": "yes"}));
    assert_eq!(
        job,
        DeliveryJob {
            uri: "http://127.0.0.1:9/fixed".into(),
            http_verb: HttpVerb::Put,
            format: Format::Json,
            retries: 3,
            attempt: 0,
            custom_request_headers: headers,
            published_at_ms: job.published_at_ms,
            test: false,
            trace_parent: None,
            ..attempted(&account, &hook, "e1", 2)
        }
    );

    // A record from before jobs were kept cannot be resent; unknown attempts and attempts of
    // another hook are not found; nothing is published for any of them.
    let refused = app.client.send(Method::PUT, &path(&old.id), Some(&token), None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.body["message"], "not redeliverable");
    assert_eq!(
        app.client.send(Method::PUT, &path(&random_id()), Some(&token), None).await.status,
        StatusCode::NOT_FOUND
    );
    let other = format!("/v2/accounts/{account}/webhooks/{}/attempts/{}/resend", WebhookId::generate(), kept.id);
    assert_eq!(app.client.send(Method::PUT, &other, Some(&token), None).await.status, StatusCode::NOT_FOUND);

    // Another account may not resend; a disabled hook refuses.
    let master = app.master_token().await;
    let (_, sibling_key) = app.client.create_account(&master, &app.master_id, "sibling").await;
    let sibling = app.client.token(&sibling_key).await;
    assert_eq!(app.client.send(Method::PUT, &path(&kept.id), Some(&sibling), None).await.status, StatusCode::FORBIDDEN);
    let hook_path = format!("/v2/accounts/{account}/webhooks/{hook}");
    let disabled =
        app.client.send(Method::PATCH, &hook_path, Some(&token), Some(&json!({"data": {"enabled": false}}))).await;
    assert_eq!(disabled.status, StatusCode::OK);
    let refused = app.client.send(Method::PUT, &path(&kept.id), Some(&token), None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.data()["message"], "the webhook is disabled; enable it first");
    assert!(jobs.quiet_for(Duration::from_millis(300)).await, "refused resends publish nothing");

    // The stored job is private: the listing shows the public fields only.
    let listed = app.client.send(Method::GET, &format!("{hook_path}/attempts"), Some(&token), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.data().as_array().expect("a listing");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|item| item.get("job").is_none() && item["event_id"].is_string()), "{items:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_resends_an_attempt_by_the_id_a_listing_gave_it() {
    let (app, token, account, hook, mut jobs) = arrange().await;
    let older = record(&account, &hook, 60, "e1", "failure", Some(attempted(&account, &hook, "e1", 1)));
    let newer = record(&account, &hook, 30, "e2", "failure", Some(attempted(&account, &hook, "e2", 3)));
    app.store.insert_attempts(&[older.clone(), newer.clone()]).await.expect("stored");

    // Both listings name each record by its id, newest first, and keep the stored job private.
    let account_path = format!("/v2/accounts/{account}/webhooks/attempts");
    let hook_path = format!("/v2/accounts/{account}/webhooks/{hook}/attempts");
    for path in [&account_path, &hook_path] {
        let listed = app.client.send(Method::GET, path, Some(&token), None).await;
        assert_eq!(listed.status, StatusCode::OK, "{path}: {}", listed.body);
        let items = listed.data().as_array().expect("a listing");
        let named: Vec<(&Value, &Value)> = items.iter().map(|item| (&item["id"], &item["event_id"])).collect();
        assert_eq!(named, [(&json!(newer.id), &json!("e2")), (&json!(older.id), &json!("e1"))], "{path}");
        assert!(items.iter().all(|item| item.get("job").is_none()), "{path}: {items:?}");
    }

    // The older record, taken from the listing, is delivered again from its first attempt.
    let listed = app.client.send(Method::GET, &hook_path, Some(&token), None).await;
    let id = listed.data()[1]["id"].as_str().expect("an id").to_owned();
    let resent = app.client.send(Method::PUT, &format!("{hook_path}/{id}/resend"), Some(&token), None).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    assert_eq!(resent.data(), &json!({"resent": 1, "event_id": "e1"}));
    let (_, batch) = jobs.next_json::<JobBatch>().await;
    let [job] = <[DeliveryJob; 1]>::try_from(batch.jobs).expect("one job");
    assert_eq!((job.event_id.as_str(), job.attempt, &job.payload), ("e1", 0, &older.job.expect("a job").payload));
    assert!(jobs.quiet_for(Duration::from_millis(300)).await, "one resend, one job");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_sends_each_event_whose_latest_record_since_then_failed_once() {
    let (app, token, account, hook, mut jobs) = arrange().await;
    let job = |event: &str, attempt| Some(attempted(&account, &hook, event, attempt));
    app.store
        .insert_attempts(&[
            // Before the replay window.
            record(&account, &hook, 4000, "early", "failure", job("early", 0)),
            // Failed twice: the latest record's job is sent.
            record(&account, &hook, 300, "twice", "failure", job("twice", 0)),
            record(&account, &hook, 200, "twice", "failure", job("twice", 1)),
            // Delivered after all.
            record(&account, &hook, 250, "later_ok", "failure", job("later_ok", 0)),
            record(&account, &hook, 240, "later_ok", "success", job("later_ok", 1)),
            // Older record without its job.
            record(&account, &hook, 230, "unkept", "failure", None),
            record(&account, &hook, 100, "once", "failure", job("once", 0)),
        ])
        .await
        .expect("stored");

    let path = format!("/v2/accounts/{account}/webhooks/{hook}/attempts/replay");
    let since = iso8601_from_unix(unix_seconds() - 3600);
    let dry = json!({"data": {"since": since, "dry_run": true}});
    let counted = app.client.send(Method::PUT, &path, Some(&token), Some(&dry)).await;
    assert_eq!((counted.status, counted.data()), (StatusCode::OK, &json!({"would_replay": 2})), "{}", counted.body);
    // Gregorian seconds spelled as a whole float are the same number.
    let float = json!({"data": {"since": (gregorian_now() - 3600) as f64, "dry_run": true}});
    let counted = app.client.send(Method::PUT, &path, Some(&token), Some(&float)).await;
    assert_eq!((counted.status, counted.data()), (StatusCode::OK, &json!({"would_replay": 2})), "{}", counted.body);
    assert!(jobs.quiet_for(Duration::from_millis(300)).await, "a dry run publishes nothing");

    let gregorian = json!({"data": {"since": gregorian_now() - 3600}});
    let replayed = app.client.send(Method::PUT, &path, Some(&token), Some(&gregorian)).await;
    assert_eq!(
        (replayed.status, replayed.data()),
        (StatusCode::ACCEPTED, &json!({"replayed": 2})),
        "{}",
        replayed.body
    );
    let (_, batch) = jobs.next_json::<JobBatch>().await;
    let sent: Vec<(String, Value, u8, String)> = batch
        .jobs
        .into_iter()
        .map(|job| (job.event_id, Value::Object(job.payload.as_ref().clone()), job.attempt, job.uri))
        .collect();
    let fixed = "http://127.0.0.1:9/fixed".to_owned();
    assert_eq!(
        sent,
        [
            ("twice".to_owned(), json!({"call_id": "twice", "attempt": 1}), 0, fixed.clone()),
            ("once".to_owned(), json!({"call_id": "once", "attempt": 0}), 0, fixed),
        ]
    );

    for (body, field) in [
        (json!({"data": {}}), "since"),
        (json!({"data": {"since": "yesterday"}}), "since"),
        (json!({"data": {"since": -1}}), "since"),
        (json!({"data": {"since": 1.5}}), "since"),
        (json!({"data": {"since": 1, "dry_run": "yes"}}), "dry_run"),
    ] {
        let refused = app.client.send(Method::PUT, &path, Some(&token), Some(&body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(refused.data()[field]["type"]["message"].is_string(), "{}", refused.body);
    }
    // Well-formed but impossible: a day February never has, an offset no clock shows.
    for (since, cause) in [
        ("2025-02-31T00:00:00Z", "day was not in range"),
        ("2025-02-01T00:00:00+25:99", "the 'offset hour' component could not be parsed"),
    ] {
        let body = json!({"data": {"since": since}});
        let refused = app.client.send(Method::PUT, &path, Some(&token), Some(&body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{since}");
        assert_eq!(
            refused.data(),
            &json!({"since": {"type": {"message": "since must be gregorian seconds or RFC 3339 text",
                                       "value": since, "cause": cause}}})
        );
    }
    let unknown = format!("/v2/accounts/{account}/webhooks/{}/attempts/replay", WebhookId::generate());
    assert_eq!(app.client.send(Method::PUT, &unknown, Some(&token), Some(&dry)).await.status, StatusCode::NOT_FOUND);
    assert!(jobs.quiet_for(Duration::from_millis(300)).await);
}
