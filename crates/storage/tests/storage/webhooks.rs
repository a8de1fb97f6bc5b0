//! Webhooks: writes with revision checks, documents, listings, re-enabling, what the router reads,
//! signing secrets.

use std::collections::HashSet;

use serde_json::{Map, Value, json};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::webhook::SecretChange;
use webhooks_storage::{NewAccount, NewAttempt, NewWebhook, StorageError, WebhookChange};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::object;
use webhooks_test_support::test_matrix;

use crate::{account_ids, attempt, child_of, hook_of, page, revision_number, root, sorted, unchanged};

test_matrix!(
    databases;
    webhooks_are_created_read_updated_and_deleted_with_revision_checks,
    documents_keep_their_key_order_and_unknown_fields,
    webhook_listings_page_by_id_in_either_direction,
    reenabling_touches_only_auto_disabled_hooks_of_the_account_or_its_subtree,
    enabled_webhooks_are_those_of_every_account_that_are_enabled,
    the_router_reads_every_account_hooks_by_id_and_the_enabled_hooks_of_a_subtree,
    a_secret_is_written_with_its_hook_and_enabling_a_hook_forgets_its_failures,
);

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
    store.record_failures(&account.id, &new.id, 1, 1_000, window).await.expect("counts");
    let enabled = WebhookChange { enabled: true, ..unchanged(&disabled) };
    let enabled = store.update_webhook(&account.id, &new.id, &disabled.revision, &enabled).await.expect("updates");
    assert!(enabled.expect("exists").enabled);
    assert_eq!(store.failure_count(&new.id, 2_000, window).await.expect("counts"), 0);

    assert!(store.auto_disable_webhook(&account.id, &new.id, "too many failed attempts").await.expect("disables"));
    store.record_failures(&account.id, &new.id, 1, 3_000, window).await.expect("counts");
    assert_eq!(store.reenable_webhooks(&account.id, false).await.expect("re-enables"), 1);
    assert_eq!(store.failure_count(&new.id, 4_000, window).await.expect("counts"), 0);
}
