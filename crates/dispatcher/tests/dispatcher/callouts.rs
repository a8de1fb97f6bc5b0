//! The callouts themselves: each fixture's request byte for byte, the targets refused, how each
//! kind of failure is classed, the response bodies kept, the trace carried, and hosts that are
//! dead or saturated.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use webhooks_dispatcher::DispatcherSettings;
use webhooks_model::job::DeliveryJob;
use webhooks_model::retry::FailureLimits;
use webhooks_model::trace::TraceParent;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_test_support::bus::{Backend, PATIENCE};
use webhooks_test_support::fixtures::amqp_event_fixtures;
use webhooks_test_support::receiver::{Receiver, Reply};
use webhooks_test_support::test_matrix;

use crate::{World, random_event_id, settings};

test_matrix!(
    buses;
    every_fixture_callout_is_sent_byte_for_byte_as_expected,
    callouts_carry_the_jobs_trace_with_a_span_of_their_own_unless_the_hook_sets_one,
    batches_are_acked_without_waiting_for_a_dead_host_whose_jobs_are_all_attempted,
    waiting_for_a_saturated_host_counts_within_the_timeout_and_not_towards_disabling,
);

/// `https://hooks.example.com/kazoo/x?q` as `(path, query)`.
fn path_and_query(url: &str) -> (String, Option<String>) {
    let without_origin = url.splitn(4, '/').nth(3).map(|rest| format!("/{rest}")).unwrap_or_default();
    match without_origin.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (without_origin, None),
    }
}

