//! Integration tests of the store. Every test runs twice: on a fresh SQLite file and on a fresh
//! database of the PostgreSQL server at `WEBHOOKS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432`).

use std::collections::HashSet;

use serde_json::{Map, Value, json};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::webhook::SecretChange;
use webhooks_storage::{
    Account, Backend, NewAccount, NewAttempt, NewWebhook, PageRequest, StorageError, Store, WebhookChange,
};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::{new_webhook, object};
use webhooks_test_support::test_matrix;

test_matrix!(
    on_sqlite => TestDatabase::sqlite().await,
    on_postgres => TestDatabase::postgres().await;
    migrating_again_and_from_several_tasks_at_once_succeeds,
    settings_keep_the_first_value_stored_even_under_concurrent_writers,
    bootstrapping_the_master_from_many_tasks_at_once_creates_exactly_one,
    accounts_three_levels_deep_report_their_tree_children_and_descendants,
    an_account_is_found_by_its_api_key_and_keys_are_unique,
    updating_an_account_replaces_its_name_and_fields_and_bumps_its_revision,
    deleting_an_account_removes_its_hooks_and_attempts_and_nothing_else,
    webhooks_are_created_read_updated_and_deleted_with_revision_checks,
    documents_keep_their_key_order_and_unknown_fields,
    webhook_listings_page_by_id_in_either_direction,
    attempt_listings_are_newest_first_within_an_inclusive_window_and_page_by_key,
    reenabling_touches_only_auto_disabled_hooks_of_the_account_or_its_subtree,
    enabled_webhooks_are_those_of_every_account_that_are_enabled,
    pruning_deletes_only_attempts_older_than_the_cutoff,
    many_attempts_are_inserted_at_once,
    an_event_s_latest_attempt_of_a_hook_is_found_by_its_event_id,
    the_router_reads_every_account_hooks_by_id_and_the_enabled_hooks_of_a_subtree,
    a_secret_is_written_with_its_hook_and_enabling_a_hook_forgets_its_failures,
);

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_fails_calls_at_once_and_the_store_recovers_by_itself() {
    let database = TestDatabase::postgres().await;
    let store = database.store().await;
    store.insert_account(&root("before")).await.expect("inserts");

    database.set_reachable(false).await;
    // Each pooled connection the outage ended fails once; then connecting fails, and from then
    // on calls are not even tried for a moment.
    let mut errors = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let error = store.all_accounts().await.expect_err("the database is unreachable");
        assert!(error.is_unavailable(), "{error:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "failed after {:?}", started.elapsed());
        errors.push(matches!(error, StorageError::Unavailable));
    }
    let first_held = errors.iter().position(|held| *held).expect("calls fail at once after a failed connection");
    assert!(first_held <= 9, "the pool holds 8 connections: {errors:?}");
    assert!(errors[first_held..].iter().all(|held| *held), "every later call fails at once: {errors:?}");

    database.set_reachable(true).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let accounts = loop {
        match store.all_accounts().await {
            Ok(accounts) => break accounts,
            Err(error) if error.is_unavailable() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the store did not recover: {error:?}"),
        }
    };
    assert_eq!(accounts.len(), 1);
}

/// A root account with a random id and API key.
fn root(name: &str) -> NewAccount {
    NewAccount {
        id: AccountId::generate(),
        name: name.to_owned(),
        parent: None,
        api_key: uuid::Uuid::new_v4().simple().to_string(),
        superduper_admin: false,
        doc: Map::new(),
    }
}

/// A sub-account of `parent` with a random id and API key.
fn child_of(parent: &Account, name: &str) -> NewAccount {
    NewAccount { parent: Some((parent.id.clone(), parent.tree.clone())), ..root(name) }
}

/// A new enabled `channel_create` hook of `account`.
fn hook_of(account: &AccountId) -> NewWebhook {
    let document = json!({"name": "hook", "uri": "https://example.com/hook", "hook": "channel_create"});
    new_webhook(&WebhookId::generate(), account, &document)
}

/// The change that keeps `hook` as it is.
fn unchanged(hook: &webhooks_storage::Webhook) -> WebhookChange {
    WebhookChange {
        hook: hook.hook.clone(),
        enabled: hook.enabled,
        include_subaccounts: hook.include_subaccounts,
        disabled_reason: hook.disabled_reason.clone(),
        doc: hook.doc.clone(),
        secret: SecretChange::Keep,
    }
}

