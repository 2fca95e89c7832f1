//! Durations in plugin configurations: `"250ms"`, `"10s"`, `"5m"`, `"1h"` (humantime syntax) or milliseconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A non-negative span of event time, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "DurationText", into = "i64")]
pub struct Millis(pub i64);

/// A duration as a configuration writes it: text, or whole milliseconds.
enum DurationText {
    Millis(i64),
    Text(String),
}

/// Read by hand rather than as an untagged enum, whose refusal ("data did not match any variant
/// of untagged enum") names neither what was given nor what is expected.
impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = DurationText;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a duration such as \"10s\", \"500ms\" or \"5m\", or a whole number of milliseconds")
    }

    fn visit_i64<E: serde::de::Error>(self, milliseconds: i64) -> Result<DurationText, E> {
        Ok(DurationText::Millis(milliseconds))
    }

    fn visit_u64<E: serde::de::Error>(self, milliseconds: u64) -> Result<DurationText, E> {
        i64::try_from(milliseconds).map(DurationText::Millis).map_err(|_| E::custom(format!("duration of {milliseconds} ms is too large")))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DurationText, E> {
        Ok(DurationText::Text(text.to_owned()))
    }
}

impl TryFrom<DurationText> for Millis {
    type Error = String;
    fn try_from(value: DurationText) -> Result<Self, String> {
        match value {
            DurationText::Millis(ms) if u128::try_from(ms).is_ok_and(|ms| ms > LONGEST_DURATION.as_millis()) => {
                Err(format!("duration of {ms} ms is too long: at most 100 years ({} ms)", LONGEST_DURATION.as_millis()))
            }
            DurationText::Millis(ms) if ms >= 0 => Ok(Millis(ms)),
            DurationText::Millis(ms) => Err(format!("duration must not be negative, got {ms}")),
            DurationText::Text(text) => Millis::parse(&text),
        }
    }
}

impl From<Millis> for i64 {
    fn from(value: Millis) -> i64 {
        value.0
    }
}

impl Millis {
    /// Parses a human-readable duration (`250ms`, `10s`, `5m`, `1h 30m`), as the runtime does.
    pub fn parse(text: &str) -> Result<Millis, String> {
        let duration = parse_duration(text)?;
        i64::try_from(duration.as_millis()).map(Millis).map_err(|_| format!("duration {text:?} is too large"))
    }
}

/// The longest duration a configuration may give: 100 years (of 365.25 days).
pub const LONGEST_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Parses a human-readable duration (`"250ms"`, `"10s"`, `"1h 30m"`, `"1.5h"`: humantime's
/// syntax), refusing one longer than [`LONGEST_DURATION`] with a message that quotes the text.
///
/// Each `<number><unit>` part is parsed on its own and the parts are added with checked
/// arithmetic: humantime sums them itself with a `Duration::new` that panics when the total
/// reaches `u64::MAX` seconds and a whole second of nanoseconds at once.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |error: &dyn fmt::Display| format!("invalid duration {text:?}: {error} (expected e.g. \"10s\", \"500ms\", \"5m\")");
    let too_long = || format!("duration {text:?} is too long: at most 100 years");
    if text.trim_start().starts_with('-') {
        return Err(format!("duration must not be negative, got {text:?}"));
    }
    let parts = duration_parts(text);
    if parts.is_empty() {
        return Err(invalid(&"value was empty"));
    }
    let mut total = Duration::ZERO;
    for part in parts {
        if part.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.').trim() == "M" {
            return Err(format!(
                "invalid duration {text:?}: \"M\" is a month of 30.44 days, easily taken for minutes: write \"m\" for \
                 minutes, or \"months\" (or days, \"30d\") for months"
            ));
        }
        let duration = humantime::parse_duration(part).map_err(|error| invalid(&error))?;
        total = total.checked_add(duration).ok_or_else(too_long)?;
    }
    if total > LONGEST_DURATION {
        return Err(too_long());
    }
    Ok(total)
}

