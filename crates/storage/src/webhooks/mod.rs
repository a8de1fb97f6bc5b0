//! Webhook documents: their types, their rows, and the tenant-scoped queries and writes. The
//! router's reads across accounts are in `index`.

use diesel::prelude::*;
use serde_json::{Map, Value};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::time::gregorian_now;
use webhooks_model::webhook::SecretChange;

use crate::Store;
use crate::accounts::{load_path, parse_document, render_document, subtree_ids};
use crate::connection::{AnyConnection, write_transaction};
use crate::error::{Result, StorageError, conflict_on_duplicate};
use crate::failures::clear_failures_in;
use crate::page::{Page, PageRequest, split_page};
use crate::revision::{Revision, fresh_tag};
use crate::schema::webhooks;
use crate::secrets::write_secret;

mod index;

/// A stored webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// The hook id.
    pub id: WebhookId,
    /// The owning account.
    pub account_id: AccountId,
    /// The hook type (`channel_create`, `all`, ...).
    pub hook: String,
    /// Whether deliveries happen. Authoritative over any `enabled` in `doc`: the auto-disabler
    /// and the bulk re-enable change only this column.
    pub enabled: bool,
    /// Whether events of descendant accounts fire the hook too.
    pub include_subaccounts: bool,
    /// Why the auto-disabler disabled the hook; `None` when enabled or disabled by hand.
    pub disabled_reason: Option<String>,
    /// The validated public fields (unknown client fields included), in the client's key order.
    pub doc: Map<String, Value>,
    /// Whether callouts are signed (the hook has a signing secret).
    pub signed: bool,
    /// The revision, `<n>-<32 hex>`.
    pub revision: String,
    /// Creation time, gregorian seconds.
    pub created: i64,
    /// Last write, gregorian seconds.
    pub modified: i64,
}

/// A webhook to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    /// The hook id (generated, or chosen by the client).
    pub id: WebhookId,
    /// The owning account.
    pub account_id: AccountId,
    /// The hook type.
    pub hook: String,
    /// Whether deliveries happen.
    pub enabled: bool,
    /// Whether events of descendant accounts fire the hook too.
    pub include_subaccounts: bool,
    /// The validated public fields; never `id` or private keys.
    pub doc: Map<String, Value>,
    /// The signing secret: set with the hook, or none.
    pub secret: SecretChange,
}

/// The new state of an existing webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookChange {
    /// The hook type.
    pub hook: String,
    /// Whether deliveries happen.
    pub enabled: bool,
    /// Whether events of descendant accounts fire the hook too.
    pub include_subaccounts: bool,
    /// The auto-disable reason to store; `None` clears it.
    pub disabled_reason: Option<String>,
    /// The validated public fields; never `id` or private keys.
    pub doc: Map<String, Value>,
    /// The signing secret: set with the hook, or none.
    pub secret: SecretChange,
}

/// Ids per `IN (...)` list: far below both backends' bound-variable limits.
const UPDATE_CHUNK: usize = 500;

/// A `webhooks` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
struct WebhookRow {
    id: String,
    account_id: String,
    hook: String,
    enabled: bool,
    include_subaccounts: bool,
    disabled_reason: Option<String>,
    doc: String,
    signed: bool,
    created: i64,
    modified: i64,
    revision_number: i64,
    revision_tag: String,
}

impl WebhookRow {
    /// The first revision of `new`, created `now`.
    fn new(new: &NewWebhook, disabled_reason: Option<String>, signed: bool, now: i64) -> Self {
        let revision = Revision::first();
        Self {
            id: new.id.to_string(),
            account_id: new.account_id.to_string(),
            hook: new.hook.clone(),
            enabled: new.enabled,
            include_subaccounts: new.include_subaccounts,
            disabled_reason,
            doc: render_document(&new.doc),
            signed,
            created: now,
            modified: now,
            revision_number: revision.number,
            revision_tag: revision.tag,
        }
    }

    /// The domain webhook; fails when the stored ids or document are unreadable.
    fn into_webhook(self) -> Result<Webhook> {
        let corrupt = |what: String| StorageError::Corrupt(format!("webhook {}: {what}", self.id));
        let id = self.id.parse::<WebhookId>().map_err(|error| corrupt(error.to_string()))?;
        let account_id = self.account_id.parse::<AccountId>().map_err(|error| corrupt(error.to_string()))?;
        let doc = parse_document(&self.doc).map_err(|error| corrupt(error.to_string()))?;
        Ok(Webhook {
            id,
            account_id,
            hook: self.hook,
            enabled: self.enabled,
            include_subaccounts: self.include_subaccounts,
            disabled_reason: self.disabled_reason,
            doc,
            signed: self.signed,
            revision: Revision::render(self.revision_number, &self.revision_tag),
            created: self.created,
            modified: self.modified,
        })
    }
}

