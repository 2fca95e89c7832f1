//! Source configurations: where records come from.

use std::path::PathBuf;

use serde::Deserialize;

use super::{DurationText, KafkaSourceConfig, Name, Rate};

/// One `[[sources]]` table; `type` selects the connector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// The built-in synthetic e-commerce clickstream.
    Generator(GeneratorConfig),
    /// A file of JSON lines, read once to its end.
    File(FileSourceConfig),
    /// JSON lines from standard input, until it closes.
    Stdin(StdinSourceConfig),
    /// Records of Kafka topics, read by a consumer group; one task per assigned partition.
    Kafka(KafkaSourceConfig),
}

impl SourceConfig {
    /// The source's name: given, or its type.
    pub fn name(&self) -> String {
        let (name, kind) = match self {
            SourceConfig::Generator(config) => (&config.name, "generator"),
            SourceConfig::File(config) => (&config.name, "file"),
            SourceConfig::Stdin(config) => (&config.name, "stdin"),
            SourceConfig::Kafka(config) => (&config.name, "kafka"),
        };
        name.as_ref().map_or_else(|| kind.to_owned(), ToString::to_string)
    }

    /// Whether the source ends by itself.
    pub fn is_bounded(&self) -> bool {
        match self {
            SourceConfig::Generator(config) => config.count.is_some(),
            SourceConfig::File(_) | SourceConfig::Stdin(_) => true,
            SourceConfig::Kafka(_) => false,
        }
    }
}

/// `type = "generator"`: a deterministic, seeded clickstream of views, carts and orders.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    pub name: Option<Name>,
    /// Seed of the pseudo-random sequence: same seed, same records.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Records to produce; unbounded when absent.
    pub count: Option<u64>,
    /// Records per second of wall-clock time; as fast as possible when absent.
    pub rate: Option<Rate>,
    /// Event time of the first record, RFC 3339.
    #[serde(default = "default_start_time")]
    pub start_time: String,
    /// Mean event-time distance between consecutive records.
    #[serde(default = "default_event_interval")]
    pub event_interval: DurationText,
    /// Largest random shift of a record's event time backwards (out-of-order data).
    #[serde(default)]
    pub disorder: DurationText,
    /// Number of distinct users.
    #[serde(default = "default_users")]
    pub users: u32,
    /// Number of distinct items in the catalogue.
    #[serde(default = "default_items")]
    pub items: u32,
    /// Anomalies injected at known event times (for testing detectors).
    #[serde(default)]
    pub anomalies: Vec<AnomalyConfig>,
}

/// An anomaly the generator injects: during `[start, start + duration)` of event time, order
/// prices (of one category, or all) are multiplied by `price_factor`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    /// RFC 3339 time.
    pub start: String,
    pub duration: DurationText,
    pub category: Option<String>,
    pub price_factor: f64,
}

fn default_seed() -> u64 {
    1
}

fn default_start_time() -> String {
    "2026-01-01T00:00:00Z".into()
}

fn default_event_interval() -> DurationText {
    DurationText::from_millis(10)
}

fn default_users() -> u32 {
    1_000
}

fn default_items() -> u32 {
    500
}

/// `type = "file"`: JSON lines from a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub name: Option<Name>,
    /// Relative to the pipeline file.
    pub path: PathBuf,
    /// JSON field holding the event time (milliseconds or RFC 3339); ingestion time otherwise.
    pub timestamp_field: Option<String>,
}

/// `type = "stdin"`: JSON lines from standard input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {
    pub name: Option<Name>,
    /// JSON field holding the event time (milliseconds or RFC 3339); ingestion time otherwise.
    pub timestamp_field: Option<String>,
}
