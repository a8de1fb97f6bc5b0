//! Accounts: their tree, their API keys, updates and deletion.

use serde_json::json;
use webhooks_model::ids::AccountId;
use webhooks_storage::{NewAccount, StorageError};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::object;
use webhooks_test_support::test_matrix;

use crate::{account_ids, attempt, child_of, hook_of, page, revision_number, root, sorted};

test_matrix!(
    databases;
    accounts_three_levels_deep_report_their_tree_children_and_descendants,
    an_account_is_found_by_its_api_key_and_keys_are_unique,
    updating_an_account_replaces_its_name_and_fields_and_bumps_its_revision,
    deleting_an_account_removes_its_hooks_and_attempts_and_nothing_else,
);

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
