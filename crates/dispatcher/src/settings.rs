//! What the dispatcher can be told, with defaults that run it in production as documented.

use std::time::Duration;

use webhooks_model::config::DispatcherConfig;
use webhooks_model::retry::{FailureLimits, PolicyError, RetryPolicy};

/// The dispatcher's settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatcherSettings {
    /// TCP connect timeout of a callout (default 5 s; docs/kazoo.md#timeouts).
    pub connect_timeout: Duration,
    /// Whole-callout timeout: connect, send, and read the answer (default 15 s; Kazoo had none).
    pub total_timeout: Duration,
    /// Job batches taken from the queue before any is acknowledged (default 256). A batch stays
    /// unacknowledged until its slowest callout ends, so with single-job batches throughput is
    /// bounded by about `prefetch / callout time`: raise it when many receivers are slow.
    pub prefetch: u16,
    /// Callouts in flight at once, all batches together (default 1024; each holds a socket, so
    /// keep it well under the process's file descriptor limit).
    pub concurrency: usize,
    /// Callouts in flight to one host (scheme, host and port) at once; also the idle
    /// keep-alive connections kept per host (default 64). Waiting for a slot of a slow host (see
    /// `slow_lane_after`) counts within the callout's total timeout: a job that gets none within
    /// half of it fails as `host saturated` and is retried, without counting towards auto-disable
    /// (the host's own callouts do). Waiting for a quick host is queueing and does not count.
    pub max_connections_per_host: usize,
    /// When a host counts as slow (default 500 ms): its callouts have taken this long for this
    /// long (or one timed out), or its callouts in flight have gone this long without one
    /// ending. Jobs for a slow host are not called from their batch but moved, with a confirmed
    /// publish, to the slow lane, so a batch is acknowledged without waiting for a dead host's
    /// timeouts; the host leaves the slow lane once a callout to it is quick again.
    pub slow_lane_after: Duration,
    /// Job batches of the slow lane taken before any is acknowledged (default 256): the slow
    /// lane's own window, which slow hosts fill instead of the dispatch queue's.
    pub slow_lane_prefetch: u16,
    /// How long an idle keep-alive connection is kept (default 60 s).
    pub pool_idle_timeout: Duration,
    /// Waits before the 1st, 2nd, 3rd and 4th retry; the last repeats when there are fewer
    /// (default 5 s, 30 s, 2 min, 10 min). Each is stretched by up to `retry_jitter` of itself.
    pub retry_delays: Vec<Duration>,
    /// Jitter fraction of each retry wait, in `[0, 1]` (default 0.2).
    pub retry_jitter: f64,
    /// Longest `Retry-After` honoured on 429 and 503; longer ones are cut (default 1 h).
    pub max_retry_after: Duration,
    /// Whether callouts may reach loopback, private, link-local and other internal addresses
    /// (default false; docs/kazoo.md#target-checks).
    pub allow_private_targets: bool,
    /// Whether successful attempts are recorded too (default false; Kazoo's
    /// `log_successful_attempts`).
    pub log_successful_attempts: bool,
    /// Whether hooks failing too often, or answering `410 Gone`, are disabled (default true;
    /// Kazoo's `disable_disabler` inverted). When false, failures are not counted either.
    pub auto_disable: bool,
    /// System failure limits, overridable per account (default 6 failures in 60 s, as in Kazoo).
    pub failure_limits: FailureLimits,
    /// Attempt records older than this are deleted (default 30 days).
    pub attempt_retention: Duration,
    /// How often old attempt records and stale failure counts are pruned (default 1 h).
    pub prune_interval: Duration,
    /// Bytes of a response body kept in the attempt record (default 64 KiB).
    pub max_response_body: usize,
    /// Attempt records written in one statement at most (default 500).
    pub attempt_batch_size: usize,
    /// How long the attempt writer gathers records before writing (default 5 ms).
    pub attempt_batch_delay: Duration,
    /// Attempt records and failure-count changes kept at most while the database cannot be
    /// reached (default 20,000).
    pub bookkeeping_capacity: usize,
    /// The same bound in bytes of attempt records (their request and response bodies above all)
    /// and failures (default 64 MiB); whichever is reached first makes deliveries wait.
    pub bookkeeping_capacity_bytes: usize,
    /// How long signing secrets and account limits are used before they are read again
    /// (default 30 s).
    pub cache_ttl: Duration,
    /// How long the last signing secrets and account limits read stay usable while the database
    /// cannot be read again (default 1 h).
    pub cache_keep_for: Duration,
    /// How long a retry trusts a cached "hook still enabled" (default 5 s).
    pub hook_state_ttl: Duration,
    /// On shutdown, how long in-flight batches may take to finish (default 20 s).
    pub drain_timeout: Duration,
    /// The node name put in published messages (default `webhooks-dispatcher@<host name>`).
    pub node: String,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self::from_config(&DispatcherConfig::default(), false).unwrap_or_else(|_| unreachable!("valid defaults"))
    }
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("dispatcher.{field}: {reason}")]
pub struct SettingError {
    /// The setting's key in the `dispatcher` section.
    pub field: &'static str,
    /// Why it is refused.
    pub reason: &'static str,
}

