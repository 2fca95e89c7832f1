//! Event times written as text: one parser for every place that reads them (records, the
//! generator's settings), so a time means the same instant everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch of an RFC 3339 time: `2026-01-01T12:00:00Z`, with any
/// UTC offset (`+09:00`, `-05:00`, `+05:30`), fractions of a second, a space or a lower-case
/// `t` between date and time. A time without an offset (or a bare date) is read as UTC.
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, String> {
    let instant = match text.parse::<jiff::Timestamp>() {
        Ok(instant) => instant,
        Err(with_offset) => match text.parse::<jiff::civil::DateTime>() {
            Ok(civil) => jiff::tz::Offset::UTC.to_timestamp(civil).map_err(|error| error.to_string())?,
            Err(_) => return Err(format!("{text:?} is not an RFC 3339 time such as \"2026-01-01T12:00:00Z\": {with_offset}")),
        },
    };
    Ok(instant.as_millisecond())
}

/// The wall clock, in milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_millis;

    const NOON_UTC: i64 = 1_767_268_800_000; // 2026-01-01T12:00:00Z

    #[test]
    fn every_offset_names_the_same_instant() {
        for text in [
            "2026-01-01T12:00:00Z",
            "2026-01-01T12:00:00z",
            "2026-01-01t12:00:00Z",
            "2026-01-01 12:00:00Z",
            "2026-01-01T12:00:00+00:00",
            "2026-01-01T12:00:00-00:00",
            "2026-01-01T14:00:00+02:00",
            "2026-01-01T07:00:00-05:00",
            "2026-01-01T17:30:00+05:30",
            "2026-01-01T21:00:00+09:00",
            "2026-01-01T12:00:00",
        ] {
            assert_eq!(parse_rfc3339_millis(text), Ok(NOON_UTC), "{text}");
        }
    }

    #[test]
    fn fractions_and_times_before_the_epoch_keep_their_value() {
        assert_eq!(parse_rfc3339_millis("2026-01-01T12:00:00.123+01:00"), Ok(NOON_UTC + 123 - 3_600_000));
        assert_eq!(parse_rfc3339_millis("2026-01-01T12:00:00.123456789Z"), Ok(NOON_UTC + 123));
        assert_eq!(parse_rfc3339_millis("1969-12-31T23:59:59Z"), Ok(-1000));
        assert_eq!(parse_rfc3339_millis("2026-01-01"), Ok(NOON_UTC - 43_200_000));
    }

    #[test]
    fn malformed_times_are_refused_with_the_expected_form() {
        for text in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01T25:00:00Z", "1767268800000"] {
            let error = parse_rfc3339_millis(text).expect_err(text);
            assert!(error.contains("is not an RFC 3339 time"), "{text}: {error}");
        }
    }
}
