//! `Retry-After` (RFC 9110 section 10.2.3): delay seconds or an HTTP date.

use std::time::{Duration, SystemTime};

/// How long `value` asks to wait, measured from `now`: a number of seconds or an HTTP date (all
/// three formats RFC 9110 requires recipients to read). A date in the past is no wait; anything
/// unreadable is `None`. The policy bounds the result.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Digits only; an absurdly long number is still a (very long) wait.
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    /// 2015-10-21T07:28:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    #[test]
    fn seconds_are_read_as_a_wait() {
        assert_eq!(parse_retry_after("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999999999999999999", now()), Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn every_http_date_format_is_read_relative_to_now() {
        let in_a_minute = Some(Duration::from_secs(60));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now()), in_a_minute);
        assert_eq!(parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now()), in_a_minute);
        assert_eq!(parse_retry_after("Wed Oct 21 07:29:00 2015", now()), in_a_minute);
    }

    #[test]
    fn a_date_in_the_past_means_no_wait() {
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now()), Some(Duration::ZERO));
    }

    #[test]
    fn anything_else_is_ignored() {
        for value in ["", "-5", "1.5", "soon", "5 s", "Wed, 32 Oct 2015 07:29:00 GMT"] {
            assert_eq!(parse_retry_after(value, now()), None, "{value:?}");
        }
    }
}
