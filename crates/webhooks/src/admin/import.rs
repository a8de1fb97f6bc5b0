//! `webhooks import --couch URL [--months N] [--dry-run]`: Kazoo's accounts (standalone mode),
//! hooks, failure limits and recent attempt records, from its CouchDB.

use anyhow::Context;
use clap::Args;
use webhooks_api::operations::{self, ImportOptions, ImportReport, Tally};
use webhooks_bus::Outgoing;
use webhooks_model::config::redact_url;
use webhooks_model::hooks::HookDefinitions;
use webhooks_storage::couch::CouchDb;

use super::{Admin, connect_to, output, print_table, progress, progress_of, table};

/// Documents read, and hooks written in one transaction, at a time.
const BATCH_SIZE: usize = 500;
/// Change notices published at a time.
const NOTICES_AT_ONCE: usize = 1_000;

/// `webhooks import ...`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct ImportCommand {
    /// Kazoo's CouchDB (`http://user:password@couch.example.net:5984`).
    #[arg(long, value_name = "URL")]
    couch: String,
    /// Attempt records of this many months are imported, the current one included.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=120))]
    months: u32,
    /// Report what the import would do, and write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `command`.
pub(super) async fn run(context: &Admin<'_>, command: ImportCommand) -> anyhow::Result<()> {
    let couch = CouchDb::new(&command.couch).with_context(|| format!("reading {}", redact_url(&command.couch)))?;
    let definitions = HookDefinitions::default();
    let options = ImportOptions {
        definitions: &definitions,
        allow_private_targets: context.settings.allow_private_targets,
        batch_size: BATCH_SIZE,
        commit: !command.dry_run,
    };
    let mut report = ImportReport::default();
    // In Kazoo mode the account sync copies Kazoo's accounts from Crossbar.
    if context.settings.kazoo.crossbar_url.is_none() {
        operations::import_accounts(&context.store, &couch, options, &mut report)
            .await
            .context("importing accounts")?;
    }
    let total = couch.doc_count("webhooks").await.context("reading CouchDB's webhooks database")?;
    let bar = progress(usize::try_from(total).unwrap_or(usize::MAX), "hooks");
    operations::import_hooks(&context.store, &couch, options, &mut report, |read| {
        bar.set_position(u64::try_from(read).unwrap_or(u64::MAX));
    })
    .await
    .context("importing hooks")?;
    bar.finish_and_clear();
    operations::import_limits(&context.store, &couch, options, context.dispatcher.failure_limits, &mut report)
        .await
        .context("importing failure limits")?;
    let now = webhooks_model::time::unix_seconds();
    let bar = progress_of(None, "attempt records");
    operations::import_attempts(&context.store, &couch, options, command.months, now, &mut report, |read| {
        bar.set_position(u64::try_from(read).unwrap_or(u64::MAX));
    })
    .await
    .context("importing attempt records")?;
    bar.finish_and_clear();
    print_report(&report)?;
    if command.dry_run {
        return output("dry run: nothing written");
    }
    announce(context, &report).await
}

fn print_report(report: &ImportReport) -> anyhow::Result<()> {
    let mut problems = table(["DOCUMENT", "NOT IMPORTED BECAUSE"]);
    for problem in &report.problems {
        problems.add_row([problem.source.as_str(), problem.reason.as_str()]);
    }
    print_table(&problems, "every document could be imported")?;
    if !report.new_ids.is_empty() {
        let mut new_ids = table(["DOCUMENT", "HOOK ID HERE"]);
        for (source, id) in &report.new_ids {
            new_ids.add_row([source.as_str(), id.as_str()]);
        }
        print_table(&new_ids, "")?;
    }
    let mut summary = table(["KIND", "READ", "IMPORTED", "UPDATED", "UNCHANGED", "SKIPPED", "DELETED"]);
    for (kind, tally) in [
        ("accounts", report.accounts),
        ("hooks", report.hooks),
        ("limits", report.limits),
        ("attempts", report.attempts),
    ] {
        let Tally { read, imported, updated, unchanged, skipped, deleted } = tally;
        let counts = [read, imported, updated, unchanged, skipped, deleted].map(|count| count.to_string());
        summary.add_row([kind.to_owned()].into_iter().chain(counts));
    }
    print_table(&summary, "")
}

/// Tells the routers of what was written, or says why they pick it up later.
async fn announce(context: &Admin<'_>, report: &ImportReport) -> anyhow::Result<()> {
    if report.changes.is_empty() {
        return Ok(());
    }
    let settings = context.settings;
    let Some(url) = &settings.amqp_url else {
        return output(format_args!(
            "WEBHOOKS_AMQP_URL is not set: no change notice published; routers pick the changes up at their next \
             reload (every {} s)",
            settings.router.reload_interval_seconds
        ));
    };
    let bus = connect_to(settings, url).await?;
    let node = crate::settings::node(settings);
    for changes in report.changes.chunks(NOTICES_AT_ONCE) {
        let notices = changes.iter().map(|change| Outgoing::change_notice(bus.topology(), change, &node)).collect();
        bus.publish_all(notices).await.context("publishing the change notices")?;
    }
    bus.close().await;
    output(format_args!("{} change notice(s) published: routers apply the changes now", report.changes.len()))
}