/// An attempt of `hook` owned by `account`, made at `created`.
fn attempt(account: &AccountId, hook: &WebhookId, created: i64) -> NewAttempt {
    NewAttempt {
        id: uuid::Uuid::new_v4().simple().to_string(),
        account_id: account.clone(),
        hook_id: hook.clone(),
        created,
        doc: object(json!({"hook_id": hook.to_string(), "result": "failure"})),
        job: None,
    }
}

/// A page request.
fn page(start_key: Option<&str>, page_size: Option<usize>, ascending: bool) -> PageRequest {
    PageRequest { start_key: start_key.map(str::to_owned), page_size, ascending }
}

/// The ids of `accounts`.
fn account_ids(accounts: &[Account]) -> Vec<AccountId> {
    accounts.iter().map(|account| account.id.clone()).collect()
}

/// Sorted copies of ids.
fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort();
    items
}

/// The `n` of a `<n>-<tag>` revision.
fn revision_number(revision: &str) -> u64 {
    let (number, tag) = revision.split_once('-').unwrap_or_else(|| panic!("not a revision: {revision}"));
    assert_eq!(tag.len(), 32, "revision tag of {revision}");
    number.parse().unwrap_or_else(|_| panic!("not a revision: {revision}"))
}

async fn migrating_again_and_from_several_tasks_at_once_succeeds(database: TestDatabase) {
    // Several replicas starting together on an empty database.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = database.url().to_owned();
        tasks.push(tokio::spawn(async move {
            let store = Store::connect(&url, 2).await.expect("connects");
            store.migrate().await
        }));
    }
    for task in tasks {
        task.await.expect("task finishes").expect("concurrent migration succeeds");
    }
    let store = database.store().await;
    store.migrate().await.expect("migrating an up-to-date database changes nothing");
    store.ping().await.expect("the database answers");
    let expected = if database.url().starts_with("sqlite://") { Backend::Sqlite } else { Backend::Postgres };
    assert_eq!(store.backend(), expected);
    let master = store.insert_account(&root("after migrations")).await.expect("tables exist");
    assert_eq!(store.account(&master.id).await.expect("reads"), Some(master));
}

async fn settings_keep_the_first_value_stored_even_under_concurrent_writers(database: TestDatabase) {
    let store = database.store().await;
    assert_eq!(store.setting("secret").await.expect("reads"), None);
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(
            async move { store.insert_setting_if_absent("secret", &format!("value {writer}")).await },
        ));
    }
    let mut winners = HashSet::new();
    for task in tasks {
        winners.insert(task.await.expect("task finishes").expect("insert succeeds"));
    }
    assert_eq!(winners.len(), 1, "every writer sees the same value: {winners:?}");
    let stored = store.setting("secret").await.expect("reads");
    assert_eq!(stored.as_ref(), winners.iter().next());
    assert_eq!(store.insert_setting_if_absent("secret", "late").await.expect("insert succeeds"), stored.expect("set"));
}

async fn bootstrapping_the_master_from_many_tasks_at_once_creates_exactly_one(database: TestDatabase) {
    let store = database.store().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let candidate = NewAccount { superduper_admin: true, ..root("master") };
        tasks.push(tokio::spawn(async move { store.bootstrap_master(&candidate).await }));
    }
    let mut masters = HashSet::new();
    let mut created = 0;
    for task in tasks {
        let (master, created_now) = task.await.expect("task finishes").expect("bootstrap succeeds");
        assert!(master.superduper_admin);
        assert!(master.tree.is_empty());
        masters.insert(master.id);
        created += usize::from(created_now);
    }
    assert_eq!(masters.len(), 1, "one master for everyone: {masters:?}");
    assert_eq!(created, 1, "exactly one task created it");
    let master_id = masters.into_iter().next().expect("one master");
    assert_eq!(store.setting("master_account_id").await.expect("reads").as_deref(), Some(master_id.as_str()));

    let (again, created_now) = store.bootstrap_master(&root("another")).await.expect("bootstrap succeeds");
    assert_eq!((again.id, created_now), (master_id, false));
}

