//! Hooks imported from Kazoo's CouchDB, and where each came from (the `couch_imports` table), so
//! an import can be repeated: what is unchanged is left alone, what changed is written again, and
//! what is gone from CouchDB is found.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use webhooks_model::ids::{AccountId, WebhookId};

use crate::Store;
use crate::connection::{AnyConnection, transaction};
use crate::error::{Result, StorageError};
use crate::schema::couch_imports;
use crate::webhooks::{NewWebhook, Webhook, insert_as_given, load_many, update_as_given};

/// The `kind` of imported hooks.
const WEBHOOK: &str = "webhook";
/// Hooks imported per round of queries: their ids stay far below both backends' bound-variable
/// limits in an `IN (...)` list or a multi-row insert.
const IMPORT_CHUNK: usize = 500;

/// A hook read from CouchDB, ready to write.
#[derive(Debug, Clone)]
pub struct ImportedWebhook {
    /// The CouchDB document it comes from (see `webhooks_model::couch::KazooHook::source`).
    pub source: String,
    /// The document's revision.
    pub revision: String,
    /// The hook, its id chosen by [`Store::import_webhooks`] (the one given here is ignored).
    pub hook: NewWebhook,
    /// Why Kazoo's auto-disabler turned it off, if it did.
    pub disabled_reason: Option<String>,
}

/// What became of one imported hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Written as a new hook with this id.
    Created(WebhookId),
    /// Written over the hook with this id.
    Updated(WebhookId),
    /// Imported at this revision already: left alone.
    Unchanged(WebhookId),
    /// Its id belongs to another account's hook here: not written.
    IdTaken(WebhookId),
    /// Its owner is no account here: not written.
    UnknownOwner(WebhookId),
}

impl ImportOutcome {
    /// The hook it concerns.
    pub fn id(&self) -> &WebhookId {
        match self {
            Self::Created(id)
            | Self::Updated(id)
            | Self::Unchanged(id)
            | Self::IdTaken(id)
            | Self::UnknownOwner(id) => id,
        }
    }
}

/// An imported hook as the `couch_imports` table remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSource {
    /// The CouchDB document it came from.
    pub source: String,
    /// Its id here.
    pub id: WebhookId,
    /// Its owner.
    pub account_id: AccountId,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = couch_imports)]
struct ImportRow {
    kind: String,
    source: String,
    local_id: String,
    account_id: String,
    revision: String,
}

impl Store {
    /// Writes a batch of imported hooks in one transaction, each as
    /// [`ImportOutcome`] says; with `commit` false the transaction is rolled back, so a trial
    /// run reports what it would do and writes nothing. A source imported before keeps its id;
    /// a new one takes its document id when that is a hook id, else a fresh one.
    pub async fn import_webhooks(&self, hooks: Vec<ImportedWebhook>, commit: bool) -> Result<Vec<ImportOutcome>> {
        self.run(move |connection| {
            transaction(connection, commit, |connection| {
                let mut outcomes = Vec::with_capacity(hooks.len());
                for chunk in hooks.chunks(IMPORT_CHUNK) {
                    outcomes.extend(import_chunk(connection, chunk)?);
                }
                Ok(outcomes)
            })
        })
        .await
    }

    /// Every imported hook's source, id and owner.
    pub async fn imported_webhooks(&self) -> Result<Vec<ImportedSource>> {
        self.run(|connection| {
            let rows: Vec<ImportRow> = couch_imports::table
                .filter(couch_imports::kind.eq(WEBHOOK))
                .order(couch_imports::source)
                .select(ImportRow::as_select())
                .load(connection)?;
            rows.into_iter().map(ImportRow::into_source).collect()
        })
        .await
    }

    /// Deletes the hooks of `sources`, gone from CouchDB, and forgets where they came from, in
    /// one transaction (rolled back unless `commit`); the hooks deleted.
    pub async fn delete_imported_webhooks(
        &self,
        sources: Vec<ImportedSource>,
        commit: bool,
    ) -> Result<Vec<ImportedSource>> {
        self.run(move |connection| {
            transaction(connection, commit, |connection| {
                let mut deleted = Vec::new();
                for source in sources {
                    diesel::delete(
                        couch_imports::table
                            .filter(couch_imports::kind.eq(WEBHOOK))
                            .filter(couch_imports::source.eq(&source.source)),
                    )
                    .execute(connection)?;
                    let rows = diesel::delete(
                        crate::schema::webhooks::table
                            .filter(crate::schema::webhooks::id.eq(source.id.as_str()))
                            .filter(crate::schema::webhooks::account_id.eq(source.account_id.as_str())),
                    )
                    .execute(connection)?;
                    if rows > 0 {
                        deleted.push(source);
                    }
                }
                Ok(deleted)
            })
        })
        .await
    }
}

