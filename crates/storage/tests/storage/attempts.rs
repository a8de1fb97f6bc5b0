//! Attempts: listings by window and page, pruning, bulk inserts, an event's latest attempt.

use serde_json::Value;
use webhooks_model::ids::WebhookId;
use webhooks_storage::{PRUNE_BATCH, StorageError};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::test_matrix;

use crate::{attempt, hook_of, page, root};

test_matrix!(
    databases;
    attempt_listings_are_newest_first_within_an_inclusive_window_and_page_by_key,
    pruning_deletes_only_attempts_older_than_the_cutoff,
    pruning_in_batches_deletes_exactly_the_old_records,
    many_attempts_are_inserted_at_once,
    an_event_s_latest_attempt_of_a_hook_is_found_by_its_event_id,
);

async fn attempt_listings_are_newest_first_within_an_inclusive_window_and_page_by_key(database: TestDatabase) {
    let store = database.store().await;
    let owner = store.insert_account(&root("owner")).await.expect("inserts");
    let neighbour = store.insert_account(&root("neighbour")).await.expect("inserts");
    let first_hook = store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts");
    let second_hook = store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts");
    let neighbour_hook = store.insert_webhook(&hook_of(&neighbour.id)).await.expect("inserts");
    // Times repeat on purpose: the key must still page through equal times without loss.
    let records = [
        attempt(&owner.id, &first_hook.id, 99),
        attempt(&owner.id, &first_hook.id, 100),
        attempt(&owner.id, &second_hook.id, 100),
        attempt(&owner.id, &first_hook.id, 100),
        attempt(&owner.id, &second_hook.id, 150),
        attempt(&owner.id, &first_hook.id, 200),
        attempt(&owner.id, &first_hook.id, 201),
        attempt(&neighbour.id, &neighbour_hook.id, 150),
    ];
    store.insert_attempts(&records).await.expect("inserts");

    // Expected order inside the window [100, 200]: created descending, then id descending.
    let mut in_window = records[1..6].to_vec();
    in_window.sort_by(|left, right| (right.created, &right.id).cmp(&(left.created, &left.id)));
    let expected = in_window.iter().map(|record| record.id.clone()).collect::<Vec<_>>();
    let listed_ids = |page: &webhooks_storage::Page<webhooks_storage::Attempt>| {
        page.items.iter().map(|record| record.id.clone()).collect::<Vec<_>>()
    };

    let all = store.list_attempts(&owner.id, None, 100, 200, &page(None, None, false)).await.expect("lists");
    assert_eq!(listed_ids(&all), expected, "newest first, bounds inclusive, only the account's attempts");
    assert_eq!(all.next_start_key, None);
    assert_eq!(all.items[0].created, 200);
    assert_eq!(all.items[0].hook_id, first_hook.id);
    assert_eq!(all.items[0].account_id, owner.id);

    let mut paged = Vec::new();
    let mut start_key = None;
    loop {
        let request = page(start_key.as_deref(), Some(2), false);
        let current = store.list_attempts(&owner.id, None, 100, 200, &request).await.expect("lists");
        assert!(current.items.len() <= 2);
        paged.extend(listed_ids(&current));
        match current.next_start_key {
            Some(next) => start_key = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, expected, "pages of two cover the window once, in order");

    let ascending = store.list_attempts(&owner.id, None, 100, 200, &page(None, Some(3), true)).await.expect("lists");
    let reversed = expected.iter().rev().cloned().collect::<Vec<_>>();
    assert_eq!(listed_ids(&ascending), reversed[..3]);
    let rest_key = ascending.next_start_key.clone().expect("more pages");
    let rest = store.list_attempts(&owner.id, None, 100, 200, &page(Some(&rest_key), Some(3), true)).await;
    let rest = rest.expect("lists");
    assert_eq!(listed_ids(&rest), reversed[3..]);
    assert_eq!(rest.next_start_key, None);

    let one_hook =
        store.list_attempts(&owner.id, Some(&second_hook.id), 0, 1000, &page(None, None, false)).await.expect("lists");
    assert_eq!(listed_ids(&one_hook), vec![records[4].id.clone(), records[2].id.clone()]);
    let foreign_hook = store
        .list_attempts(&owner.id, Some(&neighbour_hook.id), 0, 1000, &page(None, None, false))
        .await
        .expect("lists");
    assert!(foreign_hook.items.is_empty(), "another account's hook shows nothing");

    let single_second = store.list_attempts(&owner.id, None, 100, 100, &page(None, None, false)).await;
    assert_eq!(single_second.expect("lists").items.len(), 3);

    for bad in ["garbage", "100", "x-0123456789abcdef0123456789abcdef", "100-short"] {
        let invalid = store.list_attempts(&owner.id, None, 0, 1000, &page(Some(bad), Some(2), false)).await;
        assert!(matches!(invalid, Err(StorageError::InvalidStartKey)), "{bad} is refused");
    }
}

async fn pruning_deletes_only_attempts_older_than_the_cutoff(database: TestDatabase) {
    let store = database.store().await;
    let owner = store.insert_account(&root("owner")).await.expect("inserts");
    let hook = store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts");
    let records = [10, 20, 29, 30, 31].map(|created| attempt(&owner.id, &hook.id, created));
    store.insert_attempts(&records).await.expect("inserts");

    assert_eq!(store.prune_attempts(30).await.expect("prunes"), 3);
    let left = store.list_attempts(&owner.id, None, 0, 100, &page(None, None, true)).await.expect("lists");
    assert_eq!(left.items.iter().map(|record| record.created).collect::<Vec<_>>(), vec![30, 31]);
    assert_eq!(store.prune_attempts(30).await.expect("prunes"), 0);
}

async fn pruning_in_batches_deletes_exactly_the_old_records(database: TestDatabase) {
    let store = database.store().await;
    let owner = store.insert_account(&root("owner")).await.expect("inserts");
    let hook = store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts");
    // Two and a half batches of old records, times repeating across the batches' edges, and as
    // many at and after the cutoff.
    let batch = usize::try_from(PRUNE_BATCH).expect("a small batch");
    let old = batch * 5 / 2;
    let records = (0..2 * old)
        .map(|index| attempt(&owner.id, &hook.id, i64::try_from(index / 7).expect("small")))
        .collect::<Vec<_>>();
    store.insert_attempts(&records).await.expect("inserts");
    let cutoff = i64::try_from(old / 7).expect("small");
    let expected_left: Vec<&str> =
        records.iter().filter(|record| record.created >= cutoff).map(|r| r.id.as_str()).collect();

    let pruned = store.prune_attempts(cutoff).await.expect("prunes");
    assert_eq!(pruned, u64::try_from(records.len() - expected_left.len()).expect("small"));
    let left = store.list_attempts(&owner.id, None, 0, i64::MAX, &page(None, None, true)).await.expect("lists");
    let mut left_ids: Vec<&str> = left.items.iter().map(|record| record.id.as_str()).collect();
    let mut expected_left = expected_left;
    left_ids.sort_unstable();
    expected_left.sort_unstable();
    assert_eq!(left_ids, expected_left, "exactly the records before the cutoff are gone");
    assert_eq!(store.prune_attempts(cutoff).await.expect("prunes"), 0);
}

async fn many_attempts_are_inserted_at_once(database: TestDatabase) {
    let store = database.store().await;
    let owner = store.insert_account(&root("owner")).await.expect("inserts");
    let hook = store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts");
    // More rows than one INSERT carries, so the batch is split.
    let records = (0..2500).map(|index| attempt(&owner.id, &hook.id, index)).collect::<Vec<_>>();
    store.insert_attempts(&records).await.expect("inserts");
    store.insert_attempts(&[]).await.expect("nothing to insert");
    let listed = store.list_attempts(&owner.id, None, 0, 10_000, &page(None, None, false)).await.expect("lists");
    assert_eq!(listed.items.len(), 2500);

    // A write repeated after its success went unheard stores the new records and nothing twice.
    let mut changed = records[0].clone();
    changed.created = 99_999;
    let repeated = [attempt(&owner.id, &hook.id, 1), changed];
    store.insert_attempts(&repeated).await.expect("inserts");
    let after = store.list_attempts(&owner.id, None, 0, 10_000, &page(None, None, false)).await.expect("lists");
    assert_eq!(after.items.len(), 2501, "one new record");
    let kept = after.items.iter().find(|record| record.id == records[0].id).map(|record| record.created);
    assert_eq!(kept, Some(records[0].created), "the stored record is left as it was");
}

async fn an_event_s_latest_attempt_of_a_hook_is_found_by_its_event_id(database: TestDatabase) {
    let store = database.store().await;
    let owner = store.insert_account(&root("owner")).await.expect("inserts");
    let neighbour = store.insert_account(&root("neighbour")).await.expect("inserts");
    let hook = store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts");
    let other_hook = store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts");
    let of_event = |hook: &WebhookId, created: i64, event: &str| {
        let mut record = attempt(&owner.id, hook, created);
        record.doc.insert("event_id".into(), Value::from(event));
        record
    };
    let (first, retried, elsewhere) =
        (of_event(&hook.id, 100, "e1"), of_event(&hook.id, 160, "e1"), of_event(&other_hook.id, 200, "e1"));
    let records =
        [first, retried.clone(), elsewhere.clone(), of_event(&hook.id, 300, "e2"), attempt(&owner.id, &hook.id, 400)];
    store.insert_attempts(&records).await.expect("inserts");

    let found = store.event_attempt(&owner.id, &hook.id, "e1").await.expect("reads").expect("a record of e1");
    assert_eq!(
        (found.id, found.created, found.hook_id),
        (retried.id, 160, hook.id.clone()),
        "the latest, of that hook"
    );
    let found = store.event_attempt(&owner.id, &other_hook.id, "e1").await.expect("reads").expect("a record of e1");
    assert_eq!(found.id, elsewhere.id);
    assert_eq!(found.doc, elsewhere.doc);
    assert!(store.event_attempt(&owner.id, &hook.id, "e3").await.expect("reads").is_none(), "no such event");
    assert!(
        store.event_attempt(&neighbour.id, &hook.id, "e1").await.expect("reads").is_none(),
        "another account's hook"
    );
}
