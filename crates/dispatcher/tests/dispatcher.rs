//! The dispatcher end to end: jobs published on the bus (in-process and RabbitMQ), callouts to
//! real HTTP receivers on 127.0.0.1, attempts and failure counts in real databases (SQLite and
//! PostgreSQL). Tests poll for conditions; none sleeps to wait for work.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webhooks_bus::{
    Bus, DEAD_LETTER_ERROR_HEADER, DEAD_LETTER_EXCHANGE_HEADER, DEAD_LETTER_REASON_HEADER, DISPATCH_ROUTING_KEY,
    Outgoing,
};
use webhooks_dispatcher::delay::DelayQueues;
use webhooks_dispatcher::{DispatcherError, DispatcherSettings, GONE, TOO_MANY_FAILURES};
use webhooks_model::ids::{AccountId, EventId, WebhookId};
use webhooks_model::job::DeliveryJob;
use webhooks_model::notice::{Action, Change};
use webhooks_model::retry::FailureLimits;
use webhooks_model::time::{gregorian_now, unix_millis, unix_seconds};
use webhooks_model::trace::TraceParent;
use webhooks_model::webhook::{DeliveryTarget, Format, HttpVerb};
use webhooks_storage::{PageRequest, Store};
use webhooks_test_support::bus::{Backend, Observer, PATIENCE, connect, eventually, job_batch, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::fixtures::amqp_event_fixtures;
use webhooks_test_support::logs::{CapturedLogs, signing_secret};
use webhooks_test_support::on_both_buses;
use webhooks_test_support::receiver::{Captured, Receiver, Reply};
use webhooks_test_support::store::{create_account, create_hook};

on_both_buses!(
    in_process, rabbitmq;
    every_fixture_callout_is_sent_byte_for_byte_as_expected,
    a_failing_endpoint_is_retried_with_backoff_until_it_succeeds,
    retries_stop_when_none_are_left,
    the_retries_of_a_batch_wait_together_in_one_message_per_delay_queue,
    a_gone_endpoint_disables_its_hook_at_once_and_is_announced,
    the_failure_threshold_disables_the_hook_and_announces_it_once,
    batches_are_acked_without_waiting_for_a_dead_host_whose_jobs_are_all_attempted,
    waiting_for_a_saturated_host_counts_within_the_timeout_and_not_towards_disabling,
    callouts_carry_the_jobs_trace_with_a_span_of_their_own_unless_the_hook_sets_one,
    an_unreadable_job_batch_is_dead_lettered_with_its_reason_and_the_next_one_delivered,
);

/// A database, a bus and an account with hooks.
struct World {
    /// Kept for its lifetime: dropped, the database goes.
    _database: TestDatabase,
    store: Store,
    bus: Bus,
    prefix: String,
    account: AccountId,
}

impl World {
    /// The in-process bus over SQLite (one process), or RabbitMQ over PostgreSQL (production).
    async fn new(backend: Backend) -> World {
        let database = match backend {
            Backend::InProcess => TestDatabase::sqlite().await,
            Backend::RabbitMq => TestDatabase::postgres().await,
        };
        let store = database.store().await;
        let prefix = unique_prefix("test-dispatcher");
        let bus = connect(backend, &prefix).await;
        let account = AccountId::generate();
        create_account(&store, &account, None, json!({})).await;
        World { _database: database, store, bus, prefix, account }
    }

    /// Stores an enabled hook calling `uri` and returns the job template of its deliveries.
    async fn hook(&self, uri: &str, verb: HttpVerb, format: Format, retries: u8) -> DeliveryJob {
        let id = WebhookId::generate();
        let doc = json!({"name": "test hook", "uri": uri, "hook": "object", "http_verb": verb.as_str(),
                         "format": format.as_str(), "retries": retries});
        create_hook(&self.store, &id, &self.account, &doc).await;
        DeliveryJob {
            event_id: random_event_id(),
            hook_id: id,
            account_id: self.account.clone(),
            hook_event: "object".into(),
            target: DeliveryTarget { uri: uri.into(), http_verb: verb, format, retries, custom_request_headers: None },
            attempt: 0,
            custom_data: None,
            payload: json!({"id": "a1", "action": "doc_created", "type": "user"})
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into(),
            published_at_ms: 0,
            test: false,
            trace_parent: None,
        }
    }

    /// Publishes `jobs` as one batch, as the router does.
    async fn publish(&self, jobs: Vec<DeliveryJob>) {
        publish_batch(&self.bus, jobs).await;
    }

    /// A dispatcher on this world's store and bus.
    async fn dispatcher(&self, settings: DispatcherSettings) -> RunningDispatcher {
        RunningDispatcher::start(&self.store, &self.bus, settings).await
    }

    /// The attempt records of `hook`, oldest first.
    async fn attempts(&self, hook: &WebhookId) -> Vec<Map<String, Value>> {
        attempts(&self.store, &self.account, hook).await
    }

    /// Waits until `hook` has `count` attempt records; returns them oldest first.
    async fn wait_for_attempts(&self, hook: &WebhookId, count: usize) -> Vec<Map<String, Value>> {
        eventually(&format!("{count} attempts are recorded"), || async { self.attempts(hook).await.len() >= count })
            .await;
        self.attempts(hook).await
    }

    /// Whether `hook` is enabled, and its disable reason.
    async fn hook_state(&self, hook: &WebhookId) -> (bool, Option<String>) {
        let found = self.store.webhook(&self.account, hook).await.expect("read the hook").expect("the hook exists");
        (found.enabled, found.disabled_reason)
    }
}

/// Publishes one job batch to the jobs exchange.
async fn publish_batch(bus: &Bus, jobs: Vec<DeliveryJob>) {
    bus.publish(job_batch(bus, jobs)).await.expect("publish the batch");
}

/// The attempt records of `hook` of `account`, oldest first.
async fn attempts(store: &Store, account: &AccountId, hook: &WebhookId) -> Vec<Map<String, Value>> {
    let page = PageRequest { ascending: true, ..PageRequest::default() };
    let mut found = store.list_attempts(account, Some(hook), 0, i64::MAX, &page).await.expect("list attempts").items;
    // Records of one second share `created`; the attempt number orders them.
    found.sort_by_key(|attempt| (attempt.doc.get("attempt").and_then(Value::as_u64), attempt.created));
    found.into_iter().map(|attempt| attempt.doc).collect()
}

/// A Kazoo-like event id: 10 lowercase hex characters.
fn random_event_id() -> EventId {
    uuid::Uuid::new_v4().simple().to_string()[..10].into()
}

/// Settings for tests: callouts to 127.0.0.1 allowed, short retry delays, every attempt logged.
fn settings() -> DispatcherSettings {
    DispatcherSettings {
        allow_private_targets: true,
        log_successful_attempts: true,
        retry_delays: vec![Duration::from_millis(200), Duration::from_millis(400)],
        retry_jitter: 0.1,
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        prefetch: 20,
        drain_timeout: Duration::from_secs(10),
        node: "webhooks-dispatcher@test".into(),
        ..DispatcherSettings::default()
    }
}

/// A running dispatcher.
struct RunningDispatcher {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), DispatcherError>>,
}

