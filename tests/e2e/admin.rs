//! The operator commands (`webhooks hooks|failures|limits|attempts|import ...`) run as an operator runs
//! them, against data arranged in PostgreSQL, with the store's state (and what they publish on
//! RabbitMQ) checked afterwards.

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_bus::DISPATCH_ROUTING_KEY;
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_model::job::{DeliveryJob, JobBatch};
use webhooks_model::notice::{CONFIGURATION_EXCHANGE, Change, REENABLE_ROUTING_KEY};
use webhooks_model::retry::FailureLimits;
use webhooks_model::time::{gregorian_from_unix, gregorian_now, iso8601_from_unix, unix_millis, unix_seconds};
use webhooks_model::webhook::{DeliveryTarget, Format, HttpVerb};
use webhooks_storage::{NewAttempt, PageRequest, Store};
use webhooks_test_support::bus::{Backend, Observer, connect};
use webhooks_test_support::couch::CouchStandIn;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::{create_account, create_hook, object};

use crate::process::{rabbitmq, run_capturing};

/// A window long enough that failures recorded by a test stay in it.
const MINUTE: Duration = Duration::from_secs(60);

/// Runs `webhooks <args>` on `database`; its standard output, after checking it exited 0.
async fn run_ok(database: &TestDatabase, args: &[&str], extra_env: &[(&str, String)]) -> String {
    let mut env = vec![("WEBHOOKS_DATABASE_URL", database.url().to_owned())];
    env.extend_from_slice(extra_env);
    let (status, stdout, stderr) = run_capturing(args, &env).await;
    assert!(status.success(), "`webhooks {}` failed ({status}): {stderr}", args.join(" "));
    stdout
}

/// The cells of each line of a table, header first (no cell in these tests holds a space).
fn cells(stdout: &str) -> Vec<Vec<String>> {
    stdout.lines().map(|line| line.split_whitespace().map(str::to_owned).collect()).collect()
}

/// A hook of `owner` named `name`, enabled or not.
async fn hook(store: &Store, owner: &AccountId, name: &str, enabled: bool) -> WebhookId {
    let id = WebhookId::generate();
    let document = json!({"name": name, "uri": format!("https://hooks.example.com/{name}"),
                          "hook": "channel_create", "enabled": enabled});
    create_hook(store, &id, owner, &document).await;
    id
}