impl ImportRow {
    fn into_source(self) -> Result<ImportedSource> {
        let corrupt = |what: &str| StorageError::Corrupt(format!("import of {}: {what}", self.source));
        Ok(ImportedSource {
            id: self.local_id.parse().map_err(|_| corrupt("hook id"))?,
            account_id: self.account_id.parse().map_err(|_| corrupt("account id"))?,
            source: self.source,
        })
    }
}

/// Imports a batch of at most [`IMPORT_CHUNK`] hooks inside its transaction: what is known of
/// them is read in one query of each kind, new hooks are inserted together, and only changed
/// hooks are written one at a time.
fn import_chunk(connection: &mut AnyConnection, hooks: &[ImportedWebhook]) -> Result<Vec<ImportOutcome>> {
    let sources: Vec<&str> = hooks.iter().map(|hook| hook.source.as_str()).collect();
    let known: HashMap<String, ImportRow> = couch_imports::table
        .filter(couch_imports::kind.eq(WEBHOOK))
        .filter(couch_imports::source.eq_any(&sources))
        .select(ImportRow::as_select())
        .load(connection)?
        .into_iter()
        .map(|row: ImportRow| (row.source.clone(), row))
        .collect();
    let owners: HashSet<String> = {
        let wanted: HashSet<&str> = hooks.iter().map(|hook| hook.hook.account_id.as_str()).collect();
        let wanted: Vec<&str> = wanted.into_iter().collect();
        crate::schema::accounts::table
            .filter(crate::schema::accounts::id.eq_any(&wanted))
            .select(crate::schema::accounts::id)
            .load(connection)?
            .into_iter()
            .collect()
    };
    let ids = hooks
        .iter()
        .map(|hook| match known.get(&hook.source) {
            Some(row) => row.local_id.parse().map_err(|_| StorageError::Corrupt(format!("import of {}", row.source))),
            None => Ok(hook.source.parse().unwrap_or_else(|_| WebhookId::generate())),
        })
        .collect::<Result<Vec<WebhookId>>>()?;
    let current: HashMap<WebhookId, Webhook> = {
        let wanted: Vec<&str> = ids.iter().map(WebhookId::as_str).collect();
        load_many(connection, &wanted)?.into_iter().map(|hook| (hook.id.clone(), hook)).collect()
    };
    let mut outcomes = Vec::with_capacity(hooks.len());
    let mut inserts = Vec::new();
    let mut rows = Vec::new();
    for (imported, id) in hooks.iter().zip(ids) {
        if !owners.contains(imported.hook.account_id.as_str()) {
            outcomes.push(ImportOutcome::UnknownOwner(id));
            continue;
        }
        let current = current.get(&id);
        if let Some(current) = current {
            if current.account_id != imported.hook.account_id {
                outcomes.push(ImportOutcome::IdTaken(id));
                continue;
            }
            if known.get(&imported.source).is_some_and(|row| row.revision == imported.revision) {
                outcomes.push(ImportOutcome::Unchanged(id));
                continue;
            }
        }
        let hook = NewWebhook { id: id.clone(), ..imported.hook.clone() };
        rows.push(ImportRow {
            kind: WEBHOOK.to_owned(),
            source: imported.source.clone(),
            local_id: id.to_string(),
            account_id: hook.account_id.to_string(),
            revision: imported.revision.clone(),
        });
        match current {
            Some(current) => {
                update_as_given(connection, &hook, imported.disabled_reason.clone(), current)?;
                outcomes.push(ImportOutcome::Updated(id));
            }
            None => {
                inserts.push((hook, imported.disabled_reason.clone()));
                outcomes.push(ImportOutcome::Created(id));
            }
        }
    }
    insert_as_given(connection, &inserts)?;
    let written: Vec<&str> = rows.iter().map(|row| row.source.as_str()).collect();
    diesel::delete(
        couch_imports::table.filter(couch_imports::kind.eq(WEBHOOK)).filter(couch_imports::source.eq_any(&written)),
    )
    .execute(connection)?;
    match connection {
        AnyConnection::Postgres(postgres) => diesel::insert_into(couch_imports::table).values(&rows).execute(postgres),
        AnyConnection::Sqlite(sqlite) => diesel::insert_into(couch_imports::table).values(&rows).execute(sqlite),
    }?;
    Ok(outcomes)
}