async fn accounts_three_levels_deep_report_their_tree_children_and_descendants(database: TestDatabase) {
    let store = database.store().await;
    let master = store.insert_account(&root("master")).await.expect("inserts");
    let reseller = store.insert_account(&child_of(&master, "reseller")).await.expect("inserts");
    let other_reseller = store.insert_account(&child_of(&master, "other reseller")).await.expect("inserts");
    let customer = store.insert_account(&child_of(&reseller, "customer")).await.expect("inserts");
    let department = store.insert_account(&child_of(&customer, "department")).await.expect("inserts");
    let unrelated = store.insert_account(&root("unrelated root")).await.expect("inserts");

    assert_eq!(master.tree, Vec::<AccountId>::new());
    assert_eq!(master.parent_id, None);
    assert_eq!(customer.tree, vec![master.id.clone(), reseller.id.clone()]);
    assert_eq!(customer.parent_id.as_ref(), Some(&reseller.id));
    assert_eq!(department.tree, vec![master.id.clone(), reseller.id.clone(), customer.id.clone()]);
    assert_eq!(store.account(&department.id).await.expect("reads"), Some(department.clone()));
    assert_eq!(revision_number(&department.revision), 1);

    let children = store.children(&master.id).await.expect("lists");
    assert_eq!(account_ids(&children), sorted(&[reseller.id.clone(), other_reseller.id.clone()]));
    assert_eq!(account_ids(&store.children(&reseller.id).await.expect("lists")), vec![customer.id.clone()]);
    assert!(store.children(&department.id).await.expect("lists").is_empty());

    let everything_below_master = store.descendants(&master.id).await.expect("lists");
    assert_eq!(
        account_ids(&everything_below_master),
        sorted(&[reseller.id.clone(), other_reseller.id.clone(), customer.id.clone(), department.id.clone()])
    );
    let below_reseller = store.descendants(&reseller.id).await.expect("lists");
    assert_eq!(account_ids(&below_reseller), sorted(&[customer.id.clone(), department.id.clone()]));
    assert!(store.descendants(&other_reseller.id).await.expect("lists").is_empty());
    assert!(store.descendants(&unrelated.id).await.expect("lists").is_empty());
    assert!(store.descendants(&AccountId::generate()).await.expect("lists").is_empty());

    assert!(store.has_children(&master.id).await.expect("checks"));
    assert!(store.has_children(&customer.id).await.expect("checks"));
    assert!(!store.has_children(&department.id).await.expect("checks"));

    let orphan = NewAccount { parent: Some((AccountId::generate(), Vec::new())), ..root("orphan") };
    assert!(matches!(store.insert_account(&orphan).await, Err(StorageError::UnknownParent(_))));
    let wrong_tree = NewAccount { parent: Some((customer.id.clone(), vec![master.id.clone()])), ..root("misplaced") };
    assert!(matches!(store.insert_account(&wrong_tree).await, Err(StorageError::UnknownParent(_))));
    let duplicate = NewAccount { id: customer.id.clone(), ..root("duplicate") };
    assert!(matches!(store.insert_account(&duplicate).await, Err(StorageError::Conflict)));
}

async fn an_account_is_found_by_its_api_key_and_keys_are_unique(database: TestDatabase) {
    let store = database.store().await;
    let first = store.insert_account(&root("first")).await.expect("inserts");
    let second = store.insert_account(&root("second")).await.expect("inserts");
    assert_eq!(store.account_by_api_key(&first.api_key).await.expect("reads"), Some(first.clone()));
    assert_eq!(store.account_by_api_key("no such key").await.expect("reads"), None);
    assert_eq!(store.account_by_api_key("").await.expect("reads"), None);

    let same_key = NewAccount { api_key: first.api_key.clone(), ..root("copycat") };
    assert!(matches!(store.insert_account(&same_key).await, Err(StorageError::Conflict)));
    assert!(matches!(store.set_api_key(&second.id, &first.api_key).await, Err(StorageError::Conflict)));

    assert!(store.set_api_key(&second.id, "rotated").await.expect("updates"));
    assert!(!store.set_api_key(&AccountId::generate(), "unused").await.expect("updates"));
    let rotated = store.account_by_api_key("rotated").await.expect("reads").expect("found by the new key");
    assert_eq!(rotated.id, second.id);
    assert_eq!(revision_number(&rotated.revision), 2);
    assert_eq!(store.account_by_api_key(&second.api_key).await.expect("reads"), None);
}

