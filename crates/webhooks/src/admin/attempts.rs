//! `webhooks attempts ...`: the attempt log.

use anyhow::Context;
use clap::Subcommand;
use webhooks_api::operations;
use webhooks_model::time::{gregorian_from_unix, unix_seconds};

use super::{Admin, connect, output};

/// `webhooks attempts ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum AttemptsCommand {
    /// Deletes the attempt records older than the given age.
    Prune {
        /// Age in days of the oldest records kept (0 deletes every record made until now).
        #[arg(long, value_name = "DAYS")]
        older_than_days: u64,
    },
    /// Delivers an attempt's job again, with the same event id, to its hook as configured now.
    Resend {
        /// The attempt record's id.
        attempt: String,
    },
}

/// Runs `command`.
pub(super) async fn run(context: &Admin<'_>, command: AttemptsCommand) -> anyhow::Result<()> {
    match command {
        AttemptsCommand::Prune { older_than_days } => prune(context, older_than_days).await,
        AttemptsCommand::Resend { attempt } => resend(context, &attempt).await,
    }
}

async fn prune(context: &Admin<'_>, older_than_days: u64) -> anyhow::Result<()> {
    let age = i64::try_from(older_than_days.saturating_mul(86_400)).context("--older-than-days is too large")?;
    let now = unix_seconds();
    let count = context
        .store
        .prune_attempts(gregorian_from_unix(now.saturating_sub(age)))
        .await
        .context("pruning the attempts")?;
    output(format_args!("pruned {count} attempt(s) older than {older_than_days} day(s)"))
}

async fn resend(context: &Admin<'_>, attempt: &str) -> anyhow::Result<()> {
    let job = operations::resend(&context.store, attempt, None)
        .await
        .with_context(|| format!("attempt {attempt} cannot be resent"))?;
    let bus = connect(context.settings).await?;
    let (event, hook) = (job.event_id.clone(), job.hook_id.clone());
    let published = operations::publish_jobs(&bus, vec![job], |_| {}).await;
    bus.close().await;
    published.map_err(|unpublished| anyhow::Error::new(unpublished.source)).context("publishing the delivery")?;
    output(format_args!("resent attempt {attempt}: event {event} to hook {hook}"))
}
