//! Reads across accounts: enabled hooks for the router's index, every hook for an export, and a
//! hook by id alone.

use diesel::prelude::*;
use webhooks_model::ids::{AccountId, WebhookId};

use super::{Webhook, WebhookRow, into_webhooks, load_any};
use crate::Store;
use crate::accounts::{load_path, subtree_ids};
use crate::error::Result;
use crate::schema::webhooks;

impl Store {
    /// Every enabled hook of every account, ordered by account and id.
    pub async fn enabled_webhooks(&self) -> Result<Vec<Webhook>> {
        self.run(|connection| {
            let rows = webhooks::table
                .filter(webhooks::enabled.eq(true))
                .order((webhooks::account_id.asc(), webhooks::id.asc()))
                .select(WebhookRow::as_select())
                .load(connection)?;
            into_webhooks(rows)
        })
        .await
    }

    /// One page of the enabled hooks of every account, by id ascending, starting after the hook
    /// id `after` (from the start when `None`): the router loads its index page by page, so a
    /// reload never holds every document at once.
    pub async fn enabled_webhooks_page(&self, after: Option<&WebhookId>, limit: u32) -> Result<Vec<Webhook>> {
        self.webhooks_page(after, limit, true).await
    }

    /// How many hooks there are, of every account.
    pub async fn count_webhooks(&self) -> Result<usize> {
        self.run(|connection| {
            let count: i64 = webhooks::table.count().get_result(connection)?;
            Ok(usize::try_from(count).unwrap_or(usize::MAX))
        })
        .await
    }

    /// One page of every hook, enabled or not, as [`Store::enabled_webhooks_page`] pages (an
    /// export reads them so).
    pub async fn all_webhooks_page(&self, after: Option<&WebhookId>, limit: u32) -> Result<Vec<Webhook>> {
        self.webhooks_page(after, limit, false).await
    }

    async fn webhooks_page(&self, after: Option<&WebhookId>, limit: u32, enabled_only: bool) -> Result<Vec<Webhook>> {
        let after = after.map(ToString::to_string);
        self.run(move |connection| {
            let mut query = webhooks::table
                .order(webhooks::id.asc())
                .limit(i64::from(limit))
                .select(WebhookRow::as_select())
                .into_boxed();
            if enabled_only {
                query = query.filter(webhooks::enabled.eq(true));
            }
            if let Some(after) = after {
                query = query.filter(webhooks::id.gt(after));
            }
            into_webhooks(query.load(connection)?)
        })
        .await
    }

    /// A hook by id alone, whoever owns it (the router applying a change notice).
    pub async fn webhook_by_id(&self, id: &WebhookId) -> Result<Option<Webhook>> {
        let id = id.to_string();
        self.run(move |connection| load_any(connection, &id)).await
    }

    /// The enabled hooks of an account, and of its descendants when `include_descendants`.
    pub async fn enabled_webhooks_of(&self, account: &AccountId, include_descendants: bool) -> Result<Vec<Webhook>> {
        let account = account.to_string();
        self.run(move |connection| {
            let rows = if include_descendants {
                let Some(path) = load_path(connection, &account)? else {
                    return Ok(Vec::new());
                };
                webhooks::table
                    .filter(webhooks::account_id.eq_any(subtree_ids(path)))
                    .filter(webhooks::enabled.eq(true))
                    .order((webhooks::account_id.asc(), webhooks::id.asc()))
                    .select(WebhookRow::as_select())
                    .load(connection)?
            } else {
                webhooks::table
                    .filter(webhooks::account_id.eq(&account))
                    .filter(webhooks::enabled.eq(true))
                    .order(webhooks::id.asc())
                    .select(WebhookRow::as_select())
                    .load(connection)?
            };
            into_webhooks(rows)
        })
        .await
    }
}
