//! Sinks: where a pipeline's output records go. A closed enum, one `match`.

mod encode;

use std::fs::File;
use std::io::{self, BufWriter, Write};

use crate::config::{LoadedPipeline, OutputFormat, SinkConfig};
use crate::wasm::Batch;

pub use encode::record_json;

/// Why a sink cannot take records.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink \"{sink}\": cannot open {path}: {error}")]
    Open { sink: String, path: String, error: io::Error },
    #[error("sink \"{sink}\": write failed: {error}")]
    Write { sink: String, error: io::Error },
}

/// A configured sink, written to from its own thread.
pub struct Sink {
    name: String,
    format: OutputFormat,
    writer: Box<dyn Write + Send>,
}

impl Sink {
    /// Opens the sink described by `config`.
    pub fn build(config: &SinkConfig, pipeline: &LoadedPipeline) -> Result<Sink, SinkError> {
        let name = config.name();
        let (writer, format): (Box<dyn Write + Send>, _) = match config {
            SinkConfig::Stdout { format, .. } => (Box::new(io::stdout()), *format),
            SinkConfig::File { path, format, .. } => {
                let path = pipeline.resolve(path);
                let file =
                    File::create(&path).map_err(|error| SinkError::Open { sink: name.clone(), path: path.display().to_string(), error })?;
                (Box::new(file), *format)
            }
        };
        Ok(Sink { name, format, writer: Box::new(BufWriter::with_capacity(1 << 16, writer)) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes a batch, one line per record, and flushes it.
    pub fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.write_lines(batch).map_err(|error| SinkError::Write { sink: self.name.clone(), error })
    }

    fn write_lines(&mut self, batch: &Batch) -> io::Result<()> {
        for record in batch.iter() {
            match self.format {
                OutputFormat::Value => self.writer.write_all(record.value())?,
                OutputFormat::Envelope => serde_json::to_writer(&mut self.writer, &record_json(record))?,
            }
            self.writer.write_all(b"\n")?;
        }
        self.writer.flush()
    }
}
