//! Integration tests of the store, in one test binary. Every test runs twice: on a fresh SQLite
//! file and on a fresh database of the PostgreSQL server at `WEBHOOKS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432`).

mod accounts;
mod attempts;
mod database;
mod sync;
mod webhooks;

use serde_json::{Map, json};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::webhook::SecretChange;
use webhooks_storage::{Account, NewAccount, NewAttempt, NewWebhook, PageRequest, WebhookChange};
use webhooks_test_support::store::{new_webhook, object};

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
