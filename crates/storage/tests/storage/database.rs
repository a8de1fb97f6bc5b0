//! The database itself: migrations, settings, the master account, outages, the URLs accepted.

use std::collections::HashSet;

use webhooks_storage::{Backend, NewAccount, StorageError, Store};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::test_matrix;

use crate::root;

test_matrix!(
    databases;
    migrating_again_and_from_several_tasks_at_once_succeeds,
    settings_keep_the_first_value_stored_even_under_concurrent_writers,
    bootstrapping_the_master_from_many_tasks_at_once_creates_exactly_one,
    a_schema_check_names_the_migrations_a_database_lacks,
    a_schema_check_reports_a_record_of_migrations_it_cannot_read,
);

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

async fn a_schema_check_names_the_migrations_a_database_lacks(database: TestDatabase) {
    let backend = if database.url().starts_with("sqlite://") { "sqlite" } else { "postgres" };
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    // A migration's version is its directory's date and time, digits only.
    let mut versions: Vec<String> = std::fs::read_dir(directory)
        .expect("the migrations")
        .map(|entry| {
            let name = entry.expect("an entry").file_name().into_string().expect("a UTF-8 name");
            name.split('_').next().expect("a version").replace('-', "")
        })
        .collect();
    versions.sort();
    let store = Store::connect(database.url(), 2).await.expect("connects");
    for _ in 0..2 {
        // Twice: the first check created nothing (not even diesel's record of migrations).
        match store.check_schema().await {
            Err(StorageError::SchemaBehind(missing)) => assert_eq!(missing, versions),
            other => panic!("an unmigrated database passed the check: {other:?}"),
        }
    }
    store.migrate().await.expect("migrates");
    store.check_schema().await.expect("a migrated database passes");
}

async fn a_schema_check_reports_a_record_of_migrations_it_cannot_read(database: TestDatabase) {
    // A record that exists but cannot be read says nothing of what is applied: the check must
    // fail with the database's reason, not call the schema empty.
    let store = Store::connect(database.url(), 2).await.expect("connects");
    database.execute("CREATE TABLE __diesel_schema_migrations (applied TEXT)").await;
    match store.check_schema().await {
        Err(StorageError::Query(error)) => assert!(error.to_string().contains("version"), "{error}"),
        other => panic!("an unreadable record passed as a schema state: {other:?}"),
    }
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

#[tokio::test]
async fn urls_of_other_databases_are_refused() {
    for url in ["mysql://localhost/db", "sqlite://", "no scheme at all"] {
        assert!(matches!(Store::connect(url, 1).await, Err(StorageError::InvalidUrl(_))), "{url}");
    }
}
