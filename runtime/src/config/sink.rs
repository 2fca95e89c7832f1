//! Sink configurations: where records and dead letters go.

use crate::monitor::ChartConfig;
use std::path::PathBuf;

use serde::Deserialize;

use sluice_sdk::FieldPath;

use super::{InputRef, KafkaDeadLetterConfig, KafkaSinkConfig, Name};

/// One `[[sinks]]` table; `type` selects the connector. Every sink may name its `inputs`
/// (by default the last operator; without operators, every source) and a record `key` made
/// of fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Standard output, one record per line.
    Stdout(StdoutSinkConfig),
    /// A file, one record per line (created or truncated at start).
    File(FileSinkConfig),
    /// A Kafka topic, through an idempotent producer.
    Kafka(KafkaSinkConfig),
    /// The admin server's web console: the latest records as a live table and chart.
    Console(ConsoleSinkConfig),
}

/// A `[[sinks]]` table of `type = "stdout"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    pub name: Option<Name>,
    #[serde(default)]
    pub format: OutputFormat,
    pub inputs: Option<Vec<InputRef>>,
    pub key: Option<Vec<FieldPath>>,
}

/// A `[[sinks]]` table of `type = "file"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub name: Option<Name>,
    /// Relative to the pipeline file.
    pub path: PathBuf,
    #[serde(default)]
    pub format: OutputFormat,
    pub inputs: Option<Vec<InputRef>>,
    pub key: Option<Vec<FieldPath>>,
}

/// A `[[sinks]]` table of `type = "console"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    pub name: Option<Name>,
    /// Records kept and shown (the latest); signed, so that a negative count is refused with
    /// the range validation gives rather than serde's.
    #[serde(default = "default_console_keep")]
    pub keep: i64,
    /// Which fields the chart draws; by default the first time-like, numeric and text fields.
    #[serde(default)]
    pub chart: ChartConfig,
    pub inputs: Option<Vec<InputRef>>,
    pub key: Option<Vec<FieldPath>>,
}

/// The numbers of records a console sink may keep.
pub const CONSOLE_KEEP: std::ops::RangeInclusive<i64> = 1..=100_000;

impl ConsoleSinkConfig {
    /// The records kept, within [`CONSOLE_KEEP`] (validation refuses a `keep` outside it).
    pub fn rows_kept(&self) -> usize {
        usize::try_from(self.keep.clamp(*CONSOLE_KEEP.start(), *CONSOLE_KEEP.end())).unwrap_or(1)
    }
}

fn default_console_keep() -> i64 {
    1000
}

impl SinkConfig {
    /// The sink's name: given, or its type.
    pub fn name(&self) -> String {
        let (name, kind) = match self {
            SinkConfig::Stdout(config) => (&config.name, "stdout"),
            SinkConfig::File(config) => (&config.name, "file"),
            SinkConfig::Kafka(config) => (&config.name, "kafka"),
            SinkConfig::Console(config) => (&config.name, "console"),
        };
        name.as_ref().map_or_else(|| kind.to_owned(), ToString::to_string)
    }

    /// What the sink reads, if given. (Sinks are a tagged enum, through which the TOML parser
    /// cannot carry positions: problems the checks find are located at the sink's table.)
    pub fn inputs(&self) -> Option<&[InputRef]> {
        match self {
            SinkConfig::Stdout(config) => config.inputs.as_deref(),
            SinkConfig::File(config) => config.inputs.as_deref(),
            SinkConfig::Console(config) => config.inputs.as_deref(),
            SinkConfig::Kafka(config) => config.inputs.as_deref(),
        }
    }

    /// The fields whose values become each record's key before it is written, if given.
    pub fn key(&self) -> Option<&[FieldPath]> {
        match self {
            SinkConfig::Stdout(config) => config.key.as_deref(),
            SinkConfig::File(config) => config.key.as_deref(),
            SinkConfig::Console(config) => config.key.as_deref(),
            SinkConfig::Kafka(config) => config.key.as_deref(),
        }
    }
}

/// How a record is written as a line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// The payload bytes as they are.
    #[default]
    Value,
    /// A JSON object with `key`, `value`, `timestamp` and `headers`.
    Envelope,
}

/// The `[dead_letter]` table: where refused and failing records go, with the reason.
/// Defaults to the file `<pipeline name>.dead-letter.jsonl` in the working directory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// A file of JSON lines (appended to).
    File(FileDeadLetterConfig),
    /// Standard error, as JSON lines.
    Stderr(StderrDeadLetterConfig),
    /// A Kafka topic: the record as it came, with the reason and provenance in headers.
    Kafka(KafkaDeadLetterConfig),
}

impl DeadLetterConfig {
    /// The file dead letters go to without a `[dead_letter]` table: `<pipeline>.dead-letter.jsonl`,
    /// relative to the working directory.
    pub fn default_file(pipeline: &str) -> PathBuf {
        PathBuf::from(format!("{pipeline}.dead-letter.jsonl"))
    }
}

/// A `[dead_letter]` table of `type = "file"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDeadLetterConfig {
    pub path: PathBuf,
}

/// A `[dead_letter]` table of `type = "stderr"`: no settings (a struct, so that a stray key
/// such as `path` is refused rather than ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StderrDeadLetterConfig {}
