//! Accounts and the account tree.

use std::fmt;

use diesel::prelude::*;
use serde_json::{Map, Value};
use webhooks_model::ids::AccountId;
use webhooks_model::retry::ACCOUNT_LIMITS_OBJECT;
use webhooks_model::time::gregorian_now;

use crate::connection::{AnyConnection, lock_for_transaction, transaction, write_transaction};
use crate::error::{Result, StorageError, conflict_on_duplicate};
use crate::revision::{Revision, fresh_tag};
use crate::schema::{accounts, attempts, webhooks};
use crate::{Store, settings};

/// The settings key naming the master account.
pub(crate) const MASTER_ACCOUNT_SETTING: &str = "master_account_id";

/// The PostgreSQL advisory lock key held while bootstrapping the master ("webhmast" in ASCII).
const BOOTSTRAP_LOCK: i64 = 0x7765_6268_6d61_7374;

/// A stored account.
#[derive(Clone, PartialEq)]
pub struct Account {
    /// The account id.
    pub id: AccountId,
    /// Display name.
    pub name: String,
    /// The parent account; `None` for the root (master).
    pub parent_id: Option<AccountId>,
    /// Ancestors, root first and parent last, not the account itself (Kazoo's `pvt_tree`).
    pub tree: Vec<AccountId>,
    /// The API key exchanged for auth tokens.
    pub api_key: String,
    /// Whether the account's users are super-duper admins.
    pub superduper_admin: bool,
    /// Extra public fields clients stored on the account.
    pub doc: Map<String, Value>,
    /// Creation time, gregorian seconds.
    pub created: i64,
    /// Last write, gregorian seconds.
    pub modified: i64,
    /// The revision, `<n>-<32 hex>`.
    pub revision: String,
}

impl fmt::Debug for Account {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The API key is a credential: never in logs.
        formatter
            .debug_struct("Account")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("parent_id", &self.parent_id)
            .field("tree", &self.tree)
            .field("api_key", &"<redacted>")
            .field("superduper_admin", &self.superduper_admin)
            .field("doc", &self.doc)
            .field("created", &self.created)
            .field("modified", &self.modified)
            .field("revision", &self.revision)
            .finish()
    }
}

/// An account to create.
#[derive(Clone)]
pub struct NewAccount {
    /// The new account's id.
    pub id: AccountId,
    /// Display name.
    pub name: String,
    /// The parent's id and the parent's own tree; `None` creates a root. The new account's tree
    /// is taken from the stored parent; the given tree only cross-checks it
    /// ([`StorageError::UnknownParent`] when the parent is missing or its tree differs).
    pub parent: Option<(AccountId, Vec<AccountId>)>,
    /// The API key exchanged for auth tokens; unique among accounts.
    pub api_key: String,
    /// Whether the account's users are super-duper admins.
    pub superduper_admin: bool,
    /// Extra public fields clients stored on the account.
    pub doc: Map<String, Value>,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("NewAccount")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("parent", &self.parent)
            .field("api_key", &"<redacted>")
            .field("superduper_admin", &self.superduper_admin)
            .field("doc", &self.doc)
            .finish()
    }
}

/// An `accounts` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
struct AccountRow {
    id: String,
    name: String,
    parent_id: Option<String>,
    path: String,
    api_key: String,
    superduper_admin: bool,
    doc: String,
    created: i64,
    modified: i64,
    revision_number: i64,
    revision_tag: String,
}

impl AccountRow {
    /// The domain account; fails when the stored ids or document are unreadable.
    fn into_account(self) -> Result<Account> {
        let corrupt = |what: String| StorageError::Corrupt(format!("account {}: {what}", self.id));
        let parse_id = |text: &str| text.parse::<AccountId>().map_err(|error| corrupt(error.to_string()));
        let id = parse_id(&self.id)?;
        let parent_id = self.parent_id.as_deref().map(parse_id).transpose()?;
        let mut tree =
            self.path.split('/').filter(|part| !part.is_empty()).map(parse_id).collect::<Result<Vec<_>>>()?;
        // The path ends with the account itself; the tree holds only its ancestors.
        if tree.pop().as_ref() != Some(&id) {
            return Err(corrupt(format!("path {} does not end with the account", self.path)));
        }
        let doc = parse_document(&self.doc).map_err(|error| corrupt(error.to_string()))?;
        Ok(Account {
            id,
            name: self.name,
            parent_id,
            tree,
            api_key: self.api_key,
            superduper_admin: self.superduper_admin,
            doc,
            created: self.created,
            modified: self.modified,
            revision: Revision::render(self.revision_number, &self.revision_tag),
        })
    }
}