async fn every_fixture_callout_is_sent_byte_for_byte_as_expected(backend: Backend) {
    let world = World::new(backend).await;
    let receiver = Receiver::answering(200).await;
    let dispatcher = world.dispatcher(settings()).await;
    let mut expectations = Vec::new();
    let mut jobs = Vec::new();
    for (name, fixture) in amqp_event_fixtures() {
        let hook = &fixture["hook"];
        let expected = &fixture["expected_http_request"];
        let (path, query) = path_and_query(expected["url"].as_str().expect("url"));
        // Several fixtures share a path; the fixture name keeps their requests apart.
        let path = format!("/{}{path}", name.trim_end_matches(".json"));
        let verb: HttpVerb = hook["http_verb"].as_str().expect("verb").parse().expect("a verb");
        let format: Format = hook["format"].as_str().expect("format").parse().expect("a format");
        let mut job = world.hook(&receiver.url(&path), verb, format, 0).await;
        job.payload = fixture["expected_http_payload"].as_object().cloned().expect("payload").into();
        job.custom_request_headers =
            json!({"X-Tenant": name, "Authorization": "Bearer fixture"}).as_object().cloned().unwrap_or_default();
        expectations.push((name, job.clone(), expected.clone(), path, query));
        jobs.push(job);
    }
    // One event, many hooks: one batch, delivered concurrently.
    world.publish(jobs).await;
    let received = receiver.wait_for(expectations.len(), PATIENCE).await;
    for (name, job, expected, path, query) in expectations {
        let request = received.iter().find(|request| request.path() == path).expect("the fixture's request");
        assert_eq!(request.method, expected["method"], "{name}: method");
        assert_eq!(request.target.split_once('?').map(|(_, query)| query.to_owned()), query, "{name}: query");
        assert_eq!(request.header("x-hook-id"), Some(job.hook_id.as_str()), "{name}");
        assert_eq!(request.header("x-account-id"), Some(job.account_id.as_str()), "{name}");
        assert_eq!(request.header("x-event-id"), Some(job.event_id.as_str()), "{name}");
        assert_eq!(request.header("x-tenant"), Some(name.as_str()), "{name}: custom header");
        assert_eq!(request.header("authorization"), Some("Bearer fixture"), "{name}: custom header");
        assert_eq!(request.header("content-type"), expected["headers"]["Content-Type"].as_str(), "{name}");
        assert_eq!(request.header("webhook-signature"), None, "{name}: unsigned hooks are not signed");
        match (expected["method"].as_str(), job.format) {
            (Some("GET"), _) => assert!(request.body.is_empty(), "{name}: GET has no body"),
            (_, Format::FormData) => {
                assert_eq!(Some(String::from_utf8_lossy(&request.body).as_ref()), expected["body"].as_str(), "{name}");
            }
            (_, Format::Json) => {
                let sent: Value = serde_json::from_slice(&request.body).expect("a JSON body");
                assert_eq!(sent, Value::Object(job.payload.as_ref().clone()), "{name}: JSON body");
                assert_eq!(
                    request.body,
                    serde_json::to_vec(job.payload.as_ref()).expect("json"),
                    "{name}: compact JSON"
                );
            }
        }
        // Successes are recorded (log_successful_attempts) with what was sent.
        let recorded = world.wait_for_attempts(&job.hook_id, 1).await;
        assert_eq!(recorded[0]["result"], "success", "{name}");
        assert_eq!(recorded[0]["event_id"], job.event_id.as_str(), "{name}");
        assert_eq!(recorded[0]["req_headers"]["x-tenant"], name.to_lowercase(), "{name}");
        assert_eq!(recorded[0]["req_body"], String::from_utf8_lossy(&request.body).as_ref(), "{name}");
    }
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_allowed() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(200).await;
    let guarded = DispatcherSettings { allow_private_targets: false, ..settings() };
    let dispatcher = world.dispatcher(guarded).await;
    let port = receiver.port();
    let literal = world.hook(&receiver.url("/literal"), HttpVerb::Post, Format::Json, 0).await;
    let named = world.hook(&format!("http://localhost:{port}/named"), HttpVerb::Get, Format::Json, 0).await;
    let mapped = world.hook(&format!("http://[::ffff:127.0.0.1]:{port}/mapped"), HttpVerb::Post, Format::Json, 0).await;
    // Other spellings of 127.0.0.1, as a document stored before the API refused them may hold:
    // no literal for the connector, they reach the resolver, which reads them as the address.
    let mut spelled = Vec::new();
    for host in ["2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1"] {
        spelled
            .push((host, world.hook(&format!("http://{host}:{port}/spelled"), HttpVerb::Post, Format::Json, 0).await));
    }
    let mut jobs = vec![literal.clone(), named.clone(), mapped.clone()];
    jobs.extend(spelled.iter().map(|(_, job)| job.clone()));
    world.publish(jobs.clone()).await;
    for job in &jobs {
        let recorded = world.wait_for_attempts(&job.hook_id, 1).await;
        assert_eq!(recorded[0]["failure_class"], "blocked_target", "{}", job.uri);
        assert_eq!(recorded[0]["reason"], "kazoo http client error");
        let text = recorded[0]["client_error"].as_str().expect("client_error");
        assert!(text.starts_with("blocked_target: ") && text.contains("not a public address"), "{text}");
    }
    for (host, job) in &spelled {
        let recorded = world.attempts(&job.hook_id).await;
        assert_eq!(
            recorded[0]["client_error"],
            format!("blocked_target: {host} resolves to 127.0.0.1, which is not a public address")
        );
    }
    assert_eq!((receiver.connections(), receiver.count()), (0, 0), "no connection reached the private target");
    dispatcher.stop().await;
    // The same hooks are called once private targets are allowed.
    let open = world.dispatcher(settings()).await;
    let again = |job: &DeliveryJob| DeliveryJob { event_id: random_event_id(), ..job.clone() };
    world.publish(vec![again(&literal), again(&named), again(&spelled[0].1)]).await;
    receiver.wait_for(3, PATIENCE).await;
    assert!(receiver.connections() >= 1);
    open.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_refusals_dns_tls_errors_and_redirects_are_failures_of_their_class() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::start(|request, _| match request.path() {
        "/hang" => Reply::Hang,
        _ => Reply::Answer(302, vec![("Location".into(), "/elsewhere".into())], String::new()),
    })
    .await;
    // A port nobody listens on: bind one, then free it.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let quick = DispatcherSettings { total_timeout: Duration::from_millis(300), ..settings() };
    let dispatcher = world.dispatcher(quick).await;
    let hang = world.hook(&receiver.url("/hang"), HttpVerb::Post, Format::Json, 0).await;
    let refused = world.hook(&format!("http://127.0.0.1:{closed_port}/"), HttpVerb::Post, Format::Json, 0).await;
    let unknown = world.hook("http://no-such-host.invalid/", HttpVerb::Post, Format::Json, 0).await;
    let redirect = world.hook(&receiver.url("/moved"), HttpVerb::Get, Format::Json, 0).await;
    // https to a plain HTTP server: the TLS handshake fails.
    let plain = format!("https://127.0.0.1:{}/tls", receiver.port());
    let tls = world.hook(&plain, HttpVerb::Post, Format::Json, 0).await;
    world.publish(vec![hang.clone(), refused.clone(), unknown.clone(), redirect.clone(), tls.clone()]).await;
    let class = |recorded: &[Map<String, Value>]| {
        (
            recorded[0]["failure_class"].as_str().unwrap_or_default().to_owned(),
            recorded[0].get("client_error").and_then(Value::as_str).unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(class(&world.wait_for_attempts(&hang.hook_id, 1).await), ("timeout".into(), "timeout".into()));
    assert_eq!(
        class(&world.wait_for_attempts(&refused.hook_id, 1).await),
        ("connect".into(), "failed_connect: econnrefused".into())
    );
    let (dns_class, dns_text) = class(&world.wait_for_attempts(&unknown.hook_id, 1).await);
    assert_eq!(dns_class, "dns");
    assert!(dns_text.starts_with("failed_connect: nxdomain"), "{dns_text}");
    let (tls_class, tls_text) = class(&world.wait_for_attempts(&tls.hook_id, 1).await);
    assert_eq!(tls_class, "tls", "{tls_text}");
    assert!(tls_text.starts_with("tls: "), "{tls_text}");
    let moved = world.wait_for_attempts(&redirect.hook_id, 1).await;
    assert_eq!((&moved[0]["failure_class"], &moved[0]["resp_status_code"]), (&json!("http_status"), &json!("302")));
    assert!(receiver.requests().iter().all(|request| request.path() != "/elsewhere"), "redirects are not followed");
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_are_recorded_up_to_the_cap() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::start(|_, _| Reply::Answer(500, Vec::new(), "x".repeat(100_000))).await;
    let capped = DispatcherSettings { max_response_body: 1024, ..settings() };
    let dispatcher = world.dispatcher(capped).await;
    let job = world.hook(&receiver.url("/big"), HttpVerb::Post, Format::Json, 0).await;
    world.publish(vec![job.clone()]).await;
    let recorded = world.wait_for_attempts(&job.hook_id, 1).await;
    assert_eq!(recorded[0]["resp_body"].as_str().map(str::len), Some(1024));
    dispatcher.stop().await;
}

async fn callouts_carry_the_jobs_trace_with_a_span_of_their_own_unless_the_hook_sets_one(backend: Backend) {
    let world = World::new(backend).await;
    // The traced hook fails once, so its retry shows what a second attempt sends.
    let receiver = Receiver::start(|request, seen| match (request.path(), seen) {
        ("/traced", 0) => Reply::status(500),
        _ => Reply::status(200),
    })
    .await;
    let dispatcher = world.dispatcher(settings()).await;
    let inbound: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid");
    let mut traced = world.hook(&receiver.url("/traced"), HttpVerb::Post, Format::Json, 1).await;
    traced.trace_parent = Some(inbound.to_string());
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let mut hook_set = world.hook(&receiver.url("/hook-set"), HttpVerb::Post, Format::Json, 0).await;
    hook_set.trace_parent = Some(inbound.to_string());
    hook_set.custom_request_headers = json!({"traceparent": own}).as_object().cloned().unwrap_or_default();
    let untraced = world.hook(&receiver.url("/untraced"), HttpVerb::Get, Format::FormData, 0).await;
    world.publish(vec![traced.clone(), hook_set.clone(), untraced.clone()]).await;
    let received = receiver.wait_for(4, PATIENCE).await;

    let sent = |path: &str| -> Vec<TraceParent> {
        received
            .iter()
            .filter(|request| request.path() == path)
            .map(|request| {
                let values: Vec<_> = request.headers.iter().filter(|(name, _)| name == "traceparent").collect();
                assert_eq!(values.len(), 1, "{path}: one traceparent header");
                values[0].1.parse().expect("a valid traceparent")
            })
            .collect()
    };
    // Both attempts: the job's trace, each with a span id of its own.
    let attempts = sent("/traced");
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!((attempt.trace_id(), attempt.flags()), (inbound.trace_id(), inbound.flags()));
        assert_ne!(attempt.parent_id(), inbound.parent_id());
    }
    assert_ne!(attempts[0].parent_id(), attempts[1].parent_id());
    let recorded = world.wait_for_attempts(&traced.hook_id, 2).await;
    let recorded: Vec<_> = recorded.iter().map(|attempt| attempt["req_headers"]["traceparent"].clone()).collect();
    assert_eq!(recorded, [json!(attempts[0].to_string()), json!(attempts[1].to_string())]);
    // The hook's own header is sent as it is, and ours is not.
    assert_eq!(sent("/hook-set").iter().map(ToString::to_string).collect::<Vec<_>>(), [own]);
    // A job without a trace parent starts a trace.
    let started = sent("/untraced");
    assert_eq!(started.len(), 1);
    assert_ne!(started[0].trace_id(), inbound.trace_id());
    dispatcher.stop().await;
}

async fn batches_are_acked_without_waiting_for_a_dead_host_whose_jobs_are_all_attempted(backend: Backend) {
    let world = World::new(backend).await;
    let hanging = Receiver::start(|_, _| Reply::Hang).await;
    let healthy = Receiver::answering(200).await;
    let timeout = Duration::from_secs(3);
    // A window of two: the first batch holds one place for its whole timeout, so every later
    // batch must be acknowledged without waiting for the dead host for the rest to get through.
    let narrow = DispatcherSettings {
        total_timeout: timeout,
        slow_lane_after: Duration::from_millis(100),
        prefetch: 2,
        failure_limits: FailureLimits { threshold: 1000, window: Duration::from_secs(60) },
        ..settings()
    };
    let dispatcher = world.dispatcher(narrow).await;
    let dead = world.hook(&hanging.url("/dead"), HttpVerb::Post, Format::Json, 0).await;
    let mut live = Vec::new();
    for index in 0..3 {
        live.push(world.hook(&healthy.url(&format!("/live{index}")), HttpVerb::Post, Format::Json, 0).await);
    }
    let fresh = |job: &DeliveryJob| DeliveryJob { event_id: random_event_id(), ..job.clone() };
    let mut dead_events = HashSet::from([dead.event_id.clone()]);
    let started = Instant::now();
    world.publish(vec![dead.clone()]).await;
    hanging.wait_for(1, PATIENCE).await;
    // Not waiting for work: the callout in flight makes its host slow once it is this old.
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..10 {
        let dead_job = fresh(&dead);
        dead_events.insert(dead_job.event_id.clone());
        let mut batch = vec![dead_job];
        batch.extend(live.iter().map(fresh));
        world.publish(batch).await;
    }
    healthy.wait_for(30, PATIENCE).await;
    // Before even the first dead callout timed out.
    assert!(started.elapsed() < timeout, "healthy jobs waited {:?} for the dead host", started.elapsed());
    // Every job of the dead host was attempted once and recorded, none lost.
    let recorded = world.wait_for_attempts(&dead.hook_id, 11).await;
    let events: HashSet<String> =
        recorded.iter().filter_map(|attempt| attempt["event_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(events, dead_events);
    assert!(recorded.iter().all(|attempt| attempt["failure_class"] == "timeout" && attempt["retries_left"] == 0));
    assert_eq!(hanging.count(), 11);
    dispatcher.stop().await;
}

async fn waiting_for_a_saturated_host_counts_within_the_timeout_and_not_towards_disabling(backend: Backend) {
    let world = World::new(backend).await;
    let hanging = Receiver::start(|_, _| Reply::Hang).await;
    let timeout = Duration::from_millis(800);
    let one_slot = DispatcherSettings {
        total_timeout: timeout,
        max_connections_per_host: 1,
        // Slow, with its only callout in flight that long, before the waiting job gives up.
        slow_lane_after: Duration::from_millis(100),
        // Two failures disable the hook: only the callout made counts, not the one never sent.
        failure_limits: FailureLimits { threshold: 2, window: Duration::from_secs(60) },
        ..settings()
    };
    let dispatcher = world.dispatcher(one_slot).await;
    let dead = world.hook(&hanging.url("/dead"), HttpVerb::Post, Format::Json, 0).await;
    let second = DeliveryJob { event_id: random_event_id(), ..dead.clone() };
    let started = Instant::now();
    world.publish(vec![dead.clone(), second]).await;
    let recorded = world.wait_for_attempts(&dead.hook_id, 2).await;
    assert!(started.elapsed() < timeout * 2, "the job waiting for the slot took {:?}", started.elapsed());
    let mut errors: Vec<_> = recorded.iter().map(|attempt| attempt["client_error"].clone()).collect();
    errors.sort_by_key(ToString::to_string);
    assert_eq!(errors, [json!("host saturated"), json!("timeout")]);
    assert_eq!(hanging.count(), 1, "the saturated job was never sent");
    assert_eq!(world.hook_state(&dead.hook_id).await, (true, None));
    dispatcher.stop().await;
}
