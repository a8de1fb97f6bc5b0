//! Delivery policy (docs/kazoo.md#retries, docs/kazoo.md#auto-disable): whether an attempt is
//! retried and after how long, which delay queues hold the waiting retries, and when a hook is
//! disabled for failing.
//!
//! Everything here is a pure function of its inputs; randomness (jitter) comes in as a sample in
//! `[0, 1)` so the rules can be tested exhaustively.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::DispatcherConfig;

/// The most retries a hook can ask for (schema maximum): at most five attempts in all.
pub const MAX_RETRIES: u8 = 4;

/// What one attempt observed, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The server answered with `status`; `retry_after` is its parsed `Retry-After`, if any.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, already parsed.
        retry_after: Option<Duration>,
    },
    /// No answer: timeout, connection, DNS, TLS, refused target or broken connection.
    Failed,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Delivered (any 2xx): nothing more to do.
    Delivered,
    /// Failed; try again after `delay`.
    Retry {
        /// How long to wait.
        delay: Duration,
    },
    /// Failed and no retries are left.
    Exhausted,
    /// `410 Gone`: the receiver wants no more deliveries; disable the hook now.
    Gone,
}

/// Why a policy cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// No retry delays were given.
    #[error("at least one retry delay is needed")]
    NoDelays,
    /// A zero delay would retry in a tight loop.
    #[error("retry delays must be positive")]
    ZeroDelay,
    /// Jitter outside `[0, 1]`.
    #[error("jitter must be between 0 and 1, got {0}")]
    Jitter(f64),
}

/// When retries happen.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The wait before the n-th retry is `delays[n - 1]`; the last one repeats.
    delays: Vec<Duration>,
    /// Each wait is stretched by `jitter * sample` of itself, so retries of many deliveries that
    /// failed together do not return together.
    jitter: f64,
    /// The longest `Retry-After` honoured; longer ones are cut to it.
    max_retry_after: Duration,
}

impl RetryPolicy {
    /// A policy with these waits (before the 1st, 2nd, ... retry), jitter fraction and
    /// `Retry-After` bound.
    pub fn new(delays: Vec<Duration>, jitter: f64, max_retry_after: Duration) -> Result<Self, PolicyError> {
        if delays.is_empty() {
            return Err(PolicyError::NoDelays);
        }
        if delays.iter().any(Duration::is_zero) {
            return Err(PolicyError::ZeroDelay);
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(PolicyError::Jitter(jitter));
        }
        Ok(Self { delays, jitter, max_retry_after })
    }

    /// The configured waits.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// What follows attempt number `attempt` (0 for the first) of a hook allowing `retries`
    /// retries, given what it observed; `jitter_sample` is uniform in `[0, 1)`.
    ///
    /// Every failure is retried while retries are left (Kazoo retried only unanswered requests):
    /// other statuses, timeouts, connection, DNS and TLS errors alike. `410 Gone` is never
    /// retried. `429` and `503` wait at least their (bounded) `Retry-After`.
    pub fn decide(&self, observed: Observed, attempt: u8, retries: u8, jitter_sample: f64) -> Decision {
        let retry_after = match observed {
            Observed::Answered { status, .. } if (200..300).contains(&status) => return Decision::Delivered,
            Observed::Answered { status: 410, .. } => return Decision::Gone,
            Observed::Answered { status: 429 | 503, retry_after } => retry_after,
            Observed::Answered { .. } | Observed::Failed => None,
        };
        if attempt >= retries.min(MAX_RETRIES) {
            return Decision::Exhausted;
        }
        let backoff = self.backoff(attempt + 1, jitter_sample);
        let delay = match retry_after {
            Some(wanted) => backoff.max(wanted.min(self.max_retry_after)),
            None => backoff,
        };
        Decision::Retry { delay }
    }

    /// The wait before retry number `retry` (1 for the first), stretched by the jitter sample:
    /// within `[delay, delay * (1 + jitter)]`, never shorter than the configured delay.
    pub fn backoff(&self, retry: u8, jitter_sample: f64) -> Duration {
        let index = usize::from(retry.max(1) - 1).min(self.delays.len() - 1);
        let base = self.delays[index];
        base + base.mul_f64(self.jitter * jitter_sample.clamp(0.0, 1.0))
    }

