//! The settings of every service, as read from embedded defaults, an optional file and the
//! environment (the binary does the reading; this is only their shape).

use std::time::Duration;

use serde::Deserialize;

use crate::retry::{DEFAULT_DELAYS, DEFAULT_JITTER, DEFAULT_MAX_RETRY_AFTER, FailureLimits};

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
    /// When set, the broker deletes our queues once unused this many seconds (tests and
    /// short-lived deployments; pending retries are lost with their delay queue).
    pub bus_queue_expires_seconds: Option<u64>,
    /// The cluster id every payload carries; generated once and stored when unset.
    pub cluster_id: Option<String>,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (`http://collector:4318`);
    /// spans are exported to it only when set.
    pub otel_endpoint: Option<String>,
    /// REST API settings.
    pub api: ApiConfig,
    /// Router settings.
    pub router: RouterConfig,
    /// Dispatcher settings.
    pub dispatcher: DispatcherConfig,
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
            bus_queue_expires_seconds: None,
            cluster_id: None,
            otel_endpoint: None,
            api: ApiConfig::default(),
            router: RouterConfig::default(),
            dispatcher: DispatcherConfig::default(),
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
            .field("bus_queue_expires_seconds", &self.bus_queue_expires_seconds)
            .field("cluster_id", &self.cluster_id)
            .field("otel_endpoint", &self.otel_endpoint.as_deref().map(redact_url))
            .field("api", &self.api)
            .field("router", &self.router)
            .field("dispatcher", &self.dispatcher)
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
    /// Seconds an account's hook list is kept in memory when no change notice arrives.
    pub listing_cache_seconds: u64,
    /// Seconds a test callout waits for its attempt record before answering 202.
    pub test_wait_seconds: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            max_body_bytes: 1 << 20,
            token_lifetime_seconds: 3600,
            default_page_size: 50,
            account_cache_seconds: 5,
            listing_cache_seconds: 60,
            test_wait_seconds: 20,
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

/// Dispatcher settings (defaults as in docs/kazoo.md: retries, timeouts, auto-disable).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct DispatcherConfig {
    /// TCP connect timeout of a callout, in seconds.
    pub connect_timeout_seconds: f64,
    /// Whole-callout timeout (connect, send, read the answer), in seconds.
    pub total_timeout_seconds: f64,
    /// Job batches taken from the queue before any is acknowledged.
    pub prefetch: u16,
    /// Callouts in flight at once.
    pub concurrency: usize,
    /// Callouts in flight to one host at once (also the idle connections kept per host).
    pub max_connections_per_host: usize,
    /// Waits before the 1st, 2nd, 3rd and 4th retry, in seconds; the last repeats.
    pub retry_delays_seconds: Vec<f64>,
    /// Each wait is stretched by up to this fraction of itself.
    pub retry_jitter: f64,
    /// Longest `Retry-After` honoured, in seconds.
    pub max_retry_after_seconds: u64,
    /// Record successful attempts too (Kazoo's `log_successful_attempts`).
    pub log_successful_attempts: bool,
    /// Disable hooks that fail too often or answer 410 (Kazoo's `disable_disabler`, inverted).
    pub auto_disable: bool,
    /// Failures within the window that disable a hook (accounts may override).
    pub failure_threshold: u32,
    /// The failure-counting window, in seconds (accounts may override).
    pub failure_window_seconds: u64,
    /// Attempt records are kept this many days.
    pub attempt_retention_days: u64,
    /// Seconds between prunings of old attempts.
    pub prune_interval_seconds: u64,
    /// Bytes of a response body kept in the attempt record.
    pub max_response_body_bytes: usize,
    /// A host whose callouts take this long is slow: its jobs go to the slow lane, so they do
    /// not hold up the batches of healthy hosts.
    pub slow_lane_after_ms: u64,
    /// Job batches of the slow lane taken before any is acknowledged.
    pub slow_lane_prefetch: u16,
    /// Attempt records and failure-count changes kept in memory at most while the database
    /// cannot be reached; beyond it, deliveries wait for room.
    pub bookkeeping_capacity: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        let limits = FailureLimits::default();
        Self {
            connect_timeout_seconds: 5.0,
            total_timeout_seconds: 15.0,
            prefetch: 256,
            concurrency: 1024,
            max_connections_per_host: 64,
            retry_delays_seconds: DEFAULT_DELAYS.iter().map(Duration::as_secs_f64).collect(),
            retry_jitter: DEFAULT_JITTER,
            max_retry_after_seconds: DEFAULT_MAX_RETRY_AFTER.as_secs(),
            log_successful_attempts: false,
            auto_disable: true,
            failure_threshold: limits.threshold,
            failure_window_seconds: limits.window.as_secs(),
            attempt_retention_days: 30,
            prune_interval_seconds: 3600,
            max_response_body_bytes: 64 * 1024,
            slow_lane_after_ms: 500,
            slow_lane_prefetch: 256,
            bookkeeping_capacity: 20_000,
        }
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
