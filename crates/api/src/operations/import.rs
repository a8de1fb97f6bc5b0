//! The import of Kazoo's accounts and hooks from its CouchDB `accounts` and `webhooks` databases
//! (docs/kazoo.md#couchdb-import).
//!
//! Failure limits are imported as Kazoo applies them (docs/kazoo.md#couchdb-import).
//! Accounts are written as Kazoo has them (created, changed or moved with their subtree), parents
//! first, in one transaction; accounts gone from Kazoo are left to the operator. Hook documents are
//! read a page at a time and written a batch per transaction, so memory grows only
//! with the ids of the hooks seen (kept to find the ones gone since the last import). Each hook
//! is validated as a client's document is (Kazoo's non-strict coercion included) but for the
//! modifiers, with its fields kept verbatim otherwise; a document that cannot be imported is reported with why, and skipped.
//! A repeated import leaves alone what is unchanged, writes again what changed, and deletes what
//! CouchDB no longer has, among the hooks an import brought over only.

use std::collections::{HashMap, HashSet};

use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value};
use webhooks_model::couch::{
    ACCOUNT_CONFIG_ID, KazooAccount, KazooHook, Read, SYSTEM_CONFIG_ID, account_db, failure_limits, monthly_dbs,
    read_account_document, read_attempt_document, read_hook_document,
};
use webhooks_model::hooks::HookDefinitions;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::notice::{Action, Change};
use webhooks_model::retry::{ACCOUNT_LIMITS_OBJECT, FAILURE_COUNT_KEY, FAILURE_EXPIRY_KEY, FailureLimits};
use webhooks_model::webhook::{ValidationContext, validate_stored_webhook};
use webhooks_storage::couch::{CouchDb, CouchError};
use webhooks_storage::{ImportOutcome, ImportedWebhook, NewAccount, NewAttempt, StorageError, Store, Synced};

use super::hooks::new_webhook;

/// Kazoo's database of hooks.
pub(super) const WEBHOOKS_DB: &str = "webhooks";
/// Kazoo's database of accounts (the aggregate copy of each account's own document).
const ACCOUNTS_DB: &str = "accounts";
/// Kazoo's database of system-wide settings.
const SYSTEM_CONFIG_DB: &str = "system_config";
/// Documents read from CouchDB at once where each is a request of its own.
const CONCURRENT_READS: usize = 16;

/// Why an import, an export or a write of the mirror stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// CouchDB could not be read or written.
    #[error(transparent)]
    Couch(#[from] CouchError),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// CouchDB refused a document.
    #[error("CouchDB refused {0}")]
    Refused(String),
}

/// How to import.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions<'a> {
    /// The hook types hooks are validated against.
    pub definitions: &'a HookDefinitions,
    /// Literal private addresses are accepted as hook hosts (as the API accepts them).
    pub allow_private_targets: bool,
    /// Documents read, and hooks written, at a time.
    pub batch_size: usize,
    /// Write; false for a dry run, which reports what it would do and writes nothing.
    pub commit: bool,
}

/// Counts of one kind of document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Documents read.
    pub read: usize,
    /// Written as new.
    pub imported: usize,
    /// Written over what an earlier import brought.
    pub updated: usize,
    /// Imported at the same revision already.
    pub unchanged: usize,
    /// Not imported: not a hook (design documents, other types, soft-deleted), or reported in
    /// [`ImportReport::problems`].
    pub skipped: usize,
    /// Deleted here: gone from CouchDB since an earlier import.
    pub deleted: usize,
}

/// A document that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The document (its id, and the second hook's suffix for a legacy fax hook).
    pub source: String,
    /// Why.
    pub reason: String,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct ImportReport {
    /// The accounts.
    pub accounts: Tally,
    /// The hooks.
    pub hooks: Tally,
    /// The failure limits: the system's, and each account's own.
    pub limits: Tally,
    /// The attempt records.
    pub attempts: Tally,
    /// The documents not imported, and why.
    pub problems: Vec<Problem>,
    /// Hooks whose document id is no hook id, with the id each has here.
    pub new_ids: Vec<(String, WebhookId)>,
    /// The changes routers must hear of.
    pub changes: Vec<Change>,
    /// In a dry run, the accounts it would have created: their hooks would be imported too.
    unwritten_accounts: HashSet<AccountId>,
}

