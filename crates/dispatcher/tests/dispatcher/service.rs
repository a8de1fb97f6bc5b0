//! The dispatcher as a service: unreadable batches, a database outage, shutdown, a closed bus, the
//! attempt records it keeps and prunes.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Map, json};
use tokio_util::sync::CancellationToken;
use webhooks_bus::{
    DEAD_LETTER_ERROR_HEADER, DEAD_LETTER_EXCHANGE_HEADER, DEAD_LETTER_REASON_HEADER, DISPATCH_ROUTING_KEY, Outgoing,
};
use webhooks_dispatcher::{DispatcherError, DispatcherSettings};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::time::{gregorian_now, unix_millis};
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_storage::PageRequest;
use webhooks_test_support::bus::{Backend, Observer, PATIENCE, eventually};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::receiver::{Captured, Receiver, Reply};
use webhooks_test_support::test_matrix;

use crate::{World, attempts, random_event_id, settings};

test_matrix!(
    buses;
    an_unreadable_job_batch_is_dead_lettered_with_its_reason_and_the_next_one_delivered,
);

async fn an_unreadable_job_batch_is_dead_lettered_with_its_reason_and_the_next_one_delivered(backend: Backend) {
    let world = World::new(backend).await;
    let receiver = Receiver::answering(200).await;
    let job = world.hook(&receiver.url("/after"), HttpVerb::Post, Format::Json, 0).await;
    let mut dead = Observer::consume(&world.bus, &world.bus.topology().dead_letter_queue()).await;
    let dispatcher = world.dispatcher(settings()).await;
    let jobs_exchange = world.bus.topology().jobs_exchange();
    let garbage = br#"{"jobs": [{"event_id": 7}]}"#.to_vec();
    world
        .bus
        .publish(Outgoing::persistent(&jobs_exchange, DISPATCH_ROUTING_KEY, garbage.clone()))
        .await
        .expect("publish");
    world.publish(vec![job]).await;
    receiver.wait_for(1, PATIENCE).await;
    let letter = dead.next_delivery().await;
    assert_eq!(&letter.body[..], &garbage[..]);
    assert_eq!(letter.routing_key, DISPATCH_ROUTING_KEY);
    assert_eq!(letter.header(DEAD_LETTER_REASON_HEADER), Some("unreadable_job_batch"));
    assert_eq!(letter.header(DEAD_LETTER_EXCHANGE_HEADER), Some(jobs_exchange.as_str()));
    let error = letter.header(DEAD_LETTER_ERROR_HEADER).unwrap_or_default();
    assert!(error.starts_with("invalid type: integer `7`, expected a string"), "{error}");
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_stops_no_delivery_repeats_none_and_loses_no_record() {
    let world = World::new(Backend::RabbitMq).await;
    let healthy = Receiver::answering(200).await;
    let failing = Receiver::answering(500).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAECAwQFBgc=";
    let signed = world.hook(&healthy.url("/signed"), HttpVerb::Post, Format::Json, 0).await;
    assert!(world.store.set_signing_secret(&world.account, &signed.hook_id, Some(secret)).await.expect("set"));
    let broken = world.hook(&failing.url("/broken"), HttpVerb::Post, Format::Json, 0).await;
    // Secrets and limits are read again after 50 ms: through the outage they must be kept, not dropped.
    let settings = DispatcherSettings { cache_ttl: Duration::from_millis(50), ..settings() };
    let dispatcher = world.dispatcher(settings).await;
    let fresh = |job: &DeliveryJob| DeliveryJob { event_id: random_event_id(), ..job.clone() };
    world.publish(vec![fresh(&signed), fresh(&broken)]).await;
    healthy.wait_for(1, PATIENCE).await;
    world.wait_for_attempts(&broken.hook_id, 1).await;

    world._database.set_reachable(false).await;
    let (deliveries, failures) = (40, 3);
    let mut sent = HashSet::new();
    for _ in 0..deliveries / 4 {
        let batch: Vec<DeliveryJob> = (0..4).map(|_| fresh(&signed)).collect();
        sent.extend(batch.iter().map(|job| job.event_id.clone()));
        world.publish(batch).await;
    }
    for _ in 0..failures {
        world.publish(vec![fresh(&broken)]).await;
    }
    let received = healthy.wait_for(1 + deliveries, PATIENCE).await;
    failing.wait_for(1 + failures, PATIENCE).await;
    let during: Vec<&Captured> = received.iter().skip(1).collect();
    let ids: HashSet<String> =
        during.iter().filter_map(|request| request.header("x-event-id")).map(str::to_owned).collect();
    assert_eq!(ids, sent, "every job delivered while the database was down");
    for request in &during {
        assert!(request.header("webhook-signature").is_some(), "still signed with the secret read before");
    }

    world._database.set_reachable(true).await;
    let page = PageRequest { ascending: true, ..PageRequest::default() };
    let recorded = || async {
        let listed = world.store.list_attempts(&world.account, Some(&broken.hook_id), 0, i64::MAX, &page).await;
        // The connections the outage ended fail once more before the pool replaces them.
        listed.map(|found| found.items.len()).unwrap_or(0)
    };
    eventually("the failing callouts are recorded", || async { recorded().await > failures }).await;
    assert_eq!(recorded().await, 1 + failures, "every failing callout recorded once, once the database answers");
    eventually("the failures made during the outage are counted", || async {
        let window = Duration::from_secs(60);
        world.store.failure_count(&broken.hook_id, unix_millis(), window).await.ok() == Some(1 + failures as u64)
    })
    .await;
    // Nothing was called twice: the batches were acknowledged although their records waited.
    assert_eq!(healthy.count(), 1 + deliveries, "no callout repeated");
    assert_eq!(failing.count(), 1 + failures);
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_callouts_finish_and_record() {
    let world = World::new(Backend::InProcess).await;
    let release = CancellationToken::new();
    let gate = release.clone();
    let receiver =
        Receiver::start(move |_, _| if gate.is_cancelled() { Reply::status(500) } else { Reply::Hang }).await;
    let patient = DispatcherSettings { total_timeout: Duration::from_millis(800), ..settings() };
    let dispatcher = world.dispatcher(patient).await;
    let job = world.hook(&receiver.url("/slow"), HttpVerb::Post, Format::Json, 0).await;
    world.publish(vec![job.clone()]).await;
    receiver.wait_for(1, PATIENCE).await;
    // Stopping waits for the callout (which times out) and its record.
    dispatcher.stop().await;
    let recorded = world.attempts(&job.hook_id).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["failure_class"], "timeout");
    release.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_closed_under_the_dispatcher_stops_it_with_an_error() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(200).await;
    let dispatcher = world.dispatcher(settings()).await;
    // Once it has delivered a job it consumes; closing the bus then ends its consumer.
    let job = world.hook(&receiver.url("/closing"), HttpVerb::Post, Format::Json, 0).await;
    world.publish(vec![job.clone()]).await;
    world.wait_for_attempts(&job.hook_id, 1).await;
    world.bus.close().await;
    let stopped = tokio::time::timeout(PATIENCE, dispatcher.task).await.expect("the dispatcher stops in time");
    assert!(matches!(stopped.expect("no panic"), Err(DispatcherError::BusClosed)));
}

#[tokio::test]
async fn attempts_older_than_the_retention_are_pruned() {
    let database = TestDatabase::sqlite().await;
    let store = database.store().await;
    let account = AccountId::generate();
    let hook = WebhookId::generate();
    let now = gregorian_now();
    let record = |created: i64| webhooks_storage::NewAttempt {
        id: uuid::Uuid::new_v4().simple().to_string(),
        account_id: account.clone(),
        hook_id: hook.clone(),
        created,
        doc: Map::new(),
        job: None,
    };
    store.insert_attempts(&[record(now - 31 * 86_400), record(now - 29 * 86_400), record(now)]).await.expect("insert");
    let pruned = webhooks_dispatcher::prune(&store, &DispatcherSettings::default()).await.expect("prune");
    assert_eq!(pruned.attempts, 1);
    assert_eq!(attempts(&store, &account, &hook).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn attempt_records_keep_their_job_privately_and_a_resend_delivers_it_again() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(500).await;
    let dispatcher = world.dispatcher(settings()).await;
    let mut job = world.hook(&receiver.url("/kept"), HttpVerb::Put, Format::Json, 1).await;
    job.custom_request_headers = json!({"X-Custom": "1"}).as_object().cloned().unwrap_or_default();
    world.publish(vec![job.clone()]).await;
    world.wait_for_attempts(&job.hook_id, 2).await;

    // Each record keeps the job of its own attempt; the listing shows none of it.
    let page = PageRequest { ascending: true, ..PageRequest::default() };
    let listed = world.store.list_attempts(&world.account, None, 0, i64::MAX, &page).await.expect("listed").items;
    assert!(listed.iter().all(|attempt| !attempt.doc.contains_key("job")));
    let mut kept = Vec::new();
    for attempt in &listed {
        let found = world.store.attempt_job(&attempt.id).await.expect("read").expect("the attempt exists");
        assert_eq!((&found.account_id, &found.hook_id), (&world.account, &job.hook_id));
        kept.push(found.job.expect("the job is kept"));
    }
    kept.sort_by_key(|kept| kept.attempt);
    assert_eq!(kept, [job.clone(), DeliveryJob { attempt: 1, ..job.clone() }]);

    // A resend of the last attempt is the same event from the first attempt on.
    let last = listed.iter().find(|attempt| attempt.doc["attempt"] == json!(2)).expect("the second attempt");
    let again = world.store.resend_job(&last.id, None, 1).await.expect("resendable");
    assert_eq!((&again.event_id, again.attempt, &again.payload), (&job.event_id, 0, &job.payload));
    world.publish(vec![again]).await;
    let requests = receiver.wait_for(4, PATIENCE).await;
    let events: HashSet<_> = requests.iter().filter_map(|request| request.header("x-event-id")).collect();
    assert_eq!(events, HashSet::from([job.event_id.as_str()]), "receivers can de-duplicate");
    world.wait_for_attempts(&job.hook_id, 4).await;
    dispatcher.stop().await;
}