    /// The delay levels, shortest first: one per configured wait (at its jittered maximum) and
    /// one for the longest `Retry-After`. Each level is a delay queue; every delay this policy
    /// produces fits in some level ([`RetryPolicy::level_for`]).
    pub fn levels(&self) -> Vec<Duration> {
        let mut levels: Vec<Duration> = self
            .delays
            .iter()
            .map(|delay| round_up_to_millis(*delay + delay.mul_f64(self.jitter)))
            .chain([round_up_to_millis(self.max_retry_after)])
            .filter(|level| !level.is_zero())
            .collect();
        levels.sort();
        levels.dedup();
        levels
    }

    /// The shortest level at least as long as `delay`: the queue whose own expiry never cuts the
    /// wait short. Delays longer than every level get the longest one.
    pub fn level_for(&self, delay: Duration) -> Duration {
        let levels = self.levels();
        levels.iter().copied().find(|level| *level >= delay).or_else(|| levels.last().copied()).unwrap_or(delay)
    }
}

/// `duration` rounded up to whole milliseconds (queue expiries are in milliseconds).
fn round_up_to_millis(duration: Duration) -> Duration {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// How many failures within how long disable a hook (docs/kazoo.md#auto-disable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    /// Failures that disable the hook.
    pub threshold: u32,
    /// The counting window.
    pub window: Duration,
}

/// The object of an account document holding the account's own failure limits.
pub const ACCOUNT_LIMITS_OBJECT: &str = "webhooks";
/// Key of the failure threshold: in Kazoo's `webhooks` configuration (system and per account),
/// in an account document's `webhooks` object, and in the stored system limits.
pub const FAILURE_COUNT_KEY: &str = "attempt_failure_count";
/// Key of the failure window in milliseconds, likewise.
pub const FAILURE_EXPIRY_KEY: &str = "attempt_failure_expiry_ms";

impl Default for FailureLimits {
    /// The limits of the default settings (Kazoo's system defaults: 6 failures in 60 s).
    fn default() -> Self {
        Self::from_config(&DispatcherConfig::default())
    }
}

impl FailureLimits {
    /// The system failure limits the dispatcher's settings give; a zero acts as one.
    pub fn from_config(config: &DispatcherConfig) -> Self {
        Self {
            threshold: config.failure_threshold.max(1),
            window: Duration::from_secs(config.failure_window_seconds.max(1)),
        }
    }

    /// The limits of the account whose document is `account_doc`: its
    /// `webhooks.attempt_failure_count` and `webhooks.attempt_failure_expiry_ms`, each falling
    /// back to `system` when missing or not a positive integer (numbers written as strings
    /// count, as Kazoo's configuration readers accept them).
    pub fn for_account(account_doc: &Map<String, Value>, system: FailureLimits) -> FailureLimits {
        let config = account_doc.get(ACCOUNT_LIMITS_OBJECT).and_then(Value::as_object);
        let setting = |key: &str| config.and_then(|config| config.get(key)).and_then(positive_integer);
        FailureLimits {
            threshold: setting(FAILURE_COUNT_KEY)
                .and_then(|count| u32::try_from(count).ok())
                .unwrap_or(system.threshold),
            window: setting(FAILURE_EXPIRY_KEY).map(Duration::from_millis).unwrap_or(system.window),
        }
    }

    /// Whether `failures` counted within the window disable the hook.
    pub fn exceeded_by(&self, failures: u64) -> bool {
        failures >= u64::from(self.threshold.max(1))
    }
}

