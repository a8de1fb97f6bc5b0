//! Hooks written back into Kazoo's CouchDB `webhooks` database in Kazoo's document format
//! (docs/kazoo.md#couchdb-import): all of them by an export, so an operator can go back to
//! Kazoo's app at any time, or one at a time by the mirror of Kazoo mode, from which Kazoo's
//! mailer reads a disabled hook.

use webhooks_model::couch::{HookExport, write_hook_document};
use webhooks_model::ids::WebhookId;
use webhooks_storage::couch::CouchDb;
use webhooks_storage::{Store, Webhook};

use super::import::{ImportError, Problem, Tally, WEBHOOKS_DB};

/// Hooks read from the store, and written, at a time.
const PAGE: u32 = 500;

/// Writes `hooks` into Kazoo's `webhooks` database, each over the document there (whose
/// revision and Kazoo's own private fields are kept) unless that holds it already; counts into
/// `tally` (`imported`: new there, `updated`, `unchanged`) and returns the hooks CouchDB refused.
pub async fn write_hooks(couch: &CouchDb, hooks: &[Webhook], tally: &mut Tally) -> Result<Vec<Problem>, ImportError> {
    // Kazoo creates it when its app first starts; a cluster that never ran the app has none.
    couch.create_database(WEBHOOKS_DB).await?;
    let ids: Vec<String> = hooks.iter().map(|hook| hook.id.to_string()).collect();
    let existing = couch.documents(WEBHOOKS_DB, &ids).await?;
    let mut docs = Vec::new();
    let mut written = Vec::new();
    for (hook, existing) in hooks.iter().zip(&existing) {
        let export = HookExport {
            id: &hook.id,
            account_id: &hook.account_id,
            fields: &hook.doc,
            enabled: hook.enabled,
            disabled_reason: hook.disabled_reason.as_deref(),
            created: hook.created,
            modified: hook.modified,
        };
        match write_hook_document(&export, existing.as_ref()) {
            Some(doc) => {
                docs.push(doc);
                written.push((hook.id.to_string(), existing.is_some()));
            }
            None => tally.unchanged += 1,
        }
    }
    let mut problems = Vec::new();
    for ((source, updated), error) in written.into_iter().zip(couch.save_all(WEBHOOKS_DB, docs).await?) {
        match error {
            None if updated => tally.updated += 1,
            None => tally.imported += 1,
            Some(reason) => {
                tally.skipped += 1;
                problems.push(Problem { source, reason });
            }
        }
    }
    Ok(problems)
}

/// Deletes hook `id` from Kazoo's `webhooks` database, if it is there.
pub async fn delete_hook_document(couch: &CouchDb, id: &WebhookId) -> Result<(), ImportError> {
    couch.delete(WEBHOOKS_DB, id.as_str()).await?;
    Ok(())
}

/// Exports every hook of `store` into Kazoo's `webhooks` database of `couch`, page by page;
/// `progress` is told the hooks read so far after each page. The counts, and the hooks CouchDB
/// refused.
pub async fn export_hooks(
    store: &Store,
    couch: &CouchDb,
    mut progress: impl FnMut(usize),
) -> Result<(Tally, Vec<Problem>), ImportError> {
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let mut after = None;
    loop {
        let page = store.all_webhooks_page(after.as_ref(), PAGE).await?;
        tally.read += page.len();
        problems.extend(write_hooks(couch, &page, &mut tally).await?);
        progress(tally.read);
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.id.clone()),
            _ => return Ok((tally, problems)),
        }
    }
}
