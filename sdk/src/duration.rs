//! Durations in plugin configurations: `"250ms"`, `"10s"`, `"5m"`, `"1h"` (humantime syntax) or milliseconds.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative span of event time, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "DurationText", into = "i64")]
pub struct Millis(pub i64);

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationText {
    Millis(i64),
    Text(String),
}

impl TryFrom<DurationText> for Millis {
    type Error = String;
    fn try_from(value: DurationText) -> Result<Self, String> {
        match value {
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
        let duration = humantime::parse_duration(text)
            .map_err(|error| format!("invalid duration {text:?}: {error} (expected e.g. \"10s\", \"500ms\", \"5m\")"))?;
        i64::try_from(duration.as_millis()).map(Millis).map_err(|_| format!("duration {text:?} is too large"))
    }
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
        let parsed: Millis = serde_json::from_str("1500").unwrap();
        assert_eq!(parsed, Millis(1500));
    }
}
