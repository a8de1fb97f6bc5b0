//! Events in, jobs out: the fixtures' exact payloads, several routers on one queue, job batches,
//! malformed messages, a router stopped or killed mid-stream, and the trace an event carries on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use webhooks_bus::{DEAD_LETTER_ERROR_HEADER, DEAD_LETTER_EXCHANGE_HEADER, DEAD_LETTER_REASON_HEADER, Outgoing};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::trace::{TRACE_PARENT_HEADER, TraceParent};
use webhooks_router::RouterSettings;
use webhooks_storage::Account;
use webhooks_test_support::bus::{Backend, Observer, connect, eventually, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::fixtures::amqp_event_fixtures;
use webhooks_test_support::store::{create_account, create_hook, hook_document};
use webhooks_test_support::test_matrix;

use super::{
    Jobs, RunningRouter, call_ids, channel_event, one_hook_store, publish, publish_calls, publish_traced_with_lapin,
    publish_with_lapin, settings,
};

test_matrix!(
    buses;
    fixture_events_become_jobs_with_exactly_the_expected_payloads,
    two_routers_on_one_queue_route_each_event_exactly_once,
    jobs_travel_in_messages_of_at_most_the_set_size_with_none_lost,
    a_garbage_message_is_dead_lettered_and_the_next_event_still_routes,
    a_router_stopped_mid_stream_loses_no_event,
    a_router_killed_mid_stream_loses_no_event,
    an_events_trace_goes_on_in_its_jobs_and_an_untraced_event_starts_one,
);

async fn fixture_events_become_jobs_with_exactly_the_expected_payloads(backend: Backend) {
    fixture_scenario(backend, TestDatabase::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_events_become_jobs_with_exactly_the_expected_payloads_on_postgresql() {
    fixture_scenario(Backend::InProcess, TestDatabase::postgres().await).await;
}

/// Every fixture's account tree and hook stored, every fixture's message published on its Kazoo
/// exchange; each comes back as one job with the fixture's exact payload.
async fn fixture_scenario(backend: Backend, database: TestDatabase) {
    let store = database.store().await;
    let fixtures: Vec<Value> = amqp_event_fixtures().into_iter().map(|(_, fixture)| fixture).collect();
    let context = &fixtures[0]["context"];
    let id = |value: &Value| value.as_str().expect("id").parse::<AccountId>().expect("account id");
    let tree: Vec<AccountId> = context["account_tree"].as_array().expect("tree").iter().map(id).collect();
    let reseller = id(&context["reseller_id"]);
    let mut parent: Option<Account> = None;
    for ancestor in &tree {
        let doc = if *ancestor == reseller { json!({"is_reseller": true}) } else { json!({}) };
        parent = Some(create_account(&store, ancestor, parent.as_ref(), doc).await);
    }
    let event_account = id(&context["account_id"]);
    create_account(&store, &event_account, parent.as_ref(), json!({})).await;
    let mut hooks = HashSet::new();
    for fixture in &fixtures {
        assert_eq!(fixture["context"], *context, "the fixtures share one context");
        let hook = &fixture["hook"];
        let hook_id: WebhookId = hook["id"].as_str().expect("hook id").parse().expect("hook id shape");
        if hooks.insert(hook_id.clone()) {
            create_hook(&store, &hook_id, &id(&hook["pvt_account_id"]), hook).await;
        }
    }

    let prefix = unique_prefix("test-router");
    let bus = connect(backend, &prefix).await;
    let cluster_id = context["cluster_id"].as_str().expect("cluster id");
    let router = RunningRouter::start(&store, &bus, settings(cluster_id)).await;
    let mut jobs = Jobs::consume(&bus).await;
    let messages: Vec<(String, String, Vec<u8>)> = fixtures
        .iter()
        .map(|fixture| {
            let exchange = fixture["exchange"].as_str().expect("exchange").to_owned();
            let routing_key = fixture["routing_key"].as_str().expect("routing key").to_owned();
            (exchange, routing_key, fixture["body"].to_string().into_bytes())
        })
        .collect();
    for ((exchange, routing_key, body), fixture) in messages.into_iter().zip(&fixtures) {
        match backend {
            Backend::RabbitMq => publish_with_lapin(&[(exchange, routing_key, body)]).await,
            Backend::InProcess => publish(&bus, &exchange, &routing_key, body).await,
        }
        // One event at a time, so each job is known to come from its fixture.
        let batch = jobs.next_batch().await;
        assert_eq!(batch.jobs.len(), 1, "{}", fixture["description"]);
        let job = &batch.jobs[0];
        assert_eq!(
            serde_json::to_string(&job.payload).expect("payload"),
            serde_json::to_string(&fixture["expected_http_payload"]).expect("expected payload"),
            "{}",
            fixture["description"]
        );
        assert_eq!(job.hook_id.as_str(), fixture["hook"]["id"]);
        assert_eq!(job.account_id.as_str(), fixture["expected_http_request"]["headers"]["X-Account-ID"]);
        assert_eq!(job.uri, fixture["hook"]["uri"]);
    }
    router.stop().await;
}

async fn two_routers_on_one_queue_route_each_event_exactly_once(backend: Backend) {
    let (_database, store, account, _hook) = one_hook_store().await;
    let prefix = unique_prefix("test-router");
    let first_bus = connect(backend, &prefix).await;
    // On RabbitMQ each router has a connection of its own, like two nodes.
    let second_bus = if backend == Backend::RabbitMq { connect(backend, &prefix).await } else { first_bus.clone() };
    let first = RunningRouter::start(&store, &first_bus, settings("cluster")).await;
    let second = RunningRouter::start(&store, &second_bus, settings("cluster")).await;
    let mut jobs = Jobs::consume(&first_bus).await;

    let count = 400;
    publish_calls(backend, &first_bus, &account, "shared", count).await;
    let received = jobs.take(count).await;
    // Events from tests running beside this one reach these routers too (Kazoo's exchanges are
    // shared), so jobs are counted, not events: exactly one per event means no duplicate.
    eventually("both routers have published exactly one job per event", || async {
        first.stats.jobs() + second.stats.jobs() == count as u64
    })
    .await;
    let counts = call_ids(&received);
    assert_eq!(counts.len(), count, "every event routed");
    assert!(counts.values().all(|&seen| seen == 1), "no event routed twice");
    assert_eq!(first_bus.queue_depth(&first_bus.topology().dispatch_queue()).await.expect("depth"), 0);
    first.stop().await;
    second.stop().await;
}

async fn jobs_travel_in_messages_of_at_most_the_set_size_with_none_lost(backend: Backend) {
    let (_database, store, account, _hook) = one_hook_store().await;
    for _ in 1..7 {
        create_hook(&store, &WebhookId::generate(), &account, &hook_document("channel_create", json!({}))).await;
    }
    let bus = connect(backend, &unique_prefix("test-router")).await;
    let router = RunningRouter::start(&store, &bus, RouterSettings { max_jobs_per_message: 3, ..settings("cl") }).await;
    let mut jobs = Jobs::consume(&bus).await;

    let events = 20;
    publish_calls(backend, &bus, &account, "sized", events).await;
    let mut received = Vec::new();
    let mut messages = 0;
    while received.len() < events * 7 {
        let batch = jobs.next_batch().await;
        assert!((1..=3).contains(&batch.jobs.len()), "{} jobs in one message", batch.jobs.len());
        let sequences: Vec<usize> = batch
            .jobs
            .iter()
            .map(|job| job.payload["call_id"].as_str().and_then(|id| id.strip_prefix("sized-")).expect("a call id"))
            .map(|sequence| sequence.parse().expect("a sequence"))
            .collect();
        assert!(sequences.is_sorted(), "jobs keep their events' order within a message: {sequences:?}");
        received.extend(batch.jobs);
        messages += 1;
    }
    assert_eq!(received.len(), events * 7);
    assert!(messages >= (events * 7).div_ceil(3), "{messages} messages");
    let counts = call_ids(&received);
    assert_eq!(counts.len(), events);
    assert!(counts.values().all(|&seen| seen == 7), "every event reaches its seven hooks once: {counts:?}");
    router.stop().await;
}

async fn a_garbage_message_is_dead_lettered_and_the_next_event_still_routes(backend: Backend) {
    let (_database, store, account, hook) = one_hook_store().await;
    let prefix = unique_prefix("test-router");
    let bus = connect(backend, &prefix).await;
    let router = RunningRouter::start(&store, &bus, settings("cluster")).await;
    let mut jobs = Jobs::consume(&bus).await;
    let dead_letters = bus.topology().dead_letter_queue();
    let mut dead = Observer::consume(&bus, &dead_letters).await;

    // Kazoo's exchanges are shared by every test on the broker, so the routing keys carry this
    // test's prefix to tell its dead letters from those of tests running beside it.
    let key = |what: &str| format!("call.CHANNEL_CREATE.{prefix}-{what}");
    let channel = |extra: Value| {
        let mut body = json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": "bad"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body.to_string().into_bytes()
    };
    // (routing key, body, reason, error): every malformed message, with why it was set aside.
    let malformed: Vec<(String, Vec<u8>, &str, &str)> = vec![
        (key("garbage"), b"{not json".to_vec(), "not_json", "key must be a string at line 1 column 2"),
        (
            key("no-call-id"),
            json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE"}).to_string().into_bytes(),
            "missing_field",
            "required field 'Call-ID' is missing",
        ),
        (
            key("numeric-account"),
            channel(json!({"Custom-Channel-Vars": {"Account-ID": 42}})),
            "invalid_field",
            "field 'Custom-Channel-Vars.Account-ID' is invalid: not a string",
        ),
        (
            key("ccv-list"),
            channel(json!({"Custom-Channel-Vars": [account.as_str()]})),
            "invalid_field",
            "field 'Custom-Channel-Vars' is invalid: not an object",
        ),
        (
            key("numeric-name"),
            channel(json!({"Event-Name": 3, "Custom-Channel-Vars": {"Account-ID": account.as_str()}})),
            "invalid_field",
            "field 'Event-Name' is invalid: not a string",
        ),
    ];
    // Well-formed events that concern no known account are skipped, not dead-lettered.
    let stranger = AccountId::generate();
    let skipped = [
        (key("carrier-leg"), channel(json!({"Custom-Channel-Vars": {}}))),
        (key("stranger"), channel(json!({"Custom-Channel-Vars": {"Account-ID": stranger.as_str()}}))),
        (key("odd-account"), channel(json!({"Custom-Channel-Vars": {"Account-ID": "acme"}}))),
    ];
    let (routing_key, good) = channel_event(&account, "CHANNEL_CREATE", "after-garbage");
    let mut messages: Vec<(String, String, Vec<u8>)> = malformed
        .iter()
        .map(|(key, body, ..)| ("callevt".to_owned(), key.clone(), body.clone()))
        .chain(skipped.iter().map(|(key, body)| ("callevt".to_owned(), key.clone(), body.clone())))
        .collect();
    messages.push(("callevt".to_owned(), routing_key, good));
    match backend {
        Backend::RabbitMq => publish_with_lapin(&messages).await,
        Backend::InProcess => {
            for (exchange, routing_key, body) in messages {
                publish(&bus, &exchange, &routing_key, body).await;
            }
        }
    }
    let batch = jobs.next_batch().await;
    assert_eq!(batch.jobs.len(), 1);
    assert_eq!(batch.jobs[0].hook_id, hook.id);
    assert_eq!(batch.jobs[0].payload["call_id"], "after-garbage");
    let mut ours = HashMap::new();
    while ours.len() < malformed.len() {
        let letter = dead.next_delivery().await;
        if malformed.iter().any(|(key, ..)| *key == letter.routing_key) {
            ours.insert(letter.routing_key.clone(), letter);
        }
    }
    for (key, body, reason, error) in &malformed {
        let letter = &ours[key];
        assert_eq!(&letter.body[..], &body[..], "{key}: the body as published");
        assert_eq!(letter.header(DEAD_LETTER_REASON_HEADER), Some(*reason), "{key}");
        assert_eq!(letter.header(DEAD_LETTER_ERROR_HEADER), Some(*error), "{key}");
        assert_eq!(letter.header(DEAD_LETTER_EXCHANGE_HEADER), Some("callevt"), "{key}");
    }
    // The good event came last: by now every message before it has been judged. On RabbitMQ,
    // Kazoo's exchanges also bring this router other tests' events, so counts are at least ours.
    let counted = [
        ("not_json", router.stats.dead_lettered("not_json"), 1),
        ("missing_field", router.stats.dead_lettered("missing_field"), 1),
        ("invalid_field", router.stats.dead_lettered("invalid_field"), 3),
        ("no_account", router.stats.skipped("no_account"), 1),
        ("unknown_account", router.stats.skipped("unknown_account"), 2),
    ];
    for (reason, count, ours) in counted {
        match backend {
            Backend::InProcess => assert_eq!(count, ours, "{reason}"),
            Backend::RabbitMq => assert!(count >= ours, "{reason}: {count}"),
        }
    }
    router.stop().await;
}

async fn a_router_stopped_mid_stream_loses_no_event(backend: Backend) {
    interrupted_router_scenario(backend, Interruption::Cancel).await;
}

async fn a_router_killed_mid_stream_loses_no_event(backend: Backend) {
    interrupted_router_scenario(backend, Interruption::Abort).await;
}

/// How the first router is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interruption {
    /// Cancelled: it finishes its batch and leaves the rest unacknowledged.
    Cancel,
    /// Its task aborted wherever it is, as a crash would.
    Abort,
}

/// Events are published while no router runs; a first router starts and is interrupted after
/// some batches; a second one (on a new connection) routes the rest. Every event becomes a job:
/// after a clean stop exactly once, after a crash at least once.
async fn interrupted_router_scenario(backend: Backend, interruption: Interruption) {
    let (_database, store, account, _hook) = one_hook_store().await;
    let prefix = unique_prefix("test-router");
    let first_bus = connect(backend, &prefix).await;
    let mut jobs = Jobs::consume(&first_bus).await;
    let count = 1_000;
    publish_calls(backend, &first_bus, &account, "stream", count).await;

    let mut small_batches = settings("cluster");
    small_batches.prefetch = 20;
    let first = RunningRouter::start(&store, &first_bus, small_batches.clone()).await;
    eventually("the first router has routed some events", || async { first.stats.jobs() > 0 }).await;
    let first_stats = Arc::clone(&first.stats);
    match interruption {
        Interruption::Cancel => first.stop().await,
        Interruption::Abort => {
            first.task.abort();
            let _ = first.task.await;
        }
    }
    let routed_by_first = first_stats.jobs();
    assert!(routed_by_first < count as u64, "the first router stopped mid-stream ({routed_by_first} routed)");
    // A new connection, as a restarted node would have; on the in-process bus the same one.
    let second_bus = if backend == Backend::RabbitMq { connect(backend, &prefix).await } else { first_bus.clone() };
    drop(first_bus);
    let second = RunningRouter::start(&store, &second_bus, small_batches).await;
    // After a crash some events may be routed twice: collect until every event has been seen.
    let mut received = Vec::new();
    while call_ids(&received).len() < count {
        received.extend(jobs.next_batch().await.jobs);
    }
    let counts = call_ids(&received);
    assert_eq!(counts.len(), count, "no event lost");
    // An event routed twice is delivered twice with one event id, so receivers can drop the copy.
    let mut event_ids: HashMap<String, HashSet<&str>> = HashMap::new();
    for job in &received {
        let call_id = job.payload.get("call_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        event_ids.entry(call_id).or_default().insert(job.event_id.as_str());
    }
    let reissued: Vec<_> = event_ids.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(reissued.is_empty(), "events routed again kept their event ids: {reissued:?}");
    if interruption == Interruption::Cancel {
        eventually("the second router has settled the rest", || async {
            routed_by_first + second.stats.jobs() == count as u64
        })
        .await;
        assert_eq!(received.len(), count, "a clean stop routes nothing twice");
    }
    second.stop().await;
}

async fn an_events_trace_goes_on_in_its_jobs_and_an_untraced_event_starts_one(backend: Backend) {
    let (_database, store, account, first) = one_hook_store().await;
    let second =
        create_hook(&store, &WebhookId::generate(), &account, &hook_document("channel_create", json!({}))).await;
    let prefix = unique_prefix("test-router");
    let bus = connect(backend, &prefix).await;
    let router = RunningRouter::start(&store, &bus, settings("cluster")).await;
    let mut jobs = Jobs::consume(&bus).await;

    let inbound: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid");
    let cases = [("traced", Some(inbound.to_string())), ("untraced", None), ("garbled", Some("00-zz-01".to_owned()))];
    let messages: Vec<(String, String, Vec<u8>, Option<String>)> = cases
        .iter()
        .map(|(call, trace_parent)| {
            let (routing_key, body) = channel_event(&account, "CHANNEL_CREATE", &format!("{prefix}-{call}"));
            ("callevt".to_owned(), routing_key, body, trace_parent.clone())
        })
        .collect();
    match backend {
        Backend::RabbitMq => publish_traced_with_lapin(&messages).await,
        Backend::InProcess => {
            for (exchange, routing_key, body, trace_parent) in messages {
                let mut message = Outgoing::new(&exchange, &routing_key, body);
                message.headers.extend(trace_parent.map(|value| (TRACE_PARENT_HEADER.to_owned(), value)));
                bus.publish(message).await.expect("publish");
            }
        }
    }

    // Two hooks: two jobs per event, each event's jobs in one trace.
    let mut traces: HashMap<String, HashSet<TraceParent>> = HashMap::new();
    for job in jobs.take(2 * cases.len()).await {
        let call =
            job.payload["call_id"].as_str().expect("a call id").trim_start_matches(&format!("{prefix}-")).to_owned();
        let trace: TraceParent =
            job.trace_parent.as_deref().expect("every job has a trace parent").parse().expect("valid");
        assert!([&first.id, &second.id].contains(&&job.hook_id));
        traces.entry(call).or_default().insert(trace);
    }
    let one_per_event: HashMap<&str, TraceParent> = cases
        .iter()
        .map(|(call, _)| {
            let seen = &traces[*call];
            assert_eq!(seen.len(), 1, "{call}: both jobs carry the same trace parent");
            (*call, *seen.iter().next().expect("one"))
        })
        .collect();
    let traced = one_per_event["traced"];
    assert_eq!((traced.trace_id(), traced.flags()), (inbound.trace_id(), inbound.flags()));
    assert_ne!(traced.parent_id(), inbound.parent_id(), "a child of the publisher's span");
    // Without a valid trace parent an event starts a trace of its own.
    let (untraced, garbled) = (one_per_event["untraced"], one_per_event["garbled"]);
    assert_eq!((untraced.flags(), garbled.flags()), (1, 1));
    let trace_ids = HashSet::from([traced.trace_id(), untraced.trace_id(), garbled.trace_id()]);
    assert_eq!(trace_ids.len(), 3);
    router.stop().await;
}
