//! Failure counts of the auto-disabler, shared by every dispatcher replica
//! (docs/kazoo.md#auto-disable): counting a failure is one atomic statement that returns the hook's
//! count, so replicas behind the same queue reach the threshold together instead of each counting
//! alone.
//!
//! Each hook has at most one row: the window opened by its first counted failure and the failures
//! counted since. A failure after the window has passed opens a new window with a count of 1. The
//! row lock of the upsert serializes concurrent failures of one hook, so no failure is lost.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use webhooks_model::ids::{AccountId, WebhookId};

use crate::Store;
use crate::connection::AnyConnection;
use crate::error::Result;
use crate::webhooks::disable;

diesel::table! {
    /// Recent failures per hook.
    webhook_failures (hook_id) {
        /// The hook.
        hook_id -> Text,
        /// Its owner.
        account_id -> Text,
        /// Unix milliseconds of the first failure of the current window.
        window_started_ms -> BigInt,
        /// Failures counted in the current window.
        failures -> BigInt,
        /// Unix milliseconds of the latest failure.
        last_failure_ms -> BigInt,
    }
}

/// The count returned by the upsert.
#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = BigInt)]
    failures: i64,
}

/// The upsert, in each backend's placeholder syntax. In both, the `SET` expressions read the row
/// as it was before the statement, so the window test is the same for both columns.
const RECORD_POSTGRES: &str = "\
    INSERT INTO webhook_failures AS f (hook_id, account_id, window_started_ms, failures, last_failure_ms) \
    VALUES ($1, $2, $3, $5, $3) \
    ON CONFLICT (hook_id) DO UPDATE SET \
        failures = CASE WHEN f.window_started_ms > $3 - $4 THEN f.failures + $5 ELSE $5 END, \
        window_started_ms = CASE WHEN f.window_started_ms > $3 - $4 THEN f.window_started_ms ELSE $3 END, \
        last_failure_ms = GREATEST(f.last_failure_ms, $3), \
        account_id = $2 \
    RETURNING failures";
const RECORD_SQLITE: &str = "\
    INSERT INTO webhook_failures (hook_id, account_id, window_started_ms, failures, last_failure_ms) \
    VALUES (?1, ?2, ?3, ?5, ?3) \
    ON CONFLICT (hook_id) DO UPDATE SET \
        failures = CASE WHEN webhook_failures.window_started_ms > ?3 - ?4 \
            THEN webhook_failures.failures + ?5 ELSE ?5 END, \
        window_started_ms = CASE WHEN webhook_failures.window_started_ms > ?3 - ?4 \
            THEN webhook_failures.window_started_ms ELSE ?3 END, \
        last_failure_ms = MAX(webhook_failures.last_failure_ms, ?3), \
        account_id = ?2 \
    RETURNING failures";

/// Rows per `DELETE ... IN (...)`: far below both backends' bound-variable limits.
const DELETE_CHUNK: usize = 500;

