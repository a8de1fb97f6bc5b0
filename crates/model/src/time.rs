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

/// Gregorian seconds of an instant written as gregorian seconds (`63877219205`) or as RFC 3339
/// text (`2024-03-09T16:00:05Z`, `2024-03-09T18:00:05.5+02:00`); `None` for anything else.
pub fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.parse().ok();
    }
    unix_from_rfc3339(text).map(gregorian_from_unix)
}

/// Unix seconds of RFC 3339 text (fractions of a second are dropped).
fn unix_from_rfc3339(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if digits.bytes().all(|byte| byte.is_ascii_digit()) { digits.parse().ok() } else { None }
    };
    let separators = text.as_bytes();
    if separators.len() < 20
        || separators[4] != b'-'
        || separators[7] != b'-'
        || !matches!(separators[10], b'T' | b't' | b' ')
        || separators[13] != b':'
        || separators[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = rest.get(1..)?;
            let (hours, minutes) = zone.split_once(':')?;
            let valid = |part: &str| part.len() == 2 && part.bytes().all(|byte| byte.is_ascii_digit());
            if !valid(hours) || !valid(minutes) {
                return None;
            }
            sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
    fn converts_the_spec_example() {
        assert_eq!(unix_from_gregorian(63_877_219_205), 1_710_000_005);
        assert_eq!(gregorian_from_unix(1_710_000_005), 63_877_219_205);
        assert_eq!(iso8601_from_unix(1_710_000_005), "2024-03-09T16:00:05Z");
        assert_eq!(iso8601_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_from_unix(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn instants_are_read_as_gregorian_seconds_or_rfc_3339() {
        assert_eq!(parse_instant("63877219205"), Some(63_877_219_205));
        assert_eq!(parse_instant("2024-03-09T16:00:05Z"), Some(63_877_219_205));
        assert_eq!(parse_instant(" 2024-03-09t18:00:05.25+02:00 "), Some(63_877_219_205));
        assert_eq!(parse_instant("2024-03-09 15:00:05-01:00"), Some(63_877_219_205));
        assert_eq!(parse_instant("2000-02-29T00:00:00Z"), Some(gregorian_from_unix(951_782_400)));
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(GREGORIAN_UNIX_OFFSET));
        for bad in [
            "",
            "-5",
            "yesterday",
            "2024-03-09",
            "2024-03-09T16:00:05",
            "2024-13-09T16:00:05Z",
            "2024-03-09T16:00:05.Z",
            "2024-03-09T16:00:05+2:00",
            "2024-03-09T16:00:05Zjunk",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
