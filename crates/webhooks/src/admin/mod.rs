//! Operator commands, the equivalent of Kazoo's `sup webhooks_maintenance ...`: they read and
//! change the database the services share and, when routers must hear of a change, announce it
//! on the bus. Writes, announcements and redeliveries are the API's own operations
//! (`webhooks_api::operations`); what is here is the command line and its output. Tables go to
//! standard output; progress, on a terminal only, to standard error.

mod attempts;
mod export;
mod failures;
mod hooks;
mod import;
mod limits;

use std::fmt::Display;
use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use webhooks_api::operations::{Announcer, Committed};
use webhooks_bus::Bus;
use webhooks_dispatcher::DispatcherSettings;
use webhooks_model::config::{Settings, redact_url};
use webhooks_model::ids::AccountId;
use webhooks_storage::{Account, Store};

use self::attempts::AttemptsCommand;
use self::export::ExportCommand;
use self::failures::FailuresCommand;
use self::hooks::HooksCommand;
use self::import::ImportCommand;
use self::limits::LimitsCommand;

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
    /// Imports Kazoo's hooks from its CouchDB; repeatable: it brings over what changed since.
    Import(ImportCommand),
    /// Writes every hook back into Kazoo's CouchDB, in Kazoo's format, so that Kazoo's own app
    /// can take over again.
    Export(ExportCommand),
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
        AdminCommand::Hooks(command) => hooks::run(&context, command).await,
        AdminCommand::Failures(command) => failures::run(&context, command).await,
        AdminCommand::Limits(command) => limits::run(&context, command).await,
        AdminCommand::Attempts(command) => attempts::run(&context, command).await,
        AdminCommand::Import(command) => import::run(&context, command).await,
        AdminCommand::Export(command) => export::run(&context, command).await,
    }
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

/// Publishes the change of `committed` for the routers, or says why it is not published.
async fn announce<T>(context: &Admin<'_>, committed: Committed<T>) -> anyhow::Result<()> {
    let settings = context.settings;
    let Some(url) = &settings.amqp_url else {
        committed.unannounced();
        return output(format_args!(
            "WEBHOOKS_AMQP_URL is not set: no change notice published; routers pick the change up at their next \
             reload (every {} s)",
            settings.router.reload_interval_seconds
        ));
    };
    let bus = connect_to(settings, url).await?;
    let published = committed.announce(&Announcer::new(bus.clone(), crate::settings::node(settings))).await;
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

/// An empty table with `header`, in columns separated by spaces (no borders to parse around).
fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header);
    table
}

/// A progress bar of `total` steps on standard error, drawn only when it is a terminal.
fn progress(total: usize, what: &str) -> ProgressBar {
    progress_of(Some(total), what)
}

/// A progress bar of `total` steps, or a count of steps when the total is unknown, on standard
/// error, drawn only when it is a terminal.
fn progress_of(total: Option<usize>, what: &str) -> ProgressBar {
    let bar =
        ProgressBar::with_draw_target(total.and_then(|total| u64::try_from(total).ok()), ProgressDrawTarget::stderr());
    let template = if total.is_some() { "{msg} {wide_bar} {pos}/{len}" } else { "{msg} {spinner} {pos}" };
    // The templates are constant and valid; were one not, the default style would do.
    if let Ok(style) = ProgressStyle::with_template(template) {
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
pub(crate) fn output(text: impl Display) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}").context("writing to standard output")
}
