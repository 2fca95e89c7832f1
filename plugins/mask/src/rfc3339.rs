//! RFC 3339 date-times truncated in their own offset: `2024-03-10T14:37:52.25+05:30` to the
//! hour is `2024-03-10T14:00:00+05:30`.

use crate::truncate::TimeUnit;

/// `text` truncated to the unit, the fraction removed; `None` unless `text` is an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.fraction]`
/// and `Z` or `±HH:MM`; `t`, `z` and a space for the `T` are accepted).
pub fn truncate(text: &str, unit: TimeUnit) -> Option<String> {
    let time = DateTime::parse(text)?;
    let (hour, minute, second) = match unit {
        TimeUnit::Second => (time.hour, time.minute, time.second),
        TimeUnit::Minute => (time.hour, time.minute, "00"),
        TimeUnit::Hour => (time.hour, "00", "00"),
        TimeUnit::Day => ("00", "00", "00"),
    };
    Some(format!("{}{hour}:{minute}:{second}{}", time.date, time.offset))
}

/// The parts of a valid date-time, as written.
struct DateTime<'t> {
    /// The date and the separator after it.
    date: &'t str,
    hour: &'t str,
    minute: &'t str,
    second: &'t str,
    offset: &'t str,
}

impl<'t> DateTime<'t> {
    fn parse(text: &'t str) -> Option<DateTime<'t>> {
        let bytes = text.as_bytes();
        let year = digits(bytes, 0, 4)?;
        let month = digits(bytes, 5, 2)?;
        let day = digits(bytes, 8, 2)?;
        let (hour, minute, second) = (digits(bytes, 11, 2)?, digits(bytes, 14, 2)?, digits(bytes, 17, 2)?);
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        let shaped =
            separators.iter().all(|(at, separator)| bytes.get(*at) == Some(separator)) && matches!(bytes.get(10), Some(b'T' | b't' | b' '));
        let in_range =
            (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day) && hour <= 23 && minute <= 59 && second <= 60;
        let offset = without_fraction(text.get(19..)?)?;
        (shaped && in_range && is_offset(offset)).then(|| DateTime {
            date: text.get(..11).unwrap_or_default(),
            hour: text.get(11..13).unwrap_or_default(),
            minute: text.get(14..16).unwrap_or_default(),
            second: text.get(17..19).unwrap_or_default(),
            offset,
        })
    }
}

/// The text after an optional fraction (a '.' and at least one digit).
fn without_fraction(rest: &str) -> Option<&str> {
    let Some(fraction) = rest.strip_prefix('.') else { return Some(rest) };
    let length = fraction.bytes().take_while(u8::is_ascii_digit).count();
    if length == 0 { None } else { fraction.get(length..) }
}

/// `Z`, `z` or `±HH:MM` with HH ≤ 23 and MM ≤ 59.
fn is_offset(text: &str) -> bool {
    let bytes = text.as_bytes();
    if matches!(bytes, b"Z" | b"z") {
        return true;
    }
    bytes.len() == 6
        && matches!(bytes[0], b'+' | b'-')
        && bytes[3] == b':'
        && digits(bytes, 1, 2).is_some_and(|hours| hours <= 23)
        && digits(bytes, 4, 2).is_some_and(|minutes| minutes <= 59)
}

/// The decimal number written by `length` ASCII digits at `start`.
fn digits(bytes: &[u8], start: usize, length: usize) -> Option<u32> {
    let written = bytes.get(start..start + length)?;
    written.iter().try_fold(0u32, |value, byte| byte.is_ascii_digit().then(|| value * 10 + u32::from(byte - b'0')))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
