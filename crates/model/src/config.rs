//! The settings of every service, as read from embedded defaults, an optional file and the
//! environment (the binary does the reading; this is their shape, and the defaults).

use std::path::PathBuf;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::ids::AccountId;
use crate::payload::PayloadCompat;

/// The embedded defaults (`defaults.toml`): the value of every setting that has one, and the
/// reference of every key. The binary reads them first, under any file and the environment.
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// [`DEFAULTS`], parsed once.
static DEFAULT_SETTINGS: LazyLock<Settings> =
    LazyLock::new(|| toml::from_str(DEFAULTS).expect("the embedded defaults.toml is valid (see its test)"));

/// All settings. The fields that are not optional have their value in [`DEFAULTS`], so a bare
/// machine boots; `Default` gives those values.
#[derive(Clone, PartialEq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Settings {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Database connections per process.
    pub database_pool_size: u32,
    /// Apply missing migrations at start; else only check that none is missing.
    pub migrate_on_start: bool,
    /// Address of the REST API.
    pub listen: String,
    /// Address of `/healthz`, `/readyz` and `/metrics` when they are kept off the API's.
    pub admin_listen: Option<String>,
    /// API key of the master account; generated once when unset.
    pub master_api_key: Option<String>,
    /// This server's name in responses and logs; the host name when unset.
    pub node: Option<String>,
    /// Allow hook URIs on loopback and private addresses (tests, private deployments).
    pub allow_private_targets: bool,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// RabbitMQ URL (`amqp://user:pass@host:5672/%2f`), or several separated by commas (the
    /// nodes of a cluster, tried in turn); the in-process bus when unset.
    pub amqp_url: Option<String>,
    /// The cluster id every payload carries; generated once and stored when unset.
    pub cluster_id: Option<String>,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (`http://collector:4318`);
    /// spans are exported to it only when set.
    pub otel_endpoint: Option<String>,
    /// How this system's own exchanges and queues are named and declared on the broker.
    pub bus: BusConfig,
    /// REST API settings.
    pub api: ApiConfig,
    /// Router settings.
    pub router: RouterConfig,
    /// Dispatcher settings.
    pub dispatcher: DispatcherConfig,
    /// Kazoo mode: Kazoo's tokens (and, with them, Kazoo's Crossbar) instead of our own.
    pub kazoo: KazooConfig,
}

impl Default for Settings {
    /// The embedded defaults.
    fn default() -> Self {
        DEFAULT_SETTINGS.clone()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs: the database URL may carry a password, the key is one.
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_pool_size", &self.database_pool_size)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("master_api_key", &self.master_api_key.as_ref().map(|_| "<redacted>"))
            .field("node", &self.node)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("log_format", &self.log_format)
            .field("amqp_url", &self.amqp_url.as_deref().map(redact_url))
            .field("cluster_id", &self.cluster_id)
            .field("otel_endpoint", &self.otel_endpoint.as_deref().map(redact_url))
            .field("bus", &self.bus)
            .field("api", &self.api)
            .field("router", &self.router)
            .field("dispatcher", &self.dispatcher)
            .field("kazoo", &self.kazoo)
            .finish()
    }
}

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    // Several broker addresses, separated by commas, are redacted one by one.
    if url.split(',').filter(|part| part.contains("://")).count() > 1 {
        return url.split(',').map(redact_one_url).collect::<Vec<_>>().join(",");
    }
    redact_one_url(url)
}

/// One URL with any password replaced by `***`.
fn redact_one_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// REST API settings: the `[api]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct ApiConfig {
    /// HTTP worker threads.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of auth tokens, in seconds.
    pub token_lifetime_seconds: u64,
    /// Page length of listings when the client names none (Crossbar's default is 50).
    pub default_page_size: usize,
    /// Seconds an account read for authorization is reused before it is read again. Accounts
    /// never move in the tree; this bounds how long another replica's deletion of an account
    /// takes to reach this one.
    pub account_cache_seconds: u64,
    /// Seconds an account's hook list is kept in memory. Change notices make every replica
    /// forget a list at once; this bounds staleness only when a notice is lost.
    pub listing_cache_seconds: u64,
    /// Seconds a test callout waits for its attempt record before answering 202.
    pub test_wait_seconds: u64,
}

impl Default for ApiConfig {
    /// The embedded defaults.
    fn default() -> Self {
        DEFAULT_SETTINGS.api.clone()
    }
}

/// The broker objects' settings: the `[bus]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct BusConfig {
    /// Prefix of this system's own exchanges and queues (Kazoo's keep their names).
    pub prefix: String,
    /// The type of this system's own durable queues.
    pub queue_type: QueueType,
    /// When set, the broker deletes our queues once unused this many seconds (tests and
    /// short-lived deployments; pending retries are lost with their delay queue).
    pub queue_expires_seconds: Option<u64>,
}

impl Default for BusConfig {
    /// The embedded defaults.
    fn default() -> Self {
        DEFAULT_SETTINGS.bus.clone()
    }
}

/// RabbitMQ's queue types, for the queues work waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Replicated over a cluster's nodes (Raft): a node's loss loses no message, and dead
    /// letters are moved at least once.
    Quorum,
    /// On one node: gone while that node is down.
    Classic,
}

