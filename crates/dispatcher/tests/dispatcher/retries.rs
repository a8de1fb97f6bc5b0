//! Retries: their back-off and their end, the delay queues a batch's retries wait in, `Retry-After`,
//! a restart in between, and a hook disabled meanwhile.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use webhooks_dispatcher::DispatcherSettings;
use webhooks_dispatcher::delay::DelayQueues;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_test_support::bus::{Backend, PATIENCE, connect, eventually};
use webhooks_test_support::receiver::{Receiver, Reply};
use webhooks_test_support::test_matrix;

use crate::{RunningDispatcher, World, settings};

test_matrix!(
    buses;
    a_failing_endpoint_is_retried_with_backoff_until_it_succeeds,
    retries_stop_when_none_are_left,
    the_retries_of_a_batch_wait_together_in_one_message_per_delay_queue,
);

async fn a_failing_endpoint_is_retried_with_backoff_until_it_succeeds(backend: Backend) {
    let world = World::new(backend).await;
    // Fails twice (a 500, then a 404), then succeeds.
    let receiver = Receiver::start(|_, seen| match seen {
        0 => Reply::Answer(500, vec![("X-Trace".into(), "ABC".into())], "Down".into()),
        1 => Reply::status(404),
        _ => Reply::status(204),
    })
    .await;
    let dispatcher = world.dispatcher(settings()).await;
    let job = world.hook(&receiver.url("/flaky"), HttpVerb::Post, Format::Json, 3).await;
    world.publish(vec![job.clone()]).await;
    let received = receiver.wait_for(3, PATIENCE).await;
    let recorded = world.wait_for_attempts(&job.hook_id, 3).await;
    // Spacing at least the configured delays: 200 ms, then 400 ms.
    assert!(received[1].at - received[0].at >= Duration::from_millis(200), "first retry too early");
    assert!(received[2].at - received[1].at >= Duration::from_millis(400), "second retry too early");
    // The same event id on every attempt.
    let event_ids: HashSet<_> = received.iter().map(|request| request.header("x-event-id")).collect();
    assert_eq!(event_ids, HashSet::from([Some(job.event_id.as_str())]));
    let summary: Vec<_> = recorded
        .iter()
        .map(|attempt| {
            (
                attempt["attempt"].clone(),
                attempt["result"].clone(),
                attempt["retries_left"].clone(),
                attempt.get("resp_status_code").cloned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!(1), json!("failure"), json!(3), Some(json!("500"))),
            (json!(2), json!("failure"), json!(2), Some(json!("404"))),
            (json!(3), json!("success"), json!(0), Some(json!("204"))),
        ]
    );
    assert_eq!(recorded[0]["reason"], "bad response code");
    assert_eq!(recorded[0]["failure_class"], "http_status");
    assert_eq!(recorded[0]["resp_headers"]["x-trace"], "abc");
    assert_eq!(recorded[0]["resp_body"], "Down");
    assert_eq!(recorded[0]["try"], 4);
    assert_eq!(recorded[1]["try"], 3);
    assert_eq!(receiver.requests().len(), 3);
    dispatcher.stop().await;
}

async fn retries_stop_when_none_are_left(backend: Backend) {
    let world = World::new(backend).await;
    let receiver = Receiver::answering(500).await;
    let dispatcher = world.dispatcher(settings()).await;
    let once = world.hook(&receiver.url("/once"), HttpVerb::Post, Format::FormData, 0).await;
    let thrice = world.hook(&receiver.url("/thrice"), HttpVerb::Get, Format::FormData, 2).await;
    world.publish(vec![once.clone(), thrice.clone()]).await;
    let recorded = world.wait_for_attempts(&thrice.hook_id, 3).await;
    let left: Vec<_> = recorded.iter().map(|attempt| attempt["retries_left"].clone()).collect();
    assert_eq!(left, [json!(2), json!(1), json!(0)]);
    assert!(recorded.iter().all(|attempt| attempt["method"] == "get" && attempt["req_body"] == ""));
    let single = world.wait_for_attempts(&once.hook_id, 1).await;
    assert_eq!((single.len(), &single[0]["retries_left"]), (1, &json!(0)), "retries: 0 means one attempt");
    // Everything scheduled has happened: four requests in all, and the queues are empty.
    assert_eq!(receiver.count(), 4);
    if backend == Backend::RabbitMq {
        let depth = world.bus.queue_depth(&world.bus.topology().dispatch_queue()).await.expect("depth");
        assert_eq!(depth, 0);
    }
    dispatcher.stop().await;
}

