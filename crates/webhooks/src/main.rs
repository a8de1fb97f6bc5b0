//! The `webhooks` binary: each service alone, or all of them in one process, and the operator
//! commands.

mod admin;
mod settings;
mod telemetry;

/// JSON documents make the services allocation-heavy; mimalloc keeps that cheap across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use webhooks_api::ApiState;
use webhooks_api::ops::{self, Health, Started};
use webhooks_bus::Bus;
use webhooks_dispatcher::delay::DelayQueues;
use webhooks_dispatcher::{DispatcherMetrics, DispatcherSettings};
use webhooks_model::config::{Settings, redact_url};
use webhooks_model::ids::random_id;
use webhooks_router::{Router, RouterSettings};
use webhooks_storage::Store;
use webhooks_storage::couch::CouchDb;

/// The settings key of the generated cluster id, shared by every replica through the store.
const CLUSTER_ID_SETTING: &str = "cluster_id";

/// Kazoo-compatible webhooks: a Crossbar REST API, an event router and an HTTP dispatcher.
#[derive(Debug, Parser)]
#[command(name = "webhooks", version)]
struct Cli {
    /// A TOML settings file, read after the embedded defaults and before the environment.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
enum Command {
    /// Every service in one process (the default): API, router and dispatcher.
    Serve,
    /// The REST API alone.
    Api,
    /// The event router alone.
    Router,
    /// The HTTP dispatcher alone.
    Dispatcher,
    /// Apply database migrations and exit.
    Migrate,
    /// The broker's queues.
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// Operator commands (`hooks`, `failures`, `limits`, `attempts`, `import`, `export`).
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
enum QueuesCommand {
    /// Converts the system's queues that exist on the broker with other arguments than the
    /// settings declare (classic queues once `bus.queue_type` is `quorum`, or the reverse),
    /// keeping their messages. Run it with every service stopped; running it again finishes an
    /// interrupted conversion.
    Migrate,
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Api => "api",
            Self::Router => "router",
            Self::Dispatcher => "dispatcher",
            Self::Migrate => "migrate",
            Self::Queues(_) => "queues",
            Self::Admin(_) => "admin",
        }
    }

    fn runs_api(&self) -> bool {
        matches!(self, Self::Serve | Self::Api)
    }

    fn runs_router(&self) -> bool {
        matches!(self, Self::Serve | Self::Router)
    }

    fn runs_dispatcher(&self) -> bool {
        matches!(self, Self::Serve | Self::Dispatcher)
    }

    fn runs_a_service(&self) -> bool {
        self.runs_api() || self.runs_router() || self.runs_dispatcher()
    }
}

/// `webhooks queues migrate`: converts the queues declared otherwise, and says which.
async fn migrate_queues(settings: &Settings, dispatcher: &DispatcherSettings) -> anyhow::Result<()> {
    let url =
        settings.amqp_url.as_deref().context("WEBHOOKS_AMQP_URL is not set: the in-process bus keeps no queues")?;
    let topology = settings::bus_topology(settings);
    let policy = dispatcher.retry_policy().context("invalid settings")?;
    let delay_queues = DelayQueues::new(&topology, &policy).queues();
    let migrated = webhooks_bus::migrate_queues(url, &topology, &delay_queues)
        .await
        .with_context(|| format!("converting the queues at {}", redact_url(url)))?;
    if migrated.is_empty() {
        admin::output("every queue is declared as configured: nothing to convert")?;
    }
    for migration in migrated {
        admin::output(format_args!("{}: converted, {} messages kept", migration.queue, migration.messages))?;
    }
    Ok(())
}

