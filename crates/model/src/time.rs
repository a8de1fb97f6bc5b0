//! The wall clock, read in one place, and Kazoo's gregorian seconds (seconds since year 0).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds between 0000-01-01 and the Unix epoch.
pub const GREGORIAN_UNIX_OFFSET: i64 = 62_167_219_200;

/// Time since the Unix epoch; zero on a clock set before 1970 (a broken host), so arithmetic
/// stays defined. The one reading of the wall clock: the functions below derive from it.
pub fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Now, Unix seconds (never negative).
pub fn unix_seconds() -> i64 {
    i64::try_from(unix_now().as_secs()).unwrap_or(i64::MAX)
}

/// Now, Unix milliseconds; never negative, so `unsigned_abs` is the exact `u64` (a job's
/// `published_at_ms`).
pub fn unix_millis() -> i64 {
    i64::try_from(unix_now().as_millis()).unwrap_or(i64::MAX)
}

/// Now, gregorian seconds.
pub fn gregorian_now() -> i64 {
    gregorian_from_unix(unix_seconds())
}

/// Gregorian seconds for a Unix timestamp in seconds.
pub fn gregorian_from_unix(unix_seconds: i64) -> i64 {
    unix_seconds + GREGORIAN_UNIX_OFFSET
}

/// Unix seconds for a gregorian timestamp.
pub fn unix_from_gregorian(gregorian_seconds: i64) -> i64 {
    gregorian_seconds - GREGORIAN_UNIX_OFFSET
}

/// ISO 8601 UTC text (`2024-03-09T16:00:05Z`) of a Unix timestamp in seconds.
pub fn iso8601_from_unix(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let seconds_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        (seconds_of_day % 3600) / 60,
        seconds_of_day % 60
    )
}

/// Why an instant a client wrote was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInstant {
    /// Digits only, but more seconds than fit.
    #[error("gregorian seconds out of range")]
    OutOfRange,
    /// Not RFC 3339 text, or not a real date, time or offset (`2025-02-31`, `+25:99`).
    #[error(transparent)]
    NotRfc3339(#[from] time::error::Parse),
}

/// Gregorian seconds of an instant written as gregorian seconds (`63877219205`) or as RFC 3339
/// text (`2024-03-09T16:00:05Z`, `2024-03-09T18:00:05.5+02:00`; fractions of a second dropped).
pub fn parse_instant(text: &str) -> Result<i64, InvalidInstant> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.parse().map_err(|_| InvalidInstant::OutOfRange);
    }
    let instant = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
    Ok(gregorian_from_unix(instant.unix_timestamp()))
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reads_agree_with_one_another() {
        let before = unix_now();
        let (seconds, millis) = (unix_seconds(), unix_millis());
        let after = unix_now();
        // 2020-09-13: any working clock is later.
        assert!(seconds > 1_600_000_000, "{seconds}");
        assert!(i64::try_from(before.as_secs()).expect("fits") <= seconds);
        assert!(i64::try_from(before.as_millis()).expect("fits") <= millis);
        assert!(millis <= i64::try_from(after.as_millis()).expect("fits"));
        assert!((millis / 1000 - seconds).abs() <= 1, "{millis} ms, {seconds} s");
    }

    #[test]
    fn converts_a_known_instant() {
        assert_eq!(unix_from_gregorian(63_877_219_205), 1_710_000_005);
        assert_eq!(gregorian_from_unix(1_710_000_005), 63_877_219_205);
        assert_eq!(iso8601_from_unix(1_710_000_005), "2024-03-09T16:00:05Z");
        assert_eq!(iso8601_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_from_unix(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn instants_are_read_as_gregorian_seconds_or_rfc_3339() {
        assert_eq!(parse_instant("63877219205"), Ok(63_877_219_205));
        assert_eq!(parse_instant("2024-03-09T16:00:05Z"), Ok(63_877_219_205));
        assert_eq!(parse_instant(" 2024-03-09t18:00:05.25+02:00 "), Ok(63_877_219_205));
        assert_eq!(parse_instant("2024-03-09 15:00:05-01:00"), Ok(63_877_219_205));
        assert_eq!(parse_instant("2024-03-09T21:30:05+05:30"), Ok(63_877_219_205));
        assert_eq!(parse_instant("2000-02-29T00:00:00Z"), Ok(gregorian_from_unix(951_782_400)));
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Ok(GREGORIAN_UNIX_OFFSET));
        assert_eq!(parse_instant("1969-12-31T23:59:59.5Z"), Ok(GREGORIAN_UNIX_OFFSET - 1));
        assert_eq!(parse_instant("0"), Ok(0));
    }

    #[test]
    fn impossible_dates_times_and_offsets_are_refused_with_the_reason() {
        let reason = |text: &str| parse_instant(text).expect_err(text).to_string();
        assert_eq!(reason("2025-02-31T00:00:00Z"), "day was not in range");
        assert_eq!(reason("2023-02-29T00:00:00Z"), "day was not in range");
        assert_eq!(reason("2024-03-09T16:00:05+25:99"), "the 'offset hour' component could not be parsed");
        assert_eq!(reason("2024-03-09T16:00:05+05:99"), "offset minute was not in range");
        assert_eq!(reason("2024-03-09T24:00:00Z"), "hour was not in range");
        // A leap second only where one can be.
        assert_eq!(parse_instant("2016-12-31T23:59:60Z"), Ok(gregorian_from_unix(1_483_228_799)));
        assert_eq!(reason("2016-12-30T23:59:60Z"), "second was not in range");
        assert_eq!(reason("99999999999999999999"), "gregorian seconds out of range");
        for bad in [
            "",
            "-5",
            "yesterday",
            "2024-03-09",
            "2024-03-09T16:00:05",
            "2024-13-09T16:00:05Z",
            "2024-03-09T16:60:05Z",
            "2024-03-09T16:00:05.Z",
            "2024-03-09T16:00:05+2:00",
            "2024-03-09T16:00:05Zjunk",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }
}