/// Converts loaded rows.
fn into_webhooks(rows: Vec<WebhookRow>) -> Result<Vec<Webhook>> {
    rows.into_iter().map(WebhookRow::into_webhook).collect()
}

/// The hook `id` if `account` owns it.
fn load(connection: &mut AnyConnection, account: &str, id: &str) -> Result<Option<Webhook>> {
    load_owned(connection, Some(account), id)
}

/// The hook `id`, whoever owns it.
pub(crate) fn load_any(connection: &mut AnyConnection, id: &str) -> Result<Option<Webhook>> {
    load_owned(connection, None, id)
}

/// The hook `id`, if `owner` (when given) owns it.
fn load_owned(connection: &mut AnyConnection, owner: Option<&str>, id: &str) -> Result<Option<Webhook>> {
    let mut query = webhooks::table.filter(webhooks::id.eq(id)).select(WebhookRow::as_select()).into_boxed();
    if let Some(owner) = owner {
        query = query.filter(webhooks::account_id.eq(owner));
    }
    query.first(connection).optional()?.map(WebhookRow::into_webhook).transpose()
}

/// Disables hook `id` of `account` with `reason`, as a new revision. With `only_if_enabled` a hook
/// already disabled is left as it is, so that of racing callers only one sees `true`. Whether a
/// hook changed.
pub(crate) fn disable(
    connection: &mut AnyConnection,
    account: &str,
    id: &str,
    reason: String,
    only_if_enabled: bool,
) -> Result<bool> {
    let mut update =
        diesel::update(webhooks::table.filter(webhooks::account_id.eq(account)).filter(webhooks::id.eq(id)))
            .into_boxed();
    if only_if_enabled {
        update = update.filter(webhooks::enabled.eq(true));
    }
    let updated = update
        .set((
            webhooks::enabled.eq(false),
            webhooks::disabled_reason.eq(Some(reason)),
            webhooks::modified.eq(gregorian_now()),
            webhooks::revision_number.eq(webhooks::revision_number + 1),
            webhooks::revision_tag.eq(fresh_tag()),
        ))
        .execute(connection)?;
    Ok(updated > 0)
}

/// Inserts `hooks` as another system of record has them, each with its auto-disable reason, in
/// multi-row statements; [`StorageError::Conflict`] when an id is taken.
pub(crate) fn insert_as_given(connection: &mut AnyConnection, hooks: &[(NewWebhook, Option<String>)]) -> Result<()> {
    let now = gregorian_now();
    let rows: Vec<WebhookRow> =
        hooks.iter().map(|(new, reason)| WebhookRow::new(new, reason.clone(), false, now)).collect();
    for chunk in rows.chunks(UPDATE_CHUNK) {
        // Multi-row INSERT is outside the subset diesel's multi-backend offers, so it is spelled
        // per backend.
        match connection {
            AnyConnection::Postgres(postgres) => diesel::insert_into(webhooks::table).values(chunk).execute(postgres),
            AnyConnection::Sqlite(sqlite) => diesel::insert_into(webhooks::table).values(chunk).execute(sqlite),
        }
        .map_err(conflict_on_duplicate)?;
    }
    Ok(())
}

/// Writes `new` over `current` (a hook of the same owner) as another system of record has it,
/// with `disabled_reason`, as its next revision, its signing secret and failure count kept.
pub(crate) fn update_as_given(
    connection: &mut AnyConnection,
    new: &NewWebhook,
    disabled_reason: Option<String>,
    current: &Webhook,
) -> Result<()> {
    let number = Revision::parse(&current.revision).map_or(1, |revision| revision.number + 1);
    diesel::update(webhooks::table.filter(webhooks::id.eq(current.id.as_str())))
        .set((
            webhooks::hook.eq(&new.hook),
            webhooks::enabled.eq(new.enabled),
            webhooks::include_subaccounts.eq(new.include_subaccounts),
            webhooks::disabled_reason.eq(disabled_reason),
            webhooks::doc.eq(render_document(&new.doc)),
            webhooks::modified.eq(gregorian_now()),
            webhooks::revision_number.eq(number),
            webhooks::revision_tag.eq(fresh_tag()),
        ))
        .execute(connection)?;
    Ok(())
}

