//! Loads [`Settings`]: embedded defaults, then an optional file, then `WEBHOOKS_*` variables.

use std::path::Path;

use anyhow::Context;
use config::{Config, Environment, File, FileFormat};
use webhooks_model::config::Settings;

/// The embedded defaults, also the reference of every setting.
const DEFAULTS: &str = include_str!("defaults.toml");

/// Reads the settings; `WEBHOOKS_DATABASE_URL` sets `database_url`, `WEBHOOKS_API__WORKERS`
/// sets `api.workers`.
pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let config = builder
        .add_source(
            Environment::with_prefix("WEBHOOKS")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .ignore_empty(true),
        )
        .build()
        .context("reading the settings")?;
    config.try_deserialize().context("invalid settings")
}
