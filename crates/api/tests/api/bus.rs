//! What the API puts on the bus: a change notice for every committed write, and the events
//! handed to `POST /v2/events`. Over HTTP on 127.0.0.1, with the in-process bus (and RabbitMQ
//! where the broker's own limits matter).

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_bus::Consumer;
use webhooks_model::ids::AccountId;
use webhooks_model::notice::{Action, CONFIGURATION_EXCHANGE, Change};
use webhooks_model::trace::TraceParent;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::{Backend, connect, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::test_matrix;

test_matrix!(
    buses;
    an_event_whose_routing_key_would_be_too_long_is_refused_before_anything_is_published,
);

/// A queue of `app`'s bus bound to `bindings`.
async fn listen<E: AsRef<str>>(app: &TestApp, bindings: &[(E, String)]) -> Consumer {
    let queue = app.bus.private_queue(bindings).await.expect("a private queue");
    app.bus.consume(&queue, 100).await.expect("a consumer")
}

/// The next message: its exchange, routing key and JSON body.
async fn next(consumer: &mut Consumer) -> (String, String, Value) {
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("a message within 5 s")
        .expect("the consumer is open");
    delivery.ack().await.expect("acked");
    let body = serde_json::from_slice(&delivery.body).expect("a JSON body");
    (delivery.exchange.clone(), delivery.routing_key.clone(), body)
}

/// Nothing more arrives for a while.
async fn quiet(consumer: &mut Consumer) {
    if let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await {
        panic!("unexpected message {} {}", delivery.routing_key, String::from_utf8_lossy(&delivery.body));
    }
}

/// Nothing more whose routing key contains `marker` arrives for a while (others' messages are
/// passed over).
async fn quiet_about(consumer: &mut Consumer, marker: &str) {
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(delivery)) = tokio::time::timeout_at(until, consumer.next()).await {
        delivery.ack().await.expect("acked");
        assert!(!delivery.routing_key.contains(marker), "unexpected message {}", delivery.routing_key);
    }
}

async fn next_change(consumer: &mut Consumer) -> Change {
    let (exchange, _, body) = next(consumer).await;
    assert_eq!(exchange, CONFIGURATION_EXCHANGE);
    Change::parse(&body).expect("a change notice")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_committed_write_is_announced_once_and_failed_ones_are_not() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let mut notices = listen(&app, &app.bus.topology().change_notice_bindings()).await;
    let token = app.master_token().await;
    let client = &app.client;

    let (child, _) = client.create_account(&token, &app.master_id, "child").await;
    let child_id: AccountId = child.parse().expect("an account id");
    assert_eq!(next_change(&mut notices).await, Change::Account { action: Action::Created, id: child_id.clone() });

    let hooks = format!("/v2/accounts/{child}/webhooks");
    let body = json!({"data": {"name": "n", "uri": "http://127.0.0.1:9/n", "hook": "channel_create"}});
    let id = client.create_hook(&token, &child, &body["data"]).await;
    let hook = format!("{hooks}/{id}");
    let change = |action| Change::Webhook { action, id: id.clone(), account_id: child_id.clone() };
    assert_eq!(next_change(&mut notices).await, change(Action::Created));

    let patched = client.send(Method::PATCH, &hook, Some(&token), Some(&json!({"data": {"enabled": false}}))).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(next_change(&mut notices).await, change(Action::Edited));
    let replaced = client.send(Method::POST, &hook, Some(&token), Some(&body)).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(next_change(&mut notices).await, change(Action::Edited));

    // Refused writes change nothing and announce nothing.
    let invalid = client.send(Method::PATCH, &hook, Some(&token), Some(&json!({"data": {"retries": 9}}))).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    quiet(&mut notices).await;

    let reenable = json!({"data": {"re-enable": true}});
    let reenabled = client.send(Method::PATCH, &hooks, Some(&token), Some(&reenable)).await;
    assert_eq!(reenabled.status, StatusCode::OK);
    assert_eq!(next_change(&mut notices).await, Change::Reenabled { account_id: child_id.clone(), descendants: false });
    let descendants = format!("/v2/accounts/{}/descendants/webhooks", app.master_id);
    assert_eq!(client.send(Method::PATCH, &descendants, Some(&token), Some(&reenable)).await.status, StatusCode::OK);
    assert_eq!(
        next_change(&mut notices).await,
        Change::Reenabled { account_id: app.master_id.parse().expect("an account id"), descendants: true }
    );

    assert_eq!(client.send(Method::DELETE, &hook, Some(&token), None).await.status, StatusCode::OK);
    assert_eq!(next_change(&mut notices).await, change(Action::Deleted));

    let account = format!("/v2/accounts/{child}");
    let renamed = client.send(Method::PATCH, &account, Some(&token), Some(&json!({"data": {"name": "renamed"}}))).await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(next_change(&mut notices).await, Change::Account { action: Action::Edited, id: child_id.clone() });
    assert_eq!(client.send(Method::DELETE, &account, Some(&token), None).await.status, StatusCode::OK);
    assert_eq!(next_change(&mut notices).await, Change::Account { action: Action::Deleted, id: child_id });
    quiet(&mut notices).await;
}

