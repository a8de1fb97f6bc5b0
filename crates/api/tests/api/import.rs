//! The import of Kazoo's accounts, hooks, limits and attempts from CouchDB, and the export of
//! hooks back into it (a `pouchdb-server` seeded with the
//! Kazoo-shaped documents of `fixtures/kazoo/couchdb`), on SQLite and PostgreSQL: field by field,
//! repeated, with changes and deletions in between, bad documents, and a dry run. No dispatcher
//! runs: the hooks' addresses are stored, never called.

use serde_json::{Map, Value, json};
use webhooks_api::operations::{
    ImportOptions, ImportReport, Tally, export_hooks, import_accounts, import_attempts, import_hooks, import_limits,
};
use webhooks_model::hooks::HookDefinitions;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::retry::FailureLimits;
use webhooks_storage::couch::CouchDb;
use webhooks_storage::{PageRequest, Store};
use webhooks_test_support::couch::{CouchStandIn, couch_fixtures};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::test_matrix;

test_matrix!(
    databases;
    kazoos_accounts_and_hooks_are_imported_field_by_field,
    a_repeated_import_brings_over_changes_and_deletions_only,
    bad_documents_are_reported_and_skipped_and_the_rest_imported,
    a_dry_run_reports_and_writes_nothing,
    failure_limits_are_imported_as_kazoo_applies_them_and_survive_a_repeated_import,
    attempt_records_of_the_months_asked_for_are_imported_once,
    an_export_then_an_import_gives_the_same_hooks,
);

const SUB1: &str = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d";
const MASTER: &str = "1f0e2d3c4b5a69788796a5b4c3d2e1f0";

/// Kazoo's CouchDB with the fixture accounts and hooks.
async fn seeded() -> CouchStandIn {
    let couch = CouchStandIn::start().await;
    couch.put_fixtures("accounts", "accounts").await;
    couch.put_fixtures("webhooks", "webhooks").await;
    couch
}

/// Imports accounts and hooks as `webhooks import` does; `commit` false for a dry run.
async fn import(store: &Store, couch: &CouchStandIn, commit: bool) -> ImportReport {
    let definitions = HookDefinitions::default();
    // Small pages, so that paging is exercised.
    let options = ImportOptions { definitions: &definitions, allow_private_targets: false, batch_size: 4, commit };
    let couch = CouchDb::new(couch.url()).expect("a CouchDB url");
    let mut report = ImportReport::default();
    import_accounts(store, &couch, options, &mut report).await.expect("accounts imported");
    import_hooks(store, &couch, options, &mut report, |_| {}).await.expect("hooks imported");
    import_limits(store, &couch, options, FailureLimits::default(), &mut report).await.expect("limits imported");
    report
}

fn tally(read: usize, imported: usize, updated: usize, unchanged: usize, skipped: usize, deleted: usize) -> Tally {
    Tally { read, imported, updated, unchanged, skipped, deleted }
}

fn id<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    text.parse().expect("an id")
}

