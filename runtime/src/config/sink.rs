//! Sink configurations: where records and dead letters go.

use std::path::PathBuf;

use serde::Deserialize;

use super::{KafkaDeadLetterConfig, KafkaSinkConfig, Name};

/// One `[[sinks]]` table; `type` selects the connector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Standard output, one record per line.
    Stdout {
        name: Option<Name>,
        #[serde(default)]
        format: OutputFormat,
    },
    /// A file, one record per line (created or truncated at start).
    File {
        name: Option<Name>,
        /// Relative to the pipeline file.
        path: PathBuf,
        #[serde(default)]
        format: OutputFormat,
    },
    /// A Kafka topic, through an idempotent producer.
    Kafka(KafkaSinkConfig),
}

impl SinkConfig {
    /// The sink's name: given, or its type.
    pub fn name(&self) -> String {
        let (name, kind) = match self {
            SinkConfig::Stdout { name, .. } => (name, "stdout"),
            SinkConfig::File { name, .. } => (name, "file"),
            SinkConfig::Kafka(config) => (&config.name, "kafka"),
        };
        name.as_ref().map_or_else(|| kind.to_owned(), ToString::to_string)
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
    File { path: PathBuf },
    /// Standard error, as JSON lines.
    Stderr,
    /// A Kafka topic: the record as it came, with the reason and provenance in headers.
    Kafka(KafkaDeadLetterConfig),
}
