//! Delivery attempt records.

use std::collections::HashSet;
use std::time::Instant;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::{Map, Value};
use webhooks_model::ids::{AccountId, InvalidId, WebhookId};
use webhooks_model::job::{DeliveryJob, redelivery};

use crate::Store;
use crate::accounts::{parse_document, render_document};
use crate::connection::{AnyConnection, transaction};
use crate::error::{Result, StorageError};
use crate::page::{Page, PageRequest, attempt_key, parse_attempt_key, split_page};
use crate::schema::attempts;

/// Rows per INSERT: 7 bound values each stays far below SQLite's and PostgreSQL's limits on
/// bound variables per statement.
const INSERT_CHUNK: usize = 1000;

/// Records deleted per statement by [`Store::prune_attempts`].
pub const PRUNE_BATCH: i64 = 1_000;
/// After each batch, [`Store::prune_attempts`] rests this share of the batch's own time, so that
/// the attempt writers find the database idle between batches rather than queued behind them.
const PRUNE_REST: f64 = 0.5;

/// One batch of a prune on PostgreSQL: the oldest records, found through the index on `created`
/// (each batch starts where the last one ended instead of scanning past what it deleted), deleted
/// by their row addresses. Deleted by id, each record cost a probe of the primary key at random:
/// most of a batch's time once the key no longer fits in memory.
const PRUNE_POSTGRES: &str = "DELETE FROM attempts WHERE ctid = ANY(ARRAY(\
    SELECT ctid FROM attempts WHERE created < $1 ORDER BY created LIMIT $2))";
/// The same on SQLite, by rowid.
const PRUNE_SQLITE: &str =
    "DELETE FROM attempts WHERE rowid IN (SELECT rowid FROM attempts WHERE created < $1 ORDER BY created LIMIT $2)";

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
    /// The attempt's public fields (docs/kazoo.md#attempt-records).
    pub doc: Map<String, Value>,
    /// The job attempted, kept privately so the delivery can be resent or replayed.
    pub job: Option<DeliveryJob>,
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
    /// The attempt's public fields (docs/kazoo.md#attempt-records).
    pub doc: Map<String, Value>,
}

/// An attempt record's owner, hook and stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptJob {
    /// The hook owner's account.
    pub account_id: AccountId,
    /// The hook.
    pub hook_id: WebhookId,
    /// The job the attempt made; `None` on records written before jobs were kept.
    pub job: Option<DeliveryJob>,
}