/// The public fields of a CouchDB document.
fn public(doc: &Value) -> Map<String, Value> {
    let object = doc.as_object().expect("a document");
    object
        .iter()
        .filter(|(key, _)| !key.starts_with('_') && !key.starts_with("pvt_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn kazoos_accounts_and_hooks_are_imported_field_by_field(database: TestDatabase) {
    let store = database.store().await;
    let couch = seeded().await;
    let report = import(&store, &couch, true).await;
    assert_eq!(report.accounts, tally(5, 5, 0, 0, 0, 0));
    assert_eq!(report.hooks, tally(12, 11, 0, 0, 1, 0), "the soft-deleted hook is skipped: {:?}", report.problems);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.new_ids.is_empty());
    assert_eq!(report.changes.len(), 16, "every account and hook is announced");

    let sub1 = store.account(&id(SUB1)).await.expect("the store answers").expect("sub1 imported");
    assert_eq!(sub1.name, "Acme Customer");
    assert_eq!(sub1.tree, [id::<AccountId>(MASTER), id("b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2")]);
    assert_eq!(
        Value::Object(sub1.doc),
        json!({"enabled": true, "is_reseller": false, "realm": "acme.sip.example.net",
               "reseller_id": "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2"})
    );
    assert_eq!(sub1.api_key, "1cddbb33e996535bc589ba5ee7398638a06de664d6c6428b343081c72be7beff", "Kazoo's API key");
    let master = store.account(&id(MASTER)).await.expect("the store answers").expect("the master");
    assert!(master.superduper_admin && master.tree.is_empty());
    assert_eq!(store.setting("master_account_id").await.expect("the store answers").as_deref(), Some(MASTER));

    for (name, doc) in couch_fixtures("webhooks") {
        let hook_id: WebhookId = id(doc["_id"].as_str().expect("an id"));
        let owner: AccountId = id(doc["pvt_account_id"].as_str().expect("an owner"));
        let stored = store.webhook(&owner, &hook_id).await.expect("the store answers");
        if name == "soft_deleted" {
            assert!(stored.is_none(), "a soft-deleted hook is not imported");
            continue;
        }
        let stored = stored.unwrap_or_else(|| panic!("{name} imported"));
        let mut expected = public(&doc);
        match name.as_str() {
            // Kazoo's non-strict mode stores the number; its load-time migration makes a legacy
            // hook a notifications hook with a top-level type.
            "legacy_callflow_disabled" => {
                expected.insert("retries".into(), json!(1));
                expected.insert("hook".into(), json!("notifications"));
                expected.insert("type".into(), json!("callflow"));
            }
            "disabled_auto" => assert_eq!(stored.disabled_reason.as_deref(), Some("too many failed attempts")),
            _ => assert_eq!(stored.disabled_reason, None, "{name}"),
        }
        for (key, value) in &expected {
            assert_eq!(stored.doc.get(key), Some(value), "{name}: {key}");
        }
        assert_eq!(stored.enabled, doc["enabled"] == true, "{name}");
        assert_eq!(stored.hook, expected["hook"], "{name}");
    }
}

async fn a_repeated_import_brings_over_changes_and_deletions_only(database: TestDatabase) {
    let store = database.store().await;
    let couch = seeded().await;
    import(&store, &couch, true).await;

    let again = import(&store, &couch, true).await;
    assert_eq!((again.accounts, again.hooks), (tally(5, 0, 0, 5, 0, 0), tally(12, 0, 0, 11, 1, 0)));
    assert!(again.changes.is_empty(), "nothing to announce: {:?}", again.changes);

    // In Kazoo meanwhile: a hook renamed, one deleted through Crossbar (soft), one compacted away.
    let fixtures = couch_fixtures("webhooks");
    let doc =
        |name: &str| fixtures.iter().find(|(file, _)| file == name).map(|(_, doc)| doc.clone()).expect("a fixture");
    let mut renamed = doc("channel_answer");
    renamed["name"] = json!("renamed in Kazoo");
    couch.put("webhooks", &renamed).await;
    let mut soft_deleted = doc("parking");
    soft_deleted["pvt_deleted"] = json!(true);
    couch.put("webhooks", &soft_deleted).await;
    let gone = doc("channel_destroy");
    couch.delete("webhooks", gone["_id"].as_str().expect("an id")).await;

    let third = import(&store, &couch, true).await;
    assert_eq!(third.hooks, tally(11, 0, 1, 8, 2, 2), "{:?}", third.problems);
    assert_eq!(third.changes.len(), 3);
    let owner: AccountId = id(SUB1);
    let answer: WebhookId = id(renamed["_id"].as_str().expect("an id"));
    let stored = store.webhook(&owner, &answer).await.expect("the store answers").expect("still there");
    assert_eq!(stored.doc["name"], "renamed in Kazoo");
    for deleted in [soft_deleted, gone] {
        let deleted: WebhookId = id(deleted["_id"].as_str().expect("an id"));
        assert!(store.webhook(&owner, &deleted).await.expect("the store answers").is_none());
    }
}

async fn bad_documents_are_reported_and_skipped_and_the_rest_imported(database: TestDatabase) {
    let store = database.store().await;
    let couch = seeded().await;
    let hook = |id: &str, owner: &str, uri: &str| {
        json!({"_id": id, "pvt_type": "webhook", "pvt_account_id": owner, "name": id, "uri": uri,
               "hook": "channel_create"})
    };
    couch.put("webhooks", &json!({"_id": "no-owner", "pvt_type": "webhook", "hook": "channel_create"})).await;
    couch.put("webhooks", &hook("bad-uri", SUB1, "not a url")).await;
    couch.put("webhooks", &hook("unknown-owner", "00000000000000000000000000000abc", "https://a.example.com/")).await;
    couch.put("webhooks", &hook("legacy-id-1", SUB1, "https://hooks.example.com/legacy")).await;

    let report = import(&store, &couch, true).await;
    assert_eq!(report.hooks, tally(16, 12, 0, 0, 4, 0));
    let reasons: Vec<(&str, &str)> =
        report.problems.iter().map(|problem| (problem.source.as_str(), problem.reason.as_str())).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.contains(&("no-owner", "pvt_account_id is missing or not an account id")), "{reasons:?}");
    assert!(reasons.contains(&("unknown-owner", "its account (pvt_account_id) is not known here")), "{reasons:?}");
    let (_, bad_uri) = reasons.iter().find(|(source, _)| *source == "bad-uri").expect("the bad uri reported");
    assert!(bad_uri.starts_with("invalid hook: ") && bad_uri.contains("uri"), "{bad_uri}");

    // A document id that is no hook id gets one, kept by the next import.
    let [(source, new_id)] = report.new_ids.as_slice() else { panic!("one new id: {:?}", report.new_ids) };
    assert_eq!(source, "legacy-id-1");
    let stored = store.webhook(&id(SUB1), new_id).await.expect("the store answers").expect("imported");
    assert_eq!(stored.doc["uri"], "https://hooks.example.com/legacy");
    let again = import(&store, &couch, true).await;
    assert!(again.new_ids.is_empty());
    assert_eq!(again.hooks.unchanged, 12);
}