async fn updating_an_account_replaces_its_name_and_fields_and_bumps_its_revision(database: TestDatabase) {
    let store = database.store().await;
    let original = NewAccount { doc: object(json!({"realm": "old.example.com", "language": "en"})), ..root("old") };
    let account = store.insert_account(&original).await.expect("inserts");
    let doc = object(json!({"realm": "new.example.com", "timezone": "UTC"}));
    let updated = store.update_account(&account.id, "new", &doc).await.expect("updates").expect("exists");
    assert_eq!(updated.name, "new");
    assert_eq!(updated.doc, doc);
    assert_eq!(revision_number(&updated.revision), 2);
    assert_ne!(updated.revision, account.revision);
    assert!(updated.modified >= account.modified);
    assert_eq!(updated.created, account.created);
    assert_eq!(store.account(&account.id).await.expect("reads"), Some(updated));
    assert_eq!(store.update_account(&AccountId::generate(), "x", &doc).await.expect("updates"), None);
}

async fn deleting_an_account_removes_its_hooks_and_attempts_and_nothing_else(database: TestDatabase) {
    let store = database.store().await;
    let master = store.insert_account(&root("master")).await.expect("inserts");
    let doomed = store.insert_account(&child_of(&master, "doomed")).await.expect("inserts");
    let doomed_hook = store.insert_webhook(&hook_of(&doomed.id)).await.expect("inserts");
    let kept_hook = store.insert_webhook(&hook_of(&master.id)).await.expect("inserts");
    store
        .insert_attempts(&[attempt(&doomed.id, &doomed_hook.id, 100), attempt(&master.id, &kept_hook.id, 100)])
        .await
        .expect("inserts");

    assert!(matches!(store.delete_account(&master.id).await, Err(StorageError::HasChildren(_))));
    assert!(store.delete_account(&doomed.id).await.expect("deletes"));
    assert_eq!(store.account(&doomed.id).await.expect("reads"), None);
    assert_eq!(store.webhook(&doomed.id, &doomed_hook.id).await.expect("reads"), None);
    let everything = page(None, None, false);
    assert!(store.list_attempts(&doomed.id, None, 0, i64::MAX, &everything).await.expect("lists").items.is_empty());
    assert!(!store.delete_account(&doomed.id).await.expect("deletes"));

    assert_eq!(store.webhook(&master.id, &kept_hook.id).await.expect("reads"), Some(kept_hook));
    assert_eq!(store.list_attempts(&master.id, None, 0, i64::MAX, &everything).await.expect("lists").items.len(), 1);
    assert!(!store.has_children(&master.id).await.expect("checks"));
    assert!(store.delete_account(&master.id).await.expect("deletes once childless"));
}

async fn webhooks_are_created_read_updated_and_deleted_with_revision_checks(database: TestDatabase) {
    let store = database.store().await;
    let owner = store.insert_account(&root("owner")).await.expect("inserts");
    let stranger = store.insert_account(&root("stranger")).await.expect("inserts");
    let new = hook_of(&owner.id);
    let created = store.insert_webhook(&new).await.expect("inserts");
    assert_eq!((&created.id, &created.account_id, created.enabled), (&new.id, &owner.id, true));
    assert_eq!(created.disabled_reason, None);
    assert_eq!(created.doc, new.doc);
    assert_eq!(revision_number(&created.revision), 1);
    assert_eq!(created.created, created.modified);
    assert_eq!(store.webhook(&owner.id, &new.id).await.expect("reads"), Some(created.clone()));
    assert_eq!(store.webhook(&stranger.id, &new.id).await.expect("reads"), None, "other accounts' hooks are invisible");

    let taken = NewWebhook { account_id: stranger.id.clone(), ..new.clone() };
    assert!(matches!(store.insert_webhook(&taken).await, Err(StorageError::Conflict)), "ids are global");

    let change = WebhookChange {
        hook: "all".into(),
        enabled: false,
        include_subaccounts: true,
        disabled_reason: Some("too many failed attempts".into()),
        doc: object(json!({"name": "renamed", "uri": "https://example.com/other", "hook": "all"})),
        secret: SecretChange::Keep,
    };
    let updated =
        store.update_webhook(&owner.id, &new.id, &created.revision, &change).await.expect("updates").expect("exists");
    assert_eq!(revision_number(&updated.revision), 2);
    assert_eq!((updated.hook.as_str(), updated.enabled, updated.include_subaccounts), ("all", false, true));
    assert_eq!(updated.disabled_reason.as_deref(), Some("too many failed attempts"));
    assert_eq!(updated.doc, change.doc);
    assert_eq!(updated.created, created.created);
    assert_eq!(store.webhook(&owner.id, &new.id).await.expect("reads"), Some(updated.clone()));

    let stale = store.update_webhook(&owner.id, &new.id, &created.revision, &change).await;
    assert!(matches!(stale, Err(StorageError::Conflict)), "a stale revision conflicts: {stale:?}");
    let garbage = store.update_webhook(&owner.id, &new.id, "not a revision", &change).await;
    assert!(matches!(garbage, Err(StorageError::Conflict)));
    let missing = store.update_webhook(&owner.id, &WebhookId::generate(), &updated.revision, &change).await;
    assert_eq!(missing.expect("updates"), None);
    let foreign = store.update_webhook(&stranger.id, &new.id, &updated.revision, &change).await;
    assert_eq!(foreign.expect("updates"), None);

    let cleared = WebhookChange { enabled: true, disabled_reason: None, ..unchanged(&updated) };
    let cleared = store.update_webhook(&owner.id, &new.id, &updated.revision, &cleared).await.expect("updates");
    let cleared = cleared.expect("exists");
    assert_eq!((cleared.enabled, cleared.disabled_reason.as_deref()), (true, None));
    assert_eq!(revision_number(&cleared.revision), 3);

    assert_eq!(store.delete_webhook(&stranger.id, &new.id).await.expect("deletes"), None);
    assert_eq!(store.delete_webhook(&owner.id, &new.id).await.expect("deletes"), Some(cleared));
    assert_eq!(store.webhook(&owner.id, &new.id).await.expect("reads"), None);
    assert_eq!(store.delete_webhook(&owner.id, &new.id).await.expect("deletes"), None);
}

