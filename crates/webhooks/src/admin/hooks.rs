//! `webhooks hooks ...`: list the hooks, re-enable the auto-disabled ones, replay failed
//! deliveries.

use std::collections::HashMap;

use anyhow::Context;
use clap::Subcommand;
use webhooks_api::operations;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::retry::FailureLimits;
use webhooks_model::time::{iso8601_from_unix, parse_instant, unix_from_gregorian, unix_millis};
use webhooks_storage::PageRequest;
use webhooks_storage::admin::FailureCount;

use super::limits::system_limits;
use super::{Admin, announce, connect, existing_account, output, print_table, progress, table};

/// `webhooks hooks ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum HooksCommand {
    /// Every configured hook, or one account's, with its failures in the current window.
    List {
        /// Only this account's hooks (not its descendants').
        #[arg(long, value_name = "ACCOUNT_ID")]
        account: Option<AccountId>,
    },
    /// Re-enables the hooks the auto-disabler disabled (not those disabled by hand), forgets
    /// their failure counts and tells the routers.
    Reenable {
        /// The account whose hooks are re-enabled.
        account: AccountId,
        /// Its descendants' hooks too.
        #[arg(long)]
        descendants: bool,
    },
    /// Delivers again, to the hook as configured now, every event whose latest attempt record
    /// since TIME is a failure (records made before jobs were kept are skipped).
    Replay {
        /// The hook.
        hook: WebhookId,
        /// Gregorian seconds or RFC 3339 text (`2025-04-01T12:00:00Z`).
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: i64,
        /// Count the deliveries without sending them.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs `command`.
pub(super) async fn run(context: &Admin<'_>, command: HooksCommand) -> anyhow::Result<()> {
    match command {
        HooksCommand::List { account } => list(context, account.as_ref()).await,
        HooksCommand::Reenable { account, descendants } => reenable(context, &account, descendants).await,
        HooksCommand::Replay { hook, since, dry_run } => replay(context, &hook, since, dry_run).await,
    }
}

async fn list(context: &Admin<'_>, account: Option<&AccountId>) -> anyhow::Result<()> {
    let store = &context.store;
    let accounts = match account {
        Some(id) => vec![existing_account(store, id).await?],
        None => store.all_accounts().await.context("reading the accounts")?,
    };
    let (system, _) = system_limits(context).await?;
    let failures: HashMap<WebhookId, FailureCount> = store
        .failure_counts(account)
        .await
        .context("reading the failure counts")?
        .into_iter()
        .map(|count| (count.hook_id.clone(), count))
        .collect();
    let now_ms = unix_millis();
    let mut table = table(["ACCOUNT", "ID", "NAME", "HOOK", "URI", "ENABLED", "DISABLED REASON", "FAILURES"]);
    // One query per account: a large system takes a while, hence the progress bar.
    let progress = progress(accounts.len(), "accounts");
    let all = PageRequest { ascending: true, ..PageRequest::default() };
    for owner in &accounts {
        let window = FailureLimits::for_account(&owner.doc, system).window;
        let hooks = store
            .list_webhooks(&owner.id, &all)
            .await
            .with_context(|| format!("reading the hooks of account {}", owner.id))?;
        for hook in hooks.items {
            let current = failures.get(&hook.id).map_or(0, |count| count.current(now_ms, window));
            table.add_row([
                hook.account_id.to_string(),
                hook.id.to_string(),
                text_field(&hook.doc, "name"),
                hook.hook,
                text_field(&hook.doc, "uri"),
                hook.enabled.to_string(),
                hook.disabled_reason.unwrap_or_else(|| "-".into()),
                current.to_string(),
            ]);
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    print_table(&table, "no webhooks")
}

async fn reenable(context: &Admin<'_>, account: &AccountId, descendants: bool) -> anyhow::Result<()> {
    existing_account(&context.store, account).await?;
    let reenabled =
        operations::reenable_hooks(&context.store, account, descendants).await.context("re-enabling the hooks")?;
    let whose =
        if descendants { format!("account {account} and its descendants") } else { format!("account {account}") };
    output(format_args!(
        "re-enabled {} auto-disabled hook(s) of {whose}; their failure counts are cleared",
        reenabled.value()
    ))?;
    announce(context, reenabled).await
}

async fn replay(context: &Admin<'_>, hook: &WebhookId, since: i64, dry_run: bool) -> anyhow::Result<()> {
    let jobs = operations::replay(&context.store, hook, None, since)
        .await
        .with_context(|| format!("the deliveries of hook {hook} cannot be replayed"))?;
    let from = iso8601_from_unix(unix_from_gregorian(since));
    let count = jobs.len();
    if dry_run {
        return output(format_args!("would replay {count} failed delivery(ies) of hook {hook} since {from}"));
    }
    let bus = connect(context.settings).await?;
    // The bar shows what the broker holds: each message is confirmed before the next is sent.
    let progress = progress(count, "deliveries");
    let published = operations::publish_jobs(&bus, jobs, |sent| progress.inc(sent as u64)).await;
    progress.finish_and_clear();
    bus.close().await;
    published.map_err(|unpublished| {
        let context = format!("publishing the deliveries ({} of {count} published)", unpublished.published);
        anyhow::Error::new(unpublished.source).context(context)
    })?;
    output(format_args!("replayed {count} failed delivery(ies) of hook {hook} since {from}"))
}

/// `--since`: gregorian seconds or RFC 3339 text.
fn parse_since(text: &str) -> Result<i64, String> {
    parse_instant(text).map_err(|why| format!("'{text}' is neither gregorian seconds nor RFC 3339 text ({why})"))
}

/// A text field of a document, `-` when absent.
fn text_field(doc: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    doc.get(key).and_then(serde_json::Value::as_str).unwrap_or("-").to_owned()
}