/// Imports the hooks of Kazoo's `webhooks` database from `couch` into `store`, counting into
/// `report`; `progress` is told the documents read so far after each page.
pub async fn import_hooks(
    store: &Store,
    couch: &CouchDb,
    options: ImportOptions<'_>,
    report: &mut ImportReport,
    mut progress: impl FnMut(usize),
) -> Result<(), ImportError> {
    let mut seen = HashSet::new();
    each_page(couch, WEBHOOKS_DB, options.batch_size, async |docs| {
        let mut batch = Vec::with_capacity(docs.len());
        for doc in &docs {
            report.hooks.read += 1;
            for hook in read(doc, report) {
                seen.insert(hook.source.clone());
                match validated(hook, options) {
                    Ok(hook) => batch.push(hook),
                    Err(problem) => report.skip(problem),
                }
            }
        }
        let sources: Vec<(String, AccountId)> =
            batch.iter().map(|hook| (hook.source.clone(), hook.hook.account_id.clone())).collect();
        let outcomes = store.import_webhooks(batch, options.commit).await?;
        for ((source, account), outcome) in sources.into_iter().zip(outcomes) {
            report.count(source, account, outcome);
        }
        progress(report.hooks.read);
        Ok(())
    })
    .await?;
    let gone: Vec<_> =
        store.imported_webhooks().await?.into_iter().filter(|imported| !seen.contains(&imported.source)).collect();
    for deleted in store.delete_imported_webhooks(gone, options.commit).await? {
        report.hooks.deleted += 1;
        report.changes.push(Change::Webhook {
            action: Action::Deleted,
            id: deleted.id,
            account_id: deleted.account_id,
        });
    }
    Ok(())
}

/// Imports Kazoo's accounts from `couch` into `store`, counting into `report` (standalone mode:
/// in Kazoo mode the account sync copies them from Crossbar), parents first, and makes Kazoo's
/// master (the super-duper admin without ancestors) the master here unless one is named already.
pub async fn import_accounts(
    store: &Store,
    couch: &CouchDb,
    options: ImportOptions<'_>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let mut accounts: Vec<KazooAccount> = Vec::new();
    each_page(couch, ACCOUNTS_DB, options.batch_size, async |docs| {
        for doc in &docs {
            report.accounts.read += 1;
            match read_account_document(doc) {
                Ok(Read::Found(account)) => accounts.push(account),
                Ok(Read::Skipped(_)) => report.accounts.skipped += 1,
                Err(error) => report.skip_account(Problem { source: document_id(doc), reason: error.to_string() }),
            }
        }
        Ok(())
    })
    .await?;
    // Parents first: an account's tree is longer than each of its ancestors'.
    accounts.sort_by_key(|account| account.tree.len());
    let master =
        accounts.iter().find(|account| account.tree.is_empty() && account.superduper_admin).map(|a| a.id.clone());
    let ids: Vec<AccountId> = accounts.iter().map(|account| account.id.clone()).collect();
    let outcomes = store.sync_accounts(accounts.into_iter().map(new_account).collect(), options.commit).await?;
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        match outcome {
            Ok(Synced::Created) => {
                report.accounts.imported += 1;
                if !options.commit {
                    report.unwritten_accounts.insert(id.clone());
                }
                report.changes.push(Change::Account { action: Action::Created, id });
            }
            Ok(Synced::Changed) => {
                report.accounts.updated += 1;
                report.changes.push(Change::Account { action: Action::Edited, id });
            }
            Ok(Synced::Unchanged) => report.accounts.unchanged += 1,
            Err(error) => report.skip_account(Problem { source: id.to_string(), reason: error.to_string() }),
        }
    }
    if let Some(master) = master.filter(|_| options.commit) {
        store.name_master_if_unset(&master).await?;
    }
    Ok(())
}