/// A Kazoo event of the fixtures: its body and the routing key Kazoo publishes it with.
fn fixture(name: &str) -> (Value, String) {
    let path = format!("{}/../model/fixtures/amqp-events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the fixture is readable");
    let fixture: Value = serde_json::from_str(&text).expect("the fixture is JSON");
    (fixture["body"].clone(), fixture["routing_key"].as_str().expect("a routing key").to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn ingested_events_go_where_a_kazoo_publisher_puts_them() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let mut events = listen(&app, &app.bus.topology().kazoo_event_bindings()).await;
    let token = app.master_token().await;
    let client = &app.client;
    let (create, create_key) = fixture("CHANNEL_CREATE");
    let (voicemail, voicemail_key) = fixture("notification_voicemail_new");
    let (user, user_key) = fixture("object_doc_created_user");

    let one = client.send(Method::POST, "/v2/events", Some(&token), Some(&create)).await;
    assert_eq!((one.status, one.data()), (StatusCode::ACCEPTED, &json!({"accepted": 1})), "{}", one.body);
    assert_eq!(next(&mut events).await, ("callevt".to_owned(), create_key.clone(), create.clone()));

    let many = json!([voicemail, user]);
    let both = client.send(Method::POST, "/v2/events", Some(&token), Some(&many)).await;
    assert_eq!((both.status, both.data()), (StatusCode::ACCEPTED, &json!({"accepted": 2})));
    assert_eq!(next(&mut events).await, ("notifications".to_owned(), voicemail_key, voicemail));
    assert_eq!(next(&mut events).await, ("configuration".to_owned(), user_key, user));

    let enveloped = client.send(Method::POST, "/v2/events", Some(&token), Some(&json!({"data": create}))).await;
    assert_eq!(enveloped.status, StatusCode::ACCEPTED);
    assert_eq!(next(&mut events).await.1, create_key);

    // One bad event refuses the whole request, naming the item and field; nothing is published.
    let mut broken = create.clone();
    broken.as_object_mut().expect("an object").remove("Call-ID");
    let refused = client.send(Method::POST, "/v2/events", Some(&token), Some(&json!([create, broken]))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["data"]["1.Call-ID"]["required"]["message"], "required field 'Call-ID' is missing");
    let unknown = json!({"Event-Category": "weather", "Event-Name": "rain"});
    let refused = client.send(Method::POST, "/v2/events", Some(&token), Some(&unknown)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body["data"]["Event-Category"]["enum"]["message"].is_string(), "{}", refused.body);
    for body in [json!([]), json!("text"), json!([1])] {
        let refused = client.send(Method::POST, "/v2/events", Some(&token), Some(&body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
    }
    quiet(&mut events).await;

    // An array's events are published as the text they came as, byte for byte.
    let (answer, answer_key) = fixture("CHANNEL_ANSWER");
    let texts = [serde_json::to_string_pretty(&create).expect("JSON"), serde_json::to_string(&answer).expect("JSON")];
    let body = format!(" [ {} ,\n{} ] ", texts[0], texts[1]);
    let posted = client.send_raw(Method::POST, "/v2/events", Some(&token), "application/json", body.into_bytes()).await;
    assert_eq!((posted.status, posted.data()), (StatusCode::ACCEPTED, &json!({"accepted": 2})), "{}", posted.body);
    for (text, key) in texts.iter().zip([&create_key, &answer_key]) {
        let delivery =
            tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("a message").expect("open");
        delivery.ack().await.expect("acked");
        assert_eq!((delivery.routing_key.as_str(), delivery.body.as_ref()), (key.as_str(), text.as_bytes()));
    }
    let broken = client
        .send_raw(Method::POST, "/v2/events", Some(&token), "application/json", b"[{\"Event-Name\": 1".to_vec())
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.body["data"]["json"]["invalid"]["message"], "EOF while parsing an object at line 1 column 17");
    quiet(&mut events).await;

    // Only the master account publishes.
    let (child, child_key) = client.create_account(&token, &app.master_id, "child").await;
    // The account's own change notice is a Kazoo document change too.
    assert_eq!(next(&mut events).await.1, format!("doc_created.accounts.account.{child}"));
    let child_token = client.token(&child_key).await;
    let forbidden = client.send(Method::POST, "/v2/events", Some(&child_token), Some(&create)).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(client.send(Method::POST, "/v2/events", None, Some(&create)).await.status, StatusCode::UNAUTHORIZED);
    let get = client.send(Method::GET, "/v2/events", Some(&token), None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    quiet(&mut events).await;
}

async fn an_event_whose_routing_key_would_be_too_long_is_refused_before_anything_is_published(backend: Backend) {
    let bus = connect(backend, &unique_prefix("test-api-events")).await;
    let app = TestApp::spawn_on(TestDatabase::sqlite().await, bus).await;
    // Only channel events: on RabbitMQ Kazoo's exchanges are shared with the tests beside this
    // one, so their call ids start with a marker of this test's own.
    let mut events = listen(&app, &[("callevt", "call.CHANNEL_CREATE.*".to_owned())]).await;
    let marker = unique_prefix("long");
    let token = app.master_token().await;
    let (create, _) = fixture("CHANNEL_CREATE");
    // `call.CHANNEL_CREATE.` then the call id: 235 bytes of it make a key of the broker's 255.
    let with_call_id = |call_id: String| {
        let mut event = create.clone();
        event["Call-ID"] = json!(call_id);
        event
    };
    let call_id = |length: usize| format!("{marker}{}", "c".repeat(length - marker.len()));
    let (longest, too_long) = (with_call_id(call_id(235)), with_call_id(call_id(236)));
    let refusal = |field: &str, length: usize| {
        json!({field: {"maxLength": {
            "message": format!("'Call-ID' makes the routing key {length} bytes long; the broker takes at most 255"),
            "target": 255}}})
    };

    let refused = app.client.send(Method::POST, "/v2/events", Some(&token), Some(&too_long)).await;
    assert_eq!((refused.status, &refused.body["message"]), (StatusCode::BAD_REQUEST, &json!("validation error")));
    assert_eq!(refused.data(), &refusal("Call-ID", 256));
    // Encoded, each `@` takes three bytes: the key is measured as the broker gets it.
    let ats = (256 - "call.CHANNEL_CREATE.".len() - marker.len()).div_ceil(3);
    let encoded = with_call_id(format!("{marker}{}", "@".repeat(ats)));
    let encoded_length = "call.CHANNEL_CREATE.".len() + marker.len() + 3 * ats;
    let refused = app.client.send(Method::POST, "/v2/events", Some(&token), Some(&encoded)).await;
    assert_eq!((refused.status, refused.data()), (StatusCode::BAD_REQUEST, &refusal("Call-ID", encoded_length)));
    // One such event refuses its whole array.
    let array = json!([longest, too_long]);
    let refused = app.client.send(Method::POST, "/v2/events", Some(&token), Some(&array)).await;
    assert_eq!((refused.status, refused.data()), (StatusCode::BAD_REQUEST, &refusal("1.Call-ID", 256)));
    quiet_about(&mut events, &marker).await;

    // The longest key the broker takes goes through, on a bus the refusals left working.
    let accepted = app.client.send(Method::POST, "/v2/events", Some(&token), Some(&longest)).await;
    assert_eq!(
        (accepted.status, accepted.data()),
        (StatusCode::ACCEPTED, &json!({"accepted": 1})),
        "{}",
        accepted.body
    );
    let (exchange, routing_key, body) = loop {
        let next = next(&mut events).await;
        if next.1.contains(&marker) {
            break next;
        }
    };
    assert_eq!((exchange.as_str(), routing_key), ("callevt", format!("call.CHANNEL_CREATE.{}", call_id(235))));
    assert_eq!(body, longest);
    quiet_about(&mut events, &marker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingested_events_continue_the_requests_trace_or_start_one() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let mut events = listen(&app, &app.bus.topology().kazoo_event_bindings()).await;
    let token = app.master_token().await;
    let (create, _) = fixture("CHANNEL_CREATE");
    let inbound: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid");
    // POSTs the event with this traceparent header, if any; the trace parent it was published with.
    let mut published = async |header: Option<&str>| -> TraceParent {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v2/events", app.client.base_url()))
            .header("X-Auth-Token", &token)
            .json(&json!([create, create]));
        if let Some(header) = header {
            request = request.header("traceparent", header);
        }
        let answer = request.send().await.expect("the API answers");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let mut traces = Vec::new();
        for _ in 0..2 {
            let delivery = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .expect("a message within 5 s")
                .expect("the consumer is open");
            delivery.ack().await.expect("acked");
            traces.push(delivery.trace_parent().expect("a valid traceparent header"));
        }
        assert_eq!(traces[0], traces[1], "one request, one trace parent");
        traces[0]
    };

    let continued = published(Some(&inbound.to_string())).await;
    assert_eq!((continued.trace_id(), continued.flags()), (inbound.trace_id(), inbound.flags()));
    assert_ne!(continued.parent_id(), inbound.parent_id(), "a child of the client's span");
    let started = published(None).await;
    let garbled = published(Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")).await;
    let trace_ids = HashSet::from([continued.trace_id(), started.trace_id(), garbled.trace_id()]);
    assert_eq!(trace_ids.len(), 3, "without a valid header each request starts a trace");
    quiet(&mut events).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_need_no_token_and_are_not_counted_as_api_requests() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let alive = app.client.send(Method::GET, "/healthz", None, None).await;
    assert_eq!((alive.status, &alive.body), (StatusCode::OK, &json!({"status": "ok"})));
    let missing = app.client.send(Method::GET, "/v2/accounts/00000000000000000000000000000000", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let metrics = reqwest::get(format!("{}/metrics", app.client.base_url())).await.expect("/metrics answers");
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(metrics.headers()["content-type"], "text/plain; version=0.0.4");
    let text = metrics.text().await.expect("a text body");
    // Routes are labelled by pattern, never by the ids in the path.
    for line in [
        r#"webhooks_api_requests_total{method="GET",route="/v2/accounts/{account_id}",status="404"} 1"#,
        r#"webhooks_api_request_duration_seconds_count{method="GET",route="/v2/accounts/{account_id}"} 1"#,
        "webhooks_bus_connected 1",
        "webhooks_db_pool_connections ",
        &format!(r#"webhooks_build_info{{version="{}"}} 1"#, env!("CARGO_PKG_VERSION")),
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_cpu_seconds_total ",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    // Probes and scrapes are not the API's traffic.
    assert!(!text.contains(r#"route="/healthz""#) && !text.contains(r#"route="/metrics""#), "{text}");
    assert!(!text.contains("00000000000000000000000000000000"));
    let ready = app.client.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (ready.status, &ready.body),
        (StatusCode::OK, &json!({"status": "ok", "checks": {"database": "ok", "bus": "ok"}}))
    );
    app.bus.close().await;
    let closed = app.client.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(closed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(closed.body["checks"]["bus"], "failing");
}