async fn documents_keep_their_key_order_and_unknown_fields(database: TestDatabase) {
    let store = database.store().await;
    let doc = object(json!({
        "zeta": 1, "uri": "https://example.com", "alpha": {"z": true, "a": [3, 1, 2]}, "custom_thing": null,
        "middle": "x", "nested": {"b": {"y": 1, "x": 2}, "a": 0}
    }));
    let keys = |document: &Map<String, Value>| document.keys().cloned().collect::<Vec<_>>();
    let account = store.insert_account(&NewAccount { doc: doc.clone(), ..root("ordered") }).await.expect("inserts");
    let stored_account = store.account(&account.id).await.expect("reads").expect("exists");
    assert_eq!(keys(&stored_account.doc), keys(&doc));
    assert_eq!(serde_json::to_string(&stored_account.doc).ok(), serde_json::to_string(&doc).ok());

    let hook = store.insert_webhook(&NewWebhook { doc: doc.clone(), ..hook_of(&account.id) }).await.expect("inserts");
    let stored_hook = store.webhook(&account.id, &hook.id).await.expect("reads").expect("exists");
    assert_eq!(serde_json::to_string(&stored_hook.doc).ok(), serde_json::to_string(&doc).ok());

    let record = NewAttempt { doc: doc.clone(), ..attempt(&account.id, &hook.id, 10) };
    store.insert_attempts(std::slice::from_ref(&record)).await.expect("inserts");
    let listed = store.list_attempts(&account.id, None, 0, 100, &page(None, None, false)).await.expect("lists");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(serde_json::to_string(&listed.items[0].doc).ok(), serde_json::to_string(&doc).ok());
    assert_eq!(listed.items[0].id, record.id);
}