impl RunningDispatcher {
    async fn start(store: &Store, bus: &Bus, settings: DispatcherSettings) -> RunningDispatcher {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(webhooks_dispatcher::run(
            store.clone(),
            bus.clone(),
            settings,
            webhooks_dispatcher::DispatcherMetrics::default(),
            shutdown.clone(),
        ));
        RunningDispatcher { shutdown, task }
    }

    /// Stops the dispatcher and waits until it has drained.
    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task).await.expect("the dispatcher stops in time");
        result.expect("the dispatcher does not panic").expect("the dispatcher stops cleanly");
    }
}

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
        job.target.custom_request_headers =
            json!({"X-Tenant": name, "Authorization": "Bearer fixture"}).as_object().cloned().map(Box::new);
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
        match (expected["method"].as_str(), job.target.format) {
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

async fn a_gone_endpoint_disables_its_hook_at_once_and_is_announced(backend: Backend) {
    let world = World::new(backend).await;
    let mut changes = Observer::bind(&world.bus, "configuration", "doc_edited.webhooks.webhook.*").await;
    let mut notifications = Observer::bind(&world.bus, "notifications", "notifications.webhook.disabled").await;
    let receiver = Receiver::answering(410).await;
    let dispatcher = world.dispatcher(settings()).await;
    let job = world.hook(&receiver.url("/gone"), HttpVerb::Put, Format::Json, 4).await;
    world.publish(vec![job.clone()]).await;
    let recorded = world.wait_for_attempts(&job.hook_id, 1).await;
    assert_eq!((&recorded[0]["resp_status_code"], &recorded[0]["retries_left"]), (&json!("410"), &json!(0)));
    assert_eq!(world.hook_state(&job.hook_id).await, (false, Some(GONE.to_owned())));
    let (_, notice) = changes.next_mentioning(job.hook_id.as_str()).await;
    assert_eq!(
        Change::parse(&notice),
        Ok(Change::Webhook { action: Action::Edited, id: job.hook_id.clone(), account_id: world.account.clone() })
    );
    let (routing_key, notification) = notifications.next_mentioning(job.hook_id.as_str()).await;
    assert_eq!(routing_key, "notifications.webhook.disabled");
    assert_eq!(notification["Hook-ID"], job.hook_id.as_str());
    // No retry although four were allowed.
    assert_eq!(receiver.requests().len(), 1);
    dispatcher.stop().await;
}

async fn the_failure_threshold_disables_the_hook_and_announces_it_once(backend: Backend) {
    let world = World::new(backend).await;
    let mut changes = Observer::bind(&world.bus, "configuration", "doc_edited.webhooks.webhook.*").await;
    let mut notifications = Observer::bind(&world.bus, "notifications", "notifications.webhook.disabled").await;
    let receiver = Receiver::answering(503).await;
    let limits = FailureLimits { threshold: 4, window: Duration::from_secs(60) };
    let dispatcher = world.dispatcher(DispatcherSettings { failure_limits: limits, ..settings() }).await;
    let template = world.hook(&receiver.url("/down"), HttpVerb::Post, Format::Json, 0).await;
    // Six events for the hook; the fourth failure disables it.
    let jobs: Vec<_> = (0..6).map(|_| DeliveryJob { event_id: random_event_id(), ..template.clone() }).collect();
    for job in jobs {
        world.publish(vec![job]).await;
    }
    eventually("the hook is disabled", || async { !world.hook_state(&template.hook_id).await.0 }).await;
    assert_eq!(world.hook_state(&template.hook_id).await.1.as_deref(), Some(TOO_MANY_FAILURES));
    let (_, notification) = notifications.next_mentioning(template.hook_id.as_str()).await;
    assert_eq!(
        notification.as_object().map(|fields| fields.keys().cloned().collect::<Vec<_>>()),
        Some(
            ["Account-ID", "Hook-ID", "Event-Category", "Event-Name", "App-Name", "App-Version", "Node", "Msg-ID"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(notification["Account-ID"], world.account.as_str());
    assert_eq!(notification["Hook-ID"], template.hook_id.as_str());
    assert_eq!(notification["Event-Name"], "webhook_disabled");
    assert_eq!(notification["Event-Category"], "notification");
    assert_eq!(notification["Node"], "webhooks-dispatcher@test");
    let (_, notice) = changes.next_mentioning(template.hook_id.as_str()).await;
    assert_eq!(notice["ID"], template.hook_id.as_str());
    // Disabled once, announced once, and later jobs of the hook are dropped.
    assert!(notifications.quiet_about(template.hook_id.as_str(), Duration::from_millis(300)).await);
    let recorded = world.attempts(&template.hook_id).await;
    assert!(recorded.len() >= 4 && recorded.len() <= 6, "{} attempts", recorded.len());
    assert!(receiver.requests().len() <= 6);
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_hooks_carry_signatures_the_reference_library_accepts() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(200).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAECAwQFBgc=";
    let mut signed = Vec::new();
    for (verb, format) in
        [(HttpVerb::Post, Format::Json), (HttpVerb::Put, Format::FormData), (HttpVerb::Get, Format::Json)]
    {
        let job = world.hook(&receiver.url(&format!("/signed/{verb}")), verb, format, 0).await;
        assert!(world.store.set_signing_secret(&world.account, &job.hook_id, Some(secret)).await.expect("set"));
        signed.push(job);
    }
    let unsigned = world.hook(&receiver.url("/unsigned"), HttpVerb::Post, Format::Json, 0).await;
    let dispatcher = world.dispatcher(settings()).await;
    let mut jobs = signed.clone();
    jobs.push(unsigned);
    world.publish(jobs).await;
    let received = receiver.wait_for(4, PATIENCE).await;
    for job in &signed {
        let request = received.iter().find(|request| request.header("x-hook-id") == Some(job.hook_id.as_str()));
        let request = request.expect("the signed request");
        assert_eq!(request.header("webhook-id"), Some(job.event_id.as_str()));
        let timestamp: i64 = request.header("webhook-timestamp").expect("timestamp").parse().expect("seconds");
        assert!((unix_seconds() - timestamp).abs() < 60);
        verify_with_reference_library(secret, request);
    }
    let plain = received.iter().find(|request| request.path() == "/unsigned").expect("the unsigned request");
    assert!(plain.headers.iter().all(|(name, _)| !name.starts_with("webhook-")));
    dispatcher.stop().await;
}

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

/// A signed delivery logs neither the signing secret nor its key, at any level of any crate
/// (`trace` included), and its attempt record holds neither. The runtime has a single thread, so
/// the subscriber set for that thread hears the dispatcher, the bus, the store and the receiver.
#[tokio::test]
async fn a_signed_delivery_logs_no_secret_at_any_level() {
    let logs = CapturedLogs::default();
    let _logged = tracing::subscriber::set_default(logs.subscriber());
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(200).await;
    let (secret, forms) = signing_secret(b"the dispatcher's leak test key");
    let job = world.hook(&receiver.url("/signed"), HttpVerb::Post, Format::Json, 0).await;
    assert!(world.store.set_signing_secret(&world.account, &job.hook_id, Some(&secret)).await.expect("set"));
    let dispatcher = world.dispatcher(settings()).await;
    world.publish(vec![job.clone()]).await;
    let received = receiver.wait_for(1, PATIENCE).await;
    assert!(received[0].header("webhook-signature").is_some_and(|signature| signature.starts_with("v1,")));
    let records = Value::from(world.wait_for_attempts(&job.hook_id, 1).await).to_string();
    dispatcher.stop().await;

    let text = logs.text();
    // The search finds what is there: the delivery is logged, down to the HTTP client's traces.
    assert!(text.contains(job.hook_id.as_str()) && text.contains(r#""level":"TRACE""#), "logs are captured");
    for form in &forms {
        assert!(!text.contains(form.as_str()), "the secret is logged as {form}");
        assert!(!records.contains(form.as_str()), "the secret is recorded as {form}: {records}");
    }
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
        sent.extend(batch.iter().map(|job| job.event_id.to_string()));
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

/// Verifies `request`'s signature with the PyPI `standardwebhooks` package (installed on demand).
fn verify_with_reference_library(secret: &str, request: &Captured) {
    const SCRIPT: &str = r#"
import json, sys
from standardwebhooks import Webhook
case = json.load(sys.stdin)
Webhook(case["secret"]).verify(case["body"], case["headers"], json_parse=False)
print("verified")
"#;
    let has_library = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|status| status.success());
    if !has_library {
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "standardwebhooks"])
            .status()
            .expect("python3 runs");
        assert!(installed.success(), "pip install standardwebhooks failed");
    }
    let headers: Map<String, Value> =
        request.headers.iter().map(|(name, value)| (name.clone(), Value::from(value.as_str()))).collect();
    let case = json!({"secret": secret, "headers": headers, "body": String::from_utf8_lossy(&request.body)});
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(case.to_string().as_bytes()).expect("write the case");
    }
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(
        output.status.success() && output.stdout.starts_with(b"verified"),
        "standardwebhooks refused {} {}: {}",
        request.method,
        request.target,
        String::from_utf8_lossy(&output.stderr)
    );
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
async fn two_dispatchers_share_one_failure_count() {
    // Two dispatchers, each with its own connection, queue and database pool, on one database:
    // each sees only half of the failures, so only a shared count reaches the threshold.
    let world = World::new(Backend::RabbitMq).await;
    let mut notifications = Observer::bind(&world.bus, "notifications", "notifications.webhook.disabled").await;
    let other_prefix = format!("{}-b", world.prefix);
    let other_bus = connect(Backend::RabbitMq, &other_prefix).await;
    let receiver = Receiver::answering(500).await;
    let limits = FailureLimits { threshold: 4, window: Duration::from_secs(60) };
    let shared = DispatcherSettings { failure_limits: limits, ..settings() };
    let first = world.dispatcher(shared.clone()).await;
    let second = RunningDispatcher::start(&world.store, &other_bus, shared).await;
    let template = world.hook(&receiver.url("/shared"), HttpVerb::Post, Format::Json, 0).await;
    for round in 0..2 {
        for bus in [&world.bus, &other_bus] {
            let job = DeliveryJob { event_id: random_event_id(), ..template.clone() };
            publish_batch(bus, vec![job]).await;
        }
        world.wait_for_attempts(&template.hook_id, 2 * (round + 1)).await;
    }
    eventually("the hook is disabled", || async { !world.hook_state(&template.hook_id).await.0 }).await;
    assert_eq!(receiver.requests().len(), 4);
    let (_, notification) = notifications.next_mentioning(template.hook_id.as_str()).await;
    assert_eq!(notification["Hook-ID"], template.hook_id.as_str());
    assert!(notifications.quiet_about(template.hook_id.as_str(), Duration::from_millis(300)).await, "announced once");
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_clears_the_failure_count() {
    let world = World::new(Backend::InProcess).await;
    // Fails, fails, succeeds, fails, fails: never three failures in a row.
    let receiver = Receiver::start(|_, seen| if seen == 2 { Reply::status(200) } else { Reply::status(500) }).await;
    let limits = FailureLimits { threshold: 3, window: Duration::from_secs(60) };
    let dispatcher = world.dispatcher(DispatcherSettings { failure_limits: limits, ..settings() }).await;
    let template = world.hook(&receiver.url("/mixed"), HttpVerb::Post, Format::Json, 0).await;
    for sent in 1..=5 {
        world.publish(vec![DeliveryJob { event_id: random_event_id(), ..template.clone() }]).await;
        world.wait_for_attempts(&template.hook_id, sent).await;
    }
    assert!(world.hook_state(&template.hook_id).await.0, "still enabled");
    let count = world.store.failure_count(&template.hook_id, unix_millis(), limits.window).await.expect("count");
    assert_eq!(count, 2);
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_own_failure_limits_override_the_system_ones() {
    let world = World::new(Backend::InProcess).await;
    let account = world.store.account(&world.account).await.expect("read").expect("the account");
    let doc = json!({"webhooks": {"attempt_failure_count": 2, "attempt_failure_expiry_ms": 60_000}});
    world
        .store
        .update_account(&world.account, &account.name, doc.as_object().expect("an object"))
        .await
        .expect("update the account");
    // The system threshold (6) is never reached: the account's 2 applies.
    two_failures_disable_a_hook(&world).await;
}

/// With limits of two failures in force, a hook failing twice is disabled.
async fn two_failures_disable_a_hook(world: &World) {
    let receiver = Receiver::answering(500).await;
    let dispatcher = world.dispatcher(settings()).await;
    let template = world.hook(&receiver.url("/strict"), HttpVerb::Post, Format::Json, 0).await;
    for sent in 1..=2 {
        world.publish(vec![DeliveryJob { event_id: random_event_id(), ..template.clone() }]).await;
        world.wait_for_attempts(&template.hook_id, sent).await;
    }
    eventually("the hook is disabled", || async { !world.hook_state(&template.hook_id).await.0 }).await;
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_system_failure_limits_override_the_configured_ones() {
    let world = World::new(Backend::InProcess).await;
    let stored = FailureLimits { threshold: 2, window: Duration::from_secs(60) };
    world.store.set_system_failure_limits(stored).await.expect("stored");
    // The configured threshold (6) is never reached: the stored 2 applies.
    two_failures_disable_a_hook(&world).await;
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
        assert_eq!(recorded[0]["failure_class"], "blocked_target", "{}", job.target.uri);
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
async fn failure_counts_are_windowed_shared_and_cleared_on_both_databases() {
    for database in [TestDatabase::sqlite().await, TestDatabase::postgres().await] {
        let store = database.store().await;
        let account = AccountId::generate();
        let hook = WebhookId::generate();
        let other = WebhookId::generate();
        let window = Duration::from_secs(60);
        let mut counts = Vec::new();
        for at in [1_000, 2_000, 3_000] {
            counts.push(store.record_failure(&account, &hook, at, window).await.expect("count"));
        }
        assert_eq!(counts, [1, 2, 3]);
        assert_eq!(store.record_failure(&account, &other, 3_000, window).await.expect("count"), 1);
        // Past the window opened by the first failure, counting starts over.
        assert_eq!(store.record_failure(&account, &hook, 61_001, window).await.expect("count"), 1);
        assert_eq!(store.failure_count(&hook, 61_002, window).await.expect("count"), 1);
        assert_eq!(store.failure_count(&hook, 200_000, window).await.expect("count"), 0);
        // Concurrent failures are all counted.
        let concurrent = (0..20).map(|_| {
            let (store, account, hook) = (store.clone(), account.clone(), hook.clone());
            tokio::spawn(async move { store.record_failure(&account, &hook, 62_000, window).await.expect("count") })
        });
        let mut seen = futures_util::future::join_all(concurrent)
            .await
            .into_iter()
            .map(|result| result.expect("task"))
            .collect::<Vec<_>>();
        seen.sort_unstable();
        assert_eq!(seen, (2..=21).collect::<Vec<u64>>());
        store.clear_failures(&hook).await.expect("clear");
        assert_eq!(store.failure_count(&hook, 62_000, window).await.expect("count"), 0);
        assert_eq!(store.failure_count(&other, 3_000, window).await.expect("count"), 1);
        // Several failures counted at once add up, and open a window with their count.
        assert_eq!(store.record_failures(&account, &other, 4, 3_500, window).await.expect("count"), 5);
        assert_eq!(store.record_failures(&account, &hook, 3, 63_000, window).await.expect("count"), 3);
        store.clear_failures(&hook).await.expect("clear");
        store.clear_failures_of(std::slice::from_ref(&other)).await.expect("clear");
        assert_eq!(store.failure_count(&other, 3_500, window).await.expect("count"), 0);
        store.record_failure(&account, &other, 5_000, window).await.expect("count");
        assert_eq!(store.prune_failures(6_000).await.expect("prune"), 1);
    }
}

#[tokio::test]
async fn signing_secrets_belong_to_their_hook_on_both_databases() {
    for database in [TestDatabase::sqlite().await, TestDatabase::postgres().await] {
        let store = database.store().await;
        let owner = AccountId::generate();
        let stranger = AccountId::generate();
        for id in [&owner, &stranger] {
            create_account(&store, id, None, json!({})).await;
        }
        let hook = WebhookId::generate();
        create_hook(&store, &hook, &owner, &json!({"name": "n", "uri": "https://example.com", "hook": "object"})).await;
        assert_eq!(store.signing_secret(&hook).await.expect("read"), None);
        assert!(!store.set_signing_secret(&stranger, &hook, Some("whsec_x")).await.expect("set"), "not the owner");
        assert!(!store.set_signing_secret(&owner, &WebhookId::generate(), Some("whsec_x")).await.expect("set"));
        assert!(store.set_signing_secret(&owner, &hook, Some("whsec_first")).await.expect("set"));
        assert!(store.set_signing_secret(&owner, &hook, Some("whsec_second")).await.expect("set"));
        assert_eq!(store.signing_secret(&hook).await.expect("read").as_deref(), Some("whsec_second"));
        let signed = |store: Store, owner: AccountId, hook: WebhookId| async move {
            store.webhook(&owner, &hook).await.expect("read").expect("exists").signed
        };
        assert!(signed(store.clone(), owner.clone(), hook.clone()).await, "the hook shows that it is signed");
        assert!(store.set_signing_secret(&owner, &hook, None).await.expect("unset"));
        assert_eq!(store.signing_secret(&hook).await.expect("read"), None);
        assert!(!signed(store.clone(), owner.clone(), hook.clone()).await);
        // A secret goes with its hook.
        store.set_signing_secret(&owner, &hook, Some("whsec_third")).await.expect("set");
        store.delete_webhook(&owner, &hook).await.expect("delete");
        assert_eq!(store.signing_secret(&hook).await.expect("read"), None);
    }
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
    let mut dead_events = HashSet::from([dead.event_id.to_string()]);
    let started = Instant::now();
    world.publish(vec![dead.clone()]).await;
    hanging.wait_for(1, PATIENCE).await;
    // Not waiting for work: the callout in flight makes its host slow once it is this old.
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..10 {
        let dead_job = fresh(&dead);
        dead_events.insert(dead_job.event_id.to_string());
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

#[tokio::test(flavor = "multi_thread")]
async fn attempt_records_keep_their_job_privately_and_a_resend_delivers_it_again() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(500).await;
    let dispatcher = world.dispatcher(settings()).await;
    let mut job = world.hook(&receiver.url("/kept"), HttpVerb::Put, Format::Json, 1).await;
    job.target.custom_request_headers = json!({"X-Custom": "1"}).as_object().cloned().map(Box::new);
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
    traced.trace_parent = Some(inbound);
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let mut hook_set = world.hook(&receiver.url("/hook-set"), HttpVerb::Post, Format::Json, 0).await;
    hook_set.trace_parent = Some(inbound);
    hook_set.target.custom_request_headers = json!({"traceparent": own}).as_object().cloned().map(Box::new);
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
