//! Accounts written as another system of record has them ([`Store::sync_account`]): inserted,
//! updated, moved with their subtree, on SQLite and on PostgreSQL.

use serde_json::{Map, json};
use webhooks_model::ids::AccountId;
use webhooks_storage::{Account, NewAccount, StorageError, Store, Synced};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::test_matrix;

test_matrix!(
    databases;
    synced_accounts_are_inserted_updated_and_moved_with_their_subtree,
    a_synced_account_keeps_the_failure_limits_set_here,
);

fn account(id: &AccountId, name: &str, tree: &[&AccountId]) -> NewAccount {
    NewAccount {
        id: id.clone(),
        name: name.to_owned(),
        parent: tree
            .split_last()
            .map(|(parent, ancestors)| ((*parent).clone(), ancestors.iter().map(|a| (*a).clone()).collect())),
        api_key: uuid::Uuid::new_v4().simple().to_string(),
        superduper_admin: tree.is_empty(),
        doc: Map::new(),
    }
}

async fn sync(store: &Store, new: &NewAccount) -> (Account, Synced) {
    store.sync_account(new).await.expect("synced")
}

async fn synced_accounts_are_inserted_updated_and_moved_with_their_subtree(database: TestDatabase) {
    let store = database.store().await;
    let [root, left, right, child, grandchild] = std::array::from_fn(|_| AccountId::generate());
    for (new, tree) in [
        (&root, vec![]),
        (&left, vec![&root]),
        (&right, vec![&root]),
        (&child, vec![&root, &left]),
        (&grandchild, vec![&root, &left, &child]),
    ] {
        assert_eq!(sync(&store, &account(new, "a", &tree)).await.1, Synced::Created);
    }
    let again = account(&child, "a", &[&root, &left]);
    assert_eq!(sync(&store, &again).await.1, Synced::Unchanged);

    let mut renamed = account(&child, "renamed", &[&root, &left]);
    renamed.doc = json!({"enabled": false}).as_object().cloned().expect("an object");
    let (stored, synced) = sync(&store, &renamed).await;
    assert_eq!(
        (synced, stored.name.as_str(), stored.doc["enabled"].as_bool()),
        (Synced::Changed, "renamed", Some(false))
    );
    assert_eq!(stored.revision.split('-').next(), Some("2"));

    // The child moves from left to right, its own child with it.
    let (moved, synced) = sync(&store, &account(&child, "renamed", &[&root, &right])).await;
    assert_eq!(synced, Synced::Changed);
    assert_eq!(moved.tree, [root.clone(), right.clone()]);
    assert_eq!(moved.parent_id.as_ref(), Some(&right));
    let below = store.account(&grandchild).await.expect("read").expect("still there");
    assert_eq!(below.tree, [root.clone(), right.clone(), child.clone()]);
    assert!(store.descendants(&left).await.expect("read").is_empty());
    let under_right: Vec<AccountId> =
        store.descendants(&right).await.expect("read").into_iter().map(|a| a.id).collect();
    assert_eq!(under_right.len(), 2);

    // Neither under an unknown parent nor under its own descendant.
    let orphan = account(&AccountId::generate(), "orphan", &[&root, &AccountId::generate()]);
    assert!(matches!(store.sync_account(&orphan).await, Err(StorageError::UnknownParent(_))));
    let cycle = account(&child, "renamed", &[&root, &right, &child, &grandchild]);
    assert!(matches!(store.sync_account(&cycle).await, Err(StorageError::UnknownParent(_))));
}

/// Two processes sharing PostgreSQL copy one account one at a time; other accounts do not wait.
#[tokio::test(flavor = "multi_thread")]
async fn an_accounts_copy_lock_holds_across_processes() {
    let database = TestDatabase::postgres().await;
    let (first, second) = (database.store().await, Store::connect(database.url(), 2).await.expect("a second pool"));
    let [account, other] = std::array::from_fn(|_| AccountId::generate());
    let held = first.lock_account_copy(&account).await.expect("locked");

    let waiting = tokio::spawn({
        let (second, account) = (second.clone(), account.clone());
        async move { second.lock_account_copy(&account).await.map(drop) }
    });
    let other_lock = second.lock_account_copy(&other).await.expect("another account is not held up");
    drop(other_lock);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the second process waits while the first holds the account");

    drop(held);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("released when dropped")
        .expect("the task ran")
        .expect("then locked");
}

/// The other system's document has no failure limits: those set here stay.
async fn a_synced_account_keeps_the_failure_limits_set_here(database: TestDatabase) {
    let store = database.store().await;
    let root = AccountId::generate();
    let (stored, _) = sync(&store, &account(&root, "root", &[])).await;
    let mut doc = stored.doc.clone();
    doc.insert("webhooks".into(), json!({"attempt_failure_count": 3}));
    store.update_account(&root, "root", &doc).await.expect("the store answers").expect("updated");

    let (again, synced) = sync(&store, &account(&root, "root", &[])).await;
    assert_eq!(synced, Synced::Unchanged);
    assert_eq!(again.doc["webhooks"], json!({"attempt_failure_count": 3}));
    let (renamed, synced) = sync(&store, &account(&root, "renamed", &[])).await;
    assert_eq!((synced, renamed.doc["webhooks"].clone()), (Synced::Changed, json!({"attempt_failure_count": 3})));
}
