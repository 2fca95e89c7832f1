//! Dead letters: records that could not be processed, with where they came from and why.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use serde_json::Value;

use crate::config::{DeadLetterConfig, LoadedPipeline};
use crate::sink::record_json;
use crate::wasm::Batch;

/// A record that left the pipeline through the dead-letter sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: String,
    /// The operator that refused or failed on the record; none for source problems.
    pub operator: Option<String>,
    pub plugin_digest: Option<String>,
    pub source: String,
    /// Position in the source, when the record is one the source produced.
    pub position: Option<u64>,
    /// The record, alone in its batch.
    pub record: Batch,
}

impl DeadLetter {
    /// A record its source could not read.
    pub fn from_source(source: &str, position: u64, record: Batch, reason: String) -> DeadLetter {
        DeadLetter { reason, operator: None, plugin_digest: None, source: source.to_owned(), position: Some(position), record }
    }

    /// The JSON line written for this dead letter.
    pub fn to_json(&self, pipeline: &str) -> Value {
        let mut object = self.record.get(0).map(record_json).unwrap_or_default();
        object.insert("pipeline".into(), pipeline.into());
        object.insert("source".into(), self.source.clone().into());
        if let Some(position) = self.position {
            object.insert("position".into(), position.into());
        }
        if let Some(operator) = &self.operator {
            object.insert("operator".into(), operator.clone().into());
        }
        if let Some(digest) = &self.plugin_digest {
            object.insert("plugin_digest".into(), digest.clone().into());
        }
        object.insert("reason".into(), self.reason.clone().into());
        Value::Object(object)
    }
}

/// Where dead letters are written.
pub struct DeadLetterSink {
    pipeline: String,
    description: String,
    writer: Box<dyn Write + Send>,
}

impl DeadLetterSink {
    /// Opens the configured dead-letter sink (by default `<pipeline>.dead-letter.jsonl`).
    pub fn build(config: Option<&DeadLetterConfig>, pipeline: &LoadedPipeline) -> io::Result<DeadLetterSink> {
        let name = pipeline.config.pipeline.name.get_ref().to_string();
        let (writer, description): (Box<dyn Write + Send>, String) = match config {
            Some(DeadLetterConfig::Stderr) => (Box::new(io::stderr()), "standard error".into()),
            Some(DeadLetterConfig::File { path }) => open_append(pipeline.resolve(path))?,
            None => open_append(PathBuf::from(format!("{name}.dead-letter.jsonl")))?,
        };
        Ok(DeadLetterSink { pipeline: name, description, writer })
    }

    /// Where the dead letters go, in words.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Writes one dead letter and flushes it: dead letters are rare and must not be lost.
    pub fn write(&mut self, letter: &DeadLetter) -> io::Result<()> {
        serde_json::to_writer(&mut self.writer, &letter.to_json(&self.pipeline))?;
        self.writer.write_all(b"\n")?;
        self.writer.flush()
    }
}

fn open_append(path: PathBuf) -> io::Result<(Box<dyn Write + Send>, String)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot open dead-letter file {}: {error}", path.display())))?;
    Ok((Box::new(BufWriter::new(file)), path.display().to_string()))
}