/// Why a delivery cannot be made again.
#[derive(Debug, thiserror::Error)]
pub enum RedeliveryError {
    /// No such attempt (of that hook).
    #[error("no such attempt")]
    UnknownAttempt,
    /// The hook no longer exists.
    #[error("no such webhook")]
    UnknownHook,
    /// The attempt was recorded before delivery jobs were kept with attempts.
    #[error("the attempt was recorded before deliveries were kept; it cannot be resent")]
    NotKept,
    /// The hook is disabled: enable it first, or the delivery would be dropped.
    #[error("the webhook is disabled; enable it first")]
    HookDisabled,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An `attempts` row's public columns (the `job` column is read only by the queries that
/// rebuild deliveries).
#[derive(Queryable, Selectable)]
#[diesel(table_name = attempts)]
struct AttemptRow {
    id: String,
    account_id: String,
    hook_id: String,
    created: i64,
    doc: String,
}

/// An `attempts` row to insert.
#[derive(Insertable)]
#[diesel(table_name = attempts)]
struct NewAttemptRow {
    id: String,
    account_id: String,
    hook_id: String,
    created: i64,
    doc: String,
    job: Option<String>,
    event_id: Option<String>,
}

/// What a replay reads of an attempt: its public fields and its job.
#[derive(Queryable, Selectable)]
#[diesel(table_name = attempts)]
struct ReplayRow {
    id: String,
    doc: String,
    job: Option<String>,
}

/// The stored job `text` of attempt `id`.
fn parse_job(id: &str, text: &str) -> Result<DeliveryJob> {
    serde_json::from_str(text).map_err(|error| StorageError::Corrupt(format!("job of attempt {id}: {error}")))
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
    /// Records attempts, all or none; a record whose id is already stored is left as it is, so
    /// a write repeated after an unheard success stores nothing twice.
    #[tracing::instrument(level = "debug", skip_all, fields(count = attempts.len()))]
    pub async fn insert_attempts(&self, attempts: &[NewAttempt]) -> Result<()> {
        self.write_attempts(attempts, true).await.map(drop)
    }

    /// Records attempts another system kept (an import), as [`Store::insert_attempts`] does, or,
    /// unless `commit`, only finds out how many it would record; how many were not stored yet.
    pub async fn import_attempts(&self, attempts: &[NewAttempt], commit: bool) -> Result<usize> {
        self.write_attempts(attempts, commit).await
    }

    /// Inserts the attempts not stored yet, in one transaction committed if `commit`; how many.
    async fn write_attempts(&self, attempts: &[NewAttempt], commit: bool) -> Result<usize> {
        if attempts.is_empty() {
            return Ok(0);
        }
        let rows = attempts
            .iter()
            .map(|attempt| {
                let job = attempt.job.as_ref().map(serde_json::to_string).transpose()?;
                Ok(NewAttemptRow {
                    id: attempt.id.clone(),
                    account_id: attempt.account_id.to_string(),
                    hook_id: attempt.hook_id.to_string(),
                    created: attempt.created,
                    doc: render_document(&attempt.doc),
                    job,
                    event_id: attempt.doc.get("event_id").and_then(Value::as_str).map(str::to_owned),
                })
            })
            .collect::<serde_json::Result<Vec<_>>>()
            .map_err(|error| StorageError::Corrupt(format!("unserializable job: {error}")))?;
        self.run(move |connection| {
            transaction(connection, commit, |connection| {
                let mut inserted = 0;
                for chunk in rows.chunks(INSERT_CHUNK) {
                    // Multi-row INSERT is outside the subset diesel's multi-backend offers, so
                    // it is spelled per backend. A record already stored (a write repeated
                    // because its success went unheard) is left as it is.
                    inserted += match connection {
                        AnyConnection::Postgres(postgres) => diesel::insert_into(attempts::table)
                            .values(chunk)
                            .on_conflict_do_nothing()
                            .execute(postgres),
                        AnyConnection::Sqlite(sqlite) => {
                            diesel::insert_or_ignore_into(attempts::table).values(chunk).execute(sqlite)
                        }
                    }?;
                }
                Ok(inserted)
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

    /// The latest record of event `event_id` of `hook` owned by `account`; `None` while there is
    /// none. One indexed read, unlike a listing, whatever the hook's number of attempts.
    pub async fn event_attempt(
        &self,
        account: &AccountId,
        hook: &WebhookId,
        event_id: &str,
    ) -> Result<Option<Attempt>> {
        let (account, hook, event_id) = (account.to_string(), hook.to_string(), event_id.to_owned());
        self.run(move |connection| {
            attempts::table
                .filter(attempts::hook_id.eq(hook))
                .filter(attempts::event_id.eq(event_id))
                .filter(attempts::account_id.eq(account))
                .order((attempts::created.desc(), attempts::id.desc()))
                .select(AttemptRow::as_select())
                .first::<AttemptRow>(connection)
                .optional()?
                .map(AttemptRow::into_attempt)
                .transpose()
        })
        .await
    }

    /// The owner, hook and stored job of attempt `id`; `None` when there is no such attempt.
    pub async fn attempt_job(&self, id: &str) -> Result<Option<AttemptJob>> {
        let id = id.to_owned();
        self.run(move |connection| {
            let found = attempts::table
                .filter(attempts::id.eq(&id))
                .select((attempts::account_id, attempts::hook_id, attempts::job))
                .first::<(String, String, Option<String>)>(connection)
                .optional()?;
            let Some((account_id, hook_id, job)) = found else { return Ok(None) };
            let corrupt = |what: String| StorageError::Corrupt(format!("attempt {id}: {what}"));
            Ok(Some(AttemptJob {
                account_id: account_id.parse().map_err(|error: InvalidId| corrupt(error.to_string()))?,
                hook_id: hook_id.parse().map_err(|error: InvalidId| corrupt(error.to_string()))?,
                job: job.map(|text| parse_job(&id, &text)).transpose()?,
            }))
        })
        .await
    }

    /// The job delivering attempt `id` again, to its hook as the hook is configured now
    /// ([`redelivery`]). With `owner` (account and hook), an attempt of another hook is unknown.
    pub async fn resend_job(
        &self,
        id: &str,
        owner: Option<(&AccountId, &WebhookId)>,
        published_at_ms: u64,
    ) -> std::result::Result<DeliveryJob, RedeliveryError> {
        let found = self
            .attempt_job(id)
            .await?
            .filter(|found| owner.is_none_or(|(account, hook)| found.account_id == *account && found.hook_id == *hook))
            .ok_or(RedeliveryError::UnknownAttempt)?;
        let hook = self.webhook(&found.account_id, &found.hook_id).await?.ok_or(RedeliveryError::UnknownHook)?;
        if !hook.enabled {
            return Err(RedeliveryError::HookDisabled);
        }
        let job = found.job.ok_or(RedeliveryError::NotKept)?;
        Ok(redelivery(&job, &hook.doc, published_at_ms))
    }

    /// The jobs replaying the failed deliveries of `hook` (of `owner` when given) since
    /// `created_from` (gregorian seconds, inclusive), oldest event first, each to the hook as
    /// configured now: one per event whose latest record is a failure ([`redelivery`]). An event
    /// whose latest record is a success was delivered after all; records without a stored job
    /// (written before jobs were kept) cannot be replayed and are skipped.
    pub async fn replay_jobs(
        &self,
        hook: &WebhookId,
        owner: Option<&AccountId>,
        created_from: i64,
        published_at_ms: u64,
    ) -> std::result::Result<Vec<DeliveryJob>, RedeliveryError> {
        let hook = match owner {
            Some(account) => self.webhook(account, hook).await?,
            None => self.webhook_by_id(hook).await?,
        }
        .ok_or(RedeliveryError::UnknownHook)?;
        if !hook.enabled {
            return Err(RedeliveryError::HookDisabled);
        }
        let failed = self.failed_deliveries(&hook.account_id, &hook.id, created_from).await?;
        Ok(failed.iter().map(|job| redelivery(job, &hook.doc, published_at_ms)).collect())
    }

    /// The stored jobs of the events of `hook` whose latest record since `created_from` is a
    /// failure, oldest event first.
    async fn failed_deliveries(
        &self,
        account: &AccountId,
        hook: &WebhookId,
        created_from: i64,
    ) -> Result<Vec<DeliveryJob>> {
        let (account, hook) = (account.to_string(), hook.to_string());
        self.run(move |connection| {
            let rows = attempts::table
                .filter(attempts::account_id.eq(account))
                .filter(attempts::hook_id.eq(hook))
                .filter(attempts::created.ge(created_from))
                .order((attempts::created.desc(), attempts::id.desc()))
                .select(ReplayRow::as_select())
                .load::<ReplayRow>(connection)?;
            let mut decided = HashSet::new();
            let mut jobs = Vec::new();
            for row in rows {
                let doc = parse_document(&row.doc)
                    .map_err(|error| StorageError::Corrupt(format!("attempt {}: {error}", row.id)))?;
                let Some(event_id) = doc.get("event_id").and_then(Value::as_str) else { continue };
                // Newest first: an event's first row is its latest record, which decides.
                if !decided.insert(event_id.to_owned()) {
                    continue;
                }
                let failed = doc.get("result").and_then(Value::as_str) != Some("success");
                if let (true, Some(text)) = (failed, &row.job) {
                    jobs.push(parse_job(&row.id, text)?);
                }
            }
            jobs.reverse();
            Ok(jobs)
        })
        .await
    }

    /// Deletes the attempts created before `created_before` (gregorian seconds), oldest first,
    /// [`PRUNE_BATCH`] at a time, each batch a statement of its own; returns how many.
    ///
    /// One statement deleting a million records held the writers' inserts up for hundreds of
    /// milliseconds (and, on SQLite, would lock every writer out until it ended); a batch is short,
    /// the connection goes back to the pool between batches, and the prune rests between them
    /// ([`PRUNE_REST`]): at 10,000,000 records, batches of 5,000 without rest raised the p99 of
    /// the writers' inserts from about 20 to 150 ms, batches of 1,000 with rest to about 80 ms,
    /// the prune still deleting about 28,000 records a second.
    #[tracing::instrument(level = "debug", skip_all, fields(created_before))]
    pub async fn prune_attempts(&self, created_before: i64) -> Result<u64> {
        let mut pruned = 0;
        loop {
            let started = Instant::now();
            let deleted = self
                .run(move |connection| {
                    // Row addresses are outside diesel's query builder: SQL per backend.
                    let prune =
                        |sql| diesel::sql_query(sql).bind::<BigInt, _>(created_before).bind::<BigInt, _>(PRUNE_BATCH);
                    Ok(match connection {
                        AnyConnection::Postgres(postgres) => prune(PRUNE_POSTGRES).execute(postgres),
                        AnyConnection::Sqlite(sqlite) => prune(PRUNE_SQLITE).execute(sqlite),
                    }?)
                })
                .await?;
            pruned += u64::try_from(deleted).unwrap_or(u64::MAX);
            if i64::try_from(deleted).unwrap_or(i64::MAX) < PRUNE_BATCH {
                return Ok(pruned);
            }
            tokio::time::sleep(started.elapsed().mul_f64(PRUNE_REST)).await;
        }
    }
}
