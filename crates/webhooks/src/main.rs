//! The `webhooks` binary: each service alone, or all of them in one process.

mod settings;

/// JSON documents make the services allocation-heavy; mimalloc keeps that cheap across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use webhooks_api::{ApiSettings, ApiState};
use webhooks_model::config::{LogFormat, Settings, redact_url};
use webhooks_storage::Store;

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

#[derive(Debug, Clone, Copy, Subcommand)]
enum Command {
    /// Every service in one process (the default).
    Serve,
    /// The REST API alone.
    Api,
    /// Apply database migrations and exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("webhooks: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "webhooks stopped");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database_url, settings.database_pool_size)
        .await
        .with_context(|| format!("connecting to {}", redact_url(&settings.database_url)))?;
    store.migrate().await.context("applying migrations")?;
    if let Command::Migrate = command {
        tracing::info!("migrations applied");
        return Ok(());
    }

    let (master, shown_key) = webhooks_api::accounts::bootstrap_master(&store, settings.master_api_key.as_deref())
        .await
        .context("creating the master account")?;
    if let Some(key) = shown_key {
        announce_master_key(master.id.as_str(), &key);
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let listener = TcpListener::bind(&settings.listen).with_context(|| format!("binding {}", settings.listen))?;
    listener.set_nonblocking(true).context("configuring the listener")?;
    let address = listener.local_addr().context("reading the listen address")?;
    let api_settings = ApiSettings {
        node: settings.node.clone().unwrap_or_else(default_node),
        allow_private_targets: settings.allow_private_targets,
        max_body_bytes: settings.api.max_body_bytes,
        token_lifetime_seconds: settings.api.token_lifetime_seconds,
        default_page_size: settings.api.default_page_size,
        workers: settings.api.workers,
        account_cache_seconds: settings.api.account_cache_seconds,
    };
    let state = ApiState::new(store, api_settings).await.context("preparing the API")?;
    tracing::info!(listen = %address, master.id = %master.id, "API listening");
    webhooks_api::run(listener, state, shutdown).await.context("serving the API")?;
    tracing::info!("stopped");
    Ok(())
}

/// The generated master key is shown exactly once, on the first start, on standard output.
#[expect(clippy::print_stdout, reason = "the operator must see the generated key once, outside the logs")]
fn announce_master_key(account_id: &str, key: &str) {
    println!("master account {account_id} created; its API key (shown only this once): {key}");
}

fn default_node() -> String {
    std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| "webhooks".into())
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
