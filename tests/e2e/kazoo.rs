//! Kazoo mode end to end: separate `api`, `router` and `dispatcher` processes on PostgreSQL and
//! RabbitMQ, with a Crossbar stand-in on 127.0.0.1. The API copies Kazoo's account tree, a
//! Kazoo user token creates a hook on a sub-account, and a Kazoo call event published on
//! `callevt` reaches the local receiver; so does the first call of an account Kazoo created
//! without a notice, to its parent's `include_subaccounts` hook.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reqwest::{Method, StatusCode};
use serde_json::json;
use webhooks_model::ids::random_id;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::kazoo::{CrossbarStandIn, MASTER_API_KEY, SIBLING, SUB1, token};
use webhooks_test_support::receiver::Receiver;

use crate::process::{Webhooks, rabbitmq, run_to_end};

/// Publishes a CHANNEL_CREATE of `account` on Kazoo's `callevt` exchange, as Kazoo does.
async fn publish_channel_create(account: &str, call_id: &str) {
    let connection = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers");
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let body = json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": call_id,
        "Call-Direction": "inbound", "Caller-ID-Number": "+14155550100",
        "Custom-Channel-Vars": {"Account-ID": account}, "App-Name": "ecallmgr", "App-Version": "4.3.0",
        "Node": "ecallmgr@fs1.example.net", "Msg-ID": random_id()});
    channel
        .basic_publish(
            "callevt".into(),
            format!("call.CHANNEL_CREATE.{call_id}").as_str().into(),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await
        .expect("published");
    channel.wait_for_confirms().await.expect("confirmed");
    connection.close(200, "done".into()).await.expect("closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kazoo_token_hooks_a_sub_account_and_its_call_event_is_delivered() {
    let crossbar = CrossbarStandIn::start().await;
    crossbar.put_fixture_tree();
    let database = TestDatabase::postgres().await;
    let mut env = vec![
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("WEBHOOKS_KAZOO__CROSSBAR_URL", crossbar.url()),
        ("WEBHOOKS_KAZOO__API_KEY", MASTER_API_KEY.to_owned()),
    ];
    env.extend(rabbitmq(&format!("e2e-kazoo-{}", random_id())));
    assert!(run_to_end(&["migrate"], &env).await.success());

    let router = Webhooks::start(&["router"], &env).await;
    let dispatcher = Webhooks::start(&["dispatcher"], &env).await;
    let api = Webhooks::start(&["api"], &env).await;
    router.wait_ready().await;

    let user = token("user_auth");
    let receiver = Receiver::answering(200).await;
    let hooks = format!("/v2/accounts/{SUB1}/webhooks");
    let hook = json!({"data": {"name": "Kazoo calls", "uri": receiver.url("/calls"), "hook": "channel_create"}});
    let created = api.client.send(Method::PUT, &hooks, Some(&user), Some(&hook)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let refused = api.client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": "k"}}))).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "api_auth is Crossbar's");

    let sibling_hooks = format!("/v2/accounts/{SIBLING}/webhooks");
    let subaccounts = json!({"data": {"name": "Sub-account calls", "uri": receiver.url("/subaccounts"),
        "hook": "channel_create", "include_subaccounts": true}});
    let created =
        api.client.send(Method::PUT, &sibling_hooks, Some(&token("sibling_api_auth")), Some(&subaccounts)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // The router hears of the copied accounts and of the hooks on the bus.
    router.wait_for_index(2, tokio::time::Instant::now() + Duration::from_secs(10)).await;
    publish_channel_create(SUB1, "kazoo-e2e-1").await;
    let delivered = receiver.wait_for(1, Duration::from_secs(20)).await;
    let request = delivered.first().expect("the call event is delivered");
    assert_eq!(request.path(), "/calls");
    // Form-encoded, the default format.
    let payload = String::from_utf8_lossy(&request.body);
    assert!(payload.contains(SUB1) && payload.contains("kazoo-e2e-1"), "{payload}");

    // Kazoo creates an account under the sibling, and its notice is lost: its first call still
    // reaches the sibling's hook, once the router has had the account sync read it from Crossbar.
    let created_in_kazoo = random_id();
    crossbar.put_account(&created_in_kazoo, "Created in Kazoo", Some(SIBLING), json!({}));
    publish_channel_create(&created_in_kazoo, "kazoo-e2e-2").await;
    let delivered = receiver.wait_for(2, Duration::from_secs(20)).await;
    let request = delivered.iter().find(|request| request.path() == "/subaccounts").expect("delivered to the sibling");
    let payload = String::from_utf8_lossy(&request.body);
    assert!(payload.contains(&created_in_kazoo) && payload.contains("kazoo-e2e-2"), "{payload}");
    assert_eq!(receiver.requests().len(), 2, "each event once");

    for process in [api, dispatcher, router] {
        assert!(process.stop().await.success(), "SIGTERM stops each service cleanly");
    }
}
