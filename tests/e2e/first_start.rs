//! The README's first example, from a fresh database: `webhooks serve` creates the master account
//! and prints its key; a hook created on the master with that key gets the next event handed to
//! `POST /v2/events` at once, not after the router's next periodic reload.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::receiver::Receiver;

use crate::process::Webhooks;

#[tokio::test(flavor = "multi_thread")]
async fn the_master_created_at_the_first_start_is_routed_at_once() {
    let database = TestDatabase::sqlite().await;
    let env =
        [("WEBHOOKS_DATABASE_URL", database.url().to_owned()), ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned())];
    let serve = Webhooks::start(&["serve"], &env).await;
    serve.wait_ready().await;
    let line =
        serve.stdout_lines.iter().find(|line| line.contains("API key")).expect("the key is printed at first start");
    let key = line.rsplit(' ').next().expect("the key ends the line");
    let login = serve.client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": key}}))).await;
    assert_eq!(login.status, StatusCode::CREATED, "{}", login.body);
    let token = login.body["auth_token"].as_str().expect("a token").to_owned();
    let master = login.data()["account_id"].as_str().expect("the master's id").to_owned();

    let receiver = Receiver::answering(200).await;
    let hook = json!({"data": {"name": "New calls", "uri": receiver.url("/new"), "hook": "channel_create"}});
    let created =
        serve.client.send(Method::PUT, &format!("/v2/accounts/{master}/webhooks"), Some(&token), Some(&hook)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    // The hook's own change notice reaches the in-process router within milliseconds.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let event = json!({
        "Event-Category": "call_event",
        "Event-Name": "CHANNEL_CREATE",
        "Call-ID": "first-start-c1",
        "Custom-Channel-Vars": {"Account-ID": master},
    });
    let accepted = serve.client.send(Method::POST, "/v2/events", Some(&token), Some(&event)).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received[0].path(), "/new");
    assert!(serve.stop().await.success());
}

/// With migrations left to `webhooks migrate` (runtime credentials without DDL rights), a service
/// on a database that lacks them refuses to start and says what to run; once migrated, it starts.
#[tokio::test(flavor = "multi_thread")]
async fn with_migrations_left_to_the_migrate_job_a_service_waits_for_them() {
    let database = TestDatabase::postgres().await;
    let env = [("WEBHOOKS_DATABASE_URL", database.url().to_owned()), ("WEBHOOKS_MIGRATE_ON_START", "false".to_owned())];
    let (status, _, stderr) = crate::process::run_capturing(&["serve"], &env).await;
    assert!(!status.success(), "a service started on an unmigrated database");
    assert!(
        stderr.contains("lacks migrations 20250101000000, ") && stderr.contains("run `webhooks migrate` first"),
        "{stderr}"
    );
    assert!(crate::process::run_to_end(&["migrate"], &env).await.success(), "the migrate job runs regardless");
    let serve = Webhooks::start(&["serve"], &env).await;
    serve.wait_ready().await;
    assert!(serve.stop().await.success());
}