/// Reads a stored JSON object.
pub(crate) fn parse_document(text: &str) -> serde_json::Result<Map<String, Value>> {
    serde_json::from_str(text)
}

/// Writes a JSON object for storage.
pub(crate) fn render_document(document: &Map<String, Value>) -> String {
    // Serializing a map of JSON values cannot fail: every key is a string.
    serde_json::to_string(document).unwrap_or_else(|_| String::from("{}"))
}

/// The path of a child of the account at `parent_path`.
fn child_path(parent_path: &str, id: &AccountId) -> String {
    format!("{parent_path}{id}/")
}

/// The exclusive upper bound of the paths in the subtree rooted at `path` (which ends with `/`):
/// `/` sorts right before `0` and ids are lowercase hex, so every path starting with `path` is
/// below `path` with its last `/` replaced by `0`.
pub(crate) fn subtree_end(path: &str) -> String {
    let mut end = path.strip_suffix('/').unwrap_or(path).to_owned();
    end.push('0');
    end
}

/// The ids of the subtree rooted at `path` (the account and every descendant), as a subquery.
#[diesel::dsl::auto_type]
pub(crate) fn subtree_ids(path: String) -> _ {
    let end: String = subtree_end(&path);
    accounts::table.filter(accounts::path.ge(path)).filter(accounts::path.lt(end)).select(accounts::id)
}

/// The stored path of an account.
pub(crate) fn load_path(connection: &mut AnyConnection, id: &str) -> Result<Option<String>> {
    Ok(accounts::table.filter(accounts::id.eq(id)).select(accounts::path).first::<String>(connection).optional()?)
}

/// One account.
fn load(connection: &mut AnyConnection, id: &str) -> Result<Option<Account>> {
    accounts::table
        .filter(accounts::id.eq(id))
        .select(AccountRow::as_select())
        .first(connection)
        .optional()?
        .map(AccountRow::into_account)
        .transpose()
}

/// Inserts `account` under its parent. Call inside a write transaction.
fn insert(connection: &mut AnyConnection, account: &NewAccount) -> Result<Account> {
    let path = match &account.parent {
        Some((parent, parent_tree)) => {
            let expected_path =
                parent_tree.iter().chain([parent]).fold(String::new(), |path, id| child_path(&path, id));
            let parent_path = load_path(connection, parent.as_str())?
                .filter(|stored| *stored == expected_path)
                .ok_or_else(|| StorageError::UnknownParent(parent.to_string()))?;
            child_path(&parent_path, &account.id)
        }
        None => child_path("", &account.id),
    };
    let created = gregorian_now();
    let revision = Revision::first();
    let row = AccountRow {
        id: account.id.to_string(),
        name: account.name.clone(),
        parent_id: account.parent.as_ref().map(|(parent, _)| parent.to_string()),
        path,
        api_key: account.api_key.clone(),
        superduper_admin: account.superduper_admin,
        doc: render_document(&account.doc),
        created,
        modified: created,
        revision_number: revision.number,
        revision_tag: revision.tag,
    };
    diesel::insert_into(accounts::table).values(&row).execute(connection).map_err(conflict_on_duplicate)?;
    row.into_account()
}

/// What [`Store::sync_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// The account was not stored: it is now.
    Created,
    /// Its name, document, flags or place in the tree changed.
    Changed,
    /// It was stored as given.
    Unchanged,
}