impl DispatcherSettings {
    /// The settings of the `dispatcher` configuration section; `allow_private_targets` is the
    /// system-wide setting. The knobs the section does not expose keep their defaults.
    pub fn from_config(config: &DispatcherConfig, allow_private_targets: bool) -> Result<Self, SettingError> {
        let retry_delays = config
            .retry_delays_seconds
            .iter()
            .map(|&seconds| duration("retry_delays_seconds", seconds))
            .collect::<Result<Vec<_>, _>>()?;
        let settings = Self {
            connect_timeout: duration("connect_timeout_seconds", config.connect_timeout_seconds)?,
            total_timeout: duration("total_timeout_seconds", config.total_timeout_seconds)?,
            prefetch: config.prefetch.max(1),
            concurrency: config.concurrency.max(1),
            max_connections_per_host: config.max_connections_per_host.max(1),
            slow_lane_after: Duration::from_millis(config.slow_lane_after_ms.max(1)),
            slow_lane_prefetch: config.slow_lane_prefetch.max(1),
            pool_idle_timeout: Duration::from_secs(60),
            retry_delays,
            retry_jitter: config.retry_jitter,
            max_retry_after: Duration::from_secs(config.max_retry_after_seconds),
            allow_private_targets,
            log_successful_attempts: config.log_successful_attempts,
            auto_disable: config.auto_disable,
            failure_limits: FailureLimits::from_config(config),
            attempt_retention: Duration::from_secs(config.attempt_retention_days.saturating_mul(24 * 3600)),
            prune_interval: Duration::from_secs(config.prune_interval_seconds.max(1)),
            max_response_body: config.max_response_body_bytes,
            attempt_batch_size: 500,
            attempt_batch_delay: Duration::from_millis(5),
            bookkeeping_capacity: config.bookkeeping_capacity.max(1),
            bookkeeping_capacity_bytes: config.bookkeeping_capacity_bytes.max(1),
            cache_ttl: Duration::from_secs(30),
            cache_keep_for: Duration::from_secs(3600),
            hook_state_ttl: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(20),
            node: default_node(),
        };
        settings.retry_policy().map_err(|_| SettingError {
            field: "retry_delays_seconds",
            reason: "needs at least one positive delay and a jitter in [0, 1]",
        })?;
        Ok(settings)
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> Result<RetryPolicy, PolicyError> {
        RetryPolicy::new(self.retry_delays.clone(), self.retry_jitter, self.max_retry_after)
    }
}

/// A positive number of seconds as a duration.
fn duration(field: &'static str, seconds: f64) -> Result<Duration, SettingError> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or(SettingError { field, reason: "must be a positive number of seconds" })
}

/// `webhooks-dispatcher@<host name>`, Kazoo's `app@host` node naming.
fn default_node() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|name| name.trim().to_owned()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("webhooks-dispatcher@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones_and_make_a_valid_policy() {
        let settings = DispatcherSettings::default();
        assert_eq!(
            (settings.connect_timeout, settings.total_timeout),
            (Duration::from_secs(5), Duration::from_secs(15))
        );
        assert_eq!(settings.failure_limits, FailureLimits { threshold: 6, window: Duration::from_secs(60) });
        assert!(!settings.allow_private_targets && !settings.log_successful_attempts && settings.auto_disable);
        assert_eq!(settings.attempt_retention, Duration::from_secs(2_592_000));
        assert!(settings.node.starts_with("webhooks-dispatcher@"));
        let documented = [5, 30, 120, 600].map(Duration::from_secs).to_vec();
        assert_eq!(
            settings.retry_policy().expect("valid policy"),
            RetryPolicy::new(documented, 0.2, Duration::from_secs(3600)).expect("valid policy")
        );
    }

    #[test]
    fn unusable_settings_are_refused_with_their_name() {
        let negative = DispatcherConfig { total_timeout_seconds: -1.0, ..DispatcherConfig::default() };
        assert_eq!(
            DispatcherSettings::from_config(&negative, false),
            Err(SettingError { field: "total_timeout_seconds", reason: "must be a positive number of seconds" })
        );
        let no_delays = DispatcherConfig { retry_delays_seconds: Vec::new(), ..DispatcherConfig::default() };
        assert_eq!(
            DispatcherSettings::from_config(&no_delays, false).map(|_| ()).expect_err("refused").field,
            "retry_delays_seconds"
        );
        let jitter = DispatcherConfig { retry_jitter: 2.0, ..DispatcherConfig::default() };
        assert!(DispatcherSettings::from_config(&jitter, true).is_err());
        let custom = DispatcherConfig { retry_delays_seconds: vec![0.5, 2.0], ..DispatcherConfig::default() };
        let settings = DispatcherSettings::from_config(&custom, true).expect("valid settings");
        assert_eq!(settings.retry_delays, [Duration::from_millis(500), Duration::from_secs(2)]);
        assert!(settings.allow_private_targets);
    }
}