async fn a_dry_run_reports_and_writes_nothing(database: TestDatabase) {
    let store = database.store().await;
    let couch = seeded().await;
    let report = import(&store, &couch, false).await;
    assert_eq!((report.accounts, report.hooks), (tally(5, 5, 0, 0, 0, 0), tally(12, 11, 0, 0, 1, 0)));
    assert!(store.account(&id(SUB1)).await.expect("the store answers").is_none(), "no account written");
    assert_eq!(store.setting("master_account_id").await.expect("the store answers"), None);
    assert!(store.imported_webhooks().await.expect("the store answers").is_empty(), "no hook written");
}

async fn failure_limits_are_imported_as_kazoo_applies_them_and_survive_a_repeated_import(database: TestDatabase) {
    let store = database.store().await;
    let couch = seeded().await;
    couch.put_config_fixtures().await;
    let report = import(&store, &couch, true).await;
    assert_eq!(report.limits, tally(3, 4, 0, 0, 0, 0), "the system's, and three accounts'");
    let system = store.system_failure_limits(FailureLimits::default()).await.expect("the store answers");
    assert_eq!(system, Some(FailureLimits { threshold: 6, window: std::time::Duration::from_secs(60) }));
    let limits = |account: &'static str| {
        let store = store.clone();
        async move {
            let account = store.account(&id(account)).await.expect("the store answers").expect("imported");
            account.doc.get("webhooks").cloned()
        }
    };
    let reseller = json!({"attempt_failure_count": 3, "attempt_failure_expiry_ms": 300000});
    assert_eq!(limits("b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2").await, Some(reseller.clone()), "its own");
    assert_eq!(limits(SUB1).await, Some(reseller), "no document of its own: its reseller's");
    assert_eq!(
        limits("4c5d6e7f8091a2b3c4d5e6f708192a3b").await,
        Some(json!({"attempt_failure_count": 10})),
        "its own, partial"
    );
    assert_eq!(limits("9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b").await, None, "neither: the system's");

    // The accounts written again as Kazoo has them keep the limits set here.
    let again = import(&store, &couch, true).await;
    assert_eq!((again.accounts.unchanged, again.limits), (5, tally(3, 0, 0, 4, 0, 0)));
    assert_eq!(limits(SUB1).await.expect("kept")["attempt_failure_count"], 3);
}

