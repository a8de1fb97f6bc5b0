//! What the operator commands (`webhooks hooks ...`, `webhooks failures ...`, `webhooks limits
//! ...`) need beyond the services' own queries: the failure table as a whole, and the system
//! failure limits kept as a setting so every dispatcher can share them.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::{Map, Value};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::retry::{ACCOUNT_LIMITS_OBJECT, FAILURE_COUNT_KEY, FAILURE_EXPIRY_KEY, FailureLimits};

use crate::Store;
use crate::connection::write_transaction;
use crate::error::{Result, StorageError};
use crate::failures::webhook_failures;
use crate::settings;

/// The system setting holding the system failure limits: a JSON object with the keys an
/// account document's `webhooks` object takes ([`failure_limits_document`]).
pub const FAILURE_LIMITS_SETTING: &str = "failure_limits";

/// The stored failure count of one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    /// The hook.
    pub hook_id: WebhookId,
    /// Its owner.
    pub account_id: AccountId,
    /// Failures counted since the window opened.
    pub failures: u64,
    /// Unix milliseconds of the first failure of the window.
    pub window_started_ms: i64,
    /// Unix milliseconds of the latest failure.
    pub last_failure_ms: i64,
}

impl FailureCount {
    /// The failures that still count at `now_ms` with a window of `window`: 0 once the window
    /// has passed, as [`Store::failure_count`] reads it.
    pub fn current(&self, now_ms: i64, window: Duration) -> u64 {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 4);
        if self.window_started_ms > now_ms - window_ms { self.failures } else { 0 }
    }
}

/// A `webhook_failures` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_failures)]
struct FailureRow {
    hook_id: String,
    account_id: String,
    window_started_ms: i64,
    failures: i64,
    last_failure_ms: i64,
}

impl FailureRow {
    /// The domain count; fails when the stored ids are unreadable.
    fn into_count(self) -> Result<FailureCount> {
        let corrupt = |what: String| StorageError::Corrupt(format!("failure count of hook {}: {what}", self.hook_id));
        let hook_id = self.hook_id.parse::<WebhookId>().map_err(|error| corrupt(error.to_string()))?;
        let account_id = self.account_id.parse::<AccountId>().map_err(|error| corrupt(error.to_string()))?;
        Ok(FailureCount {
            hook_id,
            account_id,
            failures: u64::try_from(self.failures).unwrap_or(0),
            window_started_ms: self.window_started_ms,
            last_failure_ms: self.last_failure_ms,
        })
    }
}

/// The object holding `limits` under the keys [`FailureLimits::for_account`] reads from an
/// account document's `webhooks` object (the window in milliseconds).
pub fn failure_limits_document(limits: FailureLimits) -> Map<String, Value> {
    let mut document = Map::new();
    document.insert(FAILURE_COUNT_KEY.into(), Value::from(limits.threshold));
    document
        .insert(FAILURE_EXPIRY_KEY.into(), Value::from(u64::try_from(limits.window.as_millis()).unwrap_or(u64::MAX)));
    document
}

/// Whether an account document sets limits of its own (either key in its `webhooks` object).
pub fn has_own_failure_limits(account_doc: &Map<String, Value>) -> bool {
    account_doc
        .get(ACCOUNT_LIMITS_OBJECT)
        .and_then(Value::as_object)
        .is_some_and(|config| config.contains_key(FAILURE_COUNT_KEY) || config.contains_key(FAILURE_EXPIRY_KEY))
}

impl Store {
    /// The stored failure counts, of one account's hooks when `account` is given, ordered by
    /// account and hook.
    pub async fn failure_counts(&self, account: Option<&AccountId>) -> Result<Vec<FailureCount>> {
        let account = account.map(ToString::to_string);
        self.run(move |connection| {
            let mut query = webhook_failures::table
                .order((webhook_failures::account_id.asc(), webhook_failures::hook_id.asc()))
                .select(FailureRow::as_select())
                .into_boxed();
            if let Some(account) = account {
                query = query.filter(webhook_failures::account_id.eq(account));
            }
            query.load::<FailureRow>(connection)?.into_iter().map(FailureRow::into_count).collect()
        })
        .await
    }

    /// Forgets the failure counts of one account's hooks, or of every hook when `account` is
    /// `None`; returns how many hooks had one.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn flush_failures(&self, account: Option<&AccountId>) -> Result<u64> {
        let account = account.map(ToString::to_string);
        self.run(move |connection| {
            let deleted = match account {
                Some(account) => {
                    diesel::delete(webhook_failures::table.filter(webhook_failures::account_id.eq(account)))
                        .execute(connection)?
                }
                None => diesel::delete(webhook_failures::table).execute(connection)?,
            };
            Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
        })
        .await
    }

    /// The system failure limits stored with [`Store::set_system_failure_limits`], `None` when
    /// none are; a stored key that is missing or invalid falls back to `configured`.
    pub async fn system_failure_limits(&self, configured: FailureLimits) -> Result<Option<FailureLimits>> {
        let Some(text) = self.setting(FAILURE_LIMITS_SETTING).await? else {
            return Ok(None);
        };
        let stored = serde_json::from_str::<Value>(&text)
            .map_err(|error| StorageError::Corrupt(format!("setting {FAILURE_LIMITS_SETTING}: {error}")))?;
        // The setting is shaped like an account's `webhooks` object, so the account reader parses it.
        let wrapped = Map::from_iter([(ACCOUNT_LIMITS_OBJECT.to_owned(), stored)]);
        Ok(Some(FailureLimits::for_account(&wrapped, configured)))
    }

    /// Stores the system failure limits, replacing any stored before.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn set_system_failure_limits(&self, limits: FailureLimits) -> Result<()> {
        let value = Value::Object(failure_limits_document(limits)).to_string();
        self.run(move |connection| {
            write_transaction(connection, |connection| settings::replace(connection, FAILURE_LIMITS_SETTING, &value))
        })
        .await
    }
}
