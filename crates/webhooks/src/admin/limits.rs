//! `webhooks limits ...`: the auto-disabler's failure limits, system-wide or per account.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use webhooks_api::operations;
use webhooks_model::ids::AccountId;
use webhooks_model::retry::{ACCOUNT_LIMITS_OBJECT, FailureLimits};
use webhooks_storage::admin::{failure_limits_document, has_own_failure_limits};

use super::{Admin, existing_account, output, table};

/// `webhooks limits ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum LimitsCommand {
    /// The system limits and, with `--account`, the limits that apply to that account.
    Show {
        /// The account.
        #[arg(long, value_name = "ACCOUNT_ID")]
        account: Option<AccountId>,
    },
    /// Sets the system limits (a database setting), or an account's own limits (its document's
    /// `webhooks.attempt_failure_count` and `webhooks.attempt_failure_expiry_ms`, as in Kazoo).
    Set {
        /// Failures within the window that disable a hook.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        threshold: u32,
        /// The counting window, in seconds.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        window_seconds: u64,
        /// Set this account's own limits instead of the system's.
        #[arg(long, value_name = "ACCOUNT_ID")]
        account: Option<AccountId>,
    },
}

/// Runs `command`.
pub(super) async fn run(context: &Admin<'_>, command: LimitsCommand) -> anyhow::Result<()> {
    match command {
        LimitsCommand::Show { account } => show(context, account.as_ref()).await,
        LimitsCommand::Set { threshold, window_seconds, account } => {
            let limits = FailureLimits { threshold, window: Duration::from_secs(window_seconds) };
            set(context, limits, account.as_ref()).await
        }
    }
}

/// The system failure limits and where they come from: stored in the database, else this
/// process's configuration (`WEBHOOKS_DISPATCHER__FAILURE_*`).
pub(super) async fn system_limits(context: &Admin<'_>) -> anyhow::Result<(FailureLimits, &'static str)> {
    let configured = context.dispatcher.failure_limits;
    let stored = context.store.system_failure_limits(configured).await.context("reading the system failure limits")?;
    Ok(stored.map_or((configured, "configuration"), |limits| (limits, "database")))
}

async fn show(context: &Admin<'_>, account: Option<&AccountId>) -> anyhow::Result<()> {
    let (system, source) = system_limits(context).await?;
    let mut table = table(["LEVEL", "ACCOUNT", "THRESHOLD", "WINDOW SECONDS", "SOURCE"]);
    table.add_row(limits_row("system", "-", system, source));
    if let Some(id) = account {
        let owner = existing_account(&context.store, id).await?;
        let source = if has_own_failure_limits(&owner.doc) { "account" } else { "system" };
        table.add_row(limits_row("account", id.as_str(), FailureLimits::for_account(&owner.doc, system), source));
    }
    output(table.trim_fmt())
}

async fn set(context: &Admin<'_>, limits: FailureLimits, account: Option<&AccountId>) -> anyhow::Result<()> {
    let store = &context.store;
    let described = format!("{} failure(s) within {} s", limits.threshold, limits.window.as_secs());
    let Some(id) = account else {
        store.set_system_failure_limits(limits).await.context("storing the system failure limits")?;
        return output(format_args!(
            "system failure limits set: {described}; accounts with their own limits keep them"
        ));
    };
    let owner = existing_account(store, id).await?;
    let mut doc = owner.doc;
    let mut config = doc.get(ACCOUNT_LIMITS_OBJECT).and_then(|config| config.as_object().cloned()).unwrap_or_default();
    config.extend(failure_limits_document(limits));
    doc.insert(ACCOUNT_LIMITS_OBJECT.into(), config.into());
    let updated = operations::update_account(store, id, &owner.name, &doc)
        .await
        .context("storing the account's failure limits")?
        .with_context(|| format!("account {id} was deleted meanwhile"))?;
    // Only dispatchers read the limits, through their account cache; no router indexes them.
    updated.unannounced();
    output(format_args!(
        "failure limits of account {id} set: {described}; dispatchers apply them within {} s (their account cache)",
        context.dispatcher.cache_ttl.as_secs()
    ))
}

fn limits_row(level: &str, account: &str, limits: FailureLimits, source: &str) -> [String; 5] {
    [
        level.to_owned(),
        account.to_owned(),
        limits.threshold.to_string(),
        // Account windows are in milliseconds, so they may hold a fraction of a second.
        limits.window.as_secs_f64().to_string(),
        source.to_owned(),
    ]
}