/// Splits a duration's text into its `<number><unit>` parts: a part ends where a digit follows
/// a unit's letter, with or without spaces between them.
fn duration_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut after_letter = false;
    for (at, character) in text.char_indices() {
        if character.is_ascii_digit() && after_letter {
            parts.push(text[start..at].trim());
            start = at;
        }
        if !character.is_whitespace() {
            after_letter = character.is_alphabetic();
        }
    }
    parts.push(text[start..].trim());
    parts.retain(|part| !part.is_empty());
    parts
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Millis;

    #[test]
    fn parses_units_and_refuses_garbage() {
        assert_eq!(Millis::parse("250ms"), Ok(Millis(250)));
        assert_eq!(Millis::parse("10s"), Ok(Millis(10_000)));
        assert_eq!(Millis::parse("5m"), Ok(Millis(300_000)));
        assert_eq!(Millis::parse("1h"), Ok(Millis(3_600_000)));
        assert!(Millis::parse("s").is_err());
        assert!(Millis::parse("-1s").is_err());
        assert!(Millis::parse("ten").unwrap_err().contains("invalid duration"));
        assert_eq!(Millis::parse("1h 30m"), Ok(Millis(5_400_000)));
        assert_eq!(Millis::parse("1h30m15s"), Ok(Millis(5_415_000)));
        assert_eq!(Millis::parse("1.5h"), Ok(Millis(5_400_000)));
        assert!(Millis::parse("1M").unwrap_err().contains("easily taken for minutes"));
        assert!(Millis::parse("1h 2 M").unwrap_err().contains("easily taken for minutes"));
        assert_eq!(Millis::parse("1month"), Ok(Millis(2_630_016_000)));
        assert_eq!(Millis::parse("5 msec 2 seconds"), Ok(Millis(2_005)));
        let parsed: Millis = serde_json::from_str("1500").unwrap();
        assert_eq!(parsed, Millis(1500));
    }

    #[test]
    fn a_value_of_another_kind_is_refused_with_what_is_expected() {
        let refused = |json: &str| serde_json::from_str::<Millis>(json).unwrap_err().to_string();
        let expected = "a duration such as \"10s\", \"500ms\" or \"5m\", or a whole number of milliseconds";
        assert_eq!(refused("1.5"), format!("invalid type: floating point `1.5`, expected {expected} at line 1 column 3"));
        assert!(refused("[1]").contains(expected));
        assert!(refused("-5").contains("duration must not be negative, got -5"));
        assert!(refused("18446744073709551615").contains("too large"));
        assert_eq!(serde_json::from_str::<Millis>("\"2s\"").ok(), Some(Millis(2_000)));
    }

    #[test]
    fn sums_that_reach_the_end_of_u64_are_refused_not_a_panic() {
        // humantime alone panics here: u64::MAX seconds plus exactly one second of nanoseconds.
        let error = super::parse_duration("18446744073709551615s 1000ms").unwrap_err();
        assert!(error.contains("too long"), "{error}");
        assert!(super::parse_duration("18446744073709551615s").unwrap_err().contains("too long"));
        assert!(super::parse_duration("99999999999y").unwrap_err().contains("too long"));
        assert!(super::parse_duration("100y 1s").unwrap_err().contains("at most 100 years"));
        let longest = i64::try_from(super::LONGEST_DURATION.as_millis()).unwrap_or(i64::MAX);
        assert_eq!(super::Millis::try_from(super::DurationText::Millis(longest)), Ok(super::Millis(longest)));
        let refused = super::Millis::try_from(super::DurationText::Millis(i64::MAX)).unwrap_err();
        assert!(refused.contains("too long: at most 100 years"), "{refused}");
        assert_eq!(super::parse_duration("100y"), Ok(super::LONGEST_DURATION));
        assert!(super::parse_duration("").unwrap_err().contains("invalid duration"));
        assert!(super::parse_duration("10").unwrap_err().contains("invalid duration"));
        assert!(super::parse_duration("10 parsecs").unwrap_err().contains("invalid duration"));
        assert_eq!(super::parse_duration("-1s").unwrap_err(), "duration must not be negative, got \"-1s\"");
    }
}
