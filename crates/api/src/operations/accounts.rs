//! Writes of accounts: create, update, delete, and the sync of an account another system of
//! record (Kazoo) owns.

use serde_json::{Map, Value};
use webhooks_model::ids::AccountId;
use webhooks_model::notice::{Action, Change};
use webhooks_storage::{Account, NewAccount, StorageError, Store, Synced};

use super::Committed;

/// Stores the account `new`.
pub async fn create_account(store: &Store, new: &NewAccount) -> Result<Committed<Account>, StorageError> {
    let account = store.insert_account(new).await?;
    let change = Change::Account { action: Action::Created, id: account.id.clone() };
    Ok(Committed::new(account, change))
}

/// Replaces the name and document of account `id`; `None` when there is no such account.
pub async fn update_account(
    store: &Store,
    id: &AccountId,
    name: &str,
    doc: &Map<String, Value>,
) -> Result<Option<Committed<Account>>, StorageError> {
    let updated = store.update_account(id, name, doc).await?;
    Ok(updated.map(|account| {
        let change = Change::Account { action: Action::Edited, id: account.id.clone() };
        Committed::new(account, change)
    }))
}

/// Deletes account `id` with its hooks and attempts; `None` when there is no such account,
/// [`StorageError::HasChildren`] while it has sub-accounts.
pub async fn delete_account(store: &Store, id: &AccountId) -> Result<Option<Committed<()>>, StorageError> {
    let deleted = store.delete_account(id).await?;
    Ok(deleted.then(|| Committed::new((), Change::Account { action: Action::Deleted, id: id.clone() })))
}

/// Writes `account` as Kazoo has it (inserted, or updated and moved with its subtree: see
/// [`Store::sync_account`]); `None` when it was stored as given, which nobody need hear of.
pub async fn sync_account(store: &Store, account: &NewAccount) -> Result<Option<Committed<Account>>, StorageError> {
    let (account, synced) = store.sync_account(account).await?;
    let action = match synced {
        Synced::Created => Action::Created,
        Synced::Changed => Action::Edited,
        Synced::Unchanged => return Ok(None),
    };
    let change = Change::Account { action, id: account.id.clone() };
    Ok(Some(Committed::new(account, change)))
}
