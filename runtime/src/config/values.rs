//! Validated scalar types of pipeline files: names, durations, byte sizes.
//!
//! Each is checked while deserialising, so the TOML parser reports the exact position.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A name of a pipeline, source, operator or sink: lowercase letters, digits and '-'.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Name(String);

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if text.is_empty() || text.len() > 64 {
            return Err(format!("name {text:?} must have 1 to 64 characters"));
        }
        if let Some(bad) = text.chars().find(|c| !valid_char(*c)) {
            return Err(format!("name {text:?} may only use lowercase letters, digits and '-', not {bad:?}"));
        }
        if text.starts_with('-') || text.ends_with('-') {
            return Err(format!("name {text:?} must not start or end with '-'"));
        }
        Ok(Name(text))
    }
}

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an operator or sink reads: a node's name, or `node.output` for an operator's side
/// output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct InputRef {
    pub node: Name,
    /// The side output read; `None` for the main output.
    pub output: Option<Name>,
}

impl TryFrom<String> for InputRef {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let explain = |problem: String| format!("input {text:?}: {problem} (an input is a node's name, or \"node.output\")");
        let (node, output) = match text.split_once('.') {
            Some((node, output)) => (node, Some(output)),
            None => (text.as_str(), None),
        };
        let node = Name::try_from(node.to_owned()).map_err(explain)?;
        let output = output.map(|output| Name::try_from(output.to_owned())).transpose().map_err(explain)?;
        Ok(InputRef { node, output })
    }
}

impl fmt::Display for InputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.output {
            Some(output) => write!(f, "{}.{output}", self.node),
            None => write!(f, "{}", self.node),
        }
    }
}

/// A duration written like `"250ms"`, `"10s"`, `"5m"` or `"1h 30m"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DurationText(Duration);

impl TryFrom<String> for DurationText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        sluice_sdk::duration::parse_duration(&text).map(DurationText)
    }
}

impl DurationText {
    pub const fn from_millis(millis: u64) -> DurationText {
        DurationText(Duration::from_millis(millis))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    /// Milliseconds, saturated to `i64` (event-time arithmetic).
    pub fn millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A rate in records per second: a positive, finite number.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Rate(f64);

impl Rate {
    /// A rate known to be valid (defaults).
    pub const fn per(records_per_second: f64) -> Rate {
        Rate(records_per_second)
    }
}

impl TryFrom<f64> for Rate {
    type Error = String;
    fn try_from(rate: f64) -> Result<Self, String> {
        if (0.001..=1e9).contains(&rate) {
            Ok(Rate(rate))
        } else {
            Err(format!("a rate must be between 0.001 and 1000000000 per second, got {}", short_number(rate)))
        }
    }
}

/// `number` as written short: `1e-300` or `1e308` in exponent form, not as 300 digits.
pub fn short_number(number: f64) -> String {
    match number.abs() {
        magnitude if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) => format!("{number:e}"),
        _ => number.to_string(),
    }
}

impl Rate {
    pub fn per_second(self) -> f64 {
        self.0
    }
}

/// An amount of memory written like `"64MiB"` or `"1 GiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ByteSize(u64);

impl TryFrom<String> for ByteSize {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse::<bytesize::ByteSize>()
            .map(|size| ByteSize(size.as_u64()))
            .map_err(|_| format!("invalid size {text:?}: expected a number and a unit, such as \"64MiB\" or \"1GiB\""))
    }
}

impl ByteSize {
    pub const fn mebibytes(count: u64) -> ByteSize {
        ByteSize(count * 1024 * 1024)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}