/// Imports Kazoo's failure limits, counting into `report`: the system's
/// (`system_config/webhooks`, under `default`) as the stored system limits (a key Kazoo lacks
/// keeps the value in force here, `configured` when none is stored), and each stored account's as
/// Kazoo applies them (its own `configs_webhooks`, else its reseller's; a key neither holds is
/// the system's) into the account's `webhooks` object. An account for which Kazoo has neither
/// document keeps what it has here.
pub async fn import_limits(
    store: &Store,
    couch: &CouchDb,
    options: ImportOptions<'_>,
    configured: FailureLimits,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if let Some(system) = couch.document(SYSTEM_CONFIG_DB, SYSTEM_CONFIG_ID).await? {
        report.limits.read += 1;
        let limits = failure_limits(&system["default"]);
        let current = store.system_failure_limits(configured).await?;
        let wanted = FailureLimits::for_account(&webhooks_object(limits.clone()), current.unwrap_or(configured));
        if limits.is_empty() {
            report.limits.skipped += 1;
        } else if current == Some(wanted) {
            report.limits.unchanged += 1;
        } else {
            if options.commit {
                store.set_system_failure_limits(wanted).await?;
            }
            report.limits.count_written(current.is_some());
        }
    }
    let accounts = store.all_accounts().await?;
    // One document an account: read several at a time, as a round trip costs far more than
    // its document.
    let configs: Vec<(AccountId, Option<Value>)> = stream::iter(&accounts)
        .map(|account| async move {
            let config = couch.document(&account_db(&account.id), ACCOUNT_CONFIG_ID).await?;
            Ok::<_, CouchError>((account.id.clone(), config))
        })
        .buffer_unordered(CONCURRENT_READS)
        .try_collect()
        .await?;
    let mut own = HashMap::new();
    for (id, config) in configs {
        if let Some(config) = config {
            report.limits.read += 1;
            own.insert(id, failure_limits(&config));
        }
    }
    for account in accounts {
        let reseller =
            account.doc.get("reseller_id").and_then(Value::as_str).and_then(|id| id.parse::<AccountId>().ok());
        let inherited = reseller.filter(|reseller| *reseller != account.id).and_then(|reseller| own.get(&reseller));
        let Some(wanted) = own.get(&account.id).or(inherited) else { continue };
        let before = account.doc.get(ACCOUNT_LIMITS_OBJECT).and_then(Value::as_object).cloned().unwrap_or_default();
        let mut config = before.clone();
        config.retain(|key, _| key != FAILURE_COUNT_KEY && key != FAILURE_EXPIRY_KEY);
        config.extend(wanted.clone());
        if config == before {
            report.limits.unchanged += 1;
            continue;
        }
        let had_limits = before.contains_key(FAILURE_COUNT_KEY) || before.contains_key(FAILURE_EXPIRY_KEY);
        if options.commit {
            let mut doc = account.doc.clone();
            doc.insert(ACCOUNT_LIMITS_OBJECT.into(), Value::Object(config));
            // Dispatchers read limits through their account cache; no router indexes them.
            if let Some(updated) = super::update_account(store, &account.id, &account.name, &doc).await? {
                updated.unannounced();
            }
        }
        report.limits.count_written(had_limits);
    }
    Ok(())
}

/// Imports the attempt records of the `months` months up to the one of `unix_seconds` of every
/// stored account, from its monthly databases, counting into `report`: a record stored already
/// is left as it is (Kazoo never changes one). Imported records keep no delivery job, so they
/// cannot be resent. `progress` is told the records read so far after each page.
pub async fn import_attempts(
    store: &Store,
    couch: &CouchDb,
    options: ImportOptions<'_>,
    months: u32,
    unix_seconds: i64,
    report: &mut ImportReport,
    mut progress: impl FnMut(usize),
) -> Result<(), ImportError> {
    for account in store.all_accounts().await? {
        for db in monthly_dbs(&account.id, unix_seconds, months) {
            each_page(couch, &db, options.batch_size, async |docs| {
                let mut batch = Vec::with_capacity(docs.len());
                for doc in &docs {
                    report.attempts.read += 1;
                    match read_attempt_document(doc) {
                        Ok(Read::Found(attempt)) => batch.push(NewAttempt {
                            id: attempt.id,
                            account_id: attempt.account_id,
                            hook_id: attempt.hook_id,
                            created: attempt.created,
                            doc: attempt.fields,
                            job: None,
                        }),
                        Ok(Read::Skipped(_)) => report.attempts.skipped += 1,
                        Err(error) => {
                            report.attempts.skipped += 1;
                            let source = format!("{db}/{}", document_id(doc));
                            report.problems.push(Problem { source, reason: error.to_string() });
                        }
                    }
                }
                let inserted = store.import_attempts(&batch, options.commit).await?;
                report.attempts.imported += inserted;
                report.attempts.unchanged += batch.len() - inserted;
                progress(report.attempts.read);
                Ok(())
            })
            .await?;
        }
    }
    Ok(())
}

