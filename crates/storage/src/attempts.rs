//! Delivery attempt records.

use diesel::prelude::*;
use serde_json::{Map, Value};
use webhooks_model::ids::{AccountId, WebhookId};

use crate::Store;
use crate::accounts::{parse_document, render_document};
use crate::connection::{AnyConnection, write_transaction};
use crate::error::{Result, StorageError, conflict_on_duplicate};
use crate::page::{Page, PageRequest, attempt_key, parse_attempt_key, split_page};
use crate::schema::attempts;

/// Rows per INSERT: 5 bound values each stays far below SQLite's and PostgreSQL's limits on
/// bound variables per statement.
const INSERT_CHUNK: usize = 1000;

/// An attempt to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttempt {
    /// 32 lowercase hex characters.
    pub id: String,
    /// The hook owner's account.
    pub account_id: AccountId,
    /// The hook.
    pub hook_id: WebhookId,
    /// When the attempt was made, gregorian seconds.
    pub created: i64,
    /// The attempt's public fields (spec 2.2).
    pub doc: Map<String, Value>,
}

/// A recorded attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// 32 lowercase hex characters.
    pub id: String,
    /// The hook owner's account.
    pub account_id: AccountId,
    /// The hook.
    pub hook_id: WebhookId,
    /// When the attempt was made, gregorian seconds.
    pub created: i64,
    /// The attempt's public fields (spec 2.2).
    pub doc: Map<String, Value>,
}

/// An `attempts` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = attempts)]
struct AttemptRow {
    id: String,
    account_id: String,
    hook_id: String,
    created: i64,
    doc: String,
}

impl AttemptRow {
    /// The domain attempt; fails when the stored ids or document are unreadable.
    fn into_attempt(self) -> Result<Attempt> {
        let corrupt = |what: String| StorageError::Corrupt(format!("attempt {}: {what}", self.id));
        let account_id = self.account_id.parse::<AccountId>().map_err(|error| corrupt(error.to_string()))?;
        let hook_id = self.hook_id.parse::<WebhookId>().map_err(|error| corrupt(error.to_string()))?;
        let doc = parse_document(&self.doc).map_err(|error| corrupt(error.to_string()))?;
        Ok(Attempt { id: self.id, account_id, hook_id, created: self.created, doc })
    }
}

impl Store {
    /// Records attempts, all or none ([`StorageError::Conflict`] when an id is taken).
    #[tracing::instrument(level = "debug", skip_all, fields(count = attempts.len()))]
    pub async fn insert_attempts(&self, attempts: &[NewAttempt]) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let rows = attempts
            .iter()
            .map(|attempt| AttemptRow {
                id: attempt.id.clone(),
                account_id: attempt.account_id.to_string(),
                hook_id: attempt.hook_id.to_string(),
                created: attempt.created,
                doc: render_document(&attempt.doc),
            })
            .collect::<Vec<_>>();
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                for chunk in rows.chunks(INSERT_CHUNK) {
                    // Multi-row INSERT is outside the subset diesel's multi-backend offers, so
                    // it is spelled per backend.
                    let insert = diesel::insert_into(attempts::table).values(chunk);
                    match connection {
                        AnyConnection::Postgres(postgres) => insert.execute(postgres),
                        AnyConnection::Sqlite(sqlite) => insert.execute(sqlite),
                    }
                    .map_err(conflict_on_duplicate)?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Attempts of hooks owned by `account` (only those of `hook` when given) created within
    /// `[created_from, created_to]` (gregorian seconds, inclusive), newest first unless
    /// `page.ascending`. Start keys are the opaque `next_start_key`s of earlier pages; any other
    /// key is [`StorageError::InvalidStartKey`].
    pub async fn list_attempts(
        &self,
        account: &AccountId,
        hook: Option<&WebhookId>,
        created_from: i64,
        created_to: i64,
        page: &PageRequest,
    ) -> Result<Page<Attempt>> {
        let start = page
            .start_key
            .as_deref()
            .map(|key| parse_attempt_key(key).ok_or(StorageError::InvalidStartKey))
            .transpose()?;
        let account = account.to_string();
        let hook = hook.map(ToString::to_string);
        let page = page.clone();
        self.run(move |connection| {
            let mut query = attempts::table
                .filter(attempts::account_id.eq(account))
                .filter(attempts::created.between(created_from, created_to))
                .select(AttemptRow::as_select())
                .into_boxed();
            if let Some(hook) = hook {
                query = query.filter(attempts::hook_id.eq(hook));
            }
            // (created, id) is unique and totally ordered; the page starts at the key, inclusive.
            query = match (start, page.ascending) {
                (Some((created, id)), true) => query
                    .filter(attempts::created.gt(created).or(attempts::created.eq(created).and(attempts::id.ge(id)))),
                (Some((created, id)), false) => query
                    .filter(attempts::created.lt(created).or(attempts::created.eq(created).and(attempts::id.le(id)))),
                (None, _) => query,
            };
            query = if page.ascending {
                query.order((attempts::created.asc(), attempts::id.asc()))
            } else {
                query.order((attempts::created.desc(), attempts::id.desc()))
            };
            if let Some(limit) = page.fetch_limit() {
                query = query.limit(limit);
            }
            let rows = query.load::<AttemptRow>(connection)?;
            let (rows, next_start_key) = split_page(rows, &page, |row| attempt_key(row.created, &row.id));
            let items = rows.into_iter().map(AttemptRow::into_attempt).collect::<Result<Vec<_>>>()?;
            Ok(Page { items, next_start_key })
        })
        .await
    }

    /// Deletes the attempts created before `created_before` (gregorian seconds); returns how many.
    #[tracing::instrument(level = "debug", skip_all, fields(created_before))]
    pub async fn prune_attempts(&self, created_before: i64) -> Result<u64> {
        self.run(move |connection| {
            let deleted =
                diesel::delete(attempts::table.filter(attempts::created.lt(created_before))).execute(connection)?;
            Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
        })
        .await
    }
}
