//! The settings of every service, as read from embedded defaults, an optional file and the
//! environment (the binary does the reading; this is only their shape).

use serde::Deserialize;

/// All settings. Every field has a default so a bare machine boots.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Database connections per process.
    pub database_pool_size: u32,
    /// Address of the REST API.
    pub listen: String,
    /// API key of the master account; generated once when unset.
    pub master_api_key: Option<String>,
    /// This server's name in responses and logs; the host name when unset.
    pub node: Option<String>,
    /// Allow hook URIs on loopback and private addresses (tests, private deployments).
    pub allow_private_targets: bool,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// RabbitMQ URL (`amqp://user:pass@host:5672/%2f`); the in-process bus when unset.
    pub amqp_url: Option<String>,
    /// Prefix of this system's own exchanges and queues on the broker.
    pub bus_prefix: String,
    /// The cluster id every payload carries; generated once and stored when unset.
    pub cluster_id: Option<String>,
    /// REST API settings.
    pub api: ApiConfig,
    /// Router settings.
    pub router: RouterConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://webhooks.db".into(),
            database_pool_size: 8,
            listen: "127.0.0.1:8000".into(),
            master_api_key: None,
            node: None,
            allow_private_targets: false,
            log_format: LogFormat::Text,
            amqp_url: None,
            bus_prefix: "webhooks".into(),
            cluster_id: None,
            api: ApiConfig::default(),
            router: RouterConfig::default(),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs: the database URL may carry a password, the key is one.
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_pool_size", &self.database_pool_size)
            .field("listen", &self.listen)
            .field("master_api_key", &self.master_api_key.as_ref().map(|_| "<redacted>"))
            .field("node", &self.node)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("log_format", &self.log_format)
            .field("amqp_url", &self.amqp_url.as_deref().map(redact_url))
            .field("bus_prefix", &self.bus_prefix)
            .field("cluster_id", &self.cluster_id)
            .field("api", &self.api)
            .field("router", &self.router)
            .finish()
    }
}

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// REST API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// HTTP worker threads.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of auth tokens, in seconds.
    pub token_lifetime_seconds: u64,
    /// Page length of listings when the client names none.
    pub default_page_size: usize,
    /// Seconds an account read for authorization is reused before it is read again.
    pub account_cache_seconds: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            max_body_bytes: 1 << 20,
            token_lifetime_seconds: 3600,
            default_page_size: 50,
            account_cache_seconds: 5,
        }
    }
}

/// Router settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RouterConfig {
    /// Unacknowledged events a router holds at once.
    pub prefetch: u16,
    /// Seconds between full reloads of the hook index (change notices keep it current between).
    pub reload_interval_seconds: u64,
    /// Jobs carried by one bus message at most.
    pub max_jobs_per_message: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self { prefetch: 500, reload_interval_seconds: 300, max_jobs_per_message: 100 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(redact_url("postgres://user:secret@db:5432/x"), "postgres://user:***@db:5432/x");
        assert_eq!(redact_url("postgres://user@db/x"), "postgres://user@db/x");
        assert_eq!(redact_url("sqlite://webhooks.db"), "sqlite://webhooks.db");
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
    }

    #[test]
    fn debug_output_hides_the_master_key() {
        let settings = Settings {
            master_api_key: Some("topsecret".into()),
            amqp_url: Some("amqp://user:hidden@mq/%2f".into()),
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("topsecret") && !shown.contains("hidden"));
    }
}