async fn fail(store: &Store, owner: &AccountId, hook: &WebhookId, times: usize) {
    for _ in 0..times {
        store.record_failures(owner, hook, 1, unix_millis(), MINUTE).await.expect("failure counted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_list_shows_every_hook_with_its_state_and_current_failures() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let parent = create_account(&store, &AccountId::generate(), None, json!({})).await;
    let child = create_account(&store, &AccountId::generate(), Some(&parent), json!({})).await;
    let working = hook(&store, &parent.id, "working", true).await;
    let failing = hook(&store, &child.id, "failing", true).await;
    let disabled = hook(&store, &child.id, "disabled", true).await;
    fail(&store, &child.id, &failing, 2).await;
    assert!(store.disable_webhook(&child.id, &disabled, "gone").await.expect("disabled"));

    let header = ["ACCOUNT", "ID", "NAME", "HOOK", "URI", "ENABLED", "DISABLED", "REASON", "FAILURES"];
    let row = |account: &AccountId, id: &WebhookId, name: &str, enabled: &str, reason: &str, failures: &str| {
        let uri = format!("https://hooks.example.com/{name}");
        [account.as_str(), id.as_str(), name, "channel_create", &uri, enabled, reason, failures].map(str::to_owned)
    };
    let mut expected = [
        row(&parent.id, &working, "working", "true", "-", "0"),
        row(&child.id, &failing, "failing", "true", "-", "2"),
        row(&child.id, &disabled, "disabled", "false", "gone", "0"),
    ];
    expected.sort();
    let listed = cells(&run_ok(&database, &["hooks", "list"], &[]).await);
    assert_eq!(listed[0], header);
    assert_eq!(listed[1..], expected.map(|row| row.to_vec()));

    let of_parent = cells(&run_ok(&database, &["hooks", "list", "--account", parent.id.as_str()], &[]).await);
    assert_eq!(of_parent[1..], [row(&parent.id, &working, "working", "true", "-", "0").to_vec()]);

    let empty = create_account(&store, &AccountId::generate(), None, json!({})).await;
    assert_eq!(run_ok(&database, &["hooks", "list", "--account", empty.id.as_str()], &[]).await, "no webhooks\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_list_and_flush_by_hook_account_and_all() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let first = create_account(&store, &AccountId::generate(), None, json!({})).await;
    let second = create_account(&store, &AccountId::generate(), None, json!({})).await;
    let (a, b) = (hook(&store, &first.id, "a", true).await, hook(&store, &first.id, "b", true).await);
    let c = hook(&store, &second.id, "c", true).await;
    fail(&store, &first.id, &a, 3).await;
    fail(&store, &first.id, &b, 1).await;
    fail(&store, &second.id, &c, 2).await;

    let listed = cells(&run_ok(&database, &["failures", "list", "--account", first.id.as_str()], &[]).await);
    assert_eq!(listed[0], ["HOOK", "ACCOUNT", "FAILURES", "WINDOW", "START", "LAST", "FAILURE"]);
    let mut expected = vec![(a.to_string(), "3"), (b.to_string(), "1")];
    expected.sort();
    let rows: Vec<(String, &str)> = listed[1..].iter().map(|row| (row[0].clone(), row[2].as_str())).collect();
    assert_eq!(rows, expected);
    assert!(listed[1..].iter().all(|row| row[1] == first.id.as_str() && row[3].ends_with('Z') && row.len() == 5));
    assert_eq!(cells(&run_ok(&database, &["failures", "list"], &[]).await).len(), 4);

    let by_hook = run_ok(&database, &["failures", "flush", "--hook", a.as_str()], &[]).await;
    assert_eq!(by_hook, format!("cleared the failure count of hook {a}\n"));
    assert_eq!(store.failure_count(&a, unix_millis(), MINUTE).await.expect("count"), 0);
    assert_eq!(store.failure_count(&b, unix_millis(), MINUTE).await.expect("count"), 1);

    let by_account = run_ok(&database, &["failures", "flush", "--account", first.id.as_str()], &[]).await;
    assert_eq!(by_account, format!("cleared the failure counts of 1 hook(s) of account {}\n", first.id));
    assert_eq!(store.failure_counts(None).await.expect("counts").len(), 1, "the other account's count stays");

    assert_eq!(
        run_ok(&database, &["failures", "flush", "--all"], &[]).await,
        "cleared the failure counts of 1 hook(s)\n"
    );
    assert!(store.failure_counts(None).await.expect("counts").is_empty());
    assert_eq!(run_ok(&database, &["failures", "list"], &[]).await, "no failure counts\n");

    // Flushing needs a scope, and an account that exists.
    let env = [("WEBHOOKS_DATABASE_URL", database.url().to_owned())];
    let (status, _, _) = run_capturing(&["failures", "flush"], &env).await;
    assert_eq!(status.code(), Some(2), "clap refuses a flush without a scope");
    let unknown = AccountId::generate();
    let (status, stdout, stderr) = run_capturing(&["failures", "flush", "--account", unknown.as_str()], &env).await;
    assert_eq!((status.code(), stdout.as_str()), (Some(1), ""));
    assert_eq!(stderr, format!("webhooks: account {unknown} does not exist\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reenable_turns_on_only_auto_disabled_hooks_and_announces_it_once() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let parent = create_account(&store, &AccountId::generate(), None, json!({})).await;
    let child = create_account(&store, &AccountId::generate(), Some(&parent), json!({})).await;
    let auto = hook(&store, &parent.id, "auto", true).await;
    let by_hand = hook(&store, &parent.id, "by_hand", false).await;
    let auto_child = hook(&store, &child.id, "auto_child", true).await;
    for (owner, id) in [(&parent.id, &auto), (&child.id, &auto_child)] {
        assert!(store.disable_webhook(owner, id, "too many failures").await.expect("disabled"));
    }
    fail(&store, &parent.id, &auto, 2).await;

    let prefix = format!("e2e-admin-{}", random_id());
    let bus = connect(Backend::RabbitMq, &prefix).await;
    let mut notices = Observer::bind(&bus, CONFIGURATION_EXCHANGE, REENABLE_ROUTING_KEY).await;
    let args = ["hooks", "reenable", parent.id.as_str(), "--descendants"];
    let stdout = run_ok(&database, &args, &rabbitmq(&prefix)).await;
    assert_eq!(
        stdout,
        format!(
            "re-enabled 2 auto-disabled hook(s) of account {} and its descendants; their failure counts are cleared\n\
             change notice published: routers apply the change now\n",
            parent.id
        )
    );
    for (owner, id, enabled) in
        [(&parent.id, &auto, true), (&parent.id, &by_hand, false), (&child.id, &auto_child, true)]
    {
        let stored = store.webhook(owner, id).await.expect("read").expect("present");
        assert_eq!((stored.enabled, stored.disabled_reason.is_none()), (enabled, true), "{id}");
    }
    assert!(store.failure_counts(None).await.expect("counts").is_empty(), "re-enabled hooks start from zero");
    let (routing_key, body) = notices.next_json::<Value>().await;
    assert_eq!(routing_key, REENABLE_ROUTING_KEY);
    assert_eq!(
        Change::parse(&body).expect("a change notice"),
        Change::Reenabled { account_id: parent.id.clone(), descendants: true }
    );
    assert!(notices.quiet_for(Duration::from_millis(500)).await, "one notice only");

    // Without a broker the change waits for the routers' periodic reload, and the output says so.
    let stdout = run_ok(&database, &["hooks", "reenable", child.id.as_str()], &[]).await;
    assert_eq!(
        stdout,
        format!(
            "re-enabled 0 auto-disabled hook(s) of account {}; their failure counts are cleared\n\
             WEBHOOKS_AMQP_URL is not set: no change notice published; routers pick the change up at their next \
             reload (every 300 s)\n",
            child.id
        )
    );
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_set_at_system_and_account_level_are_shown_and_read_as_the_dispatcher_reads_them() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let account =
        create_account(&store, &AccountId::generate(), None, json!({"realm": "r.example", "webhooks": {"keep": 1}}))
            .await;
    let header = ["LEVEL", "ACCOUNT", "THRESHOLD", "WINDOW", "SECONDS", "SOURCE"].map(str::to_owned).to_vec();
    let row = |cells: [&str; 5]| cells.map(str::to_owned).to_vec();

    let shown = cells(&run_ok(&database, &["limits", "show"], &[]).await);
    assert_eq!(shown, [header.clone(), row(["system", "-", "6", "60", "configuration"])]);

    let set = run_ok(&database, &["limits", "set", "--threshold", "3", "--window-seconds", "10"], &[]).await;
    assert_eq!(set, "system failure limits set: 3 failure(s) within 10 s; accounts with their own limits keep them\n");
    let configured = FailureLimits::default();
    assert_eq!(
        store.system_failure_limits(configured).await.expect("read"),
        Some(FailureLimits { threshold: 3, window: Duration::from_secs(10) })
    );
    let shown = cells(&run_ok(&database, &["limits", "show", "--account", account.id.as_str()], &[]).await);
    assert_eq!(
        shown,
        [
            header.clone(),
            row(["system", "-", "3", "10", "database"]),
            row(["account", account.id.as_str(), "3", "10", "system"])
        ]
    );

    let args = ["limits", "set", "--threshold", "2", "--window-seconds", "5", "--account", account.id.as_str()];
    let set = run_ok(&database, &args, &[]).await;
    assert_eq!(
        set,
        format!(
            "failure limits of account {} set: 2 failure(s) within 5 s; dispatchers apply them within 30 s (their \
             account cache)\n",
            account.id
        )
    );
    let stored = store.account(&account.id).await.expect("read").expect("present");
    assert_eq!(
        Value::Object(stored.doc.clone()),
        json!({"realm": "r.example",
               "webhooks": {"keep": 1, "attempt_failure_count": 2, "attempt_failure_expiry_ms": 5000}})
    );
    // The dispatcher's reader of account limits sees them.
    assert_eq!(
        FailureLimits::for_account(&stored.doc, configured),
        FailureLimits { threshold: 2, window: Duration::from_secs(5) }
    );
    let shown = cells(&run_ok(&database, &["limits", "show", "--account", account.id.as_str()], &[]).await);
    assert_eq!(shown[2], row(["account", account.id.as_str(), "2", "5", "account"]));

    let env = [("WEBHOOKS_DATABASE_URL", database.url().to_owned())];
    let (status, _, _) = run_capturing(&["limits", "set", "--threshold", "0", "--window-seconds", "5"], &env).await;
    assert_eq!(status.code(), Some(2), "a zero threshold is refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_prune_deletes_only_the_old_records_and_counts_them() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let account = create_account(&store, &AccountId::generate(), None, json!({})).await;
    let id = hook(&store, &account.id, "pruned", true).await;
    let now = unix_seconds();
    let attempt = |days_ago: i64| NewAttempt {
        id: random_id(),
        account_id: account.id.clone(),
        hook_id: id.clone(),
        created: gregorian_from_unix(now - days_ago * 86_400),
        doc: object(json!({"result": "failure"})),
        job: None,
    };
    store.insert_attempts(&[attempt(10), attempt(8), attempt(1)]).await.expect("attempts stored");

    let pruned = run_ok(&database, &["attempts", "prune", "--older-than-days", "7"], &[]).await;
    assert_eq!(pruned, "pruned 2 attempt(s) older than 7 day(s)\n");
    let left =
        store.list_attempts(&account.id, None, 0, i64::MAX, &PageRequest::default()).await.expect("listed").items;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].created, gregorian_from_unix(now - 86_400));
    assert_eq!(
        run_ok(&database, &["attempts", "prune", "--older-than-days", "7"], &[]).await,
        "pruned 0 attempt(s) older than 7 day(s)\n"
    );
}

/// A stored attempt of `event` made `ago` seconds ago with `result`, keeping the job it made
/// (sent to the hook's old endpoint) unless `kept` is false.
fn attempt_of(owner: &AccountId, hook: &WebhookId, event: &str, ago: i64, result: &str, kept: bool) -> NewAttempt {
    let job = DeliveryJob {
        event_id: event.into(),
        hook_id: hook.clone(),
        account_id: owner.clone(),
        hook_event: "CHANNEL_CREATE".into(),
        target: DeliveryTarget {
            uri: "https://old.example.com/in".into(),
            http_verb: HttpVerb::Post,
            format: Format::FormData,
            retries: 2,
            custom_request_headers: Some(Box::new(serde_json::Map::new())),
        },
        attempt: 2,
        custom_data: None,
        payload: object(json!({"call_id": event})).into(),
        published_at_ms: 1,
        test: false,
        trace_parent: None,
    };
    NewAttempt {
        id: random_id(),
        account_id: owner.clone(),
        hook_id: hook.clone(),
        created: gregorian_now() - ago,
        doc: object(json!({"event_id": event, "result": result})),
        job: kept.then_some(job),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_resend_publishes_the_kept_job_to_the_hook_as_configured_now() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let account = create_account(&store, &AccountId::generate(), None, json!({})).await;
    let id = hook(&store, &account.id, "resent", true).await;
    let (kept, unkept) = (
        attempt_of(&account.id, &id, "e1", 10, "failure", true),
        attempt_of(&account.id, &id, "e0", 10, "failure", false),
    );
    store.insert_attempts(&[kept.clone(), unkept.clone()]).await.expect("attempts stored");

    let prefix = format!("e2e-admin-{}", random_id());
    let bus = connect(Backend::RabbitMq, &prefix).await;
    let mut jobs = Observer::bind(&bus, &bus.topology().jobs_exchange(), DISPATCH_ROUTING_KEY).await;
    let stdout = run_ok(&database, &["attempts", "resend", &kept.id], &rabbitmq(&prefix)).await;
    assert_eq!(stdout, format!("resent attempt {}: event e1 to hook {id}\n", kept.id));
    let (_, batch) = jobs.next_json::<JobBatch>().await;
    assert_eq!(batch.jobs.len(), 1);
    let job = &batch.jobs[0];
    assert_eq!(
        (job.event_id.as_str(), job.attempt, job.target.uri.as_str()),
        ("e1", 0, "https://hooks.example.com/resent")
    );
    assert_eq!(Value::Object(job.payload.as_ref().clone()), json!({"call_id": "e1"}));

    let mut env = vec![("WEBHOOKS_DATABASE_URL", database.url().to_owned())];
    env.extend(rabbitmq(&prefix));
    let (status, _, stderr) = run_capturing(&["attempts", "resend", &unkept.id], &env).await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        stderr,
        format!(
            "webhooks: attempt {} cannot be resent: the attempt was recorded before deliveries were kept; it cannot \
             be resent\n",
            unkept.id
        )
    );
    let (status, _, stderr) = run_capturing(&["attempts", "resend", "nope"], &env).await;
    assert_eq!(
        (status.code(), stderr.as_str()),
        (Some(1), "webhooks: attempt nope cannot be resent: no such attempt\n")
    );
    assert!(jobs.quiet_for(Duration::from_millis(500)).await, "refused resends publish nothing");
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_replay_counts_then_publishes_the_failed_deliveries_since_the_given_time() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let account = create_account(&store, &AccountId::generate(), None, json!({})).await;
    let id = hook(&store, &account.id, "replayed", true).await;
    let records = [
        attempt_of(&account.id, &id, "too_old", 7200, "failure", true),
        attempt_of(&account.id, &id, "delivered", 600, "failure", true),
        attempt_of(&account.id, &id, "delivered", 500, "success", true),
    ];
    let failed: Vec<NewAttempt> =
        (0..120).map(|n| attempt_of(&account.id, &id, &format!("f{n:03}"), 400 - n, "failure", true)).collect();
    store.insert_attempts(&records).await.expect("attempts stored");
    store.insert_attempts(&failed).await.expect("attempts stored");
    let since = iso8601_from_unix(unix_seconds() - 3600);

    let dry = run_ok(&database, &["hooks", "replay", id.as_str(), "--since", &since, "--dry-run"], &[]).await;
    assert_eq!(dry, format!("would replay 120 failed delivery(ies) of hook {id} since {since}\n"));

    let prefix = format!("e2e-admin-{}", random_id());
    let bus = connect(Backend::RabbitMq, &prefix).await;
    let mut jobs = Observer::bind(&bus, &bus.topology().jobs_exchange(), DISPATCH_ROUTING_KEY).await;
    let stdout = run_ok(&database, &["hooks", "replay", id.as_str(), "--since", &since], &rabbitmq(&prefix)).await;
    assert_eq!(stdout, format!("replayed 120 failed delivery(ies) of hook {id} since {since}\n"));
    let mut events = Vec::new();
    while events.len() < 120 {
        let (_, batch) = jobs.next_json::<JobBatch>().await;
        events.extend(batch.jobs.into_iter().map(|job| (job.event_id.to_string(), job.attempt)));
    }
    assert_eq!(events, (0..120).map(|n| (format!("f{n:03}"), 0)).collect::<Vec<_>>(), "oldest first, each once");
    assert!(jobs.quiet_for(Duration::from_millis(500)).await);

    let env = [("WEBHOOKS_DATABASE_URL", database.url().to_owned())];
    let (status, _, _) = run_capturing(&["hooks", "replay", id.as_str(), "--since", "yesterday"], &env).await;
    assert_eq!(status.code(), Some(2), "clap refuses a time it cannot read");
    let impossible = ["hooks", "replay", id.as_str(), "--since", "2025-02-31T00:00:00Z"];
    let (status, _, stderr) = run_capturing(&impossible, &env).await;
    assert_eq!(status.code(), Some(2), "a day February never has: {stderr}");
    assert!(
        stderr.contains("'2025-02-31T00:00:00Z' is neither gregorian seconds nor RFC 3339 text (day was not in range)"),
        "{stderr}"
    );
    let (status, _, stderr) = run_capturing(&["hooks", "replay", id.as_str(), "--since", &since], &env).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("WEBHOOKS_AMQP_URL is not set"), "{stderr}");
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn import_brings_kazoos_tree_and_hooks_over_once_and_a_dry_run_writes_nothing() {
    let database = TestDatabase::postgres().await;
    let couch = CouchStandIn::start().await;
    couch.put_fixtures("accounts", "accounts").await;
    couch.put_fixtures("webhooks", "webhooks").await;
    couch.put_config_fixtures().await;
    let import = ["import", "--couch", couch.url()];
    let summary = |stdout: &str| -> Vec<Vec<String>> {
        let lines = cells(stdout);
        let header = lines.iter().position(|line| line.first().is_some_and(|cell| cell == "KIND")).expect("a summary");
        lines[header..header + 5].to_vec()
    };
    let row = |cells: &[&str]| cells.iter().map(|cell| (*cell).to_owned()).collect::<Vec<_>>();
    let header = row(&["KIND", "READ", "IMPORTED", "UPDATED", "UNCHANGED", "SKIPPED", "DELETED"]);

    let dry = run_ok(&database, &[&import[..], &["--dry-run"]].concat(), &[]).await;
    let accounts = |counts: [&str; 6]| row(&[&["accounts"][..], &counts[..]].concat());
    let hooks = |counts: [&str; 6]| row(&[&["hooks"][..], &counts[..]].concat());
    let limits = |counts: [&str; 6]| row(&[&["limits"][..], &counts[..]].concat());
    // The fixtures' attempt records are of March 2024, older than the month imported by default.
    let attempts = row(&["attempts", "0", "0", "0", "0", "0", "0"]);
    // A dry run writes no account, so it weighs only the system's limits.
    assert_eq!(
        summary(&dry),
        [
            header,
            accounts(["5", "5", "0", "0", "0", "0"]),
            hooks(["12", "11", "0", "0", "1", "0"]),
            limits(["1", "1", "0", "0", "0", "0"]),
            attempts.clone(),
        ]
    );
    assert!(
        dry.starts_with("every document could be imported\n") && dry.ends_with("dry run: nothing written\n"),
        "{dry}"
    );
    let store = database.store().await;
    assert!(store.all_accounts().await.expect("the store answers").is_empty(), "nothing written");

    let prefix = format!("e2e-import-{}", random_id());
    let first = run_ok(&database, &import, &rabbitmq(&prefix)).await;
    assert_eq!(
        summary(&first)[1..],
        [
            accounts(["5", "5", "0", "0", "0", "0"]),
            hooks(["12", "11", "0", "0", "1", "0"]),
            limits(["3", "4", "0", "0", "0", "0"]),
            attempts.clone(),
        ]
    );
    assert!(first.ends_with("16 change notice(s) published: routers apply the changes now\n"), "{first}");
    assert_eq!(store.all_accounts().await.expect("the store answers").len(), 5);

    let second = run_ok(&database, &import, &rabbitmq(&prefix)).await;
    assert_eq!(
        summary(&second)[1..],
        [
            accounts(["5", "0", "0", "5", "0", "0"]),
            hooks(["12", "0", "0", "11", "1", "0"]),
            limits(["3", "0", "0", "4", "0", "0"]),
            attempts,
        ]
    );
    assert!(!second.contains("change notice"), "nothing to announce: {second}");
}