/// Writes `account` over the stored one, or inserts it: name, document (but for the account's own
/// failure limits, kept unless given) and super-admin flag are replaced, and a different parent
/// moves the account with its whole subtree. Call inside a write
/// transaction.
fn sync(connection: &mut AnyConnection, account: &NewAccount) -> Result<(Account, Synced)> {
    let Some(stored) = load(connection, account.id.as_str())? else {
        return Ok((insert(connection, account)?, Synced::Created));
    };
    // The account's own failure limits are set here, not in the other system's account document.
    let mut own = account.clone();
    if let Some(limits) = stored.doc.get(ACCOUNT_LIMITS_OBJECT) {
        own.doc.entry(ACCOUNT_LIMITS_OBJECT).or_insert_with(|| limits.clone());
    }
    let account = &own;
    let tree: Vec<AccountId> =
        account.parent.iter().flat_map(|(parent, tree)| tree.iter().chain([parent])).cloned().collect();
    if stored.name == account.name
        && stored.doc == account.doc
        && stored.superduper_admin == account.superduper_admin
        && stored.tree == tree
    {
        return Ok((stored, Synced::Unchanged));
    }
    if stored.tree != tree {
        move_subtree(connection, account)?;
    }
    diesel::update(accounts::table.filter(accounts::id.eq(account.id.as_str())))
        .set((
            accounts::name.eq(&account.name),
            accounts::doc.eq(render_document(&account.doc)),
            accounts::superduper_admin.eq(account.superduper_admin),
            accounts::modified.eq(gregorian_now()),
            accounts::revision_number.eq(accounts::revision_number + 1),
            accounts::revision_tag.eq(fresh_tag()),
        ))
        .execute(connection)?;
    let synced = load(connection, account.id.as_str())?
        .ok_or_else(|| StorageError::Corrupt(format!("account {} vanished inside its transaction", account.id)))?;
    Ok((synced, Synced::Changed))
}

/// Puts the stored account `account.id` under `account.parent`, rewriting the paths of its whole
/// subtree. [`StorageError::UnknownParent`] when the parent is not stored with the given tree, or
/// lies inside the subtree.
fn move_subtree(connection: &mut AnyConnection, account: &NewAccount) -> Result<()> {
    let id = account.id.as_str();
    let old_path = load_path(connection, id)?.ok_or_else(|| StorageError::Corrupt(format!("account {id}: no path")))?;
    let new_path = match &account.parent {
        Some((parent, parent_tree)) => {
            let expected = parent_tree.iter().chain([parent]).fold(String::new(), |path, id| child_path(&path, id));
            let parent_path = load_path(connection, parent.as_str())?
                .filter(|stored| *stored == expected && !stored.starts_with(&old_path))
                .ok_or_else(|| StorageError::UnknownParent(parent.to_string()))?;
            child_path(&parent_path, &account.id)
        }
        None => child_path("", &account.id),
    };
    let end = subtree_end(&old_path);
    let subtree: Vec<(String, String)> = accounts::table
        .filter(accounts::path.ge(&old_path))
        .filter(accounts::path.lt(&end))
        .select((accounts::id, accounts::path))
        .load(connection)?;
    for (member, path) in subtree {
        let moved = format!("{new_path}{}", &path[old_path.len()..]);
        diesel::update(accounts::table.filter(accounts::id.eq(&member)))
            .set(accounts::path.eq(moved))
            .execute(connection)?;
    }
    let parent_id = account.parent.as_ref().map(|(parent, _)| parent.to_string());
    diesel::update(accounts::table.filter(accounts::id.eq(id)))
        .set(accounts::parent_id.eq(parent_id))
        .execute(connection)?;
    Ok(())
}

/// Accounts ordered by id.
fn load_many<Q>(connection: &mut AnyConnection, query: Q) -> Result<Vec<Account>>
where
    Q: diesel::query_dsl::LoadQuery<'static, AnyConnection, AccountRow>,
{
    query.load(connection)?.into_iter().map(AccountRow::into_account).collect()
}

