//! Operator commands, the equivalent of Kazoo's `sup webhooks_maintenance ...`: they read and
//! change the database the services share and, when routers must hear of a change, announce it
//! on the bus. Tables go to standard output; progress, on a terminal only, to standard error.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use webhooks_bus::{Bus, Outgoing};
use webhooks_dispatcher::DispatcherSettings;
use webhooks_model::config::{Settings, redact_url};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::REDELIVERY_BATCH;
use webhooks_model::notice::Change;
use webhooks_model::retry::FailureLimits;
use webhooks_model::time::{
    gregorian_from_unix, iso8601_from_unix, parse_instant, unix_from_gregorian, unix_millis, unix_seconds,
};
use webhooks_storage::admin::{FailureCount, failure_limits_document, has_own_failure_limits};
use webhooks_storage::{Account, PageRequest, Store};

/// The operator commands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum AdminCommand {
    /// Configured webhooks: list them, re-enable the auto-disabled ones.
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// The auto-disabler's failure counts: list or forget them.
    #[command(subcommand)]
    Failures(FailuresCommand),
    /// The auto-disabler's failure limits (threshold and window), system-wide or per account.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// The attempt log.
    #[command(subcommand)]
    Attempts(AttemptsCommand),
}

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

/// What a command works with.
struct Admin<'a> {
    store: Store,
    settings: &'a Settings,
    dispatcher: &'a DispatcherSettings,
}

/// Runs `command` against `store` (connected and migrated by the caller).
pub(crate) async fn run(
    command: AdminCommand,
    settings: &Settings,
    dispatcher: &DispatcherSettings,
    store: Store,
) -> anyhow::Result<()> {
    let context = Admin { store, settings, dispatcher };
    match command {
        AdminCommand::Hooks(HooksCommand::List { account }) => list_hooks(&context, account.as_ref()).await,
        AdminCommand::Hooks(HooksCommand::Reenable { account, descendants }) => {
            reenable(&context, &account, descendants).await
        }
        AdminCommand::Failures(FailuresCommand::List { account }) => list_failures(&context, account.as_ref()).await,
        AdminCommand::Failures(FailuresCommand::Flush(scope)) => flush(&context, scope).await,
        AdminCommand::Limits(LimitsCommand::Show { account }) => show_limits(&context, account.as_ref()).await,
        AdminCommand::Limits(LimitsCommand::Set { threshold, window_seconds, account }) => {
            let limits = FailureLimits { threshold, window: Duration::from_secs(window_seconds) };
            set_limits(&context, limits, account.as_ref()).await
        }
        AdminCommand::Attempts(AttemptsCommand::Prune { older_than_days }) => prune(&context, older_than_days).await,
        AdminCommand::Attempts(AttemptsCommand::Resend { attempt }) => resend(&context, &attempt).await,
        AdminCommand::Hooks(HooksCommand::Replay { hook, since, dry_run }) => {
            replay(&context, &hook, since, dry_run).await
        }
    }
}

async fn list_hooks(context: &Admin<'_>, account: Option<&AccountId>) -> anyhow::Result<()> {
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
    let count = context.store.reenable_webhooks(account, descendants).await.context("re-enabling the hooks")?;
    let whose =
        if descendants { format!("account {account} and its descendants") } else { format!("account {account}") };
    output(format_args!("re-enabled {count} auto-disabled hook(s) of {whose}; their failure counts are cleared"))?;
    announce(context, &Change::Reenabled { account_id: account.clone(), descendants }).await
}

