//! `webhooks export --couch URL`: every hook written back into Kazoo's CouchDB, in Kazoo's
//! format, so that Kazoo's own webhooks app can take over again.

use anyhow::Context;
use clap::Args;
use webhooks_api::operations;
use webhooks_model::config::redact_url;
use webhooks_storage::couch::CouchDb;

use super::{Admin, print_table, progress, table};

/// `webhooks export ...`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct ExportCommand {
    /// Kazoo's CouchDB (`http://user:password@couch.example.net:5984`).
    #[arg(long, value_name = "URL")]
    couch: String,
}

/// Runs `command`.
pub(super) async fn run(context: &Admin<'_>, command: ExportCommand) -> anyhow::Result<()> {
    let couch = CouchDb::new(&command.couch).with_context(|| format!("reading {}", redact_url(&command.couch)))?;
    let total = context.store.count_webhooks().await.context("counting the hooks")?;
    let bar = progress(total, "hooks");
    let (tally, problems) = operations::export_hooks(&context.store, &couch, |read| {
        bar.set_position(u64::try_from(read).unwrap_or(u64::MAX));
    })
    .await
    .context("exporting hooks")?;
    bar.finish_and_clear();
    let mut refused = table(["HOOK", "REFUSED BY COUCHDB"]);
    for problem in &problems {
        refused.add_row([problem.source.as_str(), problem.reason.as_str()]);
    }
    print_table(&refused, "every hook written")?;
    let mut summary = table(["KIND", "READ", "NEW", "UPDATED", "UNCHANGED", "REFUSED"]);
    let counts = [tally.read, tally.imported, tally.updated, tally.unchanged, tally.skipped];
    summary.add_row(["hooks".to_owned()].into_iter().chain(counts.map(|count| count.to_string())));
    print_table(&summary, "")?;
    anyhow::ensure!(problems.is_empty(), "{} hook(s) refused by CouchDB: run the export again", problems.len());
    Ok(())
}
