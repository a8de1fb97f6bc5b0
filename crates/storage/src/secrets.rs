//! Standard Webhooks signing secrets of hooks (docs/kazoo.md#signing): stored apart from the
//! documents so no document read or listing can return them, and removed with their hook.

use diesel::prelude::*;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::webhook::SecretChange;

use crate::Store;
use crate::connection::{AnyConnection, write_transaction};
use crate::error::{Result, StorageError};
use crate::schema::webhooks;

diesel::table! {
    /// One signing secret per signed hook.
    webhook_secrets (hook_id) {
        /// The hook.
        hook_id -> Text,
        /// `whsec_` followed by base64.
        secret -> Text,
    }
}

impl Store {
    /// Sets (`Some`) or removes (`None`) the signing secret of the hook `hook` of `account`.
    /// `false` when `account` owns no such hook. The secret is stored as given; the API
    /// validates its shape.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account, hook.id = %hook))]
    pub async fn set_signing_secret(
        &self,
        account: &AccountId,
        hook: &WebhookId,
        secret: Option<&str>,
    ) -> Result<bool> {
        let account = account.to_string();
        let hook = hook.to_string();
        let secret = secret.map(str::to_owned);
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                let owned = webhooks::table
                    .filter(webhooks::account_id.eq(&account))
                    .filter(webhooks::id.eq(&hook))
                    .select(webhooks::id)
                    .first::<String>(connection)
                    .optional()?
                    .is_some();
                if !owned {
                    return Ok(false);
                }
                let change = secret.map_or(SecretChange::Remove, SecretChange::Set);
                write_secret(connection, &hook, &change)?;
                diesel::update(webhooks::table.filter(webhooks::id.eq(&hook)))
                    .set(webhooks::signed.eq(matches!(change, SecretChange::Set(_))))
                    .execute(connection)?;
                Ok(true)
            })
        })
        .await
    }

    /// The signing secret of `hook`, if it has one (the dispatcher signing a callout).
    pub async fn signing_secret(&self, hook: &WebhookId) -> Result<Option<String>> {
        let hook = hook.to_string();
        self.run(move |connection| {
            webhook_secrets::table
                .filter(webhook_secrets::hook_id.eq(hook))
                .select(webhook_secrets::secret)
                .first::<String>(connection)
                .optional()
                .map_err(StorageError::from)
        })
        .await
    }
}

/// Applies `change` to the secret of `hook`, inside the caller's transaction.
pub(crate) fn write_secret(connection: &mut AnyConnection, hook: &str, change: &SecretChange) -> Result<()> {
    match change {
        SecretChange::Keep => {}
        SecretChange::Remove => {
            diesel::delete(webhook_secrets::table.filter(webhook_secrets::hook_id.eq(hook))).execute(connection)?;
        }
        SecretChange::Set(secret) => {
            diesel::delete(webhook_secrets::table.filter(webhook_secrets::hook_id.eq(hook))).execute(connection)?;
            diesel::insert_into(webhook_secrets::table)
                .values((webhook_secrets::hook_id.eq(hook), webhook_secrets::secret.eq(secret)))
                .execute(connection)?;
        }
    }
    Ok(())
}
