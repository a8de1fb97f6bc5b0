//! The settings of every service, as read from embedded defaults, an optional file and the
//! environment (the binary does the reading; this is their shape, and the defaults).

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use serde::Deserialize;

use crate::ids::AccountId;
use crate::retry::FailureLimits;

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
            .field("kazoo", &self.kazoo)
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

impl DispatcherConfig {
    /// The system failure limits these settings give; a zero acts as one.
    pub fn failure_limits(&self) -> FailureLimits {
        FailureLimits {
            threshold: self.failure_threshold.max(1),
            window: Duration::from_secs(self.failure_window_seconds.max(1)),
        }
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
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// `text` with its commented-out examples (`# key = value`) made settings.
    fn with_examples(text: &str) -> String {
        let is_key = |key: &str| !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_');
        text.lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(example) if example.split_once(" = ").is_some_and(|(key, _)| is_key(key)) => example,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The leaves of `value` by their dotted path (`dispatcher.prefetch`); arrays are leaves.
    fn leaves(value: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        let mut found = BTreeMap::new();
        let mut pending = vec![(String::new(), value)];
        while let Some((path, value)) = pending.pop() {
            match value {
                serde_json::Value::Object(fields) => pending.extend(
                    fields
                        .into_iter()
                        .map(|(key, value)| (if path.is_empty() { key } else { format!("{path}.{key}") }, value)),
                ),
                leaf => {
                    found.insert(path, leaf);
                }
            }
        }
        found
    }

    #[test]
    fn defaults_toml_sets_every_setting_and_nothing_else() {
        let document: toml::Table = toml::from_str(&with_examples(DEFAULTS)).expect("defaults.toml parses");
        // A field that is not optional and has no value there fails here.
        let settings: Settings = toml::Value::Table(document.clone()).try_into().expect("defaults.toml is read whole");
        let written = leaves(serde_json::to_value(&document).expect("the document serialises"));
        // Written back, the settings show an optional field without an example as null.
        let read = leaves(serde_json::to_value(&settings).expect("settings serialise"));
        let unread: Vec<_> = written.keys().filter(|key| !read.contains_key(*key)).collect();
        assert!(unread.is_empty(), "keys of defaults.toml that no setting reads: {unread:?}");
        let missing: Vec<_> = read.iter().filter(|(key, value)| written.get(*key) != Some(value)).collect();
        assert!(missing.is_empty(), "settings whose value (or example) defaults.toml lacks or differs: {missing:?}");
    }

    #[test]
    fn the_defaults_are_the_documented_values() {
        let documented = Settings {
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
            api: ApiConfig {
                workers: 2,
                max_body_bytes: 1 << 20,
                token_lifetime_seconds: 3600,
                default_page_size: 50,
                account_cache_seconds: 5,
                listing_cache_seconds: 60,
                test_wait_seconds: 20,
            },
            router: RouterConfig { prefetch: 500, reload_interval_seconds: 300, max_jobs_per_message: 100 },
            dispatcher: DispatcherConfig {
                connect_timeout_seconds: 5.0,
                total_timeout_seconds: 15.0,
                prefetch: 256,
                concurrency: 1024,
                max_connections_per_host: 64,
                retry_delays_seconds: vec![5.0, 30.0, 120.0, 600.0],
                retry_jitter: 0.2,
                max_retry_after_seconds: 3600,
                log_successful_attempts: false,
                auto_disable: true,
                failure_threshold: 6,
                failure_window_seconds: 60,
                attempt_retention_days: 30,
                prune_interval_seconds: 3600,
                max_response_body_bytes: 64 * 1024,
                slow_lane_after_ms: 500,
                slow_lane_prefetch: 256,
                bookkeeping_capacity: 20_000,
                bookkeeping_capacity_bytes: 64 * 1024 * 1024,
            },
            kazoo: KazooConfig {
                crossbar_url: None,
                api_key: None,
                public_keys: Vec::new(),
                tokeninfo: false,
                master_account_id: None,
                key_refetch_interval_seconds: 60,
                tokeninfo_cache_seconds: 60,
                verified_tokens_capacity: 100_000,
                request_timeout_seconds: 5,
                accounts_reconcile_seconds: 300,
            },
        };
        assert_eq!(Settings::default(), documented);
        assert_eq!(
            DispatcherConfig::default().failure_limits(),
            FailureLimits { threshold: 6, window: Duration::from_secs(60) }
        );
    }

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
            kazoo: KazooConfig {
                crossbar_url: Some("http://user:concealed@crossbar:8000".into()),
                api_key: Some("kazoosecret".into()),
                ..KazooConfig::default()
            },
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        for secret in ["topsecret", "hidden", "concealed", "kazoosecret"] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(shown.contains("crossbar:8000"), "{shown}");
    }

    #[test]
    fn kazoo_mode_is_on_with_a_crossbar_url_and_keys_are_kid_file_pairs() {
        assert!(!KazooConfig::default().enabled());
        assert_eq!(KazooConfig::default().stray_setting(), None);
        let forgotten = KazooConfig { tokeninfo: true, ..KazooConfig::default() };
        assert_eq!(forgotten.stray_setting(), Some("tokeninfo"));
        let kazoo = KazooConfig {
            crossbar_url: Some("http://crossbar:8000".into()),
            public_keys: vec!["96247ed90b4bec8294c09ae6ece923a2=/etc/kazoo/key.pem".into(), " k2 = b.pem ".into()],
            ..KazooConfig::default()
        };
        assert!(kazoo.enabled());
        assert_eq!(kazoo.stray_setting(), None);
        assert_eq!(
            kazoo.public_key_files(),
            Ok(vec![
                ("96247ed90b4bec8294c09ae6ece923a2".to_owned(), PathBuf::from("/etc/kazoo/key.pem")),
                ("k2".to_owned(), PathBuf::from("b.pem")),
            ])
        );
        for wrong in ["no-equals", "=file.pem", "kid="] {
            let kazoo = KazooConfig { public_keys: vec![wrong.into()], ..KazooConfig::default() };
            assert_eq!(kazoo.public_key_files(), Err(InvalidPublicKeyEntry(wrong.into())));
        }
    }
}