async fn attempt_records_of_the_months_asked_for_are_imported_once(database: TestDatabase) {
    let store = database.store().await;
    let couch = seeded().await;
    let fixtures = couch_fixtures("attempts");
    for (_, doc) in &fixtures {
        couch.put(doc["pvt_account_db"].as_str().expect("a monthly database"), doc).await;
    }
    // February's database: read only when two months are asked for in March 2024.
    let mut older = fixtures[0].1.clone();
    older["_id"] = json!("0123456789abcdef0123456789abcdef");
    couch.put("account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d-202402", &older).await;
    import(&store, &couch, true).await;
    let attempts = |months: u32| {
        let (store, couch) = (store.clone(), CouchDb::new(couch.url()).expect("a CouchDB url"));
        async move {
            let definitions = HookDefinitions::default();
            let options =
                ImportOptions { definitions: &definitions, allow_private_targets: false, batch_size: 2, commit: true };
            let mut report = ImportReport::default();
            // 2024-03-15.
            import_attempts(&store, &couch, options, months, 1_710_460_800, &mut report, |_| {})
                .await
                .expect("imported");
            report.attempts
        }
    };

    assert_eq!(attempts(1).await, tally(3, 3, 0, 0, 0, 0), "March's three");
    let everything = PageRequest { start_key: None, page_size: None, ascending: true };
    let stored = store.list_attempts(&id(SUB1), None, 0, i64::MAX, &everything).await.expect("listed").items;
    let success = &fixtures.iter().find(|(name, _)| name == "success").expect("a success").1;
    let imported = stored.iter().find(|attempt| attempt.id == success["_id"]).expect("the success imported");
    assert_eq!(Value::Object(imported.doc.clone()), Value::Object(public(success)), "its public fields, verbatim");
    assert_eq!(imported.created, success["pvt_created"].as_i64().expect("a time"));
    assert_eq!(imported.hook_id.as_str(), success["hook_id"]);

    assert_eq!(attempts(2).await, tally(4, 1, 0, 3, 0, 0), "February's one more; March's already there");
    assert_eq!(attempts(0).await, tally(0, 0, 0, 0, 0, 0));
}

async fn an_export_then_an_import_gives_the_same_hooks(database: TestDatabase) {
    let store = database.store().await;
    let kazoo = seeded().await;
    import(&store, &kazoo, true).await;

    // Back to a CouchDB holding Kazoo's accounts but no hook.
    let back = CouchStandIn::start().await;
    back.put_fixtures("accounts", "accounts").await;
    let couch = CouchDb::new(back.url()).expect("a CouchDB url");
    let (exported, refused) = export_hooks(&store, &couch, |_| {}).await.expect("exported");
    assert_eq!((exported, refused.len()), (tally(11, 11, 0, 0, 0, 0), 0));
    let (again, _) = export_hooks(&store, &couch, |_| {}).await.expect("exported");
    assert_eq!(again, tally(11, 0, 0, 11, 0, 0), "nothing to write again");

    let other = TestDatabase::sqlite().await.store().await;
    let report = import(&other, &back, true).await;
    assert_eq!(report.hooks, tally(11, 11, 0, 0, 0, 0), "{:?}", report.problems);
    let everything = |store: Store| async move {
        let mut hooks = Vec::new();
        let mut after = None;
        loop {
            let page = store.all_webhooks_page(after.as_ref(), 100).await.expect("the store answers");
            hooks.extend(page.iter().map(|hook| {
                (
                    hook.id.clone(),
                    hook.account_id.clone(),
                    hook.hook.clone(),
                    hook.enabled,
                    hook.include_subaccounts,
                    hook.disabled_reason.clone(),
                    hook.doc.clone(),
                )
            }));
            match page.last() {
                Some(last) if page.len() == 100 => after = Some(last.id.clone()),
                _ => return hooks,
            }
        }
    };
    assert_eq!(everything(other).await, everything(store).await);
}
