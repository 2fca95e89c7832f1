//! Operator configuration: which plugin, its limits and its own `config` table.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ByteSize, DurationText, Name};

/// One `[[operators]]` table. Operators run in the order they are written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    pub name: Spanned<Name>,
    /// The plugin's component file, relative to the pipeline file.
    pub plugin: Spanned<PathBuf>,
    /// Most linear memory one instance may use.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: ByteSize,
    /// Longest time one call (a batch, a watermark, a snapshot) may take.
    #[serde(default = "default_call_timeout")]
    pub call_timeout: DurationText,
    /// The plugin's own settings, passed to its `init` as JSON.
    pub config: Option<Spanned<toml::Table>>,
}

fn default_memory_limit() -> ByteSize {
    ByteSize::mebibytes(128)
}

fn default_call_timeout() -> DurationText {
    DurationText::from_millis(1_000)
}

impl OperatorConfig {
    /// The `config` table as the JSON text handed to the plugin's `init`.
    pub fn config_json(&self) -> String {
        match &self.config {
            // A TOML table has string keys only, so it always serialises to JSON.
            Some(table) => serde_json::to_string(table.get_ref()).unwrap_or_else(|_| "{}".into()),
            None => "{}".into(),
        }
    }
}
