//! Writes of hooks: create, update (re-enabling one hook among them), delete, and the bulk
//! re-enable of an account's auto-disabled hooks.

use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::notice::{Action, Change};
use webhooks_model::webhook::WebhookDocument;
use webhooks_storage::{NewWebhook, StorageError, Store, Webhook, WebhookChange};

use super::Committed;

/// Stores `document`, validated, as hook `id` of `account`.
pub async fn create_webhook(
    store: &Store,
    id: WebhookId,
    account: AccountId,
    document: WebhookDocument,
) -> Result<Committed<Webhook>, StorageError> {
    let hook = store.insert_webhook(&new_webhook(id, account, document)).await?;
    Ok(hook_committed(Action::Created, hook))
}

/// `document`, validated, as hook `id` of `account` to store.
pub(crate) fn new_webhook(id: WebhookId, account: AccountId, document: WebhookDocument) -> NewWebhook {
    NewWebhook {
        id,
        account_id: account,
        hook: document.hook().to_owned(),
        enabled: document.enabled(),
        include_subaccounts: document.include_subaccounts(),
        secret: document.signing_secret().clone(),
        doc: document.into_fields(),
    }
}

/// Stores `document`, validated, over `stored`, provided `stored` is still the current revision
/// ([`StorageError::Conflict`] otherwise). Enabling a disabled hook is how one hook is
/// re-enabled: it clears the auto-disable reason and the hook's failure count. `None` when the
/// hook is gone.
pub async fn update_webhook(
    store: &Store,
    stored: &Webhook,
    document: WebhookDocument,
) -> Result<Option<Committed<Webhook>>, StorageError> {
    let disabled_reason = if document.enabled() { None } else { stored.disabled_reason.clone() };
    let change = WebhookChange {
        hook: document.hook().to_owned(),
        enabled: document.enabled(),
        include_subaccounts: document.include_subaccounts(),
        disabled_reason,
        secret: document.signing_secret().clone(),
        doc: document.into_fields(),
    };
    let updated = store.update_webhook(&stored.account_id, &stored.id, &stored.revision, &change).await?;
    Ok(updated.map(|hook| hook_committed(Action::Edited, hook)))
}

/// Deletes hook `id` of `account`; the deleted hook, or `None` when the account has no such hook.
pub async fn delete_webhook(
    store: &Store,
    account: &AccountId,
    id: &WebhookId,
) -> Result<Option<Committed<Webhook>>, StorageError> {
    let deleted = store.delete_webhook(account, id).await?;
    Ok(deleted.map(|hook| hook_committed(Action::Deleted, hook)))
}

/// Re-enables the hooks the auto-disabler disabled (not those disabled by hand) of `account`, and
/// of its descendants with `descendants`, and clears their failure counts; how many were
/// re-enabled. An account that does not exist has none.
pub async fn reenable_hooks(
    store: &Store,
    account: &AccountId,
    descendants: bool,
) -> Result<Committed<u64>, StorageError> {
    let count = store.reenable_webhooks(account, descendants).await?;
    Ok(Committed::new(count, Change::Reenabled { account_id: account.clone(), descendants }))
}

fn hook_committed(action: Action, hook: Webhook) -> Committed<Webhook> {
    let change = Change::Webhook { action, id: hook.id.clone(), account_id: hook.account_id.clone() };
    Committed::new(hook, change)
}
