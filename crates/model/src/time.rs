//! Kazoo's clock: gregorian seconds (seconds since year 0).

/// Seconds between 0000-01-01 and the Unix epoch.
pub const GREGORIAN_UNIX_OFFSET: i64 = 62_167_219_200;

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
    fn converts_the_spec_example() {
        assert_eq!(unix_from_gregorian(63_877_219_205), 1_710_000_005);
        assert_eq!(gregorian_from_unix(1_710_000_005), 63_877_219_205);
        assert_eq!(iso8601_from_unix(1_710_000_005), "2024-03-09T16:00:05Z");
        assert_eq!(iso8601_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_from_unix(951_782_400), "2000-02-29T00:00:00Z");
    }
}
