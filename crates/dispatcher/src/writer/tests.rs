//! The writer against a database made unreachable: its bounds, and failures kept one row a hook.

use serde_json::json;
use webhooks_storage::PageRequest;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::kept_failure;

use super::*;

/// How long the test waits for the writer to get somewhere.
const PATIENCE: Duration = Duration::from_secs(20);

/// One failed attempt of `hook`, `event`, whose record carries a response body of `body` bytes.
fn attempt(account: &AccountId, hook: &WebhookId, event: usize, body: usize) -> Records {
    let mut attempt = kept_failure(account, hook, &format!("event-{event}"));
    attempt.doc.insert("response_body".into(), json!("x".repeat(body)));
    Records { attempts: vec![attempt], ..Records::default() }
}

/// Waits until `done` holds, or fails the test with `what`.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn through_an_outage_bookkeeping_waits_within_its_bound_in_rows_or_bytes_then_is_written() {
    let (account, hook) = (AccountId::generate(), WebhookId::generate());
    let large = attempt(&account, &hook, 0, 64 * 1024).weight();
    // (rows, bytes, response body): ten records reach the bound either way.
    for (capacity, capacity_bytes, body) in [(10, usize::MAX, 16), (usize::MAX, 10 * large, 64 * 1024)] {
        let database = TestDatabase::postgres().await;
        let store = database.store().await;
        let settings = Bookkeeping {
            batch_size: 500,
            gather_for: Duration::from_millis(5),
            capacity,
            capacity_bytes,
            drain_timeout: Duration::from_secs(5),
        };
        let metrics = WriterMetrics::default();
        let (writer, task) = AttemptWriter::start(store.clone(), settings, metrics.clone());
        database.set_reachable(false).await;
        // Twenty handovers: ten are kept, the other ten wait in the writer's inbox...
        for event in 0..20 {
            writer.write(attempt(&account, &hook, event, body)).await.expect("handed over");
        }
        eventually("the bound is reached", async || metrics.full() == 1).await;
        assert_eq!(metrics.waiting(), 10, "kept while the database is away: the bound, not more");
        // ...and once the inbox is full too, a delivery handing its records over waits.
        for event in 20..20 + QUEUE_DEPTH - 10 {
            writer.write(attempt(&account, &hook, event, 16)).await.expect("handed over");
        }
        let waited = tokio::time::timeout(Duration::from_millis(200), writer.write(attempt(&account, &hook, 0, 16)));
        assert!(waited.await.is_err(), "a handover beyond the bound waits for room");

        database.set_reachable(true).await;
        let expected = 10 + QUEUE_DEPTH;
        eventually("every record kept is written once the database answers", async || {
            let page = PageRequest { start_key: None, page_size: None, ascending: false };
            let written = store.list_attempts(&account, None, 0, i64::MAX, &page).await;
            written.is_ok_and(|written| written.items.len() == expected)
        })
        .await;
        drop(writer);
        tokio::time::timeout(PATIENCE, task).await.expect("the writer stops").expect("no panic");
        assert_eq!(metrics.waiting(), 0);
    }
}

#[tokio::test]
async fn failures_kept_through_an_outage_take_one_row_a_hook_and_are_all_counted() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    let settings = Bookkeeping {
        batch_size: 500,
        gather_for: Duration::from_millis(5),
        capacity: 10,
        capacity_bytes: usize::MAX,
        drain_timeout: Duration::from_secs(5),
    };
    let metrics = WriterMetrics::default();
    let (writer, task) = AttemptWriter::start(store.clone(), settings, metrics.clone());
    let account = AccountId::generate();
    let hooks = [WebhookId::generate(), WebhookId::generate()];
    let window = Duration::from_secs(3600);
    database.set_reachable(false).await;
    for n in 0..100 {
        let hook_id = hooks[n % 2].clone();
        let failure = Failure { account_id: account.clone(), hook_id, count: 1, at_ms: 1_000 + n as i64, window };
        writer.write(Records { failures: vec![failure], ..Records::default() }).await.expect("handed over");
    }
    eventually("every failure is taken in", async || metrics.waiting() == 2).await;
    assert_eq!(metrics.full(), 0, "a hundred failures of two hooks are two rows, far from the bound of ten");

    database.set_reachable(true).await;
    eventually("the failures are counted once the database answers", async || metrics.waiting() == 0).await;
    for hook in &hooks {
        assert_eq!(store.failure_count(hook, 2_000, window).await.expect("count"), 50);
    }
    drop(writer);
    tokio::time::timeout(PATIENCE, task).await.expect("the writer stops").expect("no panic");
}
