//! `webhooks failures ...`: the auto-disabler's failure counts.

use anyhow::Context;
use clap::{Args, Subcommand};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::time::iso8601_from_unix;
use webhooks_storage::admin::FailureCount;

use super::{Admin, existing_account, output, print_table, table};

/// `webhooks failures ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum FailuresCommand {
    /// The stored failure count of every hook that has one, or of one account's hooks.
    List {
        /// Only this account's hooks.
        #[arg(long, value_name = "ACCOUNT_ID")]
        account: Option<AccountId>,
    },
    /// Forgets failure counts: the hooks start counting from zero.
    Flush(FlushScope),
}

/// Whose failure counts `failures flush` forgets: exactly one of the three.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct FlushScope {
    /// The hooks of this account.
    #[arg(long, value_name = "ACCOUNT_ID")]
    account: Option<AccountId>,
    /// This hook.
    #[arg(long, value_name = "HOOK_ID")]
    hook: Option<WebhookId>,
    /// Every hook.
    #[arg(long)]
    all: bool,
}

/// Runs `command`.
pub(super) async fn run(context: &Admin<'_>, command: FailuresCommand) -> anyhow::Result<()> {
    match command {
        FailuresCommand::List { account } => list(context, account.as_ref()).await,
        FailuresCommand::Flush(scope) => flush(context, scope).await,
    }
}

async fn list(context: &Admin<'_>, account: Option<&AccountId>) -> anyhow::Result<()> {
    if let Some(account) = account {
        existing_account(&context.store, account).await?;
    }
    let counts = context.store.failure_counts(account).await.context("reading the failure counts")?;
    let mut table = table(["HOOK", "ACCOUNT", "FAILURES", "WINDOW START", "LAST FAILURE"]);
    for FailureCount { hook_id, account_id, failures, window_started_ms, last_failure_ms } in counts {
        table.add_row([
            hook_id.to_string(),
            account_id.to_string(),
            failures.to_string(),
            iso8601_from_unix(window_started_ms.div_euclid(1000)),
            iso8601_from_unix(last_failure_ms.div_euclid(1000)),
        ]);
    }
    print_table(&table, "no failure counts")
}

async fn flush(context: &Admin<'_>, scope: FlushScope) -> anyhow::Result<()> {
    let store = &context.store;
    match (scope.account, scope.hook) {
        (_, Some(hook)) => {
            store.clear_failures(&hook).await.context("clearing the failure count")?;
            output(format_args!("cleared the failure count of hook {hook}"))
        }
        (Some(account), None) => {
            existing_account(store, &account).await?;
            let count = store.flush_failures(Some(&account)).await.context("clearing the failure counts")?;
            output(format_args!("cleared the failure counts of {count} hook(s) of account {account}"))
        }
        // clap lets `--all` alone through here.
        (None, None) => {
            let count = store.flush_failures(None).await.context("clearing the failure counts")?;
            output(format_args!("cleared the failure counts of {count} hook(s)"))
        }
    }
}