async fn webhook_listings_page_by_id_in_either_direction(database: TestDatabase) {
    let store = database.store().await;
    let owner = store.insert_account(&root("owner")).await.expect("inserts");
    let neighbour = store.insert_account(&root("neighbour")).await.expect("inserts");
    store.insert_webhook(&hook_of(&neighbour.id)).await.expect("inserts");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(store.insert_webhook(&hook_of(&owner.id)).await.expect("inserts").id);
    }
    ids.sort();
    let descending = ids.iter().rev().cloned().collect::<Vec<_>>();
    let listed_ids = |page: &webhooks_storage::Page<webhooks_storage::Webhook>| {
        page.items.iter().map(|hook| hook.id.clone()).collect::<Vec<_>>()
    };

    let all = store.list_webhooks(&owner.id, &page(None, None, false)).await.expect("lists");
    assert_eq!(listed_ids(&all), descending, "descending by id by default, only the account's hooks");
    assert_eq!(all.next_start_key, None);

    let first = store.list_webhooks(&owner.id, &page(None, Some(2), false)).await.expect("lists");
    assert_eq!(listed_ids(&first), descending[..2]);
    let second_key = first.next_start_key.clone().expect("more pages");
    let second = store.list_webhooks(&owner.id, &page(Some(&second_key), Some(2), false)).await.expect("lists");
    assert_eq!(listed_ids(&second), descending[2..4]);
    let third_key = second.next_start_key.clone().expect("more pages");
    let third = store.list_webhooks(&owner.id, &page(Some(&third_key), Some(2), false)).await.expect("lists");
    assert_eq!(listed_ids(&third), descending[4..]);
    assert_eq!(third.next_start_key, None, "no key on the last page");

    let ascending = store.list_webhooks(&owner.id, &page(None, Some(3), true)).await.expect("lists");
    assert_eq!(listed_ids(&ascending), ids[..3]);
    let rest_key = ascending.next_start_key.clone().expect("more pages");
    let rest = store.list_webhooks(&owner.id, &page(Some(&rest_key), Some(3), true)).await.expect("lists");
    assert_eq!(listed_ids(&rest), ids[3..]);
    assert_eq!(rest.next_start_key, None);

    let exact = store.list_webhooks(&owner.id, &page(None, Some(5), false)).await.expect("lists");
    assert_eq!((exact.items.len(), exact.next_start_key), (5, None), "a full last page has no next key");
    let empty = store.list_webhooks(&AccountId::generate(), &page(None, Some(5), false)).await.expect("lists");
    assert_eq!((empty.items.len(), empty.next_start_key), (0, None));

    let invalid = store.list_webhooks(&owner.id, &page(Some("not-a-key"), Some(2), false)).await;
    assert!(matches!(invalid, Err(StorageError::InvalidStartKey)));
}

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

async fn reenabling_touches_only_auto_disabled_hooks_of_the_account_or_its_subtree(database: TestDatabase) {
    let store = database.store().await;
    let master = store.insert_account(&root("master")).await.expect("inserts");
    let reseller = store.insert_account(&child_of(&master, "reseller")).await.expect("inserts");
    let customer = store.insert_account(&child_of(&reseller, "customer")).await.expect("inserts");
    let sibling = store.insert_account(&child_of(&master, "sibling")).await.expect("inserts");

    let auto_reseller = store.insert_webhook(&hook_of(&reseller.id)).await.expect("inserts");
    let manual_reseller = store.insert_webhook(&hook_of(&reseller.id)).await.expect("inserts");
    let enabled_reseller = store.insert_webhook(&hook_of(&reseller.id)).await.expect("inserts");
    let auto_customer = store.insert_webhook(&hook_of(&customer.id)).await.expect("inserts");
    let auto_sibling = store.insert_webhook(&hook_of(&sibling.id)).await.expect("inserts");
    let auto_master = store.insert_webhook(&hook_of(&master.id)).await.expect("inserts");

    for (account, hook) in [
        (&reseller.id, &auto_reseller),
        (&customer.id, &auto_customer),
        (&sibling.id, &auto_sibling),
        (&master.id, &auto_master),
    ] {
        assert!(store.disable_webhook(account, &hook.id, "too many failed attempts").await.expect("disables"));
    }
    assert!(!store.disable_webhook(&sibling.id, &auto_reseller.id, "wrong owner").await.expect("disables"));
    let disabled = store.webhook(&reseller.id, &auto_reseller.id).await.expect("reads").expect("exists");
    assert_eq!((disabled.enabled, disabled.disabled_reason.as_deref()), (false, Some("too many failed attempts")));
    assert_eq!(revision_number(&disabled.revision), 2);
    let by_hand = WebhookChange { enabled: false, disabled_reason: None, ..unchanged(&manual_reseller) };
    store
        .update_webhook(&reseller.id, &manual_reseller.id, &manual_reseller.revision, &by_hand)
        .await
        .expect("updates")
        .expect("exists");

    assert_eq!(store.reenable_webhooks(&reseller.id, false).await.expect("re-enables"), 1, "the account only");
    let reenabled = store.webhook(&reseller.id, &auto_reseller.id).await.expect("reads").expect("exists");
    assert_eq!((reenabled.enabled, reenabled.disabled_reason), (true, None));
    assert_eq!(revision_number(&reenabled.revision), 3);
    let customer_hook = store.webhook(&customer.id, &auto_customer.id).await.expect("reads").expect("exists");
    assert!(!customer_hook.enabled, "descendants untouched without include_descendants");

    // Disable the reseller's hook again: the subtree run must catch it and the customer's.
    assert!(
        store.disable_webhook(&reseller.id, &auto_reseller.id, "too many failed attempts").await.expect("disables")
    );
    assert_eq!(store.reenable_webhooks(&reseller.id, true).await.expect("re-enables"), 2, "account and descendants");
    assert_eq!(store.reenable_webhooks(&reseller.id, true).await.expect("re-enables"), 0, "nothing left to do");

    let state = |hook: Option<webhooks_storage::Webhook>| hook.map(|hook| (hook.enabled, hook.disabled_reason));
    assert_eq!(state(store.webhook(&customer.id, &auto_customer.id).await.expect("reads")), Some((true, None)));
    assert_eq!(state(store.webhook(&reseller.id, &manual_reseller.id).await.expect("reads")), Some((false, None)));
    assert_eq!(state(store.webhook(&reseller.id, &enabled_reseller.id).await.expect("reads")), Some((true, None)));
    let untouched = Some((false, Some("too many failed attempts".to_owned())));
    assert_eq!(state(store.webhook(&sibling.id, &auto_sibling.id).await.expect("reads")), untouched, "not below");
    assert_eq!(state(store.webhook(&master.id, &auto_master.id).await.expect("reads")), untouched, "not above");

    assert_eq!(store.reenable_webhooks(&master.id, true).await.expect("re-enables"), 2, "the whole tree");
    assert_eq!(store.reenable_webhooks(&AccountId::generate(), true).await.expect("re-enables"), 0);
}