/// A positive integer from a JSON number or a string holding one.
fn positive_integer(value: &Value) -> Option<u64> {
    let number = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    }?;
    (number > 0).then_some(number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(vec![Duration::from_secs(5), Duration::from_secs(30)], 0.2, Duration::from_secs(3600))
            .expect("valid policy")
    }

    fn answered(status: u16) -> Observed {
        Observed::Answered { status, retry_after: None }
    }

    #[test]
    fn every_2xx_is_delivered_whatever_the_attempt() {
        for status in 200..300 {
            for attempt in 0..=5 {
                assert_eq!(policy().decide(answered(status), attempt, 2, 0.5), Decision::Delivered);
            }
        }
    }

    #[test]
    fn gone_disables_at_once_even_with_retries_left() {
        assert_eq!(policy().decide(answered(410), 0, 4, 0.0), Decision::Gone);
        assert_eq!(policy().decide(answered(410), 4, 4, 0.0), Decision::Gone);
    }

    #[test]
    fn every_other_outcome_is_retried_while_retries_are_left() {
        let outcomes = [1, 100, 301, 400, 404, 429, 500, 502, 503, 599, 999].map(answered);
        for observed in outcomes.into_iter().chain([Observed::Failed]) {
            for retries in 0..=MAX_RETRIES {
                for attempt in 0..=MAX_RETRIES + 1 {
                    let decision = policy().decide(observed, attempt, retries, 0.0);
                    if attempt < retries {
                        assert!(matches!(decision, Decision::Retry { .. }), "{observed:?} {attempt}/{retries}");
                    } else {
                        assert_eq!(decision, Decision::Exhausted, "{observed:?} {attempt}/{retries}");
                    }
                }
            }
        }
    }

    #[test]
    fn zero_retries_means_one_attempt_and_retries_are_capped_at_four() {
        assert_eq!(policy().decide(Observed::Failed, 0, 0, 0.0), Decision::Exhausted);
        assert!(matches!(policy().decide(Observed::Failed, 3, 200, 0.0), Decision::Retry { .. }));
        assert_eq!(policy().decide(Observed::Failed, 4, 200, 0.0), Decision::Exhausted);
    }

    #[test]
    fn backoff_grows_per_retry_and_repeats_the_last_delay() {
        let policy = policy();
        assert_eq!(policy.backoff(1, 0.0), Duration::from_secs(5));
        assert_eq!(policy.backoff(2, 0.0), Duration::from_secs(30));
        assert_eq!(policy.backoff(3, 0.0), Duration::from_secs(30));
        assert_eq!(policy.backoff(0, 0.0), Duration::from_secs(5));
        assert_eq!(policy.decide(Observed::Failed, 1, 4, 0.0), Decision::Retry { delay: Duration::from_secs(30) });
    }

    #[test]
    fn jitter_only_ever_lengthens_the_wait_within_its_fraction() {
        let policy = policy();
        for step in 0..=100 {
            let sample = f64::from(step) / 100.0;
            let delay = policy.backoff(1, sample);
            assert!(delay >= Duration::from_secs(5) && delay <= Duration::from_secs(6), "{sample}: {delay:?}");
        }
        assert_eq!(policy.backoff(1, 0.5), Duration::from_millis(5500));
        // Samples outside [0, 1) are clamped rather than trusted.
        assert_eq!(policy.backoff(1, 7.0), Duration::from_secs(6));
        assert_eq!(policy.backoff(1, -1.0), Duration::from_secs(5));
    }

    #[test]
    fn retry_after_is_honoured_only_on_429_and_503_and_bounded() {
        let policy = policy();
        let after = |status, seconds| Observed::Answered { status, retry_after: Some(Duration::from_secs(seconds)) };
        assert_eq!(policy.decide(after(429, 90), 0, 2, 0.0), Decision::Retry { delay: Duration::from_secs(90) });
        assert_eq!(policy.decide(after(503, 90), 0, 2, 0.0), Decision::Retry { delay: Duration::from_secs(90) });
        // Shorter than the backoff: the backoff wins.
        assert_eq!(policy.decide(after(503, 1), 0, 2, 0.0), Decision::Retry { delay: Duration::from_secs(5) });
        // Other statuses ignore it.
        assert_eq!(policy.decide(after(500, 90), 0, 2, 0.0), Decision::Retry { delay: Duration::from_secs(5) });
        // Bounded.
        assert_eq!(policy.decide(after(429, 86_400), 0, 2, 0.0), Decision::Retry { delay: Duration::from_secs(3600) });
        // Never past the last retry.
        assert_eq!(policy.decide(after(429, 90), 2, 2, 0.0), Decision::Exhausted);
    }

    #[test]
    fn levels_cover_every_delay_the_policy_produces() {
        let policy = policy();
        assert_eq!(policy.levels(), vec![Duration::from_secs(6), Duration::from_secs(36), Duration::from_secs(3600)]);
        for status in [429, 500, 503] {
            for seconds in [0, 1, 5, 6, 7, 36, 37, 600, 3600, 100_000] {
                for step in 0..10 {
                    let observed = Observed::Answered { status, retry_after: Some(Duration::from_secs(seconds)) };
                    let Decision::Retry { delay } = policy.decide(observed, 0, 4, f64::from(step) / 10.0) else {
                        panic!("a retry was expected");
                    };
                    let level = policy.level_for(delay);
                    assert!(level >= delay, "{delay:?} in {level:?}");
                    assert!(policy.levels().contains(&level));
                }
            }
        }
        assert_eq!(policy.level_for(Duration::from_secs(5)), Duration::from_secs(6));
        assert_eq!(policy.level_for(Duration::from_secs(7)), Duration::from_secs(36));
        assert_eq!(policy.level_for(Duration::from_secs(99_999)), Duration::from_secs(3600));
    }

    #[test]
    fn levels_are_whole_milliseconds_and_deduplicated() {
        let policy = RetryPolicy::new(
            vec![Duration::from_nanos(1_000_001), Duration::from_secs(1), Duration::from_secs(1)],
            0.0,
            Duration::from_secs(1),
        )
        .expect("valid policy");
        assert_eq!(policy.levels(), vec![Duration::from_millis(2), Duration::from_secs(1)]);
    }

    #[test]
    fn invalid_policies_are_refused() {
        let hour = Duration::from_secs(3600);
        assert_eq!(RetryPolicy::new(Vec::new(), 0.2, hour), Err(PolicyError::NoDelays));
        assert_eq!(RetryPolicy::new(vec![Duration::ZERO], 0.2, hour), Err(PolicyError::ZeroDelay));
        assert_eq!(RetryPolicy::new(vec![hour], 1.5, hour), Err(PolicyError::Jitter(1.5)));
        assert_eq!(RetryPolicy::new(vec![hour], -0.1, hour), Err(PolicyError::Jitter(-0.1)));
    }

    #[test]
    fn the_threshold_is_reached_at_the_count_not_after() {
        let limits = FailureLimits::default();
        assert!(!limits.exceeded_by(5));
        assert!(limits.exceeded_by(6));
        assert!(limits.exceeded_by(7));
        // A threshold of 0 would disable hooks that never failed; it acts as 1.
        let zero = FailureLimits { threshold: 0, window: Duration::from_secs(1) };
        assert!(!zero.exceeded_by(0));
        assert!(zero.exceeded_by(1));
    }

    #[test]
    fn account_limits_override_the_system_ones_when_valid() {
        let system = FailureLimits::default();
        let limits = |doc: Value| FailureLimits::for_account(doc.as_object().expect("object"), system);
        assert_eq!(limits(json!({})), system);
        assert_eq!(
            limits(json!({"webhooks": {"attempt_failure_count": 3, "attempt_failure_expiry_ms": 10_000}})),
            FailureLimits { threshold: 3, window: Duration::from_secs(10) }
        );
        assert_eq!(
            limits(json!({"webhooks": {"attempt_failure_count": "4"}})),
            FailureLimits { threshold: 4, window: system.window }
        );
        for bad in [json!(0), json!(-1), json!(2.5), json!("x"), json!(null), json!(true), json!(u64::MAX)] {
            assert_eq!(limits(json!({"webhooks": {"attempt_failure_count": bad}})).threshold, 6, "{bad}");
        }
        assert_eq!(limits(json!({"webhooks": {"attempt_failure_expiry_ms": 0}})).window, system.window);
        assert_eq!(limits(json!({"webhooks": "nope"})), system);
    }
}