async fn list_failures(context: &Admin<'_>, account: Option<&AccountId>) -> anyhow::Result<()> {
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

async fn show_limits(context: &Admin<'_>, account: Option<&AccountId>) -> anyhow::Result<()> {
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

async fn set_limits(context: &Admin<'_>, limits: FailureLimits, account: Option<&AccountId>) -> anyhow::Result<()> {
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
    let mut config = doc.get("webhooks").and_then(|config| config.as_object().cloned()).unwrap_or_default();
    config.extend(failure_limits_document(limits));
    doc.insert("webhooks".into(), config.into());
    store
        .update_account(id, &owner.name, &doc)
        .await
        .context("storing the account's failure limits")?
        .with_context(|| format!("account {id} was deleted meanwhile"))?;
    output(format_args!(
        "failure limits of account {id} set: {described}; dispatchers apply them within {} s (their account cache)",
        context.dispatcher.cache_ttl.as_secs()
    ))
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
    let job = context
        .store
        .resend_job(attempt, None, unix_millis().unsigned_abs())
        .await
        .with_context(|| format!("attempt {attempt} cannot be resent"))?;
    let bus = connect(context.settings).await?;
    let (event, hook) = (job.event_id.clone(), job.hook_id.clone());
    let published = bus.publish(Outgoing::job_batch(bus.topology(), vec![job])).await;
    bus.close().await;
    published.context("publishing the delivery")?;
    output(format_args!("resent attempt {attempt}: event {event} to hook {hook}"))
}

async fn replay(context: &Admin<'_>, hook: &WebhookId, since: i64, dry_run: bool) -> anyhow::Result<()> {
    let jobs = context
        .store
        .replay_jobs(hook, None, since, unix_millis().unsigned_abs())
        .await
        .with_context(|| format!("the deliveries of hook {hook} cannot be replayed"))?;
    let from = iso8601_from_unix(unix_from_gregorian(since));
    if dry_run {
        return output(format_args!("would replay {} failed delivery(ies) of hook {hook} since {from}", jobs.len()));
    }
    let count = jobs.len();
    let bus = connect(context.settings).await?;
    let progress = progress(count, "deliveries");
    let mut published = Ok(());
    for chunk in jobs.chunks(REDELIVERY_BATCH) {
        // One message per chunk, each confirmed, so the bar shows what the broker holds.
        published = bus.publish(Outgoing::job_batch(bus.topology(), chunk.to_vec())).await;
        if published.is_err() {
            break;
        }
        progress.inc(chunk.len() as u64);
    }
    let sent = progress.position();
    progress.finish_and_clear();
    bus.close().await;
    published.with_context(|| format!("publishing the deliveries ({sent} of {count} published)"))?;
    output(format_args!("replayed {count} failed delivery(ies) of hook {hook} since {from}"))
}

/// `--since`: gregorian seconds or RFC 3339 text.
fn parse_since(text: &str) -> Result<i64, String> {
    parse_instant(text).map_err(|why| format!("'{text}' is neither gregorian seconds nor RFC 3339 text ({why})"))
}

/// The bus of `settings`; deliveries cannot wait for a reload, so a missing URL is an error.
async fn connect(settings: &Settings) -> anyhow::Result<Bus> {
    let url = settings.amqp_url.as_deref().context("WEBHOOKS_AMQP_URL is not set: deliveries go through the bus")?;
    connect_to(settings, url).await
}

/// The bus at `url`.
async fn connect_to(settings: &Settings, url: &str) -> anyhow::Result<Bus> {
    Bus::connect(Some(url), crate::settings::bus_topology(settings))
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))
}

/// Publishes `change` for the routers, or says why it is not published.
async fn announce(context: &Admin<'_>, change: &Change) -> anyhow::Result<()> {
    let settings = context.settings;
    let Some(url) = &settings.amqp_url else {
        return output(format_args!(
            "WEBHOOKS_AMQP_URL is not set: no change notice published; routers pick the change up at their next \
             reload (every {} s)",
            settings.router.reload_interval_seconds
        ));
    };
    let bus = connect_to(settings, url).await?;
    let node = crate::settings::node(settings);
    let published = bus.publish(Outgoing::change_notice(change, &node)).await;
    bus.close().await;
    published.context("publishing the change notice")?;
    output("change notice published: routers apply the change now")
}

/// The account `id`, or an error naming it.
async fn existing_account(store: &Store, id: &AccountId) -> anyhow::Result<Account> {
    store
        .account(id)
        .await
        .with_context(|| format!("reading account {id}"))?
        .with_context(|| format!("account {id} does not exist"))
}

/// The system failure limits and where they come from: stored in the database, else this
/// process's configuration (`WEBHOOKS_DISPATCHER__FAILURE_*`).
async fn system_limits(context: &Admin<'_>) -> anyhow::Result<(FailureLimits, &'static str)> {
    let configured = context.dispatcher.failure_limits;
    let stored = context.store.system_failure_limits(configured).await.context("reading the system failure limits")?;
    Ok(stored.map_or((configured, "configuration"), |limits| (limits, "database")))
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

/// A text field of a document, `-` when absent.
fn text_field(doc: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    doc.get(key).and_then(serde_json::Value::as_str).unwrap_or("-").to_owned()
}

/// An empty table with `header`, in columns separated by spaces (no borders to parse around).
fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header);
    table
}

/// A progress bar of `total` steps on standard error, drawn only when it is a terminal.
fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(u64::try_from(total).ok(), ProgressDrawTarget::stderr());
    // The template is constant and valid; were it not, the default style would do.
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

/// `table` on standard output, or `empty` when it has no rows.
fn print_table(table: &Table, empty: &str) -> anyhow::Result<()> {
    if table.is_empty() { output(empty) } else { output(table.trim_fmt()) }
}

/// One line on standard output. Written rather than `println!`ed so that a closed pipe
/// (`webhooks hooks list | head`) is an error, not a panic.
fn output(text: impl Display) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}").context("writing to standard output")
}