async fn enabled_webhooks_are_those_of_every_account_that_are_enabled(database: TestDatabase) {
    let store = database.store().await;
    let first = store.insert_account(&root("first")).await.expect("inserts");
    let second = store.insert_account(&child_of(&first, "second")).await.expect("inserts");
    let on_first = store.insert_webhook(&hook_of(&first.id)).await.expect("inserts");
    let on_second = store.insert_webhook(&hook_of(&second.id)).await.expect("inserts");
    store.insert_webhook(&NewWebhook { enabled: false, ..hook_of(&first.id) }).await.expect("inserts");
    let auto_disabled = store.insert_webhook(&hook_of(&second.id)).await.expect("inserts");
    store.disable_webhook(&second.id, &auto_disabled.id, "too many failed attempts").await.expect("disables");

    let enabled = store.enabled_webhooks().await.expect("lists");
    let ids = enabled.iter().map(|hook| hook.id.clone()).collect::<HashSet<_>>();
    assert_eq!(ids, HashSet::from([on_first.id, on_second.id]));
    assert!(enabled.iter().all(|hook| hook.enabled));
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

#[tokio::test]
async fn urls_of_other_databases_are_refused() {
    for url in ["mysql://localhost/db", "sqlite://", "no scheme at all"] {
        assert!(matches!(Store::connect(url, 1).await, Err(StorageError::InvalidUrl(_))), "{url}");
    }
}

async fn the_router_reads_every_account_hooks_by_id_and_the_enabled_hooks_of_a_subtree(database: TestDatabase) {
    let store = database.store().await;
    let top = store.insert_account(&root("top")).await.expect("top");
    let middle = store.insert_account(&child_of(&top, "middle")).await.expect("middle");
    let bottom = store.insert_account(&child_of(&middle, "bottom")).await.expect("bottom");
    let other = store.insert_account(&root("other")).await.expect("other");

    let accounts = store.all_accounts().await.expect("accounts");
    assert_eq!(
        sorted(&account_ids(&accounts)),
        sorted(&[top.id.clone(), middle.id.clone(), bottom.id.clone(), other.id.clone()])
    );
    let listed_bottom = accounts.iter().find(|account| account.id == bottom.id).expect("bottom listed");
    assert_eq!(listed_bottom.tree, vec![top.id.clone(), middle.id.clone()]);

    let top_hook = store.insert_webhook(&hook_of(&top.id)).await.expect("hook");
    let bottom_hook = store.insert_webhook(&hook_of(&bottom.id)).await.expect("hook");
    let disabled = store.insert_webhook(&NewWebhook { enabled: false, ..hook_of(&middle.id) }).await.expect("hook");
    let other_hook = store.insert_webhook(&hook_of(&other.id)).await.expect("hook");

    let found = store.webhook_by_id(&bottom_hook.id).await.expect("lookup").expect("found without its owner");
    assert_eq!((found.account_id, found.id), (bottom.id.clone(), bottom_hook.id.clone()));
    assert!(store.webhook_by_id(&WebhookId::generate()).await.expect("lookup").is_none());

    let ids =
        |hooks: Vec<webhooks_storage::Webhook>| sorted(&hooks.into_iter().map(|hook| hook.id).collect::<Vec<_>>());
    let subtree = store.enabled_webhooks_of(&top.id, true).await.expect("subtree");
    assert_eq!(
        ids(subtree),
        sorted(&[top_hook.id.clone(), bottom_hook.id.clone()]),
        "disabled and foreign hooks are left out"
    );
    let own = store.enabled_webhooks_of(&top.id, false).await.expect("own");
    assert_eq!(ids(own), vec![top_hook.id.clone()]);
    assert!(store.enabled_webhooks_of(&middle.id, false).await.expect("own").is_empty());
    assert_eq!(ids(store.enabled_webhooks_of(&other.id, true).await.expect("other")), vec![other_hook.id]);
    let _ = disabled;
}

async fn a_secret_is_written_with_its_hook_and_enabling_a_hook_forgets_its_failures(database: TestDatabase) {
    let store = database.store().await;
    let account = store.insert_account(&root("signer")).await.expect("inserts");
    let new = NewWebhook { secret: SecretChange::Set("whsec_first".into()), ..hook_of(&account.id) };
    let created = store.insert_webhook(&new).await.expect("inserts");
    assert!(created.signed);
    assert_eq!(store.signing_secret(&new.id).await.expect("reads").as_deref(), Some("whsec_first"));
    assert!(!created.doc.contains_key("signing_secret"), "the secret is not part of the document");

    let kept = store.update_webhook(&account.id, &new.id, &created.revision, &unchanged(&created)).await;
    let kept = kept.expect("updates").expect("exists");
    assert!(kept.signed);
    assert_eq!(store.signing_secret(&new.id).await.expect("reads").as_deref(), Some("whsec_first"));
    let replaced = WebhookChange { secret: SecretChange::Set("whsec_second".into()), ..unchanged(&kept) };
    let replaced = store.update_webhook(&account.id, &new.id, &kept.revision, &replaced).await.expect("updates");
    let replaced = replaced.expect("exists");
    assert_eq!(store.signing_secret(&new.id).await.expect("reads").as_deref(), Some("whsec_second"));
    let removed = WebhookChange { secret: SecretChange::Remove, ..unchanged(&replaced) };
    let removed = store.update_webhook(&account.id, &new.id, &replaced.revision, &removed).await.expect("updates");
    let removed = removed.expect("exists");
    assert!(!removed.signed);
    assert_eq!(store.signing_secret(&new.id).await.expect("reads"), None);
    let listed = store.webhook(&account.id, &new.id).await.expect("reads").expect("exists");
    assert!(!listed.signed);

    // Failures counted while a hook is disabled are forgotten when it is enabled again, by hand
    // or by the bulk re-enable.
    let window = std::time::Duration::from_secs(60);
    let disabled = WebhookChange { enabled: false, ..unchanged(&removed) };
    let disabled = store.update_webhook(&account.id, &new.id, &removed.revision, &disabled).await.expect("updates");
    let disabled = disabled.expect("exists");
    store.record_failure(&account.id, &new.id, 1_000, window).await.expect("counts");
    let enabled = WebhookChange { enabled: true, ..unchanged(&disabled) };
    let enabled = store.update_webhook(&account.id, &new.id, &disabled.revision, &enabled).await.expect("updates");
    assert!(enabled.expect("exists").enabled);
    assert_eq!(store.failure_count(&new.id, 2_000, window).await.expect("counts"), 0);

    assert!(store.auto_disable_webhook(&account.id, &new.id, "too many failed attempts").await.expect("disables"));
    store.record_failure(&account.id, &new.id, 3_000, window).await.expect("counts");
    assert_eq!(store.reenable_webhooks(&account.id, false).await.expect("re-enables"), 1);
    assert_eq!(store.failure_count(&new.id, 4_000, window).await.expect("counts"), 0);
}