/// Hands each page of `size` documents of database `db` to `handle`, in order, reading the next
/// page while it handles one, so that CouchDB's answers and the writes here overlap.
async fn each_page(
    couch: &CouchDb,
    db: &str,
    size: usize,
    mut handle: impl AsyncFnMut(Vec<Value>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let size = size.max(1);
    let mut page = couch.page(db, None, size).await?;
    loop {
        let start = page.next.take();
        let next = async {
            match &start {
                Some(start) => couch.page(db, Some(start), size).await.map(Some),
                None => Ok(None),
            }
        };
        let (handled, next) = tokio::join!(handle(page.docs), next);
        handled?;
        match next? {
            Some(next) => page = next,
            None => return Ok(()),
        }
    }
}

/// `limits` as an account document's `webhooks` object, which [`FailureLimits::for_account`] reads.
fn webhooks_object(limits: Map<String, Value>) -> Map<String, Value> {
    Map::from_iter([(ACCOUNT_LIMITS_OBJECT.to_owned(), Value::Object(limits))])
}

/// `account` to store; an account without an API key in Kazoo gets a random one nobody knows.
fn new_account(account: KazooAccount) -> NewAccount {
    NewAccount {
        parent: account.tree.split_last().map(|(parent, ancestors)| (parent.clone(), ancestors.to_vec())),
        api_key: account.api_key.unwrap_or_else(crate::accounts::generate_api_key),
        id: account.id,
        name: account.name,
        superduper_admin: account.superduper_admin,
        doc: account.doc,
    }
}

/// The `_id` of a document, for a report.
fn document_id(doc: &serde_json::Value) -> String {
    doc["_id"].as_str().unwrap_or("(no _id)").to_owned()
}

/// The hooks `doc` stands for; none for a document that is no hook, or cannot be read.
fn read(doc: &serde_json::Value, report: &mut ImportReport) -> Vec<KazooHook> {
    match read_hook_document(doc) {
        Ok(Read::Found(hooks)) => hooks,
        Ok(Read::Skipped(_)) => {
            report.hooks.skipped += 1;
            Vec::new()
        }
        Err(error) => {
            report.skip(Problem { source: document_id(doc), reason: error.to_string() });
            Vec::new()
        }
    }
}

/// `hook` validated as a stored document (a client's document, but for the modifiers Kazoo's
/// own migration leaves out), ready to write.
fn validated(hook: KazooHook, options: ImportOptions<'_>) -> Result<ImportedWebhook, Problem> {
    let context = ValidationContext {
        definitions: options.definitions,
        // Kazoo accepted it: a type only a super-duper admin may use was set by one.
        superduper_admin: true,
        allow_private_targets: options.allow_private_targets,
    };
    let document = validate_stored_webhook(&hook.fields, &context).map_err(|errors| Problem {
        source: hook.source.clone(),
        reason: format!("invalid hook: {}", errors.into_json()),
    })?;
    // The id is chosen by the store: the source's own, one imported before, or a fresh one.
    let placeholder = WebhookId::generate();
    let disabled_reason = hook.disabled_reason.filter(|_| !document.enabled());
    Ok(ImportedWebhook {
        hook: new_webhook(placeholder, hook.account_id, document),
        source: hook.source,
        revision: hook.revision,
        disabled_reason,
    })
}

impl Tally {
    /// One written: over what was here (`updated`) or new.
    fn count_written(&mut self, updated: bool) {
        if updated {
            self.updated += 1;
        } else {
            self.imported += 1;
        }
    }
}

impl ImportReport {
    fn skip(&mut self, problem: Problem) {
        self.hooks.skipped += 1;
        self.problems.push(problem);
    }

    fn skip_account(&mut self, problem: Problem) {
        self.accounts.skipped += 1;
        self.problems.push(problem);
    }

    /// Counts what the store did with the hook of `source`, owned by `account`.
    fn count(&mut self, source: String, account: AccountId, outcome: ImportOutcome) {
        match outcome {
            ImportOutcome::Created(id) => {
                self.hooks.imported += 1;
                self.changes.push(Change::Webhook { action: Action::Created, id: id.clone(), account_id: account });
                if id.as_str() != source {
                    self.new_ids.push((source, id));
                }
            }
            ImportOutcome::Updated(id) => {
                self.hooks.updated += 1;
                self.changes.push(Change::Webhook { action: Action::Edited, id, account_id: account });
            }
            ImportOutcome::Unchanged(_) => self.hooks.unchanged += 1,
            ImportOutcome::IdTaken(id) => {
                self.skip(Problem { source, reason: format!("hook id {id} belongs to another account's hook here") })
            }
            ImportOutcome::UnknownOwner(id) if self.unwritten_accounts.contains(&account) => {
                self.hooks.imported += 1;
                self.changes.push(Change::Webhook { action: Action::Created, id, account_id: account });
            }
            ImportOutcome::UnknownOwner(_) => {
                self.skip(Problem { source, reason: "its account (pvt_account_id) is not known here".to_owned() })
            }
        }
    }
}