/// Turns transparent huge pages off for this process. Where the kernel grants them by default,
/// the allocator's fresh pages were faulted in as 2 MiB pages, each zeroed whole: about 7% of
/// the CPU of `serve` under load went to that, and each fault is a pause of its own.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        // Only slower: the process works the same.
        eprintln!("webhooks: cannot turn transparent huge pages off: {error}");
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let settings = match settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("webhooks: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("webhooks: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Only services export spans; an operator command's are of no interest.
    let export = settings
        .otel_endpoint
        .as_deref()
        .filter(|_| command.runs_a_service())
        .map(|endpoint| telemetry::Export { endpoint, service: command.name(), runtime: runtime.handle().clone() });
    let spans = match telemetry::install(settings.log_format, export) {
        Ok(spans) => spans,
        Err(error) => {
            eprintln!("webhooks: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let operator = matches!(command, Command::Admin(_) | Command::Queues(_));
    let code = match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        // An operator reads one clear line, not a log record.
        Err(error) if operator => {
            eprintln!("webhooks: {error:#}");
            ExitCode::FAILURE
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "webhooks stopped");
            ExitCode::FAILURE
        }
    };
    // The last spans are flushed while the runtime, which sends them, still runs.
    if let Some(spans) = spans {
        spans.shutdown();
    }
    code
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    // Settings are checked before anything connects, so a typo fails fast.
    let dispatcher_settings = DispatcherSettings::from_config(&settings.dispatcher, settings.allow_private_targets)
        .context("invalid settings")?;
    if let Command::Queues(QueuesCommand::Migrate) = command {
        return migrate_queues(&settings, &dispatcher_settings).await;
    }
    let store = Store::connect(&settings.database_url, settings.database_pool_size)
        .await
        .with_context(|| format!("connecting to {}", redact_url(&settings.database_url)))?;
    if settings.migrate_on_start || command == Command::Migrate {
        store.migrate().await.context("applying migrations")?;
    } else {
        store.check_schema().await.context("checking the database schema")?;
    }
    if command == Command::Migrate {
        tracing::info!("migrations applied");
        return Ok(());
    }
    if let Command::Admin(command) = command {
        return admin::run(command, &settings, &dispatcher_settings, store).await;
    }
    if settings.amqp_url.is_none() && command != Command::Serve {
        // The in-process bus reaches only this process: alone, a service would talk to no one.
        anyhow::bail!(
            "`webhooks {}` runs one service of several: set WEBHOOKS_AMQP_URL to their shared RabbitMQ (or use `webhooks serve`)",
            command.name()
        );
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    // Without the API, only the operational endpoints are served: on the admin address when
    // one is set, else on the API's.
    let admin = settings.admin_listen.as_deref().map(bind).transpose()?;
    let (listener, admin) = match admin {
        Some(admin) if !command.runs_api() => (admin, None),
        admin => (bind(&settings.listen)?, admin),
    };
    let address = listener.local_addr().context("reading the listen address")?;

    let topology = settings::bus_topology(&settings);
    let bus = Bus::connect(settings.amqp_url.as_deref(), topology).await.with_context(|| match &settings.amqp_url {
        Some(url) => format!("connecting to {}", redact_url(url)),
        None => "starting the in-process bus".to_owned(),
    })?;
    let components: &[&'static str] = if command.runs_router() { &["router"] } else { &[] };
    let topology = bus.topology();
    let mut queues = vec![topology.dead_letter_queue()];
    if command.runs_router() {
        queues.push(topology.router_queue());
    }
    if command.runs_dispatcher() {
        queues.push(topology.dispatch_queue());
    }
    let (health, started) =
        Health::new(store.clone(), bus.clone(), components, queues).context("registering the metrics")?;
    let mut services = JoinSet::new();

    if command.runs_dispatcher() {
        let metrics = DispatcherMetrics::default();
        metrics.register(health.registry()).context("registering the dispatcher's metrics")?;
        let (store, bus, shutdown) = (store.clone(), bus.clone(), shutdown.clone());
        services.spawn(async move {
            webhooks_dispatcher::run(store, bus, dispatcher_settings, metrics, shutdown)
                .await
                .context("the dispatcher failed")
        });
    }
    // The router's payloads carry it, and so do the API's test callouts.
    let cluster_id = match &settings.cluster_id {
        Some(id) => id.clone(),
        None if command.runs_router() || command.runs_api() => {
            store.insert_setting_if_absent(CLUSTER_ID_SETTING, &random_id()).await.context("reading the cluster id")?
        }
        None => String::new(),
    };
    // The master exists before the router loads its index, so that at a first start of `serve`
    // the master's hooks are routed at once rather than after the next periodic reload. In
    // Kazoo mode the accounts are Kazoo's: the API copies them, master included.
    let master = if command.runs_api() && !settings.kazoo.enabled() {
        let (master, shown_key) = webhooks_api::accounts::bootstrap_master(&store, settings.master_api_key.as_deref())
            .await
            .context("creating the master account")?;
        if let Some(key) = shown_key {
            announce_master_key(master.id.as_str(), &key);
        }
        Some(master)
    } else {
        None
    };
    if command.runs_router() {
        let mut router_settings = RouterSettings::from_config(&settings.router, cluster_id.clone());
        router_settings.payload_compat = settings.kazoo.payload_compat;
        router_settings.numbers = match &settings.kazoo.couch_url {
            Some(url) => Some(
                CouchDb::with_timeout(url, webhooks_router::NUMBER_LOOKUP_TIMEOUT)
                    .with_context(|| format!("kazoo.couch_url {}", redact_url(url)))?,
            ),
            None => None,
        };
        let router = Router::start(store.clone(), bus.clone(), router_settings).await.context("starting the router")?;
        router.stats().register(health.registry()).context("registering the router's metrics")?;
        started.iter().for_each(Started::set);
        let shutdown = shutdown.clone();
        services.spawn(async move { router.run(shutdown).await.context("the router failed") });
    }
    if command.runs_api() {
        let state = ApiState::new(store, bus.clone(), settings::api(&settings, cluster_id))
            .await
            .context("preparing the API")?;
        match &master {
            Some(master) => tracing::info!(listen = %address, master.id = %master.id, "API listening"),
            None => tracing::info!(listen = %address, "API listening, accounts from Kazoo"),
        }
        let shutdown = shutdown.clone();
        services.spawn(async move {
            webhooks_api::run(listener, admin, state, health, shutdown).await.context("serving the API")
        });
    } else {
        tracing::info!(listen = %address, "health endpoints listening");
        let shutdown = shutdown.clone();
        services
            .spawn(async move { ops::run(listener, health, shutdown).await.context("serving the health endpoints") });
    }
    tracing::info!(service = command.name(), "started");

    // One service ending on its own stops the others: the process is restarted whole.
    let mut outcome = Ok(());
    while let Some(ended) = services.join_next().await {
        let result = ended.context("a service panicked").and_then(|result| result);
        if let (Err(error), Ok(())) = (result, &outcome) {
            outcome = Err(error);
        }
        shutdown.cancel();
    }
    bus.close().await;
    tracing::info!("stopped");
    outcome
}

/// A listener on `address`, ready for the async runtime.
fn bind(address: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address).with_context(|| format!("binding {address}"))?;
    listener.set_nonblocking(true).context("configuring the listener")?;
    Ok(listener)
}

/// The generated master key is shown exactly once, on the first start, on standard output.
#[expect(clippy::print_stdout, reason = "the operator must see the generated key once, outside the logs")]
fn announce_master_key(account_id: &str, key: &str) {
    println!("master account {account_id} created; its API key (shown only this once): {key}");
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            tracing::warn!("cannot listen for SIGTERM");
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