async fn the_retries_of_a_batch_wait_together_in_one_message_per_delay_queue(backend: Backend) {
    let world = World::new(backend).await;
    let receiver = Receiver::start(|_, seen| if seen == 0 { Reply::status(500) } else { Reply::status(200) }).await;
    // Long enough to look at the delay queue while the retries wait in it.
    let settings = DispatcherSettings { retry_delays: vec![Duration::from_secs(2)], retry_jitter: 0.2, ..settings() };
    let policy = settings.retry_policy().expect("valid retry settings");
    let (delay_queue, _) = DelayQueues::new(world.bus.topology(), &policy).route(Duration::from_secs(2));
    let dispatcher = world.dispatcher(settings).await;
    let mut jobs = Vec::new();
    for path in ["/a", "/b", "/c"] {
        jobs.push(world.hook(&receiver.url(path), HttpVerb::Post, Format::Json, 1).await);
    }
    let failed_at = Instant::now();
    world.publish(jobs.clone()).await;
    for job in &jobs {
        world.wait_for_attempts(&job.hook_id, 1).await;
    }
    eventually("the retries wait in the delay queue", || async {
        world.bus.queue_depth(&delay_queue).await.expect("depth") == 1
    })
    .await;
    // Each is retried once, none before its delay.
    let received = receiver.wait_for(6, PATIENCE).await;
    assert!(received[3..].iter().all(|request| request.at - failed_at >= Duration::from_secs(2)), "a retry came early");
    for job in &jobs {
        let recorded = world.wait_for_attempts(&job.hook_id, 2).await;
        assert_eq!((&recorded[1]["attempt"], &recorded[1]["result"]), (&json!(2), &json!("success")));
    }
    assert_eq!(world.bus.queue_depth(&delay_queue).await.expect("depth"), 0);
    assert_eq!(receiver.count(), 6);
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_retries_survive_a_dispatcher_restart() {
    let world = World::new(Backend::RabbitMq).await;
    let receiver = Receiver::start(|_, seen| if seen == 0 { Reply::status(500) } else { Reply::status(200) }).await;
    // A retry delay long enough to stop the dispatcher while the retry waits in the broker.
    let slow_retry = DispatcherSettings { retry_delays: vec![Duration::from_secs(3)], retry_jitter: 0.0, ..settings() };
    let first = world.dispatcher(slow_retry.clone()).await;
    let job = world.hook(&receiver.url("/restart"), HttpVerb::Post, Format::Json, 1).await;
    world.publish(vec![job.clone()]).await;
    world.wait_for_attempts(&job.hook_id, 1).await;
    first.stop().await;
    let stopped_at = Instant::now();
    // A new dispatcher (a new connection, as after a restart) picks the retry up.
    let bus = connect(Backend::RabbitMq, &world.prefix).await;
    let second = RunningDispatcher::start(&world.store, &bus, slow_retry).await;
    let received = receiver.wait_for(2, PATIENCE).await;
    assert!(received[1].at >= stopped_at, "the retry came after the restart");
    assert!(received[1].at - received[0].at >= Duration::from_secs(3));
    let recorded = world.wait_for_attempts(&job.hook_id, 2).await;
    assert_eq!((&recorded[1]["attempt"], &recorded[1]["result"]), (&json!(2), &json!("success")));
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_on_429_and_503() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::start(|request, seen| match (request.path(), seen) {
        ("/throttled", 0) => Reply::Answer(429, vec![("Retry-After".into(), "1".into())], String::new()),
        ("/unavailable", 0) => {
            let later = SystemTime::now() + Duration::from_secs(2);
            Reply::Answer(503, vec![("Retry-After".into(), httpdate::fmt_http_date(later))], String::new())
        }
        ("/ignored", 0) => Reply::Answer(500, vec![("Retry-After".into(), "30".into())], String::new()),
        _ => Reply::status(200),
    })
    .await;
    let dispatcher = world.dispatcher(settings()).await;
    let throttled = world.hook(&receiver.url("/throttled"), HttpVerb::Post, Format::Json, 1).await;
    let unavailable = world.hook(&receiver.url("/unavailable"), HttpVerb::Post, Format::Json, 1).await;
    let ignored = world.hook(&receiver.url("/ignored"), HttpVerb::Post, Format::Json, 1).await;
    world.publish(vec![throttled, unavailable, ignored]).await;
    let received = receiver.wait_for(6, PATIENCE).await;
    let gap = |path: &str| {
        let times: Vec<_> =
            received.iter().filter(|request| request.path() == path).map(|request| request.at).collect();
        times[1] - times[0]
    };
    assert!(gap("/throttled") >= Duration::from_secs(1), "429: {:?}", gap("/throttled"));
    // An HTTP date has whole seconds: two seconds ahead is at least one second away.
    assert!(gap("/unavailable") >= Duration::from_secs(1), "503: {:?}", gap("/unavailable"));
    assert!(gap("/ignored") < Duration::from_secs(30), "500 ignores Retry-After");
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_hook_disabled_meanwhile_is_dropped() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(500).await;
    let slow_retry = DispatcherSettings { retry_delays: vec![Duration::from_millis(500)], ..settings() };
    let dispatcher = world.dispatcher(slow_retry).await;
    let job = world.hook(&receiver.url("/disabled"), HttpVerb::Post, Format::Json, 2).await;
    world.publish(vec![job.clone()]).await;
    world.wait_for_attempts(&job.hook_id, 1).await;
    assert!(world.store.disable_webhook(&world.account, &job.hook_id, "by hand").await.expect("disable"));
    // A later job of another hook goes through the same delay queue after the dropped retry.
    let witness = world.hook(&receiver.url("/witness"), HttpVerb::Post, Format::Json, 1).await;
    world.publish(vec![witness.clone()]).await;
    world.wait_for_attempts(&witness.hook_id, 2).await;
    assert_eq!(world.attempts(&job.hook_id).await.len(), 1);
    assert_eq!(receiver.requests().iter().filter(|request| request.path() == "/disabled").count(), 1);
    dispatcher.stop().await;
}
