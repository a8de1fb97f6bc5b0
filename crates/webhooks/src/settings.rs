//! Loads [`Settings`]: embedded defaults, then an optional file, then `WEBHOOKS_*` variables;
//! and what the services and the operator commands derive from them alike.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use config::{Config, Environment, File, FileFormat};
use webhooks_api::ApiSettings;
use webhooks_bus::Topology;
use webhooks_model::config::{DEFAULTS, Settings};

/// Settings holding lists, given in the environment as comma-separated values.
const LIST_KEYS: &[&str] = &["dispatcher.retry_delays_seconds", "kazoo.public_keys"];

/// Reads the settings; `WEBHOOKS_DATABASE_URL` sets `database_url`, `WEBHOOKS_API__WORKERS`
/// sets `api.workers`, `WEBHOOKS_DISPATCHER__RETRY_DELAYS_SECONDS=1,5,30` a list.
pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
    build(file, None)
}

/// [`load`] with the variables taken from `variables` instead of the process environment.
fn build(file: Option<&Path>, variables: Option<HashMap<String, String>>) -> anyhow::Result<Settings> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let environment = LIST_KEYS.iter().fold(
        Environment::with_prefix("WEBHOOKS")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .ignore_empty(true)
            .list_separator(","),
        |environment, key| environment.with_list_parse_key(key),
    );
    let config = builder.add_source(environment.source(variables)).build().context("reading the settings")?;
    config.try_deserialize().context("invalid settings")
}

/// The bus names and shapes of this system, the same in every process that connects.
pub(crate) fn bus_topology(settings: &Settings) -> Topology {
    Topology {
        queue_expires: settings.bus.queue_expires_seconds.map(Duration::from_secs),
        queue_type: settings.bus.queue_type,
        accounts_from_kazoo: settings.kazoo.enabled(),
        kazoo_couch: settings.kazoo.couch_url.is_some(),
        ..Topology::new(&settings.bus.prefix)
    }
}

/// This server's name: `node`, else the `HOSTNAME` variable, else `webhooks`.
pub(crate) fn node(settings: &Settings) -> String {
    settings.node.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| "webhooks".into())
    })
}

/// The API's settings: its section, and the system-wide settings it applies.
pub(crate) fn api(settings: &Settings, cluster_id: String) -> ApiSettings {
    ApiSettings {
        api: settings.api.clone(),
        node: node(settings),
        allow_private_targets: settings.allow_private_targets,
        cluster_id,
        kazoo: settings.kazoo.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use webhooks_model::config::DispatcherConfig;

    use super::*;

    fn with(variables: &[(&str, &str)]) -> anyhow::Result<Settings> {
        build(None, Some(variables.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()))
    }

    #[test]
    fn the_embedded_defaults_are_the_built_in_ones() {
        let settings = with(&[]).expect("the defaults load");
        assert_eq!(settings.dispatcher, DispatcherConfig::default());
        assert_eq!(settings, Settings::default());
        assert_eq!(
            (settings.database_url.as_str(), settings.listen.as_str()),
            ("sqlite://webhooks.db", "127.0.0.1:8000")
        );
        assert_eq!(settings.amqp_url, None);
        assert_eq!(settings.otel_endpoint, None, "no span export unless asked for");
    }

    #[test]
    fn variables_set_plain_values_sections_and_lists() {
        let settings = with(&[
            ("WEBHOOKS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("WEBHOOKS_API__WORKERS", "7"),
            ("WEBHOOKS_DISPATCHER__RETRY_DELAYS_SECONDS", "0.5,2,10"),
            ("WEBHOOKS_DISPATCHER__LOG_SUCCESSFUL_ATTEMPTS", "true"),
            ("WEBHOOKS_OTEL_ENDPOINT", "http://otel-collector:4318"),
        ])
        .expect("the settings load");
        assert_eq!(settings.otel_endpoint.as_deref(), Some("http://otel-collector:4318"));
        assert_eq!(settings.amqp_url.as_deref(), Some("amqp://guest:guest@127.0.0.1:5672/%2f"));
        assert_eq!(settings.api.workers, 7);
        assert_eq!(settings.dispatcher.retry_delays_seconds, [0.5, 2.0, 10.0]);
        assert!(settings.dispatcher.log_successful_attempts);
        let delays = webhooks_dispatcher::DispatcherSettings::from_config(&settings.dispatcher, false)
            .expect("usable")
            .retry_delays;
        assert_eq!(delays[0], Duration::from_millis(500));
    }

    #[test]
    fn kazoo_mode_is_set_by_variables() {
        let settings = with(&[
            ("WEBHOOKS_KAZOO__CROSSBAR_URL", "http://crossbar:8000"),
            ("WEBHOOKS_KAZOO__API_KEY", "master-key"),
            ("WEBHOOKS_KAZOO__PUBLIC_KEYS", "k1=/etc/k1.pem,k2=/etc/k2.pem"),
            ("WEBHOOKS_KAZOO__TOKENINFO", "true"),
            ("WEBHOOKS_KAZOO__MASTER_ACCOUNT_ID", "1f0e2d3c4b5a69788796a5b4c3d2e1f0"),
        ])
        .expect("the settings load");
        let kazoo = &settings.kazoo;
        assert!(kazoo.enabled() && kazoo.tokeninfo);
        assert_eq!(kazoo.api_key.as_deref(), Some("master-key"));
        assert_eq!(kazoo.public_keys, ["k1=/etc/k1.pem", "k2=/etc/k2.pem"]);
        assert_eq!(kazoo.master_account_id.as_ref().map(|id| id.as_str()), Some("1f0e2d3c4b5a69788796a5b4c3d2e1f0"));
        assert_eq!(api(&settings, String::new()).kazoo, settings.kazoo);
        assert!(!with(&[]).expect("the defaults load").kazoo.enabled(), "off by default");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_setting() {
        let error = with(&[("WEBHOOKS_DISPATCHER__PREFETCH", "many")]).expect_err("refused");
        assert!(format!("{error:#}").contains("prefetch"), "{error:#}");
    }
}
