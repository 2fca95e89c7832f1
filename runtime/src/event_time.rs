//! Event times written as text: one parser for every place that reads them (records, the
//! generator's settings), so a time means the same instant everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch of an RFC 3339 time: `2026-01-01T12:00:00Z`, with any
/// UTC offset (`+09:00`, `-05:00`, `+05:30`), fractions of a second, a space or a lower-case
/// `t` between date and time. A time without an offset (or a bare date) is read as UTC.
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, String> {
    if text.contains('[') {
        // jiff reads RFC 9557's annotations and ignores them, which would read a local time
        // without offset as UTC.
        return Err(format!("{text:?} carries a time zone annotation ([...]), which is not read: give the offset (\"+01:00\") instead"));
    }
    if let Some(hours) = offset_hours(text).filter(|hours| *hours > 23) {
        return Err(format!("{text:?} has an offset of {hours} hours: RFC 3339 offsets run from -23:59 to +23:59"));
    }
    let out_of_range = || format!("{text:?} is outside the times Sluice reads, {} to {}", jiff::Timestamp::MIN, jiff::Timestamp::MAX);
    let full = text;
    let text = &*to_nanoseconds(text);
    let instant = match text.parse::<jiff::Timestamp>() {
        Ok(instant) => instant,
        Err(with_offset) => match text.parse::<jiff::civil::DateTime>() {
            // A time with an offset that jiff could not make an instant of is past the range
            // (read as a civil time, its offset would be ignored).
            Ok(_) if has_offset(text) => return Err(out_of_range()),
            Ok(civil) => jiff::tz::Offset::UTC.to_timestamp(civil).map_err(|_| out_of_range())?,
            // jiff names the instant's range so: past it, a valid time Sluice cannot represent.
            Err(_) if with_offset.to_string().contains("Unix timestamp seconds") => return Err(out_of_range()),
            // A year of five digits or more, or a six-digit one past ±9999.
            Err(_) if beyond_four_digit_years(text) || with_offset.to_string().contains("-9999..=9999") => return Err(out_of_range()),
            Err(_) => return Err(format!("{full:?} is not an RFC 3339 time such as \"2026-01-01T12:00:00Z\": {with_offset}")),
        },
    };
    // Floored, so that a time before 1970 with a fraction of a millisecond keeps its millisecond.
    i64::try_from(instant.as_nanosecond().div_euclid(1_000_000)).map_err(|_| format!("{full:?} is out of range"))
}

/// `text` with a fraction of a second cut to nine digits: RFC 3339 allows any number, jiff
/// reads nine. Cutting floors the time, as reading it to the millisecond does.
fn to_nanoseconds(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(time) = text.find(['T', 't', ' ']) else { return text.into() };
    let Some(point) = text[time..].find(['.', ',']).map(|point| time + point + 1) else { return text.into() };
    let digits = text[point..].bytes().take_while(u8::is_ascii_digit).count();
    if digits <= 9 {
        return text.into();
    }
    format!("{}{}", &text[..point + 9], &text[point + digits..]).into()
}

/// Whether `text` has an offset (`Z`, `+01:00`, `-05:00`) after its time of day.
fn has_offset(text: &str) -> bool {
    let Some(separator) = text.find(['T', 't', ' ']) else { return false };
    text[separator + 1..].contains(['Z', 'z', '+', '-'])
}

/// Whether `text` starts with a year past ±9999 (`10000-01-01`, `+010000-01-01`).
fn beyond_four_digit_years(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-']);
    let year = digits.bytes().take_while(u8::is_ascii_digit).count();
    let significant = digits[..year].trim_start_matches('0').len();
    digits.as_bytes().get(year) == Some(&b'-') && (significant > 4)
}

/// The hours of the offset `text` ends with (`+25:00` → 25), if it ends with one after its time.
fn offset_hours(text: &str) -> Option<u32> {
    let time = text.get(10..)?;
    let sign = time.rfind(['+', '-'])?;
    let hours = time.get(sign + 1..sign + 3)?;
    hours.bytes().all(|byte| byte.is_ascii_digit()).then(|| hours.parse().ok()).flatten()
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
    fn times_past_the_readable_range_say_the_range_in_words() {
        for text in [
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59",
            "+010000-01-01T00:00:00Z",
            "-010000-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            // Within the civil range as written, past the instants once the offset applies.
            "9999-12-30T21:00:00-02:00",
            "-009999-01-02T02:59:58+01:00",
        ] {
            let error = parse_rfc3339_millis(text).expect_err(text);
            assert!(error.contains("is outside the times Sluice reads, -009999-01-02T01:59:59Z to 9999-12-30T22:00:00"), "{error}");
        }
    }

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
        // RFC 3339 allows any number of digits: past nine, they are below a millisecond.
        assert_eq!(parse_rfc3339_millis("2026-01-01T12:00:00.1239999999999Z"), Ok(NOON_UTC + 123));
        assert_eq!(parse_rfc3339_millis("2026-01-01T12:00:00,12345678912+01:00"), Ok(NOON_UTC + 123 - 3_600_000));
        assert_eq!(parse_rfc3339_millis("1969-12-31T23:59:59.99999999999Z"), Ok(-1));
        // A leap second is read as the second before it.
        assert_eq!(parse_rfc3339_millis("2016-12-31T23:59:60Z"), parse_rfc3339_millis("2016-12-31T23:59:59Z"));
        assert_eq!(parse_rfc3339_millis("1969-12-31T23:59:59Z"), Ok(-1000));
        assert_eq!(parse_rfc3339_millis("2026-01-01"), Ok(NOON_UTC - 43_200_000));
        // Floored: half a millisecond before 1970 is in its last millisecond, not at 0.
        assert_eq!(parse_rfc3339_millis("1969-12-31T23:59:59.9995Z"), Ok(-1));
    }

    #[test]
    fn offsets_past_a_day_and_zone_annotations_are_refused() {
        let error = parse_rfc3339_millis("2026-01-01T12:00:00+25:00").expect_err("offset");
        assert!(error.contains("offset of 25 hours"), "{error}");
        assert!(parse_rfc3339_millis("2026-01-01T12:00:00+24:00").is_err());
        assert_eq!(parse_rfc3339_millis("2026-01-01T12:00:00-23:59"), Ok(NOON_UTC + 86_340_000));
        let error = parse_rfc3339_millis("2026-01-01T12:00:00[America/New_York]").expect_err("annotation");
        assert!(error.contains("time zone annotation"), "{error}");
    }

    #[test]
    fn malformed_times_are_refused_with_the_expected_form() {
        for text in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01T25:00:00Z", "1767268800000"] {
            let error = parse_rfc3339_millis(text).expect_err(text);
            assert!(error.contains("is not an RFC 3339 time"), "{text}: {error}");
        }
    }
}