/// The hooks among `ids`, whoever owns them.
pub(crate) fn load_many(connection: &mut AnyConnection, ids: &[&str]) -> Result<Vec<Webhook>> {
    let mut hooks = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(UPDATE_CHUNK) {
        let rows: Vec<WebhookRow> =
            webhooks::table.filter(webhooks::id.eq_any(chunk)).select(WebhookRow::as_select()).load(connection)?;
        hooks.extend(into_webhooks(rows)?);
    }
    Ok(hooks)
}

impl Store {
    /// Creates a webhook; [`StorageError::Conflict`] when the id is taken (by any account).
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %new.account_id, hook.id = %new.id))]
    pub async fn insert_webhook(&self, new: &NewWebhook) -> Result<Webhook> {
        let row = WebhookRow::new(new, None, matches!(new.secret, SecretChange::Set(_)), gregorian_now());
        let secret = new.secret.clone();
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                diesel::insert_into(webhooks::table).values(&row).execute(connection).map_err(conflict_on_duplicate)?;
                write_secret(connection, &row.id, &secret)?;
                Ok(())
            })?;
            row.into_webhook()
        })
        .await
    }

    /// The hook `id` when `account` owns it; other accounts' hooks are invisible (`None`).
    pub async fn webhook(&self, account: &AccountId, id: &WebhookId) -> Result<Option<Webhook>> {
        let account = account.to_string();
        let id = id.to_string();
        self.run(move |connection| load(connection, &account, &id)).await
    }

    /// Replaces the hook's document, type, flags and auto-disable reason (`None` clears it).
    /// [`StorageError::Conflict`] when the stored revision is not `expected_revision`; `None`
    /// when `account` owns no such hook.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account, hook.id = %id))]
    pub async fn update_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
        expected_revision: &str,
        change: &WebhookChange,
    ) -> Result<Option<Webhook>> {
        let account = account.to_string();
        let id = id.to_string();
        let expected = expected_revision.to_owned();
        let change = change.clone();
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                let Some(current) = load(connection, &account, &id)? else {
                    return Ok(None);
                };
                let Some(Revision { number, tag }) =
                    Revision::parse(&expected).filter(|_| current.revision == expected)
                else {
                    return Err(StorageError::Conflict);
                };
                let modified = gregorian_now();
                let next = Revision { number: number + 1, tag: fresh_tag() };
                let signed = match change.secret {
                    SecretChange::Keep => current.signed,
                    SecretChange::Set(_) => true,
                    SecretChange::Remove => false,
                };
                // Compare-and-set on the revision: a concurrent writer that got in first makes
                // this match no row instead of being overwritten.
                let updated = diesel::update(
                    webhooks::table
                        .filter(webhooks::account_id.eq(&account))
                        .filter(webhooks::id.eq(&id))
                        .filter(webhooks::revision_number.eq(number))
                        .filter(webhooks::revision_tag.eq(&tag)),
                )
                .set((
                    webhooks::hook.eq(&change.hook),
                    webhooks::enabled.eq(change.enabled),
                    webhooks::include_subaccounts.eq(change.include_subaccounts),
                    webhooks::disabled_reason.eq(&change.disabled_reason),
                    webhooks::doc.eq(render_document(&change.doc)),
                    webhooks::signed.eq(signed),
                    webhooks::modified.eq(modified),
                    webhooks::revision_number.eq(next.number),
                    webhooks::revision_tag.eq(&next.tag),
                ))
                .execute(connection)?;
                if updated == 0 {
                    return Err(StorageError::Conflict);
                }
                write_secret(connection, &id, &change.secret)?;
                if change.enabled && !current.enabled {
                    // A hook enabled again starts with a clean failure count.
                    clear_failures_in(connection, std::slice::from_ref(&id))?;
                }
                Ok(Some(Webhook {
                    hook: change.hook.clone(),
                    enabled: change.enabled,
                    include_subaccounts: change.include_subaccounts,
                    disabled_reason: change.disabled_reason.clone(),
                    doc: change.doc.clone(),
                    signed,
                    revision: Revision::render(next.number, &next.tag),
                    modified,
                    ..current
                }))
            })
        })
        .await
    }

    /// Deletes the hook `id` of `account` and returns it; `None` when there is no such hook.
    /// Its attempts stay (they age out with [`Store::prune_attempts`]).
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account, hook.id = %id))]
    pub async fn delete_webhook(&self, account: &AccountId, id: &WebhookId) -> Result<Option<Webhook>> {
        let account = account.to_string();
        let id = id.to_string();
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                let Some(hook) = load(connection, &account, &id)? else {
                    return Ok(None);
                };
                diesel::delete(webhooks::table.filter(webhooks::account_id.eq(&account)).filter(webhooks::id.eq(&id)))
                    .execute(connection)?;
                Ok(Some(hook))
            })
        })
        .await
    }

    /// The hooks of one account (not its descendants), by id, descending unless
    /// `page.ascending`. The start key is a hook id.
    pub async fn list_webhooks(&self, account: &AccountId, page: &PageRequest) -> Result<Page<Webhook>> {
        let start = page
            .start_key
            .as_deref()
            .map(|key| key.parse::<WebhookId>().map_err(|_| StorageError::InvalidStartKey))
            .transpose()?
            .map(|id| id.to_string());
        let account = account.to_string();
        let page = page.clone();
        self.run(move |connection| {
            let mut query =
                webhooks::table.filter(webhooks::account_id.eq(account)).select(WebhookRow::as_select()).into_boxed();
            query = match (start, page.ascending) {
                (Some(start), true) => query.filter(webhooks::id.ge(start)),
                (Some(start), false) => query.filter(webhooks::id.le(start)),
                (None, _) => query,
            };
            query = if page.ascending { query.order(webhooks::id.asc()) } else { query.order(webhooks::id.desc()) };
            if let Some(limit) = page.fetch_limit() {
                query = query.limit(limit);
            }
            let rows = query.load::<WebhookRow>(connection)?;
            let (rows, next_start_key) = split_page(rows, &page, |row| row.id.clone());
            Ok(Page { items: into_webhooks(rows)?, next_start_key })
        })
        .await
    }

    /// Disables a hook on behalf of the auto-disabler, recording `reason`. `false` when
    /// `account` owns no such hook.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account, hook.id = %id))]
    pub async fn disable_webhook(&self, account: &AccountId, id: &WebhookId, reason: &str) -> Result<bool> {
        let account = account.to_string();
        let id = id.to_string();
        let reason = reason.to_owned();
        self.run(move |connection| disable(connection, &account, &id, reason, false)).await
    }

    /// Re-enables the auto-disabled hooks (disabled *with* a reason) of `account`, and of every
    /// descendant when `include_descendants`, in one statement. Hooks disabled by hand (no
    /// reason) stay disabled. Returns how many hooks were re-enabled.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account, include_descendants))]
    pub async fn reenable_webhooks(&self, account: &AccountId, include_descendants: bool) -> Result<u64> {
        let account = account.to_string();
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                let disabled_automatically = webhooks::enabled.eq(false).and(webhooks::disabled_reason.is_not_null());
                let ids: Vec<String> = if include_descendants {
                    let Some(path) = load_path(connection, &account)? else {
                        return Ok(0);
                    };
                    webhooks::table
                        .filter(webhooks::account_id.eq_any(subtree_ids(path)))
                        .filter(disabled_automatically)
                        .select(webhooks::id)
                        .load(connection)?
                } else {
                    webhooks::table
                        .filter(webhooks::account_id.eq(&account))
                        .filter(disabled_automatically)
                        .select(webhooks::id)
                        .load(connection)?
                };
                // Re-enabled hooks start with a clean failure count, as in Kazoo.
                clear_failures_in(connection, &ids)?;
                // One tag for the whole batch; the incremented number keeps revisions distinct.
                let (modified, tag) = (gregorian_now(), fresh_tag());
                for chunk in ids.chunks(UPDATE_CHUNK) {
                    diesel::update(webhooks::table.filter(webhooks::id.eq_any(chunk)))
                        .set((
                            webhooks::enabled.eq(true),
                            webhooks::disabled_reason.eq(None::<String>),
                            webhooks::modified.eq(modified),
                            webhooks::revision_number.eq(webhooks::revision_number + 1),
                            webhooks::revision_tag.eq(&tag),
                        ))
                        .execute(connection)?;
                }
                Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
            })
        })
        .await
    }
}