impl Store {
    /// Creates the master account from `candidate` unless one exists (setting
    /// `master_account_id`), atomically even when replicas start together. Returns the master
    /// and whether it was created now.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn bootstrap_master(&self, candidate: &NewAccount) -> Result<(Account, bool)> {
        let candidate = candidate.clone();
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                lock_for_transaction(connection, BOOTSTRAP_LOCK)?;
                if let Some(master_id) = settings::load(connection, MASTER_ACCOUNT_SETTING)?
                    && let Some(master) = load(connection, &master_id)?
                {
                    return Ok((master, false));
                }
                // No master yet, or the setting names an account that no longer exists.
                let master = insert(connection, &candidate)?;
                settings::replace(connection, MASTER_ACCOUNT_SETTING, master.id.as_str())?;
                Ok((master, true))
            })
        })
        .await
    }

    /// Replaces the API key of an account; `false` when it does not exist,
    /// [`StorageError::Conflict`] when another account has that key.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %id))]
    pub async fn set_api_key(&self, id: &AccountId, api_key: &str) -> Result<bool> {
        let id = id.to_string();
        let api_key = api_key.to_owned();
        self.run(move |connection| {
            let updated = diesel::update(accounts::table.filter(accounts::id.eq(&id)))
                .set((
                    accounts::api_key.eq(&api_key),
                    accounts::modified.eq(gregorian_now()),
                    accounts::revision_number.eq(accounts::revision_number + 1),
                    accounts::revision_tag.eq(fresh_tag()),
                ))
                .execute(connection)
                .map_err(conflict_on_duplicate)?;
            Ok(updated > 0)
        })
        .await
    }

    /// Creates an account under `account.parent` ([`StorageError::UnknownParent`] when it does
    /// not exist; [`StorageError::Conflict`] when the id or API key is taken).
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account.id))]
    pub async fn insert_account(&self, account: &NewAccount) -> Result<Account> {
        let account = account.clone();
        self.run(move |connection| write_transaction(connection, |connection| insert(connection, &account))).await
    }

    /// Writes an account as another system of record has it ([`Synced`] says what changed):
    /// inserted when it is not stored (with `account.api_key`), otherwise its name, document and
    /// super-admin flag replaced and, when its parent differs, moved with its whole subtree.
    /// [`StorageError::UnknownParent`] when the parent is not stored with the given tree.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %account.id))]
    pub async fn sync_account(&self, account: &NewAccount) -> Result<(Account, Synced)> {
        let account = account.clone();
        self.run(move |connection| write_transaction(connection, |connection| sync(connection, &account))).await
    }

    /// Writes many accounts as another system of record has them (each as
    /// [`Store::sync_account`] does, parents before their children), in one transaction, rolled
    /// back unless `commit`: a trial run sees what it would write, and writes nothing. Each
    /// account's outcome; one whose parent is not stored fails alone
    /// ([`StorageError::UnknownParent`]), any other error fails them all.
    pub async fn sync_accounts(&self, accounts: Vec<NewAccount>, commit: bool) -> Result<Vec<Result<Synced>>> {
        self.run(move |connection| {
            transaction(connection, commit, |connection| {
                let mut outcomes = Vec::with_capacity(accounts.len());
                for account in &accounts {
                    outcomes.push(match sync(connection, account) {
                        Ok((_, synced)) => Ok(synced),
                        Err(error @ StorageError::UnknownParent(_)) => Err(error),
                        Err(error) => return Err(error),
                    });
                }
                Ok(outcomes)
            })
        })
        .await
    }

    /// Makes account `id` the master unless one is named already (an import of another system's
    /// tree, before any start has created a master of its own); the master's id now.
    pub async fn name_master_if_unset(&self, id: &AccountId) -> Result<String> {
        self.insert_setting_if_absent(MASTER_ACCOUNT_SETTING, id.as_str()).await
    }

    /// One account.
    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        let id = id.to_string();
        self.run(move |connection| load(connection, &id)).await
    }

    /// The account holding `api_key`.
    pub async fn account_by_api_key(&self, api_key: &str) -> Result<Option<Account>> {
        if api_key.is_empty() {
            // An empty key never authenticates, whatever is stored.
            return Ok(None);
        }
        let api_key = api_key.to_owned();
        self.run(move |connection| {
            accounts::table
                .filter(accounts::api_key.eq(&api_key))
                .select(AccountRow::as_select())
                .first(connection)
                .optional()?
                .map(AccountRow::into_account)
                .transpose()
        })
        .await
    }

    /// Replaces the name and the extra document fields of an account, bumping its revision and
    /// modification time. `None` when it does not exist.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %id))]
    pub async fn update_account(
        &self,
        id: &AccountId,
        name: &str,
        doc: &Map<String, Value>,
    ) -> Result<Option<Account>> {
        let id = id.to_string();
        let name = name.to_owned();
        let doc = render_document(doc);
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                let updated = diesel::update(accounts::table.filter(accounts::id.eq(&id)))
                    .set((
                        accounts::name.eq(&name),
                        accounts::doc.eq(&doc),
                        accounts::modified.eq(gregorian_now()),
                        accounts::revision_number.eq(accounts::revision_number + 1),
                        accounts::revision_tag.eq(fresh_tag()),
                    ))
                    .execute(connection)?;
                if updated == 0 {
                    return Ok(None);
                }
                load(connection, &id)
            })
        })
        .await
    }

    /// The direct children of an account, ordered by id.
    pub async fn children(&self, id: &AccountId) -> Result<Vec<Account>> {
        let id = id.to_string();
        self.run(move |connection| {
            let query = accounts::table
                .filter(accounts::parent_id.eq(id))
                .order(accounts::id.asc())
                .select(AccountRow::as_select());
            load_many(connection, query)
        })
        .await
    }

    /// Every account, ordered by id (the router's account tree).
    pub async fn all_accounts(&self) -> Result<Vec<Account>> {
        self.run(|connection| {
            load_many(connection, accounts::table.order(accounts::id.asc()).select(AccountRow::as_select()))
        })
        .await
    }

    /// Every descendant of an account (all depths, not the account itself), ordered by id.
    pub async fn descendants(&self, id: &AccountId) -> Result<Vec<Account>> {
        let id = id.to_string();
        self.run(move |connection| {
            let Some(path) = load_path(connection, &id)? else {
                return Ok(Vec::new());
            };
            let end = subtree_end(&path);
            // Strictly greater: the account's own path is the lower bound of its subtree.
            let query = accounts::table
                .filter(accounts::path.gt(path))
                .filter(accounts::path.lt(end))
                .order(accounts::id.asc())
                .select(AccountRow::as_select());
            load_many(connection, query)
        })
        .await
    }

    /// Whether an account has at least one child.
    pub async fn has_children(&self, id: &AccountId) -> Result<bool> {
        let id = id.to_string();
        self.run(move |connection| {
            let child = accounts::table
                .filter(accounts::parent_id.eq(id))
                .select(accounts::id)
                .first::<String>(connection)
                .optional()?;
            Ok(child.is_some())
        })
        .await
    }

    /// Deletes an account with its webhooks and their attempts in one transaction. `false` when
    /// it does not exist; [`StorageError::HasChildren`] while it has sub-accounts.
    #[tracing::instrument(level = "debug", skip_all, fields(account.id = %id))]
    pub async fn delete_account(&self, id: &AccountId) -> Result<bool> {
        let id = id.to_string();
        self.run(move |connection| {
            write_transaction(connection, |connection| {
                if load_path(connection, &id)?.is_none() {
                    return Ok(false);
                }
                let child = accounts::table
                    .filter(accounts::parent_id.eq(&id))
                    .select(accounts::id)
                    .first::<String>(connection)
                    .optional()?;
                if child.is_some() {
                    return Err(StorageError::HasChildren(id.clone()));
                }
                diesel::delete(attempts::table.filter(attempts::account_id.eq(&id))).execute(connection)?;
                diesel::delete(webhooks::table.filter(webhooks::account_id.eq(&id))).execute(connection)?;
                diesel::delete(accounts::table.filter(accounts::id.eq(&id))).execute(connection)?;
                Ok(true)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subtree_end_sorts_after_every_descendant_path_and_before_siblings() {
        let root = "aaaa/";
        let end = subtree_end(root);
        assert_eq!(end, "aaaa0");
        assert!("aaaa/ffff/" < end.as_str());
        assert!("aaaa/ffff/ffff/" < end.as_str());
        assert!("aaaa0/" >= end.as_str());
        assert!("aaaab/" > end.as_str());
    }
}