/// Router settings: the `[router]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct RouterConfig {
    /// Unacknowledged events a router holds at once.
    pub prefetch: u16,
    /// Seconds between full reloads of the hook index (change notices keep it current between).
    pub reload_interval_seconds: u64,
    /// Jobs carried by one bus message at most.
    pub max_jobs_per_message: usize,
}

impl Default for RouterConfig {
    /// The embedded defaults.
    fn default() -> Self {
        DEFAULT_SETTINGS.router.clone()
    }
}

/// Dispatcher settings: the `[dispatcher]` section (what the defaults follow of Kazoo: docs/kazoo.md#retries).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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
    /// The same bound in bytes of attempt records and failures.
    pub bookkeeping_capacity_bytes: usize,
}

impl Default for DispatcherConfig {
    /// The embedded defaults.
    fn default() -> Self {
        DEFAULT_SETTINGS.dispatcher.clone()
    }
}

/// Kazoo mode: the `[kazoo]` section. The mode is on when `crossbar_url` is set; the API then
/// accepts Kazoo's tokens instead of its own.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct KazooConfig {
    /// Base URL of Kazoo's Crossbar (`http://crossbar:8000`); Kazoo mode is on when set.
    pub crossbar_url: Option<String>,
    /// The master account's API key, with which the service logs in to Crossbar to read keys.
    pub api_key: Option<String>,
    /// Token signing keys given here instead of fetched from Crossbar: `KID=PEM-file` each.
    pub public_keys: Vec<String>,
    /// Confirm every new token once with Crossbar's `tokeninfo` (refused when Crossbar cannot
    /// be reached), so that a revoked Kazoo session stops working.
    pub tokeninfo: bool,
    /// The Kazoo master account, when it is not the super-duper admin account without ancestors.
    pub master_account_id: Option<AccountId>,
    /// Seconds between two fetches of signing keys caused by tokens (an unknown key id, or a
    /// signature the known key refuses).
    pub key_refetch_interval_seconds: u64,
    /// Seconds a token confirmed by `tokeninfo` is taken as confirmed.
    pub tokeninfo_cache_seconds: u64,
    /// Verified tokens kept in memory, each until its expiry.
    pub verified_tokens_capacity: u64,
    /// Seconds a call to Crossbar may take, connecting included.
    pub request_timeout_seconds: u64,
    /// Seconds between two reconciliations of the stored accounts with Crossbar's tree (each
    /// API replica also reconciles at start and after each reconnection to the broker).
    pub accounts_reconcile_seconds: u64,
    /// Kazoo's CouchDB (`http://user:password@couch:5984`): when set, every hook write is
    /// mirrored into its `webhooks` database, where Kazoo's mailer reads disabled hooks.
    pub couch_url: Option<String>,
    /// Which Kazoo release's payloads receivers get: `master` (the default) or `4.3`.
    pub payload_compat: PayloadCompat,
}

impl Default for KazooConfig {
    /// The embedded defaults (Kazoo mode off).
    fn default() -> Self {
        DEFAULT_SETTINGS.kazoo.clone()
    }
}

impl std::fmt::Debug for KazooConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is a credential.
        f.debug_struct("KazooConfig")
            .field("crossbar_url", &self.crossbar_url.as_deref().map(redact_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("public_keys", &self.public_keys)
            .field("tokeninfo", &self.tokeninfo)
            .field("master_account_id", &self.master_account_id)
            .field("key_refetch_interval_seconds", &self.key_refetch_interval_seconds)
            .field("tokeninfo_cache_seconds", &self.tokeninfo_cache_seconds)
            .field("verified_tokens_capacity", &self.verified_tokens_capacity)
            .field("request_timeout_seconds", &self.request_timeout_seconds)
            .field("couch_url", &self.couch_url.as_deref().map(redact_url))
            .field("payload_compat", &self.payload_compat)
            .field("accounts_reconcile_seconds", &self.accounts_reconcile_seconds)
            .finish()
    }
}

/// A `public_keys` entry that is not `KID=PEM-file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kazoo.public_keys: '{0}' is not KID=PEM-file")]
pub struct InvalidPublicKeyEntry(pub String);

impl KazooConfig {
    /// True in Kazoo mode.
    pub fn enabled(&self) -> bool {
        self.crossbar_url.is_some()
    }

    /// The first Kazoo setting given while Kazoo mode is off: most likely a forgotten
    /// `crossbar_url`, which would leave the service accepting its own tokens instead.
    pub fn stray_setting(&self) -> Option<&'static str> {
        if self.enabled() {
            return None;
        }
        [
            ("api_key", self.api_key.is_some()),
            ("public_keys", !self.public_keys.is_empty()),
            ("tokeninfo", self.tokeninfo),
            ("master_account_id", self.master_account_id.is_some()),
            ("couch_url", self.couch_url.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }

    /// The configured signing keys as (key id, PEM file) pairs.
    pub fn public_key_files(&self) -> Result<Vec<(String, PathBuf)>, InvalidPublicKeyEntry> {
        self.public_keys
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((kid, file)) if !kid.trim().is_empty() && !file.trim().is_empty() => {
                    Ok((kid.trim().to_owned(), PathBuf::from(file.trim())))
                }
                _ => Err(InvalidPublicKeyEntry(entry.clone())),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