impl Store {
    /// Counts `count` failed attempts of `hook` (owned by `account`), the latest made at `at_ms`
    /// (Unix milliseconds), and returns the failures counted in the hook's current window of
    /// length `window`, these included. One statement, atomic across replicas: a hook failing
    /// many times at once costs one statement, not one each.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account, hook.id = %hook, count))]
    pub async fn record_failures(
        &self,
        account: &AccountId,
        hook: &WebhookId,
        count: u64,
        at_ms: i64,
        window: Duration,
    ) -> Result<u64> {
        let account = account.to_string();
        let hook = hook.to_string();
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 4);
        let count = i64::try_from(count).unwrap_or(i64::MAX / 4);
        self.run(move |connection| {
            let sql = match connection {
                AnyConnection::Postgres(_) => RECORD_POSTGRES,
                AnyConnection::Sqlite(_) => RECORD_SQLITE,
            };
            let query = diesel::sql_query(sql)
                .bind::<Text, _>(&hook)
                .bind::<Text, _>(&account)
                .bind::<BigInt, _>(at_ms)
                .bind::<BigInt, _>(window_ms)
                .bind::<BigInt, _>(count);
            // Run on the backend's own connection, the one the SQL was written for.
            let counted = match connection {
                AnyConnection::Postgres(postgres) => query.get_result::<Counted>(postgres)?,
                AnyConnection::Sqlite(sqlite) => query.get_result::<Counted>(sqlite)?,
            };
            Ok(u64::try_from(counted.failures).unwrap_or(0))
        })
        .await
    }

    /// Forgets the failures of `hook`: after a success, when the auto-disabler disables it and when
    /// it is re-enabled (not on other edits).
    #[tracing::instrument(level = "debug", skip_all, fields(hook.id = %hook))]
    pub async fn clear_failures(&self, hook: &WebhookId) -> Result<()> {
        self.clear_failures_of(std::slice::from_ref(hook)).await
    }

    /// Forgets the failures of several hooks at once (the successes of a batch of deliveries).
    #[tracing::instrument(level = "debug", skip_all, fields(count = hooks.len()))]
    pub async fn clear_failures_of(&self, hooks: &[WebhookId]) -> Result<()> {
        if hooks.is_empty() {
            return Ok(());
        }
        let hooks = hooks.iter().map(ToString::to_string).collect::<Vec<_>>();
        self.run(move |connection| clear_failures_in(connection, &hooks)).await
    }

    /// The failures of `hook` counted in its current window, as of `now_ms` (Unix milliseconds):
    /// 0 when it has none or its window has passed.
    pub async fn failure_count(&self, hook: &WebhookId, now_ms: i64, window: Duration) -> Result<u64> {
        let hook = hook.to_string();
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 4);
        self.run(move |connection| {
            let failures = webhook_failures::table
                .filter(webhook_failures::hook_id.eq(hook))
                .filter(webhook_failures::window_started_ms.gt(now_ms - window_ms))
                .select(webhook_failures::failures)
                .first::<i64>(connection)
                .optional()?;
            Ok(failures.map_or(0, |failures| u64::try_from(failures).unwrap_or(0)))
        })
        .await
    }

    /// Disables the hook `hook` of `account` with `reason` if it is still enabled, and forgets its
    /// failures. `true` only for the call that disabled it, so when several replicas
    /// reach the threshold together exactly one of them announces it.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account, hook.id = %hook))]
    pub async fn auto_disable_webhook(&self, account: &AccountId, hook: &WebhookId, reason: &str) -> Result<bool> {
        let account = account.to_string();
        let hook = hook.to_string();
        let reason = reason.to_owned();
        self.run(move |connection| {
            let disabled = disable(connection, &account, &hook, reason, true)?;
            diesel::delete(webhook_failures::table.filter(webhook_failures::hook_id.eq(&hook))).execute(connection)?;
            Ok(disabled)
        })
        .await
    }

    /// Deletes the failure rows whose latest failure is older than `last_failure_before_ms`
    /// (Unix milliseconds); returns how many.
    #[tracing::instrument(level = "debug", skip_all, fields(last_failure_before_ms))]
    pub async fn prune_failures(&self, last_failure_before_ms: i64) -> Result<u64> {
        self.run(move |connection| {
            let deleted = diesel::delete(
                webhook_failures::table.filter(webhook_failures::last_failure_ms.lt(last_failure_before_ms)),
            )
            .execute(connection)?;
            Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
        })
        .await
    }
}

/// Forgets the failures of `hooks`, inside the caller's transaction when there is one.
pub(crate) fn clear_failures_in(connection: &mut AnyConnection, hooks: &[String]) -> Result<()> {
    for chunk in hooks.chunks(DELETE_CHUNK) {
        diesel::delete(webhook_failures::table.filter(webhook_failures::hook_id.eq_any(chunk))).execute(connection)?;
    }
    Ok(())
}
